"""Greedy prediction -> GT matching per (sample, class), vectorised over all groups at once.

The rule is nuscenes-devkit ``accumulate`` (nuscenes/eval/detection/algo.py, devkit 1.2.0):

* predictions are visited in **descending score**; ties are broken by **descending input position**. The devkit
  sorts ``(score, index)`` tuples ascending and reverses the list (``sorted(...)[::-1]``), so among equal scores
  the prediction that comes *later* in ``EvalBoxes.all`` (results order, then list order) goes first. This is the
  `devkit_order` below and it matters: the cumulative AOE depends on the order of tied matches.
* each prediction takes the **nearest untaken GT** of its class in its sample (BEV centre distance, global frame in
  the devkit) and is a match only if that distance is ``< threshold`` (strict). Distance ties go to the GT that
  comes first in the sample's annotation order (the devkit scans with a strict ``<``).

"Nearest untaken GT, then test the threshold" equals "nearest untaken GT among those below the threshold", so only
the candidate pairs below the threshold are needed; they are found with a KD-tree. The greedy itself is sequential
within a group, but groups are independent: step ``k`` resolves the ``k``-th candidate-holding prediction of every
group at once, so the Python loop runs max-group-size times, not once per prediction.

The IoU variant (``--match iou``) is the same greedy with "highest rotated BEV IoU, > threshold" as the preference
(ties: first GT), i.e. a cost of ``-IoU``.
"""

from __future__ import annotations

import numpy as np

_GROUP_SPACING_M = 1.0e4
"""Groups are separated along a third KD-tree axis by this much; far beyond any matching radius."""


def devkit_order(score: np.ndarray, index: np.ndarray) -> np.ndarray:
    """int64 ``[P]`` permutation: descending ``score``, ties by descending ``index`` (the devkit's reversed sort).

    ``score`` float64 ``[P]``, ``index`` int64 ``[P]`` (position in the input file).
    """
    return np.lexsort((np.asarray(index), np.asarray(score)))[::-1].copy()


def bev_distance(a_xy: np.ndarray, b_xy: np.ndarray) -> np.ndarray:
    """Elementwise BEV centre distance, ``sqrt(dx^2 + dy^2)`` (the devkit's ``center_distance`` arithmetic)."""
    d = np.asarray(a_xy, dtype=np.float64) - np.asarray(b_xy, dtype=np.float64)
    return np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])


def pairs_within(a_xy: np.ndarray, a_group: np.ndarray, b_xy: np.ndarray | None, b_group: np.ndarray | None,
                 radius_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``(i, j)`` in the same group with BEV centre distance ``<= radius_m``.

    ``a_xy [A, 2]`` / ``a_group [A]`` int64; ``b_*`` likewise, or None for pairs within ``a`` itself (then each
    unordered pair appears once with ``i < j``). Returns ``(i, j, dist)`` int64/int64/float64, distances recomputed
    exactly from the inputs (the KD-tree only proposes).
    """
    from scipy.spatial import cKDTree

    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    a_xy = np.asarray(a_xy, dtype=np.float64)
    if a_xy.shape[0] == 0 or (b_xy is not None and len(b_xy) == 0) or not np.isfinite(radius_m) or radius_m < 0:
        return empty

    def lift(xy, group):
        # Same group -> same third coordinate exactly, so in-group distances are the plain BEV ones.
        return np.column_stack([xy, np.asarray(group, dtype=np.float64) * _GROUP_SPACING_M])

    ta = cKDTree(lift(a_xy, a_group))
    # A little slack: the tree's arithmetic differs from ours in the last bits; the exact test follows.
    r = radius_m * (1 + 1e-9) + 1e-9
    if b_xy is None:
        ij = ta.query_pairs(r, output_type="ndarray").astype(np.int64)
        i, j = ij[:, 0], ij[:, 1]
        bxy = a_xy
    else:
        b_xy = np.asarray(b_xy, dtype=np.float64)
        tb = cKDTree(lift(b_xy, b_group))
        sdm = ta.sparse_distance_matrix(tb, r, output_type="ndarray")
        i, j = sdm["i"].astype(np.int64), sdm["j"].astype(np.int64)
        bxy = b_xy
    if i.size == 0:
        return empty
    d = bev_distance(a_xy[i], bxy[j])
    keep = d <= radius_m
    return i[keep], j[keep], d[keep]


def greedy_match(n_pred: int, n_gt: int, order: np.ndarray, pred_group: np.ndarray,
                 cand_pred: np.ndarray, cand_gt: np.ndarray, cand_cost: np.ndarray) -> np.ndarray:
    """Sequential greedy matching, evaluated one "rank step" at a time across all groups.

    ``order`` int64 ``[P]``: the visiting order (`devkit_order`). ``pred_group`` int64 ``[P]``: the (sample, class)
    group of each prediction; GT of another group must never be a candidate. ``cand_*``: admissible pairs
    (already thresholded), ``cand_cost`` lower is better; cost ties go to the lower GT index, so GT rows must be in
    the sample's annotation order. Returns int64 ``[P]``: the matched GT row or -1.
    """
    match = np.full(n_pred, -1, dtype=np.int64)
    if cand_pred.size == 0:
        return match
    pos = np.empty(n_pred, dtype=np.int64)
    pos[order] = np.arange(n_pred)
    # Candidates sorted by (visit position of the prediction, cost, GT row): each prediction's preference list.
    srt = np.lexsort((cand_gt, cand_cost, pos[cand_pred]))
    c_pred, c_gt = cand_pred[srt], cand_gt[srt]
    starts = np.flatnonzero(np.r_[True, c_pred[1:] != c_pred[:-1]])
    preds = c_pred[starts]  # candidate-holding predictions in visiting order
    lens = np.diff(np.r_[starts, c_pred.size])
    # Step of each such prediction = how many candidate-holding predictions of its group are visited before it.
    grp = pred_group[preds]
    by_grp = np.argsort(grp, kind="stable")  # stable: keeps the visiting order inside each group
    g_sorted = grp[by_grp]
    first_of_grp = np.r_[0, np.flatnonzero(g_sorted[1:] != g_sorted[:-1]) + 1]
    run_start = np.repeat(first_of_grp, np.diff(np.r_[first_of_grp, g_sorted.size]))
    step = np.empty(preds.size, dtype=np.int64)
    step[by_grp] = np.arange(preds.size) - run_start

    taken = np.zeros(n_gt, dtype=bool)
    by_step = np.argsort(step, kind="stable")
    step_bounds = np.searchsorted(step[by_step], np.arange(step.max() + 2))
    for k in range(step.max() + 1):
        sel = by_step[step_bounds[k]:step_bounds[k + 1]]  # at most one prediction per group
        s_len = lens[sel]
        seg = np.repeat(np.arange(sel.size), s_len)
        flat = np.repeat(starts[sel] - np.cumsum(s_len) + s_len, s_len) + np.arange(seg.size)
        gts = c_gt[flat]
        free = np.flatnonzero(~taken[gts])
        if free.size == 0:
            continue
        fseg = seg[free]
        first = free[np.r_[True, fseg[1:] != fseg[:-1]]]  # first free candidate of each prediction
        chosen = gts[first]
        match[preds[sel[seg[first]]]] = chosen
        taken[chosen] = True
    return match


def match_center(pred_xy: np.ndarray, pred_group: np.ndarray, order: np.ndarray, gt_xy: np.ndarray,
                 gt_group: np.ndarray, threshold_m: float) -> tuple[np.ndarray, np.ndarray]:
    """nuScenes centre-distance matching (see the module docstring).

    ``pred_xy [P, 2]``, ``gt_xy [G, 2]`` BEV centres in one frame (m); ``*_group`` int64 (sample, class) ids.
    Returns ``(match_gt int64 [P] or -1, dist float64 [P], NaN where unmatched)``.
    """
    i, j, d = pairs_within(pred_xy, pred_group, gt_xy, gt_group, threshold_m)
    strict = d < threshold_m  # the devkit's ``min_dist < dist_th``
    i, j, d = i[strict], j[strict], d[strict]
    match = greedy_match(len(pred_xy), len(gt_xy), order, np.asarray(pred_group), i, j, d)
    dist = np.full(len(pred_xy), np.nan)
    m = match >= 0
    dist[m] = bev_distance(np.asarray(pred_xy)[m], np.asarray(gt_xy)[match[m]])
    return match, dist


def best_candidate(n_pred: int, cand_pred: np.ndarray, cand_gt: np.ndarray, cand_cost: np.ndarray) -> np.ndarray:
    """int64 ``[P]``: each prediction's most preferred candidate GT regardless of who took it (-1 if none)."""
    best = np.full(n_pred, -1, dtype=np.int64)
    if cand_pred.size == 0:
        return best
    srt = np.lexsort((cand_gt, cand_cost, cand_pred))
    c_pred = cand_pred[srt]
    first = np.r_[True, c_pred[1:] != c_pred[:-1]]
    best[c_pred[first]] = cand_gt[srt][first]
    return best
