"""mmdetection3d >= 1.1 info files (the v2 format: ``metainfo`` + ``data_list``) -> canonical frames.

What is read, and how each dataset class treats it (mmdet3d/datasets/det3d_dataset.py ``parse_ann_info``,
nuscenes_dataset.py, kitti_dataset.py, waymo_dataset.py, lyft_dataset.py, and the writer
tools/dataset_converters/update_infos_to_v2.py; reproduced with our own code):

* ``metainfo.categories``: ``{name: label}``; ``metainfo.dataset`` names the dataset (``nuscenes``, ``kitti``,
  ``waymo``, ``lyft``). Each ``data_list`` record holds ``instances``, one dict per object with ``bbox_3d``,
  ``bbox_label_3d`` (an index into the categories; ``-1`` for a class outside them) and per-dataset fields.
* labels: ``bbox_label_3d`` -> the category name; ``-1`` -> no class (None): mmdet3d keeps such a box with label -1
  on nuScenes and Lyft (it is in the frame, never a target), while KITTI and Waymo remove every ``-1`` box
  (``_remove_dontcare``), including the classes the config leaves out (its ``label_mapping`` maps them to -1):
  with a config, KITTI / Waymo frames hold only the config's classes.
* ``mmdet3d-nuscenes`` / ``mmdet3d-lyft``: ``bbox_3d`` is ``x, y, z, l, w, h, yaw`` in the LiDAR frame with the
  GRAVITY centre (the datasets build ``LiDARInstance3DBoxes(origin=(0.5, 0.5, 0.5))``): canonical as it is
  (`assignaudit.conventions.pcdet_to_canonical`, the identity). ``velocity`` (nuScenes; NaN -> 0 as
  ``with_velocity`` does), ``num_lidar_pts``, ``num_radar_pts``. ``_filter_with_mask`` (``bbox_3d_isvalid`` under
  ``use_valid_flag``, else ``num_lidar_pts > 0``) is the config's ``gt_filters`` (the replay applies it, as for
  every source; the file's ``bbox_3d_isvalid`` is ``num_lidar_pts + num_radar_pts > 0`` by construction). Frame id:
  ``token``; pose ``ego2global @ lidar_points.lidar2ego``.
* ``mmdet3d-kitti``: ``bbox_3d`` is a camera box (bottom centre, ``l, h, w``, ``ry``) brought to the LiDAR frame with
  the record's own ``images.CAM2.lidar2cam`` (`assignaudit.conventions.mmdet3d_camera_to_canonical`); ``difficulty``
  and ``num_lidar_pts`` per instance. Frame id: ``sample_idx`` as KITTI's 6 digits (``'000123'``);
  ``Frame.extra['kitti_calib']`` from ``images.R0_rect`` and ``lidar_points.Tr_velo_to_cam``.
* ``mmdet3d-waymo``: ``bbox_3d`` is a LiDAR box with the BOTTOM centre (``LiDARInstance3DBoxes`` default origin,
  ``load_type='frame_based'``): `assignaudit.conventions.mmdet3d_to_canonical`. Frame id: ``sample_idx``. The
  config's ``load_interval`` (the ``waymoD5`` configs: 5) keeps ``data_list[::load_interval]``, as
  ``WaymoDataset.load_data_list``.

The pre-1.1 format (a dict with ``infos``, or a KITTI list with ``image.image_idx``) is refused with the name of
mmdetection3d's update script (`assignaudit.sources.infos`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from assignaudit.conventions import mmdet3d_camera_to_canonical, mmdet3d_to_canonical, pcdet_to_canonical
from assignaudit.errors import DataError
from assignaudit.sources.base import Frame
from assignaudit.sources.infos_pcdet import array, get, make_frame, matrix

if TYPE_CHECKING:
    from assignaudit.config.model import DetectorConfig

DATASETS = ("nuscenes", "kitti", "waymo", "lyft")


def detect_dataset(obj: dict, where: str) -> str:
    """``metainfo['dataset']`` of a v2 info file, or from the records' keys when it is absent."""
    meta = obj.get("metainfo")
    if not isinstance(meta, dict):
        raise DataError(f"{where}: metainfo is a {type(meta).__name__}, expected a dict")
    name = str(meta.get("dataset", "")).lower()
    if name in DATASETS:
        return name
    data = obj.get("data_list")
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    if "token" in first:
        return "nuscenes"
    if "images" in first and "CAM2" in (first.get("images") or {}):
        return "kitti"
    if "context_name" in first:
        return "waymo"
    raise DataError(f"{where}: mmdetection3d info file of dataset {meta.get('dataset')!r}: assignaudit reads "
                    f"{', '.join(DATASETS)} (force one with --infos-format mmdet3d-<dataset>)")


def _label_names(meta: Any, where: str) -> dict[int, str]:
    cats = get(meta, "categories", where, "metainfo")
    if not isinstance(cats, dict):
        raise DataError(f"{where}: metainfo.categories must map class names to labels")
    out: dict[int, str] = {}
    for name, label in cats.items():
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool):
            raise DataError(f"{where}: metainfo.categories[{name!r}] = {label!r} is not an integer label")
        if label >= 0:
            if int(label) in out:
                raise DataError(f"{where}: metainfo.categories gives label {label} to {out[int(label)]!r} and {name!r}")
            out[int(label)] = str(name)
    return out


def _instances(rec: Any, where: str, i: int) -> list[dict]:
    inst = rec.get("instances", []) if isinstance(rec, dict) else None
    if not isinstance(inst, list) or not all(isinstance(x, dict) for x in inst):
        raise DataError(f"{where}: data_list[{i}].instances must be a list of dicts")
    return inst


def _column(inst: list[dict], key: str, where: str, default: Any = None) -> list:
    try:
        return [x[key] for x in inst]
    except KeyError:
        pass
    out = []
    for k, x in enumerate(inst):
        if key in x:
            out.append(x[key])
        elif default is not None:
            out.append(default)
        else:
            raise DataError(f"{where}: instance {k} has no key {key!r} (keys: {sorted(x)[:12]})")
    return out


def _labels(inst: list[dict], names: dict[int, str], where: str) -> np.ndarray:
    labels = array(_column(inst, "bbox_label_3d", where), where, "bbox_label_3d", dtype=np.float64, n=len(inst))
    if not np.all(labels == np.round(labels)):
        raise DataError(f"{where}: bbox_label_3d must be integers")
    out = np.empty(len(inst), dtype=object)
    for k, lab in enumerate(labels.astype(np.int64).tolist()):
        if lab == -1:
            out[k] = None
        elif lab in names:
            out[k] = names[lab]
        else:
            raise DataError(f"{where}: instance {k}: bbox_label_3d {lab} is not in metainfo.categories "
                            f"({sorted(names)})")
    return out


def _data_list(obj: Any, where: str) -> tuple[list, dict[int, str]]:
    if not isinstance(obj, dict) or "data_list" not in obj or "metainfo" not in obj:
        raise DataError(f"{where}: an mmdetection3d >= 1.1 info file is a dict with 'metainfo' and 'data_list'")
    data = obj["data_list"]
    if not isinstance(data, list):
        raise DataError(f"{where}: data_list must be a list of per-frame dicts")
    return data, _label_names(obj["metainfo"], where)


def _drop_unmapped(names: np.ndarray, config: "DetectorConfig | None") -> np.ndarray:
    """KITTI / Waymo ``_remove_dontcare``: boxes whose label is -1 after ``label_mapping`` go."""
    keep = np.array([n is not None for n in names], dtype=bool)
    if config is not None:
        mapping = dict(config.gt_filters.class_mapping)
        keep &= np.array([mapping.get(n, n) in config.class_names for n in names], dtype=bool)
    return keep


def _bbox(inst: list[dict], where: str) -> np.ndarray:
    return array(_column(inst, "bbox_3d", where), where, "bbox_3d", shape_tail=(7,), n=len(inst))


def read_nuscenes(obj: Any, where: str, *, config: "DetectorConfig | None" = None, data_path: Path,
                  lyft: bool = False) -> list[Frame]:
    data, label_names = _data_list(obj, where)
    frames = []
    for i, rec in enumerate(data):
        token = str(get(rec, "token", where, f"data_list[{i}]"))
        w = f"{where}: frame {token}"
        inst = _instances(rec, where, i)
        n = len(inst)
        boxes = np.full((n, 9), np.nan)
        boxes[:, :7] = pcdet_to_canonical(_bbox(inst, w))
        pts = radar = None
        if not lyft:
            vel = array(_column(inst, "velocity", w, default=[np.nan, np.nan]), w, "velocity", shape_tail=(2,), n=n)
            boxes[:, 7:9] = np.where(np.isnan(vel), 0.0, vel)  # with_velocity: NaN -> 0
            pts = array(_column(inst, "num_lidar_pts", w), w, "num_lidar_pts", n=n)
            radar = array(_column(inst, "num_radar_pts", w, default=-1), w, "num_radar_pts", n=n)
        names = _labels(inst, label_names, w)
        extra_kw: dict[str, Any] = {}
        lp = rec.get("lidar_points") if isinstance(rec.get("lidar_points"), dict) else {}
        if "ego2global" in rec and "lidar2ego" in lp:
            g = matrix(rec["ego2global"], w, "ego2global", ((4, 4),))
            extra_kw["global_SE3_lidar"] = g @ matrix(lp["lidar2ego"], w, "lidar_points.lidar2ego", ((4, 4),))
            extra_kw["ego_translation_global"] = g[:3, 3].copy()
        frames.append(make_frame(token, boxes, names, w, pts=pts, radar=radar, **extra_kw))
    return frames


def read_lyft(obj: Any, where: str, **kw: Any) -> list[Frame]:
    return read_nuscenes(obj, where, lyft=True, **kw)


def _per_instance_ints(inst: list[dict], key: str, w: str, default: int) -> np.ndarray:
    return array(_column(inst, key, w, default=default), w, key, n=len(inst))


def read_kitti(obj: Any, where: str, *, config: "DetectorConfig | None" = None, data_path: Path) -> list[Frame]:
    from assignaudit.sources.kitti import KittiCalib

    data, label_names = _data_list(obj, where)
    frames = []
    for i, rec in enumerate(data):
        idx = get(rec, "sample_idx", where, f"data_list[{i}]")
        sid = f"{int(idx):06d}" if isinstance(idx, (int, np.integer)) else str(idx)
        w = f"{where}: frame {sid}"
        images = get(rec, "images", w, "record")
        cam2 = get(images, "CAM2", w, "images")
        lidar2cam = matrix(get(cam2, "lidar2cam", w, "images.CAM2"), w, "images.CAM2.lidar2cam", ((4, 4),))
        inst = _instances(rec, where, i)
        names = _labels(inst, label_names, w)
        keep = _drop_unmapped(names, config)
        boxes = mmdet3d_camera_to_canonical(_bbox(inst, w)[keep], lidar2cam)
        pts = _per_instance_ints(inst, "num_lidar_pts", w, -1)[keep]
        diff = _per_instance_ints(inst, "difficulty", w, -1)[keep]
        lp = rec.get("lidar_points") if isinstance(rec.get("lidar_points"), dict) else {}
        extra = {}
        if "R0_rect" in images and "Tr_velo_to_cam" in lp:
            extra["kitti_calib"] = KittiCalib.from_matrices(
                matrix(images["R0_rect"], w, "images.R0_rect", ((4, 4), (3, 3))),
                matrix(lp["Tr_velo_to_cam"], w, "lidar_points.Tr_velo_to_cam", ((4, 4), (3, 4))))
        from assignaudit.sources.validate import check_num_points

        frames.append(make_frame(sid, boxes[:, :7], names[keep], w, pts=pts,
                                 difficulty=check_num_points(diff, w, "difficulty"), extra=extra,
                                 lidar_path=_kitti_lidar(data_path, lp.get("lidar_path"))))
    return frames


def _kitti_lidar(data_path: Path, name: Any) -> str | None:
    """The velodyne file of a KITTI record (``lidar_points.lidar_path``, a bare file name in mmdet3d 1.x), looked up
    under ``training/velodyne_reduced`` (mmdet3d's default ``data_prefix.pts``), then ``training/velodyne``."""
    if not isinstance(name, str) or not name:
        return None
    for sub in ("training/velodyne_reduced", "training/velodyne"):
        p = data_path / sub / Path(name).name
        if p.is_file():
            return str(p.resolve())
    return None


def read_waymo(obj: Any, where: str, *, config: "DetectorConfig | None" = None, data_path: Path) -> list[Frame]:
    from assignaudit.sources.infos import dataset_option

    data, label_names = _data_list(obj, where)
    step = dataset_option(config, "load_interval", 1)  # WaymoDataset.load_data_list: data_list[::load_interval]
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise DataError(f"train dataset load_interval must be a positive integer, got {step!r}")
    data = data[::step]
    frames = []
    for i, rec in enumerate(data):
        sid = str(get(rec, "sample_idx", where, f"data_list[{i}]"))
        w = f"{where}: frame {sid}"
        inst = _instances(rec, where, i)
        names = _labels(inst, label_names, w)
        keep = _drop_unmapped(names, config)
        boxes = mmdet3d_to_canonical(_bbox(inst, w)[keep])
        pts = _per_instance_ints(inst, "num_lidar_pts", w, -1)[keep]
        diff = _per_instance_ints(inst, "difficulty", w, 0)[keep]
        from assignaudit.sources.validate import check_num_points

        frames.append(make_frame(sid, boxes, names[keep], w, pts=pts,
                                 difficulty=check_num_points(diff, w, "difficulty")))
    return frames


READERS: dict[str, Callable[..., list[Frame]]] = {
    "mmdet3d-nuscenes": read_nuscenes, "mmdet3d-kitti": read_kitti, "mmdet3d-waymo": read_waymo,
    "mmdet3d-lyft": read_lyft,
}
