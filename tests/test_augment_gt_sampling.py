"""gt_sampling replay and the GT database, checked against hand-placed boxes and an independent shapely computation."""

from __future__ import annotations

import math

import numpy as np
from shapely.geometry import Polygon

from assignaudit.augment import AugmentationReplay, build_database
from assignaudit.augment.params import GTSampling, WorldFlip
from test_augment import make_config, make_frame, op_generator, seed_where


def car(x, y, yaw=0.0, dx=4.0, dy=2.0):
    return [x, y, -1.0, dx, dy, 1.5, yaw, 0.5, -0.5]


def db_of(boxes, classes, pts=None, config=None):
    """A database built from one hand-made 'training' frame."""
    frame = make_frame(boxes, classes, pts=pts, token="db-frame")
    return build_database([frame], config or make_config())


def poly(box):
    c, s = math.cos(box[6]), math.sin(box[6])
    hx, hy = box[3] / 2, box[4] / 2
    return Polygon([(box[0] + c * u - s * v, box[1] + s * u + c * v) for u, v in
                    ((hx, hy), (-hx, hy), (-hx, -hy), (hx, -hy))])


def sampled(out):
    return out.boxes[out.source == "gt_sampling"]


# ---------------------------------------------------------------------------------------------------------------------


def test_paste_keeps_database_box_points_and_class():
    db = db_of([car(30.0, 30.0, 0.7)], ["car"], pts=[42])
    cfg = make_config([GTSampling((("car", 1),), limit_whole_scene=False)])
    out = AugmentationReplay(cfg, db, 0).apply(make_frame([car(0.0, 0.0)], ["car"]))
    assert out.source.tolist() == ["dataset", "gt_sampling"]
    np.testing.assert_array_equal(out.boxes[1], car(30.0, 30.0, 0.7))
    assert out.num_lidar_pts.tolist() == [10, 42]
    assert out.ann_token.tolist() == ["sample-0-ann0", None]
    assert out.class_name.tolist() == ["car", "car"]
    assert out.frame_index.tolist() == [0, -1]
    assert out.draw("gt_sampling_drawn") == 1 and out.draw("gt_sampling_pasted") == 1


def test_sample_overlapping_an_existing_box_is_rejected():
    # existing car spans x in [-2, 2]; the sample spans [1.9, 5.9]: a 0.1 m x 2 m overlap.
    db = db_of([car(3.9, 0.0)], ["car"])
    cfg = make_config([GTSampling((("car", 1),), limit_whole_scene=False)])
    out = AugmentationReplay(cfg, db, 0).apply(make_frame([car(0.0, 0.0)], ["car"]))
    assert poly(car(3.9, 0.0)).intersection(poly(car(0.0, 0.0))).area > 0.19
    assert len(sampled(out)) == 0
    assert out.draw("gt_sampling_drawn") == 1 and out.draw("gt_sampling_pasted") == 0


def test_near_misses_beyond_the_1cm_margin_are_not_collisions():
    # (a) a 5 cm gap: sample spans [2.05, 6.05] against [-2, 2]; (b) two 45-degree boxes whose AABBs overlap but
    # whose rotated footprints are 0.2 m apart along their common normal.
    gap_5cm = car(4.05, 0.0)
    d = 2.0 + 0.2  # centre distance along the normal: dy/2 + dy/2 + 0.2
    existing_rot = car(20.0, 20.0, math.pi / 4)
    near = car(20.0 - d / math.sqrt(2), 20.0 + d / math.sqrt(2), math.pi / 4)
    assert poly(near).intersection(poly(existing_rot)).area == 0.0
    assert poly(near).envelope.intersection(poly(existing_rot).envelope).area > 1.0  # AABB pre-check passes
    db = db_of([gap_5cm, near], ["car", "car"])
    cfg = make_config([GTSampling((("car", 2),), limit_whole_scene=False)])
    out = AugmentationReplay(cfg, db, 0).apply(make_frame([car(0.0, 0.0), existing_rot], ["car", "car"]))
    assert len(sampled(out)) == 2


def test_gap_below_1cm_collides_as_in_the_openpcdet_kernel():
    # iou3d_cpu.cpp check_in_box2d: a corner within MARGIN = 1 cm of a box counts as inside, so a 5 mm gap gives a
    # 2 m x 5 mm sliver of "intersection" (IoU ~ 0.01 / 16 > 0) and the paste is rejected.
    db = db_of([car(4.005, 0.0)], ["car"])
    cfg = make_config([GTSampling((("car", 1),), limit_whole_scene=False)])
    out = AugmentationReplay(cfg, db, 0).apply(make_frame([car(0.0, 0.0)], ["car"]))
    assert poly(car(4.005, 0.0)).distance(poly(car(0.0, 0.0))) > 0.004
    assert len(sampled(out)) == 0


def test_two_mutually_overlapping_samples_are_both_rejected():
    db = db_of([car(20.0, 0.0), car(21.0, 0.5, 0.3), car(-20.0, 0.0)], ["car"] * 3)
    cfg = make_config([GTSampling((("car", 3),), limit_whole_scene=False)])
    out = AugmentationReplay(cfg, db, 0).apply(make_frame([car(0.0, 0.0)], ["car"]))
    np.testing.assert_array_equal(sampled(out), [car(-20.0, 0.0)])
    assert out.draw("gt_sampling_drawn") == 3


def test_samples_accepted_for_earlier_classes_block_later_classes():
    ped = [20.5, 0.3, -1.0, 0.8, 0.8, 1.8, 0.0, 0.0, 0.0]
    db = db_of([car(20.0, 0.0), ped], ["car", "pedestrian"])
    frame = make_frame([car(0.0, 0.0)], ["car"])
    car_first = make_config([GTSampling((("car", 1), ("pedestrian", 1)), limit_whole_scene=False)])
    ped_first = make_config([GTSampling((("pedestrian", 1), ("car", 1)), limit_whole_scene=False)])
    assert AugmentationReplay(car_first, db, 0).apply(frame).class_name.tolist() == ["car", "car"]
    assert AugmentationReplay(ped_first, db, 0).apply(frame).class_name.tolist() == ["car", "pedestrian"]


def test_out_of_class_gt_blocks_pastes_but_zero_point_gt_does_not():
    # nuScenes __getitem__ drops 0-point GT before prepare_data; an 'ignore' box is still in gt_boxes when the
    # sampler runs (only gt_boxes_mask marks it).
    frame = make_frame([car(10.0, 0.0), car(-10.0, 0.0)], ["ignore", "car"], pts=[5, 0])
    db = db_of([car(10.5, 0.0), car(-10.5, 0.0)], ["car", "car"])
    cfg = make_config([GTSampling((("car", 2),), limit_whole_scene=False)], min_lidar_points=1)
    out = AugmentationReplay(cfg, db, 0).apply(frame)
    np.testing.assert_array_equal(sampled(out), [car(-10.5, 0.0)])
    assert sorted(zip(out.dropped.frame_index.tolist(), out.dropped.reason.tolist())) == [
        (0, "class_filter"), (1, "min_points")
    ]


def test_limit_whole_scene_counts_the_frames_gt_after_the_min_points_filter():
    db = db_of([car(-40.0 + 12 * i, 40.0) for i in range(6)], ["car"] * 6)
    # three cars, one with 0 points: LIMIT_WHOLE_SCENE sees 2.
    frame = make_frame([car(0.0, 0.0), car(0.0, 10.0), car(0.0, -10.0)], ["car"] * 3, pts=[5, 5, 0])

    def drawn(group, limit):
        cfg = make_config([GTSampling((("car", group),), limit_whole_scene=limit)], min_lidar_points=1)
        return AugmentationReplay(cfg, db, 3).apply(frame).draw("gt_sampling_drawn")

    assert drawn(5, True) == 3
    assert drawn(5, False) == 5
    assert drawn(2, True) == 0
    assert drawn(9, False) == 6  # never more than the database holds


def test_draws_follow_the_documented_per_op_stream():
    db_boxes = [car(-45.0 + 9 * i, 45.0) for i in range(10)]
    db = db_of(db_boxes, ["car"] * 10)
    cfg = make_config([GTSampling((("car", 3),), limit_whole_scene=False)])
    out = AugmentationReplay(cfg, db, 17).apply(make_frame([car(0.0, 0.0)], ["car"], token="t1"), replay=4)
    rows = op_generator(17, "t1", 4, kind=5).choice(10, size=3, replace=False)
    np.testing.assert_array_equal(sampled(out), np.asarray(db_boxes)[rows])


def test_pasted_boxes_are_transformed_by_later_ops_and_range_filtered():
    seed = seed_where("sample-0", 1, lambda u: u >= 0.5)  # forces the flip
    db = db_of([car(30.0, 20.0), car(70.0, 0.0)], ["car", "car"])  # the second lies outside the range
    cfg = make_config([GTSampling((("car", 2),), limit_whole_scene=False), WorldFlip(("x",))])
    out = AugmentationReplay(cfg, db, seed).apply(make_frame([car(0.0, 0.0)], ["car"]))
    np.testing.assert_allclose(sampled(out), [[30.0, -20.0, -1.0, 4.0, 2.0, 1.5, 0.0, 0.5, 0.5]], atol=1e-12)
    assert out.draw("gt_sampling_out_of_range") == 1
    assert len(out.dropped) == 0  # pasted boxes are not dataset GT


def test_database_min_points_class_mapping_and_class_names():
    frame = make_frame(
        [car(i, 0.0) for i in range(7)],
        ["vehicle.car", "vehicle.car", "vehicle.car", "vehicle.car", "pedestrian", "pedestrian", "barrier"],
        pts=[4, 5, -1, 0, 0, 3, 50],
        token="train-0",
    )
    cfg = make_config(
        [GTSampling((("car", 2),), min_points=(("car", 5), ("pedestrian", 0)))],
        class_mapping=(("vehicle.car", "car"),),
        min_lidar_points=1,  # FILTER_MIN_POINTS_IN_GT does not apply to the database
    )
    db = build_database(iter([frame]), cfg)
    assert db.sizes() == {"car": 2, "pedestrian": 2}
    assert db["car"].num_lidar_pts.tolist() == [5, -1]
    assert db["car"].ann_token.tolist() == ["train-0-ann1", "train-0-ann2"]
    assert db["pedestrian"].num_lidar_pts.tolist() == [0, 3]
    assert db["car"].sample_token.tolist() == ["train-0", "train-0"]
    assert db.num_frames == 1
    assert len(db["truck"]) == 0


def test_collision_rule_matches_an_independent_shapely_computation():
    rng = np.random.default_rng(1)
    for trial in range(5):
        def boxes(n, lo, hi):
            return np.concatenate(
                [rng.uniform(-25, 25, (n, 2)), np.full((n, 1), -1.0), rng.uniform(lo, hi, (n, 2)),
                 np.full((n, 1), 1.5), rng.uniform(-math.pi, math.pi, (n, 1)), np.zeros((n, 2))], axis=1
            )

        existing = boxes(15, 1.0, 5.0)
        ex_cls = rng.choice(np.array(["car", "pedestrian", "ignore"], dtype=object), 15)
        ex_pts = rng.choice([0, 1, 8], 15)
        db_car, db_ped = boxes(12, 2.0, 5.0), boxes(12, 0.5, 1.0)
        db = db_of(np.concatenate([db_car, db_ped]), ["car"] * 12 + ["pedestrian"] * 12)
        cfg = make_config([GTSampling((("car", 12), ("pedestrian", 12)), limit_whole_scene=False)],
                          min_lidar_points=1)
        out = AugmentationReplay(cfg, db, trial).apply(make_frame(existing, ex_cls, pts=ex_pts))

        # Independent rule with shapely: every candidate is drawn (k = M); within a class batch the rule is
        # symmetric, so the order of the draw does not matter.
        blockers = [poly(b) for b in existing[ex_pts >= 1]]
        expected = []
        for batch in (db_car, db_ped):
            polys = [poly(b) for b in batch]
            areas = [[p.intersection(q).area for q in blockers] for p in polys]
            areas_same = [[p.intersection(q).area if i != j else 0.0 for j, q in enumerate(polys)]
                          for i, p in enumerate(polys)]
            flat = [a for row in areas + areas_same for a in row]
            assert not any(0 < a < 1e-4 for a in flat), "ambiguous tiny overlap; change the seed"
            # Disjoint pairs closer than the kernel's 1 cm margin would collide upstream; keep the scenario clear.
            gaps = [p.distance(q) for p in polys for q in blockers + polys if p is not q]
            assert not any(0 < g < 0.02 for g in gaps), "pair within the 1 cm margin; change the seed"
            ok = [max(row_e, default=0) == 0 and max(row_s) == 0 for row_e, row_s in zip(areas, areas_same)]
            accepted = batch[np.array(ok)]
            expected.extend(map(tuple, accepted))
            blockers += [poly(b) for b in accepted]
        got = sorted(map(tuple, sampled(out)))
        assert got == sorted(expected)
        assert 0 < len(got) < 24  # the scenario exercises both acceptance and rejection


def test_precheck_never_changes_the_kernel_answer():
    """The AABB + separating-axis pre-check must agree with the margin kernel run on every pair (what upstream
    does), including the thin band around touching where the 1 cm margin decides."""
    import torch

    from assignaudit.augment.gt_sampling import collisions, pairs_overlap
    from assignaudit.ops.rotated import box_iou_bev_aligned

    rng = np.random.default_rng(5)
    n = 400
    a = np.zeros((n, 9))
    a[:, 0:2] = rng.uniform(-40, 40, (n, 2))
    a[:, 3:6] = rng.uniform(0.3, 6.0, (n, 3))
    a[:, 6] = rng.uniform(-math.pi, math.pi, n)
    # b: a box beside a, pushed along a's lateral axis to a gap in [-3 cm, 3 cm]; a third of them also rotated.
    b = a.copy()
    b[:, 3:5] = rng.uniform(0.3, 6.0, (n, 2))
    rot = rng.random(n) < 1 / 3
    b[rot, 6] += rng.uniform(-0.3, 0.3, rot.sum())
    gap = rng.uniform(-0.03, 0.03, n)
    # offset so that, for the unrotated ones, the gap is exact: half widths + gap along a's lateral normal
    off = a[:, 4] / 2 + b[:, 4] / 2 + gap
    along = rng.uniform(-1, 1, n)  # slide along a's heading too
    b[:, 0] = a[:, 0] - np.sin(a[:, 6]) * off + np.cos(a[:, 6]) * along
    b[:, 1] = a[:, 1] + np.cos(a[:, 6]) * off + np.sin(a[:, 6]) * along
    # and random pairs anywhere, mostly far apart or deeply overlapping
    c = np.concatenate([a, a[rng.permutation(n)]])
    d = np.concatenate([b, np.roll(a, 1, axis=0) + np.r_[rng.normal(0, 2, 2), np.zeros(7)]])

    def kernel(x, y):
        return box_iou_bev_aligned(torch.from_numpy(x[:, :7].astype(np.float32)),
                                   torch.from_numpy(y[:, :7].astype(np.float32)), margin_compat=True).numpy() > 0

    expected = kernel(c, d)
    np.testing.assert_array_equal(pairs_overlap(c, d), expected)
    near = np.abs(gap) < 0.015
    assert expected[:n][near & ~rot & (gap > 0)].any()  # some disjoint pairs collide through the margin
    assert not expected[:n][~rot & (gap > 0.015)].any()

    # the matrix form against the kernel on the full cross product
    cand, existing = c[:60], d[:50]
    hit_e, hit_c = collisions(cand, existing)
    ii, jj = np.meshgrid(np.arange(60), np.arange(50), indexing="ij")
    np.testing.assert_array_equal(hit_e, kernel(cand[ii.ravel()], existing[jj.ravel()]).reshape(60, 50))
    ii, jj = np.meshgrid(np.arange(60), np.arange(60), indexing="ij")
    full = kernel(cand[ii.ravel()], cand[jj.ravel()]).reshape(60, 60)
    np.fill_diagonal(full, False)
    np.testing.assert_array_equal(hit_c, full)


def test_database_can_report_the_raw_class_vocabulary_and_ledger_iterates_as_tuples():
    frames = [make_frame([car(0, 0), car(9, 0)], ["vehicle.car", None], token="f0"),
              make_frame([car(0, 0)], ["barrier"], pts=[0], token="f1")]
    cfg = make_config(class_mapping=(("vehicle.car", "car"),), min_lidar_points=1)
    db, seen = build_database(frames, cfg, return_classes=True)
    assert seen == {"vehicle.car", "barrier"}
    assert db.sizes() == {"car": 1, "pedestrian": 0}
    out = AugmentationReplay(cfg, None, 0).apply(frames[0])
    assert list(out.dropped) == [("f0-ann1", None, "class_filter")]
    assert list(AugmentationReplay(cfg, None, 0).apply(frames[1]).dropped) == [("f1-ann0", "barrier", "min_points")]
