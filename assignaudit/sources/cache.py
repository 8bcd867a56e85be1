"""A Parquet cache of a source's canonical frames, so the next run never re-parses the dataset (nor imports the devkit).

`open_cached_source(cache=..., cache_dir=..., **open_source_kwargs)` wraps `assignaudit.sources.open.open_source`:

* the cache file is named by the source's *locator* (kind, resolved dataroot / version / split, or the table path):
  ``<cache_dir>/<kind>-<sha256(locator)[:20]>.parquet``; one file per source, rewritten in place when stale;
* its footer metadata holds the source's *identity*: the tool version, `CACHE_FORMAT`, the nuscenes-devkit version
  (its hard-coded splits decide the scenes) and ``(name, size, mtime_ns)`` of every file the source reads (nuScenes:
  every file of ``DATAROOT/VERSION``; a table: the table file). A different identity (an edited table, a touched
  file, another tool version) means a stale cache: it is rebuilt, never read;
* the file is written atomically (temp file + rename) with Parquet page checksums, and read back whole with checksum
  verification before the first frame is handed out: a truncated or corrupt cache is detected (a warning), then
  rebuilt from the dataset, never trusted.

On a miss the real source is opened (exactly as without the cache), all its frames are written once, and the run
uses the real source. On a hit `CachedSource` serves the frames from the Parquet table; attributes only the real
source has (the devkit ``nusc`` object that ``yaw`` needs for the nuScenes GT records) open the real source lazily.

Cached kinds: ``nuscenes`` and ``table`` (``--boxes``). Raw KITTI / AV2 (whose frames count points from the point
clouds and carry calibration objects) and framework info files are opened directly. A frame whose ``extra`` is not
plain JSON, or whose name arrays hold something other than strings / None, makes the source uncacheable (opened
directly, nothing written).

Default directory: ``$ASSIGNAUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/assignaudit``, else ``~/.cache/assignaudit``.
See docs/scale.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assignaudit import __version__
from assignaudit.report import atomic_target
from assignaudit.sources.base import BoxSource, Frame, SourceInfo

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bumped whenever the cached columns or their meaning change (part of the identity: old caches become stale)."""
ENV_CACHE_DIR = "ASSIGNAUDIT_CACHE_DIR"
META_KEY = b"assignaudit_frame_cache"
ROW_GROUP_FRAMES = 256
BOX_WIDTH = 9

_STR_LISTS = ("detection_class", "category", "ann_token", "instance_token")
_INT_LISTS = ("num_lidar_pts", "num_radar_pts")
SCHEMA = pa.schema([
    ("sample_token", pa.string()), ("scene_name", pa.string()), ("boxes", pa.list_(pa.float64())),
    *((name, pa.list_(pa.string())) for name in _STR_LISTS),
    *((name, pa.list_(pa.int64())) for name in _INT_LISTS),
    ("difficulty", pa.list_(pa.int64())), ("global_SE3_lidar", pa.list_(pa.float64())),
    ("ego_translation_global", pa.list_(pa.float64())), ("lidar_path", pa.string()), ("extra", pa.string()),
])


def default_cache_dir() -> Path:
    """``$ASSIGNAUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/assignaudit``, else ``~/.cache/assignaudit``."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "assignaudit"


class Uncacheable(Exception):
    """The source's frames hold something the cache cannot store exactly."""


# ---- locator and identity ----------------------------------------------------------------------------------------
def _file_stats(paths: list[Path], base: Path) -> list[list[Any]]:
    out = []
    for p in sorted(paths):
        st = p.stat()
        out.append([str(p.relative_to(base)) if p != base else p.name, st.st_size, st.st_mtime_ns])
    return out


def _devkit_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nuscenes-devkit")
    except PackageNotFoundError:  # pragma: no cover
        return None


def source_key(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(locator, identity)`` of the source ``open_source(**kwargs)`` opens, or None when it is not cached (another
    kind, or options `open_source` rejects: those are left for it to report). Never imports the devkit."""
    others = (kwargs.get("infos"), kwargs.get("data_path"), kwargs.get("kitti_root"), kwargs.get("av2_root"),
              kwargs.get("infos_format"))
    if any(o for o in others):
        return None
    base = {"tool_version": __version__, "cache_format": CACHE_FORMAT}
    boxes = kwargs.get("boxes")
    if boxes is not None:
        if kwargs.get("split") is not None or kwargs.get("dataroot") is not None or kwargs.get("version") is not None:
            return None
        path = Path(boxes).resolve()
        if not path.is_file():
            return None
        return {"kind": "table", "path": str(path)}, {**base, "files": _file_stats([path], path)}

    from assignaudit.sources.nuscenes import available_versions
    from assignaudit.sources.open import FIXTURE_DATAROOT, FIXTURE_SPLIT, FIXTURE_VERSION, default_split
    from assignaudit.errors import DataError

    dataroot, version, split = kwargs.get("dataroot"), kwargs.get("version"), kwargs.get("split")
    if dataroot is None:
        root, version, split = FIXTURE_DATAROOT, version or FIXTURE_VERSION, split or FIXTURE_SPLIT
    else:
        root = Path(dataroot)
        if not root.is_dir():
            return None
        if version is None:
            found = available_versions(root)
            if len(found) != 1:
                return None
            version = found[0]
        if split is None:
            try:
                split = default_split(version)
            except DataError:
                return None
    table_root = root / version
    if not table_root.is_dir():
        return None
    files = [p for p in table_root.iterdir() if p.is_file()]
    locator = {"kind": "nuscenes", "dataroot": str(root.resolve()), "version": version, "split": split,
               "verbose": bool(kwargs.get("verbose", False))}
    identity = {**base, "nuscenes_devkit": _devkit_version(), "files": _file_stats(files, table_root)}
    return locator, identity


def cache_path(cache_dir: Path, locator: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(locator, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{locator['kind']}-{digest}.parquet"


# ---- writing -----------------------------------------------------------------------------------------------------
def _check_names(values: np.ndarray, what: str) -> list:
    out = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if not all(v is None or type(v) is str for v in out):
        raise Uncacheable(f"{what} holds non-string values")
    return out


def _list_array(parts: list[np.ndarray | None], value_type: pa.DataType) -> pa.Array:
    lengths = np.array([0 if p is None else len(p) for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    present = [p for p in parts if p is not None]
    if value_type == pa.string():
        values = pa.array([v for p in present for v in p], type=pa.string())
    else:
        np_type = np.float64 if value_type == pa.float64() else np.int64
        values = pa.array(np.concatenate(present).astype(np_type, copy=False) if present else
                          np.array([], dtype=np_type), type=value_type)
    mask = pa.array([p is None for p in parts], type=pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values,
                                    mask=mask if any(p is None for p in parts) else None)


def _batch(frames: list[Frame]) -> pa.RecordBatch:
    cols: dict[str, Any] = {}
    for f in frames:
        b = np.asarray(f.boxes_lidar)
        if b.dtype != np.float64 or b.ndim != 2 or b.shape[1] != BOX_WIDTH:
            raise Uncacheable(f"frame {f.sample_token}: boxes are not float64 [N, {BOX_WIDTH}]")
        for name in _INT_LISTS + ("difficulty",):
            v = getattr(f, name)
            if v is not None and np.asarray(v).dtype != np.int64:
                raise Uncacheable(f"frame {f.sample_token}: {name} is not int64")
        for name, shape in (("global_SE3_lidar", (4, 4)), ("ego_translation_global", (3,))):
            v = getattr(f, name)
            if v is not None and (np.asarray(v).dtype != np.float64 or np.asarray(v).shape != shape):
                raise Uncacheable(f"frame {f.sample_token}: {name} is not float64 {shape}")
        if type(f.sample_token) is not str or not (f.scene_name is None or type(f.scene_name) is str) or \
                not (f.lidar_path is None or type(f.lidar_path) is str):
            raise Uncacheable(f"frame {f.sample_token}: a non-string token, scene name or lidar path")
        try:
            text = json.dumps(f.extra)
        except (TypeError, ValueError):
            raise Uncacheable(f"frame {f.sample_token}: extra is not JSON") from None
        if json.loads(text) != f.extra:
            raise Uncacheable(f"frame {f.sample_token}: extra does not survive JSON")
        cols.setdefault("extra", []).append(text)
    cols["sample_token"] = pa.array([f.sample_token for f in frames], type=pa.string())
    cols["scene_name"] = pa.array([f.scene_name for f in frames], type=pa.string())
    cols["lidar_path"] = pa.array([f.lidar_path for f in frames], type=pa.string())
    cols["extra"] = pa.array(cols["extra"], type=pa.string())
    cols["boxes"] = _list_array([np.asarray(f.boxes_lidar).reshape(-1) for f in frames], pa.float64())
    for name in _STR_LISTS:
        cols[name] = _list_array([_check_names(getattr(f, name), name) for f in frames], pa.string())
    for name in _INT_LISTS + ("difficulty",):
        cols[name] = _list_array([None if getattr(f, name) is None else np.asarray(getattr(f, name))
                                  for f in frames], pa.int64())
    for name in ("global_SE3_lidar", "ego_translation_global"):
        cols[name] = _list_array([None if getattr(f, name) is None else np.asarray(getattr(f, name)).reshape(-1)
                                  for f in frames], pa.float64())
    for f in frames:
        n = len(f)
        if any(len(getattr(f, name)) != n for name in _STR_LISTS + _INT_LISTS) or \
                (f.difficulty is not None and len(f.difficulty) != n):
            raise Uncacheable(f"frame {f.sample_token}: per-box arrays of different lengths")
    return pa.RecordBatch.from_arrays([cols[name] for name in SCHEMA.names], schema=SCHEMA)


def write_cache(path: Path, source: BoxSource, locator: dict[str, Any], identity: dict[str, Any]) -> Path:
    """Write every frame of ``source`` to ``path`` atomically; `Uncacheable` (nothing written) if a frame cannot be
    stored exactly."""
    info = source.info
    meta = {"locator": locator, "identity": identity, "num_frames": len(source),
            "info": {"kind": info.kind, "dataroot": info.dataroot, "version": info.version, "split": info.split,
                     "num_scenes": info.num_scenes, "num_samples": info.num_samples}}
    schema_ = SCHEMA.with_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})
    with atomic_target(path) as tmp:
        n = 0
        with pq.ParquetWriter(tmp, schema_, write_page_checksum=True, compression="zstd") as writer:
            chunk: list[Frame] = []
            for frame in source.frames():
                chunk.append(frame)
                if len(chunk) == ROW_GROUP_FRAMES:
                    writer.write_batch(_batch(chunk))
                    n += len(chunk)
                    chunk = []
            if chunk or n == 0:
                writer.write_batch(_batch(chunk))
                n += len(chunk)
        if n != len(source):
            raise Uncacheable(f"the source yielded {n} frames but has {len(source)}")
    return path


# ---- reading -----------------------------------------------------------------------------------------------------
class CachedSource:
    """`BoxSource` over a frame cache file (see the module docstring). Frames equal the real source's exactly."""

    def __init__(self, path: Path, table: pa.Table, meta: dict[str, Any], open_kwargs: dict[str, Any]) -> None:
        self.cache_path = path
        self._table = table
        self._meta = meta
        self._open_kwargs = open_kwargs
        self._real: BoxSource | None = None
        self.info = SourceInfo(**meta["info"])
        self._tokens = table.column("sample_token").to_pylist()

    def __len__(self) -> int:
        return len(self._tokens)

    def sample_tokens(self) -> list[str]:
        return list(self._tokens)

    def frames(self) -> Iterator[Frame]:
        for start in range(0, len(self), ROW_GROUP_FRAMES):
            yield from _decode(self._table.slice(start, ROW_GROUP_FRAMES))

    def frame(self, index: int) -> Frame:
        return _decode(self._table.slice(index, 1))[0]

    def real_source(self) -> BoxSource:
        """The source itself, opened on first use (for what only it has, e.g. the devkit object)."""
        if self._real is None:
            from assignaudit.sources.open import open_source

            self._real = open_source(**self._open_kwargs)
        return self._real

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.real_source(), name)


def _flat(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, offsets from 0, null mask) of a list column of a (sliced) table."""
    arr = table.column(name).combine_chunks()
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.flatten().to_numpy(zero_copy_only=False)
    return values, offsets - offsets[0], arr.is_null().to_numpy(zero_copy_only=False)


def _decode(table: pa.Table) -> list[Frame]:
    cols = {name: _flat(table, name) for name in SCHEMA.names if pa.types.is_list(SCHEMA.field(name).type)}
    tokens = table.column("sample_token").to_pylist()
    scenes = table.column("scene_name").to_pylist()
    lidar = table.column("lidar_path").to_pylist()
    extra = table.column("extra").to_pylist()

    def part(name: str, i: int, dtype=None):
        values, offsets, null = cols[name]
        if null[i]:
            return None
        v = values[offsets[i]:offsets[i + 1]]
        return v.astype(dtype) if dtype is not None else v.copy()

    out = []
    for i, token in enumerate(tokens):
        g = part("global_SE3_lidar", i, np.float64)
        out.append(Frame(
            sample_token=token,
            boxes_lidar=part("boxes", i, np.float64).reshape(-1, BOX_WIDTH),
            detection_class=part("detection_class", i, object),
            category=part("category", i, object),
            ann_token=part("ann_token", i, object),
            instance_token=part("instance_token", i, object),
            num_lidar_pts=part("num_lidar_pts", i, np.int64),
            num_radar_pts=part("num_radar_pts", i, np.int64),
            scene_name=scenes[i],
            global_SE3_lidar=None if g is None else g.reshape(4, 4),
            ego_translation_global=part("ego_translation_global", i, np.float64),
            difficulty=part("difficulty", i, np.int64),
            lidar_path=lidar[i],
            extra=json.loads(extra[i]),
        ))
    return out


def load_cache(path: Path, locator: dict[str, Any], identity: dict[str, Any],
               open_kwargs: dict[str, Any]) -> CachedSource | None:
    """The cached source at ``path``, or None when it is absent, stale (another identity) or corrupt (a warning)."""
    if not path.is_file():
        return None
    try:
        schema_ = pq.read_schema(path)
        meta = json.loads((schema_.metadata or {})[META_KEY])
        if meta.get("locator") != locator or meta.get("identity") != identity:
            log.info("frame cache %s is stale (the dataset or the tool changed): rebuilding", path)
            return None
        table = pq.read_table(path, page_checksum_verification=True)
        if not table.schema.equals(SCHEMA, check_metadata=False) or table.num_rows != meta["num_frames"]:
            raise ValueError("unexpected columns or row count")
        return CachedSource(path, table, meta, open_kwargs)
    except Exception as err:  # noqa: BLE001 - any unreadable cache is rebuilt, whatever pyarrow raised
        log.warning("frame cache %s is unreadable (%s: %s): rebuilding it", path, type(err).__name__,
                    str(err).splitlines()[0] if str(err) else "")
        return None


def _check_cache_dir(cache_dir: Path) -> None:
    """An explicit ``--cache-dir`` that is (or lies under) something other than a directory is a usage error; an
    unwritable default directory only costs the cache (a warning when writing)."""
    from assignaudit.errors import ConfigError

    for p in (cache_dir, *cache_dir.parents):
        if p.exists():
            if not p.is_dir():
                what = "is not a directory" if p == cache_dir else f"lies under {p}, which is not a directory"
                raise ConfigError(f"--cache-dir {cache_dir} {what}")
            return


def open_cached_source(*, cache: bool = True, cache_dir: str | Path | None = None, **kwargs: Any) -> BoxSource:
    """`open_source(**kwargs)` through the frame cache (``cache=False``: straight through, nothing read or written)."""
    from assignaudit.sources.open import open_source

    if cache and cache_dir is not None:
        _check_cache_dir(Path(cache_dir))
    key = source_key(kwargs) if cache else None
    if key is None:
        return open_source(**kwargs)
    locator, identity = key
    path = cache_path(Path(cache_dir) if cache_dir is not None else default_cache_dir(), locator)
    cached = load_cache(path, locator, identity, kwargs)
    if cached is not None:
        return cached
    source = open_source(**kwargs)
    try:
        write_cache(path, source, locator, identity)
    except Uncacheable as err:
        log.info("source not cached: %s", err)
    except OSError as err:
        log.warning("could not write the frame cache %s: %s", path, err)
    return source
