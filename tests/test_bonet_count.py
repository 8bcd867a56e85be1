"""3D-BoNet as a `count` path: the frame's points reach the cost (sources), the query tally replays the match with
``query.cost: bonet``, and the refusals (no points, dump missing frames)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from assignaudit.assign.bonet import bonet_cost, bonet_match
from assignaudit.assign.hungarian import QueryFrame, replay_frame
from assignaudit.errors import DataError
from assignaudit.sources.base import Frame

from assignaudit.sources.infos import open_infos
from assignaudit.sources.open import open_source
from assignaudit.sources.points import NUSCENES_POINTS_KEY, frame_points_path, read_frame_points

INFOS = Path(__file__).parent / "data" / "infos"


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("mkf", Path(__file__).parents[1] / "fixtures/make_kitti_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root = tmp_path_factory.mktemp("kitti")
    mod.make_kitti_fixture(root)
    return root


def test_frames_carry_their_points(kitti_root):
    nus = next(iter(open_source().frames()))
    path, cols = frame_points_path(nus)
    assert cols == 5 and path == nus.extra[NUSCENES_POINTS_KEY] and path.endswith(".pcd.bin")
    pts = read_frame_points(nus)
    assert pts.shape[1] == 5 and pts.shape[0] == Path(path).stat().st_size // 20
    raw = next(iter(open_source(kitti_root=kitti_root).frames()))
    assert frame_points_path(raw) == (str(kitti_root.resolve() / "training/velodyne/000000.bin"), 4)
    for name in ("mmdet3d_kitti_infos_train.pkl", "pcdet_kitti_infos_train.pkl"):
        frames = list(open_infos([INFOS / name], data_path=kitti_root).frames())
        assert [Path(f.lidar_path).name for f in frames] == ["000000.bin", "000001.bin", "000002.bin"]
        np.testing.assert_array_equal(read_frame_points(frames[0]), read_frame_points(raw))
    # Without the velodyne files (info files alone) there are no points.
    assert all(read_frame_points(f) is None for f in open_infos([INFOS / "mmdet3d_kitti_infos_train.pkl"]).frames())


# ---- the cost on points, by hand -------------------------------------------------------------------------------

S20 = 1 / (1 + math.exp(-20))  # sigmoid of the clipped +20 (a point well inside on an axis)
E = 1 / (1 + math.exp(20))  # sigmoid(-20): a point well outside


def _ce(q, g):
    return sum(-(b * math.log(a + 1e-8) + (1 - b) * math.log(1 - a + 1e-8)) for a, b in zip(q, g)) / len(q)


def test_two_gt_by_hand_and_scipy():
    # GT A = [0, 2]^3, GT B = [10, 12] x [0, 2] x [0, 2]; points a = (1, 1, 1) in A, b = (11, 1, 1) in B, c outside.
    # P0 = B exactly; P1 = A shifted +1 m in x (a lies on its x_min face: sigmoid(0) = 0.5); P2 far away.
    gt = torch.tensor([[0, 0, 0, 2, 2, 2], [10, 0, 0, 12, 2, 2]], dtype=torch.float64)
    pred = torch.tensor([[10, 0, 0, 12, 2, 2], [1, 0, 0, 3, 2, 2], [20, 0, 0, 22, 2, 2]], dtype=torch.float64)
    pts = torch.tensor([[1, 1, 1], [11, 1, 1], [5, 5, 5]], dtype=torch.float64)
    c = bonet_cost(pred, gt, pts)
    q = [[E, S20, E], [0.5, E, E], [E, E, E]]  # soft membership of a, b, c per prediction
    g = [[1, 0, 0], [0, 1, 0]]
    l2 = [[200 / 6, 0], [2 / 6, 162 / 6], [800 / 6, 200 / 6]]  # mean of the 6 squared vertex differences
    for i in range(3):
        for j in range(2):
            tp = sum(a * b for a, b in zip(q[i], g[j]))
            siou = tp / (sum(q[i]) + sum(g[j]) - tp + 1e-6)  # TP / (TP + FP + FN + eps)
            ce = _ce(q[i], g[j])
            assert c.vertex_l2[i, j].item() == pytest.approx(l2[i][j], abs=1e-12)
            assert c.soft_iou[i, j].item() == pytest.approx(siou, abs=1e-12)
            assert c.cross_entropy[i, j].item() == pytest.approx(ce, abs=1e-9)
            assert c.total[i, j].item() == pytest.approx(l2[i][j] - siou + ce, abs=1e-9)
    # e.g. C[1, A] = 1/3 - 0.5/(1 + 2e + 1e-6) + (-log 0.5 + 2 x ~0) / 3 ~ 0.064; C[0, B] ~ -1.
    assert c.total[1, 0].item() == pytest.approx(1 / 3 - 0.5 / (1 + 2 * E + 1e-6) + _ce(q[1], g[0]), abs=1e-12)
    rows, cols = bonet_match(c.total)
    r2, c2 = linear_sum_assignment(c.total.numpy())
    assert rows.tolist() == r2.tolist() == [0, 1] and cols.tolist() == c2.tolist() == [1, 0]

    # The same frame through the query replay (canonical boxes, yaw 0): GT A -> query 1, GT B -> query 0.
    centre = lambda v: [(v[0] + v[3]) / 2, (v[1] + v[4]) / 2, (v[2] + v[5]) / 2]  # noqa: E731
    qb = np.array([[*centre(v)[:2], math.log(2), math.log(2), centre(v)[2], math.log(2), 0, 1, 0, 0]
                   for v in pred.tolist()], np.float32)[None]
    gt_boxes = np.array([[*centre(v), 2, 2, 2, 0, 0, 0] for v in gt.tolist()])
    k = 2
    none = np.full(k, None, dtype=object)
    frame = Frame("t", gt_boxes, np.array(["car", "car"], dtype=object), none, none, none, np.full(k, -1),
                  np.full(k, -1))
    rep = replay_frame(QueryFrame("t", qb, np.zeros((1, 3, 1), np.float32), "canonical"), frame, ["car"], "bonet",
                       points=pts.numpy())
    assert rep.matched_query[-1].tolist() == [1, 0]
    with pytest.raises(DataError, match="needs the frame's points"):
        replay_frame(QueryFrame("t", qb, np.zeros((1, 3, 1), np.float32), "canonical"), frame, ["car"], "bonet")


# ---- count on the KITTI fixture ------------------------------------------------------------------------------

KITTI_CLASSES = ("Car", "Pedestrian", "Cyclist")
PCR = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0)
Q, L = 12, 2


def _query_boxes(b: np.ndarray) -> np.ndarray:
    """Canonical ``[Q, 7]`` -> dump boxes ``[Q, 10]`` (yaw_encoding canonical)."""
    return np.column_stack([b[:, 0], b[:, 1], np.log(b[:, 3]), np.log(b[:, 4]), b[:, 2], np.log(b[:, 5]),
                            np.sin(b[:, 6]), np.cos(b[:, 6]), np.zeros(len(b)), np.zeros(len(b))]).astype(np.float32)


@pytest.fixture(scope="module")
def kitti_dump(kitti_root, tmp_path_factory):
    """Per frame and layer: a slightly noisy copy of every GT of the three classes, a decoy 0.8 m off each, and
    far-away fillers. The config and the dump."""
    from assignaudit.sources.kitti import KittiSource

    tmp = tmp_path_factory.mktemp("bonet")
    rng = np.random.default_rng(3)
    tokens, boxes = [], []
    for f in KittiSource(kitti_root, "train").frames():
        g = f.boxes_lidar[np.isin(f.detection_class, KITTI_CLASSES), :7]
        layers = []
        for _ in range(L):
            filler = np.tile([[60.0, 30.0, 0.0, 1.0, 1.0, 1.0, 0.0]], (Q - 2 * len(g), 1))
            b = np.concatenate([g + rng.normal(0, 0.04, g.shape), g + [0.8, 0.8, 0, 0, 0, 0, 0], filler])
            layers.append(_query_boxes(b[rng.permutation(Q)]))
        tokens.append(f.sample_token)
        boxes.append(np.stack(layers))
    dump = tmp / "dump.npz"
    np.savez(dump, sample_token=np.array(tokens), boxes=np.stack(boxes),
             logits=np.zeros((len(tokens), L, Q, 3), np.float32), yaw_encoding=np.array("canonical"))
    cfg = tmp / "bonet.yaml"
    cfg.write_text(f"assignaudit: 1\nname: bonetq\nhead: query\nclass_names: [{', '.join(KITTI_CLASSES)}]\n"
                   f"point_cloud_range: {list(PCR)}\nvoxel_size: [0.2, 0.2, 4.0]\n"
                   f"query: {{cost: bonet, num_queries: {Q}, num_layers: {L}}}\n")
    return cfg, dump, tmp


def _aabb(b: np.ndarray) -> np.ndarray:
    """Exact 3D AABB ``[M, 6]`` from the 8 corners of each canonical box (independent of `box_vertices`)."""
    sx, sy, sz = np.meshgrid([-0.5, 0.5], [-0.5, 0.5], [-0.5, 0.5], indexing="ij")
    local = np.stack([sx.ravel(), sy.ravel(), sz.ravel()], 1)[None] * b[:, None, 3:6]  # [M, 8, 3]
    c, s = np.cos(b[:, 6])[:, None], np.sin(b[:, 6])[:, None]
    x = b[:, None, 0] + local[..., 0] * c - local[..., 1] * s
    y = b[:, None, 1] + local[..., 0] * s + local[..., 1] * c
    z = b[:, None, 2] + local[..., 2]
    corners = np.stack([x, y, z], -1)
    return np.concatenate([corners.min(1), corners.max(1)], 1)


def _numpy_cost(pv: np.ndarray, gv: np.ndarray, pts: np.ndarray) -> np.ndarray:
    t = (pv[:, None, :3] - pts[None]) * (pts[None] - pv[:, None, 3:])
    q = (1 / (1 + np.exp(-np.clip(100 * t, -20, 20)))).min(-1)  # [Q, N]
    g = (((gv[:, None, :3] - pts[None]) * (pts[None] - gv[:, None, 3:])) >= 0).all(-1).astype(float)  # [K, N]
    tp = q @ g.T
    siou = tp / (q.sum(1)[:, None] + g.sum(1)[None] - tp + 1e-6)
    ce = -(np.log(q + 1e-8) @ g.T + np.log(1 - q + 1e-8) @ (1 - g).T) / pts.shape[0]
    l2 = ((pv[:, None] - gv[None]) ** 2).mean(-1)
    return l2 - siou + ce


def test_count_bonet_on_kitti(kitti_root, kitti_dump):
    from typer.testing import CliRunner

    from assignaudit.assign.hungarian import decode_query_boxes, load_query_dump
    from assignaudit.cli import app
    from assignaudit.report import read_report
    from assignaudit.sources.kitti import KittiSource

    cfg, dump_path, tmp = kitti_dump
    out = tmp / "out"
    r = CliRunner().invoke(app, ["count", "--config", str(cfg), "--kitti-root", str(kitti_root), "--queries",
                                 str(dump_path), "--device", "cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    summary, meta = read_report(out / "summary.parquet")
    objects = pd.read_parquet(out / "objects.parquet")
    counted = objects[objects.zero_pos_reason.isna()]
    # Every counted GT won its accurate copy, never the 0.8 m decoy (IoU ~0 for the small classes).
    assert len(counted) >= 6 and (counted.num_pos == 1).all() and (counted.max_iou > 0.5).all()

    # Independent reference: the frame's points read and cropped here, a numpy cost, scipy's solver.
    dump = load_query_dump(dump_path)
    n_pts = n_kept = 0
    for i, f in enumerate(KittiSource(kitti_root, "train").frames()):
        pts = np.fromfile(kitti_root / "training" / "velodyne" / f"{f.sample_token}.bin", np.float32).reshape(-1, 4)
        keep = np.all((pts[:, :3] >= np.float32(PCR[:3])) & (pts[:, :3] < np.float32(PCR[3:])), 1)
        n_pts, n_kept = n_pts + len(pts), n_kept + int(keep.sum())
        rows = objects[(objects.sample_token == f.sample_token) & objects.zero_pos_reason.isna()]
        g = rows[["x", "y", "z", "dx", "dy", "dz", "yaw"]].to_numpy()
        qf = dump.frame(f.sample_token)
        for layer in range(L):
            dec = decode_query_boxes(torch.from_numpy(qf.boxes[layer]), "canonical").numpy().astype(np.float64)
            ref = _numpy_cost(_aabb(dec[:, :7]), _aabb(g), pts[keep, :3].astype(np.float64))
            qi, gi = linear_sum_assignment(ref)
            gt = Frame(f.sample_token, np.column_stack([g, np.zeros((len(g), 2))]), rows["class"].to_numpy(object),
                       *(np.full(len(g), None, dtype=object),) * 3, np.full(len(g), -1), np.full(len(g), -1))
            rep = replay_frame(QueryFrame(f.sample_token, qf.boxes[layer:layer + 1], qf.logits[layer:layer + 1],
                                          "canonical"), gt, KITTI_CLASSES, "bonet", points=pts[keep])
            assert rep.matched_query[0, gi].tolist() == qi.tolist()
            if layer == L - 1:
                np.testing.assert_allclose(rows.max_iou.to_numpy(), rep.matched_iou[0], atol=1e-6)
    b = meta["bonet"]
    assert b["points_read"] is True and b["points"]["frames"] == 3
    assert b["points"]["points"] == n_pts and b["points"]["points_in_range"] == n_kept
    assert list(b["points"]["files"].values()) == [str((kitti_root / "training" / "velodyne").resolve())]
    assert meta["augment"] is False and meta["cost"] == "bonet"
    layers = pd.read_parquet(out / "layers.parquet")
    assert (layers.num_matched == layers.num_gt).all()

    # One frame's detail (show) and the prompt agreement replay with the same points.
    r = CliRunner().invoke(app, ["show", "--config", str(cfg), "--kitti-root", str(kitti_root), "--queries",
                                 str(dump_path), "--sample", "0", "--device", "cpu", "--out", str(tmp / "show")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["count", "--config", str(cfg), "--kitti-root", str(kitti_root), "--queries",
                                 str(dump_path), "--prompts", "centre", "--device", "cpu", "--out", str(tmp / "pr")])
    assert r.exit_code == 0 and (tmp / "pr" / "prompts.parquet").is_file(), r.output


def test_count_bonet_refusals(kitti_root, kitti_dump, tmp_path):
    from typer.testing import CliRunner

    from assignaudit.cli import app

    cfg, dump_path, _ = kitti_dump
    runner = CliRunner()
    # Info files alone: the frames have no point cloud.
    r = runner.invoke(app, ["count", "--config", str(cfg), "--infos", str(INFOS / "pcdet_kitti_infos_train.pkl"),
                            "--queries", str(dump_path), "--device", "cpu"])
    assert r.exit_code == 2 and "query.cost bonet needs the frame's points" in r.output
    assert "Traceback" not in r.output and sum(line.startswith("error:") for line in r.output.splitlines()) == 1
    # With --data-path holding the velodyne files the same info files work.
    r = runner.invoke(app, ["count", "--config", str(cfg), "--infos", str(INFOS / "pcdet_kitti_infos_train.pkl"),
                            "--data-path", str(kitti_root), "--queries", str(dump_path), "--device", "cpu",
                            "--out", str(tmp_path / "infos")])
    assert r.exit_code == 0, r.output
    # A dump without one of the frames to count.
    from assignaudit.assign.hungarian import load_query_dump

    d = load_query_dump(dump_path)
    short = tmp_path / "short.npz"
    np.savez(short, sample_token=np.array(d.sample_tokens[:2]), boxes=d.boxes[:2], logits=d.logits[:2],
             yaw_encoding=np.array("canonical"))
    r = runner.invoke(app, ["count", "--config", str(cfg), "--kitti-root", str(kitti_root), "--queries", str(short),
                            "--device", "cpu"])
    assert r.exit_code == 2 and "no entry for sample_token '000002'" in r.output
    # Without a dump the match is not replayed, so no points are needed (and none are read).
    r = runner.invoke(app, ["count", "--config", str(cfg), "--infos", str(INFOS / "pcdet_kitti_infos_train.pkl"),
                            "--device", "cpu", "--out", str(tmp_path / "nodump")])
    assert r.exit_code == 0, r.output
    from assignaudit.report import read_report

    _, meta = read_report(tmp_path / "nodump" / "summary.parquet")
    assert meta["bonet"]["points_read"] is False and meta["bonet"]["points"] is None


def test_count_bonet_on_nuscenes_fixture(tmp_path):
    """The bundled nuScenes fixture: the key frame's 5-column .pcd.bin is read (``--set query.cost bonet``)."""
    from typer.testing import CliRunner

    from assignaudit.cli import app
    from assignaudit.report import read_report

    frame = next(iter(open_source().frames()))
    g = np.nan_to_num(frame.boxes_lidar[:, :7])
    filler = np.tile([[80.0, 80.0, 0.0, 1.0, 1.0, 1.0, 0.0]], (60 - len(g), 1))
    dump = tmp_path / "d.npz"
    boxes = _query_boxes(np.concatenate([g, filler]))[None, None]
    np.savez(dump, sample_token=np.array([frame.sample_token]), boxes=boxes,
             logits=np.zeros((1, 1, 60, 10), np.float32), yaw_encoding=np.array("canonical"))
    cfg = tmp_path / "q.yaml"
    cfg.write_text("assignaudit: 1\nname: q\nhead: query\nclass_names: [car, truck, construction_vehicle, bus, "
                   "trailer, barrier, motorcycle, bicycle, pedestrian, traffic_cone]\npoint_cloud_range: [-51.2, "
                   "-51.2, -5.0, 51.2, 51.2, 3.0]\nvoxel_size: [0.2, 0.2, 8.0]\nquery: {cost: detr3d, num_queries: "
                   "60, num_layers: 1}\n")
    r = CliRunner().invoke(app, ["count", "--config", str(cfg), "--set", "query.cost", "bonet", "--queries",
                                 str(dump), "--max-frames", "1", "--device", "cpu", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    summary, meta = read_report(tmp_path / "o" / "summary.parquet")
    files = meta["bonet"]["points"]["files"]
    assert list(files) == [".pcd.bin (nuScenes, 5 float32 columns)"] and files[list(files)[0]].endswith("LIDAR_TOP")
    all_band = summary[summary.band == "all"]
    assert (all_band.num_pos == all_band.num_gt).all() and (all_band.iou_pos_p50.dropna() > 0.99).all()


@pytest.mark.parametrize("chunk", [1 << 22, 64])
def test_near_box_sums_equal_every_pair(monkeypatch, chunk):
    """The default path evaluates only points near each box; it equals the all-pairs one (points placed right at
    the sqrt(0.2) m edge of the clip, a diverged NaN prediction, chunks of a few pairs)."""
    from assignaudit.assign import bonet as bonet_mod
    from assignaudit.assign.bonet import box_vertices

    monkeypatch.setattr(bonet_mod, "_CHUNK_ELEMENTS", chunk)
    monkeypatch.setattr(bonet_mod, "_MIN_PAIRS", 1)
    rng = np.random.default_rng(5)
    k, q = 6, 40
    gt = box_vertices(torch.from_numpy(np.column_stack([rng.uniform(-6, 6, (k, 2)), rng.uniform(-1, 1, k),
                                                        rng.uniform(1, 4, (k, 2)), rng.uniform(1, 2, k),
                                                        rng.uniform(-3, 3, k)])))
    pred = box_vertices(torch.from_numpy(np.column_stack([rng.uniform(-6, 6, (q, 2)), rng.uniform(-1, 1, q),
                                                          rng.uniform(0.1, 4, (q, 2)), rng.uniform(0.1, 2, q),
                                                          rng.uniform(-3, 3, q)])))
    pred[7] = float("nan")
    edge = pred[:5, :3].numpy() - math.sqrt(0.2) + rng.uniform(-1e-6, 1e-6, (5, 3))  # just around the clip
    pts = torch.from_numpy(np.concatenate([rng.uniform(-7, 7, (800, 3)) * [1, 1, 0.3], edge,
                                           gt[:, :3].repeat(30, 1).numpy() + rng.uniform(-0.6, 0.6, (k * 30, 3))]))
    a, b = bonet_cost(pred, gt, pts), bonet_cost(pred, gt, pts, dense=True)
    for name in ("total", "soft_iou", "cross_entropy"):
        x, y = getattr(a, name).numpy(), getattr(b, name).numpy()
        assert np.isnan(x[7]).all() and np.isnan(y[7]).all()
        np.testing.assert_allclose(np.delete(x, 7, 0), np.delete(y, 7, 0), rtol=0, atol=1e-12)
