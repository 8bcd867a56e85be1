"""The user's gt_sampling database (``*_dbinfos_*.pkl``) as the `GTDatabase` that gt_sampling pastes from.

Which database a run uses (`choose_database`), in order:

1. ``--db-infos FILE ...``: those files (all of them, in order, as OpenPCDet loads every ``DB_INFO_PATH``).
2. the config's database files (OpenPCDet ``DB_INFO_PATH``, mmdetection3d ``db_sampler.info_path``;
   `DatasetSpec.db_infos`) found under the data directory (``--data-path``, else the directory of the ``--infos``
   file). OpenPCDet's ``DataBaseSampler``: when a ``DB_INFO_PATH`` file does not exist (only allowed with one file),
   ``BACKUP_DB_INFO.DB_INFO_PATH`` is used instead; the report says which.
3. otherwise the database rebuilt from the source's annotations (`assignaudit.augment.database.build_database`), as
   before; the report says why (no data directory, or the file was not found).

Reading (`load_database`; files through the restricted unpickler). A dbinfos file is a dict ``class name -> list
of entries``, each with ``box3d_lidar`` (7 or 9 values), ``num_points_in_gt`` and ``difficulty`` (``name``,
``path``, ``image_idx`` / ``sample_idx``, ``gt_idx`` are kept for provenance). As both samplers do:

* only the config's classes are loaded (``db_infos[cur_class] for cur_class in class_names``), through
  ``--class-map``; a config class the file does not have is an error (upstream raises ``KeyError``);
* ``PREPARE.filter_by_difficulty`` / ``prepare.filter_by_difficulty`` removes the entries whose ``difficulty`` is
  listed; ``filter_by_min_points`` keeps ``num_points_in_gt >= n`` (only for n > 0), both from the file's fields;
* boxes: OpenPCDet's (``gt_sampling``) are canonical; mmdetection3d's (``ObjectSample``; create_gt_database.py
  stores ``LiDARInstance3DBoxes.tensor``) have the bottom centre: `assignaudit.conventions.mmdet3d_to_canonical`.
  The framework is the config's sampler's: the file belongs to the framework whose sampler reads it.

A pasted object then carries the file's ``num_points_in_gt`` (objects.parquet ``num_lidar_pts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from assignaudit.conventions import BOX_DIM, YAW, mmdet3d_to_canonical, wrap_yaw
from assignaudit.errors import DataError
from assignaudit.sources.safe_pickle import safe_load
from assignaudit.sources.validate import check_boxes, check_num_points

if TYPE_CHECKING:
    from assignaudit.augment.database import GTDatabase
    from assignaudit.config.model import DetectorConfig


@dataclass(frozen=True)
class DatabaseChoice:
    """Which gt_sampling database a run draws from, and why (copied into the report metadata)."""

    kind: str
    """``file`` (the user's dbinfos) or ``rebuilt`` (from the source's annotations)."""
    paths: tuple[Path, ...] = ()
    reason: str = ""

    def metadata(self) -> dict[str, Any]:
        return {"kind": self.kind, "files": [str(p) for p in self.paths], "reason": self.reason}


def _find(data_path: Path, name: str, spec_data_path: str | None) -> Path | None:
    from assignaudit.sources.infos import resolve_under

    return next((c for c in resolve_under(data_path, name, spec_data_path) if c.is_file()), None)


def choose_database(config: "DetectorConfig", db_infos: Sequence[Path] = (), data_path: Path | None = None
                    ) -> DatabaseChoice:
    """The database to draw from (module docstring, rules 1-3). Pure file lookup: nothing is read."""
    if db_infos:
        missing = [p for p in db_infos if not Path(p).is_file()]
        if missing:
            raise DataError(f"--db-infos: file not found: {missing[0]}")
        return DatabaseChoice("file", tuple(Path(p) for p in db_infos), "--db-infos")
    spec = config.dataset
    if not spec.db_infos:
        return DatabaseChoice("rebuilt", (), "the config names no database file (DB_INFO_PATH / db_sampler.info_path)")
    if data_path is None:
        return DatabaseChoice("rebuilt", (), f"no --data-path to find the config's database {', '.join(spec.db_infos)} "
                              "under")
    found = [_find(Path(data_path), n, spec.data_path) for n in spec.db_infos]
    if all(f is not None for f in found):
        paths = tuple(f for f in found if f is not None)
        return DatabaseChoice("file", paths, f"the config's database under {data_path}")
    missing = next(n for n, f in zip(spec.db_infos, found) if f is None)
    if spec.backup_db_infos and len(spec.db_infos) == 1:
        backup = _find(Path(data_path), spec.backup_db_infos[0], spec.data_path)
        if backup is not None:
            return DatabaseChoice("file", (backup,), f"BACKUP_DB_INFO: DB_INFO_PATH {missing} is not under {data_path}")
    return DatabaseChoice("rebuilt", (), f"the config's database {missing} is not under {data_path}")


def _entries_arrays(entries: Any, where: str, cls: str, bottom_centre: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DataError(f"{where}: {cls!r} must be a list of database entries (dicts)")
    boxes = np.full((len(entries), BOX_DIM), np.nan)
    try:
        raw = [np.asarray(e["box3d_lidar"], dtype=np.float64).reshape(-1) for e in entries]
        pts = np.array([e["num_points_in_gt"] for e in entries])
    except KeyError as err:
        raise DataError(f"{where}: a {cls!r} entry has no key {err} (a dbinfos entry has box3d_lidar, "
                        "num_points_in_gt, difficulty)") from None
    except (TypeError, ValueError):
        raise DataError(f"{where}: a {cls!r} entry has a non-numeric box3d_lidar") from None
    for k, r in enumerate(raw):
        if r.shape[0] not in (7, 9):
            raise DataError(f"{where}: {cls!r} entry {k}: box3d_lidar has {r.shape[0]} values, expected 7 or 9")
        boxes[k, : r.shape[0]] = r
    if bottom_centre:
        boxes = mmdet3d_to_canonical(boxes)
    boxes[:, YAW] = wrap_yaw(boxes[:, YAW])
    check_boxes(boxes, f"{where}: {cls!r}")
    diff = np.array([e.get("difficulty", 0) for e in entries])
    diff = check_num_points(diff.astype(np.float64) if diff.size else np.zeros(0), f"{where}: {cls!r}", "difficulty")
    pts = check_num_points(pts.astype(np.float64) if pts.size else np.zeros(0), f"{where}: {cls!r}", "num_points_in_gt")
    sample = np.array([str(e.get("image_idx", e.get("sample_idx", ""))) for e in entries], dtype=object)
    path = np.array([e.get("path") for e in entries], dtype=object)
    return boxes, pts, diff, sample, path


def load_database(paths: Sequence[Path], config: "DetectorConfig") -> "GTDatabase":
    """The `GTDatabase` of the config's classes from dbinfos files, filtered as the framework's sampler does."""
    from assignaudit.augment.database import ClassDatabase, GTDatabase, gt_sampling_op
    from assignaudit.augment.params import ObjectSample

    op = gt_sampling_op(config)
    if op is None:
        raise DataError("--db-infos: the config has no gt_sampling / ObjectSample step to draw from a database")
    bottom_centre = isinstance(op, ObjectSample)
    mapping = dict(config.gt_filters.class_mapping)
    parts: dict[str, list[tuple]] = {c: [] for c in config.class_names}
    for path in paths:
        obj = safe_load(path)
        where = str(path)
        if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
            raise DataError(f"{where}: not a gt_sampling database: a dbinfos file is a dict of class name -> list of "
                            f"entries, got {type(obj).__name__}")
        have = {mapping.get(k, k): k for k in obj}
        for cls in config.class_names:
            if cls not in have:
                raise DataError(f"{where}: the database has no class {cls!r} (its classes: {sorted(obj)}); the "
                                "framework's sampler would stop with a KeyError")
            parts[cls].append(_entries_arrays(obj[have[cls]], where, have[cls], bottom_centre))
    min_points = dict(op.min_points)
    removed = np.array(sorted(set(op.filter_by_difficulty)), dtype=np.int64)
    classes: dict[str, ClassDatabase] = {}
    samples: set[str] = set()
    for cls, chunks in parts.items():
        boxes, pts, diff, sample, path = (np.concatenate([c[k] for c in chunks]) for k in range(5))
        keep = ~np.isin(diff, removed)
        n_min = int(min_points.get(cls, 0))
        if n_min > 0:
            keep &= pts >= n_min
        classes[cls] = ClassDatabase(boxes[keep], path[keep], sample[keep], pts[keep].astype(np.int64))
        samples.update(sample.tolist())
    return GTDatabase(classes, tuple((k, int(v)) for k, v in min_points.items()), len(samples))
