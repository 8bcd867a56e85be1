"""The sparse assigners equal a dense reference written here, on random frames, for both frameworks.

The reference builds the full anchors x GT IoU matrix (``ops.box_iou_nearest_bev``, or pairwise 3D IoU) per
assigner call and spells out each framework's rule with plain torch ops (mmdet: the literal loop over GT in index
order). Frames mix random GT with GT placed on anchor centres and midpoints, copies of anchor sizes, duplicate GT,
yaws of exactly 0, pi/2 and pi/4, and GT of classes without an anchor set, so ties and identity conflicts occur.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from assignaudit.assign import (
    AnchorLayout, AnchorSet, AssignerParams, Framework, IouKind, assign_frame, generate_anchors,
)
from assignaudit import ops
from assignaudit.bands import Bands

BANDS = Bands((0.0, 5.0, 10.0))
PI4 = float(np.float32(math.pi / 4))


def layout(multihead: bool, agnostic: bool = False, min_pos: float | None = None) -> AnchorLayout:
    th = [(0.6, 0.45), (0.5, 0.35), (0.55, 0.0)] if not agnostic else [(0.6, 0.3)] * 3
    nz = (-1.0, 0.0) if not multihead else (-1.0,)
    sets = (
        AnchorSet("big", ((4.0, 2.0, 1.5),), (0.0, 1.57), nz, *th[0], feature_map_stride=2, min_pos_iou=min_pos),
        AnchorSet("mid", ((2.0, 1.0, 1.5), (1.2, 1.2, 1.0)), (0.0, PI4), nz, *th[1], feature_map_stride=2,
                  min_pos_iou=min_pos),
        AnchorSet("small", ((0.6, 0.6, 1.7),), (0.0, 1.57), (-1.0, 0.0), *th[2], feature_map_stride=2,
                  min_pos_iou=min_pos),
    )
    return AnchorLayout((-10.0, -10.0, -5.0, 10.0, 10.0, 3.0), (0.5, 0.5, 8.0), sets, multihead=multihead)


def random_frame(rng: np.random.Generator, anchors, num_sets: int):
    k = int(rng.integers(0, 14))
    xs, ys = anchors.x_positions[0].numpy(), anchors.y_positions[0].numpy()
    sizes = [s.sizes[0] for s in anchors.layout.anchor_sets]
    rows, sets = [], []
    for _ in range(k):
        si = int(rng.integers(-1, num_sets))
        mode = rng.integers(0, 4)
        i, j = int(rng.integers(1, 19)), int(rng.integers(1, 19))
        if mode == 0:  # on an anchor centre
            x, y = float(xs[i]), float(ys[j])
        elif mode == 1:  # midway between anchors (x, or x and y)
            x = float(np.float32((float(xs[i]) + float(xs[i + 1])) / 2))
            y = float(ys[j]) if rng.random() < 0.5 else float(np.float32((float(ys[j]) + float(ys[j + 1])) / 2))
        else:
            x, y = rng.uniform(-11, 11, 2)
        size = sizes[max(si, 0)] if rng.random() < 0.5 else tuple(rng.uniform(0.2, 5.0, 2)) + (1.5,)
        yaw = [0.0, math.pi / 2, PI4, -PI4, float(rng.uniform(-math.pi, math.pi))][int(rng.integers(0, 5))]
        z = float(rng.uniform(-1.5, 1.0))
        rows.append((x, y, z, *size, yaw))
        sets.append(si)
        if rng.random() < 0.1:  # an exact duplicate GT (a_arg tie -> lowest index)
            rows.append(rows[-1])
            sets.append(si)
    gt = torch.tensor(rows, dtype=torch.float32).reshape(-1, 7)
    return gt, torch.tensor(sets, dtype=torch.int64)


def anchor_bands(anchors) -> np.ndarray:
    xy = anchors.boxes[:, :2].double().numpy()
    return np.digitize(np.hypot(xy[:, 0], xy[:, 1]), np.asarray(BANDS.edges_m)) - 1


def dense_iou(a: torch.Tensor, g: torch.Tensor, params: AssignerParams) -> torch.Tensor:
    """[N, K] IoU of every anchor with every GT."""
    if params.iou is IouKind.NEAREST_BEV:
        return ops.box_iou_nearest_bev(a, g, params.nearest_convention)
    n, k = a.shape[0], g.shape[0]
    ai = torch.arange(n).repeat_interleave(k)
    gi = torch.arange(k).repeat(n)
    return ops.box_iou_3d_aligned(a[ai], g[gi], margin_compat=True).view(n, k)


def new_tally(anchors, k):
    s, b = anchors.num_sets, len(BANDS)
    return dict(
        gt_num_pos=np.zeros(k, np.int64), gt_num_forced=np.zeros(k, np.int64), gt_max_iou=np.zeros(k, np.float32),
        pos=[], num_pos_per_set=np.zeros(s, np.int64), neg=np.zeros((s, b), np.int64), ign=np.zeros((s, b), np.int64),
    )


def tally_labels(t, anchors, bands, idx, labels):
    sets = anchors.set_index.numpy()[idx]
    for lab, key in ((0, "neg"), (-1, "ign")):
        m = labels == lab
        np.add.at(t[key], (sets[m], bands[idx][m]), 1)


def dense_pcdet(anchors, gt, gt_set, params):
    k = gt.shape[0]
    t = new_tally(anchors, k)
    bands = anchor_bands(anchors)
    for s, aset in enumerate(anchors.layout.anchor_sets):
        idx = torch.nonzero(anchors.set_index == s)[:, 0]
        gidx = torch.nonzero(gt_set == s)[:, 0]
        labels = torch.full((idx.numel(),), -1)
        if gidx.numel() == 0:
            labels[:] = 0
        else:
            m = dense_iou(anchors.boxes[idx], gt[gidx], params)  # [N, Ks]
            a_arg = m.argmax(dim=1)
            a_max = m[torch.arange(idx.numel()), a_arg]
            g_max = m.max(dim=0).values.clone()
            t["gt_max_iou"][gidx.numpy()] = g_max.numpy()
            g_max[g_max == 0] = -1
            forced = (m == g_max[None, :]).any(dim=1)
            pos = forced | (a_max >= aset.matched_threshold)
            labels[a_max < aset.unmatched_threshold] = 0
            labels[pos] = 1
            credit = gidx[a_arg]
            np.add.at(t["gt_num_pos"], credit[pos].numpy(), 1)
            np.add.at(t["gt_num_forced"], credit[forced].numpy(), 1)
            t["pos"] += list(zip(credit[pos].tolist(), a_max[pos].tolist()))
            t["num_pos_per_set"][s] += int(pos.sum())
        tally_labels(t, anchors, bands, idx.numpy(), labels.numpy())
    return t


def dense_mmdet(anchors, gt, gt_set, params):
    k = gt.shape[0]
    t = new_tally(anchors, k)
    bands = anchor_bands(anchors)
    sets = anchors.layout.anchor_sets
    domains = [None] if params.class_agnostic else list(range(len(sets)))
    for s in domains:
        idx = torch.arange(anchors.num_anchors) if s is None else torch.nonzero(anchors.set_index == s)[:, 0]
        gidx = torch.arange(k) if s is None else torch.nonzero(gt_set == s)[:, 0]
        cfg = sets[0 if s is None else s]
        pos_thr, neg_thr = cfg.matched_threshold, cfg.unmatched_threshold
        min_pos = cfg.min_pos_iou if cfg.min_pos_iou is not None else params.min_pos_iou
        n = idx.numel()
        assigned = torch.full((n,), -1)
        forced_by = torch.full((n,), -1)
        if gidx.numel() == 0:
            assigned[:] = 0
        else:
            ov = dense_iou(anchors.boxes[idx], gt[gidx], params).t()  # [K, N], mmdet layout
            max_ov, argmax_ov = ov.max(dim=0)
            gt_max, gt_argmax = ov.max(dim=1)
            t["gt_max_iou"][gidx.numpy()] = gt_max.numpy()
            assigned[(max_ov >= 0) & (max_ov < neg_thr)] = 0
            pos = max_ov >= pos_thr
            assigned[pos] = argmax_ov[pos] + 1
            if params.match_low_quality:
                for i in range(gidx.numel()):  # the upstream loop, in GT index order
                    if gt_max[i] >= min_pos:
                        if params.gt_max_assign_all:
                            hit = ov[i, :] == gt_max[i]
                            assigned[hit] = i + 1
                            forced_by[hit] = i
                        else:
                            assigned[gt_argmax[i]] = i + 1
                            forced_by[gt_argmax[i]] = i
            p = assigned > 0
            local = assigned[p] - 1
            credit = gidx[local]
            iou = ov[local, torch.nonzero(p)[:, 0]]
            np.add.at(t["gt_num_pos"], credit.numpy(), 1)
            f = forced_by >= 0
            np.add.at(t["gt_num_forced"], gidx[forced_by[f]].numpy(), 1)
            t["pos"] += list(zip(credit.tolist(), iou.tolist()))
            if s is None:
                cs = gt_set[credit]
                np.add.at(t["num_pos_per_set"], cs[cs >= 0].numpy(), 1)
            else:
                t["num_pos_per_set"][s] += int(p.sum())
        tally_labels(t, anchors, bands, idx.numpy(), assigned.clamp(max=1).numpy())
    return t


def check_equal(r, t, what):
    np.testing.assert_array_equal(r.gt_num_pos, t["gt_num_pos"], err_msg=f"gt_num_pos {what}")
    np.testing.assert_array_equal(r.gt_num_forced, t["gt_num_forced"], err_msg=f"gt_num_forced {what}")
    np.testing.assert_array_equal(r.gt_max_iou, t["gt_max_iou"], err_msg=f"gt_max_iou {what}")
    np.testing.assert_array_equal(r.num_pos_per_set, t["num_pos_per_set"], err_msg=f"num_pos_per_set {what}")
    np.testing.assert_array_equal(r.num_neg_per_set_band, t["neg"], err_msg=f"neg {what}")
    np.testing.assert_array_equal(r.num_ignore_per_set_band, t["ign"], err_msg=f"ignore {what}")
    got = sorted(zip(r.pos_gt_index.tolist(), np.float32(r.pos_iou).tolist()))
    exp = sorted((g, float(np.float32(v))) for g, v in t["pos"])
    assert got == exp, f"positives {what}"
    assert all((reason is None) == (n > 0) for reason, n in zip(r.gt_zero_pos_reason, r.gt_num_pos))


@pytest.fixture(scope="module")
def anchor_sets():
    return {mh: generate_anchors(layout(mh), bands=BANDS) for mh in (True, False)}


@pytest.mark.parametrize("multihead", [True, False])
@pytest.mark.parametrize("convention", ["pcdet", "mmdet3d"])
def test_pcdet_sparse_equals_dense(anchor_sets, multihead, convention):
    anchors = anchor_sets[multihead]
    params = AssignerParams(framework=Framework.PCDET, nearest_convention=convention)
    rng = np.random.default_rng(7 + multihead)
    for frame in range(8):
        gt, gs = random_frame(rng, anchors, anchors.num_sets)
        check_equal(assign_frame(anchors, gt, gs, params, BANDS), dense_pcdet(anchors, gt, gs, params), frame)


def test_pcdet_match_height_sparse_equals_dense(anchor_sets):
    anchors = anchor_sets[True]
    params = AssignerParams(framework=Framework.PCDET, iou=IouKind.IOU_3D)
    rng = np.random.default_rng(11)
    for frame in range(4):
        gt, gs = random_frame(rng, anchors, anchors.num_sets)
        gt, gs = gt[:6], gs[:6]
        check_equal(assign_frame(anchors, gt, gs, params, BANDS), dense_pcdet(anchors, gt, gs, params), frame)


@pytest.mark.parametrize(
    "multihead,min_pos,assign_all,convention",
    [(True, 0.3, True, "mmdet3d"), (False, 0.3, False, "mmdet3d"), (True, 0.0, True, "mmdet3d"),
     (False, 0.0, False, "pcdet"), (True, None, True, "mmdet3d")],
)
def test_mmdet_per_class_sparse_equals_dense(multihead, min_pos, assign_all, convention):
    anchors = generate_anchors(layout(multihead, min_pos=min_pos), bands=BANDS)
    params = AssignerParams(framework=Framework.MMDET, gt_max_assign_all=assign_all, min_pos_iou=0.2,
                            nearest_convention=convention)
    rng = np.random.default_rng(23)
    for frame in range(7):
        gt, gs = random_frame(rng, anchors, anchors.num_sets)
        check_equal(assign_frame(anchors, gt, gs, params, BANDS), dense_mmdet(anchors, gt, gs, params), frame)


@pytest.mark.parametrize("min_pos,assign_all", [(0.3, True), (0.0, True), (0.0, False)])
def test_mmdet_class_agnostic_sparse_equals_dense(min_pos, assign_all):
    anchors = generate_anchors(layout(False, agnostic=True, min_pos=min_pos), bands=BANDS)
    params = AssignerParams(framework=Framework.MMDET, class_agnostic=True, gt_max_assign_all=assign_all,
                            nearest_convention="mmdet3d")
    rng = np.random.default_rng(5)
    for frame in range(8):
        gt, gs = random_frame(rng, anchors, anchors.num_sets)
        check_equal(assign_frame(anchors, gt, gs, params, BANDS), dense_mmdet(anchors, gt, gs, params), frame)


def test_iou_values_against_plain_python_floats(anchor_sets):
    """A few candidate IoUs recomputed with Python floats (float64) from the anchor/GT numbers."""
    anchors = anchor_sets[True]
    gt = torch.tensor([[0.3, -0.2, 0.0, 3.7, 1.9, 1.5, 0.1], [4.1, 5.2, 0.0, 1.1, 2.3, 1.0, 1.2]])
    r = assign_frame(anchors, gt, torch.tensor([0, 1]), AssignerParams(), BANDS)
    assert r.num_pos > 0
    boxes = anchors.boxes.double().numpy()
    for gi, g in enumerate(gt.double().numpy()):
        # nearest-BEV by hand: |yaw| < pi/4 keeps (dx, dy), else swapped
        gdx, gdy = (g[3], g[4]) if abs(g[6]) < math.pi / 4 else (g[4], g[3])
        for p_gt, p_iou in zip(r.pos_gt_index, r.pos_iou):
            if p_gt != gi:
                continue
            best = 0.0
            for a in boxes[(anchors.set_index == gi).numpy()]:  # brute force over the set in float64
                adx, ady = (a[3], a[4]) if abs(a[6]) < math.pi / 4 else (a[4], a[3])
                ox = min(a[0] + adx / 2, g[0] + gdx / 2) - max(a[0] - adx / 2, g[0] - gdx / 2)
                oy = min(a[1] + ady / 2, g[1] + gdy / 2) - max(a[1] - ady / 2, g[1] - gdy / 2)
                inter = max(ox, 0.0) * max(oy, 0.0)
                best = max(best, inter / (adx * ady + gdx * gdy - inter))
            assert float(r.gt_max_iou[gi]) == pytest.approx(best, rel=1e-5)
            assert float(p_iou) <= best * (1 + 1e-5)
