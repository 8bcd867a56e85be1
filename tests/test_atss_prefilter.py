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


@pytest.fixture(scope="module")
def layout_and_frames():
    from assignaudit.assign.anchors import generate_anchors
    from assignaudit.config import load_config
    from assignaudit.sources.open import open_source

    cfg = load_config(None, [("assigner.framework", "atss"), ("assigner.iou", "bev")])
    anchors = generate_anchors(cfg.anchors)
    frames = []
    for i, f in enumerate(open_source().frames()):
        if i % 3:
            continue  # 8 of the 24 fixture frames keep the test fast
        b = f.boxes_lidar
        pcr = cfg.anchors.point_cloud_range
        inside = (b[:, 0] > pcr[0]) & (b[:, 0] < pcr[3]) & (b[:, 1] > pcr[1]) & (b[:, 1] < pcr[4])
        g = torch.as_tensor(b[inside][:, :7], dtype=torch.float32)
        g = torch.cat([g, torch.tensor([[300.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.3]])])  # far outside: no pair at all
        frames.append(g)
    return anchors, frames


def test_grid_pairs_cover_the_index_query_and_give_the_same_assignment(layout_and_frames) -> None:
    from assignaudit.assign.assigner import _atss_index, _atss_pairs

    anchors, frames = layout_and_frames
    index = _atss_index(anchors)
    labels = torch.zeros(0, dtype=torch.int64)
    for g in frames:
        labels = torch.zeros(g.shape[0], dtype=torch.int64)
        q_g, q_a = index.aabb.query(bev_aabb(g, index.aabb_pad), ordered=False)
        p_g, p_a = _atss_pairs(anchors, g)
        n = anchors.num_anchors
        grid = set((p_g * n + p_a).tolist())
        assert set((q_g * n + q_a).tolist()) <= grid  # a superset of the generic query's pairs
        assert len(grid) == p_g.numel()  # and no pair twice
        ref = atss_mod.atss_assign_sets(anchors.boxes, g, labels, 9, index=index, margin_compat=True)
        new = atss_mod.atss_assign_sets(anchors.boxes, g, labels, 9, index=index, margin_compat=True,
                                        pairs=(p_g, p_a))
        for field in ("assigned_gt", "iou", "forced", "candidates", "threshold", "gt_max_iou"):
            a, b = getattr(ref, field), getattr(new, field)
            assert torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                         and torch.equal(a.nan_to_num(), b.nan_to_num())), field
    assert labels.numel() > 10
