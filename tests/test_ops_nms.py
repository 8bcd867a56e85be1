"""AABB candidate pairs vs brute force; NMS, per-class NMS and circle NMS vs plain reference loops."""

import math

import numpy as np
import pytest
import shapely
import torch

from assignaudit.errors import DataError
from assignaudit.ops import AabbIndex, aabb_overlap_pairs, batched_nms_bev, circle_nms, nms_bev


def polygons(boxes: np.ndarray):
    """shapely BEV rectangles of canonical boxes (float64)."""
    b = np.asarray(boxes, dtype=np.float64)
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
    signs = np.array([(1, 1), (-1, 1), (-1, -1), (1, -1)], dtype=np.float64)
    lx = signs[None, :, 0] * b[:, 3:4] / 2
    ly = signs[None, :, 1] * b[:, 4:5] / 2
    px = b[:, 0:1] + c[:, None] * lx - s[:, None] * ly
    py = b[:, 1:2] + s[:, None] * lx + c[:, None] * ly
    return shapely.polygons(np.stack((px, py), axis=2))


def brute_pairs(a: np.ndarray, b: np.ndarray):
    ox = np.minimum(a[:, None, 2], b[None, :, 2]) > np.maximum(a[:, None, 0], b[None, :, 0])
    oy = np.minimum(a[:, None, 3], b[None, :, 3]) > np.maximum(a[:, None, 1], b[None, :, 1])
    ok_a = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    ok_b = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return np.nonzero(ox & oy & ok_a[:, None] & ok_b[None, :])


def random_xyxy(rng, n, spread, sizes):
    c = rng.uniform(-spread, spread, (n, 2))
    e = rng.choice(sizes, (n, 2)) * rng.uniform(0.5, 1.0, (n, 2))
    return np.concatenate((c - e / 2, c + e / 2), axis=1).astype(np.float32)


def test_aabb_pairs_match_brute_force_mixed_sizes():
    rng = np.random.default_rng(0)
    a = random_xyxy(rng, 700, 40, [0.3, 1.0, 4.0, 12.0])
    b = random_xyxy(rng, 900, 40, [0.4, 2.0, 5.0, 30.0])
    # Edge cases: exact touching (not a pair), zero-area, a huge box, negative coordinates only.
    a = np.concatenate((a, [[0, 0, 1, 1], [5, 5, 5, 6], [-500, -500, 500, 500], [-30, -30, -29, -29]]))
    b = np.concatenate((b, [[1, 0, 2, 1], [0, 1, 1, 2], [5, 5, 6, 6], [-29.5, -29.5, -28, -28]]))
    a, b = a.astype(np.float32), b.astype(np.float32)
    ra, rb = brute_pairs(a, b)
    for x, y in ((a, b), (b, a)):
        ia, ib = aabb_overlap_pairs(torch.from_numpy(x), torch.from_numpy(y))
        ea, eb = brute_pairs(x, y)
        assert np.array_equal(ia.numpy(), ea) and np.array_equal(ib.numpy(), eb)
    idx = AabbIndex.build(torch.from_numpy(b))  # reusable index gives the same pairs
    ia, ib = idx.query(torch.from_numpy(a))
    assert np.array_equal(ia.numpy(), ra) and np.array_equal(ib.numpy(), rb)
    touching = (ra == 700) & (rb == 900)
    assert not touching.any()


def test_aabb_pairs_empty_and_bad_input():
    e = torch.zeros(0, 4)
    ia, ib = aabb_overlap_pairs(e, torch.tensor([[0.0, 0, 1, 1]]))
    assert ia.numel() == 0 and ib.numel() == 0
    with pytest.raises(DataError, match=r"b_xyxy: expected a floating tensor of shape \[N, 4\]"):
        aabb_overlap_pairs(e, torch.zeros(3, 7))


# ---------------------------------------------------------------------------------------------------------------
# NMS against a plain greedy loop over shapely IoU
# ---------------------------------------------------------------------------------------------------------------


def reference_nms(boxes: np.ndarray, scores: np.ndarray, thr: float, pre_max=None, post_max=None):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))  # stable descending
    if pre_max is not None:
        order = order[:pre_max]
    polys = polygons(boxes)
    areas = boxes[:, 3].astype(np.float64) * boxes[:, 4]
    keep = []
    for i in order:
        if keep:
            inter = shapely.area(shapely.intersection(polys[i], polys[keep]))
            iou = inter / np.maximum(areas[i] + areas[keep] - inter, 1e-8)
            if (iou > thr).any():
                continue
        keep.append(i)
    return keep if post_max is None else keep[:post_max]


def clustered_boxes(rng, n, n_clusters=40, spread=50.0):
    centres = rng.uniform(-spread, spread, (n_clusters, 2))
    b = np.zeros((n, 7), dtype=np.float32)
    which = rng.integers(0, n_clusters, n)
    b[:, 0:2] = centres[which] + rng.normal(0, 0.8, (n, 2))
    b[:, 3:6] = rng.uniform(0.5, 5, (n, 3))
    b[:, 6] = rng.uniform(-math.pi, math.pi, n)
    return b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_reference_loop_with_score_ties(seed):
    rng = np.random.default_rng(seed)
    b = clustered_boxes(rng, 300)
    s = np.round(rng.uniform(0, 1, 300), 1).astype(np.float32)  # 11 distinct scores: many ties
    for thr, pre, post in ((0.1, None, None), (0.5, 200, 50), (0.0, None, None)):
        got = nms_bev(torch.from_numpy(b), torch.from_numpy(s), thr, pre, post).tolist()
        assert got == reference_nms(b, s, thr, pre, post)


def test_nms_margin_mode_suppresses_5mm_neighbour():
    b = torch.tensor([[0, 0, 0, 2, 2, 1, 0], [2.005, 0, 0, 2, 2, 1, 0]], dtype=torch.float32)
    s = torch.tensor([0.9, 0.8])
    assert nms_bev(b, s, 0.0).tolist() == [0, 1]  # exact IoU is 0: nothing to suppress
    assert nms_bev(b, s, 0.0, margin_compat=True).tolist() == [0]  # the 1 cm margin sees a tiny overlap


def test_batched_nms_per_class_and_global_post_max():
    rng = np.random.default_rng(5)
    b = clustered_boxes(rng, 240, n_clusters=12, spread=20)
    b[:, 0:2] -= 60  # LiDAR coordinates can be negative: no offset trick may be involved
    s = np.round(rng.uniform(0, 1, 240), 2).astype(np.float32)
    lab = rng.integers(0, 3, 240)
    tb, ts, tl = torch.from_numpy(b), torch.from_numpy(s), torch.from_numpy(lab)
    per_class = {}
    for c in range(3):
        idx = np.nonzero(lab == c)[0]
        per_class[c] = [int(idx[k]) for k in reference_nms(b[idx], s[idx], 0.2, pre_max=30)]
    merged = sorted((i for ks in per_class.values() for i in ks), key=lambda i: (-s[i], i))
    got = batched_nms_bev(tb, ts, tl, 0.2, pre_max=30).tolist()
    assert got == merged
    # OpenPCDet: post_max per class; mmdet3d: global top post_max.
    capped = sorted((i for ks in per_class.values() for i in ks[:5]), key=lambda i: (-s[i], i))
    assert batched_nms_bev(tb, ts, tl, 0.2, pre_max=30, post_max=5).tolist() == capped
    assert batched_nms_bev(tb, ts, tl, 0.2, pre_max=30, post_max=5, post_max_per_class=False).tolist() == merged[:5]
    # Cross-class overlaps never suppress: with one label everything collapses further.
    single = batched_nms_bev(tb, ts, torch.zeros_like(tl), 0.2).tolist()
    assert single == nms_bev(tb, ts, 0.2).tolist()
    assert len(single) < len(batched_nms_bev(tb, ts, tl, 0.2))


def test_circle_nms_squared_radius_semantics():
    # Centres placed by hand; min_radius_sq = 1.0 (m^2).
    c = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.01], [-0.6, -0.8], [5.0, 5.0], [5.0, 6.01]])
    s = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.5])
    # 1: d^2 = 1.0 <= 1 -> suppressed.  2: d^2 = 1.0201 > 1 from 0 -> kept.  3: d^2 = 0.36 + 0.64 = 1.0 -> suppressed.
    # 4, 5: tie in score, lower index first; d = 1.01 apart -> both kept.
    assert circle_nms(c, s, 1.0).tolist() == [0, 2, 4, 5]
    assert circle_nms(c, s, 1.0, post_max=2).tolist() == [0, 2]
    # The configs' min_radius values act as m^2: 4 means 2 m, so a neighbour 1.9 m away is suppressed.
    c2 = torch.tensor([[-40.0, 10.0, 0.5], [-41.9, 10.0, 0.5]])
    assert circle_nms(c2, torch.tensor([0.5, 0.9]), 4.0).tolist() == [1]
    assert circle_nms(c2, torch.tensor([0.5, 0.9]), 3.6).tolist() == [1, 0]
    with pytest.raises(DataError, match="min_radius_sq must be a finite non-negative number"):
        circle_nms(c, s, -1.0)


def test_nms_bad_input_and_no_mutation():
    b = torch.tensor(clustered_boxes(np.random.default_rng(9), 50))
    s = torch.rand(50)
    b0, s0 = b.clone(), s.clone()
    nms_bev(b, s, 0.1)
    assert torch.equal(b, b0) and torch.equal(s, s0)
    with pytest.raises(DataError, match=r"scores: expected a tensor of shape \[50\]"):
        nms_bev(b, s[:10], 0.1)
    with pytest.raises(DataError, match="pre_max must be a non-negative integer"):
        nms_bev(b, s, 0.1, pre_max=-1)
    with pytest.raises(DataError, match="labels: expected an integer tensor"):
        batched_nms_bev(b, s, s, 0.1)
