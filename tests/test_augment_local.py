"""OpenPCDet local (per-object) augmentations: replay vs a hand-written per-box loop in upstream's order
(augmentor_utils.py local_rotation / local_scaling / random_local_translation_along_<axis>), seeding, and the
importer's parsing of the shipped pointpillar_newaugs / pyramid_aug configs."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from assignaudit.assign.params import AnchorLayout, AssignerParams
from assignaudit.augment import AugmentationReplay
from assignaudit.augment.params import (
    LocalFrustumDropout,
    LocalPyramidAug,
    LocalRotation,
    LocalScaling,
    LocalTranslation,
    WorldRotation,
)
from assignaudit.config.model import DetectorConfig, GTFilters
from assignaudit.errors import ConfigError
from assignaudit.sources.base import Frame

PCR = (-50.0, -50.0, -5.0, 50.0, 50.0, 3.0)
CLASSES = ("car", "pedestrian")
BOXES = np.array([[10.0, 5.0, -1.0, 4.0, 2.0, 1.5, 0.3, 0.0, 0.0],
                  [-20.0, 3.0, -0.5, 0.8, 0.6, 1.7, -1.0, 0.0, 0.0],
                  [0.0, -30.0, 0.0, 4.5, 1.9, 1.6, 3.0, 0.0, 0.0]])
NAMES = ("car", "pedestrian", "truck")  # truck: outside CLASS_NAMES, still moved by the queue (then filtered)


def make_config(*ops) -> DetectorConfig:
    return DetectorConfig(name="t", class_names=CLASSES, point_cloud_range=PCR, voxel_size=(0.25, 0.25, 8.0),
                          anchors=AnchorLayout(PCR, (0.25, 0.25, 8.0), ()), assigner=AssignerParams(),
                          augmentations=tuple(ops), gt_filters=GTFilters(min_lidar_points=0))


def make_frame(token="s0") -> Frame:
    n = BOXES.shape[0]
    cls = np.array(NAMES, dtype=object)
    return Frame(sample_token=token, boxes_lidar=BOXES.copy(), detection_class=cls, category=cls.copy(),
                 ann_token=np.array([f"a{i}" for i in range(n)], dtype=object),
                 instance_token=np.array([None] * n, dtype=object), num_lidar_pts=np.full(n, 10, dtype=np.int64),
                 num_radar_pts=np.full(n, -1, dtype=np.int64))


def op_generator(seed, token, replay, kind, occurrence=0):
    token_int = int.from_bytes(hashlib.sha256(token.encode()).digest()[:16], "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, token_int, replay, kind, occurrence])))


def upstream_loop(op, boxes, rng):
    """A per-box loop written from augmentor_utils.py (scalar draws, box order, axis order)."""
    out = boxes.copy()
    if isinstance(op, LocalRotation):
        for i in range(out.shape[0]):
            out[i, 6] += rng.uniform(*op.angle_range_rad)
    elif isinstance(op, LocalScaling):
        if op.scale_range[1] - op.scale_range[0] >= 1e-3:
            for i in range(out.shape[0]):
                out[i, 3:6] *= rng.uniform(*op.scale_range)
    elif isinstance(op, LocalTranslation):
        for axis in op.axes:
            for i in range(out.shape[0]):
                out[i, "xyz".index(axis)] += rng.uniform(*op.offset_range)
    return out


@pytest.mark.parametrize("op, kind", [
    (LocalRotation((-0.15707963267, 0.15707963267)), 9),
    (LocalScaling((0.95, 1.05)), 10),
    (LocalTranslation(("x", "y", "z"), (0.95, 1.05)), 11),
    (LocalTranslation(("z", "x"), (-0.5, 0.25)), 11),
])
def test_local_op_equals_per_box_loop(op, kind):
    seed = 7
    got = AugmentationReplay(make_config(op), None, seed=seed).apply(make_frame("s0"))
    expected = upstream_loop(op, BOXES, op_generator(seed, "s0", 0, kind))
    expected[:, 6] = (expected[:, 6] + math.pi) % (2 * math.pi) - math.pi  # limit_period(0.5, 2 pi)
    np.testing.assert_allclose(got.boxes, expected[:2], rtol=0, atol=1e-12)  # truck filtered after the queue
    if isinstance(op, (LocalRotation, LocalScaling)):  # centres never move
        np.testing.assert_array_equal(got.boxes[:, :3], BOXES[:2, :3])


def test_local_scaling_degenerate_range_draws_nothing():
    got = AugmentationReplay(make_config(LocalScaling((1.0, 1.0005))), None, seed=1).apply(make_frame())
    np.testing.assert_array_equal(got.boxes, BOXES[:2])


@pytest.mark.parametrize("op", [LocalFrustumDropout(("top",), (0.0, 0.2)), LocalPyramidAug()])
def test_points_only_ops_leave_boxes(op):
    got = AugmentationReplay(make_config(op), None, seed=3).apply(make_frame())
    np.testing.assert_array_equal(got.boxes, BOXES[:2])


def test_local_op_does_not_shift_other_ops_draws():
    rot = WorldRotation((-0.5, 0.5))
    a = AugmentationReplay(make_config(rot), None, seed=5).apply(make_frame())
    b = AugmentationReplay(make_config(LocalRotation((-0.1, 0.1)), rot), None, seed=5).apply(make_frame())
    assert a.draw("rotation_rad") == b.draw("rotation_rad")


@pytest.mark.parametrize("op, message", [
    (LocalScaling((0.0, 1.0)), "0 < lo"),
    (LocalTranslation(("w",), (0.0, 1.0)), "axis 'w'"),
    (LocalRotation((0.2, 0.1)), "lo <= hi"),
])
def test_bad_local_op(op, message):
    with pytest.raises(ConfigError, match=message):
        AugmentationReplay(make_config(op), None, seed=0)


def test_range_filter_none_keeps_out_of_range_boxes():
    """range_filter 'none' (OpenPCDet without mask_points_and_boxes_outside_range): every box reaches the assigner."""
    import dataclasses

    far = make_frame()
    far = dataclasses.replace(far, boxes_lidar=far.boxes_lidar + np.array([60.0, 0, 0, 0, 0, 0, 0, 0, 0]))
    cfg = make_config()
    kept = AugmentationReplay(cfg, None, seed=0).apply(far)
    none = AugmentationReplay(dataclasses.replace(cfg, gt_filters=GTFilters(min_lidar_points=0, range_filter="none")),
                              None, seed=0).apply(far)
    assert list(kept.class_name) == ["pedestrian"]  # x = 70 (car), 40 (pedestrian), 60 (truck); range +-50
    assert list(none.class_name) == ["car", "pedestrian"]  # truck: class filter only
