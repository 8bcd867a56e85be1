"""mmdetection3d (>= 1.0) KITTI results pickle: what ``KittiMetric`` dumps with ``pklfile_prefix``.

mmdetection3d 1.x's ``tools/test.py`` has no ``--out``; result files come from the evaluator. For KITTI-format
datasets ``KittiMetric.format_results`` -> ``bbox2result_kitti`` (mmdet3d/evaluation/metrics/kitti_metric.py)
``mmengine.dump``s ``det_annos`` to ``<pklfile_prefix>/pred_instances_3d.pkl``: one dict per frame with

* ``name`` ``[n]``, ``score`` ``[n]``, ``truncated``, ``occluded``, ``alpha``, ``bbox`` (the image box);
* ``location`` ``[n, 3]`` (bottom centre), ``dimensions`` ``[n, 3]`` (l, h, w) and ``rotation_y`` ``[n]`` in the
  rectified camera frame (``box_preds.convert_to(Box3DMode.CAM, lidar2cam)`` of the LiDAR boxes, after
  ``limit_yaw`` and the image / point-cloud-range validity filter of ``convert_valid_bboxes``);
* ``sample_idx`` ``[n]`` int64, the frame's index repeated (empty for a frame without boxes).

There are no LiDAR boxes in the file, so they are brought back through each frame's KITTI calibration exactly like
KITTI-format txt predictions (`assignaudit.yaw.predictions_kitti.CameraFramePredictions`). The frame key is
``sample_idx`` written as KITTI writes its file names, ``f"{sample_idx:06d}"`` (as ``bbox2result_kitti`` names the
submission txt files).

nuScenes results are a submission JSON (``NuScenesMetric(jsonfile_prefix=...)``), already read by
`assignaudit.yaw.predictions`. The raw model outputs (``DumpResults`` / the pre-1.0 ``--out``) hold
``LiDARInstance3DBoxes`` and torch tensors, which the safe unpickler refuses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assignaudit.errors import DataError
from assignaudit.yaw.predictions_kitti import CameraFramePredictions, camera_predictions

MMDET3D_KITTI_KEYS = ("name", "score", "location", "dimensions", "rotation_y", "sample_idx")


def is_mmdet3d_kitti_results(records: list) -> bool:
    """Whether a results list looks like ``KittiMetric``'s (``location`` and ``sample_idx`` keys)."""
    return any(isinstance(r, dict) and "location" in r and "sample_idx" in r for r in records)


def from_records(records: list, path: Path) -> CameraFramePredictions:
    """``det_annos`` of ``bbox2result_kitti`` -> `CameraFramePredictions` (kind ``mmdet3d_kitti_pkl``)."""
    tokens, names, scores, loc, dims, rot, where, order = [], [], [], [], [], [], [], []
    for i, rec in enumerate(records):
        label = f"predictions file {path}: frame {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{label}: must be a dict (mmdetection3d KITTI results), got {type(rec).__name__}")
        missing = [k for k in MMDET3D_KITTI_KEYS if k not in rec]
        if missing:
            raise DataError(f"{label}: missing key '{missing[0]}' (mmdetection3d KittiMetric results hold "
                            f"{', '.join(MMDET3D_KITTI_KEYS)})")
        arrays = {k: np.asarray(rec[k]) for k in MMDET3D_KITTI_KEYS}
        for k in ("score", "location", "dimensions", "rotation_y", "sample_idx"):
            if arrays[k].size and arrays[k].dtype.kind not in "fiu":
                raise DataError(f"{label}: '{k}' must be numeric, got values of type {arrays[k].dtype}")
        n = arrays["score"].size
        shapes_ok = (arrays["name"].size == n and arrays["location"].size == 3 * n
                     and arrays["dimensions"].size == 3 * n and arrays["rotation_y"].size == n
                     and arrays["sample_idx"].size == n)
        if not shapes_ok:
            raise DataError(f"{label}: 'name', 'score', 'location' [n, 3], 'dimensions' [n, 3], 'rotation_y' and "
                            f"'sample_idx' must describe the same n boxes (score has {n})")
        if n == 0:
            continue
        idx = arrays["sample_idx"].reshape(-1)
        if idx.dtype.kind == "f" and not np.all(idx == np.round(idx)):
            raise DataError(f"{label}: 'sample_idx' must be integers")
        idx = idx.astype(np.int64)
        if not np.all(idx == idx[0]):
            raise DataError(f"{label}: 'sample_idx' must repeat one frame index, got {sorted(set(idx.tolist()))[:3]}")
        if idx[0] < 0:
            raise DataError(f"{label}: 'sample_idx' {int(idx[0])} is negative")
        key = f"{int(idx[0]):06d}"
        bad_name = [j for j, c in enumerate(arrays["name"].reshape(-1).tolist()) if not isinstance(c, str) or not c]
        if bad_name:
            raise DataError(f"{label} ({key}): 'name' entry {bad_name[0]} must be a class name")
        tokens.append(np.full(n, key, dtype=object))
        names.append(arrays["name"].reshape(-1).astype(object))
        scores.append(arrays["score"].reshape(-1).astype(np.float64))
        loc.append(arrays["location"].reshape(n, 3).astype(np.float64))
        dims.append(arrays["dimensions"].reshape(n, 3).astype(np.float64))
        rot.append(arrays["rotation_y"].reshape(n).astype(np.float64))
        where.append(np.array([f"frame {i} ({key}) box {j}" for j in range(n)], dtype=object))
        order.append(key)
    cat = (lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape))
    return camera_predictions("mmdet3d_kitti_pkl", Path(path), cat(tokens, 0).astype(object),
                              cat(names, 0).astype(object), cat(scores, 0), cat(loc, (0, 3)), cat(dims, (0, 3)),
                              cat(rot, 0), list(dict.fromkeys(order)), cat(where, 0).astype(object))
