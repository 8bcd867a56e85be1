"""Dense and sparse rotated IoU built on the aligned kernels and AABB candidate pairs.

Non-candidate pairs (AABBs of the rotated rectangles do not overlap with positive area) are exactly 0, which the
aligned kernels also return for them (separating-axis test), so the dense matrices equal the aligned kernel pair by
pair (the same elementwise kernel on a subset of the pairs).
"""

from __future__ import annotations

import torch

from assignaudit.ops._checks import check_pair
from assignaudit.ops.pairs import aabb_overlap_pairs
from assignaudit.ops.rotated import MARGIN, bev_aabb, box_iou_3d_aligned, box_iou_bev_aligned

def _candidates(a: torch.Tensor, b: torch.Tensor, margin_compat: bool,
                ordered: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    # The margin kernel counts corners up to 1 cm outside a box: grow the AABBs by more than 1 cm * sqrt(2).
    pad = 1.5 * MARGIN if margin_compat else 0.0
    return aabb_overlap_pairs(bev_aabb(a, pad), bev_aabb(b, pad), ordered=ordered)


def box_iou_bev_sparse(a: torch.Tensor, b: torch.Tensor, *, min_iou: float = 0.0,
                       margin_compat: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rotated BEV IoU on the pairs that can overlap, without materialising ``N x M``.

    Args:
        a: ``Tensor[N, 7+]``, b: ``Tensor[M, 7+]`` canonical boxes, same dtype/device.
        min_iou: keep pairs with ``iou > min_iou`` (strict; the default drops exact zeros).
        margin_compat: OpenPCDet's 1 cm corner margin (`assignaudit.ops.rotated`).

    Returns:
        ``(ia, ib, iou)``: ``LongTensor[P]``, ``LongTensor[P]``, ``Tensor[P]`` (input dtype), sorted by ``(ia, ib)``;
        ``iou[k]`` is `box_iou_bev_aligned` of that pair (same elementwise kernel; identical bits in the tests, though
        torch does not promise that vectorised and scalar sin/cos agree to the last bit).
    """
    check_pair("a", a, "b", b)
    ia, ib = _candidates(a, b, margin_compat)
    iou = box_iou_bev_aligned(a[ia], b[ib], margin_compat=margin_compat)
    keep = iou > min_iou
    return ia[keep], ib[keep], iou[keep]


def box_iou_bev(a: torch.Tensor, b: torch.Tensor, *, margin_compat: bool = False) -> torch.Tensor:
    """Dense exact rotated BEV IoU ``Tensor[N, 7+] x Tensor[M, 7+] -> Tensor[N, M]`` in the input dtype.

    ``inter / max(area_a + area_b - inter, 1e-8)``; z ignored. Entry ``[i, j]`` equals
    ``box_iou_bev_aligned(a[i:i+1], b[j:j+1])``. Only the output is ``N x M``; the work is on candidate pairs.
    """
    check_pair("a", a, "b", b)
    out = a.new_zeros((a.shape[0], b.shape[0]))
    ia, ib, iou = box_iou_bev_sparse(a, b, min_iou=float("-inf"), margin_compat=margin_compat)
    out[ia, ib] = iou
    return out


def box_iou_3d(a: torch.Tensor, b: torch.Tensor, *, margin_compat: bool = False) -> torch.Tensor:
    """Dense 3D IoU ``Tensor[N, 7+] x Tensor[M, 7+] -> Tensor[N, M]``: rotated BEV intersection x centre-z height
    overlap over ``max(vol_a + vol_b - inter, 1e-6)`` (OpenPCDet ``boxes_iou3d_gpu``). Entry ``[i, j]`` equals
    `box_iou_3d_aligned` on that pair."""
    check_pair("a", a, "b", b)
    out = a.new_zeros((a.shape[0], b.shape[0]))
    ia, ib = _candidates(a, b, margin_compat)
    out[ia, ib] = box_iou_3d_aligned(a[ia], b[ib], margin_compat=margin_compat)
    return out
