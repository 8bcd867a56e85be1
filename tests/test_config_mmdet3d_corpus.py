"""Real mmdetection3d 1.4.0 configs (tests/data/mmdet3d_cfgs, with their ``_base_`` trees): every number the importer
resolves equals the file, read here independently with mmengine's ``Config.fromfile``; and the corpus' refusals.

The expected side walks the raw config dict by hand (head, generator, assigner list, pipeline, test_cfg): it shares
no code with `assignaudit.config.mmdet3d`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mmengine")
from mmengine.config import Config  # noqa: E402

from assignaudit.assign.anchors import generate_anchors  # noqa: E402
from assignaudit.augment.params import (  # noqa: E402
    GlobalRotScaleTrans, ObjectNoise, ObjectSample, RandomFlip3D,
)
from assignaudit.config.mmdet3d import load_mmdet3d_config  # noqa: E402
from assignaudit.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).parent / "data" / "mmdet3d_cfgs" / "configs"

ANCHOR_CONFIGS = [
    "second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py",
    "parta2/parta2_hv_secfpn_8xb2-cyclic-80e_kitti-3d-3class.py",
    "pv_rcnn/pv_rcnn_8xb2-80e_kitti-3d-3class.py",
    "ssn/ssn_hv_secfpn_sbn-all_16xb2-2x_nus-3d.py",
    "ssn/ssn_hv_secfpn_sbn-all_16xb2-2x_lyft-3d.py",
    "ssn/ssn_hv_regnet-400mf_secfpn_sbn-all_16xb2-2x_nus-3d.py",
    "regnet/pointpillars_hv_regnet-400mf_secfpn_sbn-all_8xb4-2x_nus-3d.py",
    "regnet/pointpillars_hv_regnet-400mf_fpn_sbn-all_range100_8xb2-2x_lyft-3d.py",
    "sassd/sassd_8xb6-80e_kitti-3d-3class.py",
    "mvxnet/mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py",
]


def raw(rel):
    return Config.fromfile(str(ROOT / rel), import_custom_modules=False).to_dict()


def train_dataset(cfg):
    ds = cfg["train_dataloader"]["dataset"]
    while ds["type"] in ("RepeatDataset", "CBGSDataset", "ClassBalancedDataset"):
        ds = ds["dataset"]
    return ds


def head_and_cfgs(cfg):
    m = cfg["model"]
    if m.get("rpn_head"):
        return m["rpn_head"], m["train_cfg"]["rpn"], m["test_cfg"]["rcnn"], True
    key = "pts_bbox_head" if m.get("pts_bbox_head") else "bbox_head"
    tr, te = m["train_cfg"], m["test_cfg"]
    return m[key], tr.get("pts", tr), te.get("pts", te), False


@pytest.mark.parametrize("rel", ANCHOR_CONFIGS)
def test_every_resolved_number_equals_the_file(rel):
    cfg = raw(rel)
    got = load_mmdet3d_config(ROOT / rel)
    ds = train_dataset(cfg)
    assert got.class_names == tuple(ds["metainfo"]["classes"])
    layer = cfg["model"]["data_preprocessor"]["voxel_layer"]
    assert got.point_cloud_range == tuple(layer["point_cloud_range"])
    assert got.voxel_size == tuple(layer["voxel_size"])

    head, train, test, two_stage = head_and_cfgs(cfg)
    gen = head["anchor_generator"]
    sizes, ranges = gen["sizes"], gen["ranges"]
    if len(ranges) == 1:
        ranges = ranges * len(sizes)
    assigners = train["assigner"] if isinstance(train["assigner"], list) else [train["assigner"]] * len(sizes)
    sets = got.anchors.anchor_sets
    assert len(sets) == len(sizes)
    for i, s in enumerate(sets):
        assert s.sizes == (tuple(sizes[i]),)
        assert s.anchor_range == tuple(ranges[i])
        assert s.rotations == tuple(gen["rotations"])
        assert s.matched_threshold == assigners[i]["pos_iou_thr"]
        assert s.unmatched_threshold == assigners[i]["neg_iou_thr"]
        if isinstance(train["assigner"], list):
            assert s.min_pos_iou == assigners[i]["min_pos_iou"]

    post = got.post_processing
    assert post.score_thresh == test["score_thr"]
    assert post.nms_thresh == test["nms_thr"]
    assert post.nms_type == ("nms_gpu" if test.get("use_rotate_nms", True) else "nms_normal_gpu")
    assert post.nms_pre_maxsize == (None if two_stage else test.get("nms_pre"))
    assert post.nms_post_maxsize == (None if two_stage else test.get("max_num"))

    # the pipeline's replayed ops, in order, with the file's numbers
    expected = []
    for step in ds["pipeline"]:
        t = step["type"]
        if t == "ObjectSample":
            db = step["db_sampler"]
            expected.append(ObjectSample(tuple(db["sample_groups"].items()),
                                         tuple(db["prepare"]["filter_by_min_points"].items()), db.get("rate", 1.0),
                                         tuple(db["prepare"].get("filter_by_difficulty", []))))
        elif t == "ObjectNoise":
            expected.append(ObjectNoise(tuple(step["translation_std"]), tuple(step["rot_range"]),
                                        tuple(step["global_rot_range"]), step["num_try"]))
        elif t == "RandomFlip3D":
            expected.append(RandomFlip3D(step.get("flip_ratio_bev_horizontal", 0.0),
                                         step.get("flip_ratio_bev_vertical", 0.0)))
        elif t == "GlobalRotScaleTrans":
            std = step.get("translation_std", [0, 0, 0])
            expected.append(GlobalRotScaleTrans(tuple(step["rot_range"]), tuple(step["scale_ratio_range"]),
                                                tuple(float(v) for v in std)))
    assert got.augmentations == tuple(expected)


def test_parta2_reads_the_rpn_head_and_the_rcnn_post_processing():
    got = load_mmdet3d_config(ROOT / "parta2/parta2_hv_secfpn_8xb2-cyclic-80e_kitti-3d-3class.py")
    # SparseUNet: 4 encoder stages -> BEV stride 8; SECOND layer_strides [1, 2] / SECONDFPN upsample [1, 2] -> 1:
    # 1408 x 1600 voxels -> 176 x 200.
    assert {s.feature_map_stride for s in got.anchors.anchor_sets} == {8}
    assert got.assigner.assign_per_class and not got.assigner.class_agnostic
    assert [s.class_name for s in got.anchors.anchor_sets] == ["Pedestrian", "Cyclist", "Car"]


def test_ssn_anchors_per_class_on_their_task_maps_in_rot_y_x_order():
    got = load_mmdet3d_config(ROOT / "ssn/ssn_hv_secfpn_sbn-all_16xb2-2x_nus-3d.py")
    layout = got.anchors
    assert layout.generator == "mmdet3d_aligned_per_class"
    # SECFPN: 400 grid / 2; tasks 0-2 (5 classes) shared_conv_strides (1, 1) -> 200 x 200, tasks 3-4 (2, 1, 1) -> 100
    assert [s.feature_map_stride for s in layout.anchor_sets] == [2] * 5 + [4] * 5
    anchors = generate_anchors(layout)
    counts = np.bincount(anchors.set_index.numpy())
    assert counts.tolist() == [200 * 200 * 2] * 5 + [100 * 100 * 2] * 5
    # set 5 ('car', range x/y [-50, 50], bottom -1.80032795, 100 x 100): AlignedAnchor3DRangeGenerator cell centres
    # -50 + (k + 0.5) * 1.0, flat (rot, y, x) per class (multi_cls_grid_anchors' permute)
    start = 5 * 200 * 200 * 2
    car = anchors.boxes[start:start + 100 * 100 * 2].numpy().reshape(2, 100, 100, 7)
    np.testing.assert_allclose(car[0, 0, :, 0], -50 + (np.arange(100) + 0.5), atol=1e-4)
    np.testing.assert_allclose(car[0, :, 0, 1], -50 + (np.arange(100) + 0.5), atol=1e-4)
    assert np.all(car[0, ..., 6] == 0) and np.allclose(car[1, ..., 6], 1.57)
    size = [4.60718145, 1.95017717, 1.72270761]
    np.testing.assert_allclose(car[0, 0, 0, 3:6], size, rtol=1e-6)
    assert car[0, 0, 0, 2] == pytest.approx(-1.80032795 + size[2] / 2, abs=1e-5)  # bottom-centred -> centre z


def test_ssn_lyft_pairs_anchor_set_i_with_dataset_class_i_and_warns(caplog):
    # The config's class_names variable is not the base dataset's metainfo.classes; upstream trains set i (sized for
    # tasks' class i) with the GT of dataset class i, and so do we, with a warning.
    with caplog.at_level("WARNING"):
        got = load_mmdet3d_config(ROOT / "ssn/ssn_hv_secfpn_sbn-all_16xb2-2x_lyft-3d.py")
    assert got.class_names[0] == "car" and got.anchors.anchor_sets[0].class_name == "car"
    assert got.anchors.anchor_sets[0].sizes == ((1.76, 0.63, 1.44),)  # the file's first (bicycle) size
    assert "car<-bicycle" in caplog.text


def test_shape_aware_head_with_another_generator_is_refused():
    with pytest.raises(ConfigError, match="ShapeAwareHead needs AlignedAnchor3DRangeGeneratorPerCls"):
        load_mmdet3d_config(ROOT / "ssn/ssn_hv_secfpn_sbn-all_16xb2-2x_nus-3d.py",
                            ["model.pts_bbox_head.anchor_generator.type=AlignedAnchor3DRangeGenerator"])
    with pytest.raises(ConfigError, match="the tasks hold 9 classes but the generator has 10 sizes"):
        load_mmdet3d_config(ROOT / "ssn/ssn_hv_secfpn_sbn-all_16xb2-2x_nus-3d.py",
                            ["model.pts_bbox_head.tasks.0.num_class=1"])


def test_object_noise_config_is_the_kitti_base_pipeline():
    got = load_mmdet3d_config(ROOT / "second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py")
    assert [type(op).__name__ for op in got.augmentations] == ["ObjectSample", "ObjectNoise", "RandomFlip3D",
                                                               "GlobalRotScaleTrans"]
    assert math.isclose(got.augmentations[1].rot_range[1], 0.78539816)


@pytest.mark.parametrize("rel, levels, set_strides", [
    # NoStemRegNet strides (1, 2, 2, 2), out_indices (1, 2, 3): outputs at 2, 4, 8 pillars; SECFPN upsamples
    # [1, 2, 4] -> one map at stride 2 (400 -> 200)
    ("regnet/pointpillars_hv_regnet-400mf_secfpn_sbn-all_8xb4-2x_nus-3d.py", [], {2}),
    # ... FPN keeps the three (num_outs 3): levels at 2, 4, 8 with anchor scales 1, 2, 4
    ("regnet/pointpillars_hv_regnet-400mf_fpn_sbn-all_range100_8xb2-2x_lyft-3d.py", [(2, 1.0), (4, 2.0), (8, 4.0)],
     {2}),
    # SSN on RegNet: SECFPN stride 2, then the task convs (1, 1) or (2, 1, 1)
    ("ssn/ssn_hv_regnet-400mf_secfpn_sbn-all_16xb2-2x_nus-3d.py", [], {2, 4}),
    # SparseEncoderSASSD: SparseEncoder's 4 stages -> 8
    ("sassd/sassd_8xb6-80e_kitti-3d-3class.py", [], {8}),
])
def test_backbone_and_encoder_strides(rel, levels, set_strides):
    layout = load_mmdet3d_config(ROOT / rel).anchors
    assert [(lv.feature_map_stride, lv.scale) for lv in layout.levels] == levels
    assert {s.feature_map_stride for s in layout.anchor_sets} == set_strides


def test_regnet_out_indices_out_of_range_is_refused():
    with pytest.raises(ConfigError, match=r"out_indices: \[1, 2, 4\] must be increasing stage indices below 4"):
        load_mmdet3d_config(ROOT / "regnet/pointpillars_hv_regnet-400mf_secfpn_sbn-all_8xb4-2x_nus-3d.py",
                            ["model.pts_backbone.out_indices=(1,2,4)"])


def test_detr3d_multiview_wrapper_is_recorded_as_image_only():
    got = load_mmdet3d_config(ROOT / "../projects/DETR3D/configs/detr3d_r101_gridmask.py")
    assert got.head == "query" and got.augmentations == ()
    assert got.dataset.skipped_transforms == ("MultiViewWrapper[PhotoMetricDistortion3D, RandomResize3D]",)


def test_petr_replays_the_range_filter_before_its_box_rotation():
    from assignaudit.augment.params import GlobalRotScaleTransImage, ObjectRangeFilter

    rel = "../projects/PETR/configs/petr_vovnet_gridmask_p4_800x320.py"
    got = load_mmdet3d_config(ROOT / rel)
    step = [s for s in train_dataset(raw(rel))["pipeline"] if s["type"] == "GlobalRotScaleTransImage"][0]
    assert got.augmentations == (ObjectRangeFilter(), GlobalRotScaleTransImage(
        tuple(step["rot_range"]), tuple(step["scale_ratio_range"]), step["reverse_angle"]))
    assert got.dataset.skipped_transforms == ("ResizeCropFlipImage",)
    assert got.query.num_queries == 900


def test_a_box_moving_transform_inside_multiview_wrapper_is_refused():
    with pytest.raises(ConfigError, match="'GlobalRotScaleTrans' inside MultiViewWrapper is not known"):
        load_mmdet3d_config(ROOT / "../projects/DETR3D/configs/detr3d_r101_gridmask.py",
                            ["train_dataloader.dataset.pipeline.2.transforms.0.type=GlobalRotScaleTrans"])


# ---------------------------------------------------------------------------------------------------------------------
# _base_ = ['mmdet3d::...']: resolved against a configs folder, never an installed mmdet3d
# ---------------------------------------------------------------------------------------------------------------------

USER_CFG = """_base_ = ['mmdet3d::second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py']
model = dict(bbox_head=dict(assign_per_class=True))
"""


def test_mmdet3d_scope_resolves_against_the_named_configs_folder(tmp_path, monkeypatch):
    user = tmp_path / "mine.py"
    user.write_text(USER_CFG)
    monkeypatch.setenv("ASSIGNAUDIT_MMDET3D_CONFIGS", str(ROOT))
    got = load_mmdet3d_config(user)
    base = load_mmdet3d_config(ROOT / "second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py")
    assert got.assigner.assign_per_class is True and base.assigner.assign_per_class is False
    assert [s.sizes for s in got.anchors.anchor_sets] == [s.sizes for s in base.anchors.anchor_sets]
    assert got.augmentations == base.augmentations


def test_mmdet3d_scope_without_a_folder_says_what_to_set(tmp_path, monkeypatch):
    user = tmp_path / "mine.py"
    user.write_text(USER_CFG)
    monkeypatch.delenv("ASSIGNAUDIT_MMDET3D_CONFIGS", raising=False)
    with pytest.raises(ConfigError, match=r"mmdet3d::second/.*set ASSIGNAUDIT_MMDET3D_CONFIGS=DIR to "
                                          r"mmdetection3d's configs folder"):
        load_mmdet3d_config(user)
    monkeypatch.setenv("ASSIGNAUDIT_MMDET3D_CONFIGS", str(tmp_path))
    with pytest.raises(ConfigError, match=r"second_hv_secfpn_8xb6-80e_kitti-3d-3class.py does not exist"):
        load_mmdet3d_config(user)
    other = tmp_path / "other.py"
    other.write_text("_base_ = ['mmdet::_base_/default_runtime.py']\n")
    with pytest.raises(ConfigError, match="the mmdet:: scope needs the mmdet package's config tree"):
        load_mmdet3d_config(other)


def test_mmdet3d_scope_inside_a_checkout_uses_its_configs_folder(tmp_path, monkeypatch):
    # a config under <checkout>/projects/X/configs resolves mmdet3d:: against <checkout>/configs
    import shutil

    checkout = tmp_path / "mmdetection3d"
    shutil.copytree(ROOT, checkout / "configs")
    (checkout / "projects" / "X" / "configs").mkdir(parents=True)
    user = checkout / "projects" / "X" / "configs" / "mine.py"
    user.write_text(USER_CFG)
    monkeypatch.delenv("ASSIGNAUDIT_MMDET3D_CONFIGS", raising=False)
    assert load_mmdet3d_config(user).assigner.assign_per_class is True


# ---------------------------------------------------------------------------------------------------------------------
# BEVFusion TransFusionHead
# ---------------------------------------------------------------------------------------------------------------------

BEVF_LIDAR = "../projects/BEVFusion/configs/bevfusion_lidar_voxel0075_second_secfpn_8xb4-cyclic-20e_nus-3d.py"
BEVF_CAM = "../projects/BEVFusion/configs/bevfusion_lidar-cam_voxel0075_second_secfpn_8xb4-cyclic-20e_nus-3d.py"


def test_bevfusion_transfusion_head_is_a_query_head_with_the_file_numbers():
    from assignaudit.augment.params import BEVFusionGlobalRotScaleTrans

    cfg = raw(BEVF_LIDAR)
    head = cfg["model"]["bbox_head"]
    got = load_mmdet3d_config(ROOT / BEVF_LIDAR)
    assert got.head == "query" and got.query.cost == "transfusion_mmdet3d"
    assert got.query.num_queries == head["num_proposals"] == 200
    assert got.query.num_layers == (head["num_decoder_layers"] if head["auxiliary"] else 1)
    assert got.point_cloud_range == tuple(head["train_cfg"]["point_cloud_range"])
    grst = [s for s in train_dataset(cfg)["pipeline"] if s["type"] == "GlobalRotScaleTrans"][0]
    assert got.augmentations[1] == GlobalRotScaleTrans(tuple(grst["rot_range"]), tuple(grst["scale_ratio_range"]),
                                                       (grst["translation_std"],) * 3)
    assert got.augmentations[2] == RandomFlip3D(0.5, 0.5)  # BEVFusionRandomFlip3D: choice([0, 1]) each
    cam = load_mmdet3d_config(ROOT / BEVF_CAM)
    assert isinstance(cam.augmentations[0], BEVFusionGlobalRotScaleTrans)  # no ObjectSample with cameras
    assert "ImageAug3D" in cam.dataset.skipped_transforms and "GridMask" in cam.dataset.skipped_transforms


def test_bevfusion_other_cost_weights_are_refused():
    with pytest.raises(ConfigError, match=r"train_cfg\.assigner\.iou_cost\.weight: 0\.5 is not reproduced"):
        load_mmdet3d_config(ROOT / BEVF_LIDAR, ["model.bbox_head.train_cfg.assigner.iou_cost.weight=0.5"])


def test_mvxnet_image_resize_is_skipped_and_the_flip_follows_the_image():
    rel = "mvxnet/mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py"
    got = load_mmdet3d_config(ROOT / rel)
    assert got.dataset.skipped_transforms == ("RandomResize",)
    assert RandomFlip3D(0.5, 0.0) in got.augmentations
    # sync_2d with an image: the vertical flip never happens upstream, whatever its ratio
    forced = load_mmdet3d_config(ROOT / rel, ["train_dataloader.dataset.dataset.pipeline.5.flip_ratio_bev_vertical=0.5"])
    assert RandomFlip3D(0.5, 0.0) in forced.augmentations
    off = load_mmdet3d_config(ROOT / rel, ["train_dataloader.dataset.dataset.pipeline.5.flip_ratio_bev_vertical=0.5",
                                           "train_dataloader.dataset.dataset.pipeline.5.sync_2d=False"])
    assert RandomFlip3D(0.5, 0.5) in off.augmentations


@pytest.mark.parametrize("rel, message", [
    ("free_anchor/pointpillars_hv_fpn_head-free-anchor_sbn-all_8xb4-2x_nus-3d.py",
     r"model\.pts_bbox_head\.type: 'FreeAnchor3DHead' is not supported: learned assignment"),
    ("3dssd/3dssd_4xb4_kitti-3d-car.py", r"'SSD3DHead' is not supported: point-based head"),
    ("point_rcnn/point-rcnn_8xb2_kitti-3d-3class.py",
     r"model\.rpn_head\.type: 'PointRPNHead' is not supported: point-based head"),
    ("votenet/votenet_8xb8_scannet-3d.py", r"'VoteHead' is not supported: point-based head"),
])
def test_the_remaining_refusals_give_their_reason(rel, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_mmdet3d_config(ROOT / rel)
    assert "\n" not in str(err.value)


def test_kitti_and_waymo_datasets_drop_other_classes_before_the_pipeline():
    kitti = load_mmdet3d_config(ROOT / "second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py")
    nus = load_mmdet3d_config(ROOT / "ssn/ssn_hv_secfpn_sbn-all_16xb2-2x_nus-3d.py")
    assert kitti.gt_filters.drop_other_classes is True and nus.gt_filters.drop_other_classes is False
    assert kitti.gt_filters.min_lidar_points == 0


@pytest.mark.parametrize("rel", ANCHOR_CONFIGS + [
    "../projects/PETR/configs/petr_vovnet_gridmask_p4_800x320.py", BEVF_LIDAR, BEVF_CAM,
    "mvxnet/mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py",
])
def test_config_show_yaml_round_trips(rel):
    import dataclasses

    from assignaudit.config.schema import config_from_dict, config_to_dict

    got = load_mmdet3d_config(ROOT / rel)
    back = config_from_dict(config_to_dict(got), "x", default_name=got.name, source=got.source)
    assert dataclasses.replace(back, dataset=got.dataset) == got
