"""mmdetection3d 1.4 ``projects/`` center heads whose heatmap targets are CenterHead's: DSVT and CenterFormer.

Both draw exactly ``CenterHead.get_targets_single``'s class heatmaps (mmdet3d ``centerpoint_head.py``; spec §7):
gravity-centre boxes, ``radius = max(min_radius, int(gaussian_radius((w, l) / voxel / out_size_factor,
gaussian_overlap)))``, the centre cell ``int(coor)`` dropped when outside ``grid_size[:2] // out_size_factor``,
``max_objs * dense_reg`` boxes per task, labels split into tasks by position. So they are read into the same
`HeatmapParams` (variant ``mmdet3d``) and counted by the CenterHead heatmap assigner.

* ``DSVTCenterHead`` (projects/DSVT/dsvt/dsvt_head.py) subclasses CenterHead and keeps its ``get_targets_single``
  (only the regression row differs: ``cos, sin`` and no velocity, which no count reads). Its post-processing
  (``get_task_detections``) runs ``nms_bev`` per class on boxes whose angle is rewritten to ``pi/2 - yaw`` and
  rescales scores with the predicted IoU (``iou_rectifier``): `yaw` does not reproduce it, so
  ``PostProcessing.nms_not_reproduced`` says so and `yaw` asks for the NMS settings on the command line.
* CenterFormer (projects/CenterFormer): the targets are drawn by the *backbone* ``DeformableDecoderRPN.
  get_targets_single`` (centerformer_backbone.py) from ``model.backbone.tasks`` and ``model.train_cfg`` (the detector
  passes its train_cfg to the backbone). The class heatmaps are CenterHead's. With ``corner=True`` it also draws an
  auxiliary one-channel *corner* heatmap (centre and the four edge midpoints, radius ``radius // 2``) for an MSE
  loss; that is not a positive/negative assignment and is not counted (logged). The task class names are not
  compared with the dataset's (the shipped config writes ``'car'`` for ``'Car'``): upstream selects each task's
  labels by position (``class_name.index(i) + flag``), so the dataset classes are taken in order, and the lists
  must have the same length. Post-processing: per-class 3D-IoU NMS (``nms_iou3d``) with per-class sizes and an
  IoU-rescaled score, not reproduced by `yaw` either.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from assignaudit.assign.params import HeatmapParams
from assignaudit.config._check import Checker, join
from assignaudit.config.model import PostProcessing

log = logging.getLogger(__name__)

DSVT_HEAD = "DSVTCenterHead"
CENTERFORMER_HEAD = "CenterFormerBboxHead"
PROJECT_CENTER_HEADS = (DSVT_HEAD, CENTERFORMER_HEAD)
_CENTERFORMER_BACKBONES = ("DeformableDecoderRPN",)

_DSVT_NMS = ("DSVTCenterHead NMS is not reproduced: nms_bev per class on boxes turned to pi/2 - yaw, scores "
             "rescaled by the predicted IoU (iou_rectifier)")
_CENTERFORMER_NMS = ("CenterFormer NMS is not reproduced: per-class 3D-IoU NMS (nms_iou3d) with per-class sizes, "
                     "scores rescaled by the predicted IoU")


def _per_class(chk: Checker, value: Any, path: str, n: int) -> tuple[Any, ...]:
    """DSVT's ``[[v_class0, v_class1, ...]]`` (one list per task) -> the flat per-label tuple."""
    out: list[Any] = []
    for i, task in enumerate(chk.sequence(value, path, min_length=1)):
        out.extend(chk.sequence(task, join(path, i), min_length=1))
    if len(out) != n:
        raise chk.error(path, f"{len(out)} values for {n} classes")
    return tuple(out)


def _dsvt_post(chk: Checker, model: Mapping, head: Mapping, head_path: str, test_cfg: Mapping, path: str,
               n_classes: int) -> PostProcessing:
    coder = chk.mapping(head.get("bbox_coder", {}), join(head_path, "bbox_coder"))
    score = chk.fraction(coder.get("score_threshold", 0.1), join(join(head_path, "bbox_coder"), "score_threshold"))
    nms = chk.choice(test_cfg.get("nms_type", "rotate"), join(path, "nms_type"), ("rotate", "circle"))
    thresh = tuple(chk.fraction(v, join(path, "nms_thr")) for v in
                   _per_class(chk, chk.required(test_cfg, "nms_thr", path), join(path, "nms_thr"), n_classes))
    sizes = {}
    for key in ("pre_max_size", "post_max_size"):
        vals = {chk.integer(v, join(path, key), minimum=1)
                for v in _per_class(chk, chk.required(test_cfg, key, path), join(path, key), n_classes)}
        sizes[key] = vals.pop() if len(vals) == 1 else None
    return PostProcessing(score_thresh=score, multi_classes_nms=True, nms_type="nms_gpu" if nms == "rotate" else
                          "circle", nms_thresh=thresh[0], nms_pre_maxsize=sizes["pre_max_size"],
                          nms_post_maxsize=sizes["post_max_size"], nms_thresh_per_class=thresh,
                          nms_not_reproduced=_DSVT_NMS)


def _centerformer_post(chk: Checker, test_cfg: Mapping, path: str, n_classes: int) -> PostProcessing:
    nms_path = join(path, "nms")
    nms = chk.mapping(chk.required(test_cfg, "nms", path), nms_path)
    thresh = tuple(chk.fraction(v, join(join(nms_path, "nms_iou_threshold"), i)) for i, v in enumerate(
        chk.sequence(chk.required(nms, "nms_iou_threshold", nms_path), join(nms_path, "nms_iou_threshold"),
                     length=n_classes)))
    return PostProcessing(score_thresh=chk.fraction(test_cfg.get("score_threshold", 0.1),
                                                    join(path, "score_threshold")),
                          multi_classes_nms=True, nms_type="nms_gpu", nms_thresh=thresh[0], nms_pre_maxsize=None,
                          nms_post_maxsize=None, nms_thresh_per_class=thresh, nms_not_reproduced=_CENTERFORMER_NMS)


def project_center_head(chk: Checker, model: Mapping, head: Mapping, head_path: str, head_type: str,
                        train_cfg: Mapping, train_path: str, test_cfg: Mapping, test_path: str,
                        class_names: tuple[str, ...], pcr: tuple[float, ...], pcr_path: str,
                        voxel: tuple[float, ...]) -> tuple[HeatmapParams, PostProcessing]:
    """`HeatmapParams` and `PostProcessing` of a DSVT / CenterFormer config (see the module docstring)."""
    from assignaudit.config.mmdet3d import _center_head  # the CenterHead reader; imported late (no cycle)

    if head_type == DSVT_HEAD:
        params = _center_head(chk, head, head_path, train_cfg, train_path, class_names, pcr, pcr_path, voxel)
        return params, _dsvt_post(chk, model, head, head_path, test_cfg, test_path, len(class_names))

    bb_path = "model.backbone"
    backbone = chk.mapping(chk.required(model, "backbone", "model"), bb_path)
    bb_type = str(chk.required(backbone, "type", bb_path)).rsplit(".", 1)[-1]
    if bb_type not in _CENTERFORMER_BACKBONES:
        raise chk.error(join(bb_path, "type"), f"{bb_type!r}: CenterFormer's targets are read from the backbone "
                                               f"that draws them (supported: {', '.join(_CENTERFORMER_BACKBONES)})")
    tasks_path = join(bb_path, "tasks")
    tasks = chk.sequence(chk.required(backbone, "tasks", bb_path), tasks_path, min_length=1)
    positional, start = [], 0
    for i, task in enumerate(tasks):
        t_path = join(tasks_path, i)
        names = chk.sequence(chk.required(chk.mapping(task, t_path), "class_names", t_path),
                             join(t_path, "class_names"), min_length=1)
        positional.append({"num_class": task.get("num_class", len(names)), "class_names": list(
            class_names[start:start + len(names)])})
        start += len(names)
    if start != len(class_names):
        raise chk.error(tasks_path, f"the tasks list {start} classes but the dataset has {len(class_names)} "
                                    f"({', '.join(class_names)}); upstream picks each task's labels by position")
    head_tasks = head.get("tasks")
    if head_tasks is not None and [len(t.get("class_names", ())) for t in head_tasks] != \
            [len(t["class_names"]) for t in positional]:
        raise chk.error(join(head_path, "tasks"), "differs from model.backbone.tasks (the heatmap targets are the "
                                                  "backbone's)")
    if chk.boolean(backbone.get("corner", False), join(bb_path, "corner")):
        log.info("%s: CenterFormer's auxiliary corner heatmap (MSE loss) is not counted", chk.origin)
    params = _center_head(chk, {"type": head_type, "tasks": positional}, bb_path, train_cfg, train_path,
                          class_names, pcr, pcr_path, voxel)
    return params, _centerformer_post(chk, test_cfg, test_path, len(class_names))


__all__ = ["CENTERFORMER_HEAD", "DSVT_HEAD", "PROJECT_CENTER_HEADS", "project_center_head"]
