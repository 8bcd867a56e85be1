"""The mmdetection3d .py importer: real ``_base_`` trees under tests/data/mmdet3d/configs (mmdet3d's own format),
--cfg-options with mmengine DictAction semantics, and its errors.

Expected numbers are typed in from assignment-semantics.md §11.3-§11.5; derivations are in the comments.
"""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assignaudit.assign.heatmap import HeatmapParams
from assignaudit.assign.params import AnchorLevel, Framework, IouKind, QueryParams
from assignaudit.augment.params import GlobalRotScaleTrans, ObjectSample, RandomFlip3D
from assignaudit.cli import app
from assignaudit.config import load_config
from assignaudit.config.mmdet3d import MMENGINE_MISSING, parse_cfg_options, parse_cfg_value
from assignaudit.errors import ConfigError

pytest.importorskip("mmengine")

MM = Path(__file__).parent / "data" / "mmdet3d" / "configs"
PP_SECFPN = MM / "pointpillars" / "pointpillars_hv_secfpn_sbn-all_8xb4-2x_nus-3d.py"
PP_FPN = MM / "pointpillars" / "pointpillars_hv_fpn_sbn-all_8xb4-2x_nus-3d.py"
CP_0075 = MM / "centerpoint" / "centerpoint_voxel0075_second_secfpn_8xb4-cyclic-20e_nus-3d.py"
CP_01 = MM / "centerpoint" / "centerpoint_voxel01_second_secfpn_8xb4-cyclic-20e_nus-3d.py"
KITTI = MM / "pointpillars" / "pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py"

NUS_3D_CLASSES = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle", "pedestrian",
                  "traffic_cone", "barrier")
CP_CLASSES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
              "pedestrian", "traffic_cone")
# spec §11.3(b): size (x, y, z) and bottom z per slot
SECFPN_SIZES = [
    ((4.60718145, 1.95017717, 1.72270761), -1.80032795),
    ((6.73778078, 2.4560939, 2.73004906), -1.74440365),
    ((12.01320693, 2.87427237, 3.81509561), -1.68526504),
    ((1.68452161, 0.60058911, 1.27192197), -1.67339111),
    ((0.7256437, 0.66344886, 1.75748069), -1.61785072),
    ((0.40359262, 0.39694519, 1.06232151), -1.80984986),
    ((0.48578221, 2.49008838, 0.98297065), -1.763965),
]

runner = CliRunner()


def child_config(tmp_path: Path, base: Path, body: str) -> Path:
    """A config file inheriting ``base`` (mmengine resolves an absolute _base_ path)."""
    path = tmp_path / "child.py"
    path.write_text(f"_base_ = [{str(base)!r}]\n{body}")
    return path


# ---- --cfg-options parsing (mmengine DictAction) ---------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    # hand-derived from DictAction: int, float, bool (any case), None, string; brackets -> list, parens -> tuple
    ("1", 1), ("0.5", 0.5), ("1e-3", 0.001), ("True", True), ("false", False), ("None", None), ("abc", "abc"),
    ("1,2,3", [1, 2, 3]), ("[0]", [0]), ("[a, b]", ["a", "b"]), ("(1,2)", (1, 2)),
    ("[(1,2,3),[a,b],c]", [(1, 2, 3), ["a", "b"], "c"]), ("'[0, 1.57]'", [0, 1.57]), ("[]", []),
])
def test_parse_cfg_value_hand_derived(text, expected):
    assert parse_cfg_value(text) == expected
    assert type(parse_cfg_value(text)) is type(expected)


@pytest.mark.parametrize("text", ["1", "0.5", "-3", "true", "None", "x", "1,2", "[0,1.57]", "((1,2),(3,4))",
                                  "[[1,2],[3,[4,5]]]", "\"a,b\"", "[ -49.6 , 49.6 ]"])
def test_parse_cfg_value_equals_mmengine(text):
    from mmengine.config import DictAction

    assert parse_cfg_value(text) == DictAction._parse_iterable(text)


def test_parse_cfg_options_errors():
    assert parse_cfg_options(["a.b=1", "c=x=y", "a.b=2"]) == {"a.b": 2, "c": "x=y"}
    with pytest.raises(ConfigError, match="expected key=value, got 'nokey'"):
        parse_cfg_options(["nokey"])
    with pytest.raises(ConfigError, match="imbalanced brackets"):
        parse_cfg_options(["a=[1,2"])


# ---- nuScenes PointPillars -------------------------------------------------------------------------------------------


def test_secfpn_nus_matches_spec_11_3b():
    cfg = load_config(PP_SECFPN)
    assert (cfg.head, cfg.framework, cfg.name, cfg.source) == ("anchor", "mmdet3d", PP_SECFPN.stem, str(PP_SECFPN))
    assert cfg.class_names == NUS_3D_CLASSES  # nus-3d.py order
    assert cfg.point_cloud_range == (-50.0, -50.0, -5.0, 50.0, 50.0, 3.0) and cfg.voxel_size == (0.25, 0.25, 8.0)
    assert cfg.grid_size == (400, 400, 1)
    layout = cfg.anchors
    assert (layout.generator, layout.align_corner, layout.levels, layout.multihead) == \
        ("mmdet3d_aligned", False, (), False)
    assert len(layout.anchor_sets) == 7
    for s, (size, bottom) in zip(layout.anchor_sets, SECFPN_SIZES):
        assert s.sizes == (size,) and s.bottom_heights == (bottom,) and s.rotations == (0.0, 1.57)
        assert s.anchor_range == (-49.6, -49.6, bottom, 49.6, 49.6, bottom)
        assert (s.matched_threshold, s.unmatched_threshold, s.min_pos_iou) == (0.6, 0.3, None)
        # SECOND strides 2, 4, 8 upsampled by 1, 2, 4 -> one stride-2 map: 400 // 2 = 200
        assert s.feature_map_stride == 2
    # 7 sizes x 2 rotations x 200 x 200
    assert sum((400 // s.feature_map_stride) ** 2 * s.num_anchors_per_location for s in layout.anchor_sets) == 560_000
    a = cfg.assigner
    assert (a.framework, a.iou, a.nearest_convention, a.min_pos_iou, a.class_agnostic, a.gt_max_assign_all,
            a.match_low_quality) == (Framework.MMDET, IouKind.NEAREST_BEV, "mmdet3d", 0.3, True, True, True)
    assert cfg.augmentations == (
        GlobalRotScaleTrans(rot_range_rad=(-0.3925, 0.3925), scale_range=(0.95, 1.05),
                            translation_std_m=(0.0, 0.0, 0.0)),
        RandomFlip3D(flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.0),
    )
    g = cfg.gt_filters
    assert (g.min_lidar_points, g.range_filter, g.use_valid_flag) == (1, "mmdet3d", False)  # num_lidar_pts > 0
    pp = cfg.post_processing
    assert (pp.score_thresh, pp.multi_classes_nms, pp.nms_type, pp.nms_thresh, pp.nms_pre_maxsize,
            pp.nms_post_maxsize) == (0.05, True, "nms_gpu", 0.2, 1000, 500)


def test_fpn_nus_levels_spec_11_3a():
    cfg = load_config(PP_FPN)
    layout = cfg.anchors
    # FPN num_outs 3 on SECOND strides 2/4/8 of the 400 grid -> 200^2, 100^2, 50^2 with scales 1, 2, 4
    assert layout.levels == (AnchorLevel(2, 1.0), AnchorLevel(4, 2.0), AnchorLevel(8, 4.0))
    assert [s.sizes[0] for s in layout.anchor_sets] == [(2.5981, 0.866, 1.0), (1.7321, 0.5774, 1.0), (1.0, 1.0, 1.0),
                                                        (0.4, 0.4, 1.0)]
    # one range replicated for every size (size_per_range)
    assert {s.anchor_range for s in layout.anchor_sets} == {(-50.0, -50.0, -1.8, 50.0, 50.0, -1.8)}
    per_location = sum(s.num_anchors_per_location for s in layout.anchor_sets)  # 4 sizes x 2 rotations
    assert per_location * sum((400 // lv.feature_map_stride) ** 2 for lv in layout.levels) == 420_000


# ---- CenterPoint -----------------------------------------------------------------------------------------------------


def test_centerpoint_voxel0075_matches_spec_11_4():
    cfg = load_config(CP_0075)
    assert (cfg.head, cfg.framework, cfg.anchors, cfg.assigner) == ("center", "mmdet3d", None, None)
    assert cfg.class_names == CP_CLASSES  # redefined so the tasks are contiguous
    assert cfg.point_cloud_range == (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0) and cfg.voxel_size == (0.075, 0.075, 0.2)
    assert cfg.heatmap == HeatmapParams(
        point_cloud_range=cfg.point_cloud_range, voxel_size=cfg.voxel_size, feature_map_stride=8,
        heads=(("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",),
               ("motorcycle", "bicycle"), ("pedestrian", "traffic_cone")),
        class_names=CP_CLASSES, num_max_objs=500, gaussian_overlap=0.1, min_radius=2, variant="mmdet3d",
        feature_map_size=(180, 180))  # grid_size 1440 // out_size_factor 8
    assert cfg.heatmap.warnings == ()
    groups = (("car", 2), ("truck", 3), ("construction_vehicle", 7), ("bus", 4), ("trailer", 6), ("barrier", 2),
              ("motorcycle", 6), ("bicycle", 6), ("pedestrian", 2), ("traffic_cone", 2))
    op0 = cfg.augmentations[0]
    assert isinstance(op0, ObjectSample) and op0.sample_groups == groups and op0.rate == 1.0
    assert dict(op0.min_points) == {c: 5 for c in CP_CLASSES}
    assert cfg.augmentations[1:] == (
        GlobalRotScaleTrans(rot_range_rad=(-0.3925, 0.3925), scale_range=(0.95, 1.05),
                            translation_std_m=(0.0, 0.0, 0.0)),
        RandomFlip3D(flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    )
    g = cfg.gt_filters  # CBGSDataset(NuScenesDataset(use_valid_flag=True))
    assert (g.use_valid_flag, g.min_lidar_points, g.range_filter) == (True, 0, "mmdet3d")
    pp = cfg.post_processing
    assert (pp.score_thresh, pp.nms_type, pp.nms_thresh, pp.nms_pre_maxsize, pp.nms_post_maxsize,
            pp.multi_classes_nms) == (0.1, "nms_gpu", 0.2, 1000, 83, False)
    assert pp.circle_min_radius_sq == (4.0, 12.0, 10.0, 1.0, 0.85, 0.175)


def test_centerpoint_voxel01_base():
    cfg = load_config(CP_01)
    # PCR +-51.2, voxel 0.1 -> grid 1024 // 8 = 128
    assert cfg.point_cloud_range == (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
    assert cfg.heatmap.map_size == (128, 128) and cfg.heatmap.feature_map_size == (128, 128)


def test_centerpoint_task_order_mismatch_warns(caplog):
    # The nus-3d.py class order with CenterPoint's tasks: label i is drawn as the i-th task class (§7, §12.12).
    cfg = load_config(CP_0075, cfg_options=[
        "train_dataloader.dataset.dataset.metainfo.classes=[car,truck,trailer,bus,construction_vehicle,bicycle,"
        "motorcycle,pedestrian,traffic_cone,barrier]",
        "train_dataloader.dataset.dataset.pipeline.3.db_sampler.classes=None"])
    assert cfg.heatmap.warnings and "by label index" in cfg.heatmap.warnings[0]
    assert any("by label index" in r.getMessage() for r in caplog.records)


# ---- KITTI -----------------------------------------------------------------------------------------------------------


def test_kitti_3class_matches_spec_11_5():
    cfg = load_config(KITTI)
    assert cfg.class_names == ("Pedestrian", "Cyclist", "Car")
    assert cfg.grid_size == (432, 496, 1)  # 69.12 / 0.16, 79.36 / 0.16
    sets = cfg.anchors.anchor_sets
    assert [s.class_name for s in sets] == ["Pedestrian", "Cyclist", "Car"]  # assign_per_class: size i is class i
    assert [(s.matched_threshold, s.unmatched_threshold, s.min_pos_iou) for s in sets] == [
        (0.5, 0.35, 0.35), (0.5, 0.35, 0.35), (0.6, 0.45, 0.45)]
    assert [s.sizes[0] for s in sets] == [(0.8, 0.6, 1.73), (1.76, 0.6, 1.73), (3.9, 1.6, 1.56)]
    assert [s.bottom_heights for s in sets] == [(-0.6,), (-0.6,), (-1.78,)]
    assert {s.feature_map_stride for s in sets} == {2}  # 432 // 2 = 216, 496 // 2 = 248
    a = cfg.assigner
    assert (a.class_agnostic, a.assign_per_class) == (False, True)
    # the model file's pipeline replaced the base's (which had ObjectNoise) inside RepeatDataset
    assert [type(op).__name__ for op in cfg.augmentations] == ["ObjectSample", "RandomFlip3D", "GlobalRotScaleTrans"]
    assert cfg.gt_filters.min_lidar_points == 0  # KittiDataset: no point-count filter
    pp = cfg.post_processing
    assert (pp.nms_thresh, pp.score_thresh, pp.nms_pre_maxsize, pp.nms_post_maxsize) == (0.01, 0.1, 100, 50)


# ---- --cfg-options and --set -----------------------------------------------------------------------------------------


def test_cfg_options_change_the_config():
    cfg = load_config(PP_SECFPN, cfg_options=["model.pts_bbox_head.anchor_generator.rotations=[0]",
                                              "model.train_cfg.pts.assigner.pos_iou_thr=0.5"])
    assert {s.rotations for s in cfg.anchors.anchor_sets} == {(0.0,)}
    assert {s.matched_threshold for s in cfg.anchors.anchor_sets} == {0.5}
    # list items by index (mmengine allow_list_keys)
    cfg = load_config(KITTI, cfg_options=["model.train_cfg.assigner.2.pos_iou_thr=0.7"])
    assert [s.matched_threshold for s in cfg.anchors.anchor_sets] == [0.5, 0.5, 0.7]


def test_set_on_py_and_cfg_options_on_yaml_are_refused():
    with pytest.raises(ConfigError, match=r"--set does not apply to mmdetection3d \.py configs; use --cfg-options "
                                          r"a\.b=1"):
        load_config(PP_SECFPN, [("a.b", "1")])
    with pytest.raises(ConfigError, match="--cfg-options applies to mmdetection3d .py configs only"):
        load_config("pcdet-kitti-pointpillars", cfg_options=["a=1"])
    with pytest.raises(ConfigError, match="--cfg-options cannot be merged"):
        load_config(KITTI, cfg_options=["model.train_cfg.assigner.7.pos_iou_thr=0.7"])


def test_missing_mmengine_is_a_config_error(monkeypatch):
    real_import = builtins.__import__

    def no_mmengine(name, *args, **kwargs):
        if name == "mmengine" or name.startswith("mmengine."):
            raise ImportError("No module named 'mmengine'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mmengine)
    with pytest.raises(ConfigError) as err:
        load_config(PP_SECFPN)
    assert MMENGINE_MISSING in str(err.value)
    assert "pip install 'assignaudit[mmdet3d]'" in str(err.value)


def test_custom_imports_are_not_imported(tmp_path):
    path = child_config(tmp_path, PP_SECFPN,
                        "custom_imports = dict(imports=['assignaudit_no_such_plugin'], allow_failed_imports=False)\n")
    cfg = load_config(path)
    assert cfg.anchors is not None and "mmdet3d" not in sys.modules
    assert "assignaudit_no_such_plugin" not in sys.modules


# ---- errors ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options,message", [
    (["model.pts_bbox_head.type=MyCustomHead"],
     r"model\.pts_bbox_head\.type: 'MyCustomHead' is not supported .*assigner is 'Max3DIoUAssigner'"),
    (["model.train_cfg.pts.assigner.type=ATSS3DAssigner"],
     r"train_cfg\.pts\.assigner\.type: 'ATSS3DAssigner' is not supported for Anchor3DHead"),
    (["model.train_cfg.pts.assigner.neg_iou_thr=0"], r"neg_iou_thr: 0 is an int, .*no negatives at all"),
    (["model.train_cfg.pts.assigner.iou_calculator.type=BboxOverlaps3D"],
     r"iou_calculator: 'BboxOverlaps3D' .* is not supported"),
    (["model.train_cfg.pts.assigner.ignore_iof_thr=0.5"], r"ignore_iof_thr: > 0 needs ignore boxes"),
    (["model.pts_bbox_head.anchor_generator.type=AlignedAnchor3DRangeGeneratorPerCls"],
     r"anchor_generator\.type: 'AlignedAnchor3DRangeGeneratorPerCls' with 'Anchor3DHead': ShapeAwareHead needs"),
    (["model.pts_bbox_head.anchor_generator.scales=[1,2]"],
     r"anchor_generator\.scales: 2 scales for 1 feature maps"),
    (["model.pts_neck.upsample_strides=[1,2,2]"], r"upsample_strides: the upsampled maps have different strides"),
    (["model.pts_middle_encoder.output_shape=[200,200]"], r"output_shape: \[200, 200\] is not the voxel grid"),
    (["train_dataloader.dataset.pipeline.4.flip_box3d=False"], r"pipeline\[4\]\.flip_box3d: False"),
    (["train_dataloader.dataset.pipeline.6.point_cloud_range=[-40,-40,-5,40,40,3]"],
     r"pipeline\[6\]\.point_cloud_range: .* differs from model\.data_preprocessor\.voxel_layer\.point_cloud_range"),
    (["train_dataloader.dataset.pipeline.7.classes=[car,truck]"],
     r"pipeline\[7\]\.classes: drops dataset class 'trailer'"),
    (["train_dataloader.dataset.pipeline.3.type=GlobalAlignment"],
     r"pipeline\[3\]: transform 'GlobalAlignment' is not replayed by assignaudit"),
])
def test_unsupported_is_a_config_error(options, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(PP_SECFPN, cfg_options=options)
    assert str(err.value).startswith(str(PP_SECFPN)) and "\n" not in str(err.value)


def test_center_head_errors():
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.num_class: 2 but class_names lists 1"):
        load_config(CP_0075, cfg_options=["model.pts_bbox_head.tasks.0.num_class=2"])
    with pytest.raises(ConfigError, match=r"train_cfg\.pts\.voxel_size: .* differs from the voxel layer"):
        load_config(CP_0075, cfg_options=["model.train_cfg.pts.voxel_size=[0.1,0.1,0.2]"])
    with pytest.raises(ConfigError, match=r"db_sampler\.classes: .* differs from the dataset classes"):
        load_config(CP_0075, cfg_options=["train_dataloader.dataset.dataset.metainfo.classes="
                                          "[truck,car,construction_vehicle,bus,trailer,barrier,motorcycle,bicycle,"
                                          "pedestrian,traffic_cone]"])


def test_query_head_detr3d(tmp_path):
    path = tmp_path / "detr3d.py"
    path.write_text('''
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size = [0.2, 0.2, 8]
class_names = ['car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle', 'bicycle',
               'pedestrian', 'traffic_cone']
model = dict(
    type='DETR3D',
    pts_bbox_head=dict(
        type='DETR3DHead', num_query=900, num_classes=10,
        transformer=dict(type='Detr3DTransformer', decoder=dict(type='Detr3DTransformerDecoder', num_layers=6)),
        bbox_coder=dict(type='NMSFreeCoder', pc_range=point_cloud_range, max_num=300)),
    train_cfg=dict(pts=dict(
        grid_size=[512, 512, 1], voxel_size=voxel_size, point_cloud_range=point_cloud_range, out_size_factor=4,
        assigner=dict(type='HungarianAssigner3D', cls_cost=dict(type='FocalLossCost', weight=2.0),
                      reg_cost=dict(type='BBox3DL1Cost', weight=0.25), iou_cost=dict(type='IoUCost', weight=0.0),
                      pc_range=point_cloud_range))))
train_pipeline = [
    dict(type='LoadMultiViewImageFromFiles', to_float32=True),
    dict(type='PhotoMetricDistortionMultiViewImage'),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_attr_label=False),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=class_names),
    dict(type='Pack3DDetInputs', keys=['img', 'gt_bboxes_3d', 'gt_labels_3d'])]
train_dataloader = dict(dataset=dict(type='NuScenesDataset', pipeline=train_pipeline,
                                     metainfo=dict(classes=class_names)))
''')
    cfg = load_config(path)
    assert (cfg.head, cfg.framework, cfg.query) == ("query", "mmdet3d", QueryParams("detr3d", 900, 6))
    assert cfg.augmentations == () and cfg.gt_filters.min_lidar_points == 1
    with pytest.raises(ConfigError, match=r"reg_cost\.weight: 0\.5 is not reproduced"):
        load_config(path, cfg_options=["model.train_cfg.pts.assigner.reg_cost.weight=0.5"])


def test_unreadable_py_config(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("model = dict(\n")
    with pytest.raises(ConfigError, match=r"broken\.py: cannot read the mmdetection3d config: SyntaxError"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.py")


# ---- CLI -------------------------------------------------------------------------------------------------------------


def test_cli_show_with_cfg_options():
    res = runner.invoke(app, ["config", "show", str(PP_SECFPN), "--json", "--cfg-options",
                              "model.train_cfg.pts.assigner.pos_iou_thr=0.55",
                              "model.test_cfg.pts.max_num=300"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert {s["matched_threshold"] for s in d["anchors"]["anchor_sets"]} == {0.55}
    assert d["post_processing"]["nms_post_maxsize"] == 300
    # options before the positional, '=' spelling, underscore alias
    res = runner.invoke(app, ["config", "show", "--cfg_options", "model.test_cfg.pts.max_num=200", str(PP_SECFPN),
                              "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["post_processing"]["nms_post_maxsize"] == 200


@pytest.mark.parametrize("args,needle", [
    (["config", "show", str(PP_SECFPN), "--set", "a.b", "1"], "use --cfg-options a.b=1"),
    (["config", "show", "--cfg-options"], "--cfg-options needs KEY=VALUE arguments"),
    (["config", "show", "pcdet-kitti-pointpillars", "--cfg-options", "a=1"], "applies to mmdetection3d .py configs"),
])
def test_cli_errors_exit_2(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_cfg_options_as_parsed_mapping():
    # load_config also takes an already parsed {key: value} mapping (what DictAction produces)
    cfg = load_config(PP_SECFPN, cfg_options={"model.pts_bbox_head.anchor_generator.rotations": [0]})
    assert cfg == load_config(PP_SECFPN, cfg_options=["model.pts_bbox_head.anchor_generator.rotations=[0]"])
