"""`count --quality` (assignaudit/quality.py): loss values by hand, against shapely, and end to end.

The references here do not use `assignaudit.quality` or `assignaudit.ops`: IoUs come from shapely polygons, the
enclosing box from the polygons' joint bounds, and the sums / shares / medians from plain per-positive loops.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from shapely.geometry import Polygon

from assignaudit import schema
from assignaudit.assign.assigner import assign_frame
from assignaudit.augment.replay import AugmentationReplay
from assignaudit.bands import ALL_BANDS, Bands
from assignaudit.config import load_config
from assignaudit.count import CountOptions, run_count
from assignaudit.errors import ConfigError
from assignaudit.quality import Positives, QualityOptions, QualityTally, focal_weights, pair_losses, residual_encode
from assignaudit.report import read_report
from assignaudit.sources.open import open_source
from assignaudit.tally.anchor import AnchorTally
from assignaudit.tally.base import GTBands

BANDS = Bands((0.0, 20.0, 30.0, 40.0, 50.0))
CPU = torch.device("cpu")


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------------------------
# Hand-worked values
# ------------------------------------------------------------------------------------------------------------------


def test_losses_by_hand():
    # Pair 0: 4 x 2 x 2 boxes, GT shifted 1 m along x. Overlap 3 x 2 = 6, union 8 + 8 - 6 = 10 -> IoU 0.6.
    # Enclosing rectangle x in [-2, 3], y in [-1, 1]: C_w = 5, C_h = 2, c^2 = 29; rho^2 = 1; equal sizes.
    # L_EIoU = 0.4 + 1/29. 3D: same heights -> IoU 12 / 20 = 0.6; C_d = 2, c_3d^2 = 33 -> 0.4 + 1/33.
    # Pair 1: 2 x 2 x 2 inside 4 x 2 x 2, same centre: IoU 4 / 8 = 0.5; C_w = 4, C_h = 2; rho = 0;
    # size term (2 - 4)^2 / 16 = 0.25 -> L_EIoU = 0.75; 3D IoU 8 / 16 = 0.5, L_EIoU_3d = 0.5 + 0.25 = 0.75.
    ref = t([[0, 0, 0, 4, 2, 2, 0], [0, 0, 0, 2, 2, 2, 0]])
    gt = t([[1, 0, 0, 4, 2, 2, 0], [0, 0, 0, 4, 2, 2, 0]])
    v = pair_losses(ref, gt)
    np.testing.assert_allclose(v["iou_bev"].numpy(), [0.6, 0.5], atol=1e-9)
    np.testing.assert_allclose(v["iou_3d"].numpy(), [0.6, 0.5], atol=1e-9)
    np.testing.assert_allclose(v["loss_iou"].numpy(), [0.4, 0.5], atol=1e-9)
    np.testing.assert_allclose(v["loss_eiou"].numpy(), [0.4 + 1 / 29, 0.75], atol=1e-9)
    np.testing.assert_allclose(v["loss_eiou_3d"].numpy(), [0.4 + 1 / 33, 0.75], atol=1e-9)
    # ResidualCoder: diag sqrt(20) for pair 0 -> x = 1/sqrt(20); pair 1: log(4/2) = log 2 on dx.
    r = residual_encode(ref, gt).numpy()
    np.testing.assert_allclose(r[0], [1 / math.sqrt(20), 0, 0, 0, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(r[1], [0, 0, 0, math.log(2), 0, 0, 0], atol=1e-9)
    # Focal-EIoU weights, gamma 0.5: sqrt(0.6), sqrt(0.5) over their sum.
    w = focal_weights(v["iou_bev"], 0.5).numpy()
    s = math.sqrt(0.6) + math.sqrt(0.5)
    np.testing.assert_allclose(w, [math.sqrt(0.6) / s, math.sqrt(0.5) / s], atol=1e-9)
    assert focal_weights(torch.zeros(3), 0.5).tolist() == [0, 0, 0]


def test_tally_shares_by_hand():
    # The two pairs above as one frame, class 0, band 0; low-IoU threshold 0.55 makes pair 1 (IoU 0.5) low quality.
    q = QualityTally(("a", "b"), BANDS, QualityOptions(gamma=0.5, low_iou=0.55))
    gt = t([[1, 0, 0, 4, 2, 2, 0], [0, 0, 0, 4, 2, 2, 0]])
    pos = Positives(t([[0, 0, 0, 4, 2, 2, 0], [0, 0, 0, 2, 2, 2, 0]]), np.array([0, 1]))
    q.add(pos, gt, np.array([0, 0]), np.array([0, 0]))
    col = {k: v.reshape(2, len(BANDS) + 1) for k, v in q.summary_columns().items()}
    l0, l1 = 0.4 + 1 / 29, 0.75
    w0, w1 = math.sqrt(0.6), math.sqrt(0.5)
    for b in (0, len(BANDS)):  # band 0-20 and all
        assert col["num_pos_quality"][0, b] == 2 and col["num_pos_low_iou"][0, b] == 1
        assert col["num_pos_beyond_beta"][0, b] == 2  # 1/sqrt(20) = 0.224 and log 2 >= 1/9
        assert col["loss_eiou_sum"][0, b] == pytest.approx(l0 + l1)
        assert col["loss_iou_sum"][0, b] == pytest.approx(0.9)
        assert col["low_quality_share"][0, b] == pytest.approx(l1 / (l0 + l1))
        assert col["focal_eiou_sum"][0, b] == pytest.approx((w0 * l0 + w1 * l1) / (w0 + w1))
        assert col["low_quality_share_focal"][0, b] == pytest.approx(w1 * l1 / (w0 * l0 + w1 * l1))
        assert col["iou_bev_p50"][0, b] == pytest.approx(0.5005)  # nearest rank of {0.5, 0.6}: 0.5, bin centre
    assert col["num_pos_quality"][1].sum() == 0 and np.isnan(col["low_quality_share"][1]).all()
    h = q.histogram_frame()
    assert tuple(h.columns) == schema.QUALITY_COLUMNS
    # the +-beta edges are bin edges: |r| >= beta is a sum of whole bins
    rx = h[(h.quantity == "residual_x") & (h.band == ALL_BANDS)]
    assert rx[rx.bin_lo >= 1 / 9 - 1e-12]["count"].sum() == 1


# ------------------------------------------------------------------------------------------------------------------
# Against shapely
# ------------------------------------------------------------------------------------------------------------------


def corners(b):
    x, y, dx, dy, yaw = b[0], b[1], b[3], b[4], b[6]
    c, s = math.cos(yaw), math.sin(yaw)
    pts = [(sx * dx / 2, sy * dy / 2) for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    return Polygon([(x + c * px - s * py, y + s * px + c * py) for px, py in pts])


def shapely_losses(a, g):
    pa_, pg = corners(a), corners(g)
    inter = pa_.intersection(pg).area
    iou = inter / (pa_.area + pg.area - inter)
    hz = max(0.0, min(a[2] + a[5] / 2, g[2] + g[5] / 2) - max(a[2] - a[5] / 2, g[2] - g[5] / 2))
    va, vg = a[3] * a[4] * a[5], g[3] * g[4] * g[5]
    iou3 = inter * hz / (va + vg - inter * hz)
    x0, y0, x1, y1 = pa_.union(pg).bounds
    cw, chh = x1 - x0, y1 - y0
    cd = max(a[2] + a[5] / 2, g[2] + g[5] / 2) - min(a[2] - a[5] / 2, g[2] - g[5] / 2)
    rho2 = (a[0] - g[0]) ** 2 + (a[1] - g[1]) ** 2
    size = (a[3] - g[3]) ** 2 / cw**2 + (a[4] - g[4]) ** 2 / chh**2
    eiou = 1 - iou + rho2 / (cw**2 + chh**2) + size
    eiou3 = 1 - iou3 + (rho2 + (a[2] - g[2]) ** 2) / (cw**2 + chh**2 + cd**2) + size + (a[5] - g[5]) ** 2 / cd**2
    return iou, iou3, eiou, eiou3


def test_pair_losses_match_shapely():
    rng = np.random.default_rng(3)
    n = 300
    g = np.column_stack([rng.uniform(-5, 5, n), rng.uniform(-5, 5, n), rng.uniform(-1, 1, n),
                         rng.uniform(0.3, 6, n), rng.uniform(0.3, 3, n), rng.uniform(0.5, 3, n),
                         rng.uniform(-math.pi, math.pi, n)])
    a = g + np.column_stack([rng.normal(0, 0.8, (n, 3)), rng.normal(0, 0.5, (n, 3)), rng.normal(0, 0.6, n)])
    a[:, 3:6] = np.abs(a[:, 3:6]) + 0.2
    v = pair_losses(torch.from_numpy(a), torch.from_numpy(g))
    ref = np.array([shapely_losses(a[i], g[i]) for i in range(n)])
    assert (ref[:, 0] > 0).sum() > 200 and (ref[:, 0] == 0).sum() > 0  # overlapping and disjoint pairs both seen
    np.testing.assert_allclose(v["iou_bev"].numpy(), ref[:, 0], atol=1e-9)
    np.testing.assert_allclose(v["iou_3d"].numpy(), ref[:, 1], atol=1e-9)
    np.testing.assert_allclose(v["loss_eiou"].numpy(), ref[:, 2], atol=1e-9)
    np.testing.assert_allclose(v["loss_eiou_3d"].numpy(), ref[:, 3], atol=1e-9)


# ------------------------------------------------------------------------------------------------------------------
# End to end on the fixture: default preset (anchor), independent per-positive recomputation
# ------------------------------------------------------------------------------------------------------------------


def test_count_quality_matches_independent_computation(tmp_path):
    cfg = load_config(None)
    opts = QualityOptions(gamma=0.5, low_iou=0.5)
    n_frames = 3
    res = run_count(cfg, open_source(), CountOptions(augment=False, max_frames=n_frames, device="cpu", bands=BANDS,
                                                     quality=opts), tmp_path)
    summary, meta = read_report(tmp_path / schema.SUMMARY_FILE)
    assert tuple(summary.columns) == (schema.SUMMARY_COLUMNS + schema.SUMMARY_EXTRA_COLUMNS
                                      + schema.SUMMARY_QUALITY_COLUMNS)
    assert meta["quality"]["gamma"] == 0.5 and "anchor" in meta["quality"]["reference_box"]
    hist, _ = read_report(tmp_path / schema.QUALITY_FILE)

    # reference: the same frames (filters only), assigned directly; every positive anchor re-measured with shapely
    replay = AugmentationReplay(dataclasses.replace(cfg, augmentations=()), None, seed=0)
    tally = AnchorTally(cfg, BANDS, CPU)
    ci = {c: i for i, c in enumerate(cfg.class_names)}
    per_class = {c: {"iou": [], "eiou": [], "focal": [], "low_e": 0.0, "low_f": 0.0} for c in cfg.class_names}
    for i, fr in enumerate(open_source().frames()):
        if i >= n_frames:
            break
        aug = replay.apply(fr, 0, augment=False)
        if len(aug.boxes) == 0:
            continue
        gcls = np.array([ci[c] for c in aug.class_name])
        r = assign_frame(tally.anchors, torch.tensor(aug.boxes[:, :7], dtype=torch.float32),
                         torch.as_tensor(tally.set_of_class[gcls]), cfg.assigner, BANDS)
        anchors = tally.anchors.boxes.numpy().astype(np.float64)
        gt = aug.boxes.astype(np.float32).astype(np.float64)
        vals = [shapely_losses(anchors[ai], gt[gi]) for ai, gi in zip(r.pos_anchor_index, r.pos_gt_index)]
        wsum = sum(v[0] ** 0.5 for v in vals)
        for (iou, _, eiou, _), gi in zip(vals, r.pos_gt_index):
            d = per_class[aug.class_name[gi]]
            f = (iou ** 0.5) * eiou / wsum if wsum > 0 else 0.0
            d["iou"].append(iou)
            d["eiou"].append(eiou)
            d["focal"].append(f)
            if iou < 0.5:
                d["low_e"] += eiou
                d["low_f"] += f
    a = summary[summary.band == ALL_BANDS].set_index("class")
    checked = 0
    for c, d in per_class.items():
        row = a.loc[c]
        assert row.num_pos_quality == len(d["iou"]) == row.num_pos
        if not d["iou"]:
            assert math.isnan(row.low_quality_share) and math.isnan(row.iou_bev_p50)
            continue
        checked += 1
        assert row.loss_eiou_sum == pytest.approx(sum(d["eiou"]), rel=1e-4)
        assert row.focal_eiou_sum == pytest.approx(sum(d["focal"]), rel=1e-4)
        assert row.low_quality_share == pytest.approx(d["low_e"] / sum(d["eiou"]), abs=1e-4)
        assert row.low_quality_share_focal == pytest.approx(d["low_f"] / sum(d["focal"]), abs=1e-4)
        assert row.num_pos_low_iou == sum(v < 0.5 for v in d["iou"])
        s = sorted(d["iou"])
        assert abs(row.iou_bev_p50 - s[math.ceil(0.5 * len(s)) - 1]) <= 5e-4 + 1e-5  # histogram resolution 1e-3
        hc = hist[(hist["class"] == c) & (hist.band == ALL_BANDS) & (hist.quantity == "iou_bev")]
        assert hc["count"].sum() == len(d["iou"])
    assert checked >= 5


def test_cli_quality_prints_share_and_median(tmp_path):
    from typer.testing import CliRunner

    from assignaudit.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["count", "--quality", "--quiet", "--max-frames", "2", "--device", "cpu",
                              "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert "low-q share" in res.stdout and "pos IoU p50" in res.stdout and "quality.parquet" in res.stdout
    s, _ = read_report(tmp_path / "t" / schema.SUMMARY_FILE)
    a = s[(s.band == ALL_BANDS) & (s.num_pos_quality > 0)]
    for _, row in a.iterrows():  # the printed row carries the summary's share and median
        line = next(ln for ln in res.stdout.splitlines() if f" {row['class']} " in ln)
        assert f"{row.low_quality_share:.1%}" in line and f"{row.iou_bev_p50:.2f}" in line
    js = runner.invoke(app, ["count", "--quality", "--json", "--max-frames", "1", "--device", "cpu",
                             "--out", str(tmp_path / "j")])
    payload = json.loads(js.stdout)
    assert "low_quality_share" in payload["summary"][0] and payload["quality"]["low_iou"] == 0.5


@pytest.mark.parametrize("args, msg", [
    (["--quality-gamma", "-1"], "--quality-gamma"),
    (["--quality-low-iou", "0"], "--quality-low-iou"),
    (["--compare-config", "pcdet-kitti-pointpillars"], "--compare-config"),
])
def test_cli_quality_bad_input(tmp_path, args, msg):
    from typer.testing import CliRunner

    from assignaudit.cli import app

    res = CliRunner().invoke(app, ["count", "--quality", "--max-frames", "1", "--out", str(tmp_path), *args])
    assert res.exit_code == 2
    assert "error:" in res.output and msg in res.output and "Traceback" not in res.output


def test_quality_options_validate():
    with pytest.raises(ConfigError):
        QualityOptions(gamma=float("nan"))
    with pytest.raises(ConfigError):
        QualityOptions(beta=0)


# ------------------------------------------------------------------------------------------------------------------
# Heatmap and query reference boxes
# ------------------------------------------------------------------------------------------------------------------


def test_heatmap_reference_box_is_the_decoded_cell():
    from test_count_families import center_config

    from assignaudit.tally.heatmap import HeatmapTally

    cfg = center_config()
    tally = HeatmapTally(cfg, BANDS, CPU)
    tally.collect_positives = True
    # cell 0.075 * 8 = 0.6 m, pcr -54: x = 1.0 -> (55 / 0.6) = 91.67 -> ix 91 -> 91 * 0.6 - 54 = 0.6;
    # y = 0.3 -> 90.5 -> iy 90 -> 0.0. The decoded box keeps the GT's z, size and yaw.
    boxes = np.zeros((1, 9))
    boxes[0, :7] = [1.0, 0.3, -1.0, 4.0, 2.0, 1.5, 0.0]
    gtb = GTBands(np.array([0]), np.hypot(boxes[:, 0], boxes[:, 1]), BANDS, len(cfg.class_names))
    ft = tally.add_frame(boxes, np.array(["car"], dtype=object), gtb, "tok")
    ref = ft.positives.ref.numpy()
    np.testing.assert_allclose(ref[0], [0.6, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0], atol=1e-5)
    assert ft.positives.gt_index.tolist() == [0] and ft.positives.cls.tolist() == [0]
    # IoU by hand: overlap (4 - 0.4) x (2 - 0.3) = 6.12 over 16 - 6.12
    v = pair_losses(ft.positives.ref, torch.tensor(boxes[:, :7], dtype=torch.float32))
    assert float(v["iou_bev"][0]) == pytest.approx(6.12 / 9.88, abs=1e-5)


def test_center_and_query_count_quality(tmp_path):
    from test_count_families import center_config, filtered_frames, make_dump, query_config

    res = run_count(center_config(), open_source(), CountOptions(max_frames=2, device="cpu", bands=BANDS,
                                                                 quality=QualityOptions()), None)
    a = res.summary[res.summary.band == ALL_BANDS]
    assert (a.num_pos_quality >= a.num_pos - a.num_gt_collision).all() and a.num_pos_quality.sum() > 0
    # decoded at the centre cell with the GT's own size: every log-size residual is 0, so median 3D IoU is high
    assert res.metadata["quality"]["reference_box"].startswith("the box decoded")

    cfg = query_config(q=60, layers=2)
    augs = filtered_frames(cfg, 2)
    dump = make_dump(tmp_path / "d.npz", cfg, augs, np.random.default_rng(0))
    res = run_count(cfg, open_source(), CountOptions(max_frames=2, device="cpu", bands=BANDS,
                                                     quality=QualityOptions()), None, query_dump=dump)
    a = res.summary[res.summary.band == ALL_BANDS].set_index("class")
    np.testing.assert_array_equal(a.num_pos_quality, a.num_pos)
    # last layer = exact boxes shifted 0.2..3 m along x: reference (query) and GT differ only in x
    assert (a.loss_eiou_sum[a.num_pos > 0] > 0).all()
    res2 = run_count(cfg, open_source(), CountOptions(max_frames=1, device="cpu", quality=QualityOptions()), None)
    assert res2.summary.num_pos_quality.sum() == 0 and res2.metadata["quality"]["num_frames_without_positives"] == 1


@pytest.mark.parametrize("preset, atss", [
    ("pcdet-nuscenes-pointpillars-multihead", False), ("mmdet3d-nuscenes-pointpillars-secfpn", False),
    ("mmdet3d-kitti-pointpillars-3class", False), ("pcdet-nuscenes-pointpillars-multihead", True),
])
def test_pos_anchor_index_is_the_credited_anchor(preset, atss):
    # FrameAssignment.pos_anchor_index: the anchor whose IoU with the credited GT is pos_iou (every assigner path)
    from assignaudit.assign.params import Framework
    from assignaudit.ops import box_iou_bev_aligned, box_iou_nearest_bev_aligned

    cfg = load_config(preset)
    if "kitti" in preset:
        from assignaudit.config.overrides import apply_class_map

        cfg = apply_class_map(cfg, "car=Car,pedestrian=Pedestrian,bicycle=Cyclist")
    if atss:
        cfg = dataclasses.replace(cfg, assigner=dataclasses.replace(cfg.assigner, framework=Framework.ATSS))
    tally = AnchorTally(cfg, BANDS, CPU)
    replay = AugmentationReplay(dataclasses.replace(cfg, augmentations=()), None, seed=0)
    ci = {c: i for i, c in enumerate(cfg.class_names)}
    fr = next(f for f in (replay.apply(x, 0, augment=False) for x in open_source().frames()) if len(f.boxes))
    keep = np.array([c in ci for c in fr.class_name])
    gt = torch.tensor(fr.boxes[keep, :7], dtype=torch.float32)
    gcls = np.array([ci[c] for c in fr.class_name[keep]])
    r = assign_frame(tally.anchors, gt, torch.as_tensor(tally.set_of_class[gcls]), cfg.assigner, BANDS)
    assert r.pos_anchor_index.shape == r.pos_gt_index.shape and r.pos_gt_index.size > 0
    a = tally.anchors.boxes[torch.as_tensor(r.pos_anchor_index)]
    g = gt[torch.as_tensor(r.pos_gt_index)]
    if atss:  # rotated BEV IoU with pcdet's 1 cm kernel margin
        np.testing.assert_allclose(box_iou_bev_aligned(a, g).numpy(), r.pos_iou, atol=2e-2)
    else:
        iou = box_iou_nearest_bev_aligned(a, g, cfg.assigner.nearest_convention).numpy()
        np.testing.assert_array_equal(iou, r.pos_iou)
