"""Every OpenPCDet config shipped in tools/cfgs (tests/data/pcdet_cfgs, commit in its README): it loads with every
resolved number equal to the file, or it gives its documented refusal (docs/config.md).

The expected values are read from the YAML here, independently of assignaudit.config.pcdet: yaml.safe_load and a
re-implementation of pcdet/config.py's merge (base first, dicts merge, everything else replaces), base paths relative
to tools/. Which dataset class reads which GT filter key comes from the dataset classes' __getitem__ (table below).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import yaml

from assignaudit.assign.params import IouKind
from assignaudit.augment.params import (
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
from assignaudit.config.loader import load_config
from assignaudit.errors import ConfigError

TOOLS = Path(__file__).parent / "data" / "pcdet_cfgs" / "tools"
MODELS = sorted(p for p in (TOOLS / "cfgs").glob("*_models/*.yaml"))

# config (relative to tools/cfgs) -> a phrase of its refusal. Reasons per family: docs/config.md.
REFUSED = {
    "argo2_models/cbgs_voxel01_voxelnext.yaml": "VoxelNeXtHead' is not supported: its positive",
    "nuscenes_models/cbgs_voxel0075_voxelnext.yaml": "VoxelNeXtHead",
    "nuscenes_models/cbgs_voxel0075_voxelnext_doubleflip.yaml": "VoxelNeXtHead",
    "waymo_models/voxelnext2d_ioubranch.yaml": "VoxelNeXtHead",
    "waymo_models/voxelnext_ioubranch_large.yaml": "VoxelNeXtHead",
    "kitti_models/PartA2_free.yaml": "DENSE_HEAD: missing",
    "kitti_models/pointrcnn.yaml": "DENSE_HEAD: missing",
    "kitti_models/pointrcnn_iou.yaml": "DENSE_HEAD: missing",
    "once_models/pointrcnn.yaml": "DENSE_HEAD: missing",
    "waymo_models/mppnet_4frames.yaml": "DENSE_HEAD: missing",
    "waymo_models/mppnet_16frames.yaml": "DENSE_HEAD: missing",
    "kitti_models/voxel_rcnn_car_focal_multimodal.yaml": "IMG_AUG_TYPE: image-guided gt_sampling",
}

# Dataset class -> (classes dropped in __getitem__, expected min points from the merged DATA_CONFIG).
GT_FILTER = {
    "NuScenesDataset": ((), lambda d: 0 if not d.get("FILTER_MIN_POINTS_IN_GT") else
                        (1 if d["FILTER_MIN_POINTS_IN_GT"] is True else d["FILTER_MIN_POINTS_IN_GT"])),
    "WaymoDataset": (("unknown",), lambda d: 1 if d.get("FILTER_EMPTY_BOXES_FOR_TRAIN", False) else 0),
    "KittiDataset": (("DontCare",), lambda d: 0),
    "CustomDataset": (("DontCare",), lambda d: 0),
}


def _merge(config: dict, new: dict, origin: Path) -> dict:
    if "_BASE_CONFIG_" in new:
        # upstream opens it relative to tools/; custom_models/pv_rcnn.yaml writes it relative to its own folder
        base = next(p for p in (TOOLS / new["_BASE_CONFIG_"], origin.parent / new["_BASE_CONFIG_"]) if p.is_file())
        with open(base) as f:
            config.update(yaml.safe_load(f))
    for key, val in new.items():
        if key == "_BASE_CONFIG_":
            continue
        if isinstance(val, dict):
            config.setdefault(key, {})
            _merge(config[key], val, origin)
        else:
            config[key] = val
    return config


def raw(path: Path) -> dict:
    with open(path) as f:
        return _merge({}, yaml.safe_load(f), path)


def rel(path: Path) -> str:
    return path.relative_to(TOOLS / "cfgs").as_posix()


def counts(items) -> list[tuple[str, int]]:
    return [(s.split(":")[0], int(s.split(":")[1])) for s in items]


def pair(value, symmetric=False):
    return (-value, value) if symmetric and not isinstance(value, list) else tuple(value)


def expected_op(entry: dict):
    name = entry["NAME"]
    if name == "gt_sampling":
        prep = entry.get("PREPARE", {})
        return GTSampling(sample_groups=tuple(counts(entry["SAMPLE_GROUPS"])),
                          min_points=tuple(counts(prep.get("filter_by_min_points", []))),
                          limit_whole_scene=entry.get("LIMIT_WHOLE_SCENE", False),
                          filter_by_difficulty=tuple(prep.get("filter_by_difficulty", [])))
    if name == "random_world_flip":
        return WorldFlip(axes=tuple(entry["ALONG_AXIS_LIST"]))
    if name == "random_world_rotation":
        return WorldRotation(angle_range_rad=pair(entry["WORLD_ROT_ANGLE"], symmetric=True))
    if name == "random_world_scaling":
        return WorldScaling(scale_range=pair(entry["WORLD_SCALE_RANGE"]))
    if name == "random_world_translation":
        std = entry["NOISE_TRANSLATE_STD"]
        return WorldTranslation(std_m=tuple(std) if isinstance(std, list) else (std,) * 3)
    if name == "random_local_rotation":
        return LocalRotation(angle_range_rad=pair(entry["LOCAL_ROT_ANGLE"], symmetric=True))
    if name == "random_local_scaling":
        return LocalScaling(scale_range=pair(entry["LOCAL_SCALE_RANGE"]))
    if name == "random_local_translation":
        return LocalTranslation(axes=tuple(entry["ALONG_AXIS_LIST"]),
                                offset_range=pair(entry["LOCAL_TRANSLATION_RANGE"]))
    if name == "random_local_frustum_dropout":
        return LocalFrustumDropout(directions=tuple(entry["DIRECTION"]), intensity_range=pair(entry["INTENSITY_RANGE"]))
    if name == "random_local_pyramid_aug":
        return LocalPyramidAug(drop_prob=entry["DROP_PROB"], sparsify_prob=entry["SPARSIFY_PROB"],
                               sparsify_max_num=entry["SPARSIFY_MAX_NUM"], swap_prob=entry["SWAP_PROB"],
                               swap_max_num=entry["SWAP_MAX_NUM"])
    raise AssertionError(f"augmentation {name} loaded but the test does not know it")


def check_post(pp, section: dict) -> None:
    file_pp = section["POST_PROCESSING"]
    nms = file_pp.get("NMS_CONFIG", {})
    assert pp.score_thresh == file_pp["SCORE_THRESH"]
    if nms.get("NMS_TYPE") == "class_specific_nms":
        assert pp.multi_classes_nms and list(pp.nms_thresh_per_class) == nms["NMS_THRESH"]
        assert [pp.nms_pre_maxsize] * len(nms["NMS_THRESH"]) == nms["NMS_PRE_MAXSIZE"]
        assert [pp.nms_post_maxsize] * len(nms["NMS_THRESH"]) == nms["NMS_POST_MAXSIZE"]
        return
    assert pp.nms_thresh_per_class == ()
    assert pp.multi_classes_nms == nms.get("MULTI_CLASSES_NMS", False)
    assert pp.nms_type == nms.get("NMS_TYPE", "nms_gpu")
    for ours, key in ((pp.nms_thresh, "NMS_THRESH"), (pp.nms_pre_maxsize, "NMS_PRE_MAXSIZE"),
                      (pp.nms_post_maxsize, "NMS_POST_MAXSIZE")):
        if key in nms:
            assert ours == nms[key], key


def test_corpus_is_complete():
    """Every model config of the corpus is either expected to load or listed with its refusal."""
    assert len(MODELS) == 57
    assert set(REFUSED) <= {rel(p) for p in MODELS}


@pytest.mark.parametrize("path", [p for p in MODELS if rel(p) in REFUSED], ids=rel)
def test_refused_with_reason(path):
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert REFUSED[rel(path)] in message
    assert "\n" not in message  # one line


@pytest.mark.parametrize("path", [p for p in MODELS if rel(p) not in REFUSED], ids=rel)
def test_resolved_values_equal_file(path, caplog):
    caplog.set_level(logging.ERROR)
    cfg = load_config(path)
    f = raw(path)
    data, model = f["DATA_CONFIG"], f["MODEL"]
    head = model["DENSE_HEAD"]
    assert cfg.class_names == tuple(f["CLASS_NAMES"])
    assert cfg.point_cloud_range == tuple(data["POINT_CLOUD_RANGE"])
    voxel = [p["VOXEL_SIZE"] for p in data["DATA_PROCESSOR"] if p["NAME"].startswith("transform_points_to_voxels")]
    assert cfg.voxel_size == tuple(voxel[0])

    aug = data.get("DATA_AUGMENTOR", {})
    disabled = aug.get("DISABLE_AUG_LIST", [])
    entries = [e for e in aug.get("AUG_CONFIG_LIST", []) if e["NAME"] not in disabled]
    image_only = [e["NAME"] for e in entries if e["NAME"] == "imgaug"]  # camera images only: no box op
    assert list(cfg.augmentations) == [expected_op(e) for e in entries if e["NAME"] != "imgaug"]
    assert dict(cfg.dataset.options).get("image_only_augmentations") == (str(image_only).replace("'", '"')
                                                                         if image_only else None)

    range_entries = [p for p in data["DATA_PROCESSOR"] if p["NAME"] == "mask_points_and_boxes_outside_range"]
    removes = bool(range_entries) and range_entries[0]["REMOVE_OUTSIDE_BOXES"]
    assert cfg.gt_filters.range_filter == ("pcdet" if removes else "none")
    drop, min_points = GT_FILTER.get(data["DATASET"], ((), lambda d: 0))
    assert cfg.gt_filters.min_lidar_points == min_points(data)
    assert cfg.gt_filters.drop_classes == drop
    assert cfg.dataset.dataset_type == data["DATASET"]
    for e in entries:
        if e["NAME"] == "gt_sampling":
            assert list(cfg.dataset.db_infos) == e["DB_INFO_PATH"]
            backup = e.get("BACKUP_DB_INFO")
            assert cfg.dataset.backup_db_infos == ((backup["DB_INFO_PATH"],) if backup else ())
            assert cfg.dataset.backup_db_data_path == ((backup["DB_DATA_PATH"],) if backup else ())

    if cfg.head == "anchor":
        ta = head["TARGET_ASSIGNER_CONFIG"]
        assert (cfg.assigner.iou is IouKind.IOU_3D) == ta.get("MATCH_HEIGHT", False)
        sets = cfg.anchors.anchor_sets
        assert len(sets) == len(head["ANCHOR_GENERATOR_CONFIG"])
        for a, g in zip(sets, head["ANCHOR_GENERATOR_CONFIG"]):
            assert a.class_name == g["class_name"]
            assert [list(s) for s in a.sizes] == g["anchor_sizes"]
            assert list(a.rotations) == g["anchor_rotations"]
            assert list(a.bottom_heights) == g["anchor_bottom_heights"]
            assert (a.matched_threshold, a.unmatched_threshold) == (g["matched_threshold"], g["unmatched_threshold"])
            assert a.feature_map_stride == g["feature_map_stride"]
            assert a.align_center == g.get("align_center", False)
        assert cfg.anchors.multihead == head.get("USE_MULTIHEAD", False)
        check_post(cfg.post_processing, model)
    elif cfg.head == "center":
        ta = head["TARGET_ASSIGNER_CONFIG"]
        hm = cfg.heatmap
        assert [list(h) for h in hm.heads] == head["CLASS_NAMES_EACH_HEAD"]
        assert hm.feature_map_stride == ta["FEATURE_MAP_STRIDE"]
        assert hm.num_max_objs == ta["NUM_MAX_OBJS"]
        assert hm.gaussian_overlap == ta["GAUSSIAN_OVERLAP"]
        assert hm.min_radius == ta["MIN_RADIUS"]
        check_post(cfg.post_processing, head)
    else:
        assert head["NAME"] == "TransFusionHead"
        assert cfg.query.num_queries == head["NUM_PROPOSALS"]
        assert cfg.query.num_layers == head.get("NUM_DECODER_LAYERS", 1)
        pp = cfg.post_processing
        # decode_bbox thresholds with the head's POST_PROCESSING and runs no NMS (MODEL.POST_PROCESSING's
        # SCORE_THRESH is recall logging only).
        assert pp.score_thresh == head["POST_PROCESSING"]["SCORE_THRESH"] != model["POST_PROCESSING"]["SCORE_THRESH"]
        assert pp.nms_thresh == 1.0 and pp.nms_post_maxsize == head["NUM_PROPOSALS"]


def test_once_pointpillar_has_no_range_filter():
    """once_models/pointpillar.yaml replaces DATA_PROCESSOR without mask_points_and_boxes_outside_range: upstream
    hands every GT box to the assigner, out-of-range ones included."""
    cfg = load_config(TOOLS / "cfgs" / "once_models" / "pointpillar.yaml")
    assert cfg.gt_filters.range_filter == "none"


def test_lyft_ignores_filter_min_points_in_gt():
    """lyft_dataset.yaml says FILTER_MIN_POINTS_IN_GT: 1, but LyftDataset.__getitem__ never reads it."""
    path = TOOLS / "cfgs" / "lyft_models" / "cbgs_second_multihead.yaml"
    assert raw(path)["DATA_CONFIG"]["FILTER_MIN_POINTS_IN_GT"] == 1
    assert load_config(path).gt_filters.min_lidar_points == 0


def test_waymo_empty_boxes_and_gt_sampling_options_recorded():
    path = TOOLS / "cfgs" / "waymo_models" / "centerpoint_4frames.yaml"
    cfg = load_config(path)
    assert cfg.gt_filters.min_lidar_points == 1 and cfg.gt_filters.drop_classes == ("unknown",)
    options = dict(cfg.dataset.options)
    assert options["gt_sampling.FILTER_OBJ_POINTS_BY_TIMESTAMP"] == "true"
    assert options["gt_sampling.TIME_RANGE"] == "[0.3, 0.0]"
    assert options["FILTER_EMPTY_BOXES_FOR_TRAIN"] == "true"


@pytest.mark.parametrize("edit, message", [
    (lambda s, d: s["BACKUP_DB_INFO"].update(DB_INFOPATH="x.pkl"), "BACKUP_DB_INFO.DB_INFOPATH: unknown key"),
    (lambda s, d: s.update(USE_SHARED_MEMORY="maybe"), "USE_SHARED_MEMORY"),
    (lambda s, d: s.update(FILTER_OBJ_POINTS_BY_TIMESTAMP=True), "TIME_RANGE: missing"),
    (lambda s, d: s.update(DB_INFO_PATH=["a.pkl", "b.pkl"]), "exactly one DB_INFO_PATH"),
    (lambda s, d: d.update(FILTER_EMPTY_BOXES_FOR_TRAIN=2), "FILTER_EMPTY_BOXES_FOR_TRAIN"),
    (lambda s, d: d.update(DATASET="MyWaymoDataset"), "whether it reads this key is unknown"),
    (lambda s, d: s.update(DATABASE_WITH_FAKELIDAR=True), "DATABASE_WITH_FAKELIDAR: True makes"),
])
def test_waymo_bad_options(tmp_path, edit, message):
    cfg = raw(TOOLS / "cfgs" / "waymo_models" / "second.yaml")
    data = cfg["DATA_CONFIG"]
    edit(data["DATA_AUGMENTOR"]["AUG_CONFIG_LIST"][0], data)
    path = tmp_path / "waymo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_world_frustum_dropout_refused_with_reason(tmp_path):
    """pointpillar_newaugs.yaml disables it; enabled, it drops boxes by the point cloud's extent."""
    cfg = raw(TOOLS / "cfgs" / "kitti_models" / "pointpillar_newaugs.yaml")
    cfg["DATA_CONFIG"]["DATA_AUGMENTOR"]["DISABLE_AUG_LIST"] = []
    path = tmp_path / "newaugs_all.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="random_world_frustum_dropout' is not replayed: it drops every GT box"):
        load_config(path)
    # with only the world frustum dropout disabled, the local translation and local frustum dropout load
    cfg["DATA_CONFIG"]["DATA_AUGMENTOR"]["DISABLE_AUG_LIST"] = ["random_world_frustum_dropout"]
    path.write_text(yaml.safe_dump(cfg))
    ops = load_config(path).augmentations
    assert LocalTranslation(("x", "y", "z"), (0.95, 1.05)) in ops
    assert LocalFrustumDropout(("top",), (0.0, 0.2)) in ops


def test_local_rotation_refused_with_velocity_boxes(tmp_path):
    """nuScenes GT boxes carry velocity while the queue runs; upstream local_rotation raises on them."""
    cfg = raw(TOOLS / "cfgs" / "nuscenes_models" / "cbgs_pp_multihead.yaml")
    cfg["DATA_CONFIG"]["DATA_AUGMENTOR"]["AUG_CONFIG_LIST"].append(
        {"NAME": "random_local_rotation", "LOCAL_ROT_ANGLE": [-0.1, 0.1]})
    path = tmp_path / "nus_local.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="cannot train"):
        load_config(path)


@pytest.mark.parametrize("name", ["kitti_models/pointpillar_newaugs.yaml", "kitti_models/pointpillar_pyramid_aug.yaml",
                                  "waymo_models/dsvt_voxel.yaml", "once_models/pointpillar.yaml"])
def test_our_schema_round_trip(name, caplog):
    """`config show --yaml` of the new ops, per-class NMS and range_filter none loads back to the same config."""
    from assignaudit.config.schema import config_from_dict, config_to_dict

    caplog.set_level(logging.ERROR)
    cfg = load_config(TOOLS / "cfgs" / name)
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(config_to_dict(cfg), sort_keys=False)), "round-trip",
                             default_name="x", source="x")
    assert again.augmentations == cfg.augmentations
    assert again.post_processing == cfg.post_processing
    assert again.gt_filters == cfg.gt_filters


def test_yaw_asks_for_one_nms_threshold_with_class_specific_nms():
    from assignaudit.yaw.pipeline import NmsOverrides, resolve_nms

    cfg = load_config(TOOLS / "cfgs" / "waymo_models" / "dsvt_voxel.yaml")
    with pytest.raises(ConfigError, match=r"per-class NMS thresholds \[0.75, 0.6, 0.55\].*--nms-thresh"):
        resolve_nms(NmsOverrides(), cfg)
    settings = resolve_nms(NmsOverrides(thresh=0.6), cfg)
    assert settings.thresh == 0.6 and not settings.class_agnostic and settings.post_max == 500


def test_repeated_gt_sampling_classes_follow_the_sampler_dicts(tmp_path):
    """SAMPLE_GROUPS fills a dict (first position, last count); filter_by_min_points filters in turn (largest n)."""
    cfg = raw(TOOLS / "cfgs" / "waymo_models" / "second.yaml")
    entry = cfg["DATA_CONFIG"]["DATA_AUGMENTOR"]["AUG_CONFIG_LIST"][0]
    entry["SAMPLE_GROUPS"] = ["Vehicle:15", "Pedestrian:10", "Vehicle:3"]
    entry["PREPARE"]["filter_by_min_points"] = ["Vehicle:5", "Vehicle:2", "Cyclist:4"]
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(cfg))
    op = load_config(path).augmentations[0]
    assert op.sample_groups == (("Vehicle", 3), ("Pedestrian", 10))
    assert op.min_points == (("Vehicle", 5), ("Cyclist", 4))


# One shipped config per newly loading family, counted on a small box table of its dataset's classes.
COUNT_SMOKE = {
    "waymo_models/second.yaml": ["Vehicle", "Pedestrian", "Cyclist", "unknown"],
    "waymo_models/dsvt_pillar.yaml": ["Vehicle", "Pedestrian", "Cyclist"],
    "kitti_models/pointpillar_newaugs.yaml": ["Car", "Pedestrian", "Cyclist", "DontCare"],
    "once_models/pointpillar.yaml": ["Car", "Bus", "Truck", "Pedestrian", "Cyclist"],
}


@pytest.mark.parametrize("name", COUNT_SMOKE, ids=str)
def test_count_runs_on_matching_classes(name, tmp_path):
    import numpy as np
    import pandas as pd
    from typer.testing import CliRunner

    from assignaudit.cli import app

    classes = COUNT_SMOKE[name]
    rng = np.random.default_rng(0)
    rows = []
    for f in range(2):
        for i in range(8):
            rows.append({"frame_id": f"f{f}", "class": classes[i % len(classes)], "x": rng.uniform(-45, 45),
                         "y": rng.uniform(-35, 35), "z": -0.5, "dx": 3.9, "dy": 1.7, "dz": 1.5,
                         "yaw": rng.uniform(-3, 3), "num_lidar_pts": int(rng.integers(0, 40))})
    table = tmp_path / "boxes.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["count", "--quiet", "--config", str(TOOLS / "cfgs" / name), "--boxes",
                                      str(table), "--replays", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    objects = pd.read_parquet(out / "objects.parquet")
    assert len(objects) > 0
    assert not set(objects["class"]) & {"unknown", "DontCare"}  # dropped by the dataset class, never counted
