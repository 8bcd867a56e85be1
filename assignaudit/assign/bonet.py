r"""3D-BoNet's bounding-box association (Yang et al. 2019, "Learning Object Bounding Boxes for 3D Instance
Segmentation on Point Clouds") as a Hungarian cost for set-prediction heads on point clouds.

Every box is reduced to its axis-aligned min / max vertices ``B = (x_min, y_min, z_min, x_max, y_max, z_max)``
(3D-BoNet predicts exactly these; a rotated canonical box contributes its exact 3D AABB). For prediction ``i`` and
GT ``j`` over the frame's ``N`` points ``p``:

* **vertex L2**: ``C_ed = mean over the 6 coordinates of (B_i - B_j)^2``;
* **point membership**: the GT's is hard, ``g_j(p) = 1`` when ``(min - p)(p - max) >= 0`` on all three axes; the
  prediction's is soft, ``q_i(p) = min over axes of sigmoid(clip(100 (min - p)(p - max), -20, 20))`` (the paper's
  Algorithm 1, theta_1 = 100, theta_2 = 20);
* **soft IoU**: ``C_sIoU = -TP / (TP + FP + FN + 1e-6)`` with ``TP = sum q g``, ``FP = sum q - TP``,
  ``FN = sum g - TP``;
* **cross-entropy**: ``C_ces = mean over points of -(g log(q + 1e-8) + (1 - g) log(1 - q + 1e-8))``;
* ``C = w_ed C_ed + w_siou C_sIoU + w_ces C_ces``, the paper's default weights all 1 (``use_all_ce_l2_iou``).

`bonet_match` solves ``C[Q, K]`` with scipy's ``linear_sum_assignment`` (each GT gets one prediction when Q >= K).
Only the points within 0.5 m of a prediction's box are evaluated for it (beyond ``sqrt(0.2)`` m outside on one axis
the clipped membership is exactly ``sigmoid(-20)``, which enters as a constant): the same sums as every pair, to
float rounding (``dense=True`` keeps the all-pairs path; benchmarks/bench_bonet.py compares them). Memory is
``Q x K`` for the cost, ``K x N`` booleans for the GT memberships and chunks of ~4M / K candidate pairs.

`bonet_query_cost` is the ``count`` path (``query.cost: bonet``, docs/count-families.md): the decoded query boxes of
every decoder layer and the frame's points, cropped to the point-cloud range as the detector's range filter does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from assignaudit.errors import DataError

BONET_WEIGHTS = (1.0, 1.0, 1.0)  # vertex L2, soft IoU, cross-entropy: the paper's 'use_all_ce_l2_iou'
THETA_1, THETA_2 = 100.0, 20.0
_POINT_CHUNK = 1 << 15
_CHUNK_ELEMENTS = 1 << 22
"""Bound on ``(Q + K) x points`` per chunk, so memory stays ~100 MB whatever Q (a query replay stacks L x Q)."""


def box_vertices(boxes: torch.Tensor) -> torch.Tensor:
    """Canonical boxes ``[M, 7+]`` -> ``[M, 6]`` vertices: the exact 3D AABB ``x_min, y_min, z_min, x_max, y_max,
    z_max`` (centre z; yaw only widens the BEV extent)."""
    c, s = torch.cos(boxes[:, 6]).abs(), torch.sin(boxes[:, 6]).abs()
    hx = (boxes[:, 3] * c + boxes[:, 4] * s) / 2
    hy = (boxes[:, 3] * s + boxes[:, 4] * c) / 2
    hz = boxes[:, 5] / 2
    lo = torch.stack([boxes[:, 0] - hx, boxes[:, 1] - hy, boxes[:, 2] - hz], 1)
    hi = torch.stack([boxes[:, 0] + hx, boxes[:, 1] + hy, boxes[:, 2] + hz], 1)
    return torch.cat([lo, hi], 1)


def _membership(vert: torch.Tensor, pts: torch.Tensor, soft: bool) -> torch.Tensor:
    """``[M, 6]`` vertices x ``[N, 3]`` points -> ``[M, N]`` membership (hard 0/1 or the soft Algorithm 1)."""
    t = (vert[:, None, :3] - pts[None]) * (pts[None] - vert[:, None, 3:])  # [M, N, 3]
    if not soft:
        return (t >= 0).all(dim=-1).to(vert.dtype)
    return torch.sigmoid(torch.clamp(THETA_1 * t, -THETA_2, THETA_2)).amin(dim=-1)


@dataclass(frozen=True)
class BonetCost:
    total: torch.Tensor  # [Q, K]
    vertex_l2: torch.Tensor
    soft_iou: torch.Tensor  # the (positive) soft IoU; the cost term is its negative
    cross_entropy: torch.Tensor


def bonet_cost(pred_vertices: torch.Tensor, gt_vertices: torch.Tensor, points: torch.Tensor,
               weights: tuple[float, float, float] = BONET_WEIGHTS, *, dense: bool = False) -> BonetCost:
    """The association cost ``[Q, K]`` of ``Q`` predicted and ``K`` GT boxes given as min/max vertices ``[., 6]``
    over the frame's points ``[N, 3+]`` (module docstring). Float64 recommended; device-agnostic torch.

    A point farther than ``sqrt(0.2)`` m outside a prediction's box on some axis has membership exactly
    ``sigmoid(-20)`` (the clip), so by default only the points near each box are evaluated (`_sums_sparse`) and the
    rest enter as that constant; ``dense=True`` evaluates every (prediction, point) pair (`_sums_dense`, also used
    when some prediction has ``max < min``). Rows of non-finite predictions are NaN."""
    for name, v in (("pred_vertices", pred_vertices), ("gt_vertices", gt_vertices)):
        if v.dim() != 2 or v.shape[1] != 6:
            raise DataError(f"{name} has shape {tuple(v.shape)}; expected [M, 6] min/max vertices")
    if points.dim() != 2 or points.shape[1] < 3:
        raise DataError(f"points has shape {tuple(points.shape)}; expected [N, 3+]")
    if points.shape[0] == 0:
        raise DataError("points is empty: the soft IoU and cross-entropy terms need the frame's points")
    pts = points[:, :3].to(pred_vertices.dtype)
    ordered = not bool((pred_vertices[:, 3:] < pred_vertices[:, :3]).any())  # NaN rows: NaN in the result
    sums = _sums_sparse if (not dense and ordered) else _sums_dense
    tp, ce, sum_q, sum_g = sums(pred_vertices, gt_vertices, pts)
    fp = sum_q[:, None] - tp
    fn = sum_g[None, :] - tp
    siou = tp / (tp + fp + fn + 1e-6)
    l2 = ((pred_vertices[:, None, :] - gt_vertices[None, :, :]) ** 2).mean(-1)
    w_ed, w_iou, w_ce = weights
    return BonetCost(w_ed * l2 - w_iou * siou + w_ce * ce, l2, siou, ce)


def _sums_dense(pred_vertices: torch.Tensor, gt_vertices: torch.Tensor, pts: torch.Tensor):
    """``TP [Q, K]``, ``CE [Q, K]`` (mean over points), ``sum q [Q]``, ``sum g [K]`` over every pair."""
    q_n, k_n, n = pred_vertices.shape[0], gt_vertices.shape[0], pts.shape[0]
    dt, dev = pred_vertices.dtype, pred_vertices.device
    tp = torch.zeros(q_n, k_n, dtype=dt, device=dev)
    ce = torch.zeros(q_n, k_n, dtype=dt, device=dev)
    sum_q = torch.zeros(q_n, dtype=dt, device=dev)
    sum_g = torch.zeros(k_n, dtype=dt, device=dev)
    step = max(1, min(_POINT_CHUNK, _CHUNK_ELEMENTS // max(1, q_n + k_n)))
    for s in range(0, n, step):  # chunks over points only
        p = pts[s:s + step]
        q = _membership(pred_vertices, p, soft=True)  # [Q, n]
        g = _membership(gt_vertices, p, soft=False)  # [K, n]
        tp += q @ g.T
        sum_q += q.sum(1)
        sum_g += g.sum(1)
        log_q, log_1q = torch.log(q + 1e-8), torch.log(1 - q + 1e-8)
        # sum_n -(g log q + (1 - g) log(1 - q)) = -(log_q @ g.T + log_1q.sum - log_1q @ g.T)
        ce -= log_q @ g.T + log_1q.sum(1, keepdim=True) - log_1q @ g.T
    ce = ce / n
    return tp, ce, sum_q, sum_g


_NEAR_M = 0.5
_MIN_PAIRS = 1 << 14
"""Candidate margin (m) around each prediction's box: beyond ``sqrt(0.2) = 0.447`` m outside on one axis,
``100 (min - p)(p - max) <= -20`` there (``max >= min``), so the clipped membership is exactly ``sigmoid(-20)``."""


def _sums_sparse(pred_vertices: torch.Tensor, gt_vertices: torch.Tensor, pts: torch.Tensor):
    """`_sums_dense`'s four sums, evaluating only the (prediction, point) pairs within `_NEAR_M` of the box.

    With ``e = sigmoid(-20)`` the baseline of every point, ``a = -log(q + 1e-8)``, ``b = -log(1 - q + 1e-8)``:
    ``TP = e sum g + sum_near (q - e) g``, ``sum q = e N + sum_near (q - e)``, ``N CE = N b(e) + sum g (a(e) - b(e))
    + sum_near [(b - b(e)) + g ((a - a(e)) - (b - b(e)))]``. Candidates come from points sorted by x (a
    ``searchsorted`` slab per prediction), filtered in y and z; processed in chunks of predictions.
    """
    q_n, k_n, n = pred_vertices.shape[0], gt_vertices.shape[0], pts.shape[0]
    dt, dev = pred_vertices.dtype, pred_vertices.device
    order = torch.argsort(pts[:, 0])
    pts = pts[order]
    g = torch.zeros(k_n, n, dtype=torch.bool, device=dev)
    step = max(1, _CHUNK_ELEMENTS // max(1, k_n))
    for s in range(0, n, step):
        g[:, s:s + step] = _membership(gt_vertices, pts[s:s + step], soft=False).bool()
    sum_g = g.sum(1).to(dt)
    e = torch.sigmoid(torch.tensor(-THETA_2, dtype=dt, device=dev))
    a0, b0 = -torch.log(e + 1e-8), -torch.log(1 - e + 1e-8)
    tp = (e * sum_g)[None, :].repeat(q_n, 1)
    sum_q = torch.full((q_n,), float(e) * n, dtype=dt, device=dev)
    ce = (n * b0 + sum_g * (a0 - b0))[None, :].repeat(q_n, 1)
    finite = torch.isfinite(pred_vertices).all(1)
    rows = torch.nonzero(finite).flatten()
    if rows.numel():
        pv = pred_vertices[rows]
        lo = torch.searchsorted(pts[:, 0].contiguous(), (pv[:, 0] - _NEAR_M).contiguous(), right=False)
        hi = torch.searchsorted(pts[:, 0].contiguous(), (pv[:, 3] + _NEAR_M).contiguous(), right=True)
        counts = (hi - lo).clamp(min=0)
        cum = torch.cumsum(counts, 0)
        budget = max(_MIN_PAIRS, _CHUNK_ELEMENTS // max(1, k_n))  # candidate pairs per chunk
        g_t = g.T  # [N, K]
        start = 0
        while start < rows.numel():
            base = int(cum[start - 1]) if start else 0
            end = max(start + 1, int(torch.searchsorted(cum, base + budget, right=True)))
            c = counts[start:end]
            local = torch.repeat_interleave(torch.arange(start, end, device=dev), c)
            offs = torch.cumsum(c, 0) - c
            pt = lo[local] + (torch.arange(local.numel(), device=dev) - offs[local - start])
            p = pts[pt]
            v = pv[local]
            near = ((p[:, 1:] > v[:, 1:3] - _NEAR_M) & (p[:, 1:] < v[:, 4:6] + _NEAR_M)).all(1)
            local, pt, p, v = local[near], pt[near], p[near], v[near]
            t = (v[:, :3] - p) * (p - v[:, 3:])
            q = torch.sigmoid(torch.clamp(THETA_1 * t, -THETA_2, THETA_2)).amin(dim=-1)
            gp = g_t[pt].to(dt)  # [P, K]
            dq = q - e
            da = -torch.log(q + 1e-8) - a0
            db = -torch.log(1 - q + 1e-8) - b0
            r = rows[local]
            tp.index_add_(0, r, dq[:, None] * gp)
            sum_q.index_add_(0, r, dq)
            ce.index_add_(0, r, db[:, None] + (da - db)[:, None] * gp)
            start = end
    nan = torch.tensor(float("nan"), dtype=dt, device=dev)
    bad = ~finite
    tp[bad], ce[bad], sum_q[bad] = nan, nan, nan
    return tp, ce / n, sum_q, sum_g


def bonet_match(cost: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pred_index, gt_index)`` of the minimum-cost one-to-one match of ``cost[Q, K]`` (scipy's
    ``linear_sum_assignment``; sorted by prediction index)."""
    c = cost.detach().cpu().numpy() if isinstance(cost, torch.Tensor) else np.asarray(cost)
    if not np.isfinite(c).all():
        raise DataError("3D-BoNet cost matrix has non-finite entries")
    rows, cols = linear_sum_assignment(c)
    return rows.astype(np.int64), cols.astype(np.int64)


def crop_points(points: np.ndarray, point_cloud_range) -> np.ndarray:
    """Points ``[N, 3+]`` inside ``point_cloud_range`` (``x_min <= x < x_max`` etc. on all three axes: OpenPCDet's
    ``mask_points_by_range`` / mmdet3d's ``PointsRangeFilter``, which bound what the detector sees)."""
    lo, hi = np.asarray(point_cloud_range[:3], np.float32), np.asarray(point_cloud_range[3:6], np.float32)
    keep = np.all((points[:, :3] >= lo) & (points[:, :3] < hi), axis=1)
    return points[keep]


def bonet_query_cost(decoded: torch.Tensor, gt_boxes: torch.Tensor, points: torch.Tensor,
                     weights: tuple[float, float, float] = BONET_WEIGHTS) -> torch.Tensor:
    """``[L, Q, K]`` association costs of decoded canonical query boxes ``[L, Q, 7+]`` (every decoder layer) with
    canonical GT ``[K, 7+]`` over the points ``[N, 3+]``: one `bonet_cost` over the ``L x Q`` predictions (the
    GT memberships are computed once). Each box enters by its exact 3D AABB (`box_vertices`). Float64."""
    n_l, n_q = decoded.shape[0], decoded.shape[1]
    pred_v = box_vertices(decoded.reshape(n_l * n_q, -1).to(torch.float64))
    gt_v = box_vertices(gt_boxes.to(torch.float64))
    total = bonet_cost(pred_v, gt_v, points.to(torch.float64), weights).total
    return total.reshape(n_l, n_q, -1)
