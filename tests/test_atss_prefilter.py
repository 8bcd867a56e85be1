"""The trigonometry-free AABB pre-filter of ATSS's forced-match pruning (`assignaudit.assign.atss._aabb_inter_bound`)
never rules out a pair whose kernel IoU reaches the floor: the same random pairs as the pruning test in
test_atss.py, with the bound fed from the boxes' bounding rectangles exactly as `atss_assign_sets` does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assignaudit import ops
from assignaudit.assign import atss as atss_mod
from assignaudit.ops.rotated import MARGIN, bev_aabb


def _pairs(n: int = 20000, seed: int = 5):
    rng = np.random.default_rng(seed)
    a = np.column_stack([rng.uniform(-60, 60, n), rng.uniform(-60, 60, n), rng.uniform(-2, 0, n),
                         rng.uniform(0.3, 12, n), rng.uniform(0.3, 3, n), rng.uniform(0.5, 4, n),
                         rng.choice([0.0, 1.57], n)])
    g = a.copy()
    g[:, 0:2] += rng.normal(0, 1.0, (n, 2)) * rng.choice([0.0, 0.01, 1.0, 3.0], (n, 1))
    g[:, 2] += rng.normal(0, 0.5, n)
    g[:, 3:6] *= rng.choice([1.0, 0.5, 1.3], (n, 3)) * rng.uniform(0.9, 1.1, (n, 3))
    g[:, 6] += rng.choice([0.0, 1e-4, 0.02, 0.1, rng.uniform(-3, 3)], n)
    return torch.tensor(a, dtype=torch.float32), torch.tensor(g, dtype=torch.float32)


@pytest.mark.parametrize("margin_compat,iou_3d", [(True, False), (False, False), (True, True)])
def test_prefilter_keeps_every_pair_that_reaches_the_floor(margin_compat: bool, iou_3d: bool) -> None:
    a_t, g_t = _pairs()
    kernel = ops.box_iou_3d_aligned if iou_3d else ops.box_iou_bev_aligned
    iou = kernel(a_t, g_t, margin_compat=margin_compat)
    pad = 1.5 * MARGIN if margin_compat else 0.0  # as AtssAnchorIndex.build
    inter = atss_mod._aabb_inter_bound(bev_aabb(a_t, pad), bev_aabb(g_t, pad), pad, margin_compat)
    floor = iou.double() * (1 - 1e-6)
    with_pre = atss_mod._may_reach(a_t, g_t, floor, margin_compat, iou_3d, inter)
    without = atss_mod._may_reach(a_t, g_t, floor, margin_compat, iou_3d)
    assert bool((with_pre | (iou == 0)).all()), iou[~with_pre & (iou > 0)][:5]
    assert bool((with_pre <= without).all())  # a pre-filter: it only removes pairs
    # The bound itself: never below the kernel's BEV intersection (up to the relative slack the caller adds).
    bev = ops.bev_intersection_aligned(a_t, g_t, margin_compat=margin_compat).double()
    parallel = torch.sin(2 * (a_t[:, 6] - g_t[:, 6]).double()).abs() < atss_mod._PARALLEL_SIN2
    assert bool(((inter * (1 + atss_mod._BOUND_REL) >= bev) | parallel).all())


def test_prefilter_prunes_far_pairs_cheaply() -> None:
    a_t, g_t = _pairs(5000, seed=9)
    g_t[:, 0] += 40.0  # far apart: nothing can reach any positive floor
    inter = atss_mod._aabb_inter_bound(bev_aabb(a_t, 0.015), bev_aabb(g_t, 0.015), 0.015, True)
    assert bool((inter == 0).all())
    keep = atss_mod._may_reach(a_t, g_t, torch.full((5000,), 0.01, dtype=torch.float64), True, False, inter)
    parallel = torch.sin(2 * (a_t[:, 6] - g_t[:, 6]).double()).abs() < atss_mod._PARALLEL_SIN2
    assert bool((keep == parallel).all())  # only the never-pruned nearly parallel pairs survive
