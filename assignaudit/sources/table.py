"""A generic box table (Parquet or CSV) as canonical frames.

Columns (one row per box, boxes already in the canonical convention of `assignaudit.conventions`: LiDAR frame,
metres, centre z, dx = length along the heading, CCW yaw in radians):

    required   frame_id, class, x, y, z, dx, dy, dz, yaw
    optional   vx, vy (m/s; missing -> NaN), num_lidar_pts (missing or empty -> -1)

``num_lidar_pts = -1`` means *unknown*: min-points filters (OpenPCDet ``FILTER_BY_MIN_POINTS``, mmdet3d
``ObjectNameFilter``/``num_lidar_pts > 0`` masks) must treat it as "not filtered", like the nuScenes devkit does
for predictions (``num_pts = -1`` is never dropped). Frames are grouped by ``frame_id`` in first-appearance order;
``detection_class`` and ``category`` are both ``class``; yaw is wrapped to [-pi, pi).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from assignaudit.conventions import BOX_DIM, wrap_yaw
from assignaudit.errors import DataError
from assignaudit.sources.base import Frame, SourceInfo
from assignaudit.sources.validate import check_boxes, check_num_points, numeric_column

REQUIRED_COLUMNS: tuple[str, ...] = ("frame_id", "class", "x", "y", "z", "dx", "dy", "dz", "yaw")
OPTIONAL_COLUMNS: tuple[str, ...] = ("vx", "vy", "num_lidar_pts")
UNKNOWN_NUM_PTS = -1


def read_box_table(path: str | Path) -> pd.DataFrame:
    """Read a ``.parquet``/``.pq`` or ``.csv`` box table; `DataError` if missing, unreadable or of another type."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"box table not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, dtype={"frame_id": str, "class": str})
    except Exception as err:  # noqa: BLE001 - pyarrow/pandas raise many types for a corrupt file
        raise DataError(f"cannot read box table {path}: {type(err).__name__}: {str(err).splitlines()[0]}") from None
    raise DataError(f"box table {path} must be .parquet or .csv, got {suffix or 'no extension'!r}")


class TableSource:
    """`BoxSource` over a generic Parquet/CSV box table. ``TableSource(path)``; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        df = read_box_table(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise DataError(f"box table {path} lacks required column {missing[0]!r} "
                            f"(required: {', '.join(REQUIRED_COLUMNS)})")
        n = len(df)
        num = ["x", "y", "z", "dx", "dy", "dz", "yaw"]
        try:
            vals = df[num].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(c for c in num if not pd.api.types.is_numeric_dtype(df[c]))
            raise DataError(f"box table {path}: column {bad!r} must be numeric") from None
        frame_ids = df["frame_id"].astype(str).to_numpy(dtype=object)
        if df["frame_id"].isna().any() or df["class"].isna().any():
            row = int(np.flatnonzero(df["frame_id"].isna().to_numpy() | df["class"].isna().to_numpy())[0])
            raise DataError(f"box table {path}: row {row} has an empty frame_id or class")
        bad_row = ~np.all(np.isfinite(vals), axis=1) | ~np.all(vals[:, 3:6] > 0, axis=1)
        if bad_row.any():
            row = int(np.argmax(bad_row))
            raise DataError(f"box table {path}: row {row} (frame {frame_ids[row]}) has a non-finite value or a "
                            f"non-positive size: {dict(zip(num, vals[row].tolist()))}")

        boxes = np.full((n, BOX_DIM), np.nan)
        boxes[:, :7] = vals
        boxes[:, 6] = wrap_yaw(vals[:, 6])
        where = f"box table {path}"
        for j, c in ((7, "vx"), (8, "vy")):
            if c in df.columns:  # a string is an error, not NaN (assignaudit/sources/validate.py)
                boxes[:, j] = numeric_column(df[c].to_numpy(), where, c)
        check_boxes(boxes, where, ids=frame_ids)
        if "num_lidar_pts" in df.columns:
            raw = numeric_column(df["num_lidar_pts"].to_numpy(), where, "num_lidar_pts")
            neg = np.flatnonzero(raw < 0)
            if neg.size:  # an empty cell means unknown (-1); a negative count written in the file is an error
                r = int(neg[0])
                raise DataError(f"{where}: row {r} ({frame_ids[r]}): num_lidar_pts = {raw[r]:g} (must be >= 0; "
                                "leave the cell empty for unknown)")
            pts = check_num_points(np.where(np.isfinite(raw), raw, UNKNOWN_NUM_PTS), where, ids=frame_ids)
        else:
            pts = np.full(n, UNKNOWN_NUM_PTS, dtype=np.int64)

        # Group rows by frame_id, frames in first-appearance order, rows in file order within a frame.
        codes, uniques = pd.factorize(pd.Series(frame_ids), sort=False)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        self._groups = [order[bounds[i]:bounds[i + 1]] for i in range(len(uniques))]
        self._frame_ids = [str(u) for u in uniques]
        self._boxes = boxes
        self._cls = df["class"].astype(str).to_numpy(dtype=object)
        self._pts = pts
        self.info = SourceInfo(kind="table", dataroot=str(path), version="", split="",
                               num_scenes=0, num_samples=len(self._frame_ids))

    def __len__(self) -> int:
        return len(self._frame_ids)

    def sample_tokens(self) -> list[str]:
        return list(self._frame_ids)

    def frame(self, index: int) -> Frame:
        rows = self._groups[index]
        k = rows.shape[0]
        none = np.full(k, None, dtype=object)
        return Frame(
            sample_token=self._frame_ids[index],
            boxes_lidar=self._boxes[rows].copy(),
            detection_class=self._cls[rows].copy(),
            category=self._cls[rows].copy(),
            ann_token=none,
            instance_token=none.copy(),
            num_lidar_pts=self._pts[rows].copy(),
            num_radar_pts=np.full(k, UNKNOWN_NUM_PTS, dtype=np.int64),
        )

    def frames(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self.frame(i)
