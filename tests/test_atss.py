"""OpenPCDet ATSS assigner: hand-computed thresholds, the transposed inside test, forced matches, a brute-force
reference written independently here (shapely IoU, plain Python loops)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from assignaudit import ops
from assignaudit.assign import AnchorLayout, AnchorSet, generate_anchors
from assignaudit.assign import atss as atss_mod
from assignaudit.assign.atss import AtssAnchorIndex, atss_assign, atss_assign_sets
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


# ------------------------------------------------------------------------------------------------------------------
# The windowed candidate search and the pruned forced-match IoU against the previous dense implementation
# ------------------------------------------------------------------------------------------------------------------


def _dense_atss_previous(anchors, gt_boxes, gt_labels, topk, *, upstream_quirks=False, margin_compat=False,
                         iou_3d=False):
    """The previous `atss_assign` (before the windowed search), kept verbatim as the reference: a dense [A, K]
    distance matrix for the candidates, the IoU of every pair whose rectangles overlap for the forced match.
    Returns (assigned_gt, iou, forced, candidates, threshold, gt_max_iou)."""
    n_a, n_g = anchors.shape[0], gt_boxes.shape[0]
    device = anchors.device
    background = torch.full((n_a,), -1, dtype=torch.int64, device=device)
    s_a, s_g, s_iou = ops.box_iou_bev_sparse(anchors, gt_boxes, min_iou=0.0, margin_compat=margin_compat)
    if iou_3d:
        s_iou = ops.box_iou_3d_aligned(anchors[s_a], gt_boxes[s_g], margin_compat=margin_compat)
        keep = s_iou > 0
        s_a, s_g, s_iou = s_a[keep], s_g[keep], s_iou[keep]
    s_key = s_a * n_g + s_g
    dist = (anchors[:, None, 0:3] - gt_boxes[None, :, 0:3]).norm(dim=-1)
    kth = dist.topk(topk, dim=0, largest=False).values[-1]
    ik, ia = (dist <= kth[None, :]).t().nonzero(as_tuple=True)
    d = dist[ia, ik]
    perm = torch.argsort(d, stable=True)
    perm = perm[torch.argsort(ik[perm], stable=True)]
    ia, ik = ia[perm], ik[perm]
    counts = torch.bincount(ik, minlength=n_g)
    rank = torch.arange(ik.shape[0]) - (torch.cumsum(counts, 0) - counts)[ik]
    cand = ia[rank < topk].view(n_g, topk).t().contiguous()
    gt_of_cand = torch.arange(n_g).expand(topk, n_g)
    c_key = (cand * n_g + gt_of_cand).reshape(-1)
    pos = torch.searchsorted(s_key, c_key).clamp_max(max(s_key.shape[0] - 1, 0))
    found = (s_key[pos] == c_key) if s_key.numel() else torch.zeros_like(c_key, dtype=torch.bool)
    cand_iou = torch.where(found, s_iou[pos] if s_iou.numel() else anchors.new_zeros(()),
                           anchors.new_zeros(())).view(topk, n_g)
    std = cand_iou.std(dim=0, unbiased=True) if topk > 1 else torch.full_like(cand_iou[0], float("nan"))
    threshold = cand_iou.mean(dim=0) + std + 1e-6
    is_pos = cand_iou >= threshold[None, :]
    off = anchors[cand.reshape(-1), 0:2] - gt_boxes[gt_of_cand.reshape(-1), 0:2]
    yaw = gt_boxes[gt_of_cand.reshape(-1), 6]
    c, s = torch.cos(yaw), torch.sin(yaw)
    x_local = off[:, 0] * c + off[:, 1] * s
    y_local = -off[:, 0] * s + off[:, 1] * c
    dims = gt_boxes[gt_of_cand.reshape(-1), 3:5]
    if upstream_quirks:
        dims = dims[:, [1, 0]]
    half = dims / 2
    inside = (x_local <= half[:, 0]) & (x_local >= -half[:, 0]) & (y_local <= half[:, 1]) & (y_local >= -half[:, 1])
    is_pos = is_pos & inside.view(topk, n_g)
    p_a, p_g, p_iou = cand[is_pos], gt_of_cand[is_pos], cand_iou[is_pos]
    best = torch.full((n_a,), float("-inf"), dtype=anchors.dtype).scatter_reduce(0, p_a, p_iou, reduce="amax")
    winner = p_iou == best[p_a]
    assigned = torch.full((n_a,), n_g, dtype=torch.int64).scatter_reduce(0, p_a[winner], p_g[winner], reduce="amin")
    assigned = torch.where(assigned == n_g, background, assigned)
    iou = torch.where(assigned >= 0, best, anchors.new_zeros(()))
    g_max = anchors.new_zeros(n_g).scatter_reduce(0, s_g, s_iou, reduce="amax", include_self=True)
    at_max = (s_iou == g_max[s_g]) & (g_max[s_g] > 0)
    g_arg = torch.zeros(n_g, dtype=torch.int64).scatter_reduce(0, s_g[at_max], s_a[at_max], reduce="amin",
                                                               include_self=False)
    forced_gt = torch.full((n_a,), -1, dtype=torch.int64).scatter_reduce(0, g_arg, torch.arange(n_g), reduce="amax",
                                                                         include_self=True)
    forced = forced_gt >= 0
    assigned = torch.where(forced, forced_gt, assigned)
    iou = torch.where(forced, g_max[forced_gt.clamp_min(0)], iou)
    return assigned, iou, forced, cand, threshold, g_max


@pytest.fixture(scope="module")
def grid_anchors():
    # pcdet multihead-style sets on a 0.8 m grid (-16..16 m, 40 x 40 positions x 2 rotations = 3,200 per set): a car,
    # a pedestrian and a bus size at different heights; sets contiguous in the flat order.
    sets = tuple(AnchorSet(n, (sz,), (0.0, 1.57), (z,), 0.6, 0.45, feature_map_stride=2)
                 for n, sz, z in (("car", (4.63, 1.97, 1.74), -0.95), ("ped", (0.73, 0.67, 1.77), -0.93),
                                  ("bus", (10.5, 2.94, 3.47), -0.09)))
    layout = AnchorLayout((-16.0, -16.0, -5.0, 16.0, 16.0, 3.0), (0.4, 0.4, 8.0), sets, multihead=True)
    a = generate_anchors(layout)
    return a.boxes, a.set_index, a.x_positions[0]


def _hard_frame(rng, xs, k):
    """GT built to stress the window and the pruning: centres on anchor positions (distance ties between the two
    rotations and between neighbours), headings parallel to the anchors (near-collinear edges in the margin
    kernel), duplicates, GT outside the grid or far off in z (the dense fallback), tiny and huge boxes."""
    g = np.column_stack([rng.uniform(-17, 17, k), rng.uniform(-17, 17, k), rng.uniform(-2.5, 0.5, k),
                         rng.uniform(0.3, 12, k), rng.uniform(0.3, 3.2, k), rng.uniform(0.6, 4, k),
                         rng.uniform(-math.pi, math.pi, k)])
    on = rng.random(k) < 0.35
    g[on, 0], g[on, 1] = rng.choice(xs, on.sum()), rng.choice(xs, on.sum())
    half = rng.random(k) < 0.1  # half-way between positions: 4 anchors at the same distance
    g[half, 0:2] = rng.choice(xs, (half.sum(), 2)) + 0.4
    axis = rng.random(k) < 0.3
    g[axis, 6] = rng.choice([0.0, 1.57, math.pi / 2, -math.pi / 2, math.pi, 1.57 + 1e-3], axis.sum())
    far_z = rng.random(k) < 0.05
    g[far_z, 2] = rng.uniform(-20, 20, far_z.sum())
    out = rng.random(k) < 0.05
    g[out, 0] = rng.choice([-1, 1], out.sum()) * rng.uniform(16.5, 30, out.sum())
    if k > 2:
        g[1] = g[0]
    return torch.tensor(g, dtype=torch.float32)


@pytest.mark.parametrize("seed", range(4))
def test_windowed_sets_equal_previous_dense_implementation(grid_anchors, seed):
    boxes, set_index, xs = grid_anchors
    rng = np.random.default_rng(100 + seed)
    index = AtssAnchorIndex.build(boxes, set_index, margin_compat=True)
    per_set = [torch.nonzero(set_index == s)[:, 0] for s in range(3)]
    for frame in range(5):
        gt = _hard_frame(rng, xs.numpy(), int(rng.integers(1, 40)))
        labels = torch.arange(gt.shape[0])
        topk = (9, 1, 20, 9, 4)[frame]
        quirks, iou_3d = bool(frame % 2), frame >= 3
        r = atss_assign_sets(boxes, gt, labels, topk, index=index, upstream_quirks=quirks, margin_compat=True,
                             iou_3d=iou_3d)
        for s, idx in enumerate(per_set):
            what = f"seed {seed} frame {frame} set {s}"
            assigned, iou, forced, cand, thr, g_max = _dense_atss_previous(
                boxes[idx], gt, labels, topk, upstream_quirks=quirks, margin_compat=True, iou_3d=iou_3d)
            assert torch.equal(r.assigned_gt[idx], assigned), what
            assert torch.equal(r.forced[idx], forced), what
            assert torch.equal(r.iou[idx], iou), what  # bit-exact, forced matches included
            assert torch.equal(r.candidates[:, s], idx[cand]), what
            assert torch.equal(r.threshold[s].nan_to_num(-1.0), thr.nan_to_num(-1.0)), what
            assert torch.equal(r.gt_max_iou[s], g_max), what
        assert torch.equal(r.labels, torch.where(r.assigned_gt >= 0, labels[r.assigned_gt.clamp_min(0)], -1))


def test_window_search_takes_the_dense_path_only_where_needed(grid_anchors):
    boxes, set_index, xs = grid_anchors
    index = AtssAnchorIndex.build(boxes, set_index)
    # Inside the grid (on a position, between positions, at the border): every window proves itself.
    inside = torch.tensor([[float(xs[3]), float(xs[7]), -1.0], [0.4, 0.4, -1.0], [15.6, -15.6, -1.0],
                           [3.3, -2.1, -3.0]], dtype=torch.float32)
    cand, fallback = atss_mod._nearest_candidates(index, boxes[:, 0:3], inside, 9)
    assert fallback == 0 and cand.shape == (9, 3 * 4)
    # 10 m beyond the grid along x: the nearest anchors form a border column longer than the window.
    far = torch.tensor([[26.0, 0.0, -1.0]], dtype=torch.float32)
    cand, fallback = atss_mod._nearest_candidates(index, boxes[:, 0:3], far, 9)
    assert fallback == 3
    # Independent check of the fallback's answer: the nearest 9 by (distance, index) with a stable sort.
    for s in range(3):
        idx = torch.nonzero(set_index == s)[:, 0]
        d = (boxes[idx, 0:3] - far).norm(dim=-1)
        assert cand[:, s].tolist() == idx[torch.argsort(d, stable=True)[:9]].tolist()


@pytest.mark.parametrize("margin_compat,iou_3d", [(True, False), (False, False), (True, True)])
def test_iou_bound_never_prunes_a_pair_that_reaches_it(margin_compat, iou_3d):
    # The pruning keeps a pair whenever its kernel IoU could reach the floor; with the floor at the pair's own IoU
    # every pair with IoU > 0 must be kept (an IoU of exactly 0 never changes a maximum and may go). Random pairs
    # near each other: general, nearly parallel, identical, nested, far apart.
    rng = np.random.default_rng(5)
    n = 20000
    a = np.column_stack([rng.uniform(-60, 60, n), rng.uniform(-60, 60, n), rng.uniform(-2, 0, n),
                         rng.uniform(0.3, 12, n), rng.uniform(0.3, 3, n), rng.uniform(0.5, 4, n),
                         rng.choice([0.0, 1.57], n)])
    g = a.copy()
    g[:, 0:2] += rng.normal(0, 1.0, (n, 2)) * rng.choice([0.0, 0.01, 1.0], (n, 1))
    g[:, 2] += rng.normal(0, 0.5, n)
    g[:, 3:6] *= rng.choice([1.0, 0.5, 1.3], (n, 3)) * rng.uniform(0.9, 1.1, (n, 3))
    g[:, 6] += rng.choice([0.0, 1e-4, 0.02, 0.1, rng.uniform(-3, 3)], n)
    a_t, g_t = torch.tensor(a, dtype=torch.float32), torch.tensor(g, dtype=torch.float32)
    kernel = ops.box_iou_3d_aligned if iou_3d else ops.box_iou_bev_aligned
    iou = kernel(a_t, g_t, margin_compat=margin_compat)
    assert (iou > 0.3).sum() > 2000  # the test covers overlapping pairs, not only disjoint ones
    floor = iou.double() * (1 - 1e-6)  # as atss_assign_sets compares with the best candidate
    keep = atss_mod._may_reach(a_t, g_t, floor, margin_compat, iou_3d)
    assert bool((keep | (iou == 0)).all()), iou[~keep][:5]
    # And it does prune: overlapping pairs that are not nearly parallel (those always pass) mostly cannot reach 1.5x
    # their own IoU (the margin kernel's bound is the exact clip of the grown boxes; without it only the projections).
    m = (torch.sin(2 * (a_t[:, 6] - g_t[:, 6]).double()).abs() > 0.1) & (iou > 0.1)
    above = atss_mod._may_reach(a_t[m], g_t[m], iou[m].double() * 1.5, margin_compat, iou_3d)
    assert m.sum() > 2000 and above.float().mean() < (0.05 if margin_compat else 0.5)


def test_sets_api_errors_and_single_set_shapes(grid_anchors):
    boxes, set_index, _ = grid_anchors
    gt = torch.tensor([_box(1.0, 2.0, -1.0, 4.0, 2.0)], dtype=torch.float32)
    one = atss_assign(boxes[:50], gt, torch.tensor([0]), topk=9)
    assert one.candidates.shape == (9, 1) and one.threshold.shape == (1,) and one.gt_max_iou.shape == (1,)
    r = atss_assign_sets(boxes, gt, torch.tensor([0]), topk=9, anchor_set=set_index)
    assert r.candidates.shape == (9, 3, 1) and r.threshold.shape == (3, 1) and r.gt_max_iou.shape == (3, 1)
    assert r.forced.sum() == 3  # one forced anchor per set
    with pytest.raises(ConfigError, match="exceeds the number of anchors"):
        atss_assign_sets(boxes[:10], gt, torch.tensor([0]), topk=9, anchor_set=torch.tensor([0] * 5 + [1] * 5))
    with pytest.raises(DataError, match="index"):
        atss_assign_sets(boxes[:10], gt, torch.tensor([0]), topk=9, index=AtssAnchorIndex.build(boxes))
    with pytest.raises(DataError, match="anchor_set"):
        AtssAnchorIndex.build(boxes, set_index[:10])
