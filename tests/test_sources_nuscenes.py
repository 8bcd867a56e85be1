"""NuScenesSource against nuscenes-devkit itself: every box of the fixture, velocities, splits and order."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from pyquaternion import Quaternion

from assignaudit.conventions import canonical_to_nuscenes_global, nuscenes_global_to_canonical
from assignaudit.errors import DataError
from assignaudit.sources import FIXTURE_DATAROOT, FIXTURE_SPLIT, FIXTURE_VERSION, open_source
from assignaudit.sources.nuscenes import NuScenesSource, box_velocities


@pytest.fixture(scope="module")
def src() -> NuScenesSource:
    return NuScenesSource(FIXTURE_DATAROOT, FIXTURE_VERSION, FIXTURE_SPLIT)


@pytest.fixture(scope="module")
def frames(src):
    return list(src.frames())


def _wrap(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def test_every_box_equals_devkit_get_sample_data(src, frames):
    from nuscenes.eval.common.utils import quaternion_yaw

    nusc = src.nusc
    n_checked = 0
    for f in frames:
        sample = nusc.get("sample", f.sample_token)
        sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        _, boxes, _ = nusc.get_sample_data(sd["token"])
        assert [b.token for b in boxes] == f.ann_token.tolist()
        ref = np.array([[*b.center, b.wlh[1], b.wlh[0], b.wlh[2], quaternion_yaw(b.orientation)] for b in boxes])
        # velocity: the devkit's box_velocity, rotated like Box.rotate does in get_sample_data
        vel = []
        for b in boxes:
            v = nusc.box_velocity(b.token)
            v = Quaternion(cs["rotation"]).inverse.rotate(Quaternion(pose["rotation"]).inverse.rotate(v))
            vel.append(v[:2])
        vel = np.array(vel)
        got = f.boxes_lidar
        np.testing.assert_allclose(got[:, :6], ref[:, :6], atol=1e-6, rtol=0)
        assert np.abs(_wrap(got[:, 6] - ref[:, 6])).max() < 1e-6
        # [-pi, pi) up to float rounding: the frameworks' limit_period maps a yaw one ulp below pi to one ulp below
        # -pi, and whether the 3x3 matmul lands there depends on the CPU's BLAS kernel (OPENBLAS_CORETYPE=Prescott).
        assert ((got[:, 6] >= -math.pi - 1e-12) & (got[:, 6] < math.pi)).all()
        np.testing.assert_array_equal(np.isnan(got[:, 7:9]), np.isnan(vel))
        np.testing.assert_allclose(got[:, 7:9], vel, atol=1e-6, rtol=0, equal_nan=True)
        # the other per-box fields, straight from the tables
        recs = [nusc.get("sample_annotation", t) for t in f.ann_token]
        assert f.num_lidar_pts.tolist() == [r["num_lidar_pts"] for r in recs]
        assert f.num_radar_pts.tolist() == [r["num_radar_pts"] for r in recs]
        assert f.instance_token.tolist() == [r["instance_token"] for r in recs]
        assert f.category.tolist() == [r["category_name"] for r in recs]
        np.testing.assert_allclose(f.ego_translation_global, pose["translation"])
        assert f.scene_name == nusc.get("scene", sample["scene_token"])["name"]
        n_checked += len(boxes)
    assert n_checked == len(nusc.sample_annotation)


def test_velocity_is_bit_identical_to_devkit_box_velocity(src):
    nusc = src.nusc
    ref = np.array([nusc.box_velocity(a["token"]) for a in nusc.sample_annotation])
    np.testing.assert_array_equal(src._velocity, ref)  # NaNs compare equal in assert_array_equal
    assert np.isnan(ref[:, 0]).any() and np.isfinite(ref[:, 0]).any()


def test_box_velocities_by_hand():
    # instance of 4 annotations at t = 0, 0.5, 1.0, 3.0 s, plus a singleton
    t = np.array([[0, 0, 0], [1, 0, 0], [3, 0, 0], [3, 4, 0], [9, 9, 9]], dtype=float)
    prev = np.array([-1, 0, 1, 2, -1])
    nxt = np.array([1, 2, 3, -1, -1])
    ts = np.array([0, 500_000, 1_000_000, 3_000_000, 0])
    v = box_velocities(t, prev, nxt, ts)
    np.testing.assert_allclose(v[0], [2, 0, 0])  # one-sided forward: 1 m / 0.5 s
    np.testing.assert_allclose(v[1], [3, 0, 0])  # centred: 3 m / 1 s
    np.testing.assert_allclose(v[2], [2 / 2.5, 4 / 2.5, 0])  # centred over 2.5 s <= 3 s
    assert np.isnan(v[3]).all()  # one-sided over 2 s > 1.5 s
    assert np.isnan(v[4]).all()  # single annotation


def test_detection_class_via_devkit(frames):
    from nuscenes.eval.detection.utils import category_to_detection_name

    cats = np.concatenate([f.category for f in frames])
    det = np.concatenate([f.detection_class for f in frames])
    assert det.tolist() == [category_to_detection_name(c) for c in cats]
    assert any(d is None for d in det)


def test_round_trip_canonical_global_canonical(src, frames):
    nusc = src.nusc
    for f in frames[:6]:
        g = canonical_to_nuscenes_global(f.boxes_lidar, f.global_SE3_lidar)
        recs = [nusc.get("sample_annotation", t) for t in f.ann_token]
        np.testing.assert_allclose(g["translation"], [r["translation"] for r in recs], atol=1e-6)
        np.testing.assert_allclose(g["size_wlh"], [r["size"] for r in recs], atol=1e-9)
        back = nuscenes_global_to_canonical(g["translation"], g["size_wlh"], g["rotation_wxyz"], g["velocity"],
                                            np.linalg.inv(f.global_SE3_lidar))
        np.testing.assert_allclose(back[:, :6], f.boxes_lidar[:, :6], atol=1e-6)
        assert np.abs(_wrap(back[:, 6] - f.boxes_lidar[:, 6])).max() < 1e-6
        # Velocity is 2D at both ends: the LiDAR-frame vz that the ego/LiDAR tilt (~0.3 deg) produces is dropped,
        # so the round trip is exact only to ~|v| * tilt^2 (a few 1e-6 m/s here).
        np.testing.assert_allclose(back[:, 7:9], f.boxes_lidar[:, 7:9], atol=1e-4, equal_nan=True)


def test_split_order_and_info(src):
    nusc = src.nusc
    tokens = src.sample_tokens()
    assert len(src) == len(tokens) == 24 == src.info.num_samples
    assert src.info.num_scenes == 4 and src.info.kind == "nuscenes" and src.info.split == FIXTURE_SPLIT
    rank = {s["token"]: i for i, s in enumerate(nusc.scene)}
    keys = [(rank[nusc.get("sample", t)["scene_token"]], nusc.get("sample", t)["timestamp"]) for t in tokens]
    assert keys == sorted(keys)


@pytest.mark.parametrize("split,scenes", [("mini_val", {"scene-0103", "scene-0916"}),
                                          ("mini_train", {"scene-0061", "scene-0553"}),
                                          ("fixture_a", {"scene-0061", "scene-0103"})])
def test_predefined_and_custom_splits(split, scenes):
    s = NuScenesSource(FIXTURE_DATAROOT, FIXTURE_VERSION, split)
    assert {f.scene_name for f in s.frames()} == scenes
    assert len(s) == 6 * len(scenes)


def test_predefined_split_shadows_custom(tmp_path):
    root = tmp_path / "nusc"
    shutil.copytree(FIXTURE_DATAROOT, root)
    splits = json.loads((root / FIXTURE_VERSION / "splits.json").read_text())
    splits["mini_val"] = ["scene-0061"]
    (root / FIXTURE_VERSION / "splits.json").write_text(json.dumps(splits))
    s = NuScenesSource(root, FIXTURE_VERSION, "mini_val")
    assert {f.scene_name for f in s.frames()} == {"scene-0103", "scene-0916"}


def test_version_suffix_checked_like_the_devkit():
    with pytest.raises(DataError, match="'val' needs a version ending in 'trainval'"):
        NuScenesSource(FIXTURE_DATAROOT, FIXTURE_VERSION, "val")


def test_open_source_defaults(tmp_path):
    s = open_source()
    assert (s.info.dataroot, s.info.version, s.info.split) == (str(FIXTURE_DATAROOT), "v1.0-mini", "fixture_all")
    # a dataroot with exactly one version: that version, and mini -> mini_val
    s = open_source(dataroot=FIXTURE_DATAROOT)
    assert (s.info.version, s.info.split, len(s)) == ("v1.0-mini", "mini_val", 12)
    root = tmp_path / "two"
    shutil.copytree(FIXTURE_DATAROOT / FIXTURE_VERSION, root / "v1.0-mini")
    shutil.copytree(FIXTURE_DATAROOT / FIXTURE_VERSION, root / "v1.0-other")
    with pytest.raises(DataError, match="pass --version"):
        open_source(dataroot=root)
    with pytest.raises(DataError, match="no default split for version 'v1.0-other'"):
        open_source(dataroot=root, version="v1.0-other")


def test_frames_do_not_share_mutable_state(src):
    f = src.frame(0)
    f.boxes_lidar[:] = 0
    f.global_SE3_lidar[:] = 0
    g = src.frame(0)
    assert np.abs(g.boxes_lidar[:, 3:6]).min() > 0 and g.global_SE3_lidar[3, 3] == 1
