"""3D-BoNet association cost (assign/bonet.py): hand-worked values, a per-point loop reference, and the match
against scipy's linear_sum_assignment and a brute force over permutations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from assignaudit.assign.bonet import bonet_cost, bonet_match, box_vertices
from assignaudit.errors import DataError


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_bonet_cost_by_hand():
    # GT [0, 2]^3; points (1, 1, 1) inside and (5, 5, 5) outside.
    # pred 0 = the GT: q = sigmoid(20) inside (clip of 100 * 1), sigmoid(-20) outside -> sIoU ~ 1, CE ~ 0, L2 0.
    # pred 1 shifted +1 m in x: vertex L2 = mean(1, 0, 0, 1, 0, 0) = 1/3; q(1,1,1) = sigmoid(0) = 0.5 (on its x
    # face), q(5,5,5) ~ 0 -> TP 0.5, FN 0.5 -> sIoU 0.5; CE = (-log 0.5 + ~0) / 2.
    gt = t([[0, 0, 0, 2, 2, 2]])
    pred = t([[0, 0, 0, 2, 2, 2], [1, 0, 0, 3, 2, 2]])
    pts = t([[1, 1, 1], [5, 5, 5]])
    c = bonet_cost(pred, gt, pts)
    s20 = 1 / (1 + math.exp(-20))
    np.testing.assert_allclose(c.vertex_l2[:, 0].numpy(), [0, 1 / 3], atol=1e-12)
    np.testing.assert_allclose(c.soft_iou[:, 0].numpy(), [s20 / (1 + 1e-6), 0.5 / (1 + 1e-6)], atol=1e-8)
    ce1 = (-math.log(0.5 + 1e-8) - math.log(1 - (1 - s20) + 1e-8)) / 2
    np.testing.assert_allclose(c.cross_entropy[1, 0].item(), ce1, atol=1e-8)
    np.testing.assert_allclose(c.total[1, 0].item(), 1 / 3 - 0.5 / (1 + 1e-6) + ce1, atol=1e-8)
    assert c.total[0, 0] < c.total[1, 0]
    rows, cols = bonet_match(c.total)
    assert rows.tolist() == [0] and cols.tolist() == [0]


def loop_cost(pred, gt, pts):
    q_n, k_n = len(pred), len(gt)
    out = np.zeros((q_n, k_n))
    for i in range(q_n):
        q = []
        for p in pts:
            per = [1 / (1 + math.exp(-max(-20.0, min(20.0, 100 * (pred[i][a] - p[a]) * (p[a] - pred[i][a + 3])))))
                   for a in range(3)]
            q.append(min(per))
        for j in range(k_n):
            g = [float(all((gt[j][a] - p[a]) * (p[a] - gt[j][a + 3]) >= 0 for a in range(3))) for p in pts]
            tp = sum(a * b for a, b in zip(q, g))
            fp, fn = sum(q) - tp, sum(g) - tp
            siou = tp / (tp + fp + fn + 1e-6)
            ce = sum(-(b * math.log(a + 1e-8) + (1 - b) * math.log(1 - a + 1e-8)) for a, b in zip(q, g)) / len(pts)
            l2 = sum((pred[i][d] - gt[j][d]) ** 2 for d in range(6)) / 6
            out[i, j] = l2 - siou + ce
    return out


def test_bonet_cost_and_match_against_loop_and_scipy():
    rng = np.random.default_rng(11)
    k, q = 5, 8
    gt_boxes = np.column_stack([rng.uniform(-8, 8, (k, 2)), rng.uniform(-1, 1, k), rng.uniform(1, 4, (k, 2)),
                                rng.uniform(1, 2, k), rng.uniform(-3, 3, k)])
    gt = box_vertices(torch.from_numpy(gt_boxes)).numpy()
    pred = np.concatenate([gt[rng.permutation(k)] + rng.normal(0, 0.4, (k, 6)), rng.uniform(-8, 8, (q - k, 6))])
    pred = np.concatenate([np.minimum(pred[:, :3], pred[:, 3:]), np.maximum(pred[:, :3], pred[:, 3:])], 1)
    pts = np.concatenate([rng.uniform(-9, 9, (300, 3)) * [1, 1, 0.3],
                          (gt[:, :3] + gt[:, 3:]).repeat(20, 0) / 2 + rng.normal(0, 0.5, (k * 20, 3))])
    c = bonet_cost(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(pts)).total.numpy()
    ref = loop_cost(pred.tolist(), gt.tolist(), pts.tolist())
    np.testing.assert_allclose(c, ref, atol=1e-9)
    rows, cols = bonet_match(torch.from_numpy(c))
    r2, c2 = linear_sum_assignment(ref)
    assert rows.tolist() == r2.tolist() and cols.tolist() == c2.tolist()
    best = min(sum(ref[p[j], j] for j in range(k)) for p in itertools.permutations(range(q), k))
    assert ref[rows, cols].sum() == pytest.approx(best, abs=1e-12)


def test_bonet_bad_input():
    v = t([[0, 0, 0, 1, 1, 1]])
    with pytest.raises(DataError, match="vertices"):
        bonet_cost(t([[0, 0, 0, 1, 1]]), v, t([[0, 0, 0]]))
    with pytest.raises(DataError, match="empty"):
        bonet_cost(v, v, torch.zeros((0, 3), dtype=torch.float64))
    with pytest.raises(DataError, match="non-finite"):
        bonet_match(np.array([[np.nan]]))
