"""One set of input rules for every source (and for predictions): what a box, a quaternion or a point count must
look like before it enters the pipeline.

Every source (`nuscenes`, `table`, the info-file readers, `kitti`, `av2`) and the prediction loaders call these on
their arrays, vectorised, and raise the `DataError` they return: one line naming the file (``where``), the first
offending row or record and the rule. The rules are the same everywhere, so a value refused in a prediction file is
refused in the GT too.

* centre, size and yaw finite; sizes strictly positive (a zero-size box has no IoU with anything and silently
  becomes a "no overlap" zero-positive GT);
* velocity finite or NaN (NaN means unknown, as the devkit writes it); infinity is refused;
* quaternions finite with ``| |q| - 1 | <= QUATERNION_NORM_TOL`` (the devkit normalises silently; a norm of 2 is a
  corrupted file, not a rotation);
* point counts integers >= 0, or -1 for "unknown" (boxes whose format has no count);
* numeric columns numeric: a string in a number column is an error, never read as NaN.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from assignaudit.errors import DataError

QUATERNION_NORM_TOL: Final = 1e-3
"""A rotation quaternion whose norm is off 1 by more than this is refused (shared with the prediction loaders)."""
UNKNOWN_NUM_PTS: Final = -1


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _label(where: str, row: int, ids) -> str:
    if ids is None:
        return f"{where}: row {row}"
    return f"{where}: row {row} ({ids[row]})"


def check_boxes(boxes: np.ndarray, where: str, ids=None) -> None:
    """Canonical ``[N, 7]`` or ``[N, 9]`` boxes: finite centre/size/yaw, sizes > 0, velocity finite or NaN.

    ``ids`` (optional ``[N]``): what to call row i in the message (a frame id, an annotation token).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] not in (7, 9):
        raise DataError(f"{where}: boxes have shape {boxes.shape}, expected [N, 7] or [N, 9]")
    core = boxes[:, :7]
    row = _first(~np.isfinite(core).all(axis=1))
    if row is not None:
        raise DataError(f"{_label(where, row, ids)}: non-finite box centre, size or yaw {core[row].tolist()}")
    row = _first(~(core[:, 3:6] > 0).all(axis=1))
    if row is not None:
        raise DataError(f"{_label(where, row, ids)}: box size must be > 0, got dx, dy, dz = {core[row, 3:6].tolist()}")
    if boxes.shape[1] == 9:
        row = _first(np.isinf(boxes[:, 7:9]).any(axis=1))
        if row is not None:
            raise DataError(f"{_label(where, row, ids)}: infinite velocity {boxes[row, 7:9].tolist()} (NaN = unknown)")


def check_quaternions(q_wxyz: np.ndarray, where: str, ids=None) -> None:
    """``[N, 4]`` (w, x, y, z): finite and unit within `QUATERNION_NORM_TOL`."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 4:
        raise DataError(f"{where}: rotations have shape {q.shape}, expected [N, 4] (w, x, y, z)")
    finite = np.isfinite(q).all(axis=1)
    norm = np.linalg.norm(np.where(finite[:, None], q, 0.0), axis=1)
    row = _first(~finite | (np.abs(norm - 1.0) > QUATERNION_NORM_TOL))
    if row is not None:
        raise DataError(f"{_label(where, row, ids)}: rotation {q[row].tolist()} is not a unit quaternion "
                        f"(|q| = {norm[row]:.6g})")


def check_num_points(num_pts: np.ndarray, where: str, field: str = "num_lidar_pts", ids=None) -> np.ndarray:
    """Point counts as int64: integers >= 0, or -1 (unknown). Returns the int64 array."""
    arr = np.asarray(num_pts)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        row = _first(bad)
        if row is not None:
            raise DataError(f"{_label(where, row, ids)}: {field} must be an integer, got {arr[row]!r}")
    elif arr.dtype.kind not in "iub":
        raise DataError(f"{where}: {field} must be integers, got values of type {arr.dtype}")
    out = arr.astype(np.int64)
    row = _first(out < UNKNOWN_NUM_PTS)
    if row is not None:
        raise DataError(f"{_label(where, row, ids)}: {field} = {out[row]} (must be >= 0, or -1 for unknown)")
    return out


def numeric_column(values, where: str, column: str) -> np.ndarray:
    """A column that must hold numbers (NaN / None allowed) as float64; a string is an error, not NaN."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iufb":
        return arr.astype(np.float64)
    out = np.empty(arr.shape[0], dtype=np.float64)
    for i, v in enumerate(arr.tolist()):  # object columns only (already a format error path): per-value check
        if v is None or (isinstance(v, float) and v != v):
            out[i] = np.nan
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[i] = float(v)
        else:
            raise DataError(f"{where}: row {i}: column {column!r} must be numeric, got {v!r}")
    return out
