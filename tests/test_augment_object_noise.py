"""mmdet3d ``ObjectNoise``: a hand-worked scene, and random crowded scenes against a literal loop reference.

The reference below is a plain, loop-by-loop rendering of ``noise_per_object_v3_`` (mmdet3d 1.4.0,
data_augment_utils.py): corners by ``box2d_to_corner``, the collision by ``box_collision_test``'s edge-crossing and
containment tests on those corners (no separating-axis maths, unlike the code under test), boxes in index order,
first collision-free trial wins.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from assignaudit.augment import AugmentationReplay
from assignaudit.augment.object_noise import noise_boxes
from assignaudit.augment.params import ObjectNoise, RandomFlip3D
from assignaudit.config.schema import config_from_dict, config_to_dict
from assignaudit.errors import ConfigError
from test_augment import PCR, make_config, make_frame, op_generator

OBJECT_NOISE_KIND = 20  # replay._OP_KIND[ObjectNoise]


def box(x, y, yaw=0.0, dx=2.0, dy=2.0, z=0.0):
    return [x, y, z, dx, dy, 1.5, yaw, 0.5, -0.5]


# ---------------------------------------------------------------------------------------------------------------------
# Hand-worked
# ---------------------------------------------------------------------------------------------------------------------


def test_hand_worked_three_boxes_first_free_trial_and_earlier_boxes_at_their_new_place():
    # A (0,0) and B (3,0): 2x2 squares; C (10,0). Two trials each.
    boxes = np.array([box(0, 0), box(3, 0), box(10, 0)])
    loc = np.zeros((3, 2, 3))
    rot = np.zeros((3, 2))
    # A: trial 0 -> (1.5, 0) overlaps B's [2, 4] x-span; trial 1 -> (0, 3), yaw +0.1, z +0.3: free.
    loc[0, 0] = [1.5, 0, 0]
    loc[0, 1] = [0, 3, 0.3]
    rot[0, 1] = 0.1
    # B: trial 0 -> (1.5, 0) would overlap A where A WAS, but A has moved to (0, 3): free, taken.
    loc[1, 0] = [-1.5, 0, -0.2]
    rot[1, 0] = -0.05
    loc[1, 1] = [50, 0, 0]
    # C: trial 0 lands on B's new place, trial 1 on A's new place: no free trial, C stays.
    loc[2, 0] = [-8.5, 0, 0]
    loc[2, 1] = [-10, 3, 0]
    out, chosen = noise_boxes(boxes, loc, rot, np.zeros((3, 2)), global_rotation=False)
    assert chosen.tolist() == [1, 0, -1]
    np.testing.assert_allclose(out[0], box(0, 3, yaw=0.1, z=0.3))
    np.testing.assert_allclose(out[1], box(1.5, 0, yaw=-0.05, z=-0.2))
    np.testing.assert_array_equal(out[2], boxes[2])
    np.testing.assert_array_equal(out[:, 7:], boxes[:, 7:])  # velocity is not rotated


def test_touching_is_not_a_collision():
    # B's only trial puts it edge to edge with A (x-spans [-1, 1] and [1, 3]): no positive-area overlap.
    boxes = np.array([box(0, 0), box(10, 0)])
    loc = np.zeros((2, 1, 3))
    loc[1, 0] = [-8, 0, 0]
    out, chosen = noise_boxes(boxes, loc, np.zeros((2, 1)), np.zeros((2, 1)), global_rotation=False)
    assert chosen.tolist() == [0, 0]
    assert out[1, 0] == 2.0


def test_hand_worked_global_rotation_moves_clockwise_and_turns_yaw_counter_clockwise():
    # Box at (0, 10): bearing arctan2(x, y) = 0; grot = pi/2 -> bearing pi/2: position (10 sin, 10 cos) = (10, 0),
    # yaw + pi/2 (upstream's v2 path), then the trial's own rotation 0.2 and offset (0.5, 0, 0).
    boxes = np.array([box(0, 10, yaw=0.3)])
    loc = np.array([[[0.5, 0.0, 0.0]]])
    out, chosen = noise_boxes(boxes, loc, np.full((1, 1), 0.2), np.full((1, 1), math.pi / 2), global_rotation=True)
    assert chosen.tolist() == [0]
    np.testing.assert_allclose(out[0, :2], [10.5, 0.0], atol=1e-12)
    assert out[0, 6] == pytest.approx(0.3 + math.pi / 2 + 0.2)


# ---------------------------------------------------------------------------------------------------------------------
# Literal reference loop
# ---------------------------------------------------------------------------------------------------------------------


def ref_corners(x, y, dx, dy, yaw):
    """box2d_to_corner: corners_norm (-.5,-.5), (-.5,.5), (.5,.5), (.5,-.5) scaled, rotated CCW, shifted."""
    c, s = math.cos(yaw), math.sin(yaw)
    out = []
    for u, v in ((-0.5, -0.5), (-0.5, 0.5), (0.5, 0.5), (0.5, -0.5)):
        px, py = u * dx, v * dy
        out.append((px * c - py * s + x, px * s + py * c + y))
    return out


def ref_collide(a, b):
    """box_collision_test(a, b) for two corner lists (clockwise=True)."""
    ax = [p[0] for p in a]
    ay = [p[1] for p in a]
    bx = [p[0] for p in b]
    by = [p[1] for p in b]
    if not (min(max(ax), max(bx)) - max(min(ax), min(bx)) > 0):
        return False
    if not (min(max(ay), max(by)) - max(min(ay), min(by)) > 0):
        return False
    for k in range(4):
        A, B = a[k], a[(k + 1) % 4]
        for m in range(4):
            C, D = b[m], b[(m + 1) % 4]
            acd = (D[1] - A[1]) * (C[0] - A[0]) > (C[1] - A[1]) * (D[0] - A[0])
            bcd = (D[1] - B[1]) * (C[0] - B[0]) > (C[1] - B[1]) * (D[0] - B[0])
            if acd != bcd:
                abc = (C[1] - A[1]) * (B[0] - A[0]) > (B[1] - A[1]) * (C[0] - A[0])
                abd = (D[1] - A[1]) * (B[0] - A[0]) > (B[1] - A[1]) * (D[0] - A[0])
                if abc != abd:
                    return True

    def inside(p_box, q_box):  # every corner of q_box strictly inside p_box
        for q in q_box:
            for k in range(4):
                vx = -(p_box[k][0] - p_box[(k + 1) % 4][0])
                vy = -(p_box[k][1] - p_box[(k + 1) % 4][1])
                cross = vy * (p_box[k][0] - q[0]) - vx * (p_box[k][1] - q[1])
                if cross >= 0:
                    return False
        return True

    return inside(a, b) or inside(b, a)


def ref_object_noise(boxes, std, rot_range, grot_range, num_try, rng):
    n = len(boxes)
    loc = rng.normal(scale=np.asarray(std, dtype=np.float32).astype(np.float64), size=[n, num_try, 3])
    rot = rng.uniform(rot_range[0], rot_range[1], size=[n, num_try])
    bearing = np.arctan2(boxes[:, 0], boxes[:, 1])
    grot = rng.uniform(grot_range[0] - bearing[:, None], grot_range[1] - bearing[:, None], size=[n, num_try])
    v2 = abs(grot_range[0] - grot_range[1]) >= 1e-3
    corners = [ref_corners(b[0], b[1], b[3], b[4], b[6]) for b in boxes]
    out = boxes.copy()
    for i in range(n):
        for j in range(num_try):
            x, y, yaw = boxes[i, 0], boxes[i, 1], boxes[i, 6]
            if v2:
                r, g = math.hypot(x, y), math.atan2(x, y)
                x, y, yaw = r * math.sin(g + grot[i, j]), r * math.cos(g + grot[i, j]), yaw + grot[i, j]
            trial = ref_corners(x + loc[i, j, 0], y + loc[i, j, 1], boxes[i, 3], boxes[i, 4], yaw + rot[i, j])
            if not any(ref_collide(trial, corners[k]) for k in range(n) if k != i):
                corners[i] = trial
                out[i, 0], out[i, 1] = x + loc[i, j, 0], y + loc[i, j, 1]
                out[i, 2] += loc[i, j, 2]
                out[i, 6] = yaw + rot[i, j]
                break
    return out


def crowded_scene(rng, n):
    xy = rng.uniform(-8, 8, (n, 2))
    size = rng.uniform([1.0, 0.6], [4.5, 2.0], (n, 2))
    out = np.zeros((n, 9))
    out[:, :2] = xy
    out[:, 2] = rng.uniform(-2, 0, n)
    out[:, 3:5] = size
    out[:, 5] = 1.5
    out[:, 6] = rng.uniform(-math.pi, math.pi, n)
    out[:, 7:] = rng.normal(size=(n, 2))
    return out


@pytest.mark.parametrize("grot", [(0.0, 0.0), (-0.5, 0.5)])
def test_matches_the_literal_loop_on_crowded_scenes_through_the_replay(grot):
    rng = np.random.default_rng(3)
    op = ObjectNoise(translation_std=(1.0, 1.0, 0.5), rot_range=(-0.78539816, 0.78539816), global_rot_range=grot,
                     num_try=20)
    cfg = make_config([op])
    moved_total = unmoved_total = 0
    for seed in range(6):
        boxes = crowded_scene(rng, 12)
        frame = make_frame(boxes, ["car"] * len(boxes), token=f"s{seed}")
        out = AugmentationReplay(cfg, None, seed).apply(frame)
        ref = ref_object_noise(boxes, op.translation_std, op.rot_range, grot, op.num_try,
                               op_generator(seed, f"s{seed}", 0, OBJECT_NOISE_KIND))
        ref[:, 6] = (ref[:, 6] + math.pi) % (2 * math.pi) - math.pi
        keep = (ref[:, 0] > PCR[0]) & (ref[:, 0] < PCR[3]) & (ref[:, 1] > PCR[1]) & (ref[:, 1] < PCR[4])
        np.testing.assert_allclose(out.boxes, ref[keep], atol=1e-9)
        moved_total += out.draw("object_noise_moved")
        unmoved_total += out.draw("object_noise_unmoved")
    # the scenes are crowded enough that both outcomes occur
    assert moved_total > 0 and unmoved_total > 0


def test_adding_object_noise_leaves_other_draws_unchanged_and_is_reproducible():
    frame = make_frame(crowded_scene(np.random.default_rng(0), 6), ["car"] * 6)
    with_noise = make_config([ObjectNoise(num_try=5), RandomFlip3D(0.5, 0.5)])
    alone = AugmentationReplay(make_config([RandomFlip3D(0.5, 0.5)]), None, 4).apply(frame)
    a = AugmentationReplay(with_noise, None, 4).apply(frame)
    b = AugmentationReplay(with_noise, None, 4).apply(frame)
    assert a.draws[-2:] == alone.draws
    np.testing.assert_array_equal(a.boxes, b.boxes)


def test_empty_frame_and_bad_parameters():
    out = AugmentationReplay(make_config([ObjectNoise()]), None, 0).apply(make_frame(np.zeros((0, 9)), []))
    assert len(out) == 0 and out.draw("object_noise_moved") == 0
    for bad in (ObjectNoise(num_try=0), ObjectNoise(translation_std=(1.0, -1.0, 0.0)),
                ObjectNoise(rot_range=(0.5, -0.5))):
        with pytest.raises(ConfigError, match="ObjectNoise"):
            AugmentationReplay(make_config([bad]), None, 0)


MM = Path(__file__).parent / "data" / "mmdet3d_cfgs" / "configs"


def test_second_kitti_config_reads_object_noise_as_the_file_says_and_round_trips_through_our_yaml():
    pytest.importorskip("mmengine")
    from assignaudit.config.mmdet3d import load_mmdet3d_config

    cfg = load_mmdet3d_config(MM / "second" / "second_hv_secfpn_8xb6-80e_kitti-3d-3class.py")
    noise = [op for op in cfg.augmentations if isinstance(op, ObjectNoise)]
    # configs/_base_/datasets/kitti-3d-3class.py train_pipeline (mmdet3d 1.4.0)
    assert noise == [ObjectNoise((1.0, 1.0, 0.5), (-0.78539816, 0.78539816), (0.0, 0.0), 100)]
    raw = config_to_dict(cfg)
    assert {"type": "object_noise", "translation_std": [1.0, 1.0, 0.5], "rot_range": [-0.78539816, 0.78539816],
            "global_rot_range": [0.0, 0.0], "num_try": 100} in raw["augmentations"]
    assert config_from_dict(raw, "x", default_name="x", source="x").augmentations == cfg.augmentations


# ---------------------------------------------------------------------------------------------------------------------
# PETR GlobalRotScaleTransImage and a range filter placed before it
# ---------------------------------------------------------------------------------------------------------------------

GRSTI_KIND = 21  # replay._OP_KIND[GlobalRotScaleTransImage]


@pytest.mark.parametrize("reverse", [False, True])
def test_global_rot_scale_trans_image_turns_centres_and_yaws_as_petr_does(reverse):
    from assignaudit.augment.params import GlobalRotScaleTransImage

    op = GlobalRotScaleTransImage((-0.3925, 0.3925), (0.95, 1.05), reverse_angle=reverse)
    frame = make_frame([[10.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.2, 1.0, 0.0]], ["car"])
    out = AugmentationReplay(make_config([op]), None, 5).apply(frame)
    rng = op_generator(5, "sample-0", 0, GRSTI_KIND)
    a, s = rng.uniform(-0.3925, 0.3925), rng.uniform(0.95, 1.05)
    assert out.draws == (("rotation_rad", a), ("scale", s))
    t = -a if reverse else a  # the boxes turn by t; without reverse_angle upstream then does yaw -= 2 t
    yaw = 0.2 - t if not reverse else 0.2 + t
    expected = [10 * math.cos(t) * s, 10 * math.sin(t) * s, -1.0 * s, 4 * s, 2 * s, 1.5 * s, yaw,
                math.cos(t) * s, math.sin(t) * s]
    np.testing.assert_allclose(out.boxes[0], expected, atol=1e-12)


def test_range_filter_before_a_rotation_keeps_boxes_the_rotation_moves_out():
    from assignaudit.augment.params import GlobalRotScaleTransImage, ObjectRangeFilter

    # x_max = 50: the box at x 49.9 is inside, the one at 50.5 outside. Scaling by exactly 1.1 (no turn) carries the
    # first to 54.89: PETR filtered before, so it stays; the second was dropped before the scaling.
    frame = make_frame([[49.9, 0.0, 0.0, 4, 2, 1.5, 0, 0, 0], [50.5, 0.0, 0.0, 4, 2, 1.5, 0, 0, 0]], ["car", "car"])
    ops = [ObjectRangeFilter(), GlobalRotScaleTransImage((0.0, 0.0), (1.1, 1.1))]
    out = AugmentationReplay(make_config(ops, range_filter="mmdet3d"), None, 0).apply(frame)
    assert out.frame_index.tolist() == [0]
    assert out.boxes[0, 0] == pytest.approx(49.9 * 1.1)
    assert out.dropped.reason.tolist() == ["out_of_range"] and out.dropped.frame_index.tolist() == [1]
    # the filter after the ops (no explicit one) judges the scaled box instead: both go
    late = AugmentationReplay(make_config(ops[1:], range_filter="mmdet3d"), None, 0).apply(frame)
    assert late.frame_index.tolist() == [] and sorted(late.dropped.frame_index.tolist()) == [0, 1]
    # --no-augment: no op runs, the final filter does
    no_aug = AugmentationReplay(make_config(ops, range_filter="mmdet3d"), None, 0).apply(frame, augment=False)
    assert no_aug.frame_index.tolist() == [0] and no_aug.boxes[0, 0] == 49.9


def test_bevfusion_global_rot_scale_trans_translates_before_scaling():
    from assignaudit.augment.params import BEVFusionGlobalRotScaleTrans, GlobalRotScaleTrans

    frame = make_frame([[10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]], ["car"])
    rts = AugmentationReplay(make_config([BEVFusionGlobalRotScaleTrans((0, 0), (2.0, 2.0), (1.0, 0, 0))]), None, 3)
    rst = AugmentationReplay(make_config([GlobalRotScaleTrans((0, 0), (2.0, 2.0), (1.0, 0, 0))]), None, 3)
    a, b = rts.apply(frame), rst.apply(frame)
    t = a.draw("translate_x_m")  # each op kind has its own stream, so the two translations differ
    assert a.boxes[0, 0] == pytest.approx((10.0 + t) * 2.0)
    assert b.boxes[0, 0] == pytest.approx(10.0 * 2.0 + b.draw("translate_x_m"))


def test_transfusion_mmdet3d_cost_uses_the_true_3d_iou():
    import torch

    from assignaudit.assign.hungarian import transfusion_cost

    # same BEV footprint (4 x 2) and centre; heights: pred z 0, dz 2 -> [-1, 1]; gt z 1, dz 1 -> [0.5, 1.5].
    # true IoU: inter 8 * 0.5 = 4, union 16 + 8 - 4 = 20 -> 0.2. OpenPCDet's quirk ([z, z + dz]): [0, 2] vs
    # [1, 2] -> inter 8, union 16 + 8 - 8 = 16 -> 0.5.
    pred = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 2.0, 0.0]])
    gt = torch.tensor([[0.0, 0.0, 1.0, 4.0, 2.0, 1.0, 0.0]])
    logits, labels = torch.zeros((1, 1)), torch.zeros(1, dtype=torch.long)
    pcr = (-50, -50, -5, 50, 50, 3)
    quirk = transfusion_cost(pred, logits, gt, labels, pcr)
    true = transfusion_cost(pred, logits, gt, labels, pcr, true_height=True)
    assert float(true - quirk) == pytest.approx(0.25 * (0.5 - 0.2), abs=1e-6)


def test_kitti_label_minus_one_gt_is_gone_before_object_noise():
    # mmdet3d KittiDataset._remove_dontcare: a 'Van' (not in class_names) is removed before the pipeline, so it
    # cannot block the car's trials; kept until the name filter (nuScenes style) it does.
    car, van = box(0, 0), box(0.5, 0.3)  # the van overlaps where every car trial lands (zero noise)
    frame = make_frame([car, van], ["car", "Van"])
    op = ObjectNoise((0.0, 0.0, 0.0), (0.0, 0.0), (0.0, 0.0), 3)
    dropped_first = AugmentationReplay(make_config([op], drop_other_classes=True), None, 0).apply(frame)
    kept_along = AugmentationReplay(make_config([op]), None, 0).apply(frame)
    assert dropped_first.draw("object_noise_moved") == 1.0  # trial 0 (no noise) is free
    assert kept_along.draw("object_noise_moved") == 0.0  # both boxes collide with each other at every trial
    assert dropped_first.dropped.reason.tolist() == ["class_filter"]
    assert dropped_first.frame_index.tolist() == kept_along.frame_index.tolist() == [0]
