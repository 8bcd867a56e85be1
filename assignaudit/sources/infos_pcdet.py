"""OpenPCDet info files (``create_data`` output) -> canonical frames, with each dataset class's own GT preparation.

The fields read, and what the dataset class's ``__getitem__`` does with them before the augmentor (reproduced with
our own code from pcdet/datasets/<name>/<name>_dataset.py and the converters that write the files):

``pcdet-kitti`` (kitti_dataset.py ``get_infos`` / ``__getitem__``): ``point_cloud.lidar_idx`` (frame id, e.g.
  ``'000123'``), ``calib.R0_rect`` / ``calib.Tr_velo_to_cam`` (4x4), ``annos.{name, location, dimensions (l, h, w),
  rotation_y, difficulty, num_points_in_gt}``. ``DontCare`` is dropped by name (``drop_info_with_name``), then the
  camera boxes (float32, as ``__getitem__`` casts them) go to the LiDAR frame with the info's calibration
  (`assignaudit.conventions.kitti_camera_to_lidar_raw`). ``num_points_in_gt`` is the info's own count (points in the
  camera field of view). ``Frame.extra['kitti_calib']`` is set, so KITTI-format predictions work on the frames.
``pcdet-nuscenes`` (nuscenes_utils.py ``fill_trainval_infos``, nuscenes_dataset.py): ``token`` (sample token, the
  frame id), ``gt_boxes [N, 9]`` (already canonical: centre z, ``dx, dy, dz = l, w, h``, velocity in the LiDAR
  frame; the converter dropped boxes with no LiDAR and no radar point), ``gt_names`` (detection names, ``ignore``
  for the rest), ``num_lidar_pts``, ``num_radar_pts``, ``gt_boxes_token``, ``ref_from_car`` and ``car_from_global``
  (the pose). ``FILTER_MIN_POINTS_IN_GT`` is the config's ``gt_filters.min_lidar_points``, applied by the replay as
  for every source. ``SET_NAN_VELOCITY_TO_ZEROS`` (nuScenes and Lyft dataset configs): ``__getitem__`` sets every
  NaN of ``gt_boxes`` to 0 after ``prepare_data``; the NaN velocities (the converter writes both components NaN
  when ``box_velocity`` has no neighbour) are zeroed here instead, which is the same after every world op (each
  maps a (0, 0) velocity to (0, 0) and a (NaN, NaN) one to (NaN, NaN)). ``INFO_WITH_FAKELIDAR`` is read by these
  two dataset classes only in evaluation, so it changes no training GT.
``pcdet-waymo`` (waymo_utils.py ``generate_labels``, waymo_dataset.py): ``frame_id`` (``<sequence>_<idx>``),
  ``annos.{name, gt_boxes_lidar [N, 9], num_points_in_gt, difficulty}``. ``unknown`` is dropped by name; with the
  config's ``FILTER_EMPTY_BOXES_FOR_TRAIN`` boxes with ``num_points_in_gt <= 0`` are dropped (training mode, which is
  what ``count`` audits); ``SAMPLED_INTERVAL['train']`` keeps every k-th frame, as ``include_waymo_data``. Without
  ``TRAIN_WITH_SPEED`` the dataset keeps 7 columns: the velocity is then NaN. With ``INFO_WITH_FAKELIDAR`` the
  boxes are in OpenPCDet's old fake-LiDAR convention and converted as ``boxes3d_kitti_fakelidar_to_lidar``
  (`assignaudit.conventions.pcdet_fakelidar_to_canonical`, 7 columns); upstream then fails its 9-column assertion
  under ``TRAIN_WITH_SPEED``, so that pair is refused.
``pcdet-once`` (once_dataset.py): ``frame_id``, ``annos.{name, boxes_3d [N, 7], num_points_in_gt}``; frames without
  ``annos`` are left out (the training split keeps only annotated frames).
``pcdet-argo2`` (argo2_dataset.py): frame id from ``point_cloud.velodyne_path`` (as ``__getitem__``),
  ``annos.{name, location (ego-frame centre), dimensions (l, w, h), rotation_y, num_points_in_gt}`` (float32 as
  ``__getitem__`` casts them); class names as the converter writes them (``REGULAR_VEHICLE``, ...).
``pcdet-lyft`` (lyft_utils.py, lyft_dataset.py): ``token``, ``gt_boxes [N, 7]``, ``gt_names`` (Lyft's names). The
  Lyft dataset class reads no ``FILTER_MIN_POINTS_IN_GT`` and the info has no point counts: -1 (unknown, kept by
  every point filter).

Every array is validated (`assignaudit.sources.validate`) before a frame is made; a missing key or a malformed
record is one `DataError` naming the file, the record and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from assignaudit.conventions import (
    BOX_DIM, YAW, kitti_camera_to_lidar_raw, pcdet_fakelidar_to_canonical, pcdet_to_canonical, wrap_yaw,
)
from assignaudit.errors import ConfigError, DataError
from assignaudit.sources.base import Frame
from assignaudit.sources.infos import dataset_option
from assignaudit.sources.validate import check_boxes, check_num_points

if TYPE_CHECKING:
    from assignaudit.config.model import DetectorConfig


def get(rec: Any, key: str, where: str, path: str = "") -> Any:
    """``rec[key]`` or a `DataError` naming the record path and the missing key."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: {path or 'record'} is a {type(rec).__name__}, expected a dict")
    try:
        return rec[key]
    except KeyError:
        keys = sorted(map(str, rec))[:12]
        raise DataError(f"{where}: {path or 'record'} has no key {key!r} (keys: {keys})") from None


def array(value: Any, where: str, what: str, *, dtype=np.float64, shape_tail: tuple[int, ...] | None = None,
          n: int | None = None) -> np.ndarray:
    """``value`` as a numeric array of ``[n, *shape_tail]`` (``n`` None: any length); `DataError` otherwise."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what} is not a numeric array (non-numbers, or rows of different lengths)") from None
    if shape_tail is not None:
        if arr.size == 0 and n in (None, 0):
            arr = arr.reshape((0, *shape_tail))
        if arr.ndim != 1 + len(shape_tail) or tuple(arr.shape[1:]) != shape_tail:
            raise DataError(f"{where}: {what} has shape {arr.shape}, expected [N, {', '.join(map(str, shape_tail))}]")
    elif arr.ndim != 1:
        arr = arr.reshape(-1) if arr.size == 0 else arr
        if arr.ndim != 1:
            raise DataError(f"{where}: {what} has shape {arr.shape}, expected [N]")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{where}: {what} has {arr.shape[0]} rows, the record has {n} objects")
    return arr


def matrix(value: Any, where: str, what: str, shapes: tuple[tuple[int, int], ...]) -> np.ndarray:
    """A finite float64 matrix of one of ``shapes``; `DataError` otherwise."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what} is not numeric") from None
    if arr.shape not in shapes or not np.isfinite(arr).all():
        raise DataError(f"{where}: {what} must be a finite {' or '.join('x'.join(map(str, s)) for s in shapes)} "
                        f"matrix, got shape {arr.shape}")
    return arr


def names_array(value: Any, where: str, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=object).reshape(-1) if not isinstance(value, str) else None
    if arr is None or not all(isinstance(v, (str, np.str_)) for v in arr.tolist()):
        raise DataError(f"{where}: {what} must be a list of class-name strings")
    return np.array([str(v) for v in arr.tolist()], dtype=object)


def make_frame(token: str, boxes: np.ndarray, names: np.ndarray, where: str, *, pts: np.ndarray | None = None,
               radar: np.ndarray | None = None, ann: np.ndarray | None = None, difficulty: np.ndarray | None = None,
               **kw: Any) -> Frame:
    """Validate and build one frame from canonical-ordered boxes ``[N, 7]`` or ``[N, 9]`` (yaw wrapped here)."""
    n = boxes.shape[0]
    out = np.full((n, BOX_DIM), np.nan)
    out[:, : boxes.shape[1]] = boxes
    out[:, YAW] = wrap_yaw(out[:, YAW])
    check_boxes(out, where)
    unknown = np.full(n, -1, dtype=np.int64)
    return Frame(
        sample_token=token, boxes_lidar=out, detection_class=names, category=names.copy(),
        ann_token=np.array([f"{token}_{k}" for k in range(n)], dtype=object) if ann is None else ann,
        instance_token=np.full(n, None, dtype=object),
        num_lidar_pts=unknown if pts is None else check_num_points(pts, where, "num_points_in_gt"),
        num_radar_pts=unknown.copy() if radar is None else check_num_points(radar, where, "num_radar_pts"),
        difficulty=difficulty, **kw)


def _records(obj: Any, where: str) -> list:
    if not isinstance(obj, list):
        raise DataError(f"{where}: an OpenPCDet info file is a list of per-frame dicts, got {type(obj).__name__}")
    return obj


def _lidar(data_path: Path, rel: str | None) -> str | None:
    if not rel:
        return None
    p = data_path / rel
    return str(p.resolve()) if p.is_file() else None


def read_kitti(obj: Any, where: str, *, config: "DetectorConfig | None" = None, data_path: Path) -> list[Frame]:
    from assignaudit.sources.kitti import DONT_CARE, KittiCalib

    frames = []
    for i, rec in enumerate(_records(obj, where)):
        w = f"{where}: record {i}"
        pc = get(rec, "point_cloud", where, f"record {i}")
        sample_idx = str(get(pc, "lidar_idx", where, f"record {i}.point_cloud"))
        w = f"{where}: frame {sample_idx}"
        calib = get(rec, "calib", where, f"record {i}")
        r0 = matrix(get(calib, "R0_rect", where, f"record {i}.calib"), w, "calib.R0_rect", ((4, 4), (3, 3)))
        v2c = matrix(get(calib, "Tr_velo_to_cam", where, f"record {i}.calib"), w, "calib.Tr_velo_to_cam",
                     ((4, 4), (3, 4)))
        annos = get(rec, "annos", where, f"record {i}")
        names = names_array(get(annos, "name", where, f"record {i}.annos"), w, "annos.name")
        n = names.shape[0]
        loc = array(get(annos, "location", w, "annos"), w, "annos.location", dtype=np.float32, shape_tail=(3,), n=n)
        dims = array(get(annos, "dimensions", w, "annos"), w, "annos.dimensions", dtype=np.float32, shape_tail=(3,),
                     n=n)
        ry = array(get(annos, "rotation_y", w, "annos"), w, "annos.rotation_y", dtype=np.float32, n=n)
        diff = array(annos.get("difficulty", np.full(n, -1)), w, "annos.difficulty", dtype=np.float64, n=n)
        pts_raw = annos.get("num_points_in_gt")
        pts = None if pts_raw is None else array(pts_raw, w, "annos.num_points_in_gt", n=n)
        keep = names != DONT_CARE
        raw = kitti_camera_to_lidar_raw(loc[keep], dims[keep], ry[keep], r0, v2c)
        frames.append(make_frame(
            sample_idx, raw, names[keep], w, pts=None if pts is None else pts[keep],
            difficulty=check_num_points(diff[keep], w, "annos.difficulty"),
            lidar_path=_lidar(data_path, f"training/velodyne/{sample_idx}.bin"),
            extra={"kitti_calib": KittiCalib.from_matrices(r0, v2c, calib.get("P2"))}))
    return frames


def read_nuscenes(obj: Any, where: str, *, config: "DetectorConfig | None" = None, data_path: Path,
                  lyft: bool = False) -> list[Frame]:
    nan_velocity_to_zeros = bool(dataset_option(config, "SET_NAN_VELOCITY_TO_ZEROS", False))
    frames = []
    for i, rec in enumerate(_records(obj, where)):
        token = str(get(rec, "token", where, f"record {i}"))
        w = f"{where}: frame {token}"
        names = names_array(get(rec, "gt_names", where, f"record {i}"), w, "gt_names")
        n = names.shape[0]
        raw_boxes = np.asarray(get(rec, "gt_boxes", where, f"record {i}"))
        width = raw_boxes.shape[1] if raw_boxes.ndim == 2 else 9
        if width not in (7, 9):
            raise DataError(f"{w}: gt_boxes has shape {raw_boxes.shape}, expected [N, 7] or [N, 9]")
        boxes = pcdet_to_canonical(array(raw_boxes, w, "gt_boxes", shape_tail=(width,), n=n))
        if nan_velocity_to_zeros and width == 9:
            vel = boxes[:, 7:9]
            vel[np.isnan(vel)] = 0.0
        pts = radar = None
        if not lyft:
            pts = array(get(rec, "num_lidar_pts", where, f"record {i}"), w, "num_lidar_pts", n=n)
            radar = array(rec.get("num_radar_pts", np.full(n, -1)), w, "num_radar_pts", n=n)
        tokens = rec.get("gt_boxes_token")
        ann = None
        if tokens is not None:
            ann = np.array([str(t) for t in np.asarray(tokens, dtype=object).reshape(-1).tolist()], dtype=object)
            if ann.shape[0] != n:
                raise DataError(f"{w}: gt_boxes_token has {ann.shape[0]} rows, the record has {n} objects")
        extra_kw: dict[str, Any] = {}
        if "ref_from_car" in rec and "car_from_global" in rec:
            ref_from_car = matrix(rec["ref_from_car"], w, "ref_from_car", ((4, 4),))
            car_from_global = matrix(rec["car_from_global"], w, "car_from_global", ((4, 4),))
            global_from_car = np.linalg.inv(car_from_global)
            extra_kw["global_SE3_lidar"] = global_from_car @ np.linalg.inv(ref_from_car)
            extra_kw["ego_translation_global"] = global_from_car[:3, 3].copy()
        extra = {"timestamp_us": int(rec["timestamp"])} if isinstance(rec.get("timestamp"), (int, np.integer)) else {}
        if rec.get("lidar_path"):
            extra["lidar_path_in_info"] = str(rec["lidar_path"])  # a .pcd.bin of 5 columns: not Frame.lidar_path
        frames.append(make_frame(token, boxes, names, w, pts=pts, radar=radar, ann=ann, extra=extra, **extra_kw))
    return frames


def read_lyft(obj: Any, where: str, **kw: Any) -> list[Frame]:
    return read_nuscenes(obj, where, lyft=True, **kw)


def read_waymo(obj: Any, where: str, *, config: "DetectorConfig | None" = None, data_path: Path) -> list[Frame]:
    records = _records(obj, where)
    interval = dataset_option(config, "SAMPLED_INTERVAL", {})
    step = interval.get("train", 1) if isinstance(interval, dict) else 1
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise DataError(f"DATA_CONFIG.SAMPLED_INTERVAL.train must be a positive integer, got {step!r}")
    filter_empty = bool(dataset_option(config, "FILTER_EMPTY_BOXES_FOR_TRAIN", False))
    with_speed = bool(dataset_option(config, "TRAIN_WITH_SPEED", False))
    fakelidar = bool(dataset_option(config, "INFO_WITH_FAKELIDAR", False))
    if fakelidar and with_speed:
        raise ConfigError("DATA_CONFIG.INFO_WITH_FAKELIDAR with TRAIN_WITH_SPEED: OpenPCDet's waymo_dataset.py "
                          "converts the fake-LiDAR boxes to 7 columns, then asserts 9 (the config cannot train)")
    frames = []
    for i in range(0, len(records), step):
        rec = records[i]
        fid = str(get(rec, "frame_id", where, f"record {i}"))
        w = f"{where}: frame {fid}"
        annos = get(rec, "annos", where, f"record {i}")
        names = names_array(get(annos, "name", w, "annos"), w, "annos.name")
        n = names.shape[0]
        raw = np.asarray(get(annos, "gt_boxes_lidar", w, "annos"))
        width = raw.shape[1] if raw.ndim == 2 else 9
        boxes = array(raw, w, "annos.gt_boxes_lidar", shape_tail=(width,), n=n)
        if width not in (7, 9):
            raise DataError(f"{w}: annos.gt_boxes_lidar has {width} columns, expected 7 or 9")
        pts = array(get(annos, "num_points_in_gt", w, "annos"), w, "annos.num_points_in_gt", n=n)
        diff = array(annos.get("difficulty", np.zeros(n)), w, "annos.difficulty", n=n)
        keep = names != "unknown"
        if filter_empty:
            keep &= pts > 0
        if fakelidar:  # waymo_dataset.py __getitem__: after drop_info_with_name('unknown'), before the speed cut
            boxes = pcdet_fakelidar_to_canonical(boxes[keep])
        else:
            boxes = pcdet_to_canonical(boxes[keep] if with_speed else boxes[keep, :7])
        frames.append(make_frame(fid, boxes, names[keep], w, pts=pts[keep],
                                 difficulty=check_num_points(diff[keep], w, "annos.difficulty")))
    return frames


def read_once(obj: Any, where: str, *, config: "DetectorConfig | None" = None, data_path: Path) -> list[Frame]:
    frames = []
    for i, rec in enumerate(_records(obj, where)):
        fid = str(get(rec, "frame_id", where, f"record {i}"))
        if "annos" not in rec:  # once_dataset.py: the training split keeps only the annotated frames
            continue
        w = f"{where}: frame {fid}"
        annos = rec["annos"]
        names = names_array(get(annos, "name", w, "annos"), w, "annos.name")
        boxes = array(get(annos, "boxes_3d", w, "annos"), w, "annos.boxes_3d", shape_tail=(7,), n=names.shape[0])
        pts = annos.get("num_points_in_gt") if isinstance(annos, dict) else None
        pts = None if pts is None else array(pts, w, "annos.num_points_in_gt", n=names.shape[0])
        frames.append(make_frame(fid, pcdet_to_canonical(boxes), names, w, pts=pts))
    return frames


def read_argo2(obj: Any, where: str, *, config: "DetectorConfig | None" = None, data_path: Path) -> list[Frame]:
    frames = []
    for i, rec in enumerate(_records(obj, where)):
        pc = get(rec, "point_cloud", where, f"record {i}")
        velo = str(get(pc, "velodyne_path", where, f"record {i}.point_cloud"))
        fid = velo.split("/")[-1].rstrip(".bin")  # argo2_dataset.py __getitem__'s frame id, rstrip included
        w = f"{where}: frame {fid}"
        annos = get(rec, "annos", where, f"record {i}")
        names = names_array(get(annos, "name", w, "annos"), w, "annos.name")
        n = names.shape[0]
        loc = array(get(annos, "location", w, "annos"), w, "annos.location", dtype=np.float32, shape_tail=(3,), n=n)
        dims = array(get(annos, "dimensions", w, "annos"), w, "annos.dimensions", dtype=np.float32, shape_tail=(3,),
                     n=n)
        rot = array(get(annos, "rotation_y", w, "annos"), w, "annos.rotation_y", dtype=np.float32, n=n)
        pts = annos.get("num_points_in_gt")
        pts = None if pts is None else array(pts, w, "annos.num_points_in_gt", n=n)
        boxes = np.concatenate([loc, dims, rot[:, None]], axis=1).astype(np.float64)  # ego-frame centre, (l, w, h)
        frames.append(make_frame(fid, pcdet_to_canonical(boxes), names, w, pts=pts))
    return frames


READERS: dict[str, Callable[..., list[Frame]]] = {
    "pcdet-kitti": read_kitti, "pcdet-nuscenes": read_nuscenes, "pcdet-waymo": read_waymo, "pcdet-lyft": read_lyft,
    "pcdet-once": read_once, "pcdet-argo2": read_argo2,
}
