"""mmdetection3d 1.4 projects/DSVT and projects/CenterFormer (tests/data/mmdet3d_cfgs, unmodified v1.4.0 files):
their CenterHead heatmap targets are read with every number equal to the file (the expected side walks the raw
mmengine dict by hand), ``ObjectRangeFilter3D``'s bottom-centre 3D range rule against hand numbers, the refusals,
`yaw` refusing to guess their NMS, and `count` on a Waymo info fixture."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mmengine")
from mmengine.config import Config  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from assignaudit.augment.filters import range_mask  # noqa: E402
from assignaudit.augment.params import GlobalRotScaleTrans, ObjectSample, RandomFlip3D  # noqa: E402
from assignaudit.cli import app  # noqa: E402
from assignaudit.config.mmdet3d import load_mmdet3d_config, mmdet3d_config_from_dict  # noqa: E402
from assignaudit.config.schema import config_from_dict, config_to_dict  # noqa: E402
from assignaudit.errors import ConfigError  # noqa: E402
from assignaudit.report import read_report  # noqa: E402

DATA = Path(__file__).parent / "data"
ROOT = DATA / "mmdet3d_cfgs" / "projects"
DSVT = ROOT / "DSVT/configs/dsvt_voxel032_res-second_secfpn_8xb1-cyclic-12e_waymoD5-3d-3class.py"
CFORMER = ROOT / ("CenterFormer/configs/"
                  "centerformer_voxel01_second-attn_secfpn-attn_4xb4-cyclic-20e_waymoD5-3d-3class.py")
WAYMO_INFOS = DATA / "infos" / "mmdet3d_waymo_infos_train.pkl"


def raw(path):
    return Config.fromfile(str(path), import_custom_modules=False).to_dict()


def expected_augmentations(pipeline):
    out = []
    for step in pipeline:
        t = step["type"]
        if t == "ObjectSample":
            db = step["db_sampler"]
            out.append(ObjectSample(tuple(db["sample_groups"].items()),
                                    tuple(db["prepare"]["filter_by_min_points"].items()), db.get("rate", 1.0),
                                    tuple(db["prepare"].get("filter_by_difficulty", []))))
        elif t == "RandomFlip3D":
            out.append(RandomFlip3D(step["flip_ratio_bev_horizontal"], step["flip_ratio_bev_vertical"]))
        elif t == "GlobalRotScaleTrans":
            out.append(GlobalRotScaleTrans(tuple(step["rot_range"]), tuple(step["scale_ratio_range"]),
                                           tuple(float(v) for v in step["translation_std"])))
    return tuple(out)


def check_heatmap(got, cfg, tasks):
    tr = cfg["model"]["train_cfg"]
    hp = got.heatmap
    assert got.head == "center" and got.framework == "mmdet3d"
    assert hp.variant == "mmdet3d"
    assert hp.point_cloud_range == tuple(tr["point_cloud_range"]) == got.point_cloud_range
    assert hp.voxel_size == tuple(tr["voxel_size"])
    assert hp.feature_map_stride == tr["out_size_factor"]
    assert hp.feature_map_size == (tr["grid_size"][0] // tr["out_size_factor"],
                                   tr["grid_size"][1] // tr["out_size_factor"])
    assert hp.num_max_objs == tr["max_objs"] * tr["dense_reg"]
    assert hp.gaussian_overlap == tr["gaussian_overlap"]
    assert hp.min_radius == tr["min_radius"]
    classes = tuple(cfg["train_dataloader"]["dataset"]["metainfo"]["classes"])
    assert got.class_names == hp.class_names == classes
    # the tasks' labels by position (class_name.index(i) + flag), whatever the task spells them
    flat, start = [], 0
    for t in tasks:
        flat.append(classes[start:start + len(t["class_names"])])
        start += len(t["class_names"])
    assert hp.heads == tuple(flat)


def test_dsvt_center_head_numbers_equal_the_file():
    cfg = raw(DSVT)
    got = load_mmdet3d_config(DSVT)
    check_heatmap(got, cfg, cfg["model"]["bbox_head"]["tasks"])
    assert got.heatmap.feature_map_size == (468, 468)  # grid 468 / out_size_factor 1
    ds = cfg["train_dataloader"]["dataset"]
    assert got.augmentations == expected_augmentations(ds["pipeline"])
    assert got.gt_filters.range_filter == "mmdet3d_3d"  # ObjectRangeFilter3D (in_range_3d)
    assert got.gt_filters.drop_other_classes  # WaymoDataset
    te, coder = cfg["model"]["test_cfg"], cfg["model"]["bbox_head"]["bbox_coder"]
    pp = got.post_processing
    assert pp.score_thresh == coder["score_threshold"]
    assert pp.nms_thresh_per_class == tuple(v for task in te["nms_thr"] for v in task)
    assert pp.nms_pre_maxsize == te["pre_max_size"][0][0] and pp.nms_post_maxsize == te["post_max_size"][0][0]
    assert pp.multi_classes_nms and "not reproduced" in pp.nms_not_reproduced


def test_centerformer_targets_are_the_backbone_tasks_and_train_cfg():
    cfg = raw(CFORMER)
    got = load_mmdet3d_config(CFORMER)
    check_heatmap(got, cfg, cfg["model"]["backbone"]["tasks"])
    assert got.heatmap.feature_map_size == (376, 376)  # 1504 / 4
    layer = cfg["model"]["data_preprocessor"]["voxel_layer"]
    assert got.point_cloud_range == tuple(layer["point_cloud_range"])
    assert got.voxel_size == tuple(layer["voxel_size"])
    ds = cfg["train_dataloader"]["dataset"]
    assert got.augmentations == expected_augmentations(ds["pipeline"])
    assert got.gt_filters.range_filter == "mmdet3d"
    pp = got.post_processing
    assert pp.score_thresh == cfg["model"]["test_cfg"]["score_threshold"]
    assert pp.nms_thresh_per_class == tuple(cfg["model"]["test_cfg"]["nms"]["nms_iou_threshold"])
    assert "nms_iou3d" in pp.nms_not_reproduced


@pytest.mark.parametrize("path", [DSVT, CFORMER])
def test_yaml_round_trip(path):
    got = load_mmdet3d_config(path)
    back = config_from_dict(config_to_dict(got), "x", default_name=got.name, source=got.source)
    assert dataclasses.replace(back, dataset=got.dataset) == got


def test_centerformer_task_count_and_backbone_refusals():
    cfg = raw(CFORMER)
    bad = raw(CFORMER)
    bad["model"]["backbone"]["tasks"] = [dict(num_class=2, class_names=["car", "pedestrian"])]
    with pytest.raises(ConfigError, match=r"model\.backbone\.tasks: the tasks list 2 classes but the dataset has 3"):
        mmdet3d_config_from_dict(bad, "x.py", name="x", source="x.py")
    bad = raw(CFORMER)
    bad["model"]["backbone"]["type"] = "MultiFrameDeformableDecoderRPN"
    with pytest.raises(ConfigError, match="supported: DeformableDecoderRPN"):
        mmdet3d_config_from_dict(bad, "x.py", name="x", source="x.py")
    cfg["model"]["train_cfg"]["grid_size"] = [1504, 1504, 40]
    cfg["model"]["train_cfg"]["voxel_size"] = [0.2, 0.2, 0.15]
    with pytest.raises(ConfigError, match="differs from the voxel layer"):
        mmdet3d_config_from_dict(cfg, "x.py", name="x", source="x.py")


def test_object_range_filter_3d_uses_the_bottom_centre_strictly():
    pcr = (-74.88, -74.88, -2.0, 74.88, 74.88, 4.0)
    # [x, y, z(centre), dx, dy, dz, yaw, vx, vy]
    boxes = np.array([
        [0.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0, 0, 0],   # bottom -1.75 > -2: kept
        [0.0, 0.0, -1.2, 4.0, 2.0, 1.6, 0, 0, 0],   # bottom -2.0: not strictly inside, dropped
        [0.0, 0.0, 4.5, 4.0, 2.0, 1.6, 0, 0, 0],    # centre above 4 but bottom 3.7 < 4: kept
        [0.0, 0.0, 4.9, 4.0, 2.0, 1.6, 0, 0, 0],    # bottom 4.1: dropped
        [74.9, 0.0, 0.0, 4.0, 2.0, 1.6, 0, 0, 0],   # x outside: dropped
    ])
    assert range_mask(boxes, pcr, "mmdet3d_3d").tolist() == [True, False, True, False, False]
    assert range_mask(boxes, pcr, "mmdet3d").tolist() == [True, True, True, True, False]  # BEV only


def test_yaw_asks_for_the_nms_of_a_head_whose_nms_is_not_reproduced():
    from assignaudit.yaw.pipeline import NmsOverrides, resolve_nms

    got = load_mmdet3d_config(DSVT)
    with pytest.raises(ConfigError, match="DSVTCenterHead NMS is not reproduced.*--nms-pre-max"):
        resolve_nms(NmsOverrides(), got)
    s = resolve_nms(NmsOverrides(thresh=0.5, pre_max=100, post_max=50), got)
    assert (s.thresh, s.pre_max, s.post_max) == (0.5, 100, 50)


@pytest.mark.parametrize("path,cells", [(DSVT, 468 * 468), (CFORMER, 376 * 376)])
def test_count_runs_on_waymo_infos(tmp_path, path, cells):
    res = CliRunner().invoke(app, ["count", "--quiet", "--only-summary", "--out", str(tmp_path), "--config",
                                   str(path), "--infos", str(WAYMO_INFOS)])
    assert res.exit_code == 0, res.output
    summary, meta = read_report(tmp_path / "summary.parquet")
    assert meta["head"] == "center" and meta["framework"] == "mmdet3d"
    a = summary[summary.band == "all"].set_index("class")
    assert a.num_gt.sum() > 0
    np.testing.assert_array_equal(a.num_pos + a.num_neg, cells * meta["num_frames_assigned"])


def test_waymo_load_interval_keeps_every_fifth_frame():
    import pickle

    from assignaudit.sources.infos import open_infos

    got = load_mmdet3d_config(DSVT)
    assert ("load_interval", "5") in got.dataset.options  # train_dataloader.dataset.load_interval
    data = pickle.loads(WAYMO_INFOS.read_bytes())["data_list"]
    src = open_infos([WAYMO_INFOS], config=got)
    assert src.sample_tokens() == [str(r["sample_idx"]) for r in data[::5]]
    every = open_infos([WAYMO_INFOS], config=dataclasses.replace(got, dataset=dataclasses.replace(
        got.dataset, options=())))
    assert len(every.sample_tokens()) == len(data)
