"""mmdetection3d 1.x augmentation replay: GlobalRotScaleTrans, RandomFlip3D, ObjectSample (greedy), use_valid_flag.

Expected numbers are derived by hand in each test (the derivation is in the comment next to it) or come from an
independent reference: a plain per-sample loop over a shapely collision matrix that follows upstream's
``sample_class_v2`` literally (row and column cleared when a sample collides).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from assignaudit.augment import (
    DROP_CLASS_FILTER,
    DROP_MIN_POINTS,
    DROP_OUT_OF_RANGE,
    AugmentationReplay,
    build_database,
)
from assignaudit.augment.filters import valid_flag_mask
from assignaudit.augment.gt_sampling import object_sample_counts
from assignaudit.augment.params import GlobalRotScaleTrans, GTSampling, ObjectSample, RandomFlip3D, WorldFlip
from assignaudit.errors import ConfigError
from assignaudit.sources.base import Frame
from test_augment import make_config, make_frame, op_generator

GRST, FLIP3D, OBJSAMPLE = 6, 7, 8  # op-kind stream ids (replay._OP_KIND)
BOX = [10.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.3, 1.0, 0.0]  # x y z dx dy dz yaw vx vy


def car(x, y, yaw=0.0, dx=4.0, dy=2.0):
    return [x, y, -1.0, dx, dy, 1.5, yaw, 0.5, -0.5]


def fixed_grst(rot=0.0, scale=1.0, std=(0.0, 0.0, 0.0)):
    """GlobalRotScaleTrans with degenerate ranges: U(a, a) = a exactly (numpy: a + 0 * u)."""
    return GlobalRotScaleTrans((rot, rot), (scale, scale), std)


def frame_with_radar(boxes, classes, lidar, radar, token="sample-0"):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 9)
    n = boxes.shape[0]
    cls = np.array(list(classes), dtype=object)
    return Frame(
        sample_token=token, boxes_lidar=boxes, detection_class=cls, category=cls.copy(),
        ann_token=np.array([f"{token}-ann{i}" for i in range(n)], dtype=object),
        instance_token=np.array([None] * n, dtype=object),
        num_lidar_pts=np.asarray(lidar, dtype=np.int64), num_radar_pts=np.asarray(radar, dtype=np.int64),
    )


def db_of(boxes, classes, config):
    return build_database([make_frame(boxes, classes, token="db-frame")], config)


def poly(box):
    c, s = math.cos(box[6]), math.sin(box[6])
    hx, hy = box[3] / 2, box[4] / 2
    return Polygon([(box[0] + c * u - s * v, box[1] + s * u + c * v) for u, v in
                    ((hx, hy), (-hx, hy), (-hx, -hy), (hx, -hy))])


def pasted(out):
    return out.boxes[out.source == "gt_sampling"]


# ---------------------------------------------------------------------------------------------------------------------
# GlobalRotScaleTrans
# ---------------------------------------------------------------------------------------------------------------------


def test_rotation_of_a_hand_box_is_counter_clockwise_with_velocity():
    # (10, 0) rotated by 0.5 rad ccw: x' = 10 cos 0.5 = 8.775825618903728, y' = 10 sin 0.5 = 4.79425538604203;
    # yaw 0.3 + 0.5 = 0.8; v = (1, 0) -> (cos 0.5, sin 0.5) = (0.8775825618903728, 0.479425538604203).
    out = AugmentationReplay(make_config([fixed_grst(rot=0.5)]), None, 0).apply(make_frame([BOX], ["car"]))
    np.testing.assert_allclose(
        out.boxes[0], [8.775825618903728, 4.79425538604203, -1.0, 4.0, 2.0, 1.5, 0.8, 0.8775825618903728,
                       0.479425538604203], atol=1e-12)
    assert out.draws == (("rotation_rad", 0.5), ("scale", 1.0), ("translate_x_m", 0.0), ("translate_y_m", 0.0),
                         ("translate_z_m", 0.0))


def test_rotate_then_scale_then_translate():
    # rotate by pi/2: (10, 0) -> (0, 10), yaw 0.3 + pi/2, v (1, 0) -> (0, 1); scale 2: centre (0, 20, -2),
    # dims (8, 4, 3), v (0, 2), yaw unchanged (bottom z and dz both scale, so the centre z scales too).
    # Translation std (0.5, 0, 0.2) draws t from this op's stream after the two uniforms.
    a = math.pi / 2
    seed = 3
    out = AugmentationReplay(make_config([fixed_grst(rot=a, scale=2.0, std=(0.5, 0.0, 0.2))]), None, seed).apply(
        make_frame([BOX], ["car"]))
    rng = op_generator(seed, "sample-0", 0, GRST)
    rng.uniform(a, a), rng.uniform(2.0, 2.0)
    t = rng.normal(0.0, np.float32([0.5, 0.0, 0.2]).astype(np.float64), size=3)
    assert t[1] == 0.0 and t[0] != 0.0
    np.testing.assert_allclose(out.boxes[0], [t[0], 20.0, -2.0 + t[2], 8.0, 4.0, 3.0, 0.3 + a, 0.0, 2.0],
                               atol=1e-12)
    assert [v for k, v in out.draws if k.startswith("translate")] == t.tolist()


def test_draw_order_rot_scale_translate_and_no_skip_for_degenerate_scale_or_zero_std():
    # Upstream draws uniform(rot), uniform(scale) (no hi - lo < 1e-3 skip, unlike pcdet), then 3 normals (even for
    # std 0). So the translation draws do not depend on the scale range or the std being degenerate.
    frame = make_frame([BOX], ["car"])
    wide = AugmentationReplay(make_config([GlobalRotScaleTrans((-0.4, 0.4), (0.9, 1.1), (1.0, 1.0, 1.0))]), None, 9)
    flat = AugmentationReplay(make_config([GlobalRotScaleTrans((-0.4, 0.4), (1.0, 1.0), (1.0, 1.0, 1.0))]), None, 9)
    zero = AugmentationReplay(make_config([GlobalRotScaleTrans((-0.4, 0.4), (0.9, 1.1), (0.0, 0.0, 0.0))]), None, 9)
    w, f, z = wide.apply(frame).draws, flat.apply(frame).draws, zero.apply(frame).draws
    rng = op_generator(9, "sample-0", 0, GRST)
    angle, scale = rng.uniform(-0.4, 0.4), rng.uniform(0.9, 1.1)
    t = rng.normal(0.0, 1.0, size=3)
    assert w == (("rotation_rad", angle), ("scale", scale), ("translate_x_m", t[0]), ("translate_y_m", t[1]),
                 ("translate_z_m", t[2]))
    assert f[0] == w[0] and f[1] == ("scale", 1.0) and f[2:] == w[2:]
    assert z[:2] == w[:2] and [v for _, v in z[2:]] == [0.0, 0.0, 0.0]


def test_empty_frame_still_draws():
    out = AugmentationReplay(make_config([GlobalRotScaleTrans(), RandomFlip3D(0.5, 0.5)]), None, 0).apply(
        make_frame(np.empty((0, 9)), []))
    assert [k for k, _ in out.draws] == ["rotation_rad", "scale", "translate_x_m", "translate_y_m", "translate_z_m",
                                         "flip_horizontal", "flip_vertical"]
    assert len(out) == 0


# ---------------------------------------------------------------------------------------------------------------------
# RandomFlip3D
# ---------------------------------------------------------------------------------------------------------------------

BOX_V = [10.0, 5.0, -1.0, 4.0, 2.0, 1.5, 0.3, 1.0, 2.0]


def test_horizontal_flip_negates_y_vy_and_yaw():
    out = AugmentationReplay(make_config([RandomFlip3D(1.0, 0.0)]), None, 0).apply(make_frame([BOX_V], ["car"]))
    assert out.draws == (("flip_horizontal", 1.0), ("flip_vertical", 0.0))
    np.testing.assert_allclose(out.boxes[0], [10.0, -5.0, -1.0, 4.0, 2.0, 1.5, -0.3, 1.0, -2.0], atol=1e-12)


def test_vertical_flip_negates_x_vx_and_maps_yaw_to_pi_minus_yaw():
    # yaw 0.3 -> -0.3 + pi = 2.841592653589793 (inside [-pi, pi), no wrap); yaw -0.3 -> pi + 0.3, wrapped to
    # 0.3 - pi = -2.841592653589793.
    boxes = [BOX_V, BOX_V[:6] + [-0.3] + BOX_V[7:]]
    out = AugmentationReplay(make_config([RandomFlip3D(0.0, 1.0)]), None, 0).apply(make_frame(boxes, ["car"] * 2))
    assert out.draws == (("flip_horizontal", 0.0), ("flip_vertical", 1.0))
    np.testing.assert_allclose(out.boxes[:, [0, 1, 6, 7, 8]],
                               [[-10.0, 5.0, math.pi - 0.3, -1.0, 2.0], [-10.0, 5.0, 0.3 - math.pi, -1.0, 2.0]],
                               atol=1e-12)


def test_both_flips_are_a_half_turn():
    # h then v: yaw -> -(-yaw) + pi = yaw + pi, centre and velocity negated: the same as rotating by pi.
    out = AugmentationReplay(make_config([RandomFlip3D(1.0, 1.0)]), None, 0).apply(make_frame([BOX_V], ["car"]))
    np.testing.assert_allclose(out.boxes[0], [-10.0, -5.0, -1.0, 4.0, 2.0, 1.5, 0.3 - math.pi, -1.0, -2.0],
                               atol=1e-12)


def test_flip_draws_two_uniforms_in_order_even_when_vertical_ratio_is_zero():
    frame = make_frame([BOX_V], ["car"])
    for seed in range(20):
        rng = op_generator(seed, "sample-0", 0, FLIP3D)
        u_h, u_v = rng.random(), rng.random()
        half = AugmentationReplay(make_config([RandomFlip3D(0.5, 0.5)]), None, seed).apply(frame)
        assert half.draws == (("flip_horizontal", float(u_h < 0.5)), ("flip_vertical", float(u_v < 0.5)))
        # 'flip iff u < ratio': a 0.3 ratio flips iff u < 0.3 (not u >= 0.7 as a pcdet-style draw would)
        low = AugmentationReplay(make_config([RandomFlip3D(0.3, 0.0)]), None, seed).apply(frame)
        assert low.draws == (("flip_horizontal", float(u_h < 0.3)), ("flip_vertical", 0.0))


def test_order_matters_rotate_then_flip_vs_flip_then_rotate():
    # mm3d nuScenes: rotate 0.5 then flip h. (10, 0, yaw 0.3) -> (8.7758, 4.7943, 0.8) -> (8.7758, -4.7943, -0.8).
    # mm3d KITTI: flip h then rotate 0.5. (10, 0, yaw 0.3) -> (10, 0, -0.3) -> (8.7758, 4.7943, 0.2).
    frame = make_frame([BOX], ["car"])
    c, s = 10 * math.cos(0.5), 10 * math.sin(0.5)
    nus = AugmentationReplay(make_config([fixed_grst(rot=0.5), RandomFlip3D(1.0)]), None, 0).apply(frame)
    kitti = AugmentationReplay(make_config([RandomFlip3D(1.0), fixed_grst(rot=0.5)]), None, 0).apply(frame)
    np.testing.assert_allclose(nus.boxes[0, [0, 1, 6]], [c, -s, -0.8], atol=1e-12)
    np.testing.assert_allclose(kitti.boxes[0, [0, 1, 6]], [c, s, 0.2], atol=1e-12)


def test_seeded_determinism_and_independent_streams():
    rng = np.random.default_rng(1)
    frames = [make_frame(np.c_[rng.uniform(-30, 30, (5, 2)), np.tile(BOX[2:], (5, 1))], ["car"] * 5, token=f"t{i}")
              for i in range(4)]
    cfg = make_config([GlobalRotScaleTrans((-0.3925, 0.3925), (0.95, 1.05), (0.2, 0.2, 0.2)), RandomFlip3D(0.5, 0.5)])
    fwd = {f.sample_token: AugmentationReplay(cfg, None, 7).apply(f, 1) for f in frames}
    bwd = {f.sample_token: AugmentationReplay(cfg, None, 7).apply(f, 1) for f in reversed(frames)}
    for tok, out in fwd.items():
        np.testing.assert_array_equal(out.boxes, bwd[tok].boxes)
        assert out.draws == bwd[tok].draws
    r0 = AugmentationReplay(cfg, None, 7).apply(frames[0], 0)
    assert r0.draw("rotation_rad") != fwd["t0"].draw("rotation_rad")
    # the flip's draws do not depend on whether GlobalRotScaleTrans (or a pcdet op) runs before it
    alone = AugmentationReplay(make_config([WorldFlip(("x",)), RandomFlip3D(0.5, 0.5)]), None, 7).apply(frames[0], 1)
    assert alone.draws[-2:] == fwd["t0"].draws[-2:]


# ---------------------------------------------------------------------------------------------------------------------
# ObjectSample: k, the greedy rule, the margin, the database
# ---------------------------------------------------------------------------------------------------------------------


def test_k_is_round_half_even_of_rate_times_missing():
    names = np.array(["car", "car", "pedestrian", None], dtype=object)
    op = ObjectSample((("car", 7), ("pedestrian", 4), ("car", 1)), rate=0.5)
    # car: int(7 - 2) = 5, 0.5 * 5 = 2.5 -> 2 (half to even); pedestrian: 4 - 1 = 3, 1.5 -> 2; car: 1 - 2 = -1 -> -0.5
    # -> -0 -> 0 (nothing sampled).
    assert object_sample_counts(names, op) == [("car", 2), ("pedestrian", 2), ("car", 0)]
    assert object_sample_counts(names, ObjectSample((("car", 7),), rate=1.0)) == [("car", 5)]
    # through the replay: 10 far-apart cars in the database, a frame with 2 cars -> 2 drawn, all pasted
    cfg = make_config([ObjectSample((("car", 7),), rate=0.5)])
    db = db_of([car(-45.0 + 9 * i, 45.0) for i in range(10)], ["car"] * 10, cfg)
    out = AugmentationReplay(cfg, db, 0).apply(make_frame([car(0.0, 0.0), car(0.0, -10.0)], ["car"] * 2))
    assert out.draw("gt_sampling_drawn") == 2 and out.draw("gt_sampling_pasted") == 2


def _seed_with_order(order, token="sample-0"):
    for seed in range(500):
        if op_generator(seed, token, 0, OBJSAMPLE).choice(3, size=3, replace=False).tolist() == order:
            return seed
    raise AssertionError("no seed found")


# A overlaps B (x 18..22 vs 21.5..25.5), B overlaps C (21.5..25.5 vs 25..29), A and C are 3 m apart.
CHAIN = [car(20.0, 20.0), car(23.5, 20.0), car(27.0, 20.0)]


@pytest.mark.parametrize("order, kept", [
    # A, B, C: A overlaps B (still in the matrix) -> removed; B overlaps C -> removed; C: A, B gone -> kept.
    ([0, 1, 2], [2]),
    # B, A, C: B overlaps A -> removed; A overlaps nothing left -> kept; C overlaps nothing left -> kept.
    ([1, 0, 2], [0, 2]),
    # C, B, A: C overlaps B -> removed; B overlaps A -> removed; A kept.
    ([2, 1, 0], [0]),
])
def test_greedy_chain_depends_on_sample_order_while_pcdet_keeps_none(order, kept):
    frame = make_frame([car(0.0, 0.0)], ["car"])
    seed = _seed_with_order(order)
    # k = max_num - #cars in the frame = 4 - 1 = 3: all three are drawn, in the order of the op's choice
    cfg = make_config([ObjectSample((("car", 4),))])
    out = AugmentationReplay(cfg, db_of(CHAIN, ["car"] * 3, cfg), seed).apply(frame)
    assert out.draw("gt_sampling_drawn") == 3
    assert sorted(map(tuple, pasted(out).tolist())) == sorted(tuple(CHAIN[i]) for i in kept)
    # OpenPCDet's rule rejects both members of every colliding pair: A, B and C each overlap someone -> none.
    pc = make_config([GTSampling((("car", 3),), limit_whole_scene=False)])
    assert len(pasted(AugmentationReplay(pc, db_of(CHAIN, ["car"] * 3, pc), seed).apply(frame))) == 0


def test_no_margin_a_5mm_gap_is_not_a_collision_unlike_pcdet():
    # frame car spans x in [-2, 2]; the database car spans [2.005, 6.005]: 5 mm apart. mmdet3d's corner test sees
    # no overlap; OpenPCDet's kernel counts corners within 1 cm as inside (a 2 m x 5 mm sliver) and rejects it.
    # Touching (gap 0) is no collision in mmdet3d either (standup overlap must be > 0); 1 cm of overlap is one.
    frame = make_frame([car(0.0, 0.0)], ["car"])
    mm = make_config([ObjectSample((("car", 2),))])
    pc = make_config([GTSampling((("car", 1),), limit_whole_scene=False)])
    for x, mm_pasted in ((4.005, 1), (4.0, 1), (3.99, 0)):
        assert len(pasted(AugmentationReplay(mm, db_of([car(x, 0.0)], ["car"], mm), 0).apply(frame))) == mm_pasted
    assert len(pasted(AugmentationReplay(pc, db_of([car(4.005, 0.0)], ["car"], pc), 0).apply(frame))) == 0


def _greedy_reference(existing, batches, greedy=True):
    """Upstream sample_all / sample_class_v2, literally: per class, a collision matrix over [avoid + batch] and a
    loop that clears row and column of each colliding sample. Collision = shapely positive intersection area.
    ``greedy=False``: OpenPCDet's rule on the same matrix (a sample touching anything is rejected, nothing cleared)."""
    avoid = [poly(b) for b in existing]
    kept = []
    for batch in batches:
        total = avoid + [poly(b) for b in batch]
        m, n_avoid = len(total), len(avoid)
        coll = [[i != j and total[i].intersection(total[j]).area > 0 for j in range(m)] for i in range(m)]
        accepted = []
        for i in range(n_avoid, m):
            if any(coll[i]):
                if greedy:
                    for j in range(m):
                        coll[i][j] = coll[j][i] = False
            else:
                accepted.append(i)
        kept += [batch[i - n_avoid] for i in accepted]
        avoid += [total[i] for i in accepted]
    return kept


def test_greedy_rule_matches_the_literal_upstream_loop_on_random_scenes():
    classes = ("car", "pedestrian")
    groups = (("pedestrian", 6), ("car", 8))
    cfg = make_config([ObjectSample(groups, rate=1.0)])
    rng = np.random.default_rng(5)

    def random_boxes(n, size):
        return np.c_[rng.uniform(-12, 12, (n, 2)), np.full(n, -1.0), size[0] * rng.uniform(0.7, 1.3, n),
                     size[1] * rng.uniform(0.7, 1.3, n), np.full(n, 1.5), rng.uniform(-math.pi, math.pi, n),
                     np.zeros((n, 2))]

    db_boxes = np.r_[random_boxes(25, (4.0, 2.0)), random_boxes(25, (0.8, 0.8))]
    db_names = ["car"] * 25 + ["pedestrian"] * 25
    db = db_of(db_boxes, db_names, cfg)
    total_kept = total_drawn = total_both_members = 0
    for scene in range(12):
        token = f"scene{scene}"
        gt = np.r_[random_boxes(3, (4.0, 2.0)), random_boxes(2, (0.8, 0.8))]
        names = ["car"] * 3 + ["pedestrian"] * 2
        frame = make_frame(gt, names, token=token)
        out = AugmentationReplay(cfg, db, scene).apply(frame)
        # replay the documented draws: one choice per class with k > 0, in sample_groups order
        stream = op_generator(scene, token, 0, OBJSAMPLE)
        batches = []
        for name, max_num in groups:
            k = max_num - names.count(name)
            rows = stream.choice(25, size=k, replace=False)
            batches.append(db[name].boxes[rows])
        expected = _greedy_reference(gt, batches)
        assert sorted(map(tuple, pasted(out).tolist())) == sorted(map(tuple, np.asarray(expected).tolist()))
        total_kept += len(expected)
        total_drawn += sum(len(b) for b in batches)
        total_both_members += len(_greedy_reference(gt, batches, greedy=False))
    # the scenes exercise collisions, and batch-internal ones where greedy keeps what OpenPCDet's rule rejects
    assert total_both_members < total_kept < total_drawn


def test_object_sample_database_uses_valid_flag_and_min_points():
    boxes = [car(-40.0 + 8 * i, 40.0) for i in range(6)]
    # lidar/radar: 10/0 keep; 3/0 below min 5; 0/2 valid but below min; 0/0 invalid; -1/-1 unknown keep; 6/-1 keep
    lidar, radar = [10, 3, 0, 0, -1, 6], [0, 0, 2, 0, -1, -1]
    frames = [frame_with_radar(boxes, ["car"] * 6, lidar, radar, token="db")]
    with_min = build_database(frames, make_config([ObjectSample((("car", 2),), min_points=(("car", 5),))]))
    assert with_min["car"].num_lidar_pts.tolist() == [10, -1, 6]
    no_min = build_database(frames, make_config([ObjectSample((("car", 2),))]))
    assert no_min["car"].num_lidar_pts.tolist() == [10, 3, 0, -1, 6]  # only the 0/0 box is invalid
    pcdet = build_database(frames, make_config([GTSampling((("car", 2),))]))
    assert pcdet["car"].num_lidar_pts.tolist() == lidar  # the pcdet path is unchanged


def test_object_sample_config_errors():
    with pytest.raises(ConfigError, match="ObjectSample needs a GT database"):
        AugmentationReplay(make_config([ObjectSample((("car", 2),))]), None, 0)
    with pytest.raises(ConfigError, match="'truck' is not in class_names"):
        AugmentationReplay(make_config([ObjectSample((("truck", 2),))]), None, 0)
    with pytest.raises(ConfigError, match="listed more than once"):
        AugmentationReplay(make_config([GTSampling((("car", 2),)), ObjectSample((("car", 2),))]), None, 0)
    with pytest.raises(ConfigError, match="flip_ratio_bev_vertical"):
        AugmentationReplay(make_config([RandomFlip3D(0.5, 1.5)]), None, 0)
    with pytest.raises(ConfigError, match="scale_ratio_range"):
        AugmentationReplay(make_config([GlobalRotScaleTrans(scale_range=(0.0, 1.0))]), None, 0)


# ---------------------------------------------------------------------------------------------------------------------
# use_valid_flag and the mmdet3d filter order
# ---------------------------------------------------------------------------------------------------------------------


def test_use_valid_flag_keeps_radar_only_boxes_and_drops_empty_ones():
    boxes = [car(0.0, 10.0 * i) for i in range(5)]
    lidar, radar = [0, 0, 4, 0, -1], [3, 0, 0, -1, 0]
    frame = frame_with_radar(boxes, ["car"] * 5, lidar, radar)
    mm = AugmentationReplay(make_config(use_valid_flag=True, min_lidar_points=1), None, 0).apply(frame)
    # 0 lidar + 3 radar kept; 0/0 dropped; 4/0 kept; 0/unknown and unknown/0 kept (unknown is never filtered)
    assert mm.frame_index.tolist() == [0, 2, 3, 4]
    assert list(mm.dropped) == [("sample-0-ann1", "car", DROP_MIN_POINTS)]
    pc = AugmentationReplay(make_config(min_lidar_points=1), None, 0).apply(frame)
    assert pc.frame_index.tolist() == [2, 4]  # the LiDAR-point filter drops both 0-LiDAR boxes
    np.testing.assert_array_equal(valid_flag_mask(np.array(lidar), np.array(radar)), [True, False, True, True, True])


def test_mmdet3d_pipeline_range_filter_is_strict_bev_after_the_ops_and_wraps_yaw():
    # scale 1.002 (rot 0): x 49.9 -> 49.9998 (< 50 kept), 49.95 -> 50.0499 (dropped, out_of_range even for an
    # unknown class, since ObjectRangeFilter runs before ObjectNameFilter); z = 9 * 1.002 is far above PCR z max 3
    # and is kept (z ignored). Then a vertical flip: x -> -x, yaw 0.3 -> pi - 0.3, yaw -0.3 -> pi + 0.3 wrapped to
    # 0.3 - pi.
    boxes = [[49.9, 0.0, 9.0, 4, 2, 1.5, 0.3, 0, 0], [49.95, 0.0, 0.0, 4, 2, 1.5, 0.3, 0, 0],
             [49.95, 5.0, 0.0, 1, 1, 1, 0.0, 0, 0], [0.0, 5.0, 0.0, 1, 1, 1, 0.0, 0, 0],
             [10.0, -10.0, 0.0, 4, 2, 1.5, -0.3, 0, 0]]
    frame = make_frame(boxes, ["car", "car", "animal", "animal", "car"])
    cfg = make_config([fixed_grst(scale=1.002), RandomFlip3D(0.0, 1.0)], range_filter="mmdet3d")
    out = AugmentationReplay(cfg, None, 0).apply(frame)
    assert out.frame_index.tolist() == [0, 4]
    np.testing.assert_allclose(out.boxes[:, [0, 2, 6]], [[-49.9 * 1.002, 9 * 1.002, math.pi - 0.3],
                                                        [-10.02, 0.0, 0.3 - math.pi]], atol=1e-12)
    assert sorted(zip(out.dropped.frame_index.tolist(), out.dropped.reason.tolist())) == [
        (1, DROP_OUT_OF_RANGE), (2, DROP_OUT_OF_RANGE), (3, DROP_CLASS_FILTER)]


def test_full_mm3d_centerpoint_like_pipeline_pastes_then_transforms():
    # ObjectSample pastes a far database car; GlobalRotScaleTrans(rot pi/2) then moves it with the frame:
    # (30, 30) -> (-30, 30).
    cfg = make_config([ObjectSample((("car", 2),)), fixed_grst(rot=math.pi / 2), RandomFlip3D(0.0, 0.0)],
                      range_filter="mmdet3d", use_valid_flag=True)
    db = db_of([car(30.0, 30.0)], ["car"], cfg)
    frame = frame_with_radar([car(0.0, 0.0)], ["car"], [0], [2])
    out = AugmentationReplay(cfg, db, 0).apply(frame)
    assert out.source.tolist() == ["dataset", "gt_sampling"]
    np.testing.assert_allclose(out.boxes[1, [0, 1, 6, 7, 8]], [-30.0, 30.0, math.pi / 2, 0.5, 0.5], atol=1e-12)
    assert out.draw("gt_sampling_out_of_range") == 0
