"""nuScenes ground truth as canonical frames, through nuscenes-devkit but with vectorised transforms.

The devkit is used for what it is the reference of: loading and reverse-indexing the tables, the split lists, and
``category_to_detection_name``. The per-annotation work is done once, vectorised, over numpy arrays extracted from
the tables:

* boxes: global -> LiDAR with one 4x4 per frame (``conventions.nuscenes_global_to_canonical``). This equals the
  devkit's ``get_sample_data`` (``Box.translate(-ego.t)``, ``rotate(ego.q^-1)``, ``translate(-cs.t)``,
  ``rotate(cs.q^-1)``) up to float64 rounding; the per-Box path costs ~2 ms/frame, this one ~20 us.
* velocity: the devkit's ``NuScenes.box_velocity`` (nuscenes/nuscenes.py) for every annotation at once: a centred
  difference over the prev/next annotations of the instance, one-sided at a track end, NaN for a single annotation
  or when the time span exceeds ``max_time_diff`` (1.5 s, doubled for the centred difference). The arithmetic order
  is the devkit's (``1e-6 * timestamp`` on each side before subtracting) so the numbers are bit-identical.

Everything the user can get wrong (paths, version, split, missing/malformed tables, bad sizes) is validated before
or while handing the data to the devkit, and devkit assertion errors are re-raised as `DataError`: one line, never
a partial result.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from assignaudit.conventions import nuscenes_global_to_canonical, rigid_transform
from assignaudit.errors import DataError
from assignaudit.sources.base import Frame, SourceInfo
from assignaudit.sources.points import NUSCENES_POINTS_KEY
from assignaudit.sources.validate import check_num_points, check_quaternions

NUSCENES_TABLES: tuple[str, ...] = (
    "attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
    "sample_annotation", "sample_data", "scene", "sensor", "visibility",
)
"""The 13 tables ``NuScenes()`` loads from ``DATAROOT/VERSION/<table>.json``."""

LIDAR_CHANNEL = "LIDAR_TOP"
BOX_VELOCITY_MAX_TIME_DIFF_S = 1.5
"""``NuScenes.box_velocity``'s default ``max_time_diff`` (doubled for a centred difference)."""

# Predefined splits that need a particular version suffix (nuscenes/eval/common/loaders.py ``load_gt`` and
# nuscenes/utils/splits.py ``create_splits_logs`` assert exactly these).
_SPLIT_VERSION_SUFFIX = {
    "train": "trainval", "val": "trainval", "train_detect": "trainval", "train_track": "trainval",
    "mini_train": "mini", "mini_val": "mini", "test": "test",
}


def _quiet():
    """Swallow the devkit's stdout chatter (table loading, reverse indexing) so CLI output stays parseable."""
    return contextlib.redirect_stdout(io.StringIO())


def available_versions(dataroot: Path) -> list[str]:
    """Subdirectories of ``dataroot`` that hold a ``sample.json`` (candidate nuScenes versions), sorted."""
    if not dataroot.is_dir():
        return []
    return sorted(p.name for p in dataroot.iterdir() if p.is_dir() and (p / "sample.json").is_file())


def load_custom_splits(table_root: Path) -> dict[str, list[str]]:
    """``DATAROOT/VERSION/splits.json`` as ``{name: [scene names]}`` ({} when the file does not exist)."""
    path = table_root / "splits.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"malformed JSON in {path}: {err}") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()
    ):
        raise DataError(f"{path} must map split names to lists of scene names")
    return data


def predefined_splits() -> dict[str, list[str]]:
    """The devkit's hard-coded splits (``nuscenes.utils.splits.create_splits_scenes``)."""
    from nuscenes.utils.splits import create_splits_scenes

    return create_splits_scenes()


def available_splits(version: str, table_root: Path) -> list[str]:
    """Split names usable with ``version``: compatible predefined ones, then the custom ones (not shadowed)."""
    pre = predefined_splits()
    names = [s for s in pre if version.endswith(_SPLIT_VERSION_SUFFIX.get(s, "\0"))]
    names += [s for s in load_custom_splits(table_root) if s not in pre]
    return names


def resolve_split_scenes(split: str, version: str, table_root: Path) -> list[str]:
    """Scene names of ``split``: a predefined devkit split (version suffix checked as the devkit does) or a name
    from ``splits.json``. Predefined names shadow custom ones, as in the devkit's ``get_scenes_of_split``."""
    pre = predefined_splits()
    if split in pre:
        suffix = _SPLIT_VERSION_SUFFIX.get(split)
        if suffix is not None and not version.endswith(suffix):
            raise DataError(
                f"split {split!r} needs a version ending in {suffix!r}, got {version!r} "
                f"(available: {', '.join(available_splits(version, table_root))})"
            )
        return list(pre[split])
    custom = load_custom_splits(table_root)
    if split in custom:
        return list(custom[split])
    raise DataError(
        f"unknown split {split!r} for {version} (available: {', '.join(available_splits(version, table_root))})"
    )


def _make_devkit_class():
    """A ``NuScenes`` subclass whose table loader names the file it cannot parse."""
    from nuscenes.nuscenes import NuScenes

    class _NuScenes(NuScenes):
        # ``__load_table__`` ends in two underscores, so it is not name-mangled and can be overridden.
        def __load_table__(self, table_name):  # noqa: N802 - devkit name
            path = os.path.join(self.table_root, f"{table_name}.json")
            try:
                with open(path) as f:
                    table = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise DataError(f"malformed JSON in {path}: {err}") from None
            if not isinstance(table, list) or not all(isinstance(r, dict) and "token" in r for r in table):
                raise DataError(f"{path} must be a JSON list of records that each have a 'token'")
            return table

    return _NuScenes


def _read_small_table(table_root: Path, name: str) -> list[dict]:
    path = table_root / f"{name}.json"
    try:
        rows = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"malformed JSON in {path}: {err}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path} must be a JSON list of records")
    return rows


def _check_maps(root: Path, table_root: Path) -> None:
    """What the devkit checks about maps, with messages that name the record (map and log are tiny tables).

    ``NuScenes.__init__`` asserts each map PNG exists (``MapMask``) and its reverse index raises a bare KeyError
    for a log that no map record lists in ``log_tokens``.
    """
    maps = _read_small_table(table_root, "map")
    logs = _read_small_table(table_root, "log")
    listed: set[str] = set()
    for m in maps:
        if "log_tokens" not in m or "filename" not in m:
            raise DataError(f"map record {m.get('token')} in {table_root / 'map.json'} lacks log_tokens/filename")
        if not (root / m["filename"]).is_file():
            raise DataError(f"map file {root / m['filename']} of map record {m.get('token')} does not exist")
        listed.update(m["log_tokens"])
    for lg in logs:
        if lg.get("token") not in listed:
            raise DataError(f"log {lg.get('token')} ({lg.get('logfile')}) is in no map record's log_tokens "
                            f"({table_root / 'map.json'})")


def check_version_dir(root: Path, version: str) -> Path:
    """``root / version`` if it is a directory; `DataError` naming the dataroot or the versions found otherwise."""
    if not root.is_dir():
        raise DataError(f"nuScenes dataroot not found: {root}")
    table_root = root / version
    if not table_root.is_dir():
        found = available_versions(root)
        raise DataError(
            f"version {version!r} not found under {root} "
            f"(found: {', '.join(found) if found else 'no version directories'})"
        )
    return table_root


def load_nuscenes(dataroot: str | Path, version: str, *, verbose: bool = False):
    """Validate ``dataroot``/``version`` and the 13 tables, then build the devkit ``NuScenes`` object.

    Raises `DataError` (one line) for a missing dataroot, an absent version directory, a missing table, malformed
    JSON, or anything the devkit asserts about while loading (map files, log/map links, tokens).
    """
    root = Path(dataroot)
    table_root = check_version_dir(root, version)
    for name in NUSCENES_TABLES:
        if not (table_root / f"{name}.json").is_file():
            raise DataError(f"missing nuScenes table {name}.json in {table_root}")
    _check_maps(root, table_root)
    cls = _make_devkit_class()
    ctx = contextlib.nullcontext() if verbose else _quiet()
    try:
        with ctx:
            return cls(version=version, dataroot=str(root), verbose=verbose)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001
        # The devkit signals data problems with assert, KeyError and bare Exception (e.g. a map record without
        # log_tokens, a log no map refers to, a missing map PNG); keep it to one line naming the table root.
        detail = str(err).splitlines()[0] if str(err) else ""
        raise DataError(
            f"nuscenes-devkit could not load {table_root}: {type(err).__name__}"
            + (f": {detail}" if detail else "")
        ) from None


def box_velocities(
    translation: np.ndarray, prev_idx: np.ndarray, next_idx: np.ndarray, timestamp_us: np.ndarray,
    max_time_diff_s: float = BOX_VELOCITY_MAX_TIME_DIFF_S,
) -> np.ndarray:
    """Vectorised ``NuScenes.box_velocity`` for all annotations.

    ``translation [A, 3]`` global centres (float64), ``prev_idx``/``next_idx [A]`` int64 row of the previous/next
    annotation of the same instance (-1 if none), ``timestamp_us [A]`` int64 timestamp of each annotation's sample.
    Returns float64 ``[A, 3]`` m/s in the global frame, NaN where the devkit returns NaN.
    """
    rows = np.arange(translation.shape[0])
    has_prev = prev_idx >= 0
    has_next = next_idx >= 0
    first = np.where(has_prev, prev_idx, rows)
    last = np.where(has_next, next_idx, rows)
    pos_diff = translation[last] - translation[first]
    ts = timestamp_us.astype(np.float64)
    # Same operation order as the devkit: scale each timestamp to seconds, then subtract.
    time_diff = 1e-6 * ts[last] - 1e-6 * ts[first]
    max_diff = np.where(has_prev & has_next, max_time_diff_s * 2, max_time_diff_s)
    undefined = (~has_prev & ~has_next) | (time_diff > max_diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        vel = pos_diff / time_diff[:, None]
    vel[undefined] = np.nan
    return vel


class NuScenesSource:
    """nuScenes key-frame ground truth of one split as `Frame`s (implements `BoxSource`).

    ``NuScenesSource(dataroot, version, split, *, verbose=False)``. ``split`` is a predefined devkit split (train,
    val, mini_train, mini_val, test, train_detect, train_track; the version suffix is checked like the devkit does)
    or a name from ``DATAROOT/VERSION/splits.json`` (predefined names shadow custom ones). As in the devkit's
    ``load_gt``, the split's scene names that are absent from the dataset are skipped; a split that selects no scene
    is an error. Samples come in scene-table order, then by timestamp.

    ``.nusc`` is the devkit ``NuScenes`` object (for DetectionEval). All annotations of the split are validated at
    construction (finite centre and rotation, finite positive size), so iteration never fails half-way.
    """

    def __init__(self, dataroot: str | Path, version: str, split: str, *, verbose: bool = False) -> None:
        from nuscenes.eval.detection.utils import category_to_detection_name

        root = Path(dataroot)
        table_root = check_version_dir(root, version)
        # Resolve the split first: a typo in --split should not cost a table load.
        split_scenes = set(resolve_split_scenes(split, version, table_root))
        nusc = load_nuscenes(root, version, verbose=verbose)
        self.nusc = nusc
        self.version = version
        self.split = split

        scenes = [s for s in nusc.scene if s["name"] in split_scenes]
        if not scenes:
            raise DataError(f"split {split!r} selects none of the {len(nusc.scene)} scenes in {root / version}")
        scene_rank = {s["token"]: i for i, s in enumerate(scenes)}
        try:
            samples = [s for s in nusc.sample if s["scene_token"] in scene_rank]
            samples.sort(key=lambda s: (scene_rank[s["scene_token"]], s["timestamp"]))
        except (KeyError, TypeError) as err:
            raise DataError(f"malformed sample table in {root / version}: {type(err).__name__}: {err}") from None
        self._samples = samples
        self._scene_names = {s["token"]: s["name"] for s in scenes}

        self._extract_annotations(category_to_detection_name)
        self._extract_poses()
        self.info = SourceInfo(kind="nuscenes", dataroot=str(root), version=version, split=split,
                               num_scenes=len(scenes), num_samples=len(samples))

    # ---- one-time extraction ---------------------------------------------------------------------------------
    def _extract_annotations(self, category_to_detection_name) -> None:
        """Pull every annotation field into arrays once; velocity for all annotations in one vectorised pass."""
        nusc = self.nusc
        anns = nusc.sample_annotation
        table_path = Path(nusc.table_root) / "sample_annotation.json"
        try:
            translation = np.array([a["translation"] for a in anns], dtype=np.float64).reshape(-1, 3)
            size = np.array([a["size"] for a in anns], dtype=np.float64).reshape(-1, 3)
            rotation = np.array([a["rotation"] for a in anns], dtype=np.float64).reshape(-1, 4)
            num_lidar = np.array([a["num_lidar_pts"] for a in anns], dtype=np.float64)  # checked below
            num_radar = np.array([a["num_radar_pts"] for a in anns], dtype=np.int64)
            tok2row = {a["token"]: i for i, a in enumerate(anns)}
            prev_idx = np.array([tok2row[a["prev"]] if a["prev"] else -1 for a in anns], dtype=np.int64)
            next_idx = np.array([tok2row[a["next"]] if a["next"] else -1 for a in anns], dtype=np.int64)
            sample_ts = {s["token"]: s["timestamp"] for s in nusc.sample}
            ts = np.array([sample_ts[a["sample_token"]] for a in anns], dtype=np.int64)
        except KeyError as err:
            raise DataError(f"{table_path}: dangling or missing field/token {err}") from None
        except (TypeError, ValueError) as err:
            raise DataError(f"{table_path}: malformed annotation record ({err})") from None

        # Validate only the annotations of this split (other splits are not ours to reject), all at once.
        sel = np.array([tok2row[t] for s in self._samples for t in s["anns"]], dtype=np.int64)
        bad_size = ~np.all(np.isfinite(size[sel]) & (size[sel] > 0), axis=1)
        bad_pose = ~(np.all(np.isfinite(translation[sel]), axis=1) & np.all(np.isfinite(rotation[sel]), axis=1)
                     & (np.linalg.norm(rotation[sel], axis=1) > 0))
        for bad, what in ((bad_size, "a NaN or non-positive size"), (bad_pose, "a non-finite centre or rotation")):
            if bad.any():
                a = anns[sel[np.argmax(bad)]]
                raise DataError(
                    f"sample_annotation {a['token']} (sample {a['sample_token']}) has {what}: "
                    f"size={a['size']} translation={a['translation']} ({int(bad.sum())} such annotation(s))"
                )
        # The rules every source and the prediction loaders share (assignaudit/sources/validate.py): a rotation of
        # norm 2 is a corrupted record, not something to normalise; a point count is an integer >= 0.
        sel_tokens = np.array([anns[i]["token"] for i in sel], dtype=object)
        check_quaternions(rotation[sel], str(table_path), ids=sel_tokens)
        check_num_points(num_lidar[sel], str(table_path), ids=sel_tokens)
        negative = np.flatnonzero(num_lidar[sel] < 0)
        if negative.size:
            r = int(negative[0])
            raise DataError(f"{table_path}: row {r} ({sel_tokens[r]}): num_lidar_pts = {int(num_lidar[sel][r])} "
                            "(must be >= 0)")
        num_lidar = np.where(np.isfinite(num_lidar), num_lidar, -1).astype(np.int64)

        self._translation = translation
        self._size = size
        self._rotation = rotation
        self._velocity = box_velocities(translation, prev_idx, next_idx, ts)
        self._num_lidar = num_lidar
        self._num_radar = num_radar
        self._ann_token = np.array([a["token"] for a in anns], dtype=object)
        self._inst_token = np.array([a["instance_token"] for a in anns], dtype=object)
        self._category = np.array([a["category_name"] for a in anns], dtype=object)
        det = {c: category_to_detection_name(c) for c in set(self._category.tolist())}
        self._det_class = np.array([det[c] for c in self._category], dtype=object)
        self._tok2row = tok2row

    def _extract_poses(self) -> None:
        """Per sample: its annotation rows, global_SE3_lidar and the LIDAR_TOP ego position."""
        nusc = self.nusc
        self._rows: list[np.ndarray] = []
        self._global_SE3_lidar: list[np.ndarray] = []
        self._ego_translation: list[np.ndarray] = []
        self._points_path: list[str | None] = []  # the key frame's .pcd.bin where it exists (count's bonet cost)
        for s in self._samples:
            sd_token = s["data"].get(LIDAR_CHANNEL)
            if sd_token is None:
                raise DataError(f"sample {s['token']} has no key-frame {LIDAR_CHANNEL} sample_data")
            try:
                sd = nusc.get("sample_data", sd_token)
                cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
                pose = nusc.get("ego_pose", sd["ego_pose_token"])
            except KeyError as err:
                raise DataError(f"sample_data {sd_token} of sample {s['token']} links to a missing {err}") from None
            global_SE3_ego = rigid_transform(pose["rotation"], pose["translation"])
            ego_SE3_lidar = rigid_transform(cs["rotation"], cs["translation"])
            g = global_SE3_ego @ ego_SE3_lidar
            if not np.all(np.isfinite(g)):
                raise DataError(f"non-finite ego pose or LIDAR_TOP calibration for sample {s['token']}")
            self._global_SE3_lidar.append(g)
            self._ego_translation.append(np.asarray(pose["translation"], dtype=np.float64))
            pcd = Path(nusc.dataroot) / str(sd.get("filename", ""))
            self._points_path.append(str(pcd.resolve()) if sd.get("filename") and pcd.is_file() else None)
            self._rows.append(np.array([self._tok2row[t] for t in s["anns"]], dtype=np.int64))

    # ---- BoxSource ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._samples)

    def sample_tokens(self) -> list[str]:
        return [s["token"] for s in self._samples]

    def frame(self, index: int) -> Frame:
        """The `Frame` of the ``index``-th sample of the split (annotation order = the sample's ``anns``)."""
        s = self._samples[index]
        rows = self._rows[index]
        g = self._global_SE3_lidar[index]
        lidar_SE3_global = _invert_se3(g)
        boxes = nuscenes_global_to_canonical(
            self._translation[rows], self._size[rows], self._rotation[rows], self._velocity[rows, :2],
            lidar_SE3_global,
        )
        return Frame(
            sample_token=s["token"],
            boxes_lidar=boxes,
            detection_class=self._det_class[rows],
            category=self._category[rows],
            ann_token=self._ann_token[rows],
            instance_token=self._inst_token[rows],
            num_lidar_pts=self._num_lidar[rows],
            num_radar_pts=self._num_radar[rows],
            scene_name=self._scene_names[s["scene_token"]],
            global_SE3_lidar=g.copy(),
            ego_translation_global=self._ego_translation[index].copy(),
            extra={"lidar_sd_token": s["data"][LIDAR_CHANNEL], "timestamp_us": int(s["timestamp"]),
                   **({NUSCENES_POINTS_KEY: self._points_path[index]} if self._points_path[index] else {})},
        )

    def frames(self, indices: Sequence[int] | None = None) -> Iterator[Frame]:
        """Frames in split order (or of the given sample indices)."""
        for i in range(len(self)) if indices is None else indices:
            yield self.frame(i)


def _invert_se3(m: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (R^T, -R^T t)."""
    out = np.eye(4)
    r = m[:3, :3]
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ m[:3, 3]
    return out
