"""OpenPCDet ``result.pkl`` (``tools/test.py`` -> ``eval_utils.eval_one_epoch`` pickles ``det_annos``).

``det_annos`` is a list with one dict per evaluated frame, made by the dataset class's
``generate_prediction_dicts`` (pcdet/datasets/dataset.py and the KITTI / argo2 / ONCE overrides):

* ``name`` ``[n]`` class names (``class_names[pred_labels - 1]``), ``score`` ``[n]``;
* ``boxes_lidar`` ``[n, 7]`` (``[n, 9]`` with vx, vy for nuScenes) in OpenPCDet's LiDAR convention, which is ours
  (`assignaudit.conventions.pcdet_to_canonical`; the heading is wrapped here). ONCE names it ``boxes_3d``;
* ``frame_id``: the dataset's frame id (KITTI ``'000008'``, Waymo ``<sequence>_<idx>``, nuScenes the LiDAR file
  stem) and, for nuScenes, ``metadata['token']`` (the sample token). The frame key is ``metadata['token']`` when
  present, else ``str(frame_id)``.

KITTI's dicts also hold the camera-frame copies (``location``, ``dimensions``, ``rotation_y``, ``bbox``, ``alpha``);
``boxes_lidar`` is the source of truth (the camera fields are computed from it). Empty frames hold zero-length
arrays (``name`` is then ``np.zeros(0)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assignaudit.conventions import BOX_DIM, pcdet_to_canonical, wrap_yaw
from assignaudit.errors import DataError
from assignaudit.sources.validate import check_boxes
from assignaudit.yaw.predictions import PredictionSet, file_sha256

PCDET_BOX_KEYS = ("boxes_lidar", "boxes_3d")


def is_pcdet_results(records: list) -> bool:
    """Whether a results list looks like OpenPCDet's (a dict with ``boxes_lidar`` / ``boxes_3d``)."""
    return any(isinstance(r, dict) and any(k in r for k in PCDET_BOX_KEYS) for r in records)


def frame_key(rec: dict) -> str | None:
    """``metadata['token']`` if present (nuScenes), else ``str(frame_id)``; None when neither is there."""
    meta = rec.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("token"), str):
        return meta["token"]
    fid = rec.get("frame_id")
    if fid is None:
        return None
    if isinstance(fid, np.ndarray) and fid.shape == ():
        fid = fid.item()
    if isinstance(fid, (bytes, np.bytes_)):
        fid = fid.decode()
    return str(fid)


def _array(rec: dict, key: str, where: str, *, numeric: bool) -> np.ndarray:
    value = rec.get(key)
    if value is None:
        raise DataError(f"{where}: missing key '{key}'")
    arr = np.asarray(value)
    if numeric and arr.dtype.kind not in "fiub":
        raise DataError(f"{where}: '{key}' must be numeric, got values of type {arr.dtype}")
    return arr


def from_records(records: list, path: Path) -> PredictionSet:
    """An OpenPCDet ``det_annos`` list -> `PredictionSet` (kind ``pcdet_pkl``); `DataError` naming the first bad
    frame/key."""
    tokens, names, scores, boxes, order = [], [], [], [], []
    for i, rec in enumerate(records):
        where = f"predictions file {path}: frame {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: must be a dict (OpenPCDet result.pkl), got {type(rec).__name__}")
        key = frame_key(rec)
        if key is None:
            raise DataError(f"{where}: missing key 'frame_id'")
        where = f"predictions file {path}: frame {i} ({key})"
        box_key = next((k for k in PCDET_BOX_KEYS if k in rec), "boxes_lidar")
        b = _array(rec, box_key, where, numeric=True)
        s = _array(rec, "score", where, numeric=True).reshape(-1)
        nm = _array(rec, "name", where, numeric=False).reshape(-1)
        n = s.shape[0]
        if b.size == 0 and n == 0:
            b = np.zeros((0, 7))
        if b.ndim != 2 or b.shape[1] not in (7, 9) or b.shape[0] != n or nm.shape[0] != n:
            raise DataError(f"{where}: '{box_key}' has shape {b.shape}, 'score' {s.shape[0]} and 'name' "
                            f"{nm.shape[0]} entries; expected [n, 7] or [n, 9] boxes and n scores and names")
        bad_name = [j for j, c in enumerate(nm.tolist()) if not isinstance(c, str) or not c]
        if bad_name:
            raise DataError(f"{where}: 'name' entry {bad_name[0]} must be a class name, got {nm[bad_name[0]]!r}")
        bad_score = np.flatnonzero(~np.isfinite(s.astype(np.float64)))
        if bad_score.size:
            raise DataError(f"{where}: 'score' entry {int(bad_score[0])} is not finite")
        full = np.full((n, BOX_DIM), np.nan)
        full[:, : b.shape[1]] = pcdet_to_canonical(b.astype(np.float64))
        full[:, 6] = wrap_yaw(full[:, 6])
        check_boxes(full, where)
        tokens.append(np.full(n, key, dtype=object))
        names.append(np.asarray(nm, dtype=object))
        scores.append(s.astype(np.float64))
        boxes.append(full)
        order.append(key)
    cat = (lambda parts, empty: np.concatenate(parts) if parts else empty)
    return PredictionSet(kind="pcdet_pkl", path=str(path), sha256=file_sha256(path),
                         sample_token=cat(tokens, np.empty(0, object)), detection_class=cat(names, np.empty(0, object)),
                         score=cat(scores, np.empty(0)), boxes_lidar=cat(boxes, np.empty((0, BOX_DIM))),
                         sample_order=tuple(dict.fromkeys(order)))
