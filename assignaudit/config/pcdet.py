"""OpenPCDet model YAML (``tools/cfgs/<dataset>_models/*.yaml``) -> `DetectorConfig`.

Reproduces ``pcdet/config.py`` (OpenPCDet 8cacccec): ``cfg_from_yaml_file`` / ``merge_new_config``. A mapping that
holds ``_BASE_CONFIG_`` is first filled with the base file's keys; then the mapping's own keys are merged in:
**dicts merge recursively, everything else (lists included) replaces wholesale** (spec §11.5: a model's
``DATA_PROCESSOR`` or ``AUG_CONFIG_LIST`` replaces the dataset config's list). Upstream opens the base path relative
to the process's working directory (one runs from ``tools/``); we resolve it relative to the including file's
directory, then against the nearest ancestor directory that contains ``cfgs/`` (OpenPCDet's ``tools/`` layout), then
the working directory.

Then only the keys that change target assignment are read (anchor heads with AxisAligned or ATSS, CenterHead,
TransFusionHead; the augmentation queue, local per-object ops included; the GT filter of the ``DATASET`` class);
everything else (backbones, losses, BOX_CODER, optimiser, ...) is ignored. A key that *would* change assignment and
that assignaudit does not reproduce is a `ConfigError` naming it, never silently dropped. Decisions for the
borderline keys, and the shipped configs that remain refused with the reason per family, are in docs/config.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from assignaudit.assign.params import HeatmapParams
from assignaudit.assign.params import AnchorLayout, AnchorSet, AssignerParams, Framework, IouKind, QueryParams
from assignaudit.augment.params import (
    AugOp,
    GTSampling,
    LocalFrustumDropout,
    LocalPyramidAug,
    LocalRotation,
    LocalScaling,
    LocalTranslation,
    WorldFlip,
    WorldRotation,
    WorldScaling,
    WorldTranslation,
)
from assignaudit.config._check import Checker, join, show
from assignaudit.config._yaml import read_yaml_file
from assignaudit.config.model import DatasetSpec, DetectorConfig, GTFilters, PostProcessing
from assignaudit.config.schema import ConfigPaths, build_heatmap_params, check_consistency, log_heatmap_warnings
from assignaudit.errors import ConfigError

log = logging.getLogger(__name__)

BASE_KEY = "_BASE_CONFIG_"

ANCHOR_HEADS = ("AnchorHeadSingle", "AnchorHeadMulti")
SUPPORTED_HEADS = ANCHOR_HEADS + ("CenterHead", "TransFusionHead")
SUPPORTED_ASSIGNERS = ("AxisAlignedTargetAssigner", "ATSS")  # anchor heads; the NAME values get_target_assigner reads

# Entry keys per augmentation that we replay: (keys we read, keys that only touch points / file paths).
_AUG_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gt_sampling": (
        ("SAMPLE_GROUPS", "PREPARE", "LIMIT_WHOLE_SCENE", "USE_ROAD_PLANE"),
        # Paths and point-cloud plumbing; REMOVE_EXTRA_WIDTH only enlarges the region whose *points* are removed.
        # BACKUP_DB_INFO only chooses the database file (checked and recorded in DatasetSpec); FILTER_OBJ_POINTS_BY_
        # TIMESTAMP / TIME_RANGE drop pasted *points* by timestamp after the boxes are chosen (add_sampled_boxes_to_
        # scene), so they change no box: accepted and recorded.
        ("DB_INFO_PATH", "DB_DATA_PATH", "NUM_POINT_FEATURES", "DATABASE_WITH_FAKELIDAR", "REMOVE_EXTRA_WIDTH",
         "USE_SHARED_MEMORY", "SHARED_MEMORY_FILE_LIMIT", "BACKUP_DB_INFO", "FILTER_OBJ_POINTS_BY_TIMESTAMP",
         "TIME_RANGE"),
    ),
    "random_world_flip": (("ALONG_AXIS_LIST",), ()),
    "random_world_rotation": (("WORLD_ROT_ANGLE",), ()),
    "random_world_scaling": (("WORLD_SCALE_RANGE",), ()),
    "random_world_translation": (("NOISE_TRANSLATE_STD",), ()),
    "random_local_rotation": (("LOCAL_ROT_ANGLE",), ()),
    "random_local_scaling": (("LOCAL_SCALE_RANGE",), ()),
    "random_local_translation": (("LOCAL_TRANSLATION_RANGE", "ALONG_AXIS_LIST"), ()),
    "random_local_frustum_dropout": (("INTENSITY_RANGE", "DIRECTION"), ()),
    "random_local_pyramid_aug": (("DROP_PROB", "SPARSIFY_PROB", "SPARSIFY_MAX_NUM", "SWAP_PROB", "SWAP_MAX_NUM"),
                                 ()),
}
# Heads whose targets need more than the GT boxes: the one-line reason of the refusal.
_POINTS_HEADS = {
    "VoxelNeXtHead": "'VoxelNeXtHead' is not supported: its positive for a GT is the output site nearest the GT "
                     "centre among the sparse backbone's active stride-8 sites (voxelnext_head.py "
                     "assign_target_of_single_head); those come from voxelising the augmented point cloud (every "
                     "sweep, gt_sampling's pasted database points and removed points, shuffle_points then the "
                     "MAX_NUMBER_OF_VOXELS cut) dilated by each strided SparseConv3d and conv_out's SparseConv2d, "
                     "and assignaudit replays boxes, not the database points or that voxel set, so a count could "
                     "not be exact",
}
# Augmentations that move or remove boxes by what only the points or images say: the reason of the refusal.
_POINTS_AUGS = {
    "random_world_frustum_dropout": "it drops every GT box above (below, left of, right of) a threshold set by the "
                                    "point cloud's own extent (augmentor_utils.py global_frustum_dropout_*), which "
                                    "needs the points",
    "random_image_flip": "it flips the GT boxes in the camera frame with the image width and calibration "
                         "(random_image_flip_horizontal), which needs the images",
}
# Augmentations that only touch camera images: (keys they read).
_IMAGE_ONLY_AUGS = {"imgaug": ("ROT_LIM", "RAND_FLIP")}
# Datasets whose gt_boxes carry velocity columns while the queue runs: local_rotation's velocity update raises there.
_VELOCITY_DATASETS = ("NuScenesDataset",)
_PREPARE_KEYS = ("filter_by_min_points", "filter_by_difficulty")
_ANCHOR_KEYS = ("class_name", "anchor_sizes", "anchor_rotations", "anchor_bottom_heights", "align_center",
                "feature_map_stride", "matched_threshold", "unmatched_threshold")
_TARGET_ASSIGNER_KEYS = ("NAME", "POS_FRACTION", "SAMPLE_SIZE", "NORM_BY_NUM_EXAMPLES", "MATCH_HEIGHT", "BOX_CODER",
                         "BOX_CODER_CONFIG")
# ATSS reads TOPK; ATSS_UPSTREAM_QUIRKS is assignaudit's own key (OpenPCDet ignores it), see docs/config.md.
_ATSS_KEYS = ("TOPK", "ATSS_UPSTREAM_QUIRKS")
_CENTER_TARGET_KEYS = ("FEATURE_MAP_STRIDE", "NUM_MAX_OBJS", "GAUSSIAN_OVERLAP", "MIN_RADIUS")
# hungarian_assigner.py defaults (= transfusion_lidar.yaml): the costs assign.hungarian replays.
_TRANSFUSION_COSTS = {"cls_cost": {"gamma": 2.0, "alpha": 0.25, "weight": 0.15}, "reg_cost": {"weight": 0.25},
                      "iou_cost": {"weight": 0.25}}
_NMS_TYPES = ("nms_gpu", "nms_normal_gpu")
_VOXEL_PROCESSORS = ("transform_points_to_voxels", "transform_points_to_voxels_placeholder")
_RANGE_PROCESSOR = "mask_points_and_boxes_outside_range"
_RANGE_KEYS = ("NAME", "REMOVE_OUTSIDE_BOXES", "USE_CENTER_TO_FILTER")
# Keys shipped configs carry that OpenPCDet 8cacccec never reads (grep of pcdet/): accepted, they change nothing.
_RANGE_UNREAD = ("STRICT_MASK",)
_CENTER_UNREAD = ("DENSE_REG",)
_BACKUP_DB_KEYS = ("DB_INFO_PATH", "DB_DATA_PATH", "NUM_POINT_FEATURES")


# ----------------------------------------------------------------------------------------------------------------------
# _BASE_CONFIG_ resolution and merging (pcdet/config.py)
# ----------------------------------------------------------------------------------------------------------------------


def _find_base(base: Any, including: Path) -> Path:
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{including}: {BASE_KEY}: expected a path to a YAML file, got {show(base)}")
    rel = Path(base)
    if rel.is_absolute():
        candidates = [rel]
    else:
        here = including.resolve().parent
        candidates = [here / rel]
        # OpenPCDet runs from tools/ with paths like cfgs/dataset_configs/x.yaml: try each ancestor with a cfgs/.
        candidates += [anc / rel for anc in (here, *here.parents) if (anc / "cfgs").is_dir()]
        candidates.append(Path.cwd() / rel)
    for cand in candidates:
        if cand.is_file():
            return cand
    raise ConfigError(f"{including}: {BASE_KEY}: {base!r} not found (looked next to the file, under the nearest "
                      "ancestor directory containing cfgs/, and in the working directory)")


def _merge(config: dict, new: Mapping, origin: Path, chain: tuple[Path, ...]) -> dict:
    """``merge_new_config``: returns ``config`` updated with ``new`` (base first, then dicts deep, others replace)."""
    if BASE_KEY in new:
        base_path = _find_base(new[BASE_KEY], origin)
        if base_path.resolve() in chain:
            raise ConfigError(f"{origin}: {BASE_KEY}: {new[BASE_KEY]!r} includes itself (cycle)")
        base_raw = read_yaml_file(base_path)
        if not isinstance(base_raw, Mapping):
            raise ConfigError(f"{base_path}: expected a mapping at the top level of a base config")
        # Upstream does config.update(base) without resolving the base's own _BASE_CONFIG_; resolving it too is a
        # strict superset (a file that works upstream gives the same result here).
        config.update(_merge({}, base_raw, base_path, chain + (base_path.resolve(),)))
    for key, val in new.items():
        if not isinstance(val, Mapping):
            config[key] = val
            continue
        if key not in config:
            config[key] = {}
        if not isinstance(config[key], dict):
            raise ConfigError(f"{origin}: {key}: a mapping here cannot merge into the base config's "
                              f"{type(config[key]).__name__}")
        _merge(config[key], val, origin, chain)
    return config


def resolve_pcdet_yaml(path: Path, raw: Mapping | None = None) -> dict:
    """Read an OpenPCDet YAML and resolve every ``_BASE_CONFIG_`` (recursively); returns a new plain dict."""
    path = Path(path)
    if raw is None:
        raw = read_yaml_file(path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level of an OpenPCDet config")
    return _merge({}, raw, path, (path.resolve(),))


# ----------------------------------------------------------------------------------------------------------------------
# Merged dict -> DetectorConfig
# ----------------------------------------------------------------------------------------------------------------------


def _class_count_strings(chk: Checker, value: Any, path: str) -> tuple[tuple[str, int], ...]:
    """``['car:2', 'truck:3']`` (SAMPLE_GROUPS, filter_by_min_points) -> ``(('car', 2), ('truck', 3))``."""
    out = []
    for i, item in enumerate(chk.sequence(value, path)):
        name, sep, count = str(item).partition(":")
        if not isinstance(item, str) or not sep or not name.strip():
            raise chk.error(join(path, i), f"expected 'class:count', got {show(item)}")
        try:
            n = int(count.strip())
        except ValueError:
            raise chk.error(join(path, i), f"expected 'class:count' with an integer count, got {show(item)}") from None
        if n < 0:
            raise chk.error(join(path, i), f"count cannot be negative, got {show(item)}")
        out.append((name.strip(), n))
    return tuple(out)


def _dedupe(pairs: tuple[tuple[str, int], ...], *, last: bool) -> tuple[tuple[str, int], ...]:
    """One entry per class in first-appearance order: the last count (``last``) or the largest."""
    out: dict[str, int] = {}
    for name, n in pairs:
        out[name] = n if last or name not in out else max(out[name], n)
    return tuple(out.items())


def _check_entry_keys(chk: Checker, entry: Mapping, path: str, name: str, used: tuple[str, ...],
                      ignored: tuple[str, ...]) -> None:
    for key in entry:
        if key != "NAME" and key not in used and key not in ignored:
            raise chk.error(join(path, str(key)),
                            f"key not understood for {name} (assignaudit reads {', '.join(used) or 'nothing'}); "
                            "it may change the targets, so it is not ignored silently")


def _local_op(chk: Checker, entry: Mapping, path: str, name: str, data: Mapping) -> AugOp:
    """random_local_* (data_augmentor.py): the keys each reads, with upstream's defaults where it has none."""
    if name == "random_local_rotation":
        dataset = data.get("DATASET")
        if dataset in _VELOCITY_DATASETS or (dataset == "WaymoDataset" and data.get("TRAIN_WITH_SPEED", False)):
            raise chk.error(path, f"on {dataset} the GT boxes carry velocity, and OpenPCDet's local_rotation then "
                                  "raises (np.hstack of a (2,) and an (N, 1) array), so this config cannot train")
        # data_augmentor.py: a non-list LOCAL_ROT_ANGLE a means [-a, a].
        return LocalRotation(angle_range_rad=chk.range_pair(chk.required(entry, "LOCAL_ROT_ANGLE", path),
                                                            join(path, "LOCAL_ROT_ANGLE"), symmetric_scalar=True))
    if name == "random_local_scaling":
        return LocalScaling(scale_range=chk.range_pair(chk.required(entry, "LOCAL_SCALE_RANGE", path),
                                                       join(path, "LOCAL_SCALE_RANGE"), positive=True))
    if name == "random_local_translation":
        axes_path = join(path, "ALONG_AXIS_LIST")
        axes = chk.sequence(chk.required(entry, "ALONG_AXIS_LIST", path), axes_path)
        return LocalTranslation(
            axes=tuple(chk.choice(a, join(axes_path, i), ("x", "y", "z")) for i, a in enumerate(axes)),
            offset_range=chk.range_pair(chk.required(entry, "LOCAL_TRANSLATION_RANGE", path),
                                        join(path, "LOCAL_TRANSLATION_RANGE")))
    if name == "random_local_frustum_dropout":
        dir_path = join(path, "DIRECTION")
        dirs = chk.sequence(chk.required(entry, "DIRECTION", path), dir_path)
        return LocalFrustumDropout(
            directions=tuple(chk.choice(d, join(dir_path, i), ("top", "bottom", "left", "right"))
                             for i, d in enumerate(dirs)),
            intensity_range=chk.range_pair(chk.required(entry, "INTENSITY_RANGE", path),
                                           join(path, "INTENSITY_RANGE")))
    return LocalPyramidAug(
        drop_prob=chk.fraction(chk.required(entry, "DROP_PROB", path), join(path, "DROP_PROB")),
        sparsify_prob=chk.fraction(chk.required(entry, "SPARSIFY_PROB", path), join(path, "SPARSIFY_PROB")),
        sparsify_max_num=chk.integer(chk.required(entry, "SPARSIFY_MAX_NUM", path), join(path, "SPARSIFY_MAX_NUM"),
                                     minimum=0),
        swap_prob=chk.fraction(chk.required(entry, "SWAP_PROB", path), join(path, "SWAP_PROB")),
        swap_max_num=chk.integer(chk.required(entry, "SWAP_MAX_NUM", path), join(path, "SWAP_MAX_NUM"), minimum=0),
    )


def _aug_op(chk: Checker, entry: Mapping, path: str, match_height: bool, data: Mapping) -> AugOp:
    name = entry["NAME"]
    used, ignored = _AUG_KEYS[name]
    if name == "gt_sampling" and "IMG_AUG_TYPE" in entry:
        raise chk.error(join(path, "IMG_AUG_TYPE"), "image-guided gt_sampling is not replayed: it rejects pasted "
                                                    "objects by their 2D image boxes (sample_gt_boxes_2d), which "
                                                    "needs the images and 2D boxes")
    _check_entry_keys(chk, entry, path, name, used, ignored)
    if name.startswith("random_local_"):
        return _local_op(chk, entry, path, name, data)
    if name == "gt_sampling":
        if entry.get("USE_ROAD_PLANE", False) is not False:
            chk.boolean(entry["USE_ROAD_PLANE"], join(path, "USE_ROAD_PLANE"))
            # The road plane only moves pasted boxes in z (database_sampler.py::put_boxes_on_road_planes). Collision
            # tests are BEV and the nearest-BEV IoU ignores z, so counts are unchanged unless MATCH_HEIGHT is True.
            if match_height:
                raise chk.error(join(path, "USE_ROAD_PLANE"), "not supported with MATCH_HEIGHT True (the road "
                                                             "plane moves sampled boxes in z; assignaudit has no "
                                                             "road planes)")
        _check_gt_sampling_files(chk, entry, path)
        prepare = chk.mapping(entry.get("PREPARE", {}), join(path, "PREPARE"))
        for key in prepare:
            if key not in _PREPARE_KEYS:
                raise chk.error(join(join(path, "PREPARE"), str(key)),
                                f"database filter not supported (supported: {', '.join(_PREPARE_KEYS)})")
        return GTSampling(
            # DataBaseSampler.__init__ fills dicts: a repeated class keeps its first position and its last count.
            sample_groups=_dedupe(_class_count_strings(chk, chk.required(entry, "SAMPLE_GROUPS", path),
                                                       join(path, "SAMPLE_GROUPS")), last=True),
            # filter_by_min_points applies each 'class:n' in turn: a repeated class ends with the largest n.
            min_points=_dedupe(_class_count_strings(chk, prepare.get("filter_by_min_points", []),
                                                    join(join(path, "PREPARE"), "filter_by_min_points")), last=False),
            # DataBaseSampler: sampler_cfg.get('LIMIT_WHOLE_SCENE', False)
            limit_whole_scene=chk.boolean(entry.get("LIMIT_WHOLE_SCENE", False), join(path, "LIMIT_WHOLE_SCENE")),
            filter_by_difficulty=tuple(
                chk.integer(v, join(join(join(path, "PREPARE"), "filter_by_difficulty"), i)) for i, v in enumerate(
                    chk.sequence(prepare.get("filter_by_difficulty", []),
                                 join(join(path, "PREPARE"), "filter_by_difficulty")))),
        )
    if name == "random_world_flip":
        axes_path = join(path, "ALONG_AXIS_LIST")
        axes = chk.sequence(chk.required(entry, "ALONG_AXIS_LIST", path), axes_path)
        return WorldFlip(axes=tuple(chk.choice(a, join(axes_path, i), ("x", "y")) for i, a in enumerate(axes)))
    if name == "random_world_rotation":
        # data_augmentor.py: a scalar WORLD_ROT_ANGLE a means [-a, a].
        return WorldRotation(angle_range_rad=chk.range_pair(chk.required(entry, "WORLD_ROT_ANGLE", path),
                                                            join(path, "WORLD_ROT_ANGLE"), symmetric_scalar=True))
    if name == "random_world_scaling":
        return WorldScaling(scale_range=chk.range_pair(chk.required(entry, "WORLD_SCALE_RANGE", path),
                                                       join(path, "WORLD_SCALE_RANGE"), positive=True))
    std_path = join(path, "NOISE_TRANSLATE_STD")
    std_raw = chk.required(entry, "NOISE_TRANSLATE_STD", path)
    std = (chk.number(std_raw, std_path, lo=0.0),) * 3 if not isinstance(std_raw, (list, tuple)) \
        else chk.numbers(std_raw, std_path, length=3)
    if min(std) < 0:
        raise chk.error(std_path, f"a standard deviation cannot be negative, got {show(std_raw)}")
    return WorldTranslation(std_m=std)  # type: ignore[arg-type]


def _check_gt_sampling_files(chk: Checker, entry: Mapping, path: str) -> None:
    """The database-file and point-only options of ``gt_sampling`` (database_sampler.py ``__init__`` and
    ``add_sampled_boxes_to_scene``): checked here so a malformed value is an error, recorded in `DatasetSpec`.

    ``BACKUP_DB_INFO``: when a ``DB_INFO_PATH`` file does not exist, upstream asserts there is exactly one and loads
    ``BACKUP_DB_INFO.DB_INFO_PATH`` instead (and its ``DB_DATA_PATH`` / ``NUM_POINT_FEATURES``). Which file exists is
    a property of the data folder, so the infos reader makes that choice and reports it; the boxes it yields are
    sampled with the same SAMPLE_GROUPS / PREPARE either way."""
    if "BACKUP_DB_INFO" in entry:
        b_path = join(path, "BACKUP_DB_INFO")
        backup = chk.mapping(entry["BACKUP_DB_INFO"], b_path)
        chk.no_unknown_keys(backup, b_path, _BACKUP_DB_KEYS)
        chk.string(chk.required(backup, "DB_INFO_PATH", b_path), join(b_path, "DB_INFO_PATH"))
        if "DB_DATA_PATH" in backup:
            chk.string(backup["DB_DATA_PATH"], join(b_path, "DB_DATA_PATH"))
        if "NUM_POINT_FEATURES" in backup:
            chk.integer(backup["NUM_POINT_FEATURES"], join(b_path, "NUM_POINT_FEATURES"), minimum=1)
        infos = entry.get("DB_INFO_PATH")
        if isinstance(infos, (list, tuple)) and len(infos) != 1:
            raise chk.error(join(path, "DB_INFO_PATH"), f"BACKUP_DB_INFO needs exactly one DB_INFO_PATH (upstream "
                                                        f"asserts it when falling back), got {len(infos)}")
    if "DATABASE_WITH_FAKELIDAR" in entry and chk.boolean(entry["DATABASE_WITH_FAKELIDAR"],
                                                          join(path, "DATABASE_WITH_FAKELIDAR")):
        # DataBaseSampler.__call__: assert not DATABASE_WITH_FAKELIDAR ('Please use latest codes ...')
        raise chk.error(join(path, "DATABASE_WITH_FAKELIDAR"), "True makes OpenPCDet's sampler fail an assertion "
                                                               "on the first frame (regenerate the database); "
                                                               "this config cannot train")
    for key in ("USE_SHARED_MEMORY", "FILTER_OBJ_POINTS_BY_TIMESTAMP"):
        if key in entry:
            chk.boolean(entry[key], join(path, key))
    if entry.get("FILTER_OBJ_POINTS_BY_TIMESTAMP", False):
        chk.numbers(chk.required(entry, "TIME_RANGE", path), join(path, "TIME_RANGE"), length=2)


def _augmentations(chk: Checker, data: Mapping, path: str, match_height: bool
                   ) -> tuple[tuple[AugOp, ...], tuple[str, ...]]:
    if "DATA_AUGMENTOR" not in data:
        return (), ()
    aug = data["DATA_AUGMENTOR"]
    aug_path = join(path, "DATA_AUGMENTOR")
    # data_augmentor.py accepts a bare list (no DISABLE_AUG_LIST) as well as the usual mapping.
    if isinstance(aug, list):
        entries, disabled, list_path = aug, (), aug_path
    else:
        aug = chk.mapping(aug, aug_path)
        list_path = join(aug_path, "AUG_CONFIG_LIST")
        entries = chk.sequence(aug.get("AUG_CONFIG_LIST", []), list_path)
        disabled = tuple(chk.sequence(aug.get("DISABLE_AUG_LIST", []), join(aug_path, "DISABLE_AUG_LIST")))
    ops, paths = [], []
    for i, entry in enumerate(entries):
        entry_path = join(list_path, i)
        entry = chk.mapping(entry, entry_path)
        name = chk.string(chk.required(entry, "NAME", entry_path), join(entry_path, "NAME"))
        if name in disabled:
            continue
        if name in _IMAGE_ONLY_AUGS:
            # data_augmentor.py imgaug: flips / rotates camera_imgs and records it in img_process_infos; gt_boxes
            # untouched. No box op; recorded in DatasetSpec.options ("image_only_augmentations").
            _check_entry_keys(chk, entry, entry_path, name, _IMAGE_ONLY_AUGS[name], ())
            continue
        if name in _POINTS_AUGS:
            raise chk.error(entry_path, f"augmentation {name!r} is not replayed: {_POINTS_AUGS[name]}; add it to "
                                        "DISABLE_AUG_LIST to audit without it")
        if name not in _AUG_KEYS:
            raise chk.error(entry_path, f"augmentation {name!r} is not replayed by assignaudit (supported: "
                                        f"{', '.join(_AUG_KEYS)}); add it to DISABLE_AUG_LIST to audit without it")
        ops.append(_aug_op(chk, entry, entry_path, match_height, data))
        paths.append(entry_path)
    return tuple(ops), tuple(paths)


def _data_processor(chk: Checker, data: Mapping, path: str) -> tuple[tuple[float, float, float], str]:
    """Voxel size from transform_points_to_voxels, and the GT range filter: ``pcdet`` (centre inside, the
    ``mask_points_and_boxes_outside_range`` entry with ``REMOVE_OUTSIDE_BOXES: True``) or ``none`` (no such entry,
    or ``REMOVE_OUTSIDE_BOXES: False``: data_processor.py then keeps every GT box)."""
    proc_path = join(path, "DATA_PROCESSOR")
    procs = chk.sequence(chk.required(data, "DATA_PROCESSOR", path), proc_path)
    voxel = None
    range_mode = "none"
    for i, entry in enumerate(procs):
        entry_path = join(proc_path, i)
        entry = chk.mapping(entry, entry_path)
        name = entry.get("NAME")
        if name in _VOXEL_PROCESSORS:
            voxel = chk.numbers(chk.required(entry, "VOXEL_SIZE", entry_path), join(entry_path, "VOXEL_SIZE"),
                                length=3, positive=True)
        elif name == _RANGE_PROCESSOR:
            _check_entry_keys(chk, entry, entry_path, name, _RANGE_KEYS[1:], _RANGE_UNREAD)
            # data_processor.py reads config.REMOVE_OUTSIDE_BOXES without a default: an EasyDict AttributeError
            if not chk.boolean(chk.required(entry, "REMOVE_OUTSIDE_BOXES", entry_path),
                               join(entry_path, "REMOVE_OUTSIDE_BOXES")):
                continue
            range_mode = "pcdet"
            if not chk.boolean(entry.get("USE_CENTER_TO_FILTER", True), join(entry_path, "USE_CENTER_TO_FILTER")):
                raise chk.error(join(entry_path, "USE_CENTER_TO_FILTER"),
                                "False (corner-count range filter) is not supported; only the box-centre filter is")
    if voxel is None:
        raise chk.error(proc_path, "no transform_points_to_voxels entry with VOXEL_SIZE (needed for the anchor grid)")
    return voxel, range_mode  # type: ignore[return-value]


def _anchor_set(chk: Checker, entry: Any, path: str) -> AnchorSet:
    entry = chk.mapping(entry, path)
    for key in entry:
        if key not in _ANCHOR_KEYS:
            raise chk.error(join(path, str(key)), f"unknown anchor generator key (expected: {', '.join(_ANCHOR_KEYS)})")
    sizes_path = join(path, "anchor_sizes")
    sizes = tuple(chk.numbers(s, join(sizes_path, i), length=3, positive=True)
                  for i, s in enumerate(chk.sequence(chk.required(entry, "anchor_sizes", path), sizes_path,
                                                     min_length=1)))
    return AnchorSet(
        class_name=chk.string(chk.required(entry, "class_name", path), join(path, "class_name")),
        sizes=sizes,  # type: ignore[arg-type]
        rotations=chk.numbers(chk.required(entry, "anchor_rotations", path), join(path, "anchor_rotations"),
                              min_length=1),
        bottom_heights=chk.numbers(chk.required(entry, "anchor_bottom_heights", path),
                                   join(path, "anchor_bottom_heights"), min_length=1),
        matched_threshold=chk.fraction(chk.required(entry, "matched_threshold", path),
                                       join(path, "matched_threshold")),
        unmatched_threshold=chk.fraction(chk.required(entry, "unmatched_threshold", path),
                                         join(path, "unmatched_threshold")),
        feature_map_stride=chk.integer(chk.required(entry, "feature_map_stride", path),
                                       join(path, "feature_map_stride"), minimum=1),
        align_center=chk.boolean(entry.get("align_center", False), join(path, "align_center")),
    )


def _target_assigner(chk: Checker, head: Mapping, path: str) -> AssignerParams:
    """TARGET_ASSIGNER_CONFIG of an anchor head -> `AssignerParams` (AxisAligned or ATSS)."""
    ta_path = join(path, "TARGET_ASSIGNER_CONFIG")
    ta = chk.mapping(chk.required(head, "TARGET_ASSIGNER_CONFIG", path), ta_path)
    name = chk.string(chk.required(ta, "NAME", ta_path), join(ta_path, "NAME"))
    if name not in SUPPORTED_ASSIGNERS:
        raise chk.error(join(ta_path, "NAME"), f"{name!r} is not supported for {head.get('NAME')!r} "
                                               f"(supported: {', '.join(SUPPORTED_ASSIGNERS)})")
    allowed = _TARGET_ASSIGNER_KEYS + (_ATSS_KEYS if name == "ATSS" else ())
    for key in ta:
        if key not in allowed:
            raise chk.error(join(ta_path, str(key)), "key not understood; it may change the targets, so it is not "
                                                     "ignored silently")
    match_height = chk.boolean(ta.get("MATCH_HEIGHT", False), join(ta_path, "MATCH_HEIGHT"))
    if name == "ATSS":
        # anchor_head_template.py: NAME 'ATSS' -> ATSSTargetAssigner(topk=TOPK, ..., match_height=MATCH_HEIGHT).
        topk = chk.integer(chk.required(ta, "TOPK", ta_path), join(ta_path, "TOPK"), minimum=1)
        quirks = chk.boolean(ta.get("ATSS_UPSTREAM_QUIRKS", False), join(ta_path, "ATSS_UPSTREAM_QUIRKS"))
        log.warning(
            "%s: %s: OpenPCDet's AnchorHeadTemplate passes use_multihead= to ATSSTargetAssigner, whose constructor "
            "does not take it, so training with this config raises a TypeError upstream (spec §4); assignaudit "
            "replays the ATSS algorithm as if that call were fixed, with the inside-GT test %s "
            "(ATSS_UPSTREAM_QUIRKS: %s)", chk.origin, join(ta_path, "NAME"),
            "transposed as upstream" if quirks else "corrected", quirks)
        return AssignerParams(framework=Framework.ATSS, iou=IouKind.IOU_3D if match_height else IouKind.BEV,
                              nearest_convention="pcdet", atss_topk=topk, atss_upstream_quirks=quirks)
    # The sampling path (POS_FRACTION >= 0, spec §3.4) subsamples positives/negatives at random with an upstream
    # indexing bug; no shipped config uses it, so we refuse it rather than report counts it would not produce.
    pos_fraction = chk.number(ta.get("POS_FRACTION", -1.0), join(ta_path, "POS_FRACTION"))
    if pos_fraction >= 0:
        raise chk.error(join(ta_path, "POS_FRACTION"), f"{pos_fraction:g} selects the random sampling path "
                                                       "(spec §3.4), which is not supported; use -1")
    return AssignerParams(framework=Framework.PCDET, iou=IouKind.IOU_3D if match_height else IouKind.NEAREST_BEV,
                          nearest_convention="pcdet")


def _post_processing(chk: Checker, section: Mapping, path: str) -> PostProcessing:
    """``POST_PROCESSING`` (``MODEL.`` for anchor heads, ``MODEL.DENSE_HEAD.`` for CenterHead) -> `PostProcessing`."""
    d = PostProcessing()
    if "POST_PROCESSING" not in section:
        return d
    pp_path = join(path, "POST_PROCESSING")
    pp = chk.mapping(section["POST_PROCESSING"], pp_path)
    nms_path = join(pp_path, "NMS_CONFIG")
    nms = chk.mapping(pp.get("NMS_CONFIG", {}), nms_path)

    def opt_int(key: str, default: int | None) -> int | None:
        return chk.integer(nms[key], join(nms_path, key), minimum=1) if key in nms else default

    score_thresh = chk.fraction(pp.get("SCORE_THRESH", d.score_thresh), join(pp_path, "SCORE_THRESH"))
    if nms.get("NMS_TYPE") == "class_specific_nms":
        return _class_specific_nms(chk, nms, nms_path, score_thresh)
    return PostProcessing(
        score_thresh=score_thresh,
        multi_classes_nms=chk.boolean(nms.get("MULTI_CLASSES_NMS", d.multi_classes_nms),
                                      join(nms_path, "MULTI_CLASSES_NMS")),
        nms_type=chk.choice(nms.get("NMS_TYPE", d.nms_type), join(nms_path, "NMS_TYPE"), _NMS_TYPES),
        nms_thresh=chk.fraction(nms.get("NMS_THRESH", d.nms_thresh), join(nms_path, "NMS_THRESH")),
        nms_pre_maxsize=opt_int("NMS_PRE_MAXSIZE", d.nms_pre_maxsize),
        nms_post_maxsize=opt_int("NMS_POST_MAXSIZE", d.nms_post_maxsize),
    )


def _class_specific_nms(chk: Checker, nms: Mapping, nms_path: str, score_thresh: float) -> PostProcessing:
    """``NMS_TYPE: class_specific_nms`` (model_nms_utils.py ``class_specific_nms``, CenterHead only): for each label
    k < len(NMS_THRESH), rotated NMS (nms_gpu) of that class's boxes with NMS_THRESH[k], NMS_PRE_MAXSIZE[k],
    NMS_POST_MAXSIZE[k]."""
    chk.no_unknown_keys(nms, nms_path, ("NMS_TYPE", "NMS_THRESH", "NMS_PRE_MAXSIZE", "NMS_POST_MAXSIZE"))
    thresh = tuple(chk.fraction(v, join(join(nms_path, "NMS_THRESH"), i)) for i, v in enumerate(
        chk.sequence(chk.required(nms, "NMS_THRESH", nms_path), join(nms_path, "NMS_THRESH"), min_length=1)))
    sizes = {}
    for key in ("NMS_PRE_MAXSIZE", "NMS_POST_MAXSIZE"):
        values = chk.sequence(chk.required(nms, key, nms_path), join(nms_path, key), length=len(thresh))
        ints = {chk.integer(v, join(join(nms_path, key), i), minimum=1) for i, v in enumerate(values)}
        if len(ints) != 1:
            raise chk.error(join(nms_path, key), f"per-class values {sorted(ints)} are not reproduced (assignaudit "
                                                 "takes one size for all classes)")
        sizes[key] = ints.pop()
    return PostProcessing(score_thresh=score_thresh, multi_classes_nms=True, nms_type="nms_gpu",
                          nms_thresh=thresh[0], nms_pre_maxsize=sizes["NMS_PRE_MAXSIZE"],
                          nms_post_maxsize=sizes["NMS_POST_MAXSIZE"], nms_thresh_per_class=thresh)


def _center_head(chk: Checker, head: Mapping, head_path: str, class_names: tuple[str, ...],
                 pcr: tuple[float, ...], voxel: tuple[float, ...]) -> HeatmapParams:
    """``CenterHead`` (``center_head.py``): CLASS_NAMES_EACH_HEAD + TARGET_ASSIGNER_CONFIG -> `HeatmapParams`.

    The feature map is the real network output upstream; for the shipped backbones it equals
    ``grid // FEATURE_MAP_STRIDE``, which is what `HeatmapParams` derives (spec §5.2, §11.2: 1440 // 8 = 180).
    """
    ta_path = join(head_path, "TARGET_ASSIGNER_CONFIG")
    ta = chk.mapping(chk.required(head, "TARGET_ASSIGNER_CONFIG", head_path), ta_path)
    for key in ta:
        if key not in _CENTER_TARGET_KEYS + _CENTER_UNREAD:
            raise chk.error(join(ta_path, str(key)), f"key not understood for CenterHead (assignaudit reads "
                                                     f"{', '.join(_CENTER_TARGET_KEYS)}); it may change the targets")
    params = build_heatmap_params(
        chk, join(head_path, "CLASS_NAMES_EACH_HEAD"),
        heads=chk.required(head, "CLASS_NAMES_EACH_HEAD", head_path), class_names=class_names,
        point_cloud_range=pcr, voxel_size=voxel, variant="pcdet",
        feature_map_stride=chk.integer(chk.required(ta, "FEATURE_MAP_STRIDE", ta_path),
                                       join(ta_path, "FEATURE_MAP_STRIDE"), minimum=1),
        num_max_objs=chk.integer(chk.required(ta, "NUM_MAX_OBJS", ta_path), join(ta_path, "NUM_MAX_OBJS"),
                                 minimum=0),
        gaussian_overlap=chk.number(chk.required(ta, "GAUSSIAN_OVERLAP", ta_path), join(ta_path, "GAUSSIAN_OVERLAP"),
                                    lo=0.0, hi=1.0),
        min_radius=chk.integer(chk.required(ta, "MIN_RADIUS", ta_path), join(ta_path, "MIN_RADIUS"), minimum=0),
    )
    # A head order that is not monotone in CLASS_NAMES makes upstream relabel GT into later heads (spec §5.1):
    # reproduced faithfully by assign.heatmap, and said loudly here.
    log_heatmap_warnings(params, chk.origin)
    return params


def _transfusion_head(chk: Checker, head: Mapping, head_path: str) -> QueryParams:
    """``TransFusionHead``: NUM_PROPOSALS queries, NUM_DECODER_LAYERS (default 1) layers, TransFusion cost (§8.2)."""
    ta_path = join(head_path, "TARGET_ASSIGNER_CONFIG")
    ta = chk.mapping(head.get("TARGET_ASSIGNER_CONFIG", {}), ta_path)
    ha_path = join(ta_path, "HUNGARIAN_ASSIGNER")
    ha = chk.mapping(ta.get("HUNGARIAN_ASSIGNER", {}), ha_path)
    # assign.hungarian replays the code defaults (cls focal 0.15, gamma 2, alpha 0.25; reg L1 0.25; IoU 0.25), which
    # are also transfusion_lidar.yaml's values; anything else would be silently different, so it is refused.
    for cost, expected in _TRANSFUSION_COSTS.items():
        sec = chk.mapping(ha.get(cost, {}), join(ha_path, cost))
        for key, value in sec.items():
            if key not in expected or chk.number(value, join(join(ha_path, cost), str(key))) != expected[key]:
                raise chk.error(join(join(ha_path, cost), str(key)),
                                f"{show(value)} is not reproduced (assignaudit's TransFusion matcher uses "
                                f"{cost} {expected})")
    return QueryParams(
        cost="transfusion",
        num_queries=chk.integer(chk.required(head, "NUM_PROPOSALS", head_path), join(head_path, "NUM_PROPOSALS"),
                                minimum=1),
        num_layers=chk.integer(head.get("NUM_DECODER_LAYERS", 1), join(head_path, "NUM_DECODER_LAYERS"), minimum=1),
    )


def _transfusion_post(chk: Checker, head: Mapping, head_path: str) -> PostProcessing:
    """TransFusionHead decodes with ``DENSE_HEAD.POST_PROCESSING`` (transfusion_head.py ``decode_bbox``: keep
    ``score > SCORE_THRESH`` inside POST_CENTER_RANGE) and runs **no NMS** (its queries come from a max-pooled
    heatmap); ``MODEL.POST_PROCESSING.SCORE_THRESH`` only feeds recall logging. So the score threshold is the
    head's (0.0 in transfusion_lidar.yaml), NMS is off (an IoU threshold of 1.0 suppresses nothing), and at most
    NUM_PROPOSALS boxes come out."""
    pp_path = join(head_path, "POST_PROCESSING")
    # Training never reads it (only decode_bbox at inference); without one, no box is dropped by score.
    pp = chk.mapping(head.get("POST_PROCESSING", {}), pp_path)
    return PostProcessing(
        score_thresh=chk.fraction(pp.get("SCORE_THRESH", 0.0), join(pp_path, "SCORE_THRESH")),
        multi_classes_nms=False, nms_type="nms_gpu", nms_thresh=1.0,
        nms_post_maxsize=chk.integer(chk.required(head, "NUM_PROPOSALS", head_path),
                                     join(head_path, "NUM_PROPOSALS"), minimum=1),
    )


# Dataset class -> (names it drops in __getitem__, the dataset key it reads for a point-count filter).
# nuscenes_dataset.py: `if cfg.get('FILTER_MIN_POINTS_IN_GT', False): keep num_lidar_pts > value - 1`;
# waymo_dataset.py: drop_info_with_name('unknown'), then `if training and cfg.get('FILTER_EMPTY_BOXES_FOR_TRAIN',
# False): keep num_points_in_gt > 0`; lyft_dataset.py, once_dataset.py, argo2_dataset.py, pandaset_dataset.py read
# neither (a FILTER_MIN_POINTS_IN_GT in lyft_dataset.yaml is dead: 0, not 1). kitti_dataset.py / custom_dataset.py
# drop_info_with_name('DontCare') (the raw KITTI source already leaves them out; info files may hold them).
_DATASET_GT_FILTER: dict[str, tuple[tuple[str, ...], str | None]] = {
    "NuScenesDataset": ((), "FILTER_MIN_POINTS_IN_GT"),
    "WaymoDataset": (("unknown",), "FILTER_EMPTY_BOXES_FOR_TRAIN"),
    "LyftDataset": ((), None),
    "KittiDataset": (("DontCare",), None),
    "ONCEDataset": ((), None),
    "Argo2Dataset": ((), None),
    "PandasetDataset": ((), None),
    "CustomDataset": (("DontCare",), None),
}
_GT_FILTER_KEYS = ("FILTER_MIN_POINTS_IN_GT", "FILTER_EMPTY_BOXES_FOR_TRAIN")


def _dataset_gt_filters(chk: Checker, data: Mapping, path: str, range_mode: str) -> GTFilters:
    """The GT filter of the dataset class named by ``DATASET``: what its ``__getitem__`` reads, not a shared key."""
    dataset = data.get("DATASET")
    if dataset not in _DATASET_GT_FILTER:
        present = [k for k in _GT_FILTER_KEYS if data.get(k) not in (None, False)]
        if dataset is not None and present:
            raise chk.error(join(path, present[0]), f"dataset class {show(dataset)} is not one assignaudit knows "
                                                    f"(known: {', '.join(_DATASET_GT_FILTER)}), so whether it "
                                                    "reads this key is unknown; set DATASET to the class whose "
                                                    "GT filter it reproduces")
        # No DATASET (hand-written configs): the nuScenes reading of FILTER_MIN_POINTS_IN_GT, as before.
        drop, key = (), "FILTER_MIN_POINTS_IN_GT"
    else:
        drop, key = _DATASET_GT_FILTER[dataset]
    min_points = 0
    if key == "FILTER_MIN_POINTS_IN_GT" and data.get(key) not in (None, False, 0):
        value = data[key]
        # `num_lidar_pts > value - 1`: True - 1 == 0 keeps >= 1; an integer n keeps >= n.
        min_points = 1 if value is True else chk.integer(value, join(path, key), minimum=0)
    elif key == "FILTER_EMPTY_BOXES_FOR_TRAIN" and key in data:
        min_points = 1 if chk.boolean(data[key], join(path, key)) else 0
    return GTFilters(min_lidar_points=min_points, drop_classes=drop, class_mapping=(), range_filter=range_mode)


def pcdet_config_from_dict(cfg: Mapping, origin: str, *, name: str, source: str) -> DetectorConfig:
    """Build a `DetectorConfig` from a merged OpenPCDet config (``_BASE_CONFIG_`` already resolved)."""
    chk = Checker(origin)
    cfg = chk.mapping(cfg, "")
    class_names = tuple(chk.string(c, join("CLASS_NAMES", i)) for i, c in enumerate(
        chk.sequence(chk.required(cfg, "CLASS_NAMES", ""), "CLASS_NAMES", min_length=1)))
    data = chk.mapping(chk.required(cfg, "DATA_CONFIG", ""), "DATA_CONFIG")
    model = chk.mapping(chk.required(cfg, "MODEL", ""), "MODEL")

    head_path = "MODEL.DENSE_HEAD"
    if "DENSE_HEAD" not in model:
        raise chk.error(head_path, f"missing: assignaudit audits dense heads ({', '.join(SUPPORTED_HEADS)})")
    head = chk.mapping(model["DENSE_HEAD"], head_path)
    head_name = chk.string(chk.required(head, "NAME", head_path), join(head_path, "NAME"))
    if head_name in _POINTS_HEADS:
        raise chk.error(join(head_path, "NAME"), _POINTS_HEADS[head_name])
    if head_name not in SUPPORTED_HEADS:
        ta = head.get("TARGET_ASSIGNER_CONFIG")
        assigner_name = ta.get("NAME") if isinstance(ta, Mapping) else None
        raise chk.error(join(head_path, "NAME"),
                        f"{head_name!r} is not supported (supported: {', '.join(SUPPORTED_HEADS)}); "
                        f"its TARGET_ASSIGNER_CONFIG.NAME is {assigner_name!r}")
    kind = "anchor" if head_name in ANCHOR_HEADS else "center" if head_name == "CenterHead" else "query"

    assigner = None
    multihead = False
    if kind == "anchor":
        # The assigner's flat anchor order follows USE_MULTIHEAD (axis_aligned_target_assigner.py reads it from the
        # head config); AnchorHeadMulti without it would mismatch its own outputs.
        multihead = chk.boolean(head.get("USE_MULTIHEAD", False), join(head_path, "USE_MULTIHEAD"))
        if head_name == "AnchorHeadMulti" and not multihead:
            raise chk.error(join(head_path, "USE_MULTIHEAD"), "AnchorHeadMulti needs USE_MULTIHEAD: True")
        assigner = _target_assigner(chk, head, head_path)
    match_height = assigner is not None and assigner.iou is IouKind.IOU_3D

    pcr = chk.numbers(chk.required(data, "POINT_CLOUD_RANGE", "DATA_CONFIG"), "DATA_CONFIG.POINT_CLOUD_RANGE",
                      length=6)
    voxel, range_mode = _data_processor(chk, data, "DATA_CONFIG")
    augmentations, aug_paths = _augmentations(chk, data, "DATA_CONFIG", match_height)

    anchors = heatmap = query = None
    anchor_paths: tuple[str, ...] = ()
    post_processing = _post_processing(chk, model, "MODEL")
    if kind == "anchor":
        anchors_path = join(head_path, "ANCHOR_GENERATOR_CONFIG")
        raw_anchors = chk.sequence(chk.required(head, "ANCHOR_GENERATOR_CONFIG", head_path), anchors_path,
                                   min_length=1)
        anchor_paths = tuple(join(anchors_path, i) for i in range(len(raw_anchors)))
        anchor_sets = tuple(_anchor_set(chk, a, p) for a, p in zip(raw_anchors, anchor_paths))
        anchors = AnchorLayout(point_cloud_range=pcr, voxel_size=voxel, anchor_sets=anchor_sets,  # type: ignore
                               multihead=multihead)
    elif kind == "center":
        heatmap = _center_head(chk, head, head_path, class_names, pcr, voxel)
        # CenterHead decodes and NMSes per head with DENSE_HEAD.POST_PROCESSING (center_head.py), class-agnostic
        # within a head; MODEL.POST_PROCESSING only holds evaluation keys for this detector.
        post_processing = _post_processing(chk, head, head_path)
    else:
        query = _transfusion_head(chk, head, head_path)
        post_processing = _transfusion_post(chk, head, head_path)

    gt_filters = _dataset_gt_filters(chk, data, "DATA_CONFIG", range_mode)

    result = DetectorConfig(
        name=name,
        class_names=class_names,
        point_cloud_range=pcr,  # type: ignore[arg-type]
        voxel_size=voxel,
        anchors=anchors,
        assigner=assigner,
        augmentations=augmentations,
        gt_filters=gt_filters,
        post_processing=post_processing,
        source=source,
        head=kind,
        heatmap=heatmap,
        query=query,
        framework="pcdet",
        dataset=_dataset_spec(data),
    )
    check_consistency(result, chk, ConfigPaths(class_names="CLASS_NAMES", anchors=anchor_paths,
                                               augmentations=aug_paths, class_mapping="CLASS_NAMES",
                                               point_cloud_range="DATA_CONFIG.POINT_CLOUD_RANGE"))
    if multihead:  # after the per-class checks, which name the offending key more precisely
        _check_head_order(chk, head, head_path, class_names, anchors.anchor_sets)
    return result


# gt_sampling options that change points or file plumbing only: recorded in DatasetSpec.options.
_GT_SAMPLING_RECORDED = ("USE_SHARED_MEMORY", "SHARED_MEMORY_FILE_LIMIT", "FILTER_OBJ_POINTS_BY_TIMESTAMP",
                         "TIME_RANGE", "NUM_POINT_FEATURES", "BACKUP_DB_INFO")


def _dataset_spec(data: Mapping) -> DatasetSpec:
    """DATASET, DATA_PATH, the train INFO_PATH (``INFO_PATH[DATA_SPLIT['train']]``) and gt_sampling's database
    files (``DB_INFO_PATH``, ``BACKUP_DB_INFO``, ``DB_DATA_PATH``) of a merged ``DATA_CONFIG``. Lenient: this is
    provenance and file lookup; a malformed value is left out here and reported where it is used."""
    import json

    def texts(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,) if value else ()
        if isinstance(value, (list, tuple)):
            return tuple(v for v in value if isinstance(v, str) and v)
        return ()

    split = data.get("DATA_SPLIT")
    train_split = split.get("train", "train") if isinstance(split, Mapping) else "train"
    info_path = data.get("INFO_PATH")
    train_infos = texts(info_path.get(train_split)) if isinstance(info_path, Mapping) else ()
    db_infos: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    db_data: tuple[str, ...] = ()
    backup_data: tuple[str, ...] = ()
    sampling_options: tuple[tuple[str, str], ...] = ()
    aug = data.get("DATA_AUGMENTOR")
    entries = aug if isinstance(aug, list) else aug.get("AUG_CONFIG_LIST", []) if isinstance(aug, Mapping) else []
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, Mapping) and entry.get("NAME") == "gt_sampling":
            db_infos = texts(entry.get("DB_INFO_PATH"))
            b = entry.get("BACKUP_DB_INFO")
            backup = texts(b.get("DB_INFO_PATH")) if isinstance(b, Mapping) else ()
            db_data = texts(entry.get("DB_DATA_PATH"))
            backup_data = texts(b.get("DB_DATA_PATH")) if isinstance(b, Mapping) else ()
            sampling_options = tuple((f"gt_sampling.{k}", json.dumps(entry[k], sort_keys=True, default=str))
                                     for k in _GT_SAMPLING_RECORDED if k in entry)
    option_keys = ("FILTER_EMPTY_BOXES_FOR_TRAIN", "FILTER_MIN_POINTS_IN_GT", "MAX_SWEEPS", "SAMPLED_INTERVAL",
                   "SEQUENCE_CONFIG", "PRED_VELOCITY", "PROCESSED_DATA_TAG", "DATA_SPLIT", "TRAIN_WITH_SPEED",
                   "INFO_WITH_FAKELIDAR", "SET_NAN_VELOCITY_TO_ZEROS")  # read by sources/infos_pcdet.py
    options = tuple((k, json.dumps(data[k], sort_keys=True, default=str)) for k in option_keys if k in data)
    options += sampling_options
    disabled = aug.get("DISABLE_AUG_LIST", []) if isinstance(aug, Mapping) else []
    image_only = [e["NAME"] for e in (entries if isinstance(entries, list) else ())
                  if isinstance(e, Mapping) and e.get("NAME") in _IMAGE_ONLY_AUGS
                  and e.get("NAME") not in (disabled if isinstance(disabled, list) else [])]
    if image_only:
        options += (("image_only_augmentations", json.dumps(image_only)),)
    dataset_type = data.get("DATASET")
    data_path = data.get("DATA_PATH")
    return DatasetSpec(framework="pcdet", dataset_type=dataset_type if isinstance(dataset_type, str) else None,
                       data_path=data_path if isinstance(data_path, str) else None, train_infos=train_infos,
                       db_infos=db_infos, backup_db_infos=backup, db_data_path=db_data, options=options,
                       backup_db_data_path=backup_data)


def _check_head_order(chk: Checker, head: Mapping, head_path: str, class_names: tuple[str, ...],
                      anchor_sets: tuple[AnchorSet, ...]) -> None:
    """AnchorHeadMulti concatenates anchors in ANCHOR_GENERATOR_CONFIG order but slices its outputs in RPN_HEAD_CFGS
    order, and SEPARATE_MULTIHEAD's one-hot slice assumes CLASS_NAMES order; nothing upstream checks that the three
    agree (OpenPCDet issue #235). A mismatch silently trains heads on another class's targets, so it is an error."""
    cfgs_path = join(head_path, "RPN_HEAD_CFGS")
    head_cfgs = chk.sequence(chk.required(head, "RPN_HEAD_CFGS", head_path), cfgs_path, min_length=1)
    head_order: list[str] = []
    for i, hc in enumerate(head_cfgs):
        hc_path = join(cfgs_path, i)
        hc = chk.mapping(hc, hc_path)
        names = chk.sequence(chk.required(hc, "HEAD_CLS_NAME", hc_path), join(hc_path, "HEAD_CLS_NAME"), min_length=1)
        head_order += [chk.string(n, join(join(hc_path, "HEAD_CLS_NAME"), j)) for j, n in enumerate(names)]
    anchor_order = [a.class_name for a in anchor_sets]
    if head_order != anchor_order:
        raise chk.error(cfgs_path, f"HEAD_CLS_NAME order {head_order} differs from ANCHOR_GENERATOR_CONFIG order "
                                   f"{anchor_order}; AnchorHeadMulti would pair heads with the wrong anchors "
                                   "(OpenPCDet issue #235)")
    if head_order != list(class_names):
        raise chk.error(cfgs_path, f"HEAD_CLS_NAME order {head_order} differs from CLASS_NAMES {list(class_names)}; "
                                   "the multihead class slices assume they agree (OpenPCDet issue #235)")
