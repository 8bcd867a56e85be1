"""The canonical box convention and its edge converters, against pyquaternion (the devkit's quaternion library)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyquaternion import Quaternion

from assignaudit import conventions as cv


def random_pose(rng):
    q = Quaternion(axis=rng.normal(size=3), angle=rng.uniform(-math.pi, math.pi))
    return q, rng.uniform(-500, 500, size=3)


def test_wrap_yaw_range_and_values():
    yaws = np.array([-math.pi, math.pi, 3 * math.pi, -3 * math.pi + 1e-9, 0.0, 7.0, -7.0])
    w = cv.wrap_yaw(yaws)
    assert np.all(w >= -math.pi) and np.all(w < math.pi)
    assert w[1] == pytest.approx(-math.pi)  # pi maps to -pi: the range is [-pi, pi)
    assert w[5] == pytest.approx(7.0 - 2 * math.pi)
    assert torch.allclose(cv.wrap_yaw(torch.tensor([7.0], dtype=torch.float64)), torch.tensor([7.0 - 2 * math.pi],
                                                                                               dtype=torch.float64))


@settings(deadline=None)
@given(st.floats(-100, 100), st.floats(0.0, 1.0), st.floats(0.5, 10))
def test_limit_period_maps_into_its_interval(v, off, period):
    r = float(cv.limit_period(np.float64(v), off, period))
    assert -off * period - 1e-9 <= r < (1 - off) * period + 1e-9
    k = (v - r) / period
    assert abs(k - round(k)) < 1e-6


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_quaternion_matrix_round_trip_against_pyquaternion(seed):
    rng = np.random.default_rng(seed)
    qs = [Quaternion(axis=rng.normal(size=3), angle=rng.uniform(-3, 3)) for _ in range(5)]
    wxyz = np.array([q.elements for q in qs])
    m = cv.quaternion_to_matrix(wxyz)
    for q, mi in zip(qs, m):
        np.testing.assert_allclose(mi, q.rotation_matrix, atol=1e-12)
    back = cv.matrix_to_quaternion(m)
    for q, b in zip(qs, back):
        # q and -q are the same rotation
        assert min(np.abs(b - q.elements).max(), np.abs(b + q.elements).max()) < 1e-9


def test_nuscenes_global_round_trip_and_devkit_box_semantics():
    rng = np.random.default_rng(0)
    ego_q, ego_t = random_pose(rng)
    cs_q, cs_t = Quaternion(axis=[0, 0, 1], angle=-math.pi / 2), np.array([0.9, 0.0, 1.8])
    global_SE3_lidar = (cv.rigid_transform(ego_q.elements, ego_t) @ cv.rigid_transform(cs_q.elements, cs_t))
    lidar_SE3_global = np.linalg.inv(global_SE3_lidar)
    n = 50
    translation = rng.uniform(-300, 300, (n, 3))
    wlh = rng.uniform(0.3, 12, (n, 3))
    rot = np.array([Quaternion(axis=[0, 0, 1], angle=a).elements for a in rng.uniform(-4, 4, n)])
    vel = rng.normal(size=(n, 2))
    boxes = cv.nuscenes_global_to_canonical(translation, wlh, rot, vel, lidar_SE3_global)
    # The devkit's get_sample_data path, box by box, with pyquaternion.
    for i in range(n):
        c = translation[i] - ego_t
        c = ego_q.inverse.rotate(c)
        c = cs_q.inverse.rotate(c - cs_t)
        q = cs_q.inverse * ego_q.inverse * Quaternion(rot[i])
        v = cs_q.inverse.rotate(ego_q.inverse.rotate(np.array([*vel[i], 0.0])))
        yaw = math.atan2(q.rotate(np.array([1.0, 0, 0]))[1], q.rotate(np.array([1.0, 0, 0]))[0])
        np.testing.assert_allclose(boxes[i, :3], c, atol=1e-9)
        np.testing.assert_allclose(boxes[i, 3:6], wlh[i, [1, 0, 2]])
        assert cv.wrap_yaw(boxes[i, 6] - yaw) == pytest.approx(0.0, abs=1e-9) or abs(
            abs(cv.wrap_yaw(boxes[i, 6] - yaw)) - 2 * math.pi) < 1e-9
        np.testing.assert_allclose(boxes[i, 7:9], v[:2], atol=1e-9)
    assert np.all(boxes[:, 6] >= -math.pi) and np.all(boxes[:, 6] < math.pi)
    # Round trip. A 2D velocity survives only rotations about z (a tilted frame moves part of it into vz, which the
    # canonical box drops), so the round trip uses a level pose, as nuScenes ego poses nearly are.
    ego_level = Quaternion(axis=[0, 0, 1], angle=rng.uniform(-math.pi, math.pi))
    global_SE3_lidar = cv.rigid_transform(ego_level.elements, ego_t) @ cv.rigid_transform(cs_q.elements, cs_t)
    lidar_SE3_global = np.linalg.inv(global_SE3_lidar)
    boxes = cv.nuscenes_global_to_canonical(translation, wlh, rot, vel, lidar_SE3_global)
    back = cv.canonical_to_nuscenes_global(boxes, global_SE3_lidar)
    np.testing.assert_allclose(back["translation"], translation, atol=1e-9)
    np.testing.assert_allclose(back["size_wlh"], wlh, atol=1e-12)
    np.testing.assert_allclose(back["velocity"], vel, atol=1e-9)
    again = cv.nuscenes_global_to_canonical(back["translation"], back["size_wlh"], back["rotation_wxyz"],
                                            back["velocity"], lidar_SE3_global)
    np.testing.assert_allclose(again, boxes, atol=1e-9)
    assert np.allclose(np.linalg.norm(back["rotation_wxyz"], axis=1), 1.0)


def test_missing_velocity_is_nan():
    b = cv.nuscenes_global_to_canonical(np.zeros((1, 3)), np.ones((1, 3)), np.array([[1.0, 0, 0, 0]]), None, np.eye(4))
    assert np.isnan(b[0, 7:9]).all()


def test_mmdet3d_bottom_centre_round_trip_does_not_mutate():
    boxes = np.array([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.3, 0.0, 0.0]])
    orig = boxes.copy()
    mm = cv.canonical_to_mmdet3d(boxes)
    assert mm[0, 2] == pytest.approx(-1.75)  # bottom = centre - dz/2
    np.testing.assert_array_equal(boxes, orig)
    np.testing.assert_allclose(cv.mmdet3d_to_canonical(mm), boxes)
    t = torch.tensor(boxes)
    assert torch.equal(cv.mmdet3d_to_canonical(cv.canonical_to_mmdet3d(t)), t)
    assert torch.equal(t, torch.tensor(orig))
    np.testing.assert_array_equal(cv.pcdet_to_canonical(boxes), boxes)


def test_mmdet3d_camera_box_to_canonical_by_hand():
    """A camera box through lidar2cam = [R | t] with R the axis permutation LiDAR (x fwd, y left, z up) -> camera
    (x right, y down, z fwd): LiDAR point = R^T (camera point - t), worked out by hand."""
    from assignaudit.conventions import mmdet3d_camera_to_canonical

    lidar2cam = np.array([[0.0, -1.0, 0.0, 0.1], [0.0, 0.0, -1.0, -0.2], [1.0, 0.0, 0.0, 0.3], [0, 0, 0, 1]])
    # camera: bottom centre (1, 1.5, 10), l = 4 (camera x extent), h = 1.5, w = 1.8, ry = 0.3
    box = mmdet3d_camera_to_canonical([[1.0, 1.5, 10.0, 4.0, 1.5, 1.8, 0.3]], lidar2cam)[0]
    # R^T (c - t): c - t = (0.9, 1.7, 9.7) -> lidar (9.7, -0.9, -1.7) bottom centre; centre z = -1.7 + 1.5 / 2
    np.testing.assert_allclose(box[:3], [9.7, -0.9, -0.95], atol=1e-12)
    np.testing.assert_allclose(box[3:6], [4.0, 1.8, 1.5])  # (l, w, h)
    assert box[6] == pytest.approx(-0.3 - np.pi / 2)
    assert np.isnan(box[7:]).all()
