r"""OpenPCDet's ``ATSSTargetAssigner`` (adaptive training sample selection), class-agnostic, one frame.

Upstream: ``pcdet/models/dense_heads/target_assigner/atss_target_assigner.py`` (assignment-semantics.md §4). No
shipped config uses it, and at HEAD selecting it raises a TypeError (the head passes ``use_multihead=`` to a
constructor that does not take it), so this is a replay of the algorithm, not of a trainable config.

Rule, per frame, over all anchors and all GT of every class (class-agnostic; an anchor takes its GT's class):

1. IoU = exact rotated BEV IoU (`assignaudit.ops.box_iou_bev_sparse`; pairs whose bounding rectangles do not
   overlap are exactly 0), or with ``iou_3d`` (``MATCH_HEIGHT``) the 3D IoU of ``boxes_iou3d_gpu`` (rotated BEV
   intersection x centre-z height overlap) on those same pairs. ``margin_compat`` replays the CUDA kernel's 1 cm
   corner margin.
2. Candidates: for every GT the ``topk`` anchors nearest in **3D** centre distance ``||a_xyz - g_xyz||``.
   Upstream uses ``topk(largest=False)`` whose order among equal distances is undefined; here ties at the k-th
   distance are broken towards the **lower anchor index** (deterministic).
3. Threshold per GT: ``t = mean(cand IoU) + std(cand IoU, unbiased N-1) + 1e-6``. With ``topk = 1`` the unbiased
   std is NaN, as in torch, so no candidate passes and only the forced match is left.
4. Candidate positive iff ``IoU >= t`` **and** its centre is inside the GT in BEV (inclusive). The correct test
   rotates the offset by ``-yaw`` and compares ``|x_local| <= dx/2`` and ``|y_local| <= dy/2``. Upstream indexes
   the dims ``[1, 0]`` (commented "bugfixed") and so compares ``|x_local|`` with ``dy/2`` and ``|y_local|`` with
   ``dx/2``: transposed in the OpenPCDet convention where ``dx`` lies along the heading. ``upstream_quirks=True``
   reproduces that.
5. An anchor positive for several GT keeps the GT with the highest IoU (ties: the lower GT index, torch's CPU
   ``max``).
6. Forced: every GT's argmax anchor over **all** anchors (first index among equal maxima; a GT that overlaps no
   anchor forces anchor 0) is assigned to that GT, overwriting step 5, without any IoU check. When several GT share
   one argmax anchor upstream writes them with a duplicate-index scatter, whose winner is undefined; here the
   **last GT (highest index) wins**.
7. No ignore state: everything else is background.

Memory: the distance matrix is dense ``[A, K]`` (the candidate search needs every distance); IoU is sparse.

`atss_assign` is one call of ``assign_targets_single`` (one anchor set, one frame). ``assign_frame`` with
``Framework.ATSS`` runs it once per anchor set over the set's anchors in the set's own order (the layout's flat
order restricted to the set, which is upstream's ``view(-1, 7)`` / multihead permute) and sums the tallies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from assignaudit.errors import ConfigError, DataError
from assignaudit.ops import box_iou_3d_aligned, box_iou_bev_sparse
from assignaudit.ops._checks import check_pair

THRESHOLD_EPS = 1e-6


@dataclass(frozen=True)
class AtssAssignment:
    """ATSS labels of A anchors against K GT (torch tensors on the anchors' device)."""

    assigned_gt: torch.Tensor
    """int64 ``[A]``: the matched GT index, -1 for background."""
    labels: torch.Tensor
    """int64 ``[A]``: ``gt_labels`` of the matched GT, -1 for background."""
    iou: torch.Tensor
    """``[A]`` (anchor dtype): rotated BEV IoU with the matched GT, 0 for background."""
    forced: torch.Tensor
    """bool ``[A]``: positive because it is some GT's argmax anchor (step 6)."""
    candidates: torch.Tensor
    """int64 ``[topk, K]``: candidate anchors per GT, nearest first."""
    threshold: torch.Tensor
    """``[K]``: the per-GT IoU threshold ``mean + std + 1e-6`` over the candidates."""
    gt_max_iou: torch.Tensor | None = None
    """``[K]``: each GT's best IoU over all anchors (the forced match's IoU; 0 for a GT overlapping nothing)."""
    num_iou_pairs: int = 0
    """Anchor-GT pairs whose IoU was evaluated (diagnostics)."""

    @property
    def positive(self) -> torch.Tensor:
        """bool ``[A]``."""
        return self.assigned_gt >= 0

    @property
    def num_pos(self) -> int:
        return int(self.positive.sum())


def _topk_nearest(anchors_xyz: torch.Tensor, gt_xyz: torch.Tensor, topk: int) -> torch.Tensor:
    """``[topk, K]`` anchor indices nearest to each GT (3D), ties at the boundary broken by lower anchor index."""
    dist = (anchors_xyz[:, None, :] - gt_xyz[None, :, :]).norm(dim=-1)  # [A, K], upstream's op order
    kth = dist.topk(topk, dim=0, largest=False).values[-1]  # [K]: the k-th smallest distance
    ik, ia = (dist <= kth[None, :]).t().nonzero(as_tuple=True)  # every anchor within it, ordered by (gt, anchor)
    d = dist[ia, ik]
    # Order by (gt, distance, anchor): a stable sort on distance, then a stable sort on gt.
    perm = torch.argsort(d, stable=True)
    perm = perm[torch.argsort(ik[perm], stable=True)]
    ia, ik = ia[perm], ik[perm]
    counts = torch.bincount(ik, minlength=gt_xyz.shape[0])
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(ik.shape[0], device=ik.device) - starts[ik]
    keep = rank < topk  # every GT has >= topk entries, so exactly topk survive per GT
    return ia[keep].view(gt_xyz.shape[0], topk).t().contiguous()


def atss_assign(anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, topk: int = 9, *,
                upstream_quirks: bool = False, margin_compat: bool = False, iou_3d: bool = False) -> AtssAssignment:
    """Label anchors with OpenPCDet's ATSS rule (module docstring).

    Args:
        anchors: canonical ``Tensor[A, 7+]`` (centre z, metres, LiDAR frame).
        gt_boxes: canonical ``Tensor[K, 7+]``, same dtype and device; gt_labels: ``LongTensor[K]``.
        topk: candidates per GT (OpenPCDet's ``TOPK``); ``1 <= topk <= A``.
        upstream_quirks: reproduce the transposed inside-GT test (``dy/2`` along the heading).
        margin_compat: OpenPCDet's 1 cm corner margin in the IoU kernel.
        iou_3d: 3D IoU (OpenPCDet ``MATCH_HEIGHT``) instead of rotated BEV IoU.

    Returns an `AtssAssignment`. Inputs are not modified.
    """
    check_pair("anchors", anchors, "gt_boxes", gt_boxes)
    n_a, n_g = anchors.shape[0], gt_boxes.shape[0]
    if not isinstance(gt_labels, torch.Tensor) or gt_labels.shape != (n_g,):
        shape = list(gt_labels.shape) if isinstance(gt_labels, torch.Tensor) else type(gt_labels).__name__
        raise DataError(f"gt_labels: expected a tensor of shape [{n_g}] (one per GT box), got {shape}")
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ConfigError(f"ATSS topk: expected an integer >= 1, got {topk!r}")
    device = anchors.device
    background = torch.full((n_a,), -1, dtype=torch.int64, device=device)
    if n_g == 0:
        # Upstream never sees an empty frame in training (the dataset resamples); all background here.
        return AtssAssignment(background, background.clone(), anchors.new_zeros(n_a),
                              torch.zeros(n_a, dtype=torch.bool, device=device),
                              torch.zeros((min(topk, n_a), 0), dtype=torch.int64, device=device),
                              anchors.new_zeros(0), anchors.new_zeros(0), 0)
    if topk > n_a:
        raise ConfigError(f"ATSS topk={topk} exceeds the number of anchors ({n_a})")

    # Sparse IoU, sorted by (anchor, gt): a flat key lets candidates look their IoU up exactly.
    s_a, s_g, s_iou = box_iou_bev_sparse(anchors, gt_boxes, min_iou=0.0, margin_compat=margin_compat)
    if iou_3d:
        # 3D IoU > 0 needs a BEV intersection > 0: the BEV pairs are a superset; keep the (anchor, gt) order.
        s_iou = box_iou_3d_aligned(anchors[s_a], gt_boxes[s_g], margin_compat=margin_compat)
        keep = s_iou > 0
        s_a, s_g, s_iou = s_a[keep], s_g[keep], s_iou[keep]
    s_key = s_a * n_g + s_g

    cand = _topk_nearest(anchors[:, 0:3], gt_boxes[:, 0:3], topk)  # [topk, K]
    gt_of_cand = torch.arange(n_g, device=device).expand(topk, n_g)
    c_key = (cand * n_g + gt_of_cand).reshape(-1)
    pos = torch.searchsorted(s_key, c_key).clamp_max(max(s_key.shape[0] - 1, 0))
    found = (s_key[pos] == c_key) if s_key.numel() else torch.zeros_like(c_key, dtype=torch.bool)
    cand_iou = torch.where(found, s_iou[pos] if s_iou.numel() else anchors.new_zeros(()),
                           anchors.new_zeros(())).view(topk, n_g)
    # torch's unbiased std of one value is NaN (with a warning): keep the NaN, skip the warning.
    std = cand_iou.std(dim=0, unbiased=True) if topk > 1 else torch.full_like(cand_iou[0], float("nan"))
    threshold = cand_iou.mean(dim=0) + std + THRESHOLD_EPS
    is_pos = cand_iou >= threshold[None, :]

    # BEV inside test in the GT's frame (rotate the offset by -yaw).
    off = anchors[cand.reshape(-1), 0:2] - gt_boxes[gt_of_cand.reshape(-1), 0:2]
    yaw = gt_boxes[gt_of_cand.reshape(-1), 6]
    c, s = torch.cos(yaw), torch.sin(yaw)
    x_local = off[:, 0] * c + off[:, 1] * s
    y_local = -off[:, 0] * s + off[:, 1] * c
    dims = gt_boxes[gt_of_cand.reshape(-1), 3:5]
    if upstream_quirks:
        # atss_target_assigner.py indexes dims [1, 0] ("bugfixed"): x_local against dy, y_local against dx.
        dims = dims[:, [1, 0]]
    half = dims / 2
    inside = (x_local <= half[:, 0]) & (x_local >= -half[:, 0]) & (y_local <= half[:, 1]) & (y_local >= -half[:, 1])
    is_pos = is_pos & inside.view(topk, n_g)

    # Step 5: an anchor positive for several GT keeps the highest IoU; ties go to the lower GT index.
    p_a, p_g, p_iou = cand[is_pos], gt_of_cand[is_pos], cand_iou[is_pos]
    best = torch.full((n_a,), float("-inf"), dtype=anchors.dtype, device=device)
    best = best.scatter_reduce(0, p_a, p_iou, reduce="amax")
    winner = p_iou == best[p_a]
    big = torch.full((n_a,), n_g, dtype=torch.int64, device=device)
    assigned = big.scatter_reduce(0, p_a[winner], p_g[winner], reduce="amin")
    assigned = torch.where(assigned == n_g, background, assigned)
    iou = torch.where(assigned >= 0, best, anchors.new_zeros(()))

    # Step 6: forced argmax anchor per GT over all anchors (zeros elsewhere, so an all-zero GT forces anchor 0).
    g_max = anchors.new_zeros(n_g).scatter_reduce(0, s_g, s_iou, reduce="amax", include_self=True)
    at_max = (s_iou == g_max[s_g]) & (g_max[s_g] > 0)
    g_arg = torch.zeros(n_g, dtype=torch.int64, device=device).scatter_reduce(
        0, s_g[at_max], s_a[at_max], reduce="amin", include_self=False)
    # Upstream's duplicate-index scatter has no defined winner; the highest GT index wins here.
    forced_gt = torch.full((n_a,), -1, dtype=torch.int64, device=device).scatter_reduce(
        0, g_arg, torch.arange(n_g, device=device), reduce="amax", include_self=True)
    forced = forced_gt >= 0
    assigned = torch.where(forced, forced_gt, assigned)
    iou = torch.where(forced, g_max[forced_gt.clamp_min(0)], iou)
    labels = torch.where(assigned >= 0, gt_labels.to(torch.int64)[assigned.clamp_min(0)], background)
    return AtssAssignment(assigned, labels, iou, forced, cand, threshold, g_max, int(s_a.numel()))
