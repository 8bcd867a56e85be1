"""From a GT source and a prediction file to `EvalData`: split selection, frame conversion, nuScenes eval filters.

* Predictions of samples outside the split are left out (counted); sample tokens unknown to the dataset are an
  error. Samples of the split without predictions simply have none.
* JSON predictions (global frame) go to their sample's LiDAR frame with ``conventions.nuscenes_global_to_canonical``
  and the inverse of the frame's ``global_SE3_lidar``; Parquet predictions (LiDAR frame) go to the global frame with
  ``canonical_to_nuscenes_global`` when the source has poses.
* Eval frame (matching, residuals, AOE): with a nuScenes source, the global frame with the *original* numbers, i.e.
  the annotation records' translation/rotation and the submission's, exactly what ``DetectionEval`` compares (a
  round trip through the LiDAR frame would move yaw by ~1e-4 rad on tilted poses and break the 1e-6 AOE parity).
* ``--nusc-filters`` = ``DetectionEval``'s ``filter_eval_boxes`` (nuscenes/eval/common/loaders.py) on both GT and
  predictions: BEV distance to the LIDAR_TOP ego pose ``<`` the class range of ``detection_cvpr_2019`` (the devkit's
  ``config_factory``), GT with ``num_lidar_pts + num_radar_pts == 0`` dropped (predictions have -1 and stay),
  bicycles and motorcycles whose centre is inside a ``static_object.bicycle_rack`` box dropped (the devkit's own
  ``points_in_box``), and at most 500 boxes per sample.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from assignaudit.conventions import (
    canonical_to_nuscenes_global, nuscenes_global_to_canonical, quaternion_to_matrix,
)
from assignaudit.errors import ConfigError, DataError
from assignaudit.sources.base import Frame
from assignaudit.yaw.analysis import EvalData, EvalGT, EvalPreds
from assignaudit.yaw.predictions import MAX_BOXES_PER_SAMPLE, PredictionSet

BIKE_RACK = "static_object.bicycle_rack"
BIKE_CLASSES = ("bicycle", "motorcycle")


def nuscenes_classes() -> tuple[str, ...]:
    """The 10 detection classes in the order of ``detection_cvpr_2019``'s ``class_range``."""
    return tuple(_cvpr_2019().class_range.keys())


def _cvpr_2019():
    from nuscenes.eval.common.config import config_factory

    return config_factory("detection_cvpr_2019")


def quaternion_yaw(rotation_wxyz: np.ndarray) -> np.ndarray:
    """Vectorised devkit ``quaternion_yaw``: heading of the rotated x axis in the xy plane, ``[N]`` radians."""
    m = quaternion_to_matrix(np.asarray(rotation_wxyz, dtype=np.float64).reshape(-1, 4))
    return np.arctan2(m[:, 1, 0], m[:, 0, 0])


def _record_label(preds: PredictionSet, row: int) -> str:
    """How the user finds record ``row`` in their file."""
    tok = preds.sample_token[row]
    if preds.kind == "nuscenes_json":
        first = int(np.flatnonzero(preds.sample_token == tok)[0])
        return f"sample {tok} box {row - first}"
    return f"row {row} (frame {tok})"


def build_eval_data(frames: Sequence[Frame], preds: PredictionSet, *, nusc=None, nusc_filters: bool = False,
                    dataset_tokens: set[str] | None = None) -> EvalData:
    """Assemble `EvalData` from the split's frames and the loaded predictions.

    ``nusc``: the devkit ``NuScenes`` object of a nuScenes source (None for box tables); ``dataset_tokens``: every
    sample token of the dataset (default: the split's), used to tell "outside the split" from "unknown".
    """
    frames = list(frames)
    tokens = tuple(f.sample_token for f in frames)
    tok2idx = {t: i for i, t in enumerate(tokens)}
    has_poses = bool(frames) and all(f.global_SE3_lidar is not None for f in frames)
    if nusc_filters and nusc is None:
        raise ConfigError("--nusc-filters needs a nuScenes source (--dataroot/--version/--split), not a box table")
    if preds.kind == "nuscenes_json" and frames and not has_poses:
        raise DataError(f"predictions file {preds.path} is a nuScenes submission (global frame) but the GT source has "
                        "no poses; give predictions as a Parquet table of LiDAR-frame boxes")

    # ---- which predictions are evaluated -------------------------------------------------------------------------
    known = set(tokens) if dataset_tokens is None else dataset_tokens | set(tokens)
    in_dataset = np.fromiter((t in known for t in preds.sample_token), dtype=bool, count=len(preds))
    if not in_dataset.all():
        row = int(np.argmin(in_dataset))
        raise DataError(f"predictions file {preds.path}: {_record_label(preds, row)}: key 'sample_token' "
                        f"{preds.sample_token[row]!r} is not a sample of the dataset")
    if nusc_filters:
        counts = Counter(preds.sample_token.tolist())
        over = [t for t in preds.sample_order if counts.get(t, 0) > MAX_BOXES_PER_SAMPLE]
        if over:
            raise DataError(f"predictions file {preds.path}: sample {over[0]} box {MAX_BOXES_PER_SAMPLE}: more than "
                            f"{MAX_BOXES_PER_SAMPLE} boxes per sample ({counts[over[0]]}), the nuScenes limit "
                            "(--nusc-filters)")
    p_sample = np.fromiter((tok2idx.get(t, -1) for t in preds.sample_token), dtype=np.int64, count=len(preds))
    keep = p_sample >= 0
    dropped: Counter = Counter()
    dropped["pred_outside_split"] = int((~keep).sum())

    # ---- classes --------------------------------------------------------------------------------------------------
    gt_cls_all = np.concatenate([f.detection_class for f in frames]) if frames else np.empty(0, object)
    if nusc is not None or preds.kind == "nuscenes_json":
        classes = nuscenes_classes()
    else:
        names = {c for c in gt_cls_all.tolist() if c is not None} | set(preds.detection_class.tolist())
        classes = tuple(sorted(names))
    cls2id = {c: i for i, c in enumerate(classes)}

    # ---- predictions: LiDAR boxes and eval-frame xy/yaw -----------------------------------------------------------
    rows = np.flatnonzero(keep)
    n = rows.size
    boxes_lidar = np.empty((n, 9))
    xy_eval = np.empty((n, 2))
    yaw_eval = np.empty(n)
    # Global centres: needed whole only by the devkit filters; otherwise their x, y go straight to ``xy_eval``.
    translation_global = np.full((n, 3), np.nan) if nusc_filters else None
    sub_sample = p_sample[rows]
    by_sample = np.argsort(sub_sample, kind="stable")
    cuts = np.flatnonzero(np.diff(sub_sample[by_sample])) + 1
    for grp in np.split(by_sample, cuts) if n else []:
        f = frames[sub_sample[grp[0]]]
        r = rows[grp]
        if preds.kind == "nuscenes_json":
            boxes_lidar[grp] = nuscenes_global_to_canonical(
                preds.translation_global[r], preds.size_wlh[r], preds.rotation_wxyz[r], preds.velocity_global[r],
                _invert_se3(f.global_SE3_lidar))
            if nusc_filters:
                translation_global[grp] = preds.translation_global[r]
            else:
                xy_eval[grp] = preds.translation_global[r, :2]
            yaw_eval[grp] = quaternion_yaw(preds.rotation_wxyz[r])
        else:
            boxes_lidar[grp] = preds.boxes_lidar[r]
            if has_poses:
                glob = canonical_to_nuscenes_global(preds.boxes_lidar[r], f.global_SE3_lidar)
                if nusc_filters:
                    translation_global[grp] = glob["translation"]
                else:
                    xy_eval[grp] = glob["translation"][:, :2]
                yaw_eval[grp] = quaternion_yaw(glob["rotation_wxyz"])
            else:
                yaw_eval[grp] = preds.boxes_lidar[r, 6]
    if not has_poses:
        xy_eval[:] = boxes_lidar[:, :2]
    elif nusc_filters:
        xy_eval[:] = translation_global[:, :2]
    p_cls = np.fromiter((cls2id.get(c, -1) for c in preds.detection_class[rows]), dtype=np.int64, count=n)
    if (p_cls < 0).any():  # a table prediction of a class the nuScenes GT cannot have
        bad = rows[int(np.argmin(p_cls >= 0))]
        raise DataError(f"predictions file {preds.path}: {_record_label(preds, bad)}: key 'class' "
                        f"{preds.detection_class[bad]!r} is not one of {', '.join(classes)}")

    # ---- GT -------------------------------------------------------------------------------------------------------
    g_parts = []
    for i, f in enumerate(frames):
        sel = np.array([c in cls2id for c in f.detection_class], dtype=bool)
        g_parts.append((i, f, np.flatnonzero(sel)))
    g_sample = np.concatenate([np.full(s.size, i, np.int64) for i, _, s in g_parts]) if frames else np.empty(0, np.int64)
    g_boxes = np.concatenate([f.boxes_lidar[s] for _, f, s in g_parts]) if frames else np.empty((0, 9))
    g_cls = np.concatenate([np.array([cls2id[c] for c in f.detection_class[s]], dtype=np.int64)
                            for _, f, s in g_parts]) if frames else np.empty(0, np.int64)
    g_ann = np.concatenate([f.ann_token[s] for _, f, s in g_parts]) if frames else np.empty(0, object)
    g_pts = np.concatenate([f.num_lidar_pts[s] + f.num_radar_pts[s] for _, f, s in g_parts]) \
        if frames else np.empty(0, np.int64)
    if nusc is not None:
        recs = [nusc.get("sample_annotation", t) for t in g_ann]
        g_trans = np.array([r["translation"] for r in recs], dtype=np.float64).reshape(-1, 3)
        g_yaw = quaternion_yaw(np.array([r["rotation"] for r in recs], dtype=np.float64).reshape(-1, 4))
        g_xy = g_trans[:, :2]
    elif has_poses:
        g_trans = np.concatenate([canonical_to_nuscenes_global(f.boxes_lidar[s], f.global_SE3_lidar)["translation"]
                                  for _, f, s in g_parts]) if frames else np.empty((0, 3))
        g_yaw = np.concatenate([quaternion_yaw(canonical_to_nuscenes_global(f.boxes_lidar[s], f.global_SE3_lidar)
                                               ["rotation_wxyz"]) for _, f, s in g_parts]) if frames else np.empty(0)
        g_xy = g_trans[:, :2]
    else:
        g_trans = np.full((len(g_sample), 3), np.nan)
        g_xy, g_yaw = g_boxes[:, :2], g_boxes[:, 6]

    g_keep = np.ones(len(g_sample), dtype=bool)
    p_keep = np.ones(n, dtype=bool)
    if nusc_filters:
        class_range = _cvpr_2019().class_range
        rng = np.array([class_range[c] for c in classes], dtype=np.float64)
        ego = np.array([f.ego_translation_global for f in frames], dtype=np.float64).reshape(-1, 3)
        g_in = _ego_dist(g_trans, ego[g_sample]) < rng[g_cls]
        p_in = _ego_dist(translation_global, ego[sub_sample]) < rng[p_cls]
        g_pts_ok = g_pts != 0
        bike_ids = [cls2id[c] for c in BIKE_CLASSES]
        g_rack = _in_bike_rack(frames, nusc, g_sample, g_trans, np.isin(g_cls, bike_ids))
        p_rack = _in_bike_rack(frames, nusc, sub_sample, translation_global, np.isin(p_cls, bike_ids))
        dropped["gt_nusc_range"] = int((~g_in).sum())
        dropped["gt_nusc_no_points"] = int((g_in & ~g_pts_ok).sum())
        dropped["gt_nusc_bike_rack"] = int((g_in & g_pts_ok & g_rack).sum())
        dropped["pred_nusc_range"] = int((~p_in).sum())
        dropped["pred_nusc_bike_rack"] = int((p_in & p_rack).sum())
        g_keep = g_in & g_pts_ok & ~g_rack
        p_keep = p_in & ~p_rack

    gt = EvalGT(sample=g_sample[g_keep], class_id=g_cls[g_keep], boxes_lidar=g_boxes[g_keep],
                xy_eval=np.ascontiguousarray(g_xy[g_keep]), yaw_eval=g_yaw[g_keep], ann_token=g_ann[g_keep])
    # Without filters every prediction is kept: hand the arrays over instead of copying them (val scale: ~0.3 GB).
    pk = (lambda a: a) if bool(np.all(p_keep)) else (lambda a: a[p_keep])
    pr = EvalPreds(sample=pk(sub_sample), class_id=pk(p_cls), score=pk(preds.score[rows]),
                   index=pk(rows).astype(np.int64), boxes_lidar=pk(boxes_lidar),
                   xy_eval=np.ascontiguousarray(pk(xy_eval)), yaw_eval=pk(yaw_eval))
    return EvalData(sample_tokens=tokens, classes=classes, gt=gt, preds=pr,
                    eval_frame="global" if has_poses else "lidar", dropped=dict(dropped))


def _ego_dist(translation: np.ndarray, ego: np.ndarray) -> np.ndarray:
    """The devkit's ``ego_dist``: BEV norm of ``box.translation - ego_pose.translation`` (same arithmetic)."""
    d = translation[:, :2] - ego[:, :2]
    return np.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2)


def _in_bike_rack(frames, nusc, sample: np.ndarray, translation: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """bool: centre inside a bike-rack annotation of its sample (devkit ``points_in_box`` on the global box)."""
    from nuscenes.utils.data_classes import Box
    from nuscenes.utils.geometry_utils import points_in_box
    from pyquaternion import Quaternion

    out = np.zeros(len(sample), dtype=bool)
    for s in np.unique(sample[candidate]):
        racks = [nusc.get("sample_annotation", t) for t, c in zip(frames[s].ann_token, frames[s].category)
                 if c == BIKE_RACK]
        if not racks:
            continue
        rows = np.flatnonzero(candidate & (sample == s))
        pts = translation[rows].T  # [3, K]
        inside = np.zeros(rows.size, dtype=bool)
        for r in racks:
            inside |= points_in_box(Box(r["translation"], r["size"], Quaternion(r["rotation"])), pts)
        out[rows] = inside
    return out


def _invert_se3(m: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = m[:3, :3].T
    out[:3, 3] = -m[:3, :3].T @ m[:3, 3]
    return out
