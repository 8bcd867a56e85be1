"""assignaudit's own YAML config schema (documented in docs/config.md): raw dict <-> `DetectorConfig`.

Validation is strict: unknown keys, wrong types, wrong lengths, thresholds outside [0, 1], ``unmatched > matched``,
non-positive sizes and anchor sets for classes not in ``class_names`` are `ConfigError`s naming the key path, e.g.
``my.yaml: anchors[3].matched_threshold: expected a number, got 'high'``.

Three head families (``head:``), each with its own parameter block: ``anchor`` (``anchors`` + ``assigner``, optional
``anchor_generator``), ``center`` (``heatmap``) and ``query`` (``query``). `config_to_dict` writes every field, so
``config_from_dict(config_to_dict(cfg)) == cfg`` up to ``name``/``source``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from assignaudit.assign.params import HeatmapParams
from assignaudit.assign.params import (
    AnchorLayout, AnchorLevel, AnchorSet, AssignerParams, Framework, IouKind, QueryParams,
)
from assignaudit.augment.params import (
    AugOp, GlobalRotScaleTrans, GTSampling, LocalFrustumDropout, LocalPyramidAug, LocalRotation, LocalScaling,
    LocalTranslation, ObjectSample, RandomFlip3D, WorldFlip, WorldRotation, WorldScaling,
    WorldTranslation,
)
from assignaudit.augment.params import (
    BEVFusionGlobalRotScaleTrans, GlobalRotScaleTransImage, ObjectNoise, ObjectRangeFilter,
)
from assignaudit.config._check import Checker, join, show
from assignaudit.config.model import HEAD_KINDS, DetectorConfig, GTFilters, PostProcessing
from assignaudit.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

TOP_KEYS = ("assignaudit", "name", "class_names", "point_cloud_range", "voxel_size", "head", "framework",
            "multihead", "anchor_generator", "anchors", "assigner", "heatmap", "query", "fcos", "augmentations", "gt_filters",
            "post_processing")
ANCHOR_KEYS = ("class_name", "sizes", "rotations", "bottom_heights", "matched_threshold", "unmatched_threshold",
               "feature_map_stride", "align_center", "min_pos_iou", "anchor_range")
GENERATOR_KEYS = ("type", "align_corner", "levels")
LEVEL_KEYS = ("feature_map_stride", "scale")
ASSIGNER_KEYS = ("framework", "iou", "match_height", "nearest_convention", "min_pos_iou", "gt_max_assign_all",
                 "class_agnostic", "match_low_quality", "assign_per_class", "atss_topk", "atss_upstream_quirks")
HEATMAP_KEYS = ("variant", "feature_map_stride", "heads", "num_max_objs", "gaussian_overlap", "min_radius",
                "feature_map_size")
QUERY_KEYS = ("cost", "num_queries", "num_layers")
AUG_KEYS: dict[str, tuple[str, ...]] = {
    "gt_sampling": ("sample_groups", "min_points", "limit_whole_scene", "filter_by_difficulty"),
    "world_flip": ("axes",),
    "world_rotation": ("angle_range_rad",),
    "world_scaling": ("scale_range",),
    "world_translation": ("std_m",),
    "global_rot_scale_trans": ("rot_range_rad", "scale_range", "translation_std_m"),
    "random_flip_3d": ("flip_ratio_bev_horizontal", "flip_ratio_bev_vertical"),
    "object_sample": ("sample_groups", "min_points", "rate", "filter_by_difficulty"),
    "local_rotation": ("angle_range_rad",),
    "local_scaling": ("scale_range",),
    "local_translation": ("axes", "offset_range"),
    "local_frustum_dropout": ("directions", "intensity_range"),
    "local_pyramid_aug": ("drop_prob", "sparsify_prob", "sparsify_max_num", "swap_prob", "swap_max_num"),
    "object_noise": ("translation_std", "rot_range", "global_rot_range", "num_try"),
    "global_rot_scale_trans_image": ("rot_range_rad", "scale_range", "reverse_angle"),
    "object_range_filter": (),
    "bevfusion_global_rot_scale_trans": ("rot_range_rad", "scale_range", "translation_std_m"),
}
GT_FILTER_KEYS = ("min_lidar_points", "class_mapping", "range_filter", "use_valid_flag", "drop_classes",
                  "drop_other_classes")
POST_KEYS = ("score_thresh", "multi_classes_nms", "nms_type", "nms_thresh", "nms_pre_maxsize", "nms_post_maxsize",
             "circle_min_radius_sq", "nms_thresh_per_class", "nms_not_reproduced")

FRAMEWORKS = ("pcdet", "mmdet3d")
GENERATORS = ("pcdet", "mmdet3d", "mmdet3d_aligned", "mmdet3d_aligned_per_class")
NEAREST_CONVENTIONS = ("pcdet", "mmdet3d")
RANGE_FILTERS = ("pcdet", "mmdet3d", "mmdet3d_3d", "none")  # augment.filters.RANGE_FILTERS
NMS_TYPES = ("nms_gpu", "nms_normal_gpu", "circle")
FLIP_AXES = ("x", "y")
HEATMAP_VARIANTS = ("pcdet", "mmdet3d")
QUERY_COSTS = ("detr3d", "transfusion", "transfusion_mmdet3d", "bonet")

# The mmdet-only assigner knobs and the value that reproduces pcdet's AxisAligned (and ATSS) behaviour. Setting one
# of them to anything else under another framework would be silently ignored by the assigner, so it is an error.
_MMDET_ONLY_DEFAULTS = {"gt_max_assign_all": True, "class_agnostic": False, "match_low_quality": True,
                        "assign_per_class": True}
_ATSS_ONLY = ("atss_topk", "atss_upstream_quirks")
# The block each head family needs, and the keys that belong to the other families.
_HEAD_BLOCK = {"anchor": "anchors", "center": "heatmap", "query": "query", "fcos": "fcos"}
_ANCHOR_ONLY = ("anchors", "assigner", "anchor_generator", "multihead")


def is_our_schema(raw: Any) -> bool:
    """Auto-detection: our files carry ``assignaudit: 1`` or a top-level ``anchors`` / ``heatmap`` / ``query``."""
    return isinstance(raw, Mapping) and any(k in raw for k in ("assignaudit", "anchors", "heatmap", "query", "fcos"))


_LOGGED_HEATMAP_WARNINGS: set[str] = set()


def log_heatmap_warnings(params: HeatmapParams, origin: str | None = None) -> None:
    """Log `HeatmapParams.warnings` (head-order traps that silently move GT between heatmaps, spec §5.1 / §7), each
    message once per process: the loader and the count both call this, and the user should read it once."""
    for message in params.warnings:
        if message in _LOGGED_HEATMAP_WARNINGS:
            continue
        _LOGGED_HEATMAP_WARNINGS.add(message)
        log.warning("%s: %s", origin, message) if origin else log.warning("%s", message)


# ----------------------------------------------------------------------------------------------------------------------
# Cross-field checks shared with the OpenPCDet and mmdetection3d importers
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigPaths:
    """Where each part of a resolved config came from in its source file, for error messages."""

    class_names: str
    anchors: tuple[str, ...]  # one path per anchor set (empty for center / query heads)
    augmentations: tuple[str, ...]  # one path per replayed op
    class_mapping: str = "gt_filters.class_mapping"
    point_cloud_range: str = "point_cloud_range"
    levels: str = "anchor_generator.levels"


def _class_aware(assigner: AssignerParams) -> bool:
    """Does each anchor set belong to one class (its ``class_name`` must be a class, every class needs a set)?

    pcdet AxisAligned: yes. mmdet: only with a per-size assigner list and ``assign_per_class``. ATSS and a
    class-agnostic mmdet assigner label anchors with their matched GT's class, so a set is just a size slot.
    """
    if assigner.framework is Framework.PCDET:
        return True
    if assigner.framework is Framework.MMDET:
        return not assigner.class_agnostic and assigner.assign_per_class
    return False


def check_consistency(cfg: DetectorConfig, chk: Checker, paths: ConfigPaths) -> None:
    """Checks that need several fields at once; raises `ConfigError` naming the first offending key."""
    classes = cfg.class_names
    if len(set(classes)) != len(classes):
        dup = next(c for i, c in enumerate(classes) if c in classes[:i])
        raise chk.error(paths.class_names, f"class {dup!r} is listed twice")
    pcr = cfg.point_cloud_range
    for axis, name in enumerate("xyz"):
        if not pcr[axis] < pcr[axis + 3]:
            raise chk.error(paths.point_cloud_range,
                            f"{name}_min must be < {name}_max, got {pcr[axis]:g} >= {pcr[axis + 3]:g}")
    if cfg.anchors is not None and cfg.assigner is not None:
        _check_anchors(cfg, chk, paths)
    for op, path in zip(cfg.augmentations, paths.augmentations):
        if isinstance(op, (GTSampling, ObjectSample)):
            kind = "gt_sampling" if isinstance(op, GTSampling) else "object_sample"
            for name, _ in op.sample_groups + op.min_points:
                if name not in classes:
                    raise chk.error(path, f"{kind} class {name!r} is not in class_names ({', '.join(classes)})")
    for src, dst in cfg.gt_filters.class_mapping:
        if dst not in classes:
            raise chk.error(join(paths.class_mapping, src),
                            f"maps to {dst!r}, which is not in class_names ({', '.join(classes)})")


def _check_anchors(cfg: DetectorConfig, chk: Checker, paths: ConfigPaths) -> None:
    classes = cfg.class_names
    layout, assigner = cfg.anchors, cfg.assigner
    class_aware = _class_aware(assigner)
    grid = cfg.grid_size
    # Feature map = grid // stride (integer floor, spec §2.1). pcdet's align_center False spaces anchors by
    # range / (n - 1), so n must be at least 2 there (upstream would divide by zero); mmdet3d's linspace needs 1.
    strides = [lv.feature_map_stride for lv in layout.levels]
    for i, lv in enumerate(layout.levels):
        fmap = (grid[0] // lv.feature_map_stride, grid[1] // lv.feature_map_stride)
        if min(fmap) < 1:
            raise chk.error(join(join(paths.levels, i), "feature_map_stride"),
                            f"stride {lv.feature_map_stride} leaves a {fmap[0]} x {fmap[1]} feature map on the "
                            f"{grid[0]} x {grid[1]} voxel grid")
    seen: dict[str, int] = {}
    for i, (aset, path) in enumerate(zip(layout.anchor_sets, paths.anchors)):
        if class_aware and aset.class_name not in classes:
            raise chk.error(join(path, "class_name"),
                            f"{aset.class_name!r} is not in class_names ({', '.join(classes)})")
        if aset.class_name in seen:
            raise chk.error(join(path, "class_name"),
                            f"a second anchor set for {aset.class_name!r} (the first is entry {seen[aset.class_name]});"
                            " put several sizes in one set's sizes list instead")
        seen[aset.class_name] = i
        if aset.unmatched_threshold > aset.matched_threshold:
            raise chk.error(join(path, "unmatched_threshold"),
                            f"{aset.unmatched_threshold:g} is above matched_threshold {aset.matched_threshold:g}")
        if not strides:
            fmap = (grid[0] // aset.feature_map_stride, grid[1] // aset.feature_map_stride)
            need = 2 if layout.generator == "pcdet" and not aset.align_center else 1
            if min(fmap) < need:
                raise chk.error(join(path, "feature_map_stride"),
                                f"stride {aset.feature_map_stride} leaves a {fmap[0]} x {fmap[1]} feature map on the "
                                f"{grid[0]} x {grid[1]} voxel grid (need >= {need} cells per axis)")
        if aset.anchor_range is not None:
            r = aset.anchor_range
            if not (r[0] < r[3] and r[1] < r[4] and r[2] <= r[5]):
                raise chk.error(join(path, "anchor_range"), f"expected x_min < x_max, y_min < y_max and "
                                                            f"z_min <= z_max, got {list(r)}")
    if class_aware:
        missing = [c for c in classes if c not in seen]
        if missing:
            raise chk.error(paths.class_names,
                            f"class {missing[0]!r} has no anchor set; a class-aware assigner would give its GT no "
                            "positives (add an anchor set or remove the class)")


# ----------------------------------------------------------------------------------------------------------------------
# raw dict -> DetectorConfig
# ----------------------------------------------------------------------------------------------------------------------


def config_from_dict(raw: Any, origin: str, *, default_name: str, source: str) -> DetectorConfig:
    """Validate a parsed YAML document in our schema and build the frozen `DetectorConfig`.

    ``origin`` prefixes error messages (a file path or ``preset <name>``); ``default_name`` is used when the file has
    no ``name``; ``source`` is stored in `DetectorConfig.source`. Does not modify ``raw``.
    """
    chk = Checker(origin)
    top = chk.mapping(raw, "")
    chk.no_unknown_keys(top, "", TOP_KEYS)
    if "assignaudit" in top and (isinstance(top["assignaudit"], bool) or top["assignaudit"] != SCHEMA_VERSION):
        raise chk.error("assignaudit", f"unsupported schema version {show(top['assignaudit'])} "
                                       f"(this assignaudit reads version {SCHEMA_VERSION})")
    name = chk.string(top["name"], "name") if "name" in top else default_name

    class_names = tuple(chk.string(c, join("class_names", i))
                        for i, c in enumerate(chk.sequence(chk.required(top, "class_names", ""), "class_names",
                                                           min_length=1)))
    pcr = chk.numbers(chk.required(top, "point_cloud_range", ""), "point_cloud_range", length=6)
    voxel = chk.numbers(chk.required(top, "voxel_size", ""), "voxel_size", length=3, positive=True)

    # head: explicit, or implied by the one parameter block present (anchor when none).
    implied = "center" if "heatmap" in top else "query" if "query" in top else "fcos" if "fcos" in top else "anchor"
    head = chk.choice(top.get("head", implied), "head", HEAD_KINDS)
    block = _HEAD_BLOCK[head]
    if block not in top:
        raise chk.error(block, f"missing required key (head: {head} needs a {block} section)")
    others = [k for k in (*_ANCHOR_ONLY, "heatmap", "query", "fcos") if k in top and k not in
              ((*_ANCHOR_ONLY,) if head == "anchor" else (block,))]
    if others:
        raise chk.error(others[0], f"does not apply to head: {head} (it belongs to another head family)")
    framework = chk.choice(top["framework"], "framework", FRAMEWORKS) if "framework" in top else None

    anchors = assigner = heatmap = query = fcos = None
    anchor_paths: tuple[str, ...] = ()
    if head == "fcos":  # FCOS-style point head (assign/fcos.py parses and validates its block)
        from assignaudit.assign.fcos import fcos_params_from_dict

        fcos = fcos_params_from_dict(chk, top["fcos"], "fcos", pcr, voxel)
        framework = framework or "mmdet3d"
    elif head == "anchor":
        assigner = _assigner(chk, top.get("assigner", {}), "assigner")
        generator, align_corner, levels = _anchor_generator(chk, top.get("anchor_generator", {}), "anchor_generator")
        multihead = chk.boolean(top["multihead"], "multihead") if "multihead" in top else AnchorLayout.multihead
        raw_anchors = chk.sequence(chk.required(top, "anchors", ""), "anchors", min_length=1)
        anchor_paths = tuple(join("anchors", i) for i in range(len(raw_anchors)))
        anchor_sets = tuple(_anchor_set(chk, a, p, assigner.framework, generator)
                            for a, p in zip(raw_anchors, anchor_paths))
        anchors = AnchorLayout(point_cloud_range=pcr, voxel_size=voxel, anchor_sets=anchor_sets,  # type: ignore
                               multihead=multihead, generator=generator, align_corner=align_corner, levels=levels)
        if framework is None:
            framework = "mmdet3d" if assigner.framework is Framework.MMDET else "pcdet"
    elif head == "center":
        heatmap = _heatmap(chk, top["heatmap"], "heatmap", class_names, pcr, voxel, framework)  # type: ignore
        log_heatmap_warnings(heatmap, origin)
        # The variant decides the semantics (spec §5 vs §7); a `framework` saying otherwise would label the reports
        # with the wrong framework, so the two must agree.
        if framework is not None and framework != heatmap.variant:
            raise chk.error(join("heatmap", "variant"), f"{heatmap.variant!r} contradicts framework: {framework} "
                                                        "(the variant decides the CenterHead semantics; set both, "
                                                        "or drop framework)")
        framework = framework or heatmap.variant
    else:
        query = _query(chk, top["query"], "query")
        framework = framework or ("mmdet3d" if query.cost in ("detr3d", "transfusion_mmdet3d") else "pcdet")

    raw_augs = chk.sequence(top.get("augmentations", []), "augmentations")
    aug_paths = tuple(join("augmentations", i) for i in range(len(raw_augs)))
    augmentations = tuple(_aug_op(chk, a, p) for a, p in zip(raw_augs, aug_paths))

    cfg = DetectorConfig(
        name=name,
        class_names=class_names,
        point_cloud_range=pcr,  # type: ignore[arg-type]
        voxel_size=voxel,  # type: ignore[arg-type]
        anchors=anchors,
        assigner=assigner,
        augmentations=augmentations,
        gt_filters=_gt_filters(chk, top.get("gt_filters", {}), "gt_filters"),
        post_processing=_post_processing(chk, top.get("post_processing", {}), "post_processing"),
        source=source,
        head=head,
        heatmap=heatmap,
        query=query,
        framework=framework,
        fcos=fcos,
    )
    check_consistency(cfg, chk, ConfigPaths(class_names="class_names", anchors=anchor_paths,
                                            augmentations=aug_paths))
    return cfg


def _assigner(chk: Checker, raw: Any, path: str) -> AssignerParams:
    sec = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, ASSIGNER_KEYS)
    framework = Framework(chk.choice(sec.get("framework", "pcdet"), join(path, "framework"),
                                     [f.value for f in Framework]))
    atss = framework is Framework.ATSS
    iou = IouKind(chk.choice(sec["iou"], join(path, "iou"), [k.value for k in IouKind])) if "iou" in sec else None
    if "match_height" in sec:
        # OpenPCDet's spelling: MATCH_HEIGHT True = 3D IoU, False = nearest-BEV IoU (AxisAligned) or the rotated BEV
        # IoU (ATSS uses boxes_iou_bev, spec §4).
        flat = IouKind.BEV if atss else IouKind.NEAREST_BEV
        from_flag = IouKind.IOU_3D if chk.boolean(sec["match_height"], join(path, "match_height")) else flat
        if iou is not None and iou is not from_flag:
            raise chk.error(join(path, "match_height"), f"contradicts iou: {iou.value} (match_height true means "
                                                        f"iou 3d, false means iou {flat.value}); set only one")
        iou = from_flag
    if atss and iou is IouKind.NEAREST_BEV:
        raise chk.error(join(path, "iou"), "ATSS uses the rotated BEV IoU (bev) or, with MATCH_HEIGHT, 3d; "
                                           "nearest_bev is the AxisAligned / MaxIoU IoU")
    default_convention = "mmdet3d" if framework is Framework.MMDET else "pcdet"
    params: dict[str, Any] = {
        "framework": framework,
        "iou": iou or (IouKind.BEV if atss else IouKind.NEAREST_BEV),
        "nearest_convention": chk.choice(sec.get("nearest_convention", default_convention),
                                         join(path, "nearest_convention"), NEAREST_CONVENTIONS),
    }
    mmdet = framework is Framework.MMDET
    if "min_pos_iou" in sec:
        if not mmdet:
            raise chk.error(join(path, "min_pos_iou"), f"only applies to framework mmdet (the {framework.value} "
                                                       "assigner has no min_pos_iou)")
        params["min_pos_iou"] = chk.fraction(sec["min_pos_iou"], join(path, "min_pos_iou"))
    for key, pcdet_value in _MMDET_ONLY_DEFAULTS.items():
        if key in sec:
            value = chk.boolean(sec[key], join(path, key))
            if not mmdet and value != pcdet_value:
                raise chk.error(join(path, key), f"only applies to framework mmdet ({framework.value} always behaves "
                                                 f"as {str(pcdet_value).lower()})")
            params[key] = value
    for key in _ATSS_ONLY:
        if key in sec and not atss:
            raise chk.error(join(path, key), "only applies to framework atss")
    if atss:
        params["atss_topk"] = chk.integer(sec.get("atss_topk", AssignerParams.atss_topk), join(path, "atss_topk"),
                                          minimum=1)
        params["atss_upstream_quirks"] = chk.boolean(sec.get("atss_upstream_quirks", False),
                                                     join(path, "atss_upstream_quirks"))
    return AssignerParams(**params)


def _anchor_generator(chk: Checker, raw: Any, path: str) -> tuple[str, bool, tuple[AnchorLevel, ...]]:
    sec = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, GENERATOR_KEYS)
    kind = chk.choice(sec.get("type", AnchorLayout.generator), join(path, "type"), GENERATORS)
    align_corner = chk.boolean(sec.get("align_corner", False), join(path, "align_corner"))
    if align_corner and kind not in ("mmdet3d_aligned", "mmdet3d_aligned_per_class"):
        raise chk.error(join(path, "align_corner"), "only applies to type mmdet3d_aligned")
    levels_path = join(path, "levels")
    levels = []
    for i, lv in enumerate(chk.sequence(sec.get("levels", []), levels_path)):
        lv_path = join(levels_path, i)
        lv = chk.mapping(lv, lv_path)
        chk.no_unknown_keys(lv, lv_path, LEVEL_KEYS)
        levels.append(AnchorLevel(
            feature_map_stride=chk.integer(chk.required(lv, "feature_map_stride", lv_path),
                                           join(lv_path, "feature_map_stride"), minimum=1),
            scale=chk.number(lv.get("scale", 1.0), join(lv_path, "scale"), positive=True)))
    if levels and kind == "pcdet":
        raise chk.error(levels_path, "FPN levels are an mmdet3d generator feature (type mmdet3d or mmdet3d_aligned)")
    return kind, align_corner, tuple(levels)


def _anchor_set(chk: Checker, raw: Any, path: str, framework: Framework, generator: str) -> AnchorSet:
    sec = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, ANCHOR_KEYS)
    sizes_path = join(path, "sizes")
    sizes = tuple(chk.numbers(s, join(sizes_path, i), length=3, positive=True)
                  for i, s in enumerate(chk.sequence(chk.required(sec, "sizes", path), sizes_path, min_length=1)))
    min_pos_iou = None
    if sec.get("min_pos_iou") is not None:
        if framework is not Framework.MMDET:
            raise chk.error(join(path, "min_pos_iou"), f"only applies to framework mmdet (the {framework.value} "
                                                       "assigner has no min_pos_iou)")
        min_pos_iou = chk.fraction(sec["min_pos_iou"], join(path, "min_pos_iou"))
    anchor_range = None
    if sec.get("anchor_range") is not None:
        if generator == "pcdet":
            raise chk.error(join(path, "anchor_range"), "only applies to the mmdet3d anchor generators (pcdet "
                                                        "anchors span point_cloud_range)")
        anchor_range = chk.numbers(sec["anchor_range"], join(path, "anchor_range"), length=6)
    if "bottom_heights" in sec or anchor_range is None:
        bottom = chk.numbers(chk.required(sec, "bottom_heights", path), join(path, "bottom_heights"), min_length=1)
        if anchor_range is not None and bottom != (anchor_range[2],):
            raise chk.error(join(path, "bottom_heights"),
                            f"{list(bottom)} disagrees with anchor_range z_min {anchor_range[2]:g} (mmdet3d anchors "
                            "sit at their range's z_min); give only anchor_range")
    else:  # mmdet3d: one z, the range's z_min (linspace(z_min, z_max, 1), spec §6.4)
        bottom = (anchor_range[2],)
    return AnchorSet(
        class_name=chk.string(chk.required(sec, "class_name", path), join(path, "class_name")),
        sizes=sizes,  # type: ignore[arg-type]
        rotations=chk.numbers(chk.required(sec, "rotations", path), join(path, "rotations"), min_length=1),
        bottom_heights=bottom,
        matched_threshold=chk.fraction(chk.required(sec, "matched_threshold", path), join(path, "matched_threshold")),
        unmatched_threshold=chk.fraction(chk.required(sec, "unmatched_threshold", path),
                                         join(path, "unmatched_threshold")),
        feature_map_stride=chk.integer(sec.get("feature_map_stride", 1), join(path, "feature_map_stride"),
                                       minimum=1),
        align_center=chk.boolean(sec.get("align_center", False), join(path, "align_center")),
        min_pos_iou=min_pos_iou,
        anchor_range=anchor_range,  # type: ignore[arg-type]
    )


def build_heatmap_params(chk: Checker, path: str, *, heads: Any, class_names: tuple[str, ...],
                         point_cloud_range: tuple[float, ...], voxel_size: tuple[float, ...], variant: str,
                         **kwargs: Any) -> HeatmapParams:
    """Validate the head/class lists with key paths, then build `HeatmapParams` (its own errors get ``path``).

    ``heads``: the raw list of class lists (pcdet ``CLASS_NAMES_EACH_HEAD``, mmdet3d ``tasks[*].class_names``).
    pcdet drops head classes that are not in CLASS_NAMES (``center_head.py __init__``); mmdet3d keeps every task
    class, so there each must be a class.
    """
    heads_path = join(path, "heads")
    out = []
    for i, h in enumerate(chk.sequence(heads, heads_path, min_length=1)):
        names = chk.sequence(h, join(heads_path, i), min_length=1)
        out.append(tuple(chk.string(n, join(join(heads_path, i), j)) for j, n in enumerate(names)))
        if variant == "mmdet3d":
            for j, n in enumerate(out[-1]):
                if n not in class_names:
                    raise chk.error(join(join(heads_path, i), j), f"{n!r} is not in class_names "
                                                                  f"({', '.join(class_names)})")
    covered = {n for h in out for n in h}
    missing = [c for c in class_names if c not in covered]
    if missing:
        raise chk.error(heads_path, f"class {missing[0]!r} of class_names is in no head (upstream asserts that the "
                                    "heads cover every class)")
    try:
        return HeatmapParams(point_cloud_range=tuple(point_cloud_range), voxel_size=tuple(voxel_size),  # type: ignore
                             heads=tuple(out), class_names=tuple(class_names), variant=variant,  # type: ignore
                             **kwargs)
    except ConfigError as err:
        raise chk.error(path, str(err)) from None


def _heatmap(chk: Checker, raw: Any, path: str, class_names: tuple[str, ...], pcr: tuple[float, ...],
             voxel: tuple[float, ...], framework: str | None) -> HeatmapParams:
    sec = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, HEATMAP_KEYS)
    variant = chk.choice(sec.get("variant", framework or "pcdet"), join(path, "variant"), HEATMAP_VARIANTS)
    fmap = None
    if sec.get("feature_map_size") is not None:
        fmap_path = join(path, "feature_map_size")
        fmap = tuple(chk.integer(v, join(fmap_path, i), minimum=1)
                     for i, v in enumerate(chk.sequence(sec["feature_map_size"], fmap_path, length=2)))
    d = HeatmapParams
    return build_heatmap_params(
        chk, path, heads=chk.required(sec, "heads", path), class_names=class_names, point_cloud_range=pcr,
        voxel_size=voxel, variant=variant,
        feature_map_stride=chk.integer(chk.required(sec, "feature_map_stride", path),
                                       join(path, "feature_map_stride"), minimum=1),
        num_max_objs=chk.integer(sec.get("num_max_objs", d.num_max_objs), join(path, "num_max_objs"), minimum=0),
        gaussian_overlap=chk.number(sec.get("gaussian_overlap", d.gaussian_overlap), join(path, "gaussian_overlap"),
                                    lo=0.0, hi=1.0),
        min_radius=chk.integer(sec.get("min_radius", d.min_radius), join(path, "min_radius"), minimum=0),
        feature_map_size=fmap,
    )


def _query(chk: Checker, raw: Any, path: str) -> QueryParams:
    sec = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, QUERY_KEYS)
    d = QueryParams
    return QueryParams(
        cost=chk.choice(sec.get("cost", d.cost), join(path, "cost"), QUERY_COSTS),
        num_queries=chk.integer(sec.get("num_queries", d.num_queries), join(path, "num_queries"), minimum=1),
        num_layers=chk.integer(sec.get("num_layers", d.num_layers), join(path, "num_layers"), minimum=1),
    )


def _std3(chk: Checker, value: Any, path: str) -> tuple[float, float, float]:
    std = chk.numbers(value, path, length=3)
    for i, s in enumerate(std):
        if s < 0:
            raise chk.error(join(path, i), f"a standard deviation cannot be negative, got {s:g}")
    return std  # type: ignore[return-value]


def _aug_op(chk: Checker, raw: Any, path: str) -> AugOp:
    sec = chk.mapping(raw, path)
    kind = chk.choice(chk.required(sec, "type", path), join(path, "type"), AUG_KEYS)
    chk.no_unknown_keys(sec, path, ("type",) + AUG_KEYS[kind])
    if kind in ("gt_sampling", "object_sample"):
        groups = chk.class_count_map(chk.required(sec, "sample_groups", path), join(path, "sample_groups"), minimum=0)
        min_points = chk.class_count_map(sec.get("min_points", {}), join(path, "min_points"), minimum=0)
        diff_path = join(path, "filter_by_difficulty")
        difficulty = tuple(chk.integer(v, join(diff_path, i)) for i, v in
                           enumerate(chk.sequence(sec.get("filter_by_difficulty", []), diff_path)))
        if kind == "gt_sampling":
            return GTSampling(sample_groups=groups, min_points=min_points,
                              limit_whole_scene=chk.boolean(sec.get("limit_whole_scene", True),
                                                            join(path, "limit_whole_scene")),
                              filter_by_difficulty=difficulty)
        return ObjectSample(sample_groups=groups, min_points=min_points,
                            rate=chk.number(sec.get("rate", ObjectSample.rate), join(path, "rate"), lo=0.0),
                            filter_by_difficulty=difficulty)
    if kind.startswith("local_"):
        return _local_aug_op(chk, sec, path, kind)
    if kind == "world_flip":
        axes_path = join(path, "axes")
        axes = chk.sequence(chk.required(sec, "axes", path), axes_path)
        return WorldFlip(axes=tuple(chk.choice(a, join(axes_path, i), FLIP_AXES) for i, a in enumerate(axes)))
    if kind == "world_rotation":
        return WorldRotation(angle_range_rad=chk.range_pair(chk.required(sec, "angle_range_rad", path),
                                                            join(path, "angle_range_rad"), symmetric_scalar=True))
    if kind == "world_scaling":
        return WorldScaling(scale_range=chk.range_pair(chk.required(sec, "scale_range", path),
                                                       join(path, "scale_range"), positive=True))
    if kind == "world_translation":
        return WorldTranslation(std_m=_std3(chk, chk.required(sec, "std_m", path), join(path, "std_m")))
    if kind in ("global_rot_scale_trans", "bevfusion_global_rot_scale_trans"):
        d = GlobalRotScaleTrans()
        return (GlobalRotScaleTrans if kind == "global_rot_scale_trans" else BEVFusionGlobalRotScaleTrans)(
            rot_range_rad=chk.range_pair(sec.get("rot_range_rad", list(d.rot_range_rad)), join(path, "rot_range_rad"),
                                         symmetric_scalar=True),
            scale_range=chk.range_pair(sec.get("scale_range", list(d.scale_range)), join(path, "scale_range"),
                                       positive=True),
            translation_std_m=_std3(chk, sec.get("translation_std_m", list(d.translation_std_m)),
                                    join(path, "translation_std_m")),
        )
    if kind == "object_range_filter":
        return ObjectRangeFilter()
    if kind == "global_rot_scale_trans_image":
        g = GlobalRotScaleTransImage()
        return GlobalRotScaleTransImage(
            rot_range_rad=chk.range_pair(sec.get("rot_range_rad", list(g.rot_range_rad)), join(path, "rot_range_rad")),
            scale_range=chk.range_pair(sec.get("scale_range", list(g.scale_range)), join(path, "scale_range"),
                                       positive=True),
            reverse_angle=chk.boolean(sec.get("reverse_angle", False), join(path, "reverse_angle")),
        )
    if kind == "object_noise":
        n = ObjectNoise()
        return ObjectNoise(
            translation_std=_std3(chk, sec.get("translation_std", list(n.translation_std)),
                                  join(path, "translation_std")),
            rot_range=chk.range_pair(sec.get("rot_range", list(n.rot_range)), join(path, "rot_range"),
                                     symmetric_scalar=True),
            global_rot_range=chk.range_pair(sec.get("global_rot_range", list(n.global_rot_range)),
                                            join(path, "global_rot_range"), symmetric_scalar=True),
            num_try=chk.integer(sec.get("num_try", n.num_try), join(path, "num_try"), minimum=1),
        )
    f = RandomFlip3D()
    return RandomFlip3D(
        flip_ratio_bev_horizontal=chk.fraction(sec.get("flip_ratio_bev_horizontal", f.flip_ratio_bev_horizontal),
                                               join(path, "flip_ratio_bev_horizontal")),
        flip_ratio_bev_vertical=chk.fraction(sec.get("flip_ratio_bev_vertical", f.flip_ratio_bev_vertical),
                                             join(path, "flip_ratio_bev_vertical")),
    )


def _local_aug_op(chk: Checker, sec: Mapping[str, Any], path: str, kind: str) -> AugOp:
    """OpenPCDet's per-object ops (assignaudit.augment.local); every key is required."""
    def req(key: str) -> Any:
        return chk.required(sec, key, path)

    if kind == "local_rotation":
        return LocalRotation(angle_range_rad=chk.range_pair(req("angle_range_rad"), join(path, "angle_range_rad"),
                                                            symmetric_scalar=True))
    if kind == "local_scaling":
        return LocalScaling(scale_range=chk.range_pair(req("scale_range"), join(path, "scale_range"), positive=True))
    if kind == "local_translation":
        axes = chk.sequence(req("axes"), join(path, "axes"))
        return LocalTranslation(axes=tuple(chk.choice(a, join(join(path, "axes"), i), ("x", "y", "z"))
                                           for i, a in enumerate(axes)),
                                offset_range=chk.range_pair(req("offset_range"), join(path, "offset_range")))
    if kind == "local_frustum_dropout":
        dirs = chk.sequence(req("directions"), join(path, "directions"))
        return LocalFrustumDropout(
            directions=tuple(chk.choice(d, join(join(path, "directions"), i), ("top", "bottom", "left", "right"))
                             for i, d in enumerate(dirs)),
            intensity_range=chk.range_pair(req("intensity_range"), join(path, "intensity_range")))
    return LocalPyramidAug(
        drop_prob=chk.fraction(req("drop_prob"), join(path, "drop_prob")),
        sparsify_prob=chk.fraction(req("sparsify_prob"), join(path, "sparsify_prob")),
        sparsify_max_num=chk.integer(req("sparsify_max_num"), join(path, "sparsify_max_num"), minimum=0),
        swap_prob=chk.fraction(req("swap_prob"), join(path, "swap_prob")),
        swap_max_num=chk.integer(req("swap_max_num"), join(path, "swap_max_num"), minimum=0))


def _gt_filters(chk: Checker, raw: Any, path: str) -> GTFilters:
    sec = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, GT_FILTER_KEYS)
    mapping_path = join(path, "class_mapping")
    mapping = chk.mapping(sec.get("class_mapping", {}), mapping_path)
    return GTFilters(
        min_lidar_points=chk.integer(sec.get("min_lidar_points", GTFilters.min_lidar_points),
                                     join(path, "min_lidar_points"), minimum=0),
        class_mapping=tuple((chk.string(k, join(mapping_path, str(k))), chk.string(v, join(mapping_path, str(k))))
                            for k, v in mapping.items()),
        range_filter=chk.choice(sec.get("range_filter", GTFilters.range_filter), join(path, "range_filter"),
                                RANGE_FILTERS),
        use_valid_flag=chk.boolean(sec.get("use_valid_flag", False), join(path, "use_valid_flag")),
        drop_classes=tuple(chk.string(c, join(join(path, "drop_classes"), i)) for i, c in enumerate(
            chk.sequence(sec.get("drop_classes", []), join(path, "drop_classes")))),
        drop_other_classes=chk.boolean(sec.get("drop_other_classes", False), join(path, "drop_other_classes")),
    )


def _optional_int(chk: Checker, sec: Mapping[str, Any], key: str, path: str, default: int | None) -> int | None:
    value = sec.get(key, default)
    return None if value is None else chk.integer(value, join(path, key), minimum=1)


def _post_processing(chk: Checker, raw: Any, path: str) -> PostProcessing:
    sec = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, POST_KEYS)
    d = PostProcessing()
    radii_path = join(path, "circle_min_radius_sq")
    radii = chk.numbers(sec.get("circle_min_radius_sq", []), radii_path)
    for i, r in enumerate(radii):
        if r < 0:
            raise chk.error(join(radii_path, i), f"a squared radius cannot be negative, got {r:g}")
    return PostProcessing(
        score_thresh=chk.fraction(sec.get("score_thresh", d.score_thresh), join(path, "score_thresh")),
        multi_classes_nms=chk.boolean(sec.get("multi_classes_nms", d.multi_classes_nms),
                                      join(path, "multi_classes_nms")),
        nms_type=chk.choice(sec.get("nms_type", d.nms_type), join(path, "nms_type"), NMS_TYPES),
        nms_thresh=chk.fraction(sec.get("nms_thresh", d.nms_thresh), join(path, "nms_thresh")),
        nms_pre_maxsize=_optional_int(chk, sec, "nms_pre_maxsize", path, d.nms_pre_maxsize),
        nms_post_maxsize=_optional_int(chk, sec, "nms_post_maxsize", path, d.nms_post_maxsize),
        circle_min_radius_sq=radii,
        nms_thresh_per_class=tuple(chk.fraction(v, join(join(path, "nms_thresh_per_class"), i)) for i, v in enumerate(
            chk.sequence(sec.get("nms_thresh_per_class", []), join(path, "nms_thresh_per_class")))),
        nms_not_reproduced=chk.string(sec["nms_not_reproduced"], join(path, "nms_not_reproduced"))
        if "nms_not_reproduced" in sec else "",
    )


# ----------------------------------------------------------------------------------------------------------------------
# DetectorConfig -> raw dict (our schema; what `config show --yaml` prints, loadable again)
# ----------------------------------------------------------------------------------------------------------------------


def _aug_to_dict(op: AugOp) -> dict[str, Any]:
    if isinstance(op, GTSampling):
        return {"type": "gt_sampling", "sample_groups": dict(op.sample_groups), "min_points": dict(op.min_points),
                "limit_whole_scene": op.limit_whole_scene, "filter_by_difficulty": list(op.filter_by_difficulty)}
    if isinstance(op, ObjectSample):
        return {"type": "object_sample", "sample_groups": dict(op.sample_groups), "min_points": dict(op.min_points),
                "rate": op.rate, "filter_by_difficulty": list(op.filter_by_difficulty)}
    if isinstance(op, WorldFlip):
        return {"type": "world_flip", "axes": list(op.axes)}
    if isinstance(op, WorldRotation):
        return {"type": "world_rotation", "angle_range_rad": list(op.angle_range_rad)}
    if isinstance(op, WorldScaling):
        return {"type": "world_scaling", "scale_range": list(op.scale_range)}
    if isinstance(op, WorldTranslation):
        return {"type": "world_translation", "std_m": list(op.std_m)}
    if isinstance(op, GlobalRotScaleTrans):
        return {"type": "bevfusion_global_rot_scale_trans" if isinstance(op, BEVFusionGlobalRotScaleTrans)
                else "global_rot_scale_trans", "rot_range_rad": list(op.rot_range_rad),
                "scale_range": list(op.scale_range), "translation_std_m": list(op.translation_std_m)}
    if isinstance(op, RandomFlip3D):
        return {"type": "random_flip_3d", "flip_ratio_bev_horizontal": op.flip_ratio_bev_horizontal,
                "flip_ratio_bev_vertical": op.flip_ratio_bev_vertical}
    if isinstance(op, LocalRotation):
        return {"type": "local_rotation", "angle_range_rad": list(op.angle_range_rad)}
    if isinstance(op, LocalScaling):
        return {"type": "local_scaling", "scale_range": list(op.scale_range)}
    if isinstance(op, LocalTranslation):
        return {"type": "local_translation", "axes": list(op.axes), "offset_range": list(op.offset_range)}
    if isinstance(op, LocalFrustumDropout):
        return {"type": "local_frustum_dropout", "directions": list(op.directions),
                "intensity_range": list(op.intensity_range)}
    if isinstance(op, LocalPyramidAug):
        return {"type": "local_pyramid_aug", "drop_prob": op.drop_prob, "sparsify_prob": op.sparsify_prob,
                "sparsify_max_num": op.sparsify_max_num, "swap_prob": op.swap_prob, "swap_max_num": op.swap_max_num}
    if isinstance(op, ObjectRangeFilter):
        return {"type": "object_range_filter"}
    if isinstance(op, GlobalRotScaleTransImage):
        return {"type": "global_rot_scale_trans_image", "rot_range_rad": list(op.rot_range_rad),
                "scale_range": list(op.scale_range), "reverse_angle": op.reverse_angle}
    if isinstance(op, ObjectNoise):
        return {"type": "object_noise", "translation_std": list(op.translation_std), "rot_range": list(op.rot_range),
                "global_rot_range": list(op.global_rot_range), "num_try": op.num_try}
    raise TypeError(f"unknown augmentation {op!r}")  # pragma: no cover - AugOp is a closed union


def _anchor_part(cfg: DetectorConfig) -> dict[str, Any]:
    layout, p = cfg.anchors, cfg.assigner
    anchors = []
    for a in layout.anchor_sets:
        entry: dict[str, Any] = {
            "class_name": a.class_name, "sizes": [list(s) for s in a.sizes], "rotations": list(a.rotations),
            "bottom_heights": list(a.bottom_heights), "matched_threshold": a.matched_threshold,
            "unmatched_threshold": a.unmatched_threshold, "feature_map_stride": a.feature_map_stride,
            "align_center": a.align_center,
        }
        if a.min_pos_iou is not None:
            entry["min_pos_iou"] = a.min_pos_iou
        if a.anchor_range is not None:
            entry["anchor_range"] = list(a.anchor_range)
        anchors.append(entry)
    assigner: dict[str, Any] = {"framework": p.framework.value, "iou": p.iou.value,
                                "nearest_convention": p.nearest_convention}
    if p.framework is Framework.MMDET:
        assigner.update(min_pos_iou=p.min_pos_iou, gt_max_assign_all=p.gt_max_assign_all,
                        class_agnostic=p.class_agnostic, match_low_quality=p.match_low_quality,
                        assign_per_class=p.assign_per_class)
    elif p.framework is Framework.ATSS:
        assigner.update(atss_topk=p.atss_topk, atss_upstream_quirks=p.atss_upstream_quirks)
    out: dict[str, Any] = {"multihead": layout.multihead}
    if layout.generator != "pcdet" or layout.levels:
        gen: dict[str, Any] = {"type": layout.generator}
        if layout.generator in ("mmdet3d_aligned", "mmdet3d_aligned_per_class"):
            gen["align_corner"] = layout.align_corner
        if layout.levels:
            gen["levels"] = [{"feature_map_stride": lv.feature_map_stride, "scale": lv.scale} for lv in layout.levels]
        out["anchor_generator"] = gen
    out.update(anchors=anchors, assigner=assigner)
    return out


def config_to_dict(cfg: DetectorConfig) -> dict[str, Any]:
    """The config in our YAML schema: ``config_from_dict(config_to_dict(cfg), ...) == cfg`` up to name/source."""
    g, pp = cfg.gt_filters, cfg.post_processing
    out: dict[str, Any] = {
        "assignaudit": SCHEMA_VERSION,
        "name": cfg.name,
        "class_names": list(cfg.class_names),
        "point_cloud_range": list(cfg.point_cloud_range),
        "voxel_size": list(cfg.voxel_size),
        "head": cfg.head,
        "framework": cfg.framework,
    }
    if cfg.head == "anchor":
        out.update(_anchor_part(cfg))
    elif cfg.head == "fcos":
        out["fcos"] = cfg.fcos.to_dict()
    elif cfg.head == "center":
        h = cfg.heatmap
        out["heatmap"] = {
            "variant": h.variant, "feature_map_stride": h.feature_map_stride, "heads": [list(x) for x in h.heads],
            "num_max_objs": h.num_max_objs, "gaussian_overlap": h.gaussian_overlap, "min_radius": h.min_radius,
            "feature_map_size": None if h.feature_map_size is None else list(h.feature_map_size),
        }
    else:
        q = cfg.query
        out["query"] = {"cost": q.cost, "num_queries": q.num_queries, "num_layers": q.num_layers}
    out.update({
        "augmentations": [_aug_to_dict(op) for op in cfg.augmentations],
        "gt_filters": {"min_lidar_points": g.min_lidar_points, "class_mapping": dict(g.class_mapping),
                       "range_filter": g.range_filter, "use_valid_flag": g.use_valid_flag,
                       "drop_classes": list(g.drop_classes), "drop_other_classes": g.drop_other_classes},
        "post_processing": {
            "score_thresh": pp.score_thresh, "multi_classes_nms": pp.multi_classes_nms, "nms_type": pp.nms_type,
            "nms_thresh": pp.nms_thresh, "nms_pre_maxsize": pp.nms_pre_maxsize,
            "nms_post_maxsize": pp.nms_post_maxsize, "circle_min_radius_sq": list(pp.circle_min_radius_sq),
            **({"nms_thresh_per_class": list(pp.nms_thresh_per_class)} if pp.nms_thresh_per_class else {}),
            **({"nms_not_reproduced": pp.nms_not_reproduced} if pp.nms_not_reproduced else {}),
        },
    })
    return out
