"""Sparse anchor-GT candidate pairs from the anchor grid, and their IoU.

Only ~0.3 % of anchor-GT pairs of a nuScenes frame overlap at all (performance-facts.md), so the dense ``[A, K]``
IoU matrix is never built: each GT's BEV rectangle maps, per anchor combo (set, size, rotation), to a window of grid
cells found by ``searchsorted`` on the combo's sorted anchor edges, and the windows of all GT and all combos are
enumerated in one vectorised pass (``repeat_interleave`` + index arithmetic).

Exactness: in the nearest-BEV modes the edges are the anchors' own float32 xyxy, so the window is exactly the set of
anchors whose xyxy overlaps the GT's with ``min(x2) - max(x1) > 0`` on both axes, i.e. exactly the pairs with a
positive intersection in the frameworks' ``boxes_iou_normal`` / mmdet ``bbox_overlaps``. (For float32 ``a > b``
implies ``a - b > 0``, so the comparison and the subtraction agree.) Everything outside the window has IoU 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from assignaudit import ops
from assignaudit.assign.anchors import Anchors, CandidateEdges, rotated_aabb
from assignaudit.assign.params import Framework, IouKind



@dataclass(frozen=True)
class Candidates:
    """Anchor-GT pairs that can have IoU > 0 (a superset of them), with the framework IoU of each."""

    anchor: torch.Tensor
    """int64 ``[P]``: flat anchor index."""
    gt: torch.Tensor
    """int64 ``[P]``: GT index (row of the frame's GT tensor)."""
    iou: torch.Tensor
    """float32 ``[P]``: the framework IoU of the pair (may be 0 for rotated-mode pairs)."""


def gt_rectangles(gt_boxes: torch.Tensor, iou: IouKind, convention: str) -> tuple[torch.Tensor, str]:
    """BEV rectangles ``[K, 4]`` (x1, y1, x2, y2) of the GT for the window search, and the edge mode to use."""
    if iou is IouKind.NEAREST_BEV:
        return ops.nearest_bev_xyxy(gt_boxes, convention).to(torch.float32), convention
    return rotated_aabb(gt_boxes), "rotated"


def enumerate_candidates(
    anchors: Anchors, gt_rect: torch.Tensor, edge_mode: str, gt_combo_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """All (anchor, GT) pairs whose rectangles overlap with positive area, for the allowed (GT, combo) blocks.

    ``gt_rect``: ``[K, 4]`` xyxy (float32 in the nearest modes, float64 for rotated). ``gt_combo_mask``: bool
    ``[K, C]``, True where GT k competes for the anchors of combo c (its class's set, or every set when
    class-agnostic). Returns int64 ``anchor [P]`` and ``gt [P]``, grouped by GT then combo.
    """
    e: CandidateEdges = anchors.edges[edge_mode]
    g_idx, c_idx = torch.nonzero(gt_combo_mask, as_tuple=True)  # [Bk] blocks
    r = gt_rect[g_idx]  # [Bk, 4]
    # Batched searchsorted over each block's own combo row. x-overlap <=> ax1 < gx2 and ax2 > gx1; both edge rows
    # are non-decreasing in ix, so the overlapping ix form one contiguous window [ix0, ix1).
    x1, x2, y1, y2 = e.x1[c_idx], e.x2[c_idx], e.y1[c_idx], e.y2[c_idx]
    rt = r.t().contiguous()  # [4, Bk]: each row below is a contiguous [Bk, 1] view
    ix0 = torch.searchsorted(x2, rt[0, :, None], right=True)[:, 0]
    ix1 = torch.searchsorted(x1, rt[2, :, None], right=False)[:, 0]
    iy0 = torch.searchsorted(y2, rt[1, :, None], right=True)[:, 0]
    iy1 = torch.searchsorted(y1, rt[3, :, None], right=False)[:, 0]
    wx = (ix1 - ix0).clamp_min(0)
    wy = (iy1 - iy0).clamp_min(0)
    nz = anchors.combo_nz[c_idx]
    count = wx * wy * nz  # [Bk]
    total = int(count.sum())
    dev = gt_rect.device
    if total == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=dev)
        return empty, empty
    block = torch.repeat_interleave(torch.arange(count.numel(), device=dev), count, output_size=total)
    start = torch.cumsum(count, 0) - count
    local = torch.arange(total, device=dev) - start[block]
    wxb = wx[block]
    wyb = wy[block]
    ix = ix0[block] + local % wxb
    t = local // wxb
    iy = iy0[block] + t % wyb
    iz = t // wyb
    cb = c_idx[block]
    st = anchors.combo_stride[cb]  # [P, 3]
    flat = anchors.combo_base[cb] + iz * st[:, 0] + iy * st[:, 1] + ix * st[:, 2]
    return flat, g_idx[block]


def candidate_iou(
    anchors: Anchors, gt_boxes: torch.Tensor, gt_rect: torch.Tensor, anchor: torch.Tensor, gt: torch.Tensor,
    iou: IouKind, convention: str, framework: Framework = Framework.PCDET,
) -> torch.Tensor:
    """float32 ``[P]`` framework IoU of the candidate pairs (the dense IoU's arithmetic, pair by pair).

    Rotated IoUs use OpenPCDet's 1 cm corner margin for ``framework`` pcdet (``boxes_iou3d_gpu`` runs that kernel;
    MATCH_HEIGHT) and exact geometry otherwise.
    """
    if iou is IouKind.NEAREST_BEV:
        return ops.xyxy_iou_aligned(anchors.xyxy[convention][anchor], gt_rect[gt]).to(torch.float32)
    margin = framework is Framework.PCDET
    fn = ops.box_iou_3d_aligned if iou is IouKind.IOU_3D else ops.box_iou_bev_aligned
    return fn(anchors.boxes[anchor], gt_boxes[gt, :7], margin_compat=margin).to(torch.float32)
