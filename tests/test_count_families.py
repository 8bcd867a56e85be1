"""`count` for every target family: CenterHead heatmaps, class-agnostic anchors, Hungarian query heads.

References are computed here, independently of `assignaudit.tally`: per cell from the dense heatmaps that
`heatmap_targets` returns, per GT / per query with plain loops, and numbers derived by hand in the comments.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch

from assignaudit import schema
from assignaudit.assign.heatmap import HeatmapParams, heatmap_targets
from assignaudit.assign.hungarian import normalize_bbox, replay_frame, summarize_replays
from assignaudit.assign.params import AssignerParams, Framework, QueryParams
from assignaudit.augment.replay import AugmentationReplay
from assignaudit.bands import ALL_BANDS, Bands
from assignaudit.config import load_config
from assignaudit.count import CountOptions, run_count
from assignaudit.errors import ConfigError, DataError
from assignaudit.report import read_report
from assignaudit.sources.base import Frame
from assignaudit.sources.open import open_source
from assignaudit.tally.base import GTBands, summary_frame
from assignaudit.tally.heatmap import HeatmapTally

NUS = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle", "pedestrian",
       "traffic_cone")
HEADS = (("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",), ("motorcycle", "bicycle"),
         ("pedestrian", "traffic_cone"))
CP_PCR = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
BANDS = Bands((0.0, 20.0, 30.0, 40.0, 50.0))
CPU = torch.device("cpu")


def center_config(variant="pcdet", pcr=CP_PCR, voxel=(0.075, 0.075, 0.2), stride=8, **kw):
    hp = HeatmapParams(pcr, voxel, stride, HEADS, NUS, variant=variant, **kw)
    return dataclasses.replace(load_config(None), name=f"center-{variant}", head="center", heatmap=hp, anchors=None,
                               assigner=None, point_cloud_range=pcr,
                               framework="pcdet" if variant == "pcdet" else "mmdet3d")


def query_config(q=40, layers=2):
    return dataclasses.replace(load_config(None), name="query", head="query", query=QueryParams(num_queries=q,
                               num_layers=layers), anchors=None, assigner=None)


def boxes_of(rows):
    out = np.zeros((len(rows), 9))
    for i, (x, y, dx, dy) in enumerate(rows):
        out[i, :7] = [x, y, 0.0, dx, dy, 1.5, 0.3]
    return out


def tally_frames(config, frames):
    """Feed (boxes, class names) frames to a HeatmapTally; returns the tally and the per-frame results."""
    t = HeatmapTally(config, BANDS, CPU)
    index = {c: i for i, c in enumerate(config.class_names)}
    outs = []
    for boxes, names in frames:
        gtb = GTBands(np.array([index[c] for c in names], np.int64), np.hypot(boxes[:, 0], boxes[:, 1]), BANDS,
                      len(config.class_names))
        outs.append(t.add_frame(boxes, np.asarray(names, dtype=object), gtb, "tok"))
    return t, outs


# ------------------------------------------------------------------------------------------------------------------
# Heatmaps: against a per-cell / per-GT reference from the dense maps
# ------------------------------------------------------------------------------------------------------------------


def reference_heatmap_counts(config, frames):
    """Per (class, band) counts from the dense maps of `heatmap_targets`, with loops over positive cells and GT."""
    p = config.heatmap
    w, h = p.map_size
    nb = len(BANDS) + 1
    cls_index = {c: i for i, c in enumerate(config.class_names)}
    shape = (len(NUS), nb)
    ref = {k: np.zeros(shape, np.int64) for k in ("num_gt", "num_pos", "num_neg", "num_neg_reduced",
                                                   "num_gt_zero_pos", "num_gt_collision", "num_gt_clamped",
                                                   "num_gt_out_of_map", "num_gt_truncated")}
    xs = p.point_cloud_range[0] + (np.arange(w) + 0.5) * p.voxel_size[0] * p.feature_map_stride
    ys = p.point_cloud_range[1] + (np.arange(h) + 0.5) * p.voxel_size[1] * p.feature_map_stride
    cell_band = BANDS.index(np.hypot(xs[None, :], ys[:, None]))  # [H, W]
    radii = []
    for boxes, names in frames:
        res = heatmap_targets(torch.tensor(boxes[:, :7], dtype=torch.float32), np.asarray(names, dtype=object), p)
        gt_band = BANDS.index(np.hypot(boxes[:, 0], boxes[:, 1]))
        for head in res.heads:
            for j, cname in enumerate(head.class_names):
                c = cls_index[cname]
                hm = head.heatmap[j].numpy()
                pos_y, pos_x = np.nonzero(hm == 1.0)
                for y, x in zip(pos_y.tolist(), pos_x.tolist()):  # owner: first drawn slot of this channel there
                    owners = [g for g, ch, u in zip(head.slot_gt, head.slot_channel, head.slot_used)
                              if u and ch == j and res.cell_x[g] == x and res.cell_y[g] == y]
                    b = gt_band[owners[0]]
                    ref["num_pos"][c, b] += 1
                    ref["num_pos"][c, -1] += 1
                for b in range(nb - 1):
                    in_b = cell_band == b
                    ref["num_neg"][c, b] += int((hm[in_b] < 1).sum())
                    ref["num_neg_reduced"][c, b] += int(((hm[in_b] > 0) & (hm[in_b] < 1)).sum())
                ref["num_neg"][c, -1] += int((hm < 1).sum())
                ref["num_neg_reduced"][c, -1] += int(((hm > 0) & (hm < 1)).sum())
        for k, name in enumerate(names):  # per GT
            c, b = cls_index[name], gt_band[k]
            why = res.reason[k]
            for bb in (b, nb - 1):
                ref["num_gt"][c, bb] += 1
                ref["num_gt_zero_pos"][c, bb] += why is not None
                ref["num_gt_collision"][c, bb] += why == "cell_collision"
                ref["num_gt_out_of_map"][c, bb] += why == "out_of_map"
                ref["num_gt_truncated"][c, bb] += why == "truncated_max_objs"
                ref["num_gt_clamped"][c, bb] += bool(res.clamped[k])
            if res.used[k]:
                radii.append((name, int(res.radius[k])))
    return ref, radii


def random_frames(rng, n_frames, k, span=60.0):
    sizes = {"car": (4.6, 1.9), "truck": (6.9, 2.5), "bus": (10.5, 2.9), "pedestrian": (0.7, 0.7),
             "traffic_cone": (0.4, 0.4), "barrier": (0.5, 2.5), "bicycle": (1.7, 0.6)}
    names_all = list(sizes)
    frames = []
    for _ in range(n_frames):
        names = list(rng.choice(names_all, size=k))
        xy = rng.uniform(-span, span, (k, 2))
        # a few exact duplicates of a centre (same-cell collisions) and a few GT on the range border
        xy[1] = xy[0] + 0.01
        names[1] = names[0]
        xy[2] = (54.0, 10.0)
        rows = [(x, y, *sizes[c]) for (x, y), c in zip(xy, names)]
        frames.append((boxes_of(rows), names))
    return frames


@pytest.mark.parametrize("variant", ["pcdet", "mmdet3d"])
def test_heatmap_tally_matches_dense_reference(variant):
    # 0.6 m cells on +-54 m would make the per-cell Python reference slow: +-30 m at 0.25 m/cell, stride 2 (120x120)
    cfg = center_config(variant, pcr=(-30.0, -30.0, -5.0, 30.0, 30.0, 3.0), voxel=(0.125, 0.125, 0.2), stride=2,
                        num_max_objs=4)
    frames = random_frames(np.random.default_rng(7), 4, 16, span=33.0)
    t, _ = tally_frames(cfg, frames)
    ref, radii = reference_heatmap_counts(cfg, frames)
    for name, expected in ref.items():
        np.testing.assert_array_equal(getattr(t.tallies, name), expected, err_msg=name)
    assert ref["num_gt_collision"][:, -1].sum() >= 2 and ref["num_gt_truncated"][:, -1].sum() > 0
    assert (ref["num_gt_out_of_map"] if variant == "mmdet3d" else ref["num_gt_clamped"])[:, -1].sum() > 0
    # radius histogram (band all) = the drawn GT's radii
    summary = summary_frame(t.tallies, cfg.class_names, BANDS, t.nan_columns())
    radius = t.extra_reports()[schema.RADIUS_FILE][0]
    got = radius[radius.band == ALL_BANDS].groupby(["class", "radius_cells"]).num_gt.sum().to_dict()
    want = pd.Series(1, index=pd.MultiIndex.from_tuples(radii)).groupby(level=[0, 1]).sum().to_dict()
    assert got == want
    for cname in {c for c, _ in radii}:
        r = sorted(v for c, v in radii if c == cname)
        row = summary[(summary["class"] == cname) & (summary.band == ALL_BANDS)].iloc[0]
        assert row.radius_p50 == r[math.ceil(0.5 * len(r)) - 1]  # nearest-rank median
        assert math.isnan(row.iou_pos_p50) and row.num_ignore == 0 and row.num_forced == 0


def test_two_same_class_gt_in_one_cell_give_one_positive_one_collision():
    cfg = center_config()
    # Both centres in cell (x=100, y=90): x in [6.0, 6.6) m, y in [0.0, 0.6) m (0.6 m cells from -54 m). Car-sized
    # boxes give radius 2 (spec §11.2: 2.11 -> 2), so one 5 x 5 kernel: 1 positive, 24 cells with 0 < hm < 1.
    frames = [(boxes_of([(6.1, 0.1, 4.6, 1.9), (6.5, 0.5, 4.6, 1.9)]), ["car", "car"])]
    t, (ft,) = tally_frames(cfg, frames)
    car = NUS.index("car")
    assert t.tallies.num_gt[car, -1] == 2 and t.tallies.num_pos[car, -1] == 1
    assert t.tallies.num_gt_collision[car, -1] == 1 and t.tallies.num_gt_zero_pos[car, -1] == 1
    assert t.tallies.num_neg_reduced[car, -1] == 24 and t.tallies.num_neg[car, -1] == 180 * 180 - 1
    assert ft.gt_num_pos.tolist() == [1, 0] and ft.gt_zero_pos_reason.tolist() == [None, "cell_collision"]
    # a pedestrian in the same cell has its own channel: one positive there, no collision
    t2, _ = tally_frames(cfg, [(boxes_of([(6.1, 0.1, 4.6, 1.9), (6.5, 0.5, 0.7, 0.7)]), ["car", "pedestrian"])])
    assert t2.tallies.num_pos[:, -1].sum() == 2 and t2.tallies.num_gt_collision.sum() == 0


@pytest.mark.parametrize("variant, clamped, out_of_map, pos", [("pcdet", 1, 0, 1), ("mmdet3d", 0, 1, 0)])
def test_border_gt_clamped_under_pcdet_out_of_map_under_mmdet3d(variant, clamped, out_of_map, pos):
    # x = 54.0 m = x_max: (54 + 54) / 0.075 / 8 = 180.0 -> pcdet clamps to 179.5 (cell 179, counted);
    # mmdet3d: int(180.0) = 180 = W -> skipped (out_of_map), no positive.
    cfg = center_config(variant)
    t, (ft,) = tally_frames(cfg, [(boxes_of([(54.0, 3.0, 4.6, 1.9)]), ["car"])])
    car = NUS.index("car")
    assert t.tallies.num_gt_clamped[car, -1] == clamped and t.tallies.num_gt_out_of_map[car, -1] == out_of_map
    assert t.tallies.num_pos[car, -1] == pos and ft.gt_num_pos.tolist() == [pos]
    assert t.tallies.num_gt_zero_pos[car, -1] == 1 - pos


def test_heatmap_warnings_logged_once(caplog):
    hp = HeatmapParams(CP_PCR, (0.075, 0.075, 0.2), 8, (("pedestrian",), ("car",)), ("car", "pedestrian"))
    cfg = dataclasses.replace(load_config(None), class_names=("car", "pedestrian"), head="center", heatmap=hp,
                              anchors=None, assigner=None)
    with caplog.at_level(logging.WARNING):
        t, _ = tally_frames(cfg, [(boxes_of([(3.0, 3.0, 0.7, 0.7)]), ["pedestrian"])] * 3)
    assert sum("relabelled" in r.getMessage() for r in caplog.records) == 1
    # the pedestrian is drawn in its own head and again, relabelled, in the car channel (spec §5.1)
    assert t.tallies.num_pos[:, -1].tolist() == [3, 3] and t.num_phantom_slots == 3
    assert t.metadata()["heatmap_warnings"]


@pytest.fixture(scope="module")
def center_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("center")
    res = run_count(center_config(), open_source(), CountOptions(seed=1, max_frames=6, device="cpu"), out)
    return out, res


def test_center_count_end_to_end(center_run):
    out, res = center_run
    summary, meta = read_report(out / schema.SUMMARY_FILE)
    assert tuple(summary.columns) == schema.SUMMARY_COLUMNS + schema.SUMMARY_EXTRA_COLUMNS
    assert meta["head"] == "center" and meta["framework"] == "pcdet" and meta["counting"]["family"] == "center"
    assert "cell centre" in meta["bands"]["attribution"]
    frames = meta["num_frames_assigned"]
    a = summary[summary.band == ALL_BANDS].set_index("class")
    # every cell of every channel is a positive or a negative: 180 x 180 per class and frame
    np.testing.assert_array_equal(a.num_pos + a.num_neg, 180 * 180 * frames)
    assert (a.num_ignore == 0).all() and (a.num_forced == 0).all() and a.iou_pos_p50.isna().all()
    assert (a.num_neg_reduced > 0).all() and (a.radius_p50 >= 2).all()
    objects, _ = read_report(out / schema.OBJECTS_FILE)
    assigned = objects[objects.band.notna()]
    assert set(assigned.num_pos) <= {0, 1} and assigned.max_iou.isna().all()
    assert set(assigned.zero_pos_reason.dropna()) <= {"cell_collision", "truncated_max_objs", "out_of_map",
                                                      "degenerate_size"}
    by = assigned.groupby(["class", "band"]).agg(num_gt=("num_pos", "size"), num_pos=("num_pos", "sum"))
    s = summary.set_index(["class", "band"])
    for key, row in by.iterrows():  # no relabelling quirk with these heads: per-GT and per-channel agree
        assert s.loc[key, "num_gt"] == row.num_gt and s.loc[key, "num_pos"] == row.num_pos
    radius, _ = read_report(out / schema.RADIUS_FILE)
    drawn = assigned[assigned.zero_pos_reason.isna() | (assigned.zero_pos_reason == "cell_collision")]
    assert radius[radius.band == ALL_BANDS].num_gt.sum() == len(drawn)
    f, _ = read_report(out / schema.FRAMES_FILE)
    np.testing.assert_array_equal(f.groupby("class").num_neg.sum().loc[a.index], a.num_neg)


# ------------------------------------------------------------------------------------------------------------------
# Anchors: class-agnostic (mmdet3d nuScenes PointPillars style)
# ------------------------------------------------------------------------------------------------------------------


def agnostic_config():
    base = load_config(None)
    sets = tuple(dataclasses.replace(s, matched_threshold=0.6, unmatched_threshold=0.3, min_pos_iou=None)
                 for s in base.anchors.anchor_sets)
    generic = dataclasses.replace(sets[0], class_name="generic_0.4m", sizes=((0.4, 0.4, 1.0),))  # no config class
    layout = dataclasses.replace(base.anchors, anchor_sets=sets + (generic,))
    assigner = AssignerParams(framework=Framework.MMDET, class_agnostic=True, min_pos_iou=0.3)
    return dataclasses.replace(base, name="agnostic", anchors=layout, assigner=assigner, framework="mmdet3d")


def test_class_agnostic_negatives_are_every_class(tmp_path):
    cfg = agnostic_config()
    res = run_count(cfg, open_source(), CountOptions(seed=0, max_frames=3, device="cpu"), tmp_path)
    s = res.summary
    assert res.metadata["counting"]["class_agnostic"] is True
    frames = res.num_frames_assigned
    n_anchors = 11 * 128 * 128 * 2  # 10 class sets + 1 generic set, 2 rotations
    a = s[s.band == ALL_BANDS].set_index("class")
    # every class channel sees the same background: neg and ignore identical across classes, in every band
    for band, grp in s.groupby("band"):
        assert grp.num_neg.nunique() == 1 and grp.num_ignore.nunique() == 1, band
    # positives are credited to one GT each (its class), every other anchor is neg or ignored for every class
    assert a.num_pos.sum() + a.num_neg.iloc[0] + a.num_ignore.iloc[0] == n_anchors * frames
    f, _ = read_report(tmp_path / schema.FRAMES_FILE)
    assert (f.groupby("sample_token").num_neg.nunique() == 1).all()


# ------------------------------------------------------------------------------------------------------------------
# Query heads
# ------------------------------------------------------------------------------------------------------------------


def filtered_frames(config, n):
    replay = AugmentationReplay(dataclasses.replace(config, augmentations=()), None, seed=0)
    frames = []
    for i, fr in enumerate(open_source().frames()):
        if i >= n:
            break
        frames.append(replay.apply(fr, 0, augment=False))
    return frames


def make_dump(path, config, augs, rng, *, drop=()):
    """Layer 0: one query on each GT (perfect match); layer 1: the queries shifted 0.2..3 m; others far away."""
    q, n_layers = config.query.num_queries, config.query.num_layers
    tokens, boxes, logits = [], [], []
    for aug in augs:
        if aug.sample_token in drop:
            continue
        k = len(aug.boxes)
        exact = normalize_bbox(torch.tensor(aug.boxes, dtype=torch.float32)).numpy()
        b = np.zeros((n_layers, q, 10), np.float32)
        b[:, :, 0] = rng.uniform(-50, 50, q)
        b[:, :, 1] = rng.uniform(-50, 50, q)
        b[:, :, 2:4] = 0.0
        b[:, :, 7] = 1.0
        slots = rng.permutation(q)[:k]
        b[0, slots] = exact
        shifted = exact.copy()
        shifted[:, 0] += rng.uniform(0.2, 3.0, k)
        b[1, slots] = shifted
        lg = rng.normal(0, 1, (n_layers, q, len(config.class_names))).astype(np.float32)
        tokens.append(aug.sample_token)
        boxes.append(b)
        logits.append(lg)
    np.savez(path, sample_token=np.array(tokens), boxes=np.stack(boxes), logits=np.stack(logits))
    return path


def test_query_count_with_dump_matches_replay_reference(tmp_path, caplog):
    cfg = query_config(q=60, layers=2)
    augs = filtered_frames(cfg, 3)
    dump = make_dump(tmp_path / "d.npz", cfg, augs, np.random.default_rng(0))
    with caplog.at_level(logging.WARNING):
        res = run_count(cfg, open_source(), CountOptions(seed=0, replays=2, max_frames=3, device="cpu"),
                        tmp_path / "out", query_dump=dump)
    assert any("query dump given" in r.getMessage() for r in caplog.records)  # augmentation + replays asked for
    meta = res.metadata
    assert meta["augment"] is False and meta["replays"] == 1 and meta["augment_requested"] is True
    assert meta["query_dump"] == str(dump) and meta["head"] == "query"

    # reference: the replay of each frame, by hand over GT and queries
    from assignaudit.assign.hungarian import load_query_dump

    d = load_query_dump(dump)
    nb = len(BANDS) + 1
    ci = {c: i for i, c in enumerate(cfg.class_names)}
    pos = np.zeros((10, nb), np.int64)
    useless = np.zeros((10, nb), np.int64)
    neg = np.zeros(nb, np.int64)
    reps = []
    for aug in augs:
        fr = Frame(aug.sample_token, aug.boxes, aug.class_name, aug.class_name, aug.ann_token, aug.ann_token,
                   aug.num_lidar_pts, aug.num_lidar_pts)
        rep = replay_frame(d.frame(aug.sample_token), fr, cfg.class_names)
        reps.append(rep)
        matched_queries = set()
        for k in range(len(aug.boxes)):
            c, b = ci[aug.class_name[k]], int(BANDS.index(np.hypot(*aug.boxes[k, :2])))
            if rep.matched_query[-1, k] >= 0:
                pos[c, [b, -1]] += 1
                matched_queries.add(int(rep.matched_query[-1, k]))
            if rep.matched_iou[-1, k] < 0.1:
                useless[c, [b, -1]] += 1
        for qi in range(cfg.query.num_queries):
            if qi not in matched_queries:
                x, y = d.boxes[list(d.sample_tokens).index(aug.sample_token), -1, qi, :2]
                neg[[int(BANDS.index(np.hypot(x, y))), -1]] += 1
    s = res.summary
    got = lambda col: s[col].to_numpy().reshape(10, nb)  # noqa: E731
    np.testing.assert_array_equal(got("num_pos"), pos)
    np.testing.assert_array_equal(got("num_gt_useless"), useless)
    np.testing.assert_array_equal(got("num_neg"), np.broadcast_to(neg, (10, nb)))
    assert (s.num_ignore == 0).all() and s.radius_p50.isna().all()
    assert useless[:, -1].sum() > 0 and s.iou_pos_p50.notna().any()  # layer 1 is shifted: some useless matches
    layers, _ = read_report(tmp_path / "out" / schema.LAYERS_FILE)
    ref = summarize_replays(reps)
    mine = layers[layers.num_gt > 0].sort_values(["class", "layer"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, ref.reset_index(drop=True), check_dtype=False)


def test_query_dump_missing_frame_names_the_token_unless_max_frames_excludes_it(tmp_path):
    cfg = query_config()
    augs = filtered_frames(cfg, 4)
    dump = make_dump(tmp_path / "d.npz", cfg, augs, np.random.default_rng(1), drop={augs[3].sample_token})
    with pytest.raises(DataError, match=augs[3].sample_token):
        run_count(cfg, open_source(), CountOptions(max_frames=4, device="cpu"), None, query_dump=dump)
    res = run_count(cfg, open_source(), CountOptions(max_frames=3, device="cpu"), None, query_dump=dump)
    assert res.num_frames_assigned == 3
    with pytest.raises(ConfigError, match="--queries"):
        run_count(load_config(None), open_source(), CountOptions(max_frames=1, device="cpu"), None, query_dump=dump)
    bad = query_config()
    bad = dataclasses.replace(bad, class_names=bad.class_names[:9])
    with pytest.raises(DataError, match="logit columns"):
        run_count(bad, open_source(), CountOptions(max_frames=1, device="cpu"), None, query_dump=dump)


def test_query_count_without_dump_is_k_per_frame(tmp_path):
    cfg = query_config(q=900, layers=6)
    res = run_count(cfg, open_source(), CountOptions(seed=2, max_frames=4, device="cpu"), tmp_path)
    s = res.summary
    a = s[s.band == ALL_BANDS]
    assert (a.num_pos == a.num_gt).all() and (a.num_gt_zero_pos == 0).all()
    objects, _ = read_report(tmp_path / schema.OBJECTS_FILE)
    per_frame_k = objects[objects.band.notna()].groupby("sample_token").size()
    # Q - K unmatched queries per frame, in band `all` only, the same for every class
    assert (a.num_neg == (900 - per_frame_k).sum()).all()
    assert (s[s.band != ALL_BANDS].num_neg == 0).all()
    assert res.metadata["query_dump"] is None and res.metadata["positives"] == "K per frame (no dump)"
    assert not (tmp_path / schema.LAYERS_FILE).exists()


# ------------------------------------------------------------------------------------------------------------------
# CLI: --json and the table for every family (configs injected: the YAML presets for these heads come separately)
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["center", "query"])
def test_cli_json_and_table_for_every_family(tmp_path, monkeypatch, family):
    import json

    from typer.testing import CliRunner

    import assignaudit.config as config_pkg
    from assignaudit.cli import app

    cfg = center_config() if family == "center" else query_config(q=900, layers=6)
    monkeypatch.setattr(config_pkg, "load_config", lambda *a, **k: cfg)
    runner = CliRunner()
    res = runner.invoke(app, ["count", "--quiet", "--json", "--max-frames", "2", "--out", str(tmp_path / "j")])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["meta"]["head"] == family and payload["counting"]["family"] == family
    rows = payload["summary"]
    assert set(rows[0]) == set(schema.SUMMARY_COLUMNS + schema.SUMMARY_EXTRA_COLUMNS)
    assert all(r["radius_p50"] is None for r in rows) == (family == "query")  # NaN -> null
    text = runner.invoke(app, ["count", "--quiet", "--max-frames", "2", "--out", str(tmp_path / "t")])
    assert text.exit_code == 0, text.output
    assert ("0<hm<1" in text.stdout) if family == "center" else ("no query dump" in text.stdout)
