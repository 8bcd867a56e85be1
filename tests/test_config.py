"""Detector configs: presets against the spec's numbers, the OpenPCDet importer, overrides and validation.

Expected numbers are typed in from assignment-semantics.md §11.1 / §11.5 (not read back from the presets), and the
OpenPCDet test configs under tests/data/pcdet/ were written independently in OpenPCDet's own format.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from assignaudit.assign.params import Framework, IouKind
from assignaudit.augment.params import GTSampling, WorldFlip, WorldRotation, WorldScaling, WorldTranslation
from assignaudit.config import DEFAULT_PRESET, config_to_dict, list_presets, load_config
from assignaudit.config.overrides import apply_pcdet_overrides, apply_schema_overrides
from assignaudit.config.pcdet import resolve_pcdet_yaml
from assignaudit.errors import ConfigError

DATA = Path(__file__).parent / "data" / "pcdet"
TOOLS = DATA / "tools"
NUS_PP = TOOLS / "cfgs" / "nuscenes_models" / "cbgs_pp_multihead.yaml"
KITTI_PP = TOOLS / "cfgs" / "kitti_models" / "pointpillar.yaml"
NUS_PRESET = "pcdet-nuscenes-pointpillars-multihead"
KITTI_PRESET = "pcdet-kitti-pointpillars"

NUS_CLASSES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
               "pedestrian", "traffic_cone")
# spec §11.1: class -> (dx, dy, dz), bottom z, matched, unmatched
NUS_ANCHORS = {
    "car": ((4.63, 1.97, 1.74), -0.95, 0.60, 0.45),
    "truck": ((6.93, 2.51, 2.84), -0.60, 0.55, 0.40),
    "construction_vehicle": ((6.37, 2.85, 3.19), -0.225, 0.50, 0.35),
    "bus": ((10.5, 2.94, 3.47), -0.085, 0.55, 0.40),
    "trailer": ((12.29, 2.90, 3.87), 0.115, 0.50, 0.35),
    "barrier": ((0.50, 2.53, 0.98), -1.33, 0.55, 0.40),
    "motorcycle": ((2.11, 0.77, 1.47), -1.085, 0.50, 0.30),
    "bicycle": ((1.70, 0.60, 1.28), -1.18, 0.50, 0.35),
    "pedestrian": ((0.73, 0.67, 1.77), -0.935, 0.60, 0.40),
    "traffic_cone": ((0.41, 0.41, 1.07), -1.285, 0.60, 0.40),
}
NUS_GROUPS = (("car", 2), ("truck", 3), ("construction_vehicle", 7), ("bus", 4), ("trailer", 6), ("barrier", 2),
              ("motorcycle", 6), ("bicycle", 6), ("pedestrian", 2), ("traffic_cone", 2))


def same_but_name(a, b) -> bool:
    return dataclasses.replace(a, name=b.name, source=b.source) == b


def copy_tree(tmp_path: Path) -> Path:
    """A writable copy of tests/data/pcdet (OpenPCDet's tools/ layout)."""
    dst = tmp_path / "pcdet"
    shutil.copytree(DATA, dst)
    return dst / "tools"


def edited(tmp_path: Path, src: Path, old: str, new: str) -> Path:
    """Copy the tree and replace ``old`` (which must occur) by ``new`` in the copy of ``src``."""
    tools = copy_tree(tmp_path)
    path = tools / src.relative_to(TOOLS)
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


# ---- presets ---------------------------------------------------------------------------------------------------------


def test_presets_listed_and_default():
    assert set(list_presets()) >= {NUS_PRESET, KITTI_PRESET}
    assert DEFAULT_PRESET == NUS_PRESET
    assert load_config() == load_config(NUS_PRESET)


def test_nuscenes_preset_matches_spec_11_1():
    cfg = load_config()
    assert cfg.class_names == NUS_CLASSES
    assert cfg.point_cloud_range == (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
    assert cfg.voxel_size == (0.2, 0.2, 8.0)
    assert cfg.grid_size == (512, 512, 1)  # 102.4 / 0.2, 8 / 8
    assert cfg.anchors.multihead is True
    sets = cfg.anchors.anchor_sets
    assert [s.class_name for s in sets] == list(NUS_CLASSES)
    for s in sets:
        size, bottom, matched, unmatched = NUS_ANCHORS[s.class_name]
        assert s.sizes == (size,) and s.bottom_heights == (bottom,)
        assert (s.matched_threshold, s.unmatched_threshold) == (matched, unmatched)
        assert s.rotations == (0.0, 1.57) and s.feature_map_stride == 4 and s.align_center is False
        assert s.min_pos_iou is None
        # 512 // 4 = 128 per axis, 1 size x 2 rotations x 1 height
        assert (cfg.grid_size[0] // s.feature_map_stride, s.num_anchors_per_location) == (128, 2)
    assert sum(128 * 128 * s.num_anchors_per_location for s in sets) == 327_680
    assert cfg.assigner.framework is Framework.PCDET and cfg.assigner.iou is IouKind.NEAREST_BEV
    assert cfg.assigner.nearest_convention == "pcdet"
    assert cfg.augmentations == (
        GTSampling(sample_groups=NUS_GROUPS, min_points=tuple((c, 5) for c in NUS_CLASSES), limit_whole_scene=True),
        WorldFlip(axes=("x", "y")),
        WorldRotation(angle_range_rad=(-0.3925, 0.3925)),
        WorldScaling(scale_range=(0.95, 1.05)),
    )
    assert cfg.gt_filters.min_lidar_points == 1 and cfg.gt_filters.range_filter == "pcdet"
    pp = cfg.post_processing
    assert (pp.score_thresh, pp.multi_classes_nms, pp.nms_type, pp.nms_thresh, pp.nms_pre_maxsize,
            pp.nms_post_maxsize) == (0.1, True, "nms_gpu", 0.2, 1000, 83)


def test_kitti_preset_matches_spec_11_5():
    cfg = load_config(KITTI_PRESET)
    assert cfg.class_names == ("Car", "Pedestrian", "Cyclist")
    assert cfg.point_cloud_range == (0.0, -39.68, -3.0, 69.12, 39.68, 1.0)
    assert cfg.voxel_size == (0.16, 0.16, 4.0)
    assert cfg.grid_size == (432, 496, 1)
    assert cfg.anchors.multihead is False
    expected = {"Car": ((3.9, 1.6, 1.56), -1.78, 0.6, 0.45), "Pedestrian": ((0.8, 0.6, 1.73), -0.6, 0.5, 0.35),
                "Cyclist": ((1.76, 0.6, 1.73), -0.6, 0.5, 0.35)}
    for s in cfg.anchors.anchor_sets:
        size, bottom, matched, unmatched = expected[s.class_name]
        assert (s.sizes, s.bottom_heights, s.matched_threshold, s.unmatched_threshold) == \
            ((size,), (bottom,), matched, unmatched)
        assert s.rotations == (0.0, 1.57) and s.feature_map_stride == 2
        assert (432 // 2, 496 // 2) == (216, 248)
    assert sum(216 * 248 * s.num_anchors_per_location for s in cfg.anchors.anchor_sets) == 321_408
    assert cfg.augmentations == (
        GTSampling(sample_groups=(("Car", 15), ("Pedestrian", 15), ("Cyclist", 15)),
                   min_points=(("Car", 5), ("Pedestrian", 5), ("Cyclist", 5)), limit_whole_scene=False,
                   filter_by_difficulty=(-1,)),
        WorldFlip(axes=("x",)),
        WorldRotation(angle_range_rad=(-0.78539816, 0.78539816)),
        WorldScaling(scale_range=(0.95, 1.05)),
    )
    assert cfg.gt_filters.min_lidar_points == 0
    pp = cfg.post_processing
    assert (pp.multi_classes_nms, pp.nms_thresh, pp.nms_pre_maxsize, pp.nms_post_maxsize) == (False, 0.01, 4096, 500)


@pytest.mark.parametrize("preset", [NUS_PRESET, KITTI_PRESET])
def test_schema_round_trip(preset, tmp_path):
    cfg = load_config(preset)
    path = tmp_path / "dumped.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    assert same_but_name(load_config(path), cfg)


# ---- OpenPCDet import ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path,preset", [(NUS_PP, NUS_PRESET), (KITTI_PP, KITTI_PRESET)])
def test_pcdet_import_equals_preset(path, preset):
    imported = load_config(path)
    assert imported.name == path.stem and imported.source == str(path)
    assert same_but_name(imported, load_config(preset))


def test_pcdet_import_independent_of_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # upstream resolves _BASE_CONFIG_ against the cwd; we do not depend on it
    assert same_but_name(load_config(NUS_PP.resolve()), load_config(NUS_PRESET))


def test_base_config_merge_semantics(tmp_path):
    # Hand-derived: dicts merge key by key, lists and scalars replace, the base's own keys survive.
    (tmp_path / "base.yaml").write_text(
        "A: {x: 1, y: [1, 2, 3], z: {p: 1, q: 2}}\nL: [a, b]\nKEEP: 7\n")
    (tmp_path / "model.yaml").write_text(
        "_BASE_CONFIG_: base.yaml\nA: {y: [9], z: {q: 3}}\nL: [c]\nNEW: 1\n")
    merged = resolve_pcdet_yaml(tmp_path / "model.yaml")
    assert merged == {"_BASE_CONFIG_": "base.yaml", "A": {"x": 1, "y": [9], "z": {"p": 1, "q": 3}}, "L": ["c"],
                      "KEEP": 7, "NEW": 1}


def test_base_config_nested_and_relative_to_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.yaml").write_text("P: 1\nQ: [1]\n")
    (tmp_path / "model.yaml").write_text("D:\n  _BASE_CONFIG_: sub/data.yaml\n  Q: [2]\n")
    assert resolve_pcdet_yaml(tmp_path / "model.yaml") == {"D": {"_BASE_CONFIG_": "sub/data.yaml", "P": 1, "Q": [2]}}


def test_kitti_lists_replace_base_lists():
    merged = resolve_pcdet_yaml(KITTI_PP)
    names = [e["NAME"] for e in merged["DATA_CONFIG"]["DATA_AUGMENTOR"]["AUG_CONFIG_LIST"]]
    # the base's random_local_rotation is gone (a merge would have kept it), the base's dataset keys stay
    assert names == ["gt_sampling", "random_world_flip", "random_world_rotation", "random_world_scaling"]
    assert merged["DATA_CONFIG"]["DATASET"] == "KittiDataset"


def test_missing_base_config(tmp_path):
    (tmp_path / "m.yaml").write_text("CLASS_NAMES: [car]\nDATA_CONFIG: {_BASE_CONFIG_: cfgs/nope.yaml}\n")
    with pytest.raises(ConfigError, match=r"_BASE_CONFIG_: 'cfgs/nope.yaml' not found"):
        load_config(tmp_path / "m.yaml")


def test_disabled_unsupported_aug_is_fine(tmp_path):
    path = edited(tmp_path, KITTI_PP, "DISABLE_AUG_LIST: ['placeholder']",
                  "DISABLE_AUG_LIST: ['random_world_frustum_dropout', 'random_world_rotation']")
    text = path.read_text().replace(
        "            - NAME: random_world_flip\n",
        "            - NAME: random_world_frustum_dropout\n              INTENSITY_RANGE: [0, 0.2]\n\n"
        "            - NAME: random_world_flip\n", 1)
    path.write_text(text)
    cfg = load_config(path)
    assert [type(op).__name__ for op in cfg.augmentations] == ["GTSampling", "WorldFlip", "WorldScaling"]
    path.write_text(text.replace("'random_world_frustum_dropout', ", ""))
    with pytest.raises(ConfigError, match=r"AUG_CONFIG_LIST\[1\]: augmentation 'random_world_frustum_dropout'"):
        load_config(path)


def test_translation_and_scalar_rotation(tmp_path):
    path = edited(tmp_path, NUS_PP, "    POINT_CLOUD_RANGE: [-51.2",
                  "    DATA_AUGMENTOR:\n        AUG_CONFIG_LIST:\n"
                  "            - {NAME: random_world_rotation, WORLD_ROT_ANGLE: 0.5}\n"
                  "            - {NAME: random_world_translation, NOISE_TRANSLATE_STD: [0.5, 0.5, 0.2]}\n"
                  "    POINT_CLOUD_RANGE: [-51.2")
    cfg = load_config(path)
    assert cfg.augmentations == (WorldRotation(angle_range_rad=(-0.5, 0.5)),
                                 WorldTranslation(std_m=(0.5, 0.5, 0.2)))


# ---- overrides -------------------------------------------------------------------------------------------------------


def test_schema_override():
    cfg = load_config(None, [("anchors.1.matched_threshold", "0.7"), ("post_processing.nms_thresh", "0.5")])
    assert cfg.anchors.anchor_sets[1].matched_threshold == 0.7
    assert cfg.anchors.anchor_sets[0].matched_threshold == 0.6
    assert cfg.post_processing.nms_thresh == 0.5


def test_pcdet_override_with_list_index():
    cfg = load_config(NUS_PP, [("MODEL.DENSE_HEAD.ANCHOR_GENERATOR_CONFIG.0.matched_threshold", "0.7"),
                               ("MODEL.POST_PROCESSING.NMS_CONFIG", "NMS_THRESH:0.5,NMS_POST_MAXSIZE:100"),
                               ("DATA_CONFIG.POINT_CLOUD_RANGE", "-50,-50,-5,50,50,3")])
    assert cfg.anchors.anchor_sets[0].matched_threshold == 0.7
    assert (cfg.post_processing.nms_thresh, cfg.post_processing.nms_post_maxsize) == (0.5, 100)
    assert cfg.point_cloud_range == (-50.0, -50.0, -5.0, 50.0, 50.0, 3.0)
    assert cfg.grid_size == (500, 500, 1)


def test_pcdet_override_literal_list():
    cfg = load_config(NUS_PP, [("MODEL.DENSE_HEAD.ANCHOR_GENERATOR_CONFIG.1.anchor_rotations", "[0.0]")])
    assert cfg.anchors.anchor_sets[1].rotations == (0.0,)


@pytest.mark.parametrize("key,value,message", [
    ("MODEL.DENSE_HEAD.NOPE", "1", "key 'NOPE' not found"),
    ("MODEL.DENSE_HEAD.ANCHOR_GENERATOR_CONFIG.10.matched_threshold", "0.7", "index 10 is out of range"),
    ("MODEL.DENSE_HEAD.TARGET_ASSIGNER_CONFIG.MATCH_HEIGHT", "0.5", "does not match the existing bool"),
    ("MODEL.DENSE_HEAD.ANCHOR_GENERATOR_CONFIG.0.matched_threshold", "high", "does not match the existing float"),
])
def test_pcdet_override_errors(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(NUS_PP, [(key, value)])


def test_overrides_do_not_mutate_input():
    raw = {"anchors": [{"matched_threshold": 0.6}], "MODEL": {"X": [1.0, 2.0]}}
    before = copy.deepcopy(raw)
    apply_schema_overrides(raw, [("anchors.0.matched_threshold", "0.7")])
    apply_pcdet_overrides(raw, [("MODEL.X", "3,4")])
    assert raw == before
    assert apply_pcdet_overrides(raw, [("MODEL.X", "3,4")])["MODEL"]["X"] == [3.0, 4.0]


# ---- bad input -------------------------------------------------------------------------------------------------------


def test_unknown_preset_lists_available():
    with pytest.raises(ConfigError) as err:
        load_config("pcdet-nuscenes-centerpoint")
    assert "unknown preset 'pcdet-nuscenes-centerpoint'" in str(err.value)
    assert NUS_PRESET in str(err.value) and KITTI_PRESET in str(err.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("no/such/config.yaml")


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("assignaudit: 1\nclass_names: [car\nvoxel_size: [1, 1, 1]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:3:") and "malformed YAML" in msg and "\n" not in msg


def test_not_a_config(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("foo: 1\n")
    with pytest.raises(ConfigError, match="not a detector config"):
        load_config(path)


@pytest.mark.parametrize("key,value,message", [
    ("anchors.3.matched_threshold", "high", r"anchors\[3\]\.matched_threshold: expected a number, got 'high'"),
    ("anchors.3.matched_threshold", "1.5", r"anchors\[3\]\.matched_threshold: expected a number in \[0, 1\]"),
    ("anchors.2.unmatched_threshold", "0.6", r"anchors\[2\]\.unmatched_threshold: 0.6 is above matched"),
    ("anchors.0.sizes", "[[4.63, 0, 1.74]]", r"anchors\[0\]\.sizes\[0\]\[1\]: expected a positive number"),
    ("anchors.0.sizes", "[[4.63, 1.74]]", r"anchors\[0\]\.sizes\[0\]: expected 3 values"),
    ("point_cloud_range", "[-51.2, -51.2, 51.2, 51.2]", r"point_cloud_range: expected 6 values, got 4"),
    ("point_cloud_range", "[51.2, -51.2, -5, -51.2, 51.2, 3]", r"point_cloud_range: x_min must be < x_max"),
    ("voxel_size", "[0.2, 0.2, -8]", r"voxel_size\[2\]: expected a positive number"),
    ("anchors.0.class_name", "Car", r"anchors\[0\]\.class_name: 'Car' is not in class_names"),
    ("anchors.0.feature_map_stride", "1024", r"anchors\[0\]\.feature_map_stride: stride 1024 leaves a 0 x 0"),
    ("anchors.0.align_center", "maybe", r"anchors\[0\]\.align_center: expected true or false"),
    ("anchors.0.colour", "red", r"anchors\[0\]\.colour: unknown key"),
    ("assigner.framework", "detectron", r"assigner\.framework: expected one of pcdet, mmdet"),
    ("assigner.min_pos_iou", "0.3", r"assigner\.min_pos_iou: only applies to framework mmdet"),
    ("assigner.match_height", "true", r"assigner\.match_height: contradicts iou: nearest_bev"),
    ("augmentations.1.type", "world_shear", r"augmentations\[1\]\.type: expected one of gt_sampling"),
    ("augmentations.0.sample_groups.Car", "2", r"augmentations\[0\]: gt_sampling class 'Car' is not in class_names"),
    ("gt_filters.range_filter", "strict", r"gt_filters\.range_filter: expected one of pcdet, mmdet3d"),
    ("post_processing.nms_pre_maxsize", "0", r"post_processing\.nms_pre_maxsize: expected an integer >= 1"),
    ("assignaudit", "2", r"assignaudit: unsupported schema version 2"),
])
def test_schema_validation_errors(key, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, [(key, value)])
    assert str(err.value).startswith(f"preset {NUS_PRESET}: ") and "\n" not in str(err.value)


def test_mmdet_assigner_fields(tmp_path):
    raw = config_to_dict(load_config())
    raw["assigner"] = {"framework": "mmdet", "min_pos_iou": 0.3, "class_agnostic": True}
    raw["anchors"][0]["min_pos_iou"] = 0.45
    del raw["anchors"][1:]  # class-agnostic: not every class needs its own anchor set
    path = tmp_path / "mm.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(path)
    assert cfg.assigner.framework is Framework.MMDET and cfg.assigner.min_pos_iou == 0.3
    assert cfg.assigner.class_agnostic and cfg.assigner.nearest_convention == "mmdet3d"
    assert cfg.anchors.anchor_sets[0].min_pos_iou == 0.45
    with pytest.raises(ConfigError, match="class 'truck' has no anchor set"):
        load_config(path, [("assigner.class_agnostic", "false")])


@pytest.mark.parametrize("old,new,message", [
    ("NAME: AxisAlignedTargetAssigner", "NAME: ATSSTargetAssigner",
     r"TARGET_ASSIGNER_CONFIG\.NAME: 'ATSSTargetAssigner' is not supported.*ATSS"),
    ("POS_FRACTION: -1.0", "POS_FRACTION: 0.25", r"TARGET_ASSIGNER_CONFIG\.POS_FRACTION: 0.25 selects the random"),
    ("NAME: AnchorHeadMulti", "NAME: PointHeadSimple",
     r"MODEL\.DENSE_HEAD\.NAME: 'PointHeadSimple' is not supported .*TARGET_ASSIGNER_CONFIG\.NAME is "
     r"'AxisAlignedTargetAssigner'"),
    ("'matched_threshold': 0.55,", "'matched_threshold': 'high',",
     r"ANCHOR_GENERATOR_CONFIG\[1\]\.matched_threshold: expected a number, got 'high'"),
    ("'class_name': bus,", "'class_name': coach,",
     r"ANCHOR_GENERATOR_CONFIG\[3\]\.class_name: 'coach' is not in class_names"),
    ("{'HEAD_CLS_NAME': ['bus', 'trailer']}", "{'HEAD_CLS_NAME': ['trailer', 'bus']}",
     r"RPN_HEAD_CFGS: HEAD_CLS_NAME order .* differs from ANCHOR_GENERATOR_CONFIG order .*issue #235"),
    ("VOXEL_SIZE: [0.2, 0.2, 8.0]", "VOXEL_SIZE: [0.2, 0.2]", r"VOXEL_SIZE: expected 3 values, got 2"),
    ("REMOVE_OUTSIDE_BOXES: True", "REMOVE_OUTSIDE_BOXES: True\n            USE_CENTER_TO_FILTER: False",
     r"DATA_PROCESSOR\[0\]\.USE_CENTER_TO_FILTER: False .* not supported"),
    ("MATCH_HEIGHT: False", "MATCH_HEIGHT: False\n            SAMPLE_STRATEGY: topk",
     r"TARGET_ASSIGNER_CONFIG\.SAMPLE_STRATEGY: key not understood"),
])
def test_pcdet_bad_nuscenes_model(tmp_path, old, new, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(edited(tmp_path, NUS_PP, old, new))
    assert "\n" not in str(err.value)


def test_pcdet_class_names_order_mismatch(tmp_path):
    path = edited(tmp_path, NUS_PP, "CLASS_NAMES: ['car','truck'", "CLASS_NAMES: ['truck','car'")
    with pytest.raises(ConfigError, match=r"differs from CLASS_NAMES .*issue #235"):
        load_config(path)


@pytest.mark.parametrize("old,new,message", [
    ("- NAME: random_world_flip\n", "- NAME: random_world_frustum_dropout\n",
     r"AUG_CONFIG_LIST\[1\]: augmentation 'random_world_frustum_dropout' is not replayed.*DISABLE_AUG_LIST"),
    ("ALONG_AXIS_LIST: ['x']", "ALONG_AXIS_LIST: ['z']", r"ALONG_AXIS_LIST\[0\]: expected one of x, y; got 'z'"),
    ("SAMPLE_GROUPS: ['Car:15'", "SAMPLE_GROUPS: ['Car15'", r"SAMPLE_GROUPS\[0\]: expected 'class:count'"),
    ("MATCH_HEIGHT: False", "MATCH_HEIGHT: True", r"USE_ROAD_PLANE: not supported with MATCH_HEIGHT True"),
    ("WORLD_SCALE_RANGE: [0.95, 1.05]", "WORLD_SCALE_RANGE: [1.05, 0.95]",
     r"WORLD_SCALE_RANGE: expected \[low, high\]"),
])
def test_pcdet_bad_kitti_model(tmp_path, old, new, message):
    with pytest.raises(ConfigError, match=message):
        load_config(edited(tmp_path, KITTI_PP, old, new))


def test_match_height_maps_to_3d_iou(tmp_path):
    cfg = load_config(edited(tmp_path, NUS_PP, "MATCH_HEIGHT: False", "MATCH_HEIGHT: True"))
    assert cfg.assigner.iou is IouKind.IOU_3D


def test_docs_example_is_valid(tmp_path):
    # The complete example in docs/config.md must load (the docs are the schema's reference).
    text = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(block)
    cfg = load_config(path)
    assert cfg.name == "my-pointpillars" and cfg.class_names == ("car", "pedestrian")
    assert [type(op).__name__ for op in cfg.augmentations] == [
        "GTSampling", "WorldFlip", "WorldRotation", "WorldScaling", "WorldTranslation"]
    assert cfg.post_processing.nms_post_maxsize == 83
