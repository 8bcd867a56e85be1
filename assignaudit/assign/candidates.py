"""Sparse anchor-GT candidate pairs from the anchor grid, and their IoU.

Only ~0.3 % of anchor-GT pairs of a nuScenes frame overlap at all (performance-facts.md), so the dense ``[A, K]``
IoU matrix is never built: each GT's BEV rectangle maps, per anchor combo (level, set, size, rotation), to a window
of grid cells found by ``searchsorted`` on the combo's sorted anchor edges, and the windows of all GT and all combos
are enumerated in one vectorised pass (``repeat_interleave`` + index arithmetic).

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
    rt = gt_rect.index_select(0, g_idx).t().contiguous()  # [4, Bk]: each row below is a contiguous [Bk, 1] view
    # Batched searchsorted over each block's own combo row. x-overlap <=> ax1 < gx2 and ax2 > gx1; both edge rows
    # are non-decreasing in ix, so the overlapping ix form one contiguous window [ix0, ix1).
    # (index_select, not t[idx]: torch's CPU advanced indexing is several times slower for plain row gathers.)
    ix0 = torch.searchsorted(e.x2.index_select(0, c_idx), rt[0, :, None], right=True)[:, 0]
    ix1 = torch.searchsorted(e.x1.index_select(0, c_idx), rt[2, :, None], right=False)[:, 0]
    iy0 = torch.searchsorted(e.y2.index_select(0, c_idx), rt[1, :, None], right=True)[:, 0]
    iy1 = torch.searchsorted(e.y1.index_select(0, c_idx), rt[3, :, None], right=False)[:, 0]
    wx = (ix1 - ix0).clamp_min(0)
    wy = (iy1 - iy0).clamp_min(0)
    nz = anchors.combo_nz.index_select(0, c_idx)
    dev = gt_rect.device
    # Two-stage enumeration: blocks -> rows (one per (iz, iy) of the window, few), rows -> anchors along x (many).
    # Divisions stay on the short row level; the pair level is one repeat_interleave and an add.
    rows = wy * nz * (wx > 0)  # [Bk]: rows of a block with an empty x window are dropped
    n_rows = int(rows.sum())
    if n_rows == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=dev)
        return empty, empty
    st = anchors.combo_stride.index_select(0, c_idx)  # [Bk, 3]: (z, y, x) strides
    block_base = anchors.combo_base.index_select(0, c_idx) + iy0 * st[:, 1] + ix0 * st[:, 2]  # [Bk]
    row_block = torch.repeat_interleave(torch.arange(rows.numel(), device=dev), rows, output_size=n_rows)  # [R]
    row_local = torch.arange(n_rows, device=dev) - (torch.cumsum(rows, 0) - rows).index_select(0, row_block)
    wy_r = wy.index_select(0, row_block)
    st_r = st.index_select(0, row_block)  # [R, 3]
    iy_r, iz_r = row_local % wy_r, row_local // wy_r  # rows run iy fastest, then iz (the flat order)
    row_base = block_base.index_select(0, row_block) + iy_r * st_r[:, 1] + iz_r * st_r[:, 0]
    row_len = wx.index_select(0, row_block)  # [R]
    total = int(row_len.sum())
    pair_row = torch.repeat_interleave(torch.arange(n_rows, device=dev), row_len, output_size=total)  # [P]
    row_start = torch.cumsum(row_len, 0) - row_len
    # ix offset * x stride = (pair - row_start) * sx; fold row_base - row_start * sx into one per-row offset.
    sx_r = st_r[:, 2]
    ix_step = sx_r.index_select(0, pair_row)
    offset_r = row_base - row_start * sx_r
    flat = offset_r.index_select(0, pair_row) + torch.arange(total, device=dev) * ix_step
    return flat, g_idx.index_select(0, row_block.index_select(0, pair_row))


def candidate_iou(
    anchors: Anchors, gt_boxes: torch.Tensor, gt_rect: torch.Tensor, anchor: torch.Tensor, gt: torch.Tensor,
    iou: IouKind, convention: str, framework: Framework = Framework.PCDET,
) -> torch.Tensor:
    """float32 ``[P]`` framework IoU of the candidate pairs (the dense IoU's arithmetic, pair by pair).

    Rotated IoUs use OpenPCDet's 1 cm corner margin for ``framework`` pcdet (``boxes_iou3d_gpu`` runs that kernel;
    MATCH_HEIGHT) and exact geometry otherwise.
    """
    if iou is IouKind.NEAREST_BEV:
        return ops.xyxy_iou_aligned(anchors.xyxy[convention].index_select(0, anchor),
                                    gt_rect.index_select(0, gt)).to(torch.float32)
    margin = framework is Framework.PCDET
    fn = ops.box_iou_3d_aligned if iou is IouKind.IOU_3D else ops.box_iou_bev_aligned
    return fn(anchors.boxes.index_select(0, anchor), gt_boxes[:, :7].index_select(0, gt),
              margin_compat=margin).to(torch.float32)
