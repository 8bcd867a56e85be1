"""mmdetection3d 1.x Python config (``configs/<model>/*.py``) -> `DetectorConfig`.

Reading: mmengine's ``Config.fromfile`` (the optional extra ``pip install 'assignaudit[mmdet3d]'``) resolves
``_base_`` inheritance, ``_delete_`` and ``{{_base_.x}}`` references exactly as training does; ``custom_imports`` are
**not** imported (``import_custom_modules=False``) and mmdet3d itself is never imported or needed. ``--cfg-options
key=value`` strings are parsed with mmengine ``DictAction`` semantics (`parse_cfg_options`) and merged with
``Config.merge_from_dict`` before anything is read, as mmdet3d's ``tools/train.py`` does.

Then only the keys that change target assignment are read (docs/config.md, "mmdetection3d configs"): the head
(``model.pts_bbox_head`` or ``model.bbox_head``: ``Anchor3DHead``, ``CenterHead``, ``DETR3DHead``, ``PETRHead``),
``model.train_cfg(.pts)`` / ``test_cfg(.pts)``, the voxel layer, the FPN strides, and the train dataset's classes,
``use_valid_flag`` and pipeline. A key or transform that would change the targets in a way assignaudit does not
reproduce is a `ConfigError` naming it, never silently dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from assignaudit.assign.params import HeatmapParams
from assignaudit.assign.params import (
    AnchorLayout, AnchorLevel, AnchorSet, AssignerParams, Framework, IouKind, QueryParams,
)
from assignaudit.augment.params import (
    AugOp, BEVFusionGlobalRotScaleTrans, GlobalRotScaleTrans, GlobalRotScaleTransImage, ObjectNoise,
    ObjectRangeFilter, ObjectSample, RandomFlip3D,
)
from assignaudit.config._check import Checker, join, show
from assignaudit.config.mmdet3d_center_projects import PROJECT_CENTER_HEADS, project_center_head
from assignaudit.config.model import DatasetSpec, DetectorConfig, GTFilters, PostProcessing
from assignaudit.config.schema import ConfigPaths, build_heatmap_params, check_consistency, log_heatmap_warnings
from assignaudit.errors import ConfigError


log = logging.getLogger(__name__)

MMENGINE_MISSING = "reading mmdetection3d .py configs needs mmengine: pip install 'assignaudit[mmdet3d]'"

ANCHOR_HEAD = "Anchor3DHead"
# Anchor3DHead subclasses whose targets are Anchor3DHead's (train_mixins.anchor_target_3d): PartA2 / PV-RCNN's RPN
# (``model.rpn_head``, train_cfg.rpn) and SSN's ShapeAwareHead (one anchor set per class, each on its task's map).
PARTA2_RPN_HEAD = "PartA2RPNHead"
SHAPE_AWARE_HEAD = "ShapeAwareHead"
ANCHOR_HEADS = (ANCHOR_HEAD, PARTA2_RPN_HEAD, SHAPE_AWARE_HEAD)
CENTER_HEAD = "CenterHead"
TRANSFUSION_HEAD = "TransFusionHead"  # projects/BEVFusion (LiDAR-only and LiDAR-camera)
QUERY_HEADS = ("DETR3DHead", "PETRHead", TRANSFUSION_HEAD)
# projects/DSVT, projects/CenterFormer: CenterHead's heatmap targets (config/mmdet3d_center_projects.py)
CENTER_HEADS = (CENTER_HEAD,) + PROJECT_CENTER_HEADS
SUPPORTED_HEADS = ANCHOR_HEADS + CENTER_HEADS + QUERY_HEADS
_GENERATORS = {"Anchor3DRangeGenerator": "mmdet3d", "AlignedAnchor3DRangeGenerator": "mmdet3d_aligned",
               "AlignedAnchor3DRangeGeneratorPerCls": "mmdet3d_aligned_per_class"}
# Heads of shipped mmdetection3d 1.4 configs whose targets are not a function of the GT boxes alone (docs/config.md,
# "What is refused"): the reason goes into the one-line error.
_POINT_BASED = "point-based head: its targets are per point (points inside or near each GT box), not replayed"
_MONO = "monocular camera head: its targets live on the image plane (2D centres, depths), not in the BEV"
_REFUSED_HEADS = {
    "FreeAnchor3DHead": "learned assignment: FreeAnchor picks each GT's positives from the network's predictions "
                        "inside the loss, so they cannot be counted from the GT",
    "SSD3DHead": _POINT_BASED + " (3DSSD)", "PointRPNHead": _POINT_BASED + " (PointRCNN)",
    "VoteHead": _POINT_BASED + " (VoteNet-style votes, indoor)", "GroupFree3DHead": _POINT_BASED + " (indoor)",
    "FCAF3DHead": "sparse-voxel head whose positives come from the network's multi-level outputs (indoor)",
    "TR3DHead": "sparse-voxel head whose positives come from the network's multi-level outputs (indoor)",
    "ImVoxelHead": "indoor camera voxel head (ImVoxelNet), not replayed",
    "NerfDetHead": "indoor camera head (NeRF-Det), not replayed",
    "PGDHead": _MONO, "FCOSMono3DHead": _MONO, "SMOKEMono3DHead": _MONO,
    "RPNHead": "a 2D image region-proposal head (nuImages / ImVoteNet image branch), not a 3D head",
}
# model.<head key> -> (train_cfg part, test_cfg part) it reads; None: the stage cfg itself.
_HEAD_KEYS = (("pts_bbox_head", "pts", "pts"), ("bbox_head", None, None), ("rpn_head", "rpn", "rcnn"))
_GENERATOR_KEYS = ("type", "ranges", "sizes", "scales", "rotations", "custom_values", "reshape_out",
                   "size_per_range", "align_corner")
_MAX_IOU_ASSIGNERS = ("Max3DIoUAssigner", "MaxIoUAssigner")
_ASSIGNER_KEYS = ("type", "iou_calculator", "pos_iou_thr", "neg_iou_thr", "min_pos_iou", "ignore_iof_thr",
                  "ignore_wrt_candidates", "gt_max_assign_all", "match_low_quality", "gpu_assign_thr")
_CENTER_TRAIN_KEYS = ("grid_size", "voxel_size", "out_size_factor", "dense_reg", "gaussian_overlap", "max_objs",
                      "min_radius", "point_cloud_range", "code_weights")
_DATASET_WRAPPERS = ("CBGSDataset", "RepeatDataset", "ClassBalancedDataset")
# Train-pipeline transforms that never change the 3D GT boxes or labels (points, images, packing), skipped.
_GT_NEUTRAL = (
    "LoadPointsFromFile", "LoadPointsFromMultiSweeps", "LoadPointsFromDict", "LoadAnnotations3D",
    "LoadMultiViewImageFromFiles", "LoadImageFromFile", "LoadImageFromFileMono3D", "PointsRangeFilter",
    "PointsRangeFilter3D",  # projects/DSVT transforms_3d.py: points only
    "PointShuffle", "PointSample", "RandomJitterPoints", "BackgroundPointsFilter", "NormalizePointsColor",
    "PhotoMetricDistortion3D", "PhotoMetricDistortionMultiViewImage", "NormalizeMultiviewImage",
    "PadMultiViewImage", "Pack3DDetInputs", "DefaultFormatBundle3D", "Collect3D",
)
# Camera-only transforms: they change images, camera matrices and 2D labels, never the 3D GT boxes or their labels
# (mmdet3d transforms_3d.py / formating, projects/DETR3D, PETR, BEVFusion). Accepted and recorded in
# DatasetSpec.skipped_transforms. MultiViewWrapper is accepted when every transform it wraps is one of these.
_IMAGE_ONLY = (
    "PhotoMetricDistortion3D", "PhotoMetricDistortionMultiViewImage", "NormalizeMultiviewImage",
    "PadMultiViewImage", "RandomResize3D", "Resize3D", "ResizeCropFlipImage", "ResizeCropFlipRotImage",
    "ImageAug3D", "GridMask", "LoadMultiViewImageFromMultiSweeps", "BEVLoadMultiViewImageFromFiles",
    "MultiViewWrapper", "RandomResize", "Resize",
)
# Transforms that put an image into the sample: afterwards RandomFlip3D (sync_2d, the default) follows the image flip.
_IMAGE_LOADERS = ("LoadImageFromFile", "LoadImageFromFileMono3D", "LoadMultiViewImageFromFiles",
                  "BEVLoadMultiViewImageFromFiles")
_OBJECT_SAMPLE_KEYS = ("type", "db_sampler", "use_ground_plane", "sample_2d")
_DB_SAMPLER_KEYS = ("type", "data_root", "info_path", "rate", "prepare", "sample_groups", "classes",
                    "points_loader", "backend_args", "file_client_args", "dataset_root")
_PREPARE_KEYS = ("filter_by_difficulty", "filter_by_min_points")


# ----------------------------------------------------------------------------------------------------------------------
# --cfg-options (mmengine DictAction) and reading the .py file
# ----------------------------------------------------------------------------------------------------------------------


def _scalar(text: str) -> Any:
    """``DictAction._parse_int_float_bool``: int, then float, then true/false (any case), ``None``, else the text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return None if text == "None" else text


def _next_comma(text: str) -> int:
    """Index of the first comma outside brackets (``len(text)`` if none)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            return i
    return len(text)


def parse_cfg_value(text: str, key: str = "") -> Any:
    """One ``--cfg-options`` value with mmengine ``DictAction._parse_iterable`` semantics.

    Quotes around the whole value are stripped and all spaces removed; ``[a,b]`` and ``a,b`` are lists, ``(a,b)``
    a tuple, nested brackets nest; every item is int, float, bool (true/false in any case), ``None`` or a string.
    """
    if text.count("(") != text.count(")") or text.count("[") != text.count("]"):
        raise ConfigError(f"--cfg-options {key}: imbalanced brackets in {text!r}")
    val = text.strip("'\"").replace(" ", "")
    is_tuple = False
    if val.startswith("(") and val.endswith(")"):
        is_tuple, val = True, val[1:-1]
    elif val.startswith("[") and val.endswith("]"):
        val = val[1:-1]
    elif "," not in val:
        return _scalar(val)
    items = []
    while val:
        end = _next_comma(val)
        items.append(parse_cfg_value(val[:end], key))
        val = val[end + 1:]
    return tuple(items) if is_tuple else items


def parse_cfg_options(options: Sequence[str]) -> dict[str, Any]:
    """``["model.x=1", "a.b=[1,2]"]`` -> ``{"model.x": 1, "a.b": [1, 2]}`` (split on the first ``=``; later wins)."""
    out: dict[str, Any] = {}
    for opt in options:
        key, sep, value = str(opt).partition("=")
        if not sep or not key:
            raise ConfigError(f"--cfg-options: expected key=value, got {opt!r} "
                              "(e.g. --cfg-options model.pts_bbox_head.anchor_generator.rotations=[0])")
        out[key] = parse_cfg_value(value, key)
    return out


# Top-level variables assignaudit itself may read when the model does not carry them (docs/config.md).
_TOP_LEVEL_FALLBACKS = ("class_names", "point_cloud_range", "voxel_size")
# Leaf keys the importer reads somewhere, so that ``--cfg-options`` may add them where the file leaves them at their
# default (e.g. an assigner's ``min_pos_iou``). A new leaf that is none of these would change nothing here (and,
# misspelt, nothing upstream either): it is refused with the closest existing key.
_READ_LEAVES = frozenset(
    _GENERATOR_KEYS + _ASSIGNER_KEYS + _CENTER_TRAIN_KEYS + _OBJECT_SAMPLE_KEYS + _DB_SAMPLER_KEYS + _PREPARE_KEYS
    + ("assign_per_class", "num_query", "num_classes", "tasks", "num_class", "class_names", "transformer",
       "decoder", "num_layers", "coordinate", "rot_range", "scale_ratio_range", "translation_std", "shift_height",
       "flip_ratio_bev_horizontal", "flip_ratio_bev_vertical", "flip_box3d", "sync_2d", "global_rot_range",
       "num_try", "output_shape", "encoder_channels", "layer_strides", "upsample_strides", "start_level",
       "end_level", "num_outs", "use_valid_flag", "score_thr", "nms_thr", "use_rotate_nms", "nms_pre", "max_num",
       "score_threshold", "nms_type", "pre_max_size", "post_max_size", "min_radius", "point_cloud_range",
       "voxel_size", "classes", "cls_cost", "reg_cost", "weight", "strides", "stem_channels", "arch",
       "out_indices", "deploy", "num_proposals", "nms_kernel_size")
)
_STAGE_CFGS = ("train_cfg", "test_cfg")


def _close_match(seg: str, candidates: Sequence[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(seg, [str(c) for c in candidates], n=1, cutoff=0.75)
    return found[0] if found else None


def _pts_layout(segments: list[str], cfg: Mapping[str, Any]) -> list[str]:
    """``model.train_cfg.X`` <-> ``model.train_cfg.pts.X`` (and ``test_cfg``): the other config layout's spelling.

    MVX-style detectors (``pts_bbox_head``) keep their train / test settings under ``pts``, single-stage ones do not;
    a user (or the README) writing one layout for the other means the same key, so it is rewritten to the layout
    this config has. Anything else is returned unchanged.
    """
    if len(segments) < 3 or segments[0] != "model" or segments[1] not in _STAGE_CFGS:
        return segments
    model = cfg.get("model")
    stage = model.get(segments[1]) if isinstance(model, Mapping) else None
    if not isinstance(stage, Mapping):
        return segments
    has_pts = isinstance(stage.get("pts"), Mapping)
    if segments[2] == "pts" and not has_pts and "pts" not in stage:
        return segments[:2] + segments[3:]
    if segments[2] != "pts" and has_pts and segments[2] not in stage:
        return segments[:2] + ["pts"] + segments[2:]
    return segments


def _check_cfg_option_paths(path: Path, cfg: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse a ``--cfg-options`` key whose path leads nowhere (a typo such as ``model.pts_bbox_hed.x`` or
    ``model.bbox_head.assign_per_clas``); returns the options with ``train_cfg`` / ``test_cfg`` keys in this config's
    layout (`_pts_layout`).

    mmengine's ``merge_from_dict`` creates any missing mapping on the way, so upstream a misspelt key trains the
    unchanged config without a word; here it would silently give the unchanged counts, so every segment but the last
    must exist (list indices in range), and the last may only add a key to an existing mapping if it is one that
    assignaudit reads (`_READ_LEAVES`, e.g. an assigner's ``min_pos_iou`` left at its default). A new top-level key
    is refused too, except the variables read as fallbacks. Each error names the closest existing key.
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        segments = _pts_layout(str(key).split("."), cfg)
        node: Any = cfg
        for depth, seg in enumerate(segments):
            where = ".".join(segments[:depth]) or "the config's top level"
            problem = f"{path}: --cfg-options cannot be merged: {key}:"
            if isinstance(node, Mapping):
                if seg in node:
                    node = node[seg]
                    continue
                last = depth == len(segments) - 1
                if last and (seg in _TOP_LEVEL_FALLBACKS or (depth > 0 and seg in _READ_LEAVES)):
                    break  # a new leaf in an existing mapping
                near = _close_match(seg, list(node) + (sorted(_READ_LEAVES) if last and depth > 0 else []))
                if near is not None:
                    raise ConfigError(f"{problem} key {seg!r} not found under {where}; did you mean {near!r}?")
                avail = ", ".join(map(str, list(node)[:12])) + (", ..." if len(node) > 12 else "")
                why = " and assignaudit reads no such key, so it would change nothing" if last and depth > 0 else ""
                raise ConfigError(f"{problem} key {seg!r} not found under {where}{why} (available: "
                                  f"{avail or 'none'})")
            if isinstance(node, (list, tuple)):
                if not seg.isdigit():
                    raise ConfigError(f"{problem} {where} is a list; expected an index 0..{len(node) - 1}, "
                                      f"got {seg!r}")
                if int(seg) >= len(node):
                    raise ConfigError(f"{problem} index {seg} out of range for {where} (a list of {len(node)})")
                node = node[int(seg)]
                continue
            raise ConfigError(f"{problem} {where} is {type(node).__name__} {repr(node)[:60]}, not a mapping or "
                              f"list, so it has no key {seg!r}")
        out[".".join(segments)] = value
    return out


CONFIGS_ENV = "ASSIGNAUDIT_MMDET3D_CONFIGS"
_SCOPE_HINT = (f"set {CONFIGS_ENV}=DIR to mmdetection3d's configs folder (a checkout's configs/ or the wheel's "
               "mmdet3d/.mim/configs); assignaudit never imports mmdet3d, and mmengine looks for the scope in an "
               "installed mmdet3d package")


def scope_configs_dir(path: Path) -> Path | None:
    """Where ``mmdet3d::x`` resolves: ``$ASSIGNAUDIT_MMDET3D_CONFIGS``, else the ``configs/`` folder of the
    mmdetection3d checkout the config file lives in (a folder above it holding ``configs/_base_``), else None."""
    env = os.environ.get(CONFIGS_ENV)
    if env:
        return Path(env)
    for parent in Path(path).resolve().parents:
        if (parent / "configs" / "_base_").is_dir():
            return parent / "configs"
    return None


@contextlib.contextmanager
def _mmdet3d_scope(config_cls: Any, configs_dir: Path | None):
    """Resolve ``mmdet3d::rel`` base paths to ``configs_dir/rel`` while mmengine reads (``Config._get_cfg_path``);
    other scopes, or no folder, raise a `ConfigError` that says what to do."""
    original = config_cls.__dict__.get("_get_cfg_path")
    if original is None:  # another mmengine layout: leave it alone
        yield
        return

    def resolve(cfg_path: str, filename: str):
        if "::" not in cfg_path:
            return original.__func__(cfg_path, filename)
        scope, _, rel = cfg_path.partition("::")
        if scope != "mmdet3d":
            raise ConfigError(f"{filename}: _base_ {cfg_path!r}: the {scope}:: scope needs the {scope} package's "
                              "config tree, which assignaudit does not read (copy the file next to the config and "
                              "use a relative path)")
        if configs_dir is None:
            raise ConfigError(f"{filename}: _base_ {cfg_path!r}: {_SCOPE_HINT}")
        target = Path(configs_dir) / rel
        if not target.is_file():
            raise ConfigError(f"{filename}: _base_ {cfg_path!r}: {target} does not exist ({CONFIGS_ENV} or the "
                              f"checkout's configs/ folder is {configs_dir})")
        return str(target), scope

    config_cls._get_cfg_path = staticmethod(resolve)
    try:
        yield
    finally:
        config_cls._get_cfg_path = original


def read_mmdet3d_config(path: Path, cfg_options: Sequence[str] | Mapping[str, Any] = ()) -> dict:
    """``Config.fromfile`` (``_base_`` resolved, custom imports skipped) + ``--cfg-options`` -> a plain dict.

    ``cfg_options``: ``"key=value"`` strings (`parse_cfg_options`) or an already parsed ``{key: value}`` mapping.
    """
    options = dict(cfg_options) if isinstance(cfg_options, Mapping) else parse_cfg_options(cfg_options)
    try:
        from mmengine.config import Config
    except ImportError:
        raise ConfigError(f"{path}: {MMENGINE_MISSING}") from None
    try:
        with _mmdet3d_scope(Config, scope_configs_dir(path)):
            cfg = Config.fromfile(str(path), import_custom_modules=False)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - mmengine raises anything a Python file can raise
        first = (str(err).strip().splitlines() or [""])[0]
        hint = ""
        if isinstance(err, ImportError):
            hint = (" (new-style pure-Python mmdet3d configs import mmdet3d itself; assignaudit reads the classic "
                    "configs/ files, which need only mmengine)")
        raise ConfigError(f"{path}: cannot read the mmdetection3d config: {type(err).__name__}: {first}{hint}") from None
    if options:
        options = _check_cfg_option_paths(path, cfg.to_dict(), options)
        try:
            cfg.merge_from_dict(options)
        except Exception as err:  # noqa: BLE001 - mmengine raises KeyError / TypeError / IndexError here
            first = (str(err).strip().splitlines() or [""])[0]
            raise ConfigError(f"{path}: --cfg-options cannot be merged: {type(err).__name__}: {first}") from None
    return cfg.to_dict()


# ----------------------------------------------------------------------------------------------------------------------
# Merged dict -> DetectorConfig
# ----------------------------------------------------------------------------------------------------------------------


def _type(chk: Checker, section: Mapping, path: str) -> str:
    """A registry ``type`` without its scope prefix (``mmdet.FPN`` -> ``FPN``)."""
    value = chk.required(section, "type", path)
    if not isinstance(value, str) or not value:
        raise chk.error(join(path, "type"), f"expected a registry type name, got {show(value)}")
    return value.rsplit(".", 1)[-1]


def _no_unknown(chk: Checker, section: Mapping, path: str, allowed: tuple[str, ...], what: str) -> None:
    for key in section:
        if key not in allowed:
            raise chk.error(join(path, str(key)), f"key not understood for {what} (assignaudit reads "
                                                  f"{', '.join(allowed)}); it may change the targets, so it is not "
                                                  "ignored silently")


def _stage_cfg(chk: Checker, model: Mapping, key: str, part: str | None) -> tuple[Mapping, str]:
    """``model.train_cfg`` / ``test_cfg``, or their ``part``: ``pts`` for the MVX-style ``pts_bbox_head`` detectors,
    ``rpn`` (train) / ``rcnn`` (test: the final boxes) for the two-stage ``rpn_head`` ones."""
    path = f"model.{key}"
    section = model.get(key) or {}
    section = chk.mapping(section, path)
    if part is not None and part in section:
        return chk.mapping(section[part] or {}, join(path, part)), join(path, part)
    return section, path


def _assigner_desc(train_cfg: Mapping) -> str:
    a = train_cfg.get("assigner")
    if isinstance(a, Mapping):
        return repr(a.get("type"))
    if isinstance(a, (list, tuple)):
        return "[" + ", ".join(repr(x.get("type")) if isinstance(x, Mapping) else show(x) for x in a) + "]"
    return "none"


def _unwrap_dataset(chk: Checker, cfg: Mapping) -> tuple[Mapping, str]:
    """The train dataset under RepeatDataset / CBGSDataset / ClassBalancedDataset / ConcatDataset (browse_dataset)."""
    path = "train_dataloader.dataset"
    loader = chk.mapping(chk.required(cfg, "train_dataloader", ""), "train_dataloader")
    ds = chk.mapping(chk.required(loader, "dataset", "train_dataloader"), path)
    while True:
        kind = ds.get("type")
        kind = kind.rsplit(".", 1)[-1] if isinstance(kind, str) else kind
        if kind in _DATASET_WRAPPERS:
            ds, path = chk.mapping(chk.required(ds, "dataset", path), join(path, "dataset")), join(path, "dataset")
        elif kind == "ConcatDataset":
            parts = chk.sequence(chk.required(ds, "datasets", path), join(path, "datasets"), min_length=1)
            if any(p != parts[0] for p in parts[1:]):
                raise chk.error(join(path, "datasets"), "a ConcatDataset of differently configured datasets is not "
                                                        "supported (one pipeline and one class list are audited)")
            ds, path = chk.mapping(parts[0], join(join(path, "datasets"), 0)), join(join(path, "datasets"), 0)
        else:
            return ds, path


def _numbers(chk: Checker, value: Any, path: str, length: int) -> tuple[float, ...]:
    return chk.numbers(value, path, length=length)


def _grid_and_range(chk: Checker, cfg: Mapping, model: Mapping, *, need_voxel: bool
                    ) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """(point_cloud_range, voxel_size, range path): the voxel layer's, else the top-level variables."""
    layer, layer_path = None, ""
    pre = model.get("data_preprocessor")
    if isinstance(pre, Mapping) and isinstance(pre.get("voxel_layer"), Mapping):
        layer, layer_path = pre["voxel_layer"], "model.data_preprocessor.voxel_layer"
    for key in ("pts_voxel_layer", "voxel_layer"):  # mmdet3d 0.x spelling
        if layer is None and isinstance(model.get(key), Mapping):
            layer, layer_path = model[key], f"model.{key}"
    if layer is not None and "point_cloud_range" in layer:
        pcr, pcr_path = _numbers(chk, layer["point_cloud_range"], join(layer_path, "point_cloud_range"), 6), \
            join(layer_path, "point_cloud_range")
    elif "point_cloud_range" in cfg:
        pcr, pcr_path = _numbers(chk, cfg["point_cloud_range"], "point_cloud_range", 6), "point_cloud_range"
    else:
        raise chk.error("point_cloud_range", "missing (looked in the voxel layer and at the top level)")
    if layer is not None and "voxel_size" in layer:
        voxel = chk.numbers(layer["voxel_size"], join(layer_path, "voxel_size"), length=3, positive=True)
    elif "voxel_size" in cfg:
        voxel = chk.numbers(cfg["voxel_size"], "voxel_size", length=3, positive=True)
    elif not need_voxel:
        # Query heads (DETR3D, PETR) have no voxel grid and never use one: 1 m cells keep DetectorConfig valid.
        voxel = (1.0, 1.0, float(pcr[5] - pcr[2]))
    else:
        raise chk.error("voxel_size", "missing (looked in the voxel layer and at the top level)")
    return pcr, voxel, pcr_path


def _class_names(chk: Checker, cfg: Mapping, ds: Mapping, ds_path: str) -> tuple[tuple[str, ...], str]:
    meta = ds.get("metainfo")
    if isinstance(meta, Mapping) and "classes" in meta:
        path = join(join(ds_path, "metainfo"), "classes")
        raw = meta["classes"]
    elif "class_names" in cfg:
        path, raw = "class_names", cfg["class_names"]
    else:
        raise chk.error(join(ds_path, "metainfo"), "no classes (and no top-level class_names)")
    names = chk.sequence(raw, path, min_length=1)
    return tuple(chk.string(c, join(path, i)) for i, c in enumerate(names)), path


# ---- pipeline ------------------------------------------------------------------------------------------------------


def _pipeline(chk: Checker, ds: Mapping, ds_path: str, class_names: tuple[str, ...], pcr: tuple[float, ...],
              pcr_path: str, match_height: bool) -> tuple[tuple[AugOp, ...], tuple[str, ...]]:
    """Train pipeline -> replayed ops in order; checks the GT filters are the ones assignaudit applies afterwards."""
    path = join(ds_path, "pipeline")
    steps = chk.sequence(chk.required(ds, "pipeline", ds_path), path)
    ops: list[AugOp] = []
    paths: list[str] = []
    range_seen = None
    skipped: list[str] = []
    images = False
    for i, step in enumerate(steps):
        step_path = join(path, i)
        step = chk.mapping(step, step_path)
        kind = _type(chk, step, step_path)
        images = images or kind in _IMAGE_LOADERS
        if kind in _GT_NEUTRAL:
            continue
        if kind in _IMAGE_ONLY:
            skipped.append(_image_only(chk, step, step_path, kind))
            continue
        if kind in ("ObjectRangeFilter", "ObjectRangeFilter3D"):
            rng = _numbers(chk, chk.required(step, "point_cloud_range", step_path),
                           join(step_path, "point_cloud_range"), 6)
            if rng != pcr:
                raise chk.error(join(step_path, "point_cloud_range"),
                                f"{list(rng)} differs from {pcr_path} {list(pcr)}; assignaudit filters GT with the "
                                "voxel grid's range")
            range_seen = step_path
            continue
        if kind == "ObjectNameFilter":
            classes = tuple(chk.sequence(chk.required(step, "classes", step_path), join(step_path, "classes")))
            dropped = [c for c in class_names if c not in classes]
            if dropped:
                raise chk.error(join(step_path, "classes"), f"drops dataset class {dropped[0]!r}; only a filter "
                                                            "that keeps every class of the dataset is supported")
            continue
        if range_seen is not None and not any(isinstance(op, ObjectRangeFilter) for op in ops):
            # Upstream filters the range here, before a later op moves boxes (PETR): replay the filter at this
            # point of the list (the final one then does not run).
            if kind != "GlobalRotScaleTransImage":
                raise chk.error(step_path, f"{kind!r} after ObjectRangeFilter ({range_seen}) is not supported "
                                           "(only GlobalRotScaleTransImage may follow it)")
            ops.append(ObjectRangeFilter())
            paths.append(range_seen)
        if kind == "GlobalRotScaleTransImage":
            ops.append(_global_rot_scale_trans_image(chk, step, step_path))
        elif kind == "GlobalRotScaleTrans":
            ops.append(_global_rot_scale_trans(chk, step, step_path))
        elif kind == "BEVFusionGlobalRotScaleTrans":
            g = _global_rot_scale_trans(chk, step, step_path)
            ops.append(BEVFusionGlobalRotScaleTrans(g.rot_range_rad, g.scale_range, g.translation_std_m))
        elif kind == "RandomFlip3D":
            ops.append(_random_flip(chk, step, step_path, images))
        elif kind == "BEVFusionRandomFlip3D":
            # projects/BEVFusion transforms_3d.py: horizontal, then vertical, each np.random.choice([0, 1]) (p 0.5),
            # the boxes flipped as RandomFlip3D flips them; no parameters.
            _no_unknown(chk, step, step_path, ("type",), "BEVFusionRandomFlip3D")
            ops.append(RandomFlip3D(flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5))
        elif kind == "ObjectSample":
            ops.append(_object_sample(chk, step, step_path, class_names, match_height))
        elif kind == "ObjectNoise":
            ops.append(_object_noise(chk, step, step_path))
        else:
            raise chk.error(step_path, f"transform {kind!r} is not replayed by assignaudit and may change the GT "
                                       "boxes (replayed: GlobalRotScaleTrans, GlobalRotScaleTransImage, "
                                       "RandomFlip3D, ObjectSample, ObjectNoise, ObjectRangeFilter, "
                                       "ObjectNameFilter; skipped as image-only: " + ", ".join(_IMAGE_ONLY) + ")")
        paths.append(step_path)
    if range_seen is None:
        raise chk.error(path, "no ObjectRangeFilter: GT outside the range would reach the assigner, which "
                              "assignaudit does not reproduce")
    return tuple(ops), tuple(paths), tuple(skipped)


def _image_only(chk: Checker, step: Mapping, path: str, kind: str) -> str:
    """An accepted camera-only transform, as recorded (``MultiViewWrapper[inner, ...]``)."""
    if kind != "MultiViewWrapper":
        return kind
    inner = chk.sequence(chk.required(step, "transforms", path), join(path, "transforms"))
    names = []
    for j, t in enumerate(inner):
        t_path = join(join(path, "transforms"), j)
        name = _type(chk, chk.mapping(t, t_path), t_path)
        if name not in _IMAGE_ONLY and name not in _GT_NEUTRAL:
            raise chk.error(join(t_path, "type"), f"{name!r} inside MultiViewWrapper is not known to leave the 3D "
                                                  f"GT unchanged (image-only: {', '.join(_IMAGE_ONLY)})")
        names.append(name)
    return f"MultiViewWrapper[{', '.join(names)}]"


def _global_rot_scale_trans_image(chk: Checker, step: Mapping, path: str) -> GlobalRotScaleTransImage:
    _no_unknown(chk, step, path, ("type", "rot_range", "scale_ratio_range", "translation_std", "reverse_angle",
                                  "training"), "GlobalRotScaleTransImage")
    if not chk.boolean(step.get("training", True), join(path, "training")):
        raise chk.error(join(path, "training"), "False in a train pipeline is not supported")
    d = GlobalRotScaleTransImage()
    return GlobalRotScaleTransImage(
        rot_range_rad=chk.range_pair(step.get("rot_range", list(d.rot_range_rad)), join(path, "rot_range")),
        scale_range=chk.range_pair(step.get("scale_ratio_range", list(d.scale_range)),
                                   join(path, "scale_ratio_range"), positive=True),
        # translation_std is read by __init__ and never used ("TODO: support translation")
        reverse_angle=chk.boolean(step.get("reverse_angle", False), join(path, "reverse_angle")),
    )


def _global_rot_scale_trans(chk: Checker, step: Mapping, path: str) -> GlobalRotScaleTrans:
    _no_unknown(chk, step, path, ("type", "rot_range", "scale_ratio_range", "translation_std", "shift_height"),
                "GlobalRotScaleTrans")
    if step.get("shift_height", False):
        raise chk.error(join(path, "shift_height"), "True (indoor height feature) is not supported")
    # transforms_3d.py defaults; a scalar rot_range a means [-a, a], a scalar translation_std s means [s, s, s].
    rot = chk.range_pair(step.get("rot_range", [-0.78539816, 0.78539816]), join(path, "rot_range"),
                         symmetric_scalar=True)
    scale = chk.range_pair(step.get("scale_ratio_range", [0.95, 1.05]), join(path, "scale_ratio_range"),
                           positive=True)
    std_raw = step.get("translation_std", [0, 0, 0])
    std_path = join(path, "translation_std")
    std = (chk.number(std_raw, std_path, lo=0.0),) * 3 if not isinstance(std_raw, (list, tuple)) \
        else chk.numbers(std_raw, std_path, length=3)
    if min(std) < 0:
        raise chk.error(std_path, f"a standard deviation cannot be negative, got {show(std_raw)}")
    return GlobalRotScaleTrans(rot_range_rad=rot, scale_range=scale, translation_std_m=std)  # type: ignore


def _object_noise(chk: Checker, step: Mapping, path: str) -> ObjectNoise:
    """``ObjectNoise`` (transforms_3d.py defaults; ``noise_per_object_v3_`` widens a scalar range r to [-r, r] and
    a scalar std s to [s, s, s])."""
    _no_unknown(chk, step, path, ("type", "translation_std", "global_rot_range", "rot_range", "num_try"),
                "ObjectNoise")
    d = ObjectNoise()
    std_raw = step.get("translation_std", list(d.translation_std))
    std_path = join(path, "translation_std")
    std = (chk.number(std_raw, std_path, lo=0.0),) * 3 if not isinstance(std_raw, (list, tuple)) \
        else chk.numbers(std_raw, std_path, length=3)
    if min(std) < 0:
        raise chk.error(std_path, f"a standard deviation cannot be negative, got {show(std_raw)}")
    return ObjectNoise(
        translation_std=std,  # type: ignore[arg-type]
        rot_range=chk.range_pair(step.get("rot_range", list(d.rot_range)), join(path, "rot_range"),
                                 symmetric_scalar=True),
        global_rot_range=chk.range_pair(step.get("global_rot_range", list(d.global_rot_range)),
                                        join(path, "global_rot_range"), symmetric_scalar=True),
        num_try=chk.integer(step.get("num_try", d.num_try), join(path, "num_try"), minimum=1),
    )


def _random_flip(chk: Checker, step: Mapping, path: str, images: bool = False) -> RandomFlip3D:
    """``RandomFlip3D``. With an image in the sample and ``sync_2d`` (default True) upstream takes the horizontal
    flip from the image flip (mmcv RandomFlip, p = flip_ratio_bev_horizontal) and never flips vertically."""
    _no_unknown(chk, step, path, ("type", "sync_2d", "flip_ratio_bev_horizontal", "flip_ratio_bev_vertical",
                                  "flip_box3d"), "RandomFlip3D")
    if not step.get("flip_box3d", True):
        raise chk.error(join(path, "flip_box3d"), "False (points flipped, boxes not) is not supported")
    vertical = chk.fraction(step.get("flip_ratio_bev_vertical", 0.0), join(path, "flip_ratio_bev_vertical"))
    if images and chk.boolean(step.get("sync_2d", True), join(path, "sync_2d")):
        vertical = 0.0
    return RandomFlip3D(
        flip_ratio_bev_horizontal=chk.fraction(step.get("flip_ratio_bev_horizontal", 0.0),
                                               join(path, "flip_ratio_bev_horizontal")),
        flip_ratio_bev_vertical=vertical,
    )


def _class_counts(chk: Checker, value: Any, path: str) -> tuple[tuple[str, int], ...]:
    section = chk.mapping(value, path)
    return tuple((chk.string(k, join(path, str(k))), chk.integer(v, join(path, str(k)), minimum=0))
                 for k, v in section.items())


def _object_sample(chk: Checker, step: Mapping, path: str, class_names: tuple[str, ...],
                   match_height: bool) -> ObjectSample:
    _no_unknown(chk, step, path, _OBJECT_SAMPLE_KEYS, "ObjectSample")
    if step.get("sample_2d", False):
        raise chk.error(join(path, "sample_2d"), "True (image patches pasted too) is not supported")
    if step.get("use_ground_plane", False) and match_height:
        # The ground plane only moves pasted boxes in z; the BEV collision test and the nearest-BEV IoU ignore z.
        raise chk.error(join(path, "use_ground_plane"), "not supported with a 3D IoU (assignaudit has no planes)")
    db_path = join(path, "db_sampler")
    db = chk.mapping(chk.required(step, "db_sampler", path), db_path)
    _no_unknown(chk, db, db_path, _DB_SAMPLER_KEYS, "db_sampler")
    if "type" in db and _type(chk, db, db_path) != "DataBaseSampler":
        raise chk.error(join(db_path, "type"), f"{db['type']!r} is not supported (only DataBaseSampler)")
    if db.get("classes") is not None and tuple(chk.sequence(db["classes"], join(db_path, "classes"))) != class_names:
        # DataBaseSampler labels pasted boxes by its own classes list.
        raise chk.error(join(db_path, "classes"), f"{list(db['classes'])} differs from the dataset classes "
                                                  f"{list(class_names)}; pasted boxes would get other labels")
    prepare = chk.mapping(db.get("prepare", {}), join(db_path, "prepare"))
    _no_unknown(chk, prepare, join(db_path, "prepare"), _PREPARE_KEYS, "db_sampler.prepare")
    return ObjectSample(
        sample_groups=_class_counts(chk, chk.required(db, "sample_groups", db_path), join(db_path, "sample_groups")),
        min_points=_class_counts(chk, prepare.get("filter_by_min_points", {}),
                                 join(join(db_path, "prepare"), "filter_by_min_points")),
        rate=chk.number(db.get("rate", 1.0), join(db_path, "rate"), lo=0.0),
        filter_by_difficulty=_difficulties(chk, prepare.get("filter_by_difficulty", []),
                                           join(join(db_path, "prepare"), "filter_by_difficulty")),
    )


def _difficulties(chk: Checker, value: Any, path: str) -> tuple[int, ...]:
    return tuple(chk.integer(v, join(path, i)) for i, v in enumerate(chk.sequence(value, path)))


# ---- anchor head ---------------------------------------------------------------------------------------------------


def _feature_strides(chk: Checker, model: Mapping, prefix: str, grid: tuple[int, int, int]) -> list[int]:
    """BEV strides (in voxels) of the feature maps the head sees, derived from the model (docs/config.md).

    Middle encoder: ``PointPillarsScatter`` 1; ``SparseEncoder`` / ``SparseUNet`` / ``SparseEncoderSASSD``
    2**(stages-1) (the default 4 stages: 8). Backbone: `_backbone_strides` (``SECOND``, ``NoStemRegNet``).
    Neck ``SECONDFPN``: stride_i / upsample_strides[i] (all
    equal, concatenated into one map); ``FPN``: the backbone strides from ``start_level`` plus one doubling per
    extra output up to ``num_outs``.
    """
    me_path = f"model.{prefix}middle_encoder"
    me = chk.mapping(chk.required(model, f"{prefix}middle_encoder", "model"), me_path)
    me_type = _type(chk, me, me_path)
    if me_type == "PointPillarsScatter":
        base = 1
        if me.get("output_shape") is not None:
            shape = tuple(chk.sequence(me["output_shape"], join(me_path, "output_shape"), length=2))
            if shape != (grid[1], grid[0]):
                raise chk.error(join(me_path, "output_shape"), f"{list(shape)} is not the voxel grid (y, x) "
                                                               f"{[grid[1], grid[0]]}")
    elif me_type in ("SparseEncoder", "SparseUNet", "SparseEncoderSASSD"):
        # SparseUNet: the BEV map is its encoder's (sparse_unet.py); SA-SSD's encoder is SparseEncoder plus an
        # auxiliary point branch.
        channels = me.get("encoder_channels", ((16,), (32, 32, 32), (64, 64, 64), (64, 64, 64)))
        base = 2 ** (len(chk.sequence(channels, join(me_path, "encoder_channels"), min_length=1)) - 1)
    else:
        raise chk.error(join(me_path, "type"), f"{me_type!r}: cannot derive the anchor feature-map stride "
                                               "(known: PointPillarsScatter, SparseEncoder, SparseUNet, "
                                               "SparseEncoderSASSD)")
    strides = _backbone_strides(chk, model, prefix)
    neck_path = f"model.{prefix}neck"
    neck = chk.mapping(chk.required(model, f"{prefix}neck", "model"), neck_path)
    neck_type = _type(chk, neck, neck_path)
    if neck_type == "SECONDFPN":
        ups_path = join(neck_path, "upsample_strides")
        ups = chk.sequence(neck.get("upsample_strides", [1, 2, 4]), ups_path, length=len(strides))
        outs = {st / chk.number(u, join(ups_path, i), positive=True) for i, (st, u) in enumerate(zip(strides, ups))}
        if len(outs) != 1:
            raise chk.error(ups_path, f"the upsampled maps have different strides {sorted(outs)}; SECONDFPN "
                                      "concatenates them, so they must agree")
        level_strides = [outs.pop()]
    elif neck_type == "FPN":
        start = chk.integer(neck.get("start_level", 0), join(neck_path, "start_level"), minimum=0)
        end = chk.integer(neck.get("end_level", -1), join(neck_path, "end_level"))
        used = strides[start:] if end == -1 else strides[start:end]
        num_outs = chk.integer(chk.required(neck, "num_outs", neck_path), join(neck_path, "num_outs"),
                               minimum=len(used))
        level_strides = list(used)
        while len(level_strides) < num_outs:  # extra levels: stride-2 convs / max-pool on the last one
            level_strides.append(level_strides[-1] * 2)
    else:
        raise chk.error(join(neck_path, "type"), f"{neck_type!r}: cannot derive the anchor feature-map strides "
                                                 "(known: SECONDFPN, FPN)")
    out = []
    for st in level_strides:
        total = base * st
        if not float(total).is_integer() or total < 1:
            raise chk.error(neck_path, f"feature-map stride {total:g} is not a whole number of voxels")
        out.append(int(total))
    return out


def _backbone_strides(chk: Checker, model: Mapping, prefix: str) -> list[int]:
    """Cumulative strides of the backbone outputs the neck takes, relative to the middle encoder's BEV map.

    ``SECOND``: one output per stage, cumulative ``layer_strides`` (default [2, 2, 2]). ``NoStemRegNet`` (mmdet
    ``RegNet`` without its stride-2 stem: the voxel encoder is the stem, nostem_regnet.py): stage i has stride
    ``strides[i]`` (default (2, 2, 2, 2)), the outputs are the stages in ``out_indices`` (default (0, 1, 2, 3)).
    """
    bb_path = f"model.{prefix}backbone"
    bb = chk.mapping(chk.required(model, f"{prefix}backbone", "model"), bb_path)
    bb_type = _type(chk, bb, bb_path)
    if bb_type == "SECOND":
        key, default, picked = "layer_strides", [2, 2, 2], None
    elif bb_type == "NoStemRegNet":
        key, default = "strides", [2, 2, 2, 2]
        idx_path = join(bb_path, "out_indices")
        picked = [chk.integer(v, join(idx_path, i), minimum=0)
                  for i, v in enumerate(chk.sequence(bb.get("out_indices", [0, 1, 2, 3]), idx_path, min_length=1))]
    else:
        raise chk.error(join(bb_path, "type"), f"{bb.get('type')!r}: cannot derive the anchor feature-map strides "
                                               "(known: SECOND, NoStemRegNet)")
    cumulative, s = [], 1
    for i, ls in enumerate(chk.sequence(bb.get(key, default), join(bb_path, key), min_length=1)):
        s *= chk.integer(ls, join(join(bb_path, key), i), minimum=1)
        cumulative.append(s)
    if picked is None:
        return cumulative
    if max(picked) >= len(cumulative) or sorted(set(picked)) != picked:
        raise chk.error(join(bb_path, "out_indices"), f"{picked} must be increasing stage indices below "
                                                      f"{len(cumulative)} (one per entry of {key})")
    return [cumulative[i] for i in picked]


def _max_iou_assigner(chk: Checker, a: Any, path: str) -> dict[str, Any]:
    a = chk.mapping(a, path)
    kind = _type(chk, a, path)
    if kind not in _MAX_IOU_ASSIGNERS:
        raise chk.error(join(path, "type"), f"{a['type']!r} is not supported for {ANCHOR_HEAD} "
                                            f"(supported: {', '.join(_MAX_IOU_ASSIGNERS)})")
    _no_unknown(chk, a, path, _ASSIGNER_KEYS, kind)
    calc_path = join(path, "iou_calculator")
    calc = chk.mapping(chk.required(a, "iou_calculator", path), calc_path)
    calc_type = _type(chk, calc, calc_path)
    if calc_type != "BboxOverlapsNearest3D" or calc.get("coordinate", "lidar") != "lidar":
        raise chk.error(calc_path, f"{calc_type!r} (coordinate {calc.get('coordinate', 'lidar')!r}) is not "
                                   "supported; anchor heads use BboxOverlapsNearest3D in lidar coordinates")
    neg = chk.required(a, "neg_iou_thr", path)
    if not isinstance(neg, float):
        # max_iou_assigner.py: a float is [0, thr), a tuple is [lo, hi), and an int (e.g. 0) matches neither branch,
        # so no prior becomes negative at all (spec §6.1 pitfall).
        why = "a (lo, hi) tuple" if isinstance(neg, (list, tuple)) else \
            "an int, which mmdet treats as neither a float nor a tuple: no negatives at all"
        raise chk.error(join(path, "neg_iou_thr"), f"{show(neg)} is {why}; not supported (write a float)")
    if chk.number(a.get("ignore_iof_thr", -1), join(path, "ignore_iof_thr")) > 0:
        raise chk.error(join(path, "ignore_iof_thr"), "> 0 needs ignore boxes, which assignaudit does not have")
    return {
        "pos": chk.fraction(chk.required(a, "pos_iou_thr", path), join(path, "pos_iou_thr")),
        "neg": chk.fraction(neg, join(path, "neg_iou_thr")),
        "min_pos": chk.fraction(a.get("min_pos_iou", 0.0), join(path, "min_pos_iou")),
        "gt_max_assign_all": chk.boolean(a.get("gt_max_assign_all", True), join(path, "gt_max_assign_all")),
        "match_low_quality": chk.boolean(a.get("match_low_quality", True), join(path, "match_low_quality")),
    }


def _anchor_head(chk: Checker, model: Mapping, head: Mapping, head_path: str, prefix: str, train_cfg: Mapping,
                 train_path: str, class_names: tuple[str, ...], pcr: tuple[float, ...], voxel: tuple[float, ...],
                 grid: tuple[int, int, int]) -> tuple[AnchorLayout, AssignerParams, tuple[str, ...]]:
    gen_path = join(head_path, "anchor_generator")
    gen = chk.mapping(chk.required(head, "anchor_generator", head_path), gen_path)
    gen_type = _type(chk, gen, gen_path)
    if gen_type not in _GENERATORS:
        raise chk.error(join(gen_path, "type"), f"{gen['type']!r} is not supported (supported: "
                                                f"{', '.join(_GENERATORS)})")
    _no_unknown(chk, gen, gen_path, _GENERATOR_KEYS, gen_type)
    generator = _GENERATORS[gen_type]
    shape_aware = _type(chk, head, head_path) == SHAPE_AWARE_HEAD
    if shape_aware != (generator == "mmdet3d_aligned_per_class"):
        # ShapeAwareHead hands the generator one feature-map size per class; the other generators read that list as
        # FPN levels (and PerCls cannot serve a single map), so upstream fails or builds something else.
        raise chk.error(join(gen_path, "type"), f"{gen['type']!r} with {head.get('type')!r}: ShapeAwareHead needs "
                                                "AlignedAnchor3DRangeGeneratorPerCls and that generator needs "
                                                "ShapeAwareHead")
    align_corner = chk.boolean(gen.get("align_corner", False), join(gen_path, "align_corner"))
    if align_corner and generator not in ("mmdet3d_aligned", "mmdet3d_aligned_per_class"):
        raise chk.error(join(gen_path, "align_corner"), "only AlignedAnchor3DRangeGenerator takes align_corner")
    sizes_path, ranges_path = join(gen_path, "sizes"), join(gen_path, "ranges")
    # mm3d 1.x sizes are (x_size, y_size, z_size) = (dx, dy, dz) (spec §1); ranges z is the anchor bottom.
    sizes = [chk.numbers(s, join(sizes_path, i), length=3, positive=True)
             for i, s in enumerate(chk.sequence(chk.required(gen, "sizes", gen_path), sizes_path, min_length=1))]
    ranges = [_numbers(chk, r, join(ranges_path, i), 6)
              for i, r in enumerate(chk.sequence(chk.required(gen, "ranges", gen_path), ranges_path, min_length=1))]
    if chk.boolean(gen.get("size_per_range", True), join(gen_path, "size_per_range")):
        if len(ranges) == 1:
            ranges = ranges * len(sizes)  # Anchor3DRangeGenerator replicates a single range
        elif len(ranges) != len(sizes):
            raise chk.error(ranges_path, f"{len(ranges)} ranges for {len(sizes)} sizes (size_per_range needs one "
                                         "range per size, or a single range)")
    else:
        ranges = [ranges[0]] * len(sizes)  # every size on the first range
    rotations = chk.numbers(gen.get("rotations", [0, 1.5707963]), join(gen_path, "rotations"), min_length=1)
    scales = chk.numbers(gen.get("scales", [1]), join(gen_path, "scales"), min_length=1, positive=True)

    strides = _feature_strides(chk, model, prefix, grid)
    set_strides = [strides[0]] * len(sizes)
    if shape_aware:
        set_strides = _shape_aware_strides(chk, head, head_path, strides, scales, len(sizes), grid, class_names)
        scales = [scales[0]]
    if len(strides) != len(scales):
        raise chk.error(join(gen_path, "scales"), f"{len(scales)} scales for {len(strides)} feature maps (strides "
                                                  f"{strides} from the neck); mmdet3d pairs them level by level")
    if len(strides) == 1 and scales[0] == 1.0:
        levels: tuple[AnchorLevel, ...] = ()
    else:
        levels = tuple(AnchorLevel(feature_map_stride=s, scale=sc) for s, sc in zip(strides, scales))

    a_path = join(train_path, "assigner")
    raw_assigner = chk.required(train_cfg, "assigner", train_path)
    per_size = isinstance(raw_assigner, (list, tuple))
    if per_size:
        items = chk.sequence(raw_assigner, a_path, length=len(sizes))
        assigners = [_max_iou_assigner(chk, a, join(a_path, i)) for i, a in enumerate(items)]
        if chk.boolean(gen.get("reshape_out", True), join(gen_path, "reshape_out")):
            raise chk.error(join(gen_path, "reshape_out"), "True with a per-size assigner list: train_mixins.py "
                                                           "slices anchors[..., i, :, :], which needs False")
    else:
        assigners = [_max_iou_assigner(chk, raw_assigner, a_path)] * len(sizes)
    for key in ("gt_max_assign_all", "match_low_quality"):
        if len({a[key] for a in assigners}) != 1:
            raise chk.error(a_path, f"the assigners disagree on {key}; assignaudit has one value for all")
    # Anchor3DHead's default is False, ShapeAwareHead's True (shape_aware_head.py).
    assign_per_class = chk.boolean(head.get("assign_per_class", shape_aware), join(head_path, "assign_per_class"))
    if per_size and assign_per_class and len(sizes) != len(class_names):
        raise chk.error(join(head_path, "assign_per_class"),
                        f"assigner i gets the GT of class i, but there are {len(sizes)} sizes for "
                        f"{len(class_names)} classes {list(class_names)}")
    sets = []
    for i, (size, rng, a) in enumerate(zip(sizes, ranges, assigners)):
        # A size is a class only with assign_per_class (size i <-> class i); otherwise a size slot.
        label = class_names[i] if per_size and assign_per_class else f"size{i}"
        sets.append(AnchorSet(
            class_name=label, sizes=(size,), rotations=rotations, bottom_heights=(rng[2],),  # type: ignore
            matched_threshold=a["pos"], unmatched_threshold=a["neg"],
            feature_map_stride=set_strides[i], min_pos_iou=a["min_pos"] if per_size else None,
            anchor_range=rng,  # type: ignore[arg-type]
        ))
    layout = AnchorLayout(point_cloud_range=pcr, voxel_size=voxel, anchor_sets=tuple(sets),  # type: ignore
                          multihead=False, generator=generator, align_corner=align_corner, levels=levels)
    params = AssignerParams(
        framework=Framework.MMDET, iou=IouKind.NEAREST_BEV, nearest_convention="mmdet3d",
        min_pos_iou=0.0 if per_size else assigners[0]["min_pos"],
        gt_max_assign_all=assigners[0]["gt_max_assign_all"], class_agnostic=not per_size,
        match_low_quality=assigners[0]["match_low_quality"], assign_per_class=assign_per_class if per_size else True,
    )
    return layout, params, tuple(join(sizes_path, i) for i in range(len(sets)))


def _shape_aware_strides(chk: Checker, head: Mapping, head_path: str, strides: list[int], scales: Sequence[float],
                         num_sizes: int, grid: tuple[int, int, int], class_names: tuple[str, ...]) -> list[int]:
    """ShapeAwareHead: anchor set i (``sizes[i]`` / ``ranges[i]``, class i) lives on the map of the task that holds
    class i (tasks in order, ``num_class`` each); that map is the neck's after the task's ``shared_conv_strides``
    (3x3 convs, padding 1: ``ceil(n / s)`` per conv), so set i's stride is the neck stride times their product."""
    if len(strides) != 1 or len(scales) != 1 or scales[0] != 1.0:
        raise chk.error(join(head_path, "anchor_generator"), f"ShapeAwareHead needs one neck output and one scale 1 "
                                                             f"(AlignedAnchor3DRangeGeneratorPerCls); got strides "
                                                             f"{strides}, scales {list(scales)}")
    tasks_path = join(head_path, "tasks")
    out: list[int] = []
    task_classes: list[str] = []
    for ti, task in enumerate(chk.sequence(chk.required(head, "tasks", head_path), tasks_path, min_length=1)):
        t_path = join(tasks_path, ti)
        task = chk.mapping(task, t_path)
        n = chk.integer(chk.required(task, "num_class", t_path), join(t_path, "num_class"), minimum=1)
        task_classes += [str(c) for c in task.get("class_names") or ()]
        conv = chk.sequence(task.get("shared_conv_strides", (1, 1)), join(t_path, "shared_conv_strides"))
        nx, ny, total = grid[0] // strides[0], grid[1] // strides[0], strides[0]
        for ci, c in enumerate(conv):
            c = chk.integer(c, join(join(t_path, "shared_conv_strides"), ci), minimum=1)
            nx, ny, total = -(-nx // c), -(-ny // c), total * c
        if (nx, ny) != (grid[0] // total, grid[1] // total):
            raise chk.error(join(t_path, "shared_conv_strides"), f"the task's map is {nx} x {ny} (convs round up), "
                                                                 f"not grid // {total} = {grid[0] // total} x "
                                                                 f"{grid[1] // total}; not reproduced")
        out += [total] * n
    if len(out) != num_sizes:
        raise chk.error(tasks_path, f"the tasks hold {len(out)} classes but the generator has {num_sizes} sizes "
                                    "(ShapeAwareHead asserts one feature map per size and range)")
    if task_classes and tuple(task_classes) != tuple(class_names):
        # Upstream never reads tasks[*].class_names: anchor set i is simply the one assigner i gives the GT of
        # dataset label i. Replayed as trained, but the user should know (e.g. SSN Lyft: its class_names variable
        # is not the base dataset's metainfo.classes, so 'car' GT meet the 'bicycle'-sized anchors).
        pairs = [f"{c}<-{t}" for c, t in zip(class_names, task_classes) if c != t][:3]
        log.warning("%s: %s: the tasks list classes in another order than the dataset classes; anchor set i gets "
                    "the GT of dataset class i, as upstream trains (dataset<-task: %s)", chk.origin, tasks_path,
                    ", ".join(pairs))
    return out


def _rcnn_post(chk: Checker, test_cfg: Mapping, path: str) -> PostProcessing:
    """Two-stage PartA2 / PV-RCNN: the final boxes come from the ROI head's ``multi_class_nms`` (``test_cfg.rcnn``:
    per class, score >= score_thr, rotated or axis-aligned NMS, no cap). The RPN's ``test_cfg.rpn`` only makes
    proposals."""
    return _multiclass_nms_post(chk, test_cfg, path, caps=False)


def _anchor_post(chk: Checker, test_cfg: Mapping, path: str) -> PostProcessing:
    """``box3d_multiclass_nms`` (spec §10.2): per-class NMS, score > score_thr, global cap ``max_num``."""
    return _multiclass_nms_post(chk, test_cfg, path, caps=True)


def _multiclass_nms_post(chk: Checker, test_cfg: Mapping, path: str, *, caps: bool) -> PostProcessing:
    """Per-class NMS from ``score_thr`` / ``use_rotate_nms`` / ``nms_thr``; with ``caps``, ``nms_pre`` and the
    all-class ``max_num`` too (the ROI head's ``multi_class_nms`` has neither)."""
    d = PostProcessing()

    def opt_int(key: str) -> int | None:
        if not caps or test_cfg.get(key) is None:
            return None
        return chk.integer(test_cfg[key], join(path, key), minimum=1)

    rotate = chk.boolean(test_cfg.get("use_rotate_nms", True), join(path, "use_rotate_nms"))
    return PostProcessing(
        score_thresh=chk.fraction(test_cfg.get("score_thr", d.score_thresh), join(path, "score_thr")),
        multi_classes_nms=True,
        nms_type="nms_gpu" if rotate else "nms_normal_gpu",
        nms_thresh=chk.fraction(test_cfg.get("nms_thr", d.nms_thresh), join(path, "nms_thr")),
        nms_pre_maxsize=opt_int("nms_pre"),
        nms_post_maxsize=opt_int("max_num"),
    )


# ---- center head ---------------------------------------------------------------------------------------------------


def _center_head(chk: Checker, head: Mapping, head_path: str, train_cfg: Mapping, train_path: str,
                 class_names: tuple[str, ...], pcr: tuple[float, ...], pcr_path: str,
                 voxel: tuple[float, ...]) -> HeatmapParams:
    """``CenterHead`` (``centerpoint_head.py``, spec §7): tasks + ``train_cfg.pts`` -> `HeatmapParams`."""
    tasks_path = join(head_path, "tasks")
    heads = []
    for i, task in enumerate(chk.sequence(chk.required(head, "tasks", head_path), tasks_path, min_length=1)):
        t_path = join(tasks_path, i)
        task = chk.mapping(task, t_path)
        names = chk.sequence(chk.required(task, "class_names", t_path), join(t_path, "class_names"), min_length=1)
        n = chk.integer(task.get("num_class", len(names)), join(t_path, "num_class"), minimum=1)
        if n != len(names):
            raise chk.error(join(t_path, "num_class"), f"{n} but class_names lists {len(names)}")
        heads.append(list(names))
    _no_unknown(chk, train_cfg, train_path, _CENTER_TRAIN_KEYS, "CenterHead train_cfg")
    for key, value in (("point_cloud_range", pcr), ("voxel_size", voxel)):
        if key in train_cfg and tuple(chk.numbers(train_cfg[key], join(train_path, key))) != tuple(value):
            raise chk.error(join(train_path, key), f"{list(train_cfg[key])} differs from the voxel layer's "
                                                   f"{list(value)}; the targets would be drawn on another grid")
    grid = chk.numbers(chk.required(train_cfg, "grid_size", train_path), join(train_path, "grid_size"), length=3,
                       positive=True)
    osf = chk.integer(chk.required(train_cfg, "out_size_factor", train_path), join(train_path, "out_size_factor"),
                      minimum=1)
    max_objs = chk.integer(chk.required(train_cfg, "max_objs", train_path), join(train_path, "max_objs"), minimum=0)
    dense_reg = chk.integer(train_cfg.get("dense_reg", 1), join(train_path, "dense_reg"), minimum=1)
    params = build_heatmap_params(
        chk, tasks_path, heads=heads, class_names=class_names, point_cloud_range=pcr, voxel_size=voxel,
        variant="mmdet3d", feature_map_stride=osf, num_max_objs=max_objs * dense_reg,
        gaussian_overlap=chk.number(chk.required(train_cfg, "gaussian_overlap", train_path),
                                    join(train_path, "gaussian_overlap"), lo=0.0, hi=1.0),
        min_radius=chk.integer(chk.required(train_cfg, "min_radius", train_path), join(train_path, "min_radius"),
                               minimum=0),
        # mmdet3d sizes the map from train_cfg.grid_size, not from the network output (spec §7).
        feature_map_size=(int(grid[0]) // osf, int(grid[1]) // osf),
    )
    log_heatmap_warnings(params, chk.origin)
    return params


def _center_post(chk: Checker, test_cfg: Mapping, path: str) -> PostProcessing:
    """CenterPoint ``predict_by_feat`` (spec §10.2): per task, class-agnostic rotate NMS or circle NMS."""
    d = PostProcessing()
    nms = chk.choice(test_cfg.get("nms_type", "rotate"), join(path, "nms_type"), ("rotate", "circle"))

    def opt_int(key: str) -> int | None:
        return chk.integer(test_cfg[key], join(path, key), minimum=1) if test_cfg.get(key) is not None else None

    radii = chk.numbers(test_cfg.get("min_radius", []), join(path, "min_radius"))
    return PostProcessing(
        score_thresh=chk.fraction(test_cfg.get("score_threshold", d.score_thresh), join(path, "score_threshold")),
        multi_classes_nms=False,
        nms_type="nms_gpu" if nms == "rotate" else "circle",
        nms_thresh=chk.fraction(test_cfg.get("nms_thr", d.nms_thresh), join(path, "nms_thr")),
        nms_pre_maxsize=opt_int("pre_max_size"),
        nms_post_maxsize=opt_int("post_max_size"),
        circle_min_radius_sq=radii,  # squared metres per task (§10.2); used by nms_type circle
    )


# ---- query heads ---------------------------------------------------------------------------------------------------


def _query_head(chk: Checker, head: Mapping, head_path: str, train_cfg: Mapping, train_path: str) -> QueryParams:
    """DETR3D / PETR: ``num_query`` queries, one Hungarian match per decoder layer (spec §8.1)."""
    a_path = join(train_path, "assigner")
    if "assigner" in train_cfg:
        a = chk.mapping(train_cfg["assigner"], a_path)
        if _type(chk, a, a_path) != "HungarianAssigner3D":
            raise chk.error(join(a_path, "type"), f"{a['type']!r} is not supported for {head.get('type')!r} "
                                                  "(supported: HungarianAssigner3D)")
        # assign.hungarian replays FocalLossCost(weight 2.0) + BBox3DL1Cost(weight 0.25); the IoU cost is never
        # added upstream, so its weight does not matter.
        for cost, weight in (("cls_cost", 2.0), ("reg_cost", 0.25)):
            if cost in a:
                w = chk.number(chk.mapping(a[cost], join(a_path, cost)).get("weight", 1.0),
                               join(join(a_path, cost), "weight"))
                if w != weight:
                    raise chk.error(join(join(a_path, cost), "weight"), f"{w:g} is not reproduced (assignaudit's "
                                                                        f"DETR3D matcher uses {weight:g})")
    num_layers = QueryParams.num_layers
    # The layer count decides how many matches are replayed, so a transformer / decoder that is there but not a
    # mapping is an error rather than a silent fall back to the default.
    if head.get("transformer") is not None:
        tr_path = join(head_path, "transformer")
        transformer = chk.mapping(head["transformer"], tr_path)
        if transformer.get("decoder") is not None:
            dec_path = join(tr_path, "decoder")
            decoder = chk.mapping(transformer["decoder"], dec_path)
            num_layers = chk.integer(decoder.get("num_layers", num_layers), join(dec_path, "num_layers"), minimum=1)
    return QueryParams(cost="detr3d",
                       num_queries=chk.integer(head.get("num_query", 900), join(head_path, "num_query"), minimum=1),
                       num_layers=num_layers)


_TRANSFUSION_COSTS = (("cls_cost", "FocalLossCost", {"weight": 0.15, "gamma": 2.0, "alpha": 0.25}),
                      ("reg_cost", "BBoxBEVL1Cost", {"weight": 0.25}),
                      ("iou_cost", "IoU3DCost", {"weight": 0.25}))


def _transfusion_head(chk: Checker, head: Mapping, head_path: str, train_cfg: Mapping, train_path: str,
                      pcr: tuple[float, ...]) -> QueryParams:
    """BEVFusion ``TransFusionHead`` (projects/BEVFusion/bevfusion/transfusion_head.py ``get_targets_single``): the
    ``num_proposals`` queries of each decoder layer (all ``num_decoder_layers`` with ``auxiliary``, else the last)
    are matched to the GT by ``HungarianAssigner3D``: focal (0.15) + BEV-centre L1 normalised by
    ``train_cfg.point_cloud_range`` (0.25) - 0.25 x 3D IoU. The queries are network outputs: counted from a
    ``--queries`` dump, like DETR3D. (The head's heatmap loss targets, CenterHead-style Gaussians, are not counted.)"""
    if isinstance(head.get("train_cfg"), Mapping):  # BEVFusion configs give the head its own train_cfg
        train_cfg, train_path = head["train_cfg"], join(head_path, "train_cfg")
    a_path = join(train_path, "assigner")
    a = chk.mapping(chk.required(train_cfg, "assigner", train_path), a_path)
    kind = _type(chk, a, a_path)
    if kind != "HungarianAssigner3D":
        raise chk.error(join(a_path, "type"), f"{a['type']!r} is not supported for TransFusionHead (supported: "
                                              "HungarianAssigner3D; the HeuristicAssigner is not replayed)")
    calc_path = join(a_path, "iou_calculator")
    calc = chk.mapping(a.get("iou_calculator", {"type": "BboxOverlaps3D"}), calc_path)
    if _type(chk, calc, calc_path) != "BboxOverlaps3D" or calc.get("coordinate", "lidar") != "lidar":
        raise chk.error(calc_path, "only BboxOverlaps3D in lidar coordinates (the true 3D IoU) is reproduced")
    for key, cost_type, expected in _TRANSFUSION_COSTS:
        c_path = join(a_path, key)
        c = chk.mapping(chk.required(a, key, a_path), c_path)
        if _type(chk, c, c_path) != cost_type:
            raise chk.error(join(c_path, "type"), f"{c['type']!r} is not reproduced (expected {cost_type})")
        for k, v in c.items():
            if k != "type" and (k not in expected or chk.number(v, join(c_path, k)) != expected[k]):
                raise chk.error(join(c_path, k), f"{show(v)} is not reproduced (assignaudit's BEVFusion matcher "
                                                 f"uses {cost_type} {expected})")
    if "point_cloud_range" in train_cfg:
        used = _numbers(chk, train_cfg["point_cloud_range"], join(train_path, "point_cloud_range"), 6)
        if used != pcr:
            raise chk.error(join(train_path, "point_cloud_range"), f"{list(used)} (the BEV L1 normalisation) differs "
                                                                   f"from the voxel layer's {list(pcr)}")
    layers = chk.integer(head.get("num_decoder_layers", 3), join(head_path, "num_decoder_layers"), minimum=1)
    auxiliary = chk.boolean(head.get("auxiliary", True), join(head_path, "auxiliary"))
    return QueryParams(cost="transfusion_mmdet3d",
                       num_queries=chk.integer(head.get("num_proposals", 128), join(head_path, "num_proposals"),
                                               minimum=1),
                       num_layers=layers if auxiliary else 1)


# ---- entry point ---------------------------------------------------------------------------------------------------


def mmdet3d_config_from_dict(cfg: Mapping, origin: str, *, name: str, source: str) -> DetectorConfig:
    """Build a `DetectorConfig` from a resolved mmdetection3d 1.x config (``Config.to_dict()``)."""
    chk = Checker(origin)
    cfg = chk.mapping(cfg, "")
    model = chk.mapping(chk.required(cfg, "model", ""), "model")
    found = next(((k, tr, te) for k, tr, te in _HEAD_KEYS if model.get(k)), None)
    if found is None:
        raise chk.error("model", "no pts_bbox_head, bbox_head or rpn_head: assignaudit audits dense heads "
                                 f"({', '.join(SUPPORTED_HEADS)})")
    head_key, train_part, test_part = found
    prefix = "pts_" if head_key == "pts_bbox_head" else ""
    head_path = f"model.{head_key}"
    head = chk.mapping(model[head_key], head_path)
    head_type = _type(chk, head, head_path)
    train_cfg, train_path = _stage_cfg(chk, model, "train_cfg", train_part)
    test_cfg, test_path = _stage_cfg(chk, model, "test_cfg", test_part)
    if head_type in _REFUSED_HEADS:
        raise chk.error(join(head_path, "type"), f"{head['type']!r} is not supported: {_REFUSED_HEADS[head_type]}")
    if head_type not in SUPPORTED_HEADS:
        from assignaudit.assign.fcos import REFUSED_HEADS

        if head_type in REFUSED_HEADS:  # FCOS-like rules fcos_assign does not cover
            raise chk.error(join(head_path, "type"), f"{head_type!r} is not supported: it {REFUSED_HEADS[head_type]}")
        raise chk.error(join(head_path, "type"), f"{head['type']!r} is not supported (supported: "
                                                 f"{', '.join(SUPPORTED_HEADS)}); its train_cfg assigner is "
                                                 f"{_assigner_desc(train_cfg)}")
    kind = "anchor" if head_type in ANCHOR_HEADS else "center" if head_type in CENTER_HEADS else "query"

    ds, ds_path = _unwrap_dataset(chk, cfg)
    class_names, classes_path = _class_names(chk, cfg, ds, ds_path)
    pcr, voxel, pcr_path = _grid_and_range(chk, cfg, model, need_voxel=kind != "query")
    grid = tuple(int(round((pcr[i + 3] - pcr[i]) / voxel[i])) for i in range(3))
    augmentations, aug_paths, skipped = _pipeline(chk, ds, ds_path, class_names, pcr, pcr_path, match_height=False)

    anchors = assigner = heatmap = query = None
    anchor_paths: tuple[str, ...] = ()
    if kind == "anchor":
        anchors, assigner, anchor_paths = _anchor_head(chk, model, head, head_path, prefix, train_cfg, train_path,
                                                       class_names, pcr, voxel, grid)  # type: ignore[arg-type]
        post = _rcnn_post(chk, test_cfg, test_path) if head_key == "rpn_head" else \
            _anchor_post(chk, test_cfg, test_path)
    elif head_type in PROJECT_CENTER_HEADS:
        heatmap, post = project_center_head(chk, model, head, head_path, head_type, train_cfg, train_path, test_cfg,
                                            test_path, class_names, pcr, pcr_path, voxel)
    elif kind == "center":
        heatmap = _center_head(chk, head, head_path, train_cfg, train_path, class_names, pcr, pcr_path, voxel)
        post = _center_post(chk, test_cfg, test_path)
    elif head_type == TRANSFUSION_HEAD:
        query = _transfusion_head(chk, head, head_path, train_cfg, train_path, pcr)
        post = PostProcessing()
    else:
        query = _query_head(chk, head, head_path, train_cfg, train_path)
        post = PostProcessing()

    # nuscenes_dataset.py::_filter_with_mask: use_valid_flag keeps num_lidar_pts + num_radar_pts > 0, otherwise
    # num_lidar_pts > 0 (spec §9.2). Other datasets (KITTI, ...) have no point-count filter.
    use_valid_flag = chk.boolean(ds.get("use_valid_flag", False), join(ds_path, "use_valid_flag"))
    ds_type = str(ds.get("type", "")).rsplit(".", 1)[-1]
    nuscenes = ds_type == "NuScenesDataset"
    min_points = 1 if nuscenes and not use_valid_flag else 0
    if use_valid_flag and not nuscenes:
        raise chk.error(join(ds_path, "use_valid_flag"), f"only NuScenesDataset reads it (dataset {ds_type!r})")

    result = DetectorConfig(
        name=name,
        class_names=class_names,
        point_cloud_range=pcr,  # type: ignore[arg-type]
        voxel_size=voxel,  # type: ignore[arg-type]
        anchors=anchors,
        assigner=assigner,
        augmentations=augmentations,
        gt_filters=GTFilters(min_lidar_points=min_points, class_mapping=(), range_filter=_range_mode(ds),
                             use_valid_flag=use_valid_flag,
                             # kitti_dataset.py / waymo_dataset.py parse_ann_info -> _remove_dontcare
                             drop_other_classes=ds_type in ("KittiDataset", "WaymoDataset")),
        post_processing=post,
        source=source,
        head=kind,
        heatmap=heatmap,
        query=query,
        framework="mmdet3d",
        dataset=_dataset_spec(ds, skipped, options=(
            # WaymoDataset.load_data_list keeps data_list[::load_interval] (the "waymoD5" configs: 5)
            ("load_interval", str(chk.integer(ds["load_interval"], join(ds_path, "load_interval"), minimum=1))),
        ) if ds_type == "WaymoDataset" and "load_interval" in ds else ()),
    )
    check_consistency(result, chk, ConfigPaths(class_names=classes_path, anchors=anchor_paths,
                                               augmentations=aug_paths, class_mapping=classes_path,
                                               point_cloud_range=pcr_path, levels=join(head_path, "anchor_generator")))
    return result


def _range_mode(ds: Mapping) -> str:
    """``mmdet3d_3d`` when the pipeline filters with projects/DSVT's ``ObjectRangeFilter3D`` (``in_range_3d``: the
    bottom centre strictly inside on all three axes), else ``mmdet3d`` (``ObjectRangeFilter``, BEV)."""
    kinds = {str(s.get("type", "")).rsplit(".", 1)[-1] for s in ds.get("pipeline") or () if isinstance(s, Mapping)}
    return "mmdet3d_3d" if "ObjectRangeFilter3D" in kinds else "mmdet3d"


def _dataset_spec(ds: Mapping, skipped: tuple[str, ...] = (),
                  options: tuple[tuple[str, str], ...] = ()) -> DatasetSpec:
    """The train dataset's type, ``data_root``, ``ann_file`` and the ObjectSample ``db_sampler.info_path``."""

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    db_infos: list[str] = []
    for step in ds.get("pipeline") or ():
        if isinstance(step, Mapping) and str(step.get("type", "")).rsplit(".", 1)[-1] == "ObjectSample":
            sampler = step.get("db_sampler")
            if isinstance(sampler, Mapping) and text(sampler.get("info_path")):
                db_infos.append(sampler["info_path"])
    ann = text(ds.get("ann_file"))
    return DatasetSpec(framework="mmdet3d", dataset_type=text(str(ds.get("type", "")).rsplit(".", 1)[-1]),
                       data_path=text(ds.get("data_root")), train_infos=(ann,) if ann else (),
                       db_infos=tuple(db_infos), skipped_transforms=skipped, options=options)


def load_mmdet3d_config(path: Path, cfg_options: Sequence[str] | Mapping[str, Any] = ()) -> DetectorConfig:
    """Read ``path`` with mmengine, apply ``cfg_options`` and build the `DetectorConfig`."""
    path = Path(path)
    merged = read_mmdet3d_config(path, cfg_options)
    return mmdet3d_config_from_dict(merged, str(path), name=path.stem, source=str(path))


__all__ = ["MMENGINE_MISSING", "load_mmdet3d_config", "mmdet3d_config_from_dict", "parse_cfg_options",
           "parse_cfg_value", "read_mmdet3d_config"]
