"""assignaudit's own YAML config schema (documented in docs/config.md): raw dict <-> `DetectorConfig`.

Validation is strict: unknown keys, wrong types, wrong lengths, thresholds outside [0, 1], ``unmatched > matched``,
non-positive sizes and anchor sets for classes not in ``class_names`` are `ConfigError`s naming the key path, e.g.
``my.yaml: anchors[3].matched_threshold: expected a number, got 'high'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from assignaudit.assign.params import AnchorLayout, AnchorSet, AssignerParams, Framework, IouKind
from assignaudit.augment.params import AugOp, GTSampling, WorldFlip, WorldRotation, WorldScaling, WorldTranslation
from assignaudit.config._check import Checker, join, show
from assignaudit.config.model import DetectorConfig, GTFilters, PostProcessing

SCHEMA_VERSION = 1

TOP_KEYS = ("assignaudit", "name", "class_names", "point_cloud_range", "voxel_size", "multihead", "anchors",
            "assigner", "augmentations", "gt_filters", "post_processing")
ANCHOR_KEYS = ("class_name", "sizes", "rotations", "bottom_heights", "matched_threshold", "unmatched_threshold",
               "feature_map_stride", "align_center", "min_pos_iou")
ASSIGNER_KEYS = ("framework", "iou", "match_height", "nearest_convention", "min_pos_iou", "gt_max_assign_all",
                 "class_agnostic", "match_low_quality")
AUG_KEYS: dict[str, tuple[str, ...]] = {
    "gt_sampling": ("sample_groups", "min_points", "limit_whole_scene"),
    "world_flip": ("axes",),
    "world_rotation": ("angle_range_rad",),
    "world_scaling": ("scale_range",),
    "world_translation": ("std_m",),
}
GT_FILTER_KEYS = ("min_lidar_points", "class_mapping", "range_filter")
POST_KEYS = ("score_thresh", "multi_classes_nms", "nms_type", "nms_thresh", "nms_pre_maxsize", "nms_post_maxsize",
             "circle_min_radius_sq")

NEAREST_CONVENTIONS = ("pcdet", "mmdet3d")
RANGE_FILTERS = ("pcdet", "mmdet3d")
NMS_TYPES = ("nms_gpu", "nms_normal_gpu", "circle")
FLIP_AXES = ("x", "y")

# The mmdet-only assigner knobs and the value that reproduces pcdet's AxisAlignedTargetAssigner. Setting one of
# them to anything else under framework pcdet would be silently ignored by the assigner, so it is an error instead.
_MMDET_ONLY_DEFAULTS = {"gt_max_assign_all": True, "class_agnostic": False, "match_low_quality": True}


def is_our_schema(raw: Any) -> bool:
    """Auto-detection: our files carry ``assignaudit: 1`` or a top-level ``anchors`` list."""
    return isinstance(raw, Mapping) and ("assignaudit" in raw or "anchors" in raw)


# ----------------------------------------------------------------------------------------------------------------------
# Cross-field checks shared with the OpenPCDet importer
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigPaths:
    """Where each part of a resolved config came from in its source file, for error messages."""

    class_names: str
    anchors: tuple[str, ...]  # one path per anchor set
    augmentations: tuple[str, ...]  # one path per replayed op
    class_mapping: str = "gt_filters.class_mapping"
    point_cloud_range: str = "point_cloud_range"


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
    grid = cfg.grid_size
    seen: dict[str, int] = {}
    for i, (aset, path) in enumerate(zip(cfg.anchors.anchor_sets, paths.anchors)):
        if aset.class_name not in classes:
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
        # Feature map = grid // stride (integer floor, spec §2.1). align_center False spaces anchors by
        # range / (n - 1), so n must be at least 2 there (upstream would divide by zero).
        fmap = (grid[0] // aset.feature_map_stride, grid[1] // aset.feature_map_stride)
        need = 1 if aset.align_center else 2
        if min(fmap) < need:
            raise chk.error(join(path, "feature_map_stride"),
                            f"stride {aset.feature_map_stride} leaves a {fmap[0]} x {fmap[1]} feature map on the "
                            f"{grid[0]} x {grid[1]} voxel grid (need >= {need} cells per axis)")
    class_aware = not (cfg.assigner.framework is Framework.MMDET and cfg.assigner.class_agnostic)
    if class_aware:
        missing = [c for c in classes if c not in seen]
        if missing:
            raise chk.error(paths.class_names,
                            f"class {missing[0]!r} has no anchor set; a class-aware assigner would give its GT no "
                            "positives (add an anchor set or remove the class)")
    for op, path in zip(cfg.augmentations, paths.augmentations):
        if isinstance(op, GTSampling):
            for name, _ in op.sample_groups + op.min_points:
                if name not in classes:
                    raise chk.error(path, f"gt_sampling class {name!r} is not in class_names ({', '.join(classes)})")
    for src, dst in cfg.gt_filters.class_mapping:
        if dst not in classes:
            raise chk.error(join(paths.class_mapping, src),
                            f"maps to {dst!r}, which is not in class_names ({', '.join(classes)})")


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
    multihead = chk.boolean(top["multihead"], "multihead") if "multihead" in top else AnchorLayout.multihead

    assigner, pcdet_assigner = _assigner(chk, top.get("assigner", {}), "assigner")
    raw_anchors = chk.sequence(chk.required(top, "anchors", ""), "anchors", min_length=1)
    anchor_paths = tuple(join("anchors", i) for i in range(len(raw_anchors)))
    anchor_sets = tuple(_anchor_set(chk, a, p, pcdet_assigner) for a, p in zip(raw_anchors, anchor_paths))

    raw_augs = chk.sequence(top.get("augmentations", []), "augmentations")
    aug_paths = tuple(join("augmentations", i) for i in range(len(raw_augs)))
    augmentations = tuple(_aug_op(chk, a, p) for a, p in zip(raw_augs, aug_paths))

    cfg = DetectorConfig(
        name=name,
        class_names=class_names,
        point_cloud_range=pcr,  # type: ignore[arg-type]
        voxel_size=voxel,  # type: ignore[arg-type]
        anchors=AnchorLayout(point_cloud_range=pcr, voxel_size=voxel, anchor_sets=anchor_sets,  # type: ignore
                             multihead=multihead),
        assigner=assigner,
        augmentations=augmentations,
        gt_filters=_gt_filters(chk, top.get("gt_filters", {}), "gt_filters"),
        post_processing=_post_processing(chk, top.get("post_processing", {}), "post_processing"),
        source=source,
    )
    check_consistency(cfg, chk, ConfigPaths(class_names="class_names", anchors=anchor_paths,
                                            augmentations=aug_paths))
    return cfg


def _assigner(chk: Checker, raw: Any, path: str) -> tuple[AssignerParams, bool]:
    sec = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, ASSIGNER_KEYS)
    framework = Framework(chk.choice(sec.get("framework", "pcdet"), join(path, "framework"),
                                     [f.value for f in Framework]))
    iou = IouKind(chk.choice(sec["iou"], join(path, "iou"), [k.value for k in IouKind])) if "iou" in sec else None
    if "match_height" in sec:
        # OpenPCDet's spelling: MATCH_HEIGHT True = 3D IoU, False = nearest-BEV IoU.
        from_flag = IouKind.IOU_3D if chk.boolean(sec["match_height"], join(path, "match_height")) \
            else IouKind.NEAREST_BEV
        if iou is not None and iou is not from_flag:
            raise chk.error(join(path, "match_height"), f"contradicts iou: {iou.value} (match_height true means "
                                                        "iou 3d, false means iou nearest_bev); set only one")
        iou = from_flag
    default_convention = "pcdet" if framework is Framework.PCDET else "mmdet3d"
    params: dict[str, Any] = {
        "framework": framework,
        "iou": iou or IouKind.NEAREST_BEV,
        "nearest_convention": chk.choice(sec.get("nearest_convention", default_convention),
                                         join(path, "nearest_convention"), NEAREST_CONVENTIONS),
    }
    pcdet = framework is Framework.PCDET
    if "min_pos_iou" in sec:
        if pcdet:
            raise chk.error(join(path, "min_pos_iou"), "only applies to framework mmdet (pcdet's "
                                                       "AxisAlignedTargetAssigner has no min_pos_iou)")
        params["min_pos_iou"] = chk.fraction(sec["min_pos_iou"], join(path, "min_pos_iou"))
    for key, pcdet_value in _MMDET_ONLY_DEFAULTS.items():
        if key in sec:
            value = chk.boolean(sec[key], join(path, key))
            if pcdet and value != pcdet_value:
                raise chk.error(join(path, key), f"only applies to framework mmdet (pcdet always behaves as "
                                                 f"{str(pcdet_value).lower()})")
            params[key] = value
    return AssignerParams(**params), pcdet


def _anchor_set(chk: Checker, raw: Any, path: str, pcdet: bool) -> AnchorSet:
    sec = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, ANCHOR_KEYS)
    sizes_path = join(path, "sizes")
    sizes = tuple(chk.numbers(s, join(sizes_path, i), length=3, positive=True)
                  for i, s in enumerate(chk.sequence(chk.required(sec, "sizes", path), sizes_path, min_length=1)))
    min_pos_iou = None
    if sec.get("min_pos_iou") is not None:
        if pcdet:
            raise chk.error(join(path, "min_pos_iou"), "only applies to framework mmdet (pcdet's "
                                                       "AxisAlignedTargetAssigner has no min_pos_iou)")
        min_pos_iou = chk.fraction(sec["min_pos_iou"], join(path, "min_pos_iou"))
    return AnchorSet(
        class_name=chk.string(chk.required(sec, "class_name", path), join(path, "class_name")),
        sizes=sizes,  # type: ignore[arg-type]
        rotations=chk.numbers(chk.required(sec, "rotations", path), join(path, "rotations"), min_length=1),
        bottom_heights=chk.numbers(chk.required(sec, "bottom_heights", path), join(path, "bottom_heights"),
                                   min_length=1),
        matched_threshold=chk.fraction(chk.required(sec, "matched_threshold", path), join(path, "matched_threshold")),
        unmatched_threshold=chk.fraction(chk.required(sec, "unmatched_threshold", path),
                                         join(path, "unmatched_threshold")),
        feature_map_stride=chk.integer(sec.get("feature_map_stride", 1), join(path, "feature_map_stride"),
                                       minimum=1),
        align_center=chk.boolean(sec.get("align_center", False), join(path, "align_center")),
        min_pos_iou=min_pos_iou,
    )


def _aug_op(chk: Checker, raw: Any, path: str) -> AugOp:
    sec = chk.mapping(raw, path)
    kind = chk.choice(chk.required(sec, "type", path), join(path, "type"), AUG_KEYS)
    chk.no_unknown_keys(sec, path, ("type",) + AUG_KEYS[kind])
    if kind == "gt_sampling":
        return GTSampling(
            sample_groups=chk.class_count_map(chk.required(sec, "sample_groups", path), join(path, "sample_groups"),
                                              minimum=0),
            min_points=chk.class_count_map(sec.get("min_points", {}), join(path, "min_points"), minimum=0),
            limit_whole_scene=chk.boolean(sec.get("limit_whole_scene", True), join(path, "limit_whole_scene")),
        )
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
    std_path = join(path, "std_m")
    std = chk.numbers(chk.required(sec, "std_m", path), std_path, length=3)
    for i, s in enumerate(std):
        if s < 0:
            raise chk.error(join(std_path, i), f"a standard deviation cannot be negative, got {s:g}")
    return WorldTranslation(std_m=std)  # type: ignore[arg-type]


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
    )


# ----------------------------------------------------------------------------------------------------------------------
# DetectorConfig -> raw dict (our schema; what `config show --yaml` prints, loadable again)
# ----------------------------------------------------------------------------------------------------------------------


def config_to_dict(cfg: DetectorConfig) -> dict[str, Any]:
    """The config in our YAML schema: ``config_from_dict(config_to_dict(cfg), ...) == cfg`` up to name/source."""
    pcdet = cfg.assigner.framework is Framework.PCDET
    anchors = []
    for a in cfg.anchors.anchor_sets:
        entry: dict[str, Any] = {
            "class_name": a.class_name, "sizes": [list(s) for s in a.sizes], "rotations": list(a.rotations),
            "bottom_heights": list(a.bottom_heights), "matched_threshold": a.matched_threshold,
            "unmatched_threshold": a.unmatched_threshold, "feature_map_stride": a.feature_map_stride,
            "align_center": a.align_center,
        }
        if a.min_pos_iou is not None:
            entry["min_pos_iou"] = a.min_pos_iou
        anchors.append(entry)
    p = cfg.assigner
    assigner: dict[str, Any] = {"framework": p.framework.value, "iou": p.iou.value,
                                "nearest_convention": p.nearest_convention}
    if not pcdet:
        assigner.update(min_pos_iou=p.min_pos_iou, gt_max_assign_all=p.gt_max_assign_all,
                        class_agnostic=p.class_agnostic, match_low_quality=p.match_low_quality)
    augs: list[dict[str, Any]] = []
    for op in cfg.augmentations:
        if isinstance(op, GTSampling):
            augs.append({"type": "gt_sampling", "sample_groups": dict(op.sample_groups),
                         "min_points": dict(op.min_points), "limit_whole_scene": op.limit_whole_scene})
        elif isinstance(op, WorldFlip):
            augs.append({"type": "world_flip", "axes": list(op.axes)})
        elif isinstance(op, WorldRotation):
            augs.append({"type": "world_rotation", "angle_range_rad": list(op.angle_range_rad)})
        elif isinstance(op, WorldScaling):
            augs.append({"type": "world_scaling", "scale_range": list(op.scale_range)})
        elif isinstance(op, WorldTranslation):
            augs.append({"type": "world_translation", "std_m": list(op.std_m)})
        else:  # pragma: no cover - AugOp is a closed union
            raise TypeError(f"unknown augmentation {op!r}")
    g, pp = cfg.gt_filters, cfg.post_processing
    return {
        "assignaudit": SCHEMA_VERSION,
        "name": cfg.name,
        "class_names": list(cfg.class_names),
        "point_cloud_range": list(cfg.point_cloud_range),
        "voxel_size": list(cfg.voxel_size),
        "multihead": cfg.anchors.multihead,
        "anchors": anchors,
        "assigner": assigner,
        "augmentations": augs,
        "gt_filters": {"min_lidar_points": g.min_lidar_points, "class_mapping": dict(g.class_mapping),
                       "range_filter": g.range_filter},
        "post_processing": {
            "score_thresh": pp.score_thresh, "multi_classes_nms": pp.multi_classes_nms, "nms_type": pp.nms_type,
            "nms_thresh": pp.nms_thresh, "nms_pre_maxsize": pp.nms_pre_maxsize,
            "nms_post_maxsize": pp.nms_post_maxsize, "circle_min_radius_sq": list(pp.circle_min_radius_sq),
        },
    }
