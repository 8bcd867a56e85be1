"""Argoverse 2 sensor-dataset annotations (``--av2-root DIR --split train|val``) as a source.

Layout (av2-api ``AV2SensorDataLoader`` / ``SensorDataloader``: ``<root>/<split>/<log_id>/annotations.feather``)::

    <root>/<split>/<log_id>/annotations.feather      # one row per cuboid per annotated sweep
    <root>/<split>/<log_id>/sensors/lidar/<timestamp_ns>.feather   # optional: the sweeps themselves

Columns read (as ``av2.structures.cuboid.CuboidList.from_feather`` and ``av2.utils.io.read_all_annotations`` read
them): ``tx_m, ty_m, tz_m`` (cuboid centre), ``length_m, width_m, height_m`` (extents along the cuboid's x, y, z),
``qw, qx, qy, qz`` (scalar-first rotation), ``category``, ``timestamp_ns`` (required); ``num_interior_pts`` and
``track_uuid`` (optional: -1 / None when absent).

* Frames: one per ``(log, timestamp_ns)`` sweep, logs in sorted ``log_id`` order, sweeps by timestamp, rows in
  file order within a sweep. When ``sensors/lidar/`` exists, its sweeps without any annotation are frames too (with
  no boxes: every anchor of such a frame is a negative). ``sample_token`` is ``"<log_id>/<timestamp_ns>"`` (the
  ``uuid`` of OpenPCDet's argo2 info converter), ``scene_name`` the log id.
* Frame of the boxes: AV2 annotates each sweep in the ego-vehicle frame at the sweep timestamp, the frame its LiDAR
  points are stored in, so the canonical "LiDAR frame" of an AV2 frame IS the ego frame
  (`assignaudit.conventions.av2_ego_to_canonical`; heading from the quaternion as av2's evaluation and OpenPCDet's
  ``quat_to_yaw`` compute it). No global poses are read: ``yaw`` evaluates in this frame.
* Classes: AV2's own category names (``REGULAR_VEHICLE``, ``PEDESTRIAN``, ``BICYCLIST``, ...),
  ``detection_class == category``. OpenPCDet's argo2 configs use ``Regular_vehicle`` etc. (its converter applies
  ``.lower().capitalize()``): ``count`` says so and ``--class-map`` maps them. OpenPCDet's converter also drops
  cuboids with ``num_interior_pts == 0``; here they stay, with their count, as in the dataset.
* ``num_lidar_pts`` = ``num_interior_pts``; velocity NaN (AV2 annotations have none); no difficulty.

All logs are read and validated when the source is opened (`sources.validate`: finite positive sizes, unit
quaternions, point counts), so iteration never fails half-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from assignaudit.conventions import av2_ego_to_canonical
from assignaudit.errors import DataError
from assignaudit.sources.base import Frame, SourceInfo
from assignaudit.sources.validate import check_boxes, check_num_points, check_quaternions, numeric_column

ANNOTATIONS_FILE = "annotations.feather"
AV2_GEOMETRY_COLUMNS = ("tx_m", "ty_m", "tz_m", "length_m", "width_m", "height_m", "qw", "qx", "qy", "qz")
AV2_REQUIRED_COLUMNS = AV2_GEOMETRY_COLUMNS + ("category", "timestamp_ns")
AV2_OPTIONAL_COLUMNS = ("num_interior_pts", "track_uuid")
AV2_SPLITS_WITH_LABELS = ("train", "val")


@dataclass(frozen=True)
class _Log:
    log_id: str
    boxes: np.ndarray  # [A, 9] canonical
    category: np.ndarray  # object [A]
    track: np.ndarray  # object [A]
    num_pts: np.ndarray  # int64 [A]
    timestamps: np.ndarray  # int64 [F] sorted frames of the log
    rows: list[np.ndarray]  # per frame: row indices into the log arrays
    lidar_dir: Path | None


def read_annotations(path: Path):
    """One ``annotations.feather`` as a pandas DataFrame with the columns we use; `DataError` if unreadable or a
    required column is missing."""
    import pyarrow.feather as feather

    try:
        table = feather.read_table(path, memory_map=True)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
        raise DataError(f"cannot read AV2 annotations {path}: {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}") from None
    names = set(table.column_names)
    missing = [c for c in AV2_REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DataError(f"AV2 annotations {path} lack required column {missing[0]!r} (required: "
                        f"{', '.join(AV2_REQUIRED_COLUMNS)})")
    cols = [c for c in (*AV2_REQUIRED_COLUMNS, *AV2_OPTIONAL_COLUMNS) if c in names]
    return table.select(cols).to_pandas()


def _read_log(log_dir: Path) -> _Log:
    path = log_dir / ANNOTATIONS_FILE
    df = read_annotations(path)
    where = str(path)
    n = len(df)
    geom = np.column_stack([numeric_column(df[c].to_numpy(), where, c) for c in AV2_GEOMETRY_COLUMNS]) \
        if n else np.zeros((0, len(AV2_GEOMETRY_COLUMNS)))
    ts_col = df["timestamp_ns"]
    ts_raw = ts_col.to_numpy()
    if ts_raw.dtype.kind not in "iu":
        ts_f = numeric_column(ts_raw, where, "timestamp_ns")
        if not (np.isfinite(ts_f).all() and (ts_f == np.round(ts_f)).all()):
            row = int(np.flatnonzero(~np.isfinite(ts_f) | (ts_f != np.round(ts_f)))[0])
            raise DataError(f"{where}: row {row}: timestamp_ns must be an integer, got {ts_raw[row]!r}")
        ts_raw = ts_f
    ts = ts_raw.astype(np.int64)
    category = df["category"].to_numpy(dtype=object)
    bad_cat = np.array([not (isinstance(c, str) and c) for c in category], dtype=bool)
    if bad_cat.any():
        row = int(np.flatnonzero(bad_cat)[0])
        raise DataError(f"{where}: row {row}: category must be a non-empty string, got {category[row]!r}")
    check_quaternions(geom[:, 6:10], where)
    boxes = av2_ego_to_canonical(geom[:, 0:3], geom[:, 3:6], geom[:, 6:10])
    check_boxes(boxes, where)
    if "num_interior_pts" in df.columns:
        num_pts = check_num_points(df["num_interior_pts"].to_numpy(), where, field="num_interior_pts")
    else:
        num_pts = np.full(n, -1, dtype=np.int64)
    track = df["track_uuid"].to_numpy(dtype=object) if "track_uuid" in df.columns else np.full(n, None, object)

    lidar_dir = log_dir / "sensors" / "lidar"
    frame_ts = np.unique(ts)
    if lidar_dir.is_dir():
        sweeps = []
        for p in lidar_dir.glob("*.feather"):
            if p.stem.isdigit():
                sweeps.append(int(p.stem))
        frame_ts = np.union1d(frame_ts, np.array(sweeps, dtype=np.int64))
    else:
        lidar_dir = None
    # rows of each sweep in file order: stable sort by frame index
    frame_of_row = np.searchsorted(frame_ts, ts)
    order = np.argsort(frame_of_row, kind="stable")
    bounds = np.searchsorted(frame_of_row[order], np.arange(frame_ts.size + 1))
    rows = [order[bounds[i]:bounds[i + 1]] for i in range(frame_ts.size)]
    return _Log(log_dir.name, boxes, category, track, num_pts, frame_ts, rows, lidar_dir)


class AV2Source:
    """`BoxSource` over the AV2 sensor-dataset annotations of one split: ``AV2Source(root, split="train")``."""

    def __init__(self, root: str | Path, split: str = "train") -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"AV2 root not found: {root}")
        split_dir = root / split
        if split == "test":
            raise DataError("AV2 split 'test' has no annotations; use train or val")
        if not split_dir.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name in (*AV2_SPLITS_WITH_LABELS, "test"))
            raise DataError(f"AV2 split directory {split_dir} not found (found: "
                            f"{', '.join(found) if found else 'none of train, val, test'}); pass --split")
        log_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
        with_ann = [p for p in log_dirs if (p / ANNOTATIONS_FILE).is_file()]
        if not with_ann:
            raise DataError(f"no <log_id>/{ANNOTATIONS_FILE} under {split_dir} (the AV2 sensor dataset layout is "
                            f"<root>/<split>/<log_id>/{ANNOTATIONS_FILE})")
        self._logs = [_read_log(p) for p in with_ann]
        self._index = [(li, fi) for li, log in enumerate(self._logs) for fi in range(log.timestamps.size)]
        self.root = root
        self.split = split
        self.info = SourceInfo(kind="av2", dataroot=str(root), version="", split=split, num_scenes=len(self._logs),
                               num_samples=len(self._index))

    # ---- BoxSource ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    def sample_tokens(self) -> list[str]:
        return [f"{self._logs[li].log_id}/{int(self._logs[li].timestamps[fi])}" for li, fi in self._index]

    def frame(self, index: int) -> Frame:
        li, fi = self._index[index]
        log = self._logs[li]
        rows = log.rows[fi]
        ts = int(log.timestamps[fi])
        lidar = None
        if log.lidar_dir is not None and (log.lidar_dir / f"{ts}.feather").is_file():
            lidar = str((log.lidar_dir / f"{ts}.feather").resolve())
        return Frame(
            sample_token=f"{log.log_id}/{ts}",
            boxes_lidar=log.boxes[rows].copy(),
            detection_class=log.category[rows].copy(),
            category=log.category[rows].copy(),
            ann_token=np.full(rows.size, None, dtype=object),
            instance_token=log.track[rows].copy(),
            num_lidar_pts=log.num_pts[rows].copy(),
            num_radar_pts=np.full(rows.size, -1, dtype=np.int64),
            scene_name=log.log_id,
            extra={"timestamp_ns": ts, "av2_lidar_feather": lidar},
        )

    def frames(self, indices: Sequence[int] | None = None) -> Iterator[Frame]:
        for i in range(len(self)) if indices is None else indices:
            yield self.frame(i)
