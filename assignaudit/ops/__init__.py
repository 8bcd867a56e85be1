r"""Public geometry ops: rotated BEV / 3D IoU (dense, aligned, sparse), nearest-BEV IoU, NMS and circle NMS.

Contract (every function):

* **Boxes** are canonical ``Tensor[N, 7+]`` ``x, y, z, dx, dy, dz, yaw, ...`` (`assignaudit.conventions`): LiDAR
  frame, metres, z at the geometric centre, yaw in radians counter-clockwise from +x. Extra columns are ignored.
* **Dtype/device**: computed in the input dtype (float32 for framework parity; float64 works) on the input device.
  The code is plain eager torch, the same on CPU and CUDA. Both inputs of a pairwise op must share dtype and device.
* **Purity**: inputs are never modified; results are new tensors. Malformed inputs raise
  `assignaudit.errors.DataError` with one line naming the argument.
* **Shapes**: dense ops return ``Tensor[N, M]``; ``*_aligned`` ops take row pairs ``(a[i], b[i])`` and return
  ``Tensor[N]``; sparse ops return ``(ia, ib, value)`` sorted by ``(ia, ib)``; NMS ops return ``LongTensor[K]``
  indices into the input in descending score order.

IoU definitions:

``box_iou_bev`` / ``box_iou_bev_aligned`` / ``box_iou_bev_sparse``
    exact rotated BEV IoU, ``inter / max(area_a + area_b - inter, 1e-8)`` (z ignored). Polygon clipping in float32
    agrees with shapely to ~1e-6. ``margin_compat=True`` replays OpenPCDet's CUDA kernel instead, whose
    ``check_in_box2d`` counts corners within 1 cm as inside (``iou3d_nms_kernel.cu``, MARGIN = 1e-2): it moves IoU
    by up to ~1e-2 and changes NMS results. Off by default. See `assignaudit.ops.rotated`.
``box_iou_3d`` / ``box_iou_3d_aligned``
    rotated BEV intersection x ``max(0, min(top) - max(bottom))`` (centre z) over ``max(vol_a + vol_b - inter,
    1e-6)``: OpenPCDet ``boxes_iou3d_gpu`` (``MATCH_HEIGHT: True``).
``nearest_bev_xyxy`` / ``box_iou_nearest_bev`` / ``box_iou_nearest_bev_aligned`` / ``xyxy_iou_aligned``
    the anchor assigners' IoU: boxes snapped to axis-aligned rectangles, dx/dy swapped when
    ``|limit_period(yaw, 0.5, pi)| >= pi/4`` (``convention="pcdet"``) or ``> pi/4`` (``"mmdet3d"``), then
    ``inter / max(area_a + area_b - inter, 1e-6)`` in the frameworks' exact op order. Dense, aligned and
    precomputed-xyxy forms give **bit-identical** values for the same pair (forced matches compare with ``==``).
    See `assignaudit.ops.nearest`.

Sparse paths: ``aabb_overlap_pairs`` (and `AabbIndex` to index a static set, such as anchors, once) enumerates
pairs of axis-aligned boxes that overlap with positive area, without an ``N x M`` mask; the rotated ops use the exact
AABB of each rotated rectangle (``bev_aabb``). Dense rotated IoU is computed on those candidates only; the other
entries are exactly 0 (the kernels' separating-axis test returns 0 for them as well).

NMS: ``nms_bev`` (greedy, ``IoU > threshold`` suppresses, stable score order), ``batched_nms_bev`` (per class;
``post_max_per_class`` selects OpenPCDet's per-class vs mmdet3d's global ``max_num``), ``circle_nms``
(``min_radius_sq`` in square metres, suppress when ``d^2 <= min_radius_sq``). Ties in score keep input order.
"""

from assignaudit.ops.dense import box_iou_3d, box_iou_bev, box_iou_bev_sparse
from assignaudit.ops.nearest import (
    box_iou_nearest_bev,
    box_iou_nearest_bev_aligned,
    nearest_bev_xyxy,
    xyxy_iou,
    xyxy_iou_aligned,
)
from assignaudit.ops.nms import batched_nms_bev, circle_nms, nms_bev
from assignaudit.ops.pairs import AabbIndex, aabb_overlap_pairs
from assignaudit.ops.rotated import bev_aabb, bev_intersection_aligned, box_iou_3d_aligned, box_iou_bev_aligned

__all__ = [
    "AabbIndex",
    "aabb_overlap_pairs",
    "batched_nms_bev",
    "bev_aabb",
    "bev_intersection_aligned",
    "box_iou_3d",
    "box_iou_3d_aligned",
    "box_iou_bev",
    "box_iou_bev_aligned",
    "box_iou_bev_sparse",
    "box_iou_nearest_bev",
    "box_iou_nearest_bev_aligned",
    "circle_nms",
    "nearest_bev_xyxy",
    "nms_bev",
    "xyxy_iou",
    "xyxy_iou_aligned",
]
