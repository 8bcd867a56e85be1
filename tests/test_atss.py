"""OpenPCDet ATSS assigner: hand-computed thresholds, the transposed inside test, forced matches, a brute-force
reference written independently here (shapely IoU, plain Python loops)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from assignaudit.assign.atss import atss_assign
from assignaudit.errors import ConfigError, DataError


def _poly(b) -> Polygon:
    x, y, dx, dy, yaw = float(b[0]), float(b[1]), float(b[3]), float(b[4]), float(b[6])
    c, s = math.cos(yaw), math.sin(yaw)
    pts = [(x + c * u - s * v, y + s * u + c * v) for u, v in
           ((dx / 2, dy / 2), (-dx / 2, dy / 2), (-dx / 2, -dy / 2), (dx / 2, -dy / 2))]
    return Polygon(pts)


def _iou(a, b) -> float:
    pa, pb = _poly(a), _poly(b)
    inter = pa.intersection(pb).area
    return inter / max(pa.area + pb.area - inter, 1e-8)


def _box(x, y, z, dx, dy, dz=1.0, yaw=0.0):
    return [x, y, z, dx, dy, dz, yaw]


def test_threshold_and_3d_distance_on_hand_computed_candidates():
    # GT: 2 x 2 square at the origin. Anchor 0 has the same BEV footprint but sits 5 m higher, so it is the farthest
    # in 3D (not a candidate) although its BEV IoU is 1. Anchors 1-4 slide along x: BEV IoU 4/4, 3/5, 2/6, 1/7.
    anchors = torch.tensor([_box(0, 0, 5, 2, 2), _box(0, 0, 0, 2, 2), _box(0.5, 0, 0, 2, 2), _box(1.0, 0, 0, 2, 2),
                            _box(1.5, 0, 0, 2, 2)], dtype=torch.float64)
    gt = torch.tensor([_box(0, 0, 0, 2, 2)], dtype=torch.float64)
    res = atss_assign(anchors, gt, torch.tensor([3]), topk=4)
    ious = [1.0, 3 / 5, 2 / 6, 1 / 7]  # candidates 1..4, by hand
    t = statistics.mean(ious) + statistics.stdev(ious) + 1e-6  # stdev: the unbiased N-1 estimator
    assert res.threshold.item() == pytest.approx(t, abs=1e-12)
    assert sorted(res.candidates[:, 0].tolist()) == [1, 2, 3, 4]
    # Only IoU 1 >= t (~0.90); anchor 0 is forced: it ties anchor 1 at IoU 1 and is the first maximal index.
    assert res.positive.tolist() == [True, True, False, False, False]
    assert res.forced.tolist() == [True, False, False, False, False]
    assert res.labels.tolist() == [3, 3, -1, -1, -1]
    assert res.iou[:2].tolist() == pytest.approx([1.0, 1.0])


def _elongated_case():
    # GT 4 m x 1 m along +x. Anchor 0 (2 x 1 at the centre, IoU 0.5) and anchor 1 (1.6 x 1 at x = 1.2, IoU 0.4)
    # pass the threshold; six far anchors have IoU 0. Anchor 1's centre is inside the GT (|1.2| <= dx/2 = 2) but
    # not under the transposed upstream test (|1.2| <= dy/2 = 0.5).
    anchors = torch.tensor([_box(0, 0, 0, 2, 1), _box(1.2, 0, 0, 1.6, 1)]
                           + [_box(x, y, 0, 1, 1) for x, y in ((0, 3), (0, -3), (0, 5), (0, -5), (6, 0), (-6, 0))],
                           dtype=torch.float64)
    gt = torch.tensor([_box(0, 0, 0, 4, 1)], dtype=torch.float64)
    return anchors, gt


def test_transposed_inside_test_changes_elongated_gt():
    anchors, gt = _elongated_case()
    ious = [0.5, 0.4] + [0.0] * 6
    t = statistics.mean(ious) + statistics.stdev(ious) + 1e-6  # ~0.32: both 0.5 and 0.4 pass
    correct = atss_assign(anchors, gt, torch.tensor([0]), topk=8)
    quirk = atss_assign(anchors, gt, torch.tensor([0]), topk=8, upstream_quirks=True)
    assert correct.threshold.item() == pytest.approx(t, abs=1e-12)
    assert torch.nonzero(correct.positive).flatten().tolist() == [0, 1]
    assert torch.nonzero(quirk.positive).flatten().tolist() == [0]
    assert correct.iou[1].item() == pytest.approx(0.4, abs=1e-12)


def test_rotated_gt_inside_test_uses_heading():
    # The same case rotated by 90 degrees: the long side now runs along y, the answer must not change.
    anchors, gt = _elongated_case()
    rot = anchors.clone()
    rot[:, 0], rot[:, 1] = -anchors[:, 1], anchors[:, 0]
    rot[:, 6] = math.pi / 2
    gt_rot = gt.clone()
    gt_rot[:, 6] = math.pi / 2
    res = atss_assign(rot, gt_rot, torch.tensor([0]), topk=8)
    assert torch.nonzero(res.positive).flatten().tolist() == [0, 1]
    assert torch.nonzero(atss_assign(rot, gt_rot, torch.tensor([0]), topk=8,
                                     upstream_quirks=True).positive).flatten().tolist() == [0]


def test_forced_matches_zero_iou_and_shared_argmax():
    anchors = torch.tensor([_box(10, 10, 0, 1, 1), _box(0, 0, 0, 2, 2), _box(3, 0, 0, 2, 2)], dtype=torch.float32)
    # GT 0 and GT 1 both have anchor 1 as their best anchor; GT 2 overlaps nothing and forces anchor 0 at IoU 0.
    gt = torch.tensor([_box(0.2, 0, 0, 2, 2), _box(-0.3, 0, 0, 2, 2), _box(-30, -30, 0, 1, 1)], dtype=torch.float32)
    res = atss_assign(anchors, gt, torch.tensor([5, 6, 7]), topk=1)  # topk 1: std NaN, only forced matches remain
    assert torch.isnan(res.threshold).all()
    assert res.assigned_gt.tolist() == [2, 1, -1]  # shared anchor 1: the last GT wins
    assert res.forced.tolist() == [True, True, False]
    assert res.labels.tolist() == [7, 6, -1]
    assert res.iou[0].item() == 0.0
    assert res.iou[1].item() == pytest.approx(_iou(gt[1], anchors[1]), abs=1e-6)


def test_empty_gt_all_background():
    anchors = torch.tensor([_box(0, 0, 0, 1, 1), _box(2, 0, 0, 1, 1)], dtype=torch.float32)
    res = atss_assign(anchors, torch.zeros((0, 7)), torch.zeros(0, dtype=torch.int64), topk=9)
    assert res.num_pos == 0 and res.assigned_gt.tolist() == [-1, -1] and res.labels.tolist() == [-1, -1]


def _reference(anchors: np.ndarray, gt: np.ndarray, topk: int, quirk: bool) -> list[int]:
    """ATSS written from the spec with loops, shapely IoU and stable sorts (independent of the code under test)."""
    n_a, n_g = len(anchors), len(gt)
    iou = np.array([[_iou(a, g) for g in gt] for a in anchors])
    assigned = [-1] * n_a
    best = [-math.inf] * n_a
    for j in range(n_g):
        d = [math.dist(anchors[i, :3], gt[j, :3]) for i in range(n_a)]
        cand = sorted(range(n_a), key=lambda i: (d[i], i))[:topk]
        vals = [iou[i, j] for i in cand]
        t = statistics.mean(vals) + statistics.stdev(vals) + 1e-6
        c, s = math.cos(gt[j, 6]), math.sin(gt[j, 6])
        hx, hy = (gt[j, 4] / 2, gt[j, 3] / 2) if quirk else (gt[j, 3] / 2, gt[j, 4] / 2)
        for i in cand:
            ox, oy = anchors[i, 0] - gt[j, 0], anchors[i, 1] - gt[j, 1]
            xl, yl = ox * c + oy * s, -ox * s + oy * c
            if iou[i, j] >= t and abs(xl) <= hx and abs(yl) <= hy and iou[i, j] > best[i]:
                best[i], assigned[i] = iou[i, j], j
    for j in range(n_g):
        assigned[int(np.argmax(iou[:, j]))] = j
    return assigned


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("quirk", [False, True])
def test_matches_bruteforce_reference(seed, quirk):
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(0, 12, 0.8), np.arange(0, 8, 0.8), indexing="ij")
    n = xs.size
    anchors = np.stack([xs.ravel(), ys.ravel(), np.full(n, -1.0), np.full(n, 1.9), np.full(n, 0.8),
                        np.full(n, 1.6), np.where(np.arange(n) % 2, 1.57, 0.0)], axis=1)
    k = 5
    gt = np.stack([rng.uniform(1, 11, k), rng.uniform(1, 7, k), rng.uniform(-1.5, -0.5, k), rng.uniform(0.5, 5, k),
                   rng.uniform(0.4, 2.5, k), rng.uniform(1, 3, k), rng.uniform(-math.pi, math.pi, k)], axis=1)
    res = atss_assign(torch.from_numpy(anchors), torch.from_numpy(gt), torch.arange(k), topk=9,
                      upstream_quirks=quirk)
    assert res.assigned_gt.tolist() == _reference(anchors, gt, 9, quirk)


def test_does_not_mutate_inputs():
    anchors, gt = _elongated_case()
    a0, g0 = anchors.clone(), gt.clone()
    atss_assign(anchors, gt, torch.tensor([0]), topk=8)
    assert torch.equal(anchors, a0) and torch.equal(gt, g0)


def test_bad_input_one_line_errors():
    anchors, gt = _elongated_case()
    with pytest.raises(ConfigError, match="topk") as e:
        atss_assign(anchors, gt, torch.tensor([0]), topk=0)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="exceeds the number of anchors"):
        atss_assign(anchors, gt, torch.tensor([0]), topk=9)
    with pytest.raises(DataError, match="gt_labels"):
        atss_assign(anchors, gt, torch.tensor([0, 1]), topk=8)
    with pytest.raises(DataError, match="anchors"):
        atss_assign(anchors[:, :5], gt, torch.tensor([0]), topk=8)
