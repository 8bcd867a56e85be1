"""LiDAR point files and points-per-box counts for the raw-dataset sources.

`count_points_in_boxes` reproduces OpenPCDet's ``roiaware_pool3d_utils.points_in_boxes_cpu``
(pcdet/ops/roiaware_pool3d/src/roiaware_pool3d.cpp::check_pt_in_box3d_cpu), the count that
``create_groundtruth_database`` stores as ``num_points_in_gt`` in ``kitti_dbinfos_*.pkl`` (and so what
``filter_by_min_points`` compares against):

* boxes and points are cast to float32 (``boxes.float()``, ``points.float()``);
* a point is out when ``|z - cz| > dz / 2`` (float32 difference, compared in double as C promotes ``dz / 2.0``),
  so a point exactly on the top or bottom face is in;
* ``(x - cx, y - cy)`` rotated by ``-heading`` with float32 ``cos``/``sin``; in when
  ``|local_x| < dx / 2 + MARGIN`` and ``|local_y| < dy / 2 + MARGIN``, ``MARGIN = 1e-2f`` (strict, 1 cm of slack in
  BEV, none in z).

Vectorised over boxes x points (in chunks that bound memory), no per-point Python loop. ``cos``/``sin`` come from
numpy's float32 routines, which may differ from the C library's in the last bit: a point within ~1e-7 m of a face can
flip, nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np

from assignaudit.errors import DataError

PCDET_IN_BOX_MARGIN: Final = float(np.float32(1e-2))
"""``const float MARGIN = 1e-2`` of ``check_pt_in_box3d_cpu``, as the double it is promoted to."""
_CHUNK_ELEMENTS: Final = 1 << 22


def read_points_bin(path: str | Path, num_features: int = 4) -> np.ndarray:
    """A KITTI-style ``.bin`` point cloud: float32 records of ``num_features`` values -> ``[P, num_features]``.

    `DataError` when the size is not a whole number of records (a truncated or foreign file).
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.float32)
    except OSError as err:
        raise DataError(f"cannot read point cloud {path}: {err.strerror or err}") from None
    if data.size % num_features:
        raise DataError(f"point cloud {path}: {data.size * 4} bytes is not a whole number of "
                        f"{num_features}-float32 points (truncated or not a KITTI .bin)")
    return data.reshape(-1, num_features)


def check_points_file_size(path: Path, num_features: int = 4) -> None:
    """The cheap part of `read_points_bin`'s check (file size only), for validating a dataset before iterating."""
    size = path.stat().st_size
    if size % (4 * num_features):
        raise DataError(f"point cloud {path}: {size} bytes is not a whole number of "
                        f"{num_features}-float32 points (truncated or not a KITTI .bin)")


def points_in_boxes_mask(points_xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """bool ``[N, P]``: point j inside box i (``points_in_boxes_cpu`` semantics, module docstring).

    ``points_xyz [P, 3+]`` (extra columns ignored), ``boxes [N, 7+]`` ``x, y, z, dx, dy, dz, heading`` with z the
    box centre.
    """
    pts = np.asarray(points_xyz)[:, :3].astype(np.float32)
    b = np.asarray(boxes)[:, :7].astype(np.float32)
    return _inside(pts, b)


def _inside(pts: np.ndarray, b: np.ndarray) -> np.ndarray:
    cx, cy, cz = b[:, 0:1], b[:, 1:2], b[:, 2:3]
    half_dz = b[:, 5:6].astype(np.float64) / 2.0
    half_dx = b[:, 3:4].astype(np.float64) / 2.0 + PCDET_IN_BOX_MARGIN
    half_dy = b[:, 4:5].astype(np.float64) / 2.0 + PCDET_IN_BOX_MARGIN
    neg = -b[:, 6:7]
    cosa, sina = np.cos(neg), np.sin(neg)
    px, py, pz = pts[None, :, 0], pts[None, :, 1], pts[None, :, 2]
    in_z = ~(np.abs(pz - cz) > half_dz)
    sx, sy = px - cx, py - cy
    local_x = sx * cosa + sy * (-sina)
    local_y = sx * sina + sy * cosa
    return in_z & (np.abs(local_x) < half_dx) & (np.abs(local_y) < half_dy)


def count_points_in_boxes(points_xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """int64 ``[N]``: how many points each box contains (`points_in_boxes_mask` summed, computed in chunks)."""
    pts = np.asarray(points_xyz)[:, :3].astype(np.float32)
    b = np.asarray(boxes)[:, :7].astype(np.float32)
    n = b.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    if n == 0 or pts.shape[0] == 0:
        return counts
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, pts.shape[0], step):
        counts += _inside(pts[start:start + step], b).sum(axis=1)
    return counts
