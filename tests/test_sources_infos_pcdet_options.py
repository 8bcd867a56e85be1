"""OpenPCDet dataset options read by the info source: Waymo ``INFO_WITH_FAKELIDAR`` (boxes3d_kitti_fakelidar_to_lidar)
and nuScenes / Lyft ``SET_NAN_VELOCITY_TO_ZEROS``, against numbers worked by hand."""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from assignaudit.config import load_config
from assignaudit.config.model import DatasetSpec
from assignaudit.conventions import pcdet_fakelidar_to_canonical
from assignaudit.errors import ConfigError
from assignaudit.sources.infos import open_infos
from assignaudit.sources.infos_pcdet import read_nuscenes, read_waymo

DATA = Path(__file__).parent / "data"
INFOS = DATA / "infos"
PCDET = DATA / "pcdet/tools/cfgs"


def with_options(**opts):
    spec = DatasetSpec(framework="pcdet", options=tuple((k, v) for k, v in opts.items()))
    return dataclasses.replace(load_config(None), dataset=spec)


def waymo_record(boxes, names, pts):
    return {"frame_id": "seq_000", "annos": {"name": np.array(names), "gt_boxes_lidar": np.array(boxes, float),
                                             "num_points_in_gt": np.array(pts), "difficulty": np.zeros(len(names))}}


# [x, y, z_bottom, w, l, h, r, vx, vy] in the old fake-LiDAR convention
FAKE = [[10.0, -4.0, -1.0, 2.0, 4.5, 1.6, 0.3, 1.0, 2.0],
        [-3.0, 7.0, 0.5, 0.8, 0.6, 1.8, 2.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]


def test_fakelidar_conversion_by_hand():
    got = pcdet_fakelidar_to_canonical(np.array(FAKE))
    # z + h/2; (dx, dy) = (l, w); yaw = -(r + pi/2); 7 columns
    np.testing.assert_allclose(got[0], [10.0, -4.0, -0.2, 4.5, 2.0, 1.6, -0.3 - math.pi / 2])
    np.testing.assert_allclose(got[1], [-3.0, 7.0, 1.4, 0.6, 0.8, 1.8, -2.0 - math.pi / 2])
    assert got.shape == (3, 7)


def test_waymo_info_with_fakelidar_converts_after_dropping_unknown():
    rec = waymo_record(FAKE, ["Vehicle", "Pedestrian", "unknown"], [10, 0, 5])
    cfg = with_options(INFO_WITH_FAKELIDAR="true", FILTER_EMPTY_BOXES_FOR_TRAIN="true")
    (frame,) = read_waymo([rec], "x.pkl", config=cfg, data_path=Path("."))
    assert frame.detection_class.tolist() == ["Vehicle"]  # unknown dropped, then the empty Pedestrian
    # -(0.3 + pi/2) = -1.87079633 is inside [-pi, pi): unchanged by the wrap; velocity dropped (NaN) as upstream
    np.testing.assert_allclose(frame.boxes_lidar[0, :7], [10.0, -4.0, -0.2, 4.5, 2.0, 1.6, -1.8707963267948966])
    assert np.isnan(frame.boxes_lidar[0, 7:]).all()
    cfg = with_options(INFO_WITH_FAKELIDAR="true")
    (frame,) = read_waymo([rec], "x.pkl", config=cfg, data_path=Path("."))
    # -(2 + pi/2) = -3.5707963 wraps to 2 pi - 3.5707963 = 2.7123890
    np.testing.assert_allclose(frame.boxes_lidar[1, :7], [-3.0, 7.0, 1.4, 0.6, 0.8, 1.8, 2.7123889803846897])
    (plain,) = read_waymo([rec], "x.pkl", config=with_options(), data_path=Path("."))
    np.testing.assert_allclose(plain.boxes_lidar[0, :7], FAKE[0][:7])  # not converted without the option


def test_waymo_fakelidar_with_speed_is_refused():
    rec = waymo_record(FAKE, ["Vehicle", "Pedestrian", "unknown"], [10, 0, 5])
    with pytest.raises(ConfigError, match="INFO_WITH_FAKELIDAR with TRAIN_WITH_SPEED"):
        read_waymo([rec], "x.pkl", config=with_options(INFO_WITH_FAKELIDAR="true", TRAIN_WITH_SPEED="true"),
                   data_path=Path("."))


def test_pcdet_config_records_the_two_options(tmp_path):
    cfg = tmp_path / "waymo_fake.yaml"
    base = (PCDET / "waymo_models/pointpillar_1x.yaml").resolve()
    cfg.write_text(f"_BASE_CONFIG_: {base}\nDATA_CONFIG:\n    INFO_WITH_FAKELIDAR: True\n")
    loaded = load_config(str(cfg))
    assert ("INFO_WITH_FAKELIDAR", "true") in loaded.dataset.options
    nus = load_config(str(PCDET / "nuscenes_models/cbgs_pp_multihead.yaml"))
    assert ("SET_NAN_VELOCITY_TO_ZEROS", "true") in nus.dataset.options  # nuscenes_dataset.yaml


def test_nuscenes_nan_velocity_to_zeros():
    boxes = np.array([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.1, np.nan, np.nan],
                      [5.0, 6.0, -1.0, 4.0, 2.0, 1.5, 0.2, 1.5, -0.5]])
    rec = {"token": "t0", "gt_names": np.array(["car", "car"]), "gt_boxes": boxes,
           "num_lidar_pts": np.array([3, 4]), "num_radar_pts": np.array([0, 1])}
    (zeroed,) = read_nuscenes([rec], "x.pkl", config=with_options(SET_NAN_VELOCITY_TO_ZEROS="true"),
                              data_path=Path("."))
    np.testing.assert_array_equal(zeroed.boxes_lidar[:, 7:], [[0.0, 0.0], [1.5, -0.5]])
    (kept,) = read_nuscenes([rec], "x.pkl", config=with_options(), data_path=Path("."))
    assert np.isnan(kept.boxes_lidar[0, 7:]).all() and kept.boxes_lidar[1, 7:].tolist() == [1.5, -0.5]
    assert not np.shares_memory(zeroed.boxes_lidar, boxes) and np.isnan(boxes[0, 7:]).all()  # input untouched


def test_nuscenes_fixture_with_the_shipped_config_has_no_nan_velocity():
    raw = pickle.loads((INFOS / "pcdet_nuscenes_infos_train.pkl").read_bytes())
    assert np.isnan(np.concatenate([r["gt_boxes"] for r in raw])[:, 7:]).any()  # the fixture has NaN velocities
    cfg = load_config(str(PCDET / "nuscenes_models/cbgs_pp_multihead.yaml"))
    src = open_infos([INFOS / "pcdet_nuscenes_infos_train.pkl"], config=cfg)
    vel = np.concatenate([f.boxes_lidar[:, 7:] for f in src.frames()])
    assert vel.size and not np.isnan(vel).any()
