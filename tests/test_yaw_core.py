"""`assignaudit.yaw` algorithms on synthetic arrays, each against an independent computation:
the devkit's own functions, naive loops written here, shapely, numpy's histogram, or numbers derived by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shapely import affinity
from shapely.geometry import box as shapely_box

from assignaudit.bands import Bands
from assignaudit.yaw.analysis import EvalData, EvalGT, EvalPreds, YawOptions, analyse
from assignaudit.yaw.matching import devkit_order, greedy_match, match_center
from assignaudit.yaw.nms import NmsSettings, apply_nms, duplicate_flags
from assignaudit.yaw.residuals import (
    devkit_angle_diff, hist_bin, hist_edges, is_flip, is_swap_90, wrap_residual,
)

# ---------------------------------------------------------------------------------------------------------------------
# residuals
# ---------------------------------------------------------------------------------------------------------------------


def test_wrap_residual_hand_values():
    pi = math.pi
    got = wrap_residual(np.array([0.0, pi, -pi, 3 * pi / 2, -3 * pi / 2, 2 * pi, 0.1 - 2 * pi, 5 * pi]))
    want = np.array([0.0, pi, pi, -pi / 2, pi / 2, 0.0, 0.1, pi])
    np.testing.assert_allclose(got, want, atol=1e-12)
    r = wrap_residual(np.random.default_rng(0).uniform(-20, 20, 10_000))
    assert (r > -pi).all() and (r <= pi).all()


def test_flip_and_swap_buckets_by_hand():
    deg = np.radians([0, 59.9, 60, 90, 120, 120.1, 149.9, 150, 180, -150, -90])
    assert is_flip(deg, 150).tolist() == [False] * 7 + [True, True, True, False]
    assert is_swap_90(deg, 30).tolist() == [False, False, True, True, True, False, False, False, False, False, True]


def test_angle_diff_equals_devkit():
    from nuscenes.eval.common.utils import angle_diff

    rng = np.random.default_rng(1)
    x, y = rng.uniform(-4, 4, 500), rng.uniform(-4, 4, 500)
    for period in (np.pi, 2 * np.pi):
        want = np.array([angle_diff(a, b, period) for a, b in zip(x, y)])
        np.testing.assert_array_equal(devkit_angle_diff(x, y, period), want)


def test_histogram_bins_equal_numpy():
    rng = np.random.default_rng(2)
    r = np.concatenate([wrap_residual(rng.uniform(-4, 4, 2000)), [math.pi, -math.pi + 1e-15, 0.0]])
    for bins in (72, 5):
        want, _ = np.histogram(r, bins=hist_edges(bins))
        np.testing.assert_array_equal(np.bincount(hist_bin(r, bins), minlength=bins), want)


# ---------------------------------------------------------------------------------------------------------------------
# matching: naive oracle of the devkit's loop, and the devkit itself for the AOE
# ---------------------------------------------------------------------------------------------------------------------


def _naive_devkit_match(pxy, pgrp, score, gxy, ggrp, th):
    """The devkit's accumulate loop, literally: sorted((score, i))[::-1], nearest untaken GT with strict <."""
    sortind = [i for (v, i) in sorted((v, i) for (i, v) in enumerate(score))][::-1]
    taken, match = set(), [-1] * len(score)
    for i in sortind:
        best, best_d = None, np.inf
        for j in range(len(gxy)):
            if ggrp[j] == pgrp[i] and j not in taken:
                d = np.linalg.norm(pxy[i] - gxy[j])
                if d < best_d:
                    best, best_d = j, d
        if best_d < th:
            taken.add(best)
            match[i] = best
    return np.array(match)


def _random_scene(seed, n_samples=12, n_cls=3, ties=True):
    rng = np.random.default_rng(seed)
    g_s, g_c, g_xy, p_s, p_c, p_xy = [], [], [], [], [], []
    for s in range(n_samples):
        ng = int(rng.integers(0, 12))
        xy = rng.uniform(-15, 15, (ng, 2))
        cls = rng.integers(0, n_cls, ng)
        g_s += [s] * ng
        g_c += cls.tolist()
        g_xy += xy.tolist()
        for _ in range(int(rng.integers(0, 25))):
            if ng and rng.random() < 0.7:
                k = int(rng.integers(ng))
                p_xy.append((xy[k] + rng.normal(0, 1.0, 2)).tolist())
                p_c.append(int(cls[k]))
            else:
                p_xy.append(rng.uniform(-15, 15, 2).tolist())
                p_c.append(int(rng.integers(n_cls)))
            p_s.append(s)
    score = rng.integers(0, 6, len(p_s)) / 5.0 if ties else rng.random(len(p_s))
    return (np.array(g_s), np.array(g_c), np.array(g_xy).reshape(-1, 2), rng.uniform(-np.pi, np.pi, len(g_s)),
            np.array(p_s), np.array(p_c), np.array(p_xy).reshape(-1, 2), score, rng.uniform(-np.pi, np.pi, len(p_s)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_center_matching_equals_devkit_loop(seed):
    g_s, g_c, g_xy, _, p_s, p_c, p_xy, score, _ = _random_scene(seed)
    pgrp, ggrp = p_s * 3 + p_c, g_s * 3 + g_c
    order = devkit_order(score, np.arange(len(score)))
    for th in (0.5, 2.0):
        match, dist = match_center(p_xy, pgrp, order, g_xy, ggrp, th)
        np.testing.assert_array_equal(match, _naive_devkit_match(p_xy, pgrp, score, g_xy, ggrp, th))
        m = match >= 0
        assert (dist[m] < th).all() and np.isnan(dist[~m]).all()


@pytest.mark.parametrize("seed", [3, 4])
def test_aoe_equals_devkit_accumulate(seed):
    """Our whole AOE path (order, matching, residual period, interpolation) against accumulate + calc_tp."""
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.algo import accumulate, calc_tp
    from nuscenes.eval.detection.data_classes import DetectionBox

    from assignaudit.conventions import yaw_to_quaternion

    classes = ("car", "barrier", "traffic_cone")
    g_s, g_c, g_xy, g_yaw, p_s, p_c, p_xy, score, p_yaw = _random_scene(seed)
    gt, pr = EvalBoxes(), EvalBoxes()
    q_g, q_p = yaw_to_quaternion(g_yaw), yaw_to_quaternion(p_yaw)
    for s in range(12):
        gt.add_boxes(f"s{s}", [DetectionBox(sample_token=f"s{s}", translation=(*g_xy[j], 0.0), size=(1, 2, 1),
                                            rotation=tuple(q_g[j]), detection_name=classes[g_c[j]])
                               for j in np.flatnonzero(g_s == s)])
        pr.add_boxes(f"s{s}", [DetectionBox(sample_token=f"s{s}", translation=(*p_xy[i], 0.0), size=(1, 2, 1),
                                            rotation=tuple(q_p[i]), detection_name=classes[p_c[i]],
                                            detection_score=float(score[i])) for i in np.flatnonzero(p_s == s)])
    # Our rows in the devkit's EvalBoxes.all order: by sample, then list order (p_s is already sorted).
    from assignaudit.yaw.prepare import quaternion_yaw

    boxes_g = np.zeros((len(g_s), 9))
    boxes_g[:, :2] = g_xy
    boxes_p = np.zeros((len(p_s), 9))
    boxes_p[:, :2] = p_xy
    boxes_g[:, 3:6] = boxes_p[:, 3:6] = 1.0
    data = EvalData(
        sample_tokens=tuple(f"s{s}" for s in range(12)), classes=classes,
        gt=EvalGT(sample=g_s, class_id=g_c, boxes_lidar=boxes_g, xy_eval=g_xy, yaw_eval=quaternion_yaw(q_g),
                  ann_token=np.full(len(g_s), None, dtype=object)),
        preds=EvalPreds(sample=p_s, class_id=p_c, score=score, index=np.arange(len(p_s)), boxes_lidar=boxes_p,
                        xy_eval=p_xy, yaw_eval=quaternion_yaw(q_p)),
    )
    aoe = analyse(data, YawOptions()).aoe_nusc
    for name in ("car", "barrier"):
        want = calc_tp(accumulate(gt, pr, name, center_distance, 2.0), 0.1, "orient_err")
        assert aoe[name] == pytest.approx(want, abs=1e-9)
    assert math.isnan(aoe["traffic_cone"])


def _shapely_iou(a, b):
    def poly(x):
        return affinity.rotate(shapely_box(x[0] - x[3] / 2, x[1] - x[4] / 2, x[0] + x[3] / 2, x[1] + x[4] / 2),
                               x[6], origin=(x[0], x[1]), use_radians=True)
    pa, pb = poly(a), poly(b)
    inter = pa.intersection(pb).area
    return inter / (pa.area + pb.area - inter)


def test_iou_matching_equals_naive_shapely_greedy():
    rng = np.random.default_rng(5)
    n_gt, n_pred = 15, 40
    gt = np.zeros((n_gt, 9))
    gt[:, :2] = rng.uniform(-10, 10, (n_gt, 2))
    gt[:, 3:6] = [4.0, 2.0, 1.5]
    gt[:, 6] = rng.uniform(-np.pi, np.pi, n_gt)
    src = rng.integers(0, n_gt, n_pred)
    pr = gt[src].copy()
    pr[:, :2] += rng.normal(0, 0.6, (n_pred, 2))
    pr[:, 6] += rng.normal(0, 0.3, n_pred)
    score = rng.random(n_pred)
    zeros = np.zeros(n_pred, np.int64)
    data = EvalData(
        sample_tokens=("s",), classes=("car",),
        gt=EvalGT(sample=np.zeros(n_gt, np.int64), class_id=np.zeros(n_gt, np.int64), boxes_lidar=gt,
                  xy_eval=gt[:, :2], yaw_eval=gt[:, 6], ann_token=np.arange(n_gt).astype(object)),
        preds=EvalPreds(sample=zeros, class_id=zeros, score=score, index=np.arange(n_pred), boxes_lidar=pr,
                        xy_eval=pr[:, :2], yaw_eval=pr[:, 6]))
    got = analyse(data, YawOptions(match="iou", match_threshold=0.3)).predictions
    # Oracle: descending score, highest shapely IoU among untaken GT, match if > 0.3.
    taken, want = set(), {}
    for i in np.argsort(-score):
        ious = [(_shapely_iou(pr[i], gt[j]), -j) for j in range(n_gt) if j not in taken]
        best = max(ious, default=(0.0, 0))
        if best[0] > 0.3:
            taken.add(-best[1])
            want[i] = -best[1]
    got_map = {int(r.index): r.matched_ann_token for r in got.itertuples() if r.matched_ann_token is not None}
    assert got_map == want


# ---------------------------------------------------------------------------------------------------------------------
# duplicates and NMS
# ---------------------------------------------------------------------------------------------------------------------


def test_duplicate_flags_equal_brute_force():
    rng = np.random.default_rng(6)
    n = 300
    boxes = np.zeros((n, 9))
    boxes[:, :2] = rng.uniform(-6, 6, (n, 2))
    boxes[:, 3:6] = 1.0
    sample, cls = rng.integers(0, 3, n), rng.integers(0, 2, n)
    group = sample * 2 + cls
    score = rng.integers(0, 10, n) / 10.0
    order = devkit_order(score, np.arange(n))
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    got = duplicate_flags(boxes, group, sample, pos, 0.5, None)
    d = np.linalg.norm(boxes[:, None, :2] - boxes[None, :, :2], axis=-1)
    earlier_close = (d <= 0.5) & (group[:, None] == group[None]) & (pos[None, :] < pos[:, None])
    np.testing.assert_array_equal(got, earlier_close.any(axis=1))


def _nms_case(seed, n=120):
    rng = np.random.default_rng(seed)
    boxes = np.zeros((n, 9))
    boxes[:, :2] = rng.uniform(-5, 5, (n, 2))
    boxes[:, 3:6] = [2.0, 1.0, 1.0]
    boxes[:, 6] = rng.uniform(-np.pi, np.pi, n)
    return boxes, rng.random(n), np.zeros(n, np.int64), rng.integers(0, 2, n)


@pytest.mark.parametrize("seed", [7, 8])
def test_nms_leaves_no_iou_duplicates_at_or_below_its_threshold(seed):
    """The guaranteed direction: per-class rotate NMS at t leaves no same-class pair with IoU > T for T >= t."""
    boxes, score, sample, cls = _nms_case(seed)
    order = devkit_order(score, np.arange(len(score)))
    pos = np.empty(len(score), np.int64)
    pos[order] = np.arange(len(score))
    for t in (0.05, 0.2, 0.5):
        kept = apply_nms(boxes, score, sample, cls, order, NmsSettings(thresh=t))
        rows = np.flatnonzero(kept)
        for big_t in (t, min(t + 0.2, 0.95)):
            left = duplicate_flags(boxes[rows], cls[rows], sample[rows], pos[rows], 0.0, big_t)
            assert not left.any()
        # and NMS removed something with IoU > t among the originals, as it must on this dense scene
        assert duplicate_flags(boxes, cls, sample, pos, 0.0, t).any()


def test_greedy_nms_is_not_monotone_in_its_threshold():
    """Why the sweep promises no monotone kept count. Axis-aligned boxes, IoUs by hand:
    B = 2x2 square at the origin; A = 2x2 at x = -1.5: overlap 0.5 x 2 = 1, IoU(A, B) = 1 / 7 = 0.143;
    C, D = 2 x 0.8 at (0.6, +-0.6): overlap with B 1.4 x 0.8 = 1.12, IoU = 1.12 / (4 + 1.6 - 1.12) = 0.25;
    A, C, D pairwise disjoint. At t = 0.2, B survives A and suppresses C, D: 2 kept. At t = 0.1, A suppresses B,
    so C and D survive: 3 kept."""
    boxes = np.zeros((4, 9))
    boxes[:, 0:2] = [[-1.5, 0.0], [0.0, 0.0], [0.6, 0.6], [0.6, -0.6]]
    boxes[:, 3:6] = [[2.0, 2.0, 1.0], [2.0, 2.0, 1.0], [2.0, 0.8, 1.0], [2.0, 0.8, 1.0]]
    score = np.array([0.9, 0.8, 0.7, 0.6])
    order = devkit_order(score, np.arange(4))
    z = np.zeros(4, np.int64)
    kept_02 = apply_nms(boxes, score, z, z, order, NmsSettings(thresh=0.2))
    kept_01 = apply_nms(boxes, score, z, z, order, NmsSettings(thresh=0.1))
    assert kept_02.tolist() == [True, True, False, False]
    assert kept_01.tolist() == [True, False, True, True]


def test_circle_nms_uses_squared_radius():
    boxes = np.zeros((3, 9))
    boxes[:, 0] = [0.0, 1.9, 4.5]
    boxes[:, 3:6] = 1.0
    score = np.array([0.9, 0.8, 0.7])
    order = devkit_order(score, np.arange(3))
    z = np.zeros(3, np.int64)
    # radius_sq 4 (2 m): the box at 1.9 m goes, the one at 4.5 m from A (2.6 from B, which is gone) stays.
    kept = apply_nms(boxes, score, z, z, order, NmsSettings(nms_type="circle", circle_radius_sq=4.0))
    assert kept.tolist() == [True, False, True]
    # radius_sq 2 (1.41 m): nothing within, all kept; read as metres (2 m) it would drop the second box.
    kept = apply_nms(boxes, score, z, z, order, NmsSettings(nms_type="circle", circle_radius_sq=2.0))
    assert kept.tolist() == [True, True, True]


def test_analyse_does_not_mutate_inputs_and_is_deterministic():
    g_s, g_c, g_xy, g_yaw, p_s, p_c, p_xy, score, p_yaw = _random_scene(9)
    bg, bp = np.zeros((len(g_s), 9)), np.zeros((len(p_s), 9))
    bg[:, :2], bp[:, :2] = g_xy, p_xy
    bg[:, 3:6] = bp[:, 3:6] = 1.0
    bg[:, 6], bp[:, 6] = g_yaw, p_yaw
    data = EvalData(sample_tokens=tuple(map(str, range(12))), classes=("a", "b", "c"),
                    gt=EvalGT(g_s, g_c, bg, g_xy, g_yaw, np.arange(len(g_s)).astype(object)),
                    preds=EvalPreds(p_s, p_c, score, np.arange(len(p_s)), bp, p_xy, p_yaw))
    copies = [a.copy() for a in (g_xy, p_xy, bg, bp, score, p_yaw)]
    opts = YawOptions(bands=Bands((0.0, 10.0)), nms_sweep=(0.1, 0.5))
    t1, t2 = analyse(data, opts), analyse(data, opts)
    for a, b in zip((g_xy, p_xy, bg, bp, score, p_yaw), copies):
        np.testing.assert_array_equal(a, b)
    assert t1.summary.equals(t2.summary) and t1.predictions.equals(t2.predictions)
    # summaries are groupbys of the per-prediction table
    s, p = t1.summary, t1.predictions
    for c in ("a", "b", "c"):
        row = s[(s["class"] == c) & (s["band"] == "all")].iloc[0]
        pc = p[p["class"] == c]
        assert row.num_pred == len(pc)
        assert row.num_matched == pc.matched_ann_token.notna().sum()
        assert row.num_flips == pc.is_flip.sum()
        assert row.num_dup_pre_nms == pc.is_duplicate.sum()
        assert row.num_kept_nms == pc.kept_by_nms.sum()
        band_rows = s[(s["class"] == c) & (s["band"] != "all")]
        assert band_rows.num_gt.sum() == row.num_gt


def test_greedy_match_empty_inputs():
    e = np.empty(0, np.int64)
    assert greedy_match(0, 0, e, e, e, e, np.empty(0)).size == 0
    assert (greedy_match(3, 0, np.arange(3), np.zeros(3, np.int64), e, e, np.empty(0)) == -1).all()


def test_torch_is_not_required_by_callers():
    # apply_nms accepts numpy and returns numpy (torch only inside)
    boxes, score, sample, cls = _nms_case(10, n=10)
    kept = apply_nms(boxes, score, sample, cls, devkit_order(score, np.arange(10)), NmsSettings())
    assert isinstance(kept, np.ndarray) and kept.dtype == bool
    assert torch.is_tensor(torch.as_tensor(boxes))
