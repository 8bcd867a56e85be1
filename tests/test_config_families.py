"""Head families in our schema and the OpenPCDet importer: CenterHead, ATSS, TransFusion, the new presets.

Expected numbers are typed in from assignment-semantics.md §11.2-§11.5 (not read back from the presets); the
framework-format configs under tests/data/ were written in OpenPCDet's / mmdetection3d's own formats.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from assignaudit.assign.heatmap import HeatmapParams
from assignaudit.assign.params import AnchorLevel, Framework, IouKind, QueryParams
from assignaudit.augment.params import (
    GlobalRotScaleTrans, GTSampling, ObjectSample, RandomFlip3D, WorldFlip, WorldRotation, WorldScaling,
    WorldTranslation,
)
from assignaudit.cli import app
from assignaudit.config import config_from_dict, config_to_dict, list_presets, load_config
from assignaudit.errors import ConfigError

DATA = Path(__file__).parent / "data"
PCDET_TOOLS = DATA / "pcdet" / "tools"
CP_PCDET = PCDET_TOOLS / "cfgs" / "nuscenes_models" / "cbgs_voxel0075_res3d_centerpoint.yaml"
NUS_PP = PCDET_TOOLS / "cfgs" / "nuscenes_models" / "cbgs_pp_multihead.yaml"
MM = DATA / "mmdet3d" / "configs"
PP_SECFPN = MM / "pointpillars" / "pointpillars_hv_secfpn_sbn-all_8xb4-2x_nus-3d.py"
CP_MM = MM / "centerpoint" / "centerpoint_voxel0075_second_secfpn_8xb4-cyclic-20e_nus-3d.py"
KITTI_MM = MM / "pointpillars" / "pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py"

NEW_PRESETS = {
    "pcdet-nuscenes-centerpoint-voxel0075": CP_PCDET,
    "mmdet3d-nuscenes-pointpillars-secfpn": PP_SECFPN,
    "mmdet3d-nuscenes-centerpoint-voxel0075": CP_MM,
    "mmdet3d-kitti-pointpillars-3class": KITTI_MM,
}
CP_CLASSES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
              "pedestrian", "traffic_cone")
CP_HEADS = (("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",),
            ("motorcycle", "bicycle"), ("pedestrian", "traffic_cone"))
NUS_GROUPS = (("car", 2), ("truck", 3), ("construction_vehicle", 7), ("bus", 4), ("trailer", 6), ("barrier", 2),
              ("motorcycle", 6), ("bicycle", 6), ("pedestrian", 2), ("traffic_cone", 2))

runner = CliRunner()


def without_identity(cfg) -> dict:
    d = cfg.to_dict()
    del d["name"], d["source"]
    return d


def edited_copy(tmp_path: Path, src: Path, old: str, new: str) -> Path:
    """Copy tests/data/pcdet and replace ``old`` (which must occur) by ``new`` in the copy of ``src``."""
    shutil.copytree(DATA / "pcdet", tmp_path / "pcdet")
    path = tmp_path / "pcdet" / "tools" / src.relative_to(PCDET_TOOLS)
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


# ---- presets -------------------------------------------------------------------------------------------------------


def test_new_presets_listed():
    assert set(NEW_PRESETS) <= set(list_presets())


@pytest.mark.parametrize("preset,path", list(NEW_PRESETS.items()))
def test_preset_equals_framework_import(preset, path):
    assert without_identity(load_config(preset)) == without_identity(load_config(path))


@pytest.mark.parametrize("preset", sorted(list_presets()))
def test_every_preset_round_trips(preset, tmp_path):
    cfg = load_config(preset)
    assert config_from_dict(config_to_dict(cfg), "x", default_name="x", source=cfg.source) == cfg
    # through YAML text as well (what `config show --yaml` prints)
    path = tmp_path / "dump.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    again = load_config(path)
    assert without_identity(again) == without_identity(cfg) and again.name == cfg.name


@pytest.mark.parametrize("path", [PP_SECFPN, CP_MM, KITTI_MM, MM / "pointpillars" /
                                  "pointpillars_hv_fpn_sbn-all_8xb4-2x_nus-3d.py", CP_PCDET])
def test_framework_imports_round_trip(path):
    cfg = load_config(path)
    assert config_from_dict(config_to_dict(cfg), "x", default_name="x", source=cfg.source) == cfg


# ---- OpenPCDet CenterHead ------------------------------------------------------------------------------------------


def test_pcdet_centerpoint_matches_spec_11_2():
    cfg = load_config(CP_PCDET)
    assert (cfg.head, cfg.framework, cfg.anchors, cfg.assigner, cfg.query) == ("center", "pcdet", None, None, None)
    assert cfg.class_names == CP_CLASSES
    assert cfg.point_cloud_range == (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0) and cfg.voxel_size == (0.075, 0.075, 0.2)
    assert cfg.grid_size == (1440, 1440, 40)  # 108 / 0.075, 8 / 0.2
    h = cfg.heatmap
    assert h == HeatmapParams(point_cloud_range=cfg.point_cloud_range, voxel_size=cfg.voxel_size,
                              feature_map_stride=8, heads=CP_HEADS, class_names=CP_CLASSES, num_max_objs=500,
                              gaussian_overlap=0.1, min_radius=2, variant="pcdet")
    assert h.map_size == (180, 180)  # 1440 // 8
    assert h.warnings == ()
    # The model's AUG_CONFIG_LIST replaced the dataset's (§11.2: +-pi/4, [0.9, 1.1], translation 0.5)
    assert cfg.augmentations == (
        GTSampling(sample_groups=NUS_GROUPS, min_points=tuple((c, 5) for c in CP_CLASSES), limit_whole_scene=True),
        WorldFlip(axes=("x", "y")),
        WorldRotation(angle_range_rad=(-0.78539816, 0.78539816)),
        WorldScaling(scale_range=(0.9, 1.1)),
        WorldTranslation(std_m=(0.5, 0.5, 0.5)),
    )
    assert cfg.gt_filters.min_lidar_points == 1 and cfg.gt_filters.range_filter == "pcdet"
    pp = cfg.post_processing  # DENSE_HEAD.POST_PROCESSING, class-agnostic per head
    assert (pp.score_thresh, pp.multi_classes_nms, pp.nms_type, pp.nms_thresh, pp.nms_pre_maxsize,
            pp.nms_post_maxsize) == (0.1, False, "nms_gpu", 0.2, 1000, 83)


def test_pcdet_center_head_order_quirk_warns(tmp_path, caplog):
    # Spec §5.1: heads [[pedestrian], [car]] with CLASS_NAMES [car, pedestrian]: the pedestrian's local id 1 is read
    # back as 'car' by the later head.
    path = edited_copy(tmp_path, CP_PCDET, "            ['car'],\n            ['truck', 'construction_vehicle'],",
                       "            ['truck', 'construction_vehicle'],\n            ['car'],")
    with caplog.at_level(logging.WARNING):
        cfg = load_config(path)
    assert cfg.heatmap.heads[0] == ("truck", "construction_vehicle")
    assert cfg.heatmap.warnings and "not monotone" in cfg.heatmap.warnings[0]
    assert any("not monotone" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("old,new,message", [
    ("            ['barrier'],\n", "",
     r"CLASS_NAMES_EACH_HEAD\.heads: class 'barrier' of class_names is in no head"),
    ("            MIN_RADIUS: 2\n", "            MIN_RADIUS: 2\n            MAX_RADIUS: 9\n",
     r"TARGET_ASSIGNER_CONFIG\.MAX_RADIUS: key not understood for CenterHead"),
    ("            GAUSSIAN_OVERLAP: 0.1\n", "", r"TARGET_ASSIGNER_CONFIG\.GAUSSIAN_OVERLAP: missing required key"),
    ("            GAUSSIAN_OVERLAP: 0.1\n", "            GAUSSIAN_OVERLAP: 1.0\n",
     r"CLASS_NAMES_EACH_HEAD: .*gaussian_overlap in \(0, 1\)"),
])
def test_pcdet_center_head_errors(tmp_path, old, new, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(edited_copy(tmp_path, CP_PCDET, old, new))
    assert "\n" not in str(err.value)


# ---- OpenPCDet ATSS and TransFusion ----------------------------------------------------------------------------------


def test_pcdet_atss(tmp_path, caplog):
    path = edited_copy(tmp_path, NUS_PP, "NAME: AxisAlignedTargetAssigner", "NAME: ATSS\n            TOPK: 9")
    with caplog.at_level(logging.WARNING):
        cfg = load_config(path)
    a = cfg.assigner
    assert (a.framework, a.iou, a.atss_topk, a.atss_upstream_quirks) == (Framework.ATSS, IouKind.BEV, 9, False)
    assert any("TypeError" in r.getMessage() for r in caplog.records)
    cfg = load_config(path, [("MODEL.DENSE_HEAD.TARGET_ASSIGNER_CONFIG.TOPK", "4"),
                             ("MODEL.DENSE_HEAD.TARGET_ASSIGNER_CONFIG.MATCH_HEIGHT", "True")])
    assert (cfg.assigner.atss_topk, cfg.assigner.iou) == (4, IouKind.IOU_3D)
    path.write_text(path.read_text().replace("TOPK: 9", "TOPK: 9\n            ATSS_UPSTREAM_QUIRKS: True"))
    assert load_config(path).assigner.atss_upstream_quirks is True
    path.write_text(path.read_text().replace("            TOPK: 9\n", ""))
    with pytest.raises(ConfigError, match=r"TARGET_ASSIGNER_CONFIG\.TOPK: missing required key"):
        load_config(path)


TRANSFUSION_HEAD = """    DENSE_HEAD:
        CLASS_AGNOSTIC: False
        NAME: TransFusionHead
        NUM_PROPOSALS: 200
        HIDDEN_CHANNEL: 128
        NUM_CLASSES: 10
        TARGET_ASSIGNER_CONFIG:
            FEATURE_MAP_STRIDE: 8
            DATASET: nuScenes
            GAUSSIAN_OVERLAP: 0.1
            MIN_RADIUS: 2
            HUNGARIAN_ASSIGNER:
                cls_cost: {'gamma': 2.0, 'alpha': 0.25, 'weight': 0.15}
                reg_cost: {'weight': 0.25}
                iou_cost: {'weight': 0.25}

    POST_PROCESSING:
"""


def transfusion_yaml(tmp_path: Path) -> Path:
    """cbgs_voxel0075_res3d_centerpoint.yaml with transfusion_lidar.yaml's DENSE_HEAD (same data config upstream)."""
    text = CP_PCDET.read_text()
    start, end = text.index("    DENSE_HEAD:\n"), text.index("    POST_PROCESSING:\n")
    shutil.copytree(DATA / "pcdet", tmp_path / "pcdet")
    path = tmp_path / "pcdet" / "tools" / "cfgs" / "nuscenes_models" / "transfusion_lidar.yaml"
    path.write_text(text[:start] + TRANSFUSION_HEAD + text[end + len("    POST_PROCESSING:\n"):])
    return path


def test_pcdet_transfusion(tmp_path):
    path = transfusion_yaml(tmp_path)
    cfg = load_config(path)
    assert (cfg.head, cfg.heatmap, cfg.anchors) == ("query", None, None)
    assert cfg.query == QueryParams(cost="transfusion", num_queries=200, num_layers=1)  # NUM_DECODER_LAYERS absent
    path.write_text(path.read_text().replace("NUM_PROPOSALS: 200", "NUM_PROPOSALS: 300\n        NUM_DECODER_LAYERS: 2"))
    assert load_config(path).query == QueryParams(cost="transfusion", num_queries=300, num_layers=2)
    path.write_text(path.read_text().replace("reg_cost: {'weight': 0.25}", "reg_cost: {'weight': 0.5}"))
    with pytest.raises(ConfigError, match=r"HUNGARIAN_ASSIGNER\.reg_cost\.weight: 0\.5 is not reproduced"):
        load_config(path)


def test_pcdet_unsupported_head_names_head_and_assigner(tmp_path):
    path = edited_copy(tmp_path, NUS_PP, "NAME: AnchorHeadMulti", "NAME: PointHeadBox")
    with pytest.raises(ConfigError, match=r"'PointHeadBox' is not supported .*'AxisAlignedTargetAssigner'"):
        load_config(path)
    path = edited_copy(tmp_path / "b", NUS_PP, "NAME: AxisAlignedTargetAssigner", "NAME: SimOTA")
    with pytest.raises(ConfigError, match=r"NAME: 'SimOTA' is not supported for 'AnchorHeadMulti' \(supported: "
                                          r"AxisAlignedTargetAssigner, ATSS\)"):
        load_config(path)


# ---- our schema: the new blocks --------------------------------------------------------------------------------------


def schema_variant(preset: str, **changes) -> dict:
    raw = config_to_dict(load_config(preset))
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def load_raw(raw: dict, tmp_path: Path, overrides=()):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path, overrides)


def test_schema_query_head_and_defaults(tmp_path):
    raw = schema_variant("pcdet-nuscenes-centerpoint-voxel0075", heatmap=None, head=None, framework=None,
                         query={"num_queries": 900})
    cfg = load_raw(raw, tmp_path)
    # head implied by the query block; cost default detr3d -> framework mmdet3d; num_layers default 6
    assert (cfg.head, cfg.framework, cfg.query) == ("query", "mmdet3d", QueryParams("detr3d", 900, 6))


def test_schema_atss_round_trip(tmp_path):
    raw = schema_variant("pcdet-kitti-pointpillars",
                         assigner={"framework": "atss", "atss_topk": 5, "atss_upstream_quirks": True})
    cfg = load_raw(raw, tmp_path)
    a = cfg.assigner
    assert (a.framework, a.iou, a.atss_topk, a.atss_upstream_quirks) == (Framework.ATSS, IouKind.BEV, 5, True)
    assert config_from_dict(config_to_dict(cfg), "x", default_name="x", source=cfg.source) == cfg


def test_schema_fpn_levels(tmp_path):
    raw = config_to_dict(load_config(MM / "pointpillars" / "pointpillars_hv_fpn_sbn-all_8xb4-2x_nus-3d.py"))
    assert raw["anchor_generator"]["levels"] == [{"feature_map_stride": 2, "scale": 1.0},
                                                 {"feature_map_stride": 4, "scale": 2.0},
                                                 {"feature_map_stride": 8, "scale": 4.0}]
    cfg = load_raw(raw, tmp_path, [("anchor_generator.levels.2.scale", "3")])
    assert cfg.anchors.levels[2] == AnchorLevel(feature_map_stride=8, scale=3.0)


@pytest.mark.parametrize("preset,key,value,message", [
    ("pcdet-nuscenes-centerpoint-voxel0075", "heatmap.heads", "[[car]]",
     r"heatmap\.heads: class 'truck' of class_names is in no head"),
    ("mmdet3d-nuscenes-centerpoint-voxel0075", "heatmap.heads.0", "[car, van]",
     r"heatmap\.heads\[0\]\[1\]: 'van' is not in class_names"),
    ("pcdet-nuscenes-centerpoint-voxel0075", "heatmap.min_radius", "-1",
     r"heatmap\.min_radius: expected an integer >= 0"),
    ("pcdet-nuscenes-centerpoint-voxel0075", "heatmap.feature_map_size", "[180]",
     r"heatmap\.feature_map_size: expected 2 values"),
    ("pcdet-nuscenes-centerpoint-voxel0075", "heatmap.variant", "centernet",
     r"heatmap\.variant: expected one of pcdet, mmdet3d"),
    ("pcdet-nuscenes-centerpoint-voxel0075", "anchors", "[]", r"anchors: does not apply to head: center"),
    ("pcdet-nuscenes-centerpoint-voxel0075", "head", "anchor", r"anchors: missing required key \(head: anchor"),
    ("pcdet-nuscenes-pointpillars-multihead", "assigner.atss_topk", "9", r"assigner\.atss_topk: only applies to "
                                                                          "framework atss"),
    ("pcdet-nuscenes-pointpillars-multihead", "assigner.assign_per_class", "false",
     r"assigner\.assign_per_class: only applies to framework mmdet"),
    ("pcdet-nuscenes-pointpillars-multihead", "anchors.0.anchor_range", "[-50, -50, -1, 50, 50, -1]",
     r"anchors\[0\]\.anchor_range: only applies to the mmdet3d anchor generators"),
    ("pcdet-nuscenes-pointpillars-multihead", "anchor_generator", "{levels: [{feature_map_stride: 4}]}",
     r"anchor_generator\.levels: FPN levels are an mmdet3d generator feature"),
    ("mmdet3d-nuscenes-pointpillars-secfpn", "anchor_generator.type", "ssn",
     r"anchor_generator\.type: expected one of pcdet, mmdet3d, mmdet3d_aligned"),
    ("mmdet3d-nuscenes-pointpillars-secfpn", "anchors.0.anchor_range", "[50, -49.6, -1.8, -50, 49.6, -1.8]",
     r"anchors\[0\]\.anchor_range: expected x_min < x_max"),
    ("mmdet3d-nuscenes-pointpillars-secfpn", "anchors.0.bottom_heights", "[-1.0]",
     r"anchors\[0\]\.bottom_heights: \[-1\.0\] disagrees with anchor_range z_min"),
    ("mmdet3d-nuscenes-pointpillars-secfpn", "augmentations.1.flip_ratio_bev_vertical", "1.5",
     r"augmentations\[1\]\.flip_ratio_bev_vertical: expected a number in \[0, 1\]"),
    ("mmdet3d-nuscenes-pointpillars-secfpn", "augmentations.0.translation_std_m", "[0, -1, 0]",
     r"augmentations\[0\]\.translation_std_m\[1\]: a standard deviation cannot be negative"),
    ("mmdet3d-kitti-pointpillars-3class", "augmentations.0.sample_groups.Van", "3",
     r"augmentations\[0\]: object_sample class 'Van' is not in class_names"),
    ("mmdet3d-kitti-pointpillars-3class", "anchors.0.class_name", "Person",
     r"anchors\[0\]\.class_name: 'Person' is not in class_names"),
    ("mmdet3d-nuscenes-centerpoint-voxel0075", "gt_filters.use_valid_flag", "maybe",
     r"gt_filters\.use_valid_flag: expected true or false"),
    ("mmdet3d-nuscenes-centerpoint-voxel0075", "framework", "detectron2",
     r"framework: expected one of pcdet, mmdet3d"),
])
def test_schema_new_field_errors(preset, key, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(preset, [(key, value)])
    assert str(err.value).startswith(f"preset {preset}: ") and "\n" not in str(err.value)


def test_class_agnostic_sets_need_not_be_classes():
    # size slots of a class-agnostic assigner are labels, not classes; assign_per_class makes them classes.
    cfg = load_config("mmdet3d-nuscenes-pointpillars-secfpn")
    assert [s.class_name for s in cfg.anchors.anchor_sets] == [f"size{i}" for i in range(7)]
    with pytest.raises(ConfigError, match=r"anchors\[0\]\.class_name: 'size0' is not in class_names"):
        load_config("mmdet3d-nuscenes-pointpillars-secfpn", [("assigner.class_agnostic", "false")])


# ---- config show -----------------------------------------------------------------------------------------------------


def test_show_center_and_query_heads(tmp_path):
    res = runner.invoke(app, ["config", "show", "mmdet3d-nuscenes-centerpoint-voxel0075"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "180 x 180 cells" in out and "324,000" in out and "min_radius 2" in out
    assert "pedestrian, traffic_cone" in out and "use_valid_flag" in out and "0.175" in out
    res = runner.invoke(app, ["config", "show", str(transfusion_yaml(tmp_path))])
    assert res.exit_code == 0, res.output
    assert "TransFusion" in res.stdout and "200 per frame" in res.stdout and "1 decoder" in res.stdout
    res = runner.invoke(app, ["config", "show", "mmdet3d-nuscenes-pointpillars-secfpn"])
    assert res.exit_code == 0 and "560,000" in res.stdout and "200x200/2" in res.stdout


def test_show_yaml_of_center_preset_round_trips(tmp_path):
    res = runner.invoke(app, ["config", "show", "pcdet-nuscenes-centerpoint-voxel0075", "--yaml"])
    assert res.exit_code == 0, res.output
    path = tmp_path / "c.yaml"
    path.write_text(res.stdout)
    assert without_identity(load_config(path)) == without_identity(load_config("pcdet-nuscenes-centerpoint-voxel0075"))


def test_kitti_mmdet3d_preset_numbers():
    # spec §11.5 (mm3d 1.x): Ped / Cyc / Car, pos/neg/min_pos 0.5/0.35/0.35, 0.5/0.35/0.35, 0.6/0.45/0.45
    cfg = load_config("mmdet3d-kitti-pointpillars-3class")
    assert cfg.class_names == ("Pedestrian", "Cyclist", "Car")
    sets = cfg.anchors.anchor_sets
    assert [(s.class_name, s.matched_threshold, s.unmatched_threshold, s.min_pos_iou) for s in sets] == [
        ("Pedestrian", 0.5, 0.35, 0.35), ("Cyclist", 0.5, 0.35, 0.35), ("Car", 0.6, 0.45, 0.45)]
    assert [s.bottom_heights for s in sets] == [(-0.6,), (-0.6,), (-1.78,)]
    a = cfg.assigner
    assert (a.framework, a.class_agnostic, a.assign_per_class) == (Framework.MMDET, False, True)
    assert cfg.anchors.generator == "mmdet3d_aligned" and cfg.grid_size == (432, 496, 1)
    # 432 // 2 x 496 // 2 = 216 x 248 cells, x 2 rotations x 3 sizes
    assert sum((432 // s.feature_map_stride) * (496 // s.feature_map_stride) * s.num_anchors_per_location
               for s in sets) == 321_408
    assert cfg.augmentations == (
        ObjectSample(sample_groups=(("Car", 15), ("Pedestrian", 15), ("Cyclist", 15)),
                     min_points=(("Car", 5), ("Pedestrian", 5), ("Cyclist", 5)), rate=1.0,
                     filter_by_difficulty=(-1,)),
        RandomFlip3D(flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.0),
        GlobalRotScaleTrans(rot_range_rad=(-0.78539816, 0.78539816), scale_range=(0.95, 1.05),
                            translation_std_m=(0.0, 0.0, 0.0)),
    )


def test_docs_center_example_is_valid(tmp_path):
    # The second YAML example in docs/config.md (a center head) must load.
    text = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    block = text.split("```yaml\n")[2].split("```", 1)[0]
    path = tmp_path / "center.yaml"
    path.write_text(block)
    cfg = load_config(path)
    assert (cfg.head, cfg.heatmap.heads, cfg.heatmap.map_size) == ("center", (("car",), ("truck",), ("pedestrian",)),
                                                                   (180, 180))
