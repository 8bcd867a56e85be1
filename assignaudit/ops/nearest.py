r"""The frameworks' "nearest BEV" IoU: snap each box to an axis-aligned BEV rectangle, then plain xyxy IoU.

This is the IoU every shipped anchor head assigns with (OpenPCDet ``MATCH_HEIGHT: False``, mmdet3d
``BboxOverlapsNearest3D``). Forced positives compare IoUs with *exact float equality*, so the arithmetic here
follows the upstream operation order step by step; do not "simplify" it.

Upstream (spec §3.2, §6.3):

* OpenPCDet ``pcdet/utils/box_utils.py``: ``boxes3d_lidar_to_aligned_bev_boxes`` +
  ``boxes_iou_normal`` (called by ``boxes3d_nearest_bev_iou``).
* mmdet3d ``structures/bbox_3d/base_box3d.py::nearest_bev`` + mmdet ``bbox_overlaps``
  (``structures/bbox/bbox_overlaps.py``), through ``structures/ops/iou3d_calculator.py::bbox_overlaps_nearest_3d``.

Both compute, in the input dtype (float32 in the frameworks):

* ``r = |limit_period(yaw, 0.5, pi)|`` = ``|yaw - floor(yaw / pi + 0.5) * pi|`` in ``[0, pi/2]``;
* swap (dx, dy) when ``r >= pi/4`` (OpenPCDet: ``torch.where(r < pi/4, [dx, dy], [dy, dx])``) or ``r > pi/4``
  (mmdet3d: ``torch.where(r > pi/4, [dy, dx], [dx, dy])``). The two disagree only when r is exactly the float
  ``pi/4`` as torch compares it (the Python float is cast to the tensor's dtype);
* ``xyxy = [x - ex/2, y - ey/2, x + ex/2, y + ey/2]``;
* ``inter = clamp(min(x2) - max(x1), 0) * clamp(min(y2) - max(y1), 0)``; ``area = (x2 - x1) * (y2 - y1)``;
  ``iou = inter / max((area_a + area_b) - inter, 1e-6)``. OpenPCDet ``clamp_min(..., 1e-6)`` and mmdet
  ``torch.max(union, union.new_tensor([1e-6]))`` round 1e-6 to the same dtype, so both give the same bits.

Because every step is an elementwise IEEE operation in the same order, the dense ``[N, M]`` and the aligned
``[N]`` forms return bit-identical values for the same pair, and CPU and CUDA agree bit for bit (no reductions,
no fused multiply-add in these eager ops).
"""

from __future__ import annotations

import math

import torch

from assignaudit.conventions import limit_period
from assignaudit.errors import DataError
from assignaudit.ops._checks import check_boxes

CONVENTIONS = ("pcdet", "mmdet3d")
_XYXY_EPS = 1e-6  # both frameworks' union floor for axis-aligned IoU


def nearest_bev_xyxy(boxes: torch.Tensor, convention: str = "pcdet") -> torch.Tensor:
    """Snap canonical boxes to the frameworks' axis-aligned BEV rectangle.

    Args:
        boxes: ``Tensor[N, 7+]`` canonical boxes (x, y, z, dx, dy, dz, yaw, ...), any float dtype/device.
        convention: ``"pcdet"`` (swap dx/dy when ``r >= pi/4``) or ``"mmdet3d"`` (swap when ``r > pi/4``).

    Returns:
        ``Tensor[N, 4]`` ``[x1, y1, x2, y2]`` in the boxes' frame and dtype; metres.
    """
    check_boxes("boxes", boxes)
    if convention not in CONVENTIONS:
        raise DataError(f"unknown nearest-BEV convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    # limit_period with period pi, as both frameworks call it (same op order as conventions.limit_period).
    rot_angle = limit_period(boxes[:, 6], 0.5, math.pi).abs()  # [N]
    if convention == "pcdet":
        # OpenPCDet box_utils.boxes3d_lidar_to_aligned_bev_boxes: keep (dx, dy) iff r < pi/4.
        choose_dims = torch.where(rot_angle[:, None] < math.pi / 4, boxes[:, [3, 4]], boxes[:, [4, 3]])  # [N, 2]
    else:
        # mmdet3d BaseInstance3DBoxes.nearest_bev: swap iff r > pi/4.
        choose_dims = torch.where(rot_angle[:, None] > math.pi / 4, boxes[:, [4, 3]], boxes[:, [3, 4]])  # [N, 2]
    centres = boxes[:, 0:2]
    return torch.cat((centres - choose_dims / 2, centres + choose_dims / 2), dim=1)


def _check_xyxy(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[1] != 4 or not t.is_floating_point():
        shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise DataError(f"{name}: expected a floating tensor of shape [N, 4] (x1, y1, x2, y2), got {shape}")


def xyxy_iou_aligned(a_xyxy: torch.Tensor, b_xyxy: torch.Tensor) -> torch.Tensor:
    """IoU of row pairs of axis-aligned boxes, in the frameworks' op order.

    Args:
        a_xyxy, b_xyxy: ``Tensor[N, 4]`` ``[x1, y1, x2, y2]``, same dtype and device.

    Returns:
        ``Tensor[N]`` IoU of ``(a[i], b[i])``; bit-identical to the matching entry of `xyxy_iou`.
    """
    _check_xyxy("a_xyxy", a_xyxy)
    _check_xyxy("b_xyxy", b_xyxy)
    if a_xyxy.shape[0] != b_xyxy.shape[0]:
        raise DataError(f"a_xyxy and b_xyxy must have the same number of rows, got {a_xyxy.shape[0]} and "
                        f"{b_xyxy.shape[0]}")
    x_min = torch.max(a_xyxy[:, 0], b_xyxy[:, 0])
    x_max = torch.min(a_xyxy[:, 2], b_xyxy[:, 2])
    y_min = torch.max(a_xyxy[:, 1], b_xyxy[:, 1])
    y_max = torch.min(a_xyxy[:, 3], b_xyxy[:, 3])
    x_len = torch.clamp_min(x_max - x_min, min=0)
    y_len = torch.clamp_min(y_max - y_min, min=0)
    area_a = (a_xyxy[:, 2] - a_xyxy[:, 0]) * (a_xyxy[:, 3] - a_xyxy[:, 1])
    area_b = (b_xyxy[:, 2] - b_xyxy[:, 0]) * (b_xyxy[:, 3] - b_xyxy[:, 1])
    inter = x_len * y_len
    return inter / torch.clamp_min(area_a + area_b - inter, min=_XYXY_EPS)


def xyxy_iou(a_xyxy: torch.Tensor, b_xyxy: torch.Tensor) -> torch.Tensor:
    """Dense IoU of axis-aligned boxes: ``Tensor[N, 4] x Tensor[M, 4] -> Tensor[N, M]`` (OpenPCDet
    ``boxes_iou_normal`` / mmdet ``bbox_overlaps`` op order). Materialises ``[N, M]``; see `aabb_overlap_pairs` +
    `xyxy_iou_aligned` for large inputs."""
    _check_xyxy("a_xyxy", a_xyxy)
    _check_xyxy("b_xyxy", b_xyxy)
    x_min = torch.max(a_xyxy[:, 0, None], b_xyxy[None, :, 0])  # [N, M]
    x_max = torch.min(a_xyxy[:, 2, None], b_xyxy[None, :, 2])
    y_min = torch.max(a_xyxy[:, 1, None], b_xyxy[None, :, 1])
    y_max = torch.min(a_xyxy[:, 3, None], b_xyxy[None, :, 3])
    x_len = torch.clamp_min(x_max - x_min, min=0)
    y_len = torch.clamp_min(y_max - y_min, min=0)
    area_a = (a_xyxy[:, 2] - a_xyxy[:, 0]) * (a_xyxy[:, 3] - a_xyxy[:, 1])  # [N]
    area_b = (b_xyxy[:, 2] - b_xyxy[:, 0]) * (b_xyxy[:, 3] - b_xyxy[:, 1])  # [M]
    inter = x_len * y_len  # [N, M]
    return inter / torch.clamp_min(area_a[:, None] + area_b[None, :] - inter, min=_XYXY_EPS)


def box_iou_nearest_bev(a: torch.Tensor, b: torch.Tensor, convention: str = "pcdet") -> torch.Tensor:
    """Dense nearest-BEV IoU ``Tensor[N, 7+] x Tensor[M, 7+] -> Tensor[N, M]`` (z ignored), in the input dtype."""
    return xyxy_iou(nearest_bev_xyxy(a, convention), nearest_bev_xyxy(b, convention))


def box_iou_nearest_bev_aligned(a: torch.Tensor, b: torch.Tensor, convention: str = "pcdet") -> torch.Tensor:
    """Nearest-BEV IoU of row pairs ``(a[i], b[i])`` -> ``Tensor[N]``; bit-identical to `box_iou_nearest_bev` and to
    `xyxy_iou_aligned` on precomputed `nearest_bev_xyxy` boxes."""
    if a.shape[0] != b.shape[0]:
        raise DataError(f"a and b must have the same number of rows, got {a.shape[0]} and {b.shape[0]}")
    return xyxy_iou_aligned(nearest_bev_xyxy(a, convention), nearest_bev_xyxy(b, convention))
