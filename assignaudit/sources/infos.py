"""The frameworks' info files as a source (``--infos FILE.pkl ...`` / ``--config X --data-path DIR``).

This module finds the files, loads them through the restricted unpickler (`assignaudit.sources.safe_pickle`),
detects the format from the content (or takes ``--infos-format``) and hands the loaded object to the reader of
that format; each format is one module:

* `assignaudit.sources.infos_pcdet`: OpenPCDet ``kitti_infos_*.pkl`` (``pcdet-kitti``), ``nuscenes_infos_*.pkl``
  (``pcdet-nuscenes``), ``waymo_processed_data_*_infos_*.pkl`` (``pcdet-waymo``), Lyft (``pcdet-lyft``), ONCE
  (``pcdet-once``), Argoverse 2 (``pcdet-argo2``);
* `assignaudit.sources.infos_mmdet3d`: mmdetection3d >= 1.1 v2 infos (``metainfo`` + ``data_list``):
  ``mmdet3d-nuscenes``, ``mmdet3d-kitti``, ``mmdet3d-waymo``, ``mmdet3d-lyft``.

Detection (`detect_format`), from the structure only:

* a dict with ``data_list`` and ``metainfo``: mmdetection3d v2, the dataset from ``metainfo['dataset']``;
* a dict with ``infos`` (and ``metadata``), or a list whose records have ``image.image_idx`` and
  ``point_cloud.velodyne_path``: mmdetection3d before 1.1, refused with the name of its update script;
* a list of dicts: OpenPCDet, by the keys of the first record: ``point_cloud.lidar_sequence`` -> Waymo,
  ``point_cloud.lidar_idx`` -> KITTI, ``point_cloud.velodyne_path`` + ``uuid`` -> Argoverse 2, ``sequence_id`` +
  ``frame_id`` -> ONCE, ``gt_boxes`` + ``num_lidar_pts`` -> nuScenes, ``gt_boxes`` without point counts -> Lyft.

``--data-path DIR`` without ``--infos``: the config's train infos (`DatasetSpec.train_infos`, OpenPCDet
``INFO_PATH[DATA_SPLIT['train']]``, mmdet3d ``ann_file``; for Waymo ``<PROCESSED_DATA_TAG>_infos_<train split>.pkl``)
are read from DIR. Several ``--infos`` files are read in order and their frames concatenated (OpenPCDet loads every
file of ``INFO_PATH[split]`` the same way); a frame id given twice is an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from assignaudit.errors import DataError
from assignaudit.sources.base import Frame, SourceInfo
from assignaudit.sources.safe_pickle import safe_load

if TYPE_CHECKING:
    from assignaudit.config.model import DetectorConfig

PCDET_FORMATS = ("pcdet-kitti", "pcdet-nuscenes", "pcdet-waymo", "pcdet-lyft", "pcdet-once", "pcdet-argo2")
MMDET3D_FORMATS = ("mmdet3d-nuscenes", "mmdet3d-kitti", "mmdet3d-waymo", "mmdet3d-lyft")
INFO_FORMATS = PCDET_FORMATS + MMDET3D_FORMATS
UPDATE_SCRIPT = "tools/dataset_converters/update_infos_to_v2.py"
OLD_MMDET3D = (f"an mmdetection3d info file of the old (pre-1.1) format: convert it with mmdetection3d's own "
               f"{UPDATE_SCRIPT} (python {UPDATE_SCRIPT} --dataset <name> --pkl-path FILE --out-dir DIR) and pass the "
               "converted file")


def dataset_option(config: "DetectorConfig | None", key: str, default: Any = None) -> Any:
    """An OpenPCDet dataset option (``FILTER_EMPTY_BOXES_FOR_TRAIN``, ...) recorded in `DatasetSpec.options`."""
    if config is None:
        return default
    for k, v in config.dataset.options:
        if k == key:
            try:
                return json.loads(v)
            except (TypeError, ValueError):
                return default
    return default


def detect_format(obj: Any, where: str) -> str:
    """The info format of a loaded pickle (module docstring); `DataError` naming what was found otherwise."""
    if isinstance(obj, dict):
        if "data_list" in obj and "metainfo" in obj:
            from assignaudit.sources.infos_mmdet3d import detect_dataset

            return "mmdet3d-" + detect_dataset(obj, where)
        if "infos" in obj:
            raise DataError(f"{where}: {OLD_MMDET3D}")
        keys = sorted(map(str, obj))[:8]
        if obj and all(isinstance(v, list) for v in obj.values()) and any(
                isinstance(v, list) and v and isinstance(v[0], dict) and "box3d_lidar" in v[0] for v in obj.values()):
            raise DataError(f"{where}: this is a gt_sampling database (dbinfos) file, not an info file: pass it with "
                            "--db-infos")
        raise DataError(f"{where}: not a framework info file: a dict with keys {keys} (expected an OpenPCDet list of "
                        "per-frame dicts, or an mmdetection3d >= 1.1 dict with 'metainfo' and 'data_list')")
    if not isinstance(obj, list):
        raise DataError(f"{where}: not a framework info file: the pickle holds a {type(obj).__name__} (expected a list "
                        "of per-frame dicts or an mmdetection3d dict with 'metainfo' and 'data_list')")
    if not obj:
        raise DataError(f"{where}: the info file holds no frames (an empty list)")
    first = obj[0]
    if not isinstance(first, dict):
        raise DataError(f"{where}: record 0 is a {type(first).__name__}, expected a dict (one per frame)")
    pc = first.get("point_cloud")
    img = first.get("image")
    if isinstance(pc, dict) and "velodyne_path" in pc and isinstance(img, dict) and "image_idx" in img:
        raise DataError(f"{where}: {OLD_MMDET3D}")
    if isinstance(pc, dict) and "lidar_sequence" in pc:
        return "pcdet-waymo"
    if isinstance(pc, dict) and "lidar_idx" in pc:
        return "pcdet-kitti"
    if isinstance(pc, dict) and "velodyne_path" in pc and "uuid" in first:
        return "pcdet-argo2"
    if "sequence_id" in first and "frame_id" in first:
        return "pcdet-once"
    if "gt_boxes" in first or "lidar_path" in first:
        return "pcdet-nuscenes" if "num_lidar_pts" in first or "gt_boxes" not in first else "pcdet-lyft"
    raise DataError(f"{where}: record 0 has keys {sorted(map(str, first))[:10]}, which match no known info format "
                    f"(force one with --infos-format: {', '.join(INFO_FORMATS)})")


def _reader(fmt: str) -> Callable[..., list[Frame]]:
    if fmt.startswith("pcdet-"):
        from assignaudit.sources import infos_pcdet

        return infos_pcdet.READERS[fmt]
    from assignaudit.sources import infos_mmdet3d

    return infos_mmdet3d.READERS[fmt]


class InfoSource:
    """`BoxSource` over the frames of one or more info files (already read and validated when opened)."""

    def __init__(self, frames: list[Frame], info: SourceInfo, *, files: tuple[Path, ...], fmt: str,
                 data_path: Path | None) -> None:
        self._frames = frames
        self.info = info
        self.files = files
        self.format = fmt
        self.data_path = data_path
        """Where the framework's files are (``--data-path``, else the first info file's directory): the
        gt_sampling database is looked up there."""

    def __len__(self) -> int:
        return len(self._frames)

    def sample_tokens(self) -> list[str]:
        return [f.sample_token for f in self._frames]

    def dataset_tokens(self) -> set[str]:
        return set(self.sample_tokens())

    def frames(self, indices: Sequence[int] | None = None) -> Iterator[Frame]:
        for i in range(len(self)) if indices is None else indices:
            yield self._frames[i]


def _config_train_infos(config: "DetectorConfig | None") -> tuple[str, ...]:
    if config is None:
        return ()
    spec = config.dataset
    if spec.train_infos:
        return spec.train_infos
    if spec.dataset_type == "WaymoDataset":
        tag = dataset_option(config, "PROCESSED_DATA_TAG")
        split = dataset_option(config, "DATA_SPLIT", {})
        if isinstance(tag, str) and tag:
            return (f"{tag}_infos_{split.get('train', 'train') if isinstance(split, dict) else 'train'}.pkl",)
    return ()


def resolve_under(data_path: Path, name: str, spec_data_path: str | None = None) -> list[Path]:
    """Where a file named in a config (relative to DATA_PATH / data_root, or with the data_root prefix that
    mmdet3d configs glue on) may be under ``data_path``: candidates in the order they are tried."""
    p = Path(name)
    cands = [p] if p.is_absolute() else [data_path / p]
    if spec_data_path and name.startswith(spec_data_path):
        cands.append(data_path / name[len(spec_data_path):].lstrip("/"))
    cands.append(data_path / p.name)
    out: list[Path] = []
    for c in cands:
        if c not in out:
            out.append(c)
    return out


def open_infos(infos: Sequence[Path], *, infos_format: str | None = None, data_path: Path | None = None,
               split: str | None = None, config: "DetectorConfig | None" = None) -> InfoSource:
    """Open the info files (module docstring). ``config`` names the train infos when only ``data_path`` is given,
    and carries the dataset options the readers apply (Waymo ``FILTER_EMPTY_BOXES_FOR_TRAIN``,
    ``SAMPLED_INTERVAL``; mmdet3d KITTI / Waymo's removal of labels outside the config classes)."""
    if infos_format is not None and infos_format not in INFO_FORMATS:
        raise DataError(f"--infos-format: unknown format {infos_format!r} (one of {', '.join(INFO_FORMATS)})")
    if split is not None:
        raise DataError("--split does not apply to --infos (an info file is one split: pass the file of the split "
                        "you want)")
    data_path = None if data_path is None else Path(data_path)
    if data_path is not None and not data_path.is_dir():
        raise DataError(f"--data-path {data_path} is not a directory")
    paths = [Path(p) for p in infos]
    if not paths:
        names = _config_train_infos(config)
        if not names:
            raise DataError("--data-path needs --config with a dataset section that names the train infos "
                            "(OpenPCDet DATA_CONFIG.INFO_PATH, mmdetection3d train_dataloader.dataset.ann_file), or "
                            "--infos FILE")
        spec_dp = config.dataset.data_path if config is not None else None
        for name in names:
            cands = resolve_under(data_path, name, spec_dp)  # type: ignore[arg-type]
            found = next((c for c in cands if c.is_file()), None)
            if found is None:
                raise DataError(f"the config's train infos {name!r} are not under --data-path {data_path} (looked for "
                                f"{', '.join(map(str, cands))})")
            paths.append(found)
    frames: list[Frame] = []
    fmt_seen: str | None = None
    for path in paths:
        obj = safe_load(path)
        fmt = infos_format or detect_format(obj, str(path))
        if fmt_seen is not None and fmt != fmt_seen:
            raise DataError(f"{path}: format {fmt} differs from the first info file's ({fmt_seen}); give files of "
                            "one dataset")
        fmt_seen = fmt
        frames += _reader(fmt)(obj, str(path), config=config, data_path=data_path or path.parent)
    seen: set[str] = set()
    for f in frames:
        if f.sample_token in seen:
            raise DataError(f"frame {f.sample_token!r} occurs twice in {', '.join(map(str, paths))}")
        seen.add(f.sample_token)
    assert fmt_seen is not None
    kind = "pcdet_infos" if fmt_seen.startswith("pcdet-") else "mmdet3d_infos"
    info = SourceInfo(kind=kind, dataroot=",".join(str(p) for p in paths), version=fmt_seen,
                      split="train" if not infos else ",".join(p.stem for p in paths), num_scenes=0,
                      num_samples=len(frames))
    return InfoSource(frames, info, files=tuple(paths), fmt=fmt_seen, data_path=data_path or paths[0].parent)
