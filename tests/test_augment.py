"""Augmentation replay: box maths, draw order, seeding and the GT filters, on hand-made frames.

Expected numbers are derived by hand in each test (trigonometry on one box), not taken from the code under test.
"""

from __future__ import annotations

import copy
import hashlib
import math

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from assignaudit.assign.params import AnchorLayout, AssignerParams
from assignaudit.augment import (
    DROP_CLASS_FILTER,
    DROP_MIN_POINTS,
    DROP_OUT_OF_RANGE,
    AugmentationReplay,
    build_database,
)
from assignaudit.augment.params import GTSampling, WorldFlip, WorldRotation, WorldScaling, WorldTranslation
from assignaudit.cli.app import cli_errors
from assignaudit.config.model import DetectorConfig, GTFilters
from assignaudit.errors import ConfigError, DataError
from assignaudit.sources.base import Frame

PCR = (-50.0, -50.0, -5.0, 50.0, 50.0, 3.0)  # exactly representable in float32
CLASSES = ("car", "pedestrian")


def make_config(augmentations=(), **filters) -> DetectorConfig:
    return DetectorConfig(
        name="test",
        class_names=CLASSES,
        point_cloud_range=PCR,
        voxel_size=(0.25, 0.25, 8.0),
        anchors=AnchorLayout(PCR, (0.25, 0.25, 8.0), ()),
        assigner=AssignerParams(),
        augmentations=tuple(augmentations),
        gt_filters=GTFilters(**filters),
    )


def make_frame(boxes, classes, pts=None, token="sample-0", ann=None) -> Frame:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 9)
    n = boxes.shape[0]
    cls = np.array(list(classes), dtype=object)
    return Frame(
        sample_token=token,
        boxes_lidar=boxes,
        detection_class=cls,
        category=cls.copy(),
        ann_token=np.array(ann if ann is not None else [f"{token}-ann{i}" for i in range(n)], dtype=object),
        instance_token=np.array([None] * n, dtype=object),
        num_lidar_pts=np.asarray(pts if pts is not None else [10] * n, dtype=np.int64),
        num_radar_pts=np.full(n, -1, dtype=np.int64),
    )


BOX = [10.0, 5.0, -1.0, 4.0, 2.0, 1.5, 0.3, 1.0, 2.0]  # x y z dx dy dz yaw vx vy


def op_generator(seed, token, replay, kind, occurrence=0):
    """The documented per-op stream: PCG64(SeedSequence([seed, sha256(token)[:16] LE, replay, kind, occurrence]))."""
    token_int = int.from_bytes(hashlib.sha256(token.encode()).digest()[:16], "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, token_int, replay, kind, occurrence])))


def seed_where(token, kind, predicate, replay=0):
    """First seed whose op stream's first uniform satisfies ``predicate`` (used to force a flip / no flip)."""
    for seed in range(1000):
        if predicate(op_generator(seed, token, replay, kind).random()):
            return seed
    raise AssertionError("no seed found")


# ---------------------------------------------------------------------------------------------------------------------
# Each op's maths, through the replay (so the draw, the maths and the final yaw wrap are all exercised)
# ---------------------------------------------------------------------------------------------------------------------


def test_flip_x_negates_y_yaw_vy():
    seed = seed_where("sample-0", 1, lambda u: u >= 0.5)  # u >= 0.5 -> np.random.choice([False, True]) is True
    out = AugmentationReplay(make_config([WorldFlip(("x",))]), None, seed).apply(make_frame([BOX], ["car"]))
    assert out.draws == (("flip_x", 1.0),)
    np.testing.assert_allclose(out.boxes[0], [10.0, -5.0, -1.0, 4.0, 2.0, 1.5, -0.3, 1.0, -2.0], atol=1e-12)


def test_flip_y_negates_x_and_maps_yaw_to_minus_yaw_plus_pi_wrapped():
    seed = seed_where("sample-0", 1, lambda u: u >= 0.5)
    out = AugmentationReplay(make_config([WorldFlip(("y",))]), None, seed).apply(make_frame([BOX], ["car"]))
    # -(0.3 + pi) = -3.4416 is below -pi; wrapped by +2 pi it is pi - 0.3 = 2.8416.
    np.testing.assert_allclose(out.boxes[0], [-10.0, 5.0, -1.0, 4.0, 2.0, 1.5, math.pi - 0.3, -1.0, 2.0], atol=1e-12)


def test_no_flip_when_draw_below_half():
    seed = seed_where("sample-0", 1, lambda u: u < 0.5)
    out = AugmentationReplay(make_config([WorldFlip(("x",))]), None, seed).apply(make_frame([BOX], ["car"]))
    assert out.draws == (("flip_x", 0.0),)
    np.testing.assert_array_equal(out.boxes[0], BOX)


def test_flip_draws_one_uniform_per_axis_in_list_order():
    token = "sample-0"
    for seed in range(20):
        rng = op_generator(seed, token, 0, kind=1)
        u_x, u_y = rng.random(), rng.random()
        out = AugmentationReplay(make_config([WorldFlip(("x", "y"))]), None, seed).apply(make_frame([BOX], ["car"]))
        assert out.draws == (("flip_x", float(u_x >= 0.5)), ("flip_y", float(u_y >= 0.5)))


def test_rotation_is_counter_clockwise_and_rotates_velocity():
    a = math.pi / 2
    out = AugmentationReplay(make_config([WorldRotation((a, a))]), None, 0).apply(make_frame([BOX], ["car"]))
    # (10, 5) rotated CCW by 90 deg -> (-5, 10); velocity (1, 2) -> (-2, 1); yaw 0.3 + pi/2.
    np.testing.assert_allclose(out.boxes[0], [-5.0, 10.0, -1.0, 4.0, 2.0, 1.5, 0.3 + a, -2.0, 1.0], atol=1e-12)
    assert out.draw("rotation_rad") == a


def test_rotation_draw_is_one_uniform_in_range():
    out = AugmentationReplay(make_config([WorldRotation((-0.4, 0.4))]), None, 7).apply(make_frame([BOX], ["car"]))
    expected = op_generator(7, "sample-0", 0, kind=2).uniform(-0.4, 0.4)
    assert out.draw("rotation_rad") == expected
    c, s = math.cos(expected), math.sin(expected)
    np.testing.assert_allclose(out.boxes[0, :2], [10 * c - 5 * s, 10 * s + 5 * c], atol=1e-12)


def test_scaling_scales_centre_dims_velocity_not_yaw():
    out = AugmentationReplay(make_config([WorldScaling((0.9, 1.1))]), None, 3).apply(make_frame([BOX], ["car"]))
    s = op_generator(3, "sample-0", 0, kind=3).uniform(0.9, 1.1)
    assert out.draw("scale") == s
    np.testing.assert_allclose(
        out.boxes[0], [10 * s, 5 * s, -1 * s, 4 * s, 2 * s, 1.5 * s, 0.3, 1.0 * s, 2.0 * s], atol=1e-12
    )


def test_scaling_with_degenerate_range_is_skipped_without_a_draw():
    out = AugmentationReplay(make_config([WorldScaling((1.0, 1.0005))]), None, 3).apply(make_frame([BOX], ["car"]))
    assert out.draws == ()
    np.testing.assert_array_equal(out.boxes[0], BOX)


def test_translation_moves_centre_only_with_three_normals():
    out = AugmentationReplay(make_config([WorldTranslation((0.5, 0.0, 0.2))]), None, 5).apply(
        make_frame([BOX], ["car"])
    )
    rng = op_generator(5, "sample-0", 0, kind=4)
    t = [rng.normal(0, 0.5), rng.normal(0, 0.0), rng.normal(0, 0.2)]
    assert t[1] == 0.0
    assert [v for _, v in out.draws] == t
    np.testing.assert_allclose(out.boxes[0], [10 + t[0], 5.0, -1 + t[2], 4, 2, 1.5, 0.3, 1.0, 2.0], atol=1e-12)


def test_order_matters_flip_then_rotate_differs_from_rotate_then_flip():
    seed = seed_where("sample-0", 1, lambda u: u >= 0.5)
    a = math.pi / 2
    box = [10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0, 1.0, 0.0]
    frame = make_frame([box], ["car"])
    flip_rot = AugmentationReplay(make_config([WorldFlip(("x",)), WorldRotation((a, a))]), None, seed).apply(frame)
    rot_flip = AugmentationReplay(make_config([WorldRotation((a, a)), WorldFlip(("x",))]), None, seed).apply(frame)
    # flip x: (10, 0) -> (10, 0), then rotate: (0, 10), yaw pi/2, v (0, 1)
    np.testing.assert_allclose(flip_rot.boxes[0, [0, 1, 6, 7, 8]], [0, 10, a, 0, 1], atol=1e-12)
    # rotate: (0, 10), yaw pi/2, v (0, 1); then flip x: (0, -10), yaw -pi/2, v (0, -1)
    np.testing.assert_allclose(rot_flip.boxes[0, [0, 1, 6, 7, 8]], [0, -10, -a, 0, -1], atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------------------------------------------------

PCDET_NUSC_WORLD = [WorldFlip(("x", "y")), WorldRotation((-0.3925, 0.3925)), WorldScaling((0.95, 1.05))]


def _random_frames(n):
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        boxes = np.concatenate(
            [rng.uniform(-30, 30, (6, 2)), rng.uniform(-2, 0, (6, 1)), rng.uniform(1, 5, (6, 3)),
             rng.uniform(-3, 3, (6, 1)), rng.normal(0, 3, (6, 2))], axis=1
        )
        frames.append(make_frame(boxes, ["car", "pedestrian"] * 3, token=f"tok{i}"))
    return frames


def test_same_seed_is_identical_regardless_of_frame_order():
    frames = _random_frames(6)
    cfg = make_config(PCDET_NUSC_WORLD + [WorldTranslation((0.5, 0.5, 0.5))])
    forward = {f.sample_token: AugmentationReplay(cfg, None, 11).apply(f, 2) for f in frames}
    backward = {f.sample_token: AugmentationReplay(cfg, None, 11).apply(f, 2) for f in reversed(frames)}
    for token, out in forward.items():
        np.testing.assert_array_equal(out.boxes, backward[token].boxes)
        assert out.draws == backward[token].draws


def test_different_replays_and_seeds_differ():
    frame = _random_frames(1)[0]
    cfg = make_config(PCDET_NUSC_WORLD)
    r0 = AugmentationReplay(cfg, None, 1).apply(frame, 0)
    r1 = AugmentationReplay(cfg, None, 1).apply(frame, 1)
    s2 = AugmentationReplay(cfg, None, 2).apply(frame, 0)
    assert r0.draw("rotation_rad") != r1.draw("rotation_rad")
    assert r0.draw("rotation_rad") != s2.draw("rotation_rad")
    assert not np.allclose(r0.boxes, r1.boxes)
    assert r1.replay == 1


def test_adding_an_op_does_not_change_the_draws_of_the_others():
    frame = _random_frames(1)[0]
    base = AugmentationReplay(make_config(PCDET_NUSC_WORLD), None, 4).apply(frame)
    more = AugmentationReplay(make_config(PCDET_NUSC_WORLD + [WorldTranslation((0.2, 0.2, 0.2))]), None, 4).apply(frame)
    assert more.draws[: len(base.draws)] == base.draws


# ---------------------------------------------------------------------------------------------------------------------
# Filters and the drop ledger
# ---------------------------------------------------------------------------------------------------------------------


def test_range_filter_boundary_pcdet_inclusive_mmdet3d_strict_bev():
    on_xmax = [50.0, 0.0, 0.0, 4, 2, 1.5, 0, 0, 0]
    z_out = [10.0, 0.0, 3.5, 4, 2, 1.5, 0, 0, 0]  # z above z_max = 3: pcdet drops, mmdet3d does not look at z
    inside = [10.0, 0.0, 0.0, 4, 2, 1.5, 0, 0, 0]
    frame = make_frame([on_xmax, z_out, inside], ["car"] * 3)
    pc = AugmentationReplay(make_config(range_filter="pcdet"), None, 0).apply(frame)
    mm = AugmentationReplay(make_config(range_filter="mmdet3d"), None, 0).apply(frame)
    assert list(pc.frame_index) == [0, 2]
    assert list(pc.dropped.frame_index) == [1] and list(pc.dropped.reason) == [DROP_OUT_OF_RANGE]
    assert list(mm.frame_index) == [1, 2]
    assert list(mm.dropped.frame_index) == [0] and list(mm.dropped.reason) == [DROP_OUT_OF_RANGE]


def test_range_filter_uses_float32_bounds_like_the_frameworks():
    cfg = make_config()
    cfg = DetectorConfig(**{**cfg.__dict__, "point_cloud_range": (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)})
    # float32(51.2) = 51.20000076..., so a centre at 51.2000005 is inside for OpenPCDet (float64 51.2 would drop it).
    assert float(np.float32(51.2)) > 51.2000005
    frame = make_frame([[51.2000005, 0, 0, 4, 2, 1.5, 0, 0, 0]], ["car"])
    assert len(AugmentationReplay(cfg, None, 0).apply(frame)) == 1


def test_min_points_filter_before_augmentation_and_unknown_kept():
    frame = make_frame([BOX, BOX, BOX, BOX], ["car"] * 4, pts=[0, 1, -1, 5])
    out = AugmentationReplay(make_config(min_lidar_points=1), None, 0).apply(frame)
    assert list(out.frame_index) == [1, 2, 3]
    assert list(out.dropped.reason) == [DROP_MIN_POINTS] and list(out.dropped.ann_token) == ["sample-0-ann0"]
    out5 = AugmentationReplay(make_config(min_lidar_points=5), None, 0).apply(frame)
    assert list(out5.frame_index) == [2, 3]  # 5 >= 5 kept, -1 (unknown) never filtered
    out0 = AugmentationReplay(make_config(min_lidar_points=0), None, 0).apply(frame)
    assert list(out0.frame_index) == [0, 1, 2, 3]


def test_class_mapping_then_class_filter_with_reasons_in_pipeline_order():
    far = [80.0, 0, 0, 4, 2, 1.5, 0, 0, 0]
    frame = make_frame(
        [BOX, BOX, BOX, far, BOX],
        ["vehicle.car", None, "ignore", "barrier", "pedestrian"],
        pts=[3, 3, 3, 3, 0],
    )
    cfg = make_config(class_mapping=(("vehicle.car", "car"),), min_lidar_points=1)
    out = AugmentationReplay(cfg, None, 0).apply(frame)
    assert list(out.class_name) == ["car"]
    assert list(out.ann_token) == ["sample-0-ann0"]
    assert list(out.source) == ["dataset"]
    ledger = dict(zip(out.dropped.frame_index.tolist(), out.dropped.reason.tolist()))
    # row 4 has 0 points: min_points comes first in the pipeline; row 3 is out of class AND out of range:
    # pcdet filters class first.
    assert ledger == {4: DROP_MIN_POINTS, 1: DROP_CLASS_FILTER, 2: DROP_CLASS_FILTER, 3: DROP_CLASS_FILTER}
    assert out.dropped.class_name.tolist()[out.dropped.frame_index.tolist().index(1)] is None
    mm = AugmentationReplay(make_config(class_mapping=(("vehicle.car", "car"),), range_filter="mmdet3d"), None, 0)
    ledger_mm = dict(zip(*(a.tolist() for a in (mm.apply(frame).dropped.frame_index, mm.apply(frame).dropped.reason))))
    assert ledger_mm[3] == DROP_OUT_OF_RANGE  # mmdet3d: ObjectRangeFilter before ObjectNameFilter


def test_no_augment_is_identity_plus_filters():
    frames = _random_frames(2)
    db = build_database(frames, make_config())
    cfg = make_config(
        [GTSampling((("car", 10),)), *PCDET_NUSC_WORLD, WorldTranslation((0.5, 0.5, 0.5))], min_lidar_points=1
    )
    frame = frames[0]
    out = AugmentationReplay(cfg, db, 9).apply(frame, replay=3, augment=False)
    expected = frame.boxes_lidar.copy()
    expected[:, 6] = (expected[:, 6] + math.pi) % (2 * math.pi) - math.pi  # yaw wrap only
    np.testing.assert_allclose(out.boxes, expected, atol=1e-12)
    assert out.draws == () and not out.augmented
    assert set(out.source) == {"dataset"}
    assert len(out.dropped) == 0


def test_inputs_are_not_mutated():
    frames = _random_frames(2)
    before = copy.deepcopy(frames[0])
    cfg = make_config(PCDET_NUSC_WORLD + [WorldTranslation((0.5, 0.5, 0.5))], class_mapping=(("car", "car"),))
    replay = AugmentationReplay(cfg, None, 1)
    first = replay.apply(frames[0])
    second = replay.apply(frames[0])
    for name in ("boxes_lidar", "detection_class", "ann_token", "num_lidar_pts"):
        np.testing.assert_array_equal(getattr(frames[0], name), getattr(before, name))
    np.testing.assert_array_equal(first.boxes, second.boxes)


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: one-line errors, exit code 2 through the CLI error layer
# ---------------------------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(DataError, match=r"sample bad: boxes_lidar has shape \(1, 7\)"):
        AugmentationReplay(make_config(), None, 0).apply(
            Frame("bad", np.zeros((1, 7)), *(np.array(["car"], dtype=object),) * 4, np.ones(1, np.int64),
                  np.ones(1, np.int64))
        )
    with pytest.raises(ConfigError, match="gt_sampling needs a GT database"):
        AugmentationReplay(make_config([GTSampling((("car", 2),))]), None, 0)
    with pytest.raises(ConfigError, match="range_filter: unknown mode 'kitti'"):
        AugmentationReplay(make_config(range_filter="kitti"), None, 0)
    with pytest.raises(ConfigError, match="flip axis 'z'"):
        AugmentationReplay(make_config([WorldFlip(("z",))]), None, 0)
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        AugmentationReplay(make_config(), None, -1)
    with pytest.raises(DataError, match="non-finite"):
        AugmentationReplay(make_config(), None, 0).apply(make_frame([[np.nan] * 9], ["car"]))
    with pytest.raises(DataError, match="sample sample-0: non-finite"):
        build_database([make_frame([[np.nan] * 9], ["car"])], make_config())
    with pytest.raises(ConfigError, match="gt_sampling is listed more than once"):
        AugmentationReplay(make_config([GTSampling((("car", 1),))] * 2), None, 0)


def test_bad_input_through_cli_layer_is_one_stderr_line_and_exit_2():
    app = typer.Typer()

    @app.command()
    @cli_errors
    def run() -> None:
        AugmentationReplay(make_config(range_filter="kitti"), None, 0)

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: gt_filters.range_filter: unknown mode 'kitti' (expected one of pcdet, mmdet3d, mmdet3d_3d, none)"
    ]
    assert "Traceback" not in result.output
