"""The GT database that ``gt_sampling`` pastes from (OpenPCDet ``DataBaseSampler``, database_sampler.py).

OpenPCDet builds ``nuscenes_dbinfos_10sweeps_withvelo.pkl`` from the *training infos* (every annotation the info
converter kept, before ``FILTER_MIN_POINTS_IN_GT``), then ``PREPARE.filter_by_min_points`` keeps, per class,
``num_points_in_gt >= n`` (only for n > 0). We hold only boxes, not points, so the database is a set of arrays
per class; pasting a box is pasting its stored canonical box at its stored location in its own LiDAR frame.

Deviation (documented): upstream counts ``num_points_in_gt`` with the points of ``MAX_SWEEPS`` (10) sweeps inside
the box; we use the annotation's ``num_lidar_pts`` (one sweep), the only count available without point clouds.
Boxes with ``num_lidar_pts == -1`` (unknown) pass the filter, as in `filters.min_points_mask`.

mmdet3d ``ObjectSample`` (``DataBaseSampler``, mmdet3d/datasets/transforms/dbsampler.py) reads a database that
``tools/dataset_converters/create_gt_database.py`` builds through ``NuScenesDataset(use_valid_flag=True)``: only
annotations with ``num_lidar_pts + num_radar_pts > 0`` enter it (`filters.valid_flag_mask`), then ``prepare.
filter_by_min_points`` keeps ``num_points_in_gt >= n`` per class (n > 0), as OpenPCDet's PREPARE. Not replicated:
that script names each object ``classes[label]``, so an annotation of a category outside the classes (label -1)
is filed under the LAST class (``barrier`` in the nuScenes order); we keep config classes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from assignaudit.augment.filters import class_mask, map_classes, valid_flag_mask
from assignaudit.augment.params import GTSampling, ObjectSample
from assignaudit.conventions import BOX_DIM
from assignaudit.errors import ConfigError, DataError
from assignaudit.sources.base import Frame

if TYPE_CHECKING:  # config.model imports augment.params: a runtime import here would be circular
    from assignaudit.config.model import DetectorConfig


@dataclass(frozen=True)
class ClassDatabase:
    """Database entries of one class, row-aligned arrays of length M."""

    boxes: np.ndarray
    """float64 ``[M, 9]`` canonical boxes, each in the LiDAR frame of the sample it was annotated in."""
    ann_token: np.ndarray
    """object ``[M]``: annotation token of the source GT (None where the source has none)."""
    sample_token: np.ndarray
    """object ``[M]``: sample the object comes from."""
    num_lidar_pts: np.ndarray
    """int64 ``[M]``."""

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def _empty_class_db() -> ClassDatabase:
    return ClassDatabase(
        np.empty((0, BOX_DIM), dtype=np.float64), np.empty(0, dtype=object), np.empty(0, dtype=object),
        np.empty(0, dtype=np.int64),
    )


@dataclass(frozen=True)
class GTDatabase:
    """Per config class, the GT objects ``gt_sampling`` may paste (after the PREPARE min-points filter)."""

    classes: dict[str, ClassDatabase]
    """config class name -> its entries; every name in ``config.class_names`` has an entry (maybe empty)."""
    min_points: tuple[tuple[str, int], ...] = ()
    """The PREPARE ``filter_by_min_points`` thresholds that were applied."""
    num_frames: int = 0
    """How many frames the database was built from."""

    def __getitem__(self, class_name: str) -> ClassDatabase:
        return self.classes.get(class_name) or _empty_class_db()

    def sizes(self) -> dict[str, int]:
        """Entries per class."""
        return {name: len(db) for name, db in self.classes.items()}


def gt_sampling_op(config: DetectorConfig) -> GTSampling | ObjectSample | None:
    """The config's single database op (OpenPCDet `GTSampling` or mmdet3d `ObjectSample`), or None.

    Two of them (of either kind) is a config error: both frameworks have one sampler, and one `GTDatabase` per run.
    A non-None result means the replay needs a database (`build_database`).
    """
    ops = [op for op in config.augmentations if isinstance(op, (GTSampling, ObjectSample))]
    if len(ops) > 1:
        raise ConfigError(
            "augmentations: gt_sampling is listed more than once (one GTSampling or ObjectSample per config)"
        )
    return ops[0] if ops else None


def build_database(
    frames: Iterable[Frame], config: DetectorConfig, *, return_classes: bool = False
) -> GTDatabase | tuple[GTDatabase, frozenset[str]]:
    """One pass over ``frames`` (the split the model trains on) -> `GTDatabase`.

    With ``return_classes=True`` returns ``(database, classes)``, where ``classes`` is every dataset class name
    (``detection_class`` before ``class_mapping``, None excluded) seen on the way: the vocabulary of a source that
    cannot list it up front, at no extra pass.

    Classes go through ``config.gt_filters.class_mapping`` and only ``config.class_names`` are kept (OpenPCDet
    ``DataBaseSampler`` loads ``db_infos[cur_class] for cur_class in class_names``). The per-class PREPARE
    threshold comes from the config's `GTSampling.min_points` / `ObjectSample.min_points`; classes without one are
    not filtered. ``FILTER_MIN_POINTS_IN_GT`` does not apply here: upstream builds the database from the infos, not
    through ``__getitem__``. For `ObjectSample` the mmdet3d valid flag (LiDAR + radar points > 0) applies first (module
    docstring).
    """
    op = gt_sampling_op(config)
    min_points = dict(op.min_points) if op is not None else {}
    class_names = tuple(config.class_names)
    mapping = config.gt_filters.class_mapping
    valid_flag = isinstance(op, ObjectSample)

    boxes_parts: list[np.ndarray] = []
    names_parts: list[np.ndarray] = []
    ann_parts: list[np.ndarray] = []
    sample_parts: list[np.ndarray] = []
    pts_parts: list[np.ndarray] = []
    seen: set = set()
    num_frames = 0
    for frame in frames:  # a loop over frames, each handled with array ops
        num_frames += 1
        boxes = np.asarray(frame.boxes_lidar, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != BOX_DIM:
            raise DataError(
                f"sample {frame.sample_token}: boxes_lidar has shape {boxes.shape}, expected [N, {BOX_DIM}]"
            )
        raw = np.asarray(frame.detection_class, dtype=object)
        if raw.shape != (boxes.shape[0],):
            raise DataError(
                f"sample {frame.sample_token}: detection_class has shape {raw.shape}, expected ({boxes.shape[0]},)"
            )
        if not np.all(np.isfinite(boxes[:, :7])):
            raise DataError(f"sample {frame.sample_token}: non-finite box centre, size or yaw")
        if return_classes:
            seen.update(raw.tolist())
        names = map_classes(raw, mapping)
        keep = class_mask(names, class_names)
        if valid_flag:
            radar = np.asarray(frame.num_radar_pts, dtype=np.int64)
            if radar.shape != (boxes.shape[0],):
                raise DataError(
                    f"sample {frame.sample_token}: num_radar_pts has shape {radar.shape}, expected ({boxes.shape[0]},)"
                )
            keep &= valid_flag_mask(np.asarray(frame.num_lidar_pts, dtype=np.int64), radar)
        if not keep.any():
            continue
        boxes_parts.append(boxes[keep])
        names_parts.append(names[keep])
        ann_parts.append(np.asarray(frame.ann_token, dtype=object)[keep])
        sample_parts.append(np.full(int(keep.sum()), frame.sample_token, dtype=object))
        pts_parts.append(np.asarray(frame.num_lidar_pts, dtype=np.int64)[keep])

    if not boxes_parts:
        db = GTDatabase({name: _empty_class_db() for name in class_names}, tuple(min_points.items()), num_frames)
        return (db, frozenset(seen - {None})) if return_classes else db

    boxes = np.concatenate(boxes_parts)
    names = np.concatenate(names_parts)
    ann = np.concatenate(ann_parts)
    samples = np.concatenate(sample_parts)
    pts = np.concatenate(pts_parts)

    classes: dict[str, ClassDatabase] = {}
    for name in class_names:
        sel = names == name
        n_min = int(min_points.get(name, 0))
        if n_min > 0:  # upstream: `if min_num > 0` -- a 0 threshold means no filter
            sel &= (pts >= n_min) | (pts == -1)
        classes[name] = ClassDatabase(boxes[sel], ann[sel], samples[sel], pts[sel])
    db = GTDatabase(classes, tuple((k, int(v)) for k, v in min_points.items()), num_frames)
    return (db, frozenset(seen - {None})) if return_classes else db
