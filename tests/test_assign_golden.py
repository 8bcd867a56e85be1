"""Hand-derived golden cases for the OpenPCDet and mmdet assigners (assignment-semantics §12 "Suggested golden tests").

Most cases use a tiny grid whose anchor centres are the integers 0..7 (range 0..7, 8 cells, align_center False ->
stride exactly 1.0), so every IoU below is derived by hand in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assignaudit import schema
from assignaudit.assign import (
    AnchorLayout, AnchorSet, AssignerParams, Framework, IouKind, assign_frame, generate_anchors,
)
from assignaudit.bands import Bands
from assignaudit.errors import ConfigError, DataError
from test_anchors import nus_layout

BANDS = Bands()
PCDET = AssignerParams(framework=Framework.PCDET)
NUM = 64  # anchors per set per rotation in the 8 x 8 grid


def grid_layout(*sets: AnchorSet) -> AnchorLayout:
    return AnchorLayout((0.0, 0.0, -5.0, 7.0, 7.0, 3.0), (0.875, 0.875, 8.0), tuple(sets))


def aset(name="a", size=(2.0, 1.0, 1.0), rot=(0.0,), bottom=-0.5, pos=0.6, neg=0.45, min_pos=None) -> AnchorSet:
    return AnchorSet(name, (size,), rot, (bottom,), pos, neg, min_pos_iou=min_pos)


def boxes(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 7)


def run(anchors, gt, sets, params=PCDET):
    return assign_frame(anchors, gt, torch.tensor(sets, dtype=torch.int64), params, BANDS)


def test_grid_positions_are_integers():
    a = generate_anchors(grid_layout(aset()))
    np.testing.assert_array_equal(a.x_positions[0].numpy(), np.arange(8, dtype=np.float32))


@pytest.mark.parametrize("framework", [Framework.PCDET, Framework.MMDET])
def test_midway_1d_two_tied_forced(framework):
    # anchors 2 x 1 at integer centres; GT 2 x 1 at (3.5, 3): x-overlap 1.5 with anchors x=3 and x=4 (row y=3),
    # IoU 1.5 / (2 + 2 - 1.5) = 0.6 exactly tied; x=2, 5: 0.5 / 3.5 = 0.143; other rows only touch (overlap 0).
    # Thresholds 0.9 / 0.3: only the two tied forced anchors are positive, everything else negative.
    a = generate_anchors(grid_layout(aset(pos=0.9, neg=0.3, min_pos=0.3)))
    r = run(a, boxes((3.5, 3.0, 0.0, 2.0, 1.0, 1.0, 0.0)), [0], AssignerParams(framework=framework))
    assert r.gt_num_pos.tolist() == [2] and r.gt_num_forced.tolist() == [2]
    assert r.pos_gt_index.tolist() == [0, 0]
    np.testing.assert_allclose(r.pos_iou, [0.6, 0.6], rtol=1e-6)
    assert r.gt_max_iou[0] == pytest.approx(0.6, rel=1e-6)
    assert r.num_neg == NUM - 2 and r.num_ignore == 0
    assert r.gt_zero_pos_reason.tolist() == [None]


def test_midway_2d_four_tied_forced():
    # 2 x 2 anchors, GT 2 x 2 at (3.5, 3.5): 1.5 x 1.5 = 2.25 overlap with the 4 anchors around it,
    # IoU 2.25 / (8 - 2.25) = 0.391, a 4-way exact tie; T_pos 0.6 so only forced; T_neg 0.3: 0.391 is not < 0.3,
    # but forced wins. Anchors (2|5, 3|4): 0.5 x 1.5 = 0.75 / 7.25 = 0.103 -> negative.
    a = generate_anchors(grid_layout(aset(size=(2.0, 2.0, 1.0), pos=0.6, neg=0.3)))
    r = run(a, boxes((3.5, 3.5, 0.0, 2.0, 2.0, 1.0, 0.0)), [0])
    assert r.gt_num_pos.tolist() == [4] and r.gt_num_forced.tolist() == [4]
    np.testing.assert_allclose(r.pos_iou, 2.25 / 5.75, rtol=1e-6)
    assert r.num_neg == NUM - 4 and r.num_ignore == 0


def _f32_nearest_iou(ax, ay, adx, ady, gx, gy, gdx, gdy):
    """Framework nearest-BEV IoU in numpy float32, step by step (independent of assignaudit.ops)."""
    f = np.float32
    two = f(2)
    a = [f(ax) - f(adx) / two, f(ay) - f(ady) / two, f(ax) + f(adx) / two, f(ay) + f(ady) / two]
    g = [f(gx) - f(gdx) / two, f(gy) - f(gdy) / two, f(gx) + f(gdx) / two, f(gy) + f(gdy) / two]
    xl = max(min(a[2], g[2]) - max(a[0], g[0]), f(0))
    yl = max(min(a[3], g[3]) - max(a[1], g[1]), f(0))
    inter = f(xl * yl)
    union = f(f((a[2] - a[0]) * (a[3] - a[1])) + f((g[2] - g[0]) * (g[3] - g[1]))) - inter
    return f(inter / max(union, f(1e-6)))


def test_midway_tie_with_real_nuscenes_positions():
    """A car GT midway between two real (float32 arange) car anchors along x: forced ties need bit-equal IoUs.

    Which midpoints tie is decided here independently in numpy float32; the assigner must agree in both cases.
    """
    a = generate_anchors(nus_layout())
    xs = a.x_positions[0].numpy()
    y0 = float(a.y_positions[0].numpy()[64])
    dx, dy = 4.63, 1.97
    tie_i, no_tie_i = None, None
    for i in range(20, 100):
        m = float(np.float32((float(xs[i]) + float(xs[i + 1])) / 2))
        l = _f32_nearest_iou(xs[i], y0, dx, dy, m, y0, dx, dy)
        r = _f32_nearest_iou(xs[i + 1], y0, dx, dy, m, y0, dx, dy)
        if l == r and tie_i is None:
            tie_i = (i, m, l)
        if l != r and no_tie_i is None:
            no_tie_i = (i, m, max(l, r))
    assert tie_i is not None and no_tie_i is not None  # both happen on the real arange
    for (i, m, best), expect in ((tie_i, 2), (no_tie_i, 1)):
        gt = boxes((m, y0, 0.0, dx, dy, 1.74, 0.0))
        r = run(a, gt, [0])
        # IoU ~0.65 >= 0.6 for the two nearest anchors: both are positive by threshold anyway, so count forced.
        assert r.gt_num_forced.tolist() == [expect], i
        assert r.gt_max_iou[0] == best


def test_cone_between_anchors_has_no_overlap():
    # pcdet nuScenes PP: cone anchors 0.41 m at a 0.806 m pitch. A 0.3 m cone at the midpoint of 4 anchors is
    # ~0.403 m from each in x and y: 0.15 + 0.205 = 0.355 < 0.403, no overlap with any cone anchor (§11.6).
    a = generate_anchors(nus_layout())
    xs, ys = a.x_positions[9].numpy(), a.y_positions[9].numpy()
    mx, my = (float(xs[70]) + float(xs[71])) / 2, (float(ys[40]) + float(ys[41])) / 2
    gt = boxes((mx, my, -0.7, 0.3, 0.3, 1.0, 0.3))
    r = run(a, gt, [9])
    assert r.gt_num_pos.tolist() == [0] and r.gt_max_iou.tolist() == [0.0]
    assert r.gt_zero_pos_reason.tolist() == [schema.REASON_NO_OVERLAP]
    assert r.num_pos == 0 and r.num_ignore == 0 and r.num_neg == 327_680
    assert r.num_neg_per_set_band.sum(axis=1).tolist() == [32_768] * 10


def test_yaw_pi_over_4_snaps_differently():
    # GT 4 x 1 at (3.5, 3) with yaw = float32(pi/4): r = |limit_period| equals float32(pi/4) exactly.
    # pcdet swaps at r >= pi/4 -> rectangle 1 x 4: x [3, 4], y [1, 5]. Anchors 4 x 1 at rotation 0:
    #   rows y=2,3,4 (y-overlap 1) and x=2..5 (x-overlap 1): IoU 1 / (4 + 4 - 1) = 1/7, 12 tied forced anchors;
    #   rows y=1,5 (y-overlap 0.5): 0.5 / 7.5 = 1/15 < 0.45 -> negative. => 12 pos, 0 ignore, 52 neg.
    # mmdet3d swaps only at r > pi/4 -> rectangle 4 x 1: x [1.5, 5.5], y [2.5, 3.5], row y=3 only:
    #   x=3,4: 3.5 / 4.5 = 0.778 (pos, forced); x=2,5: 2.5 / 5.5 = 0.4545 (ignore: 0.45 <= . < 0.6);
    #   x=1,6: 1.5 / 6.5; x=0,7: 0.5 / 7.5 (negative). => 2 pos, 2 ignore, 60 neg.
    a = generate_anchors(grid_layout(aset(size=(4.0, 1.0, 1.0), pos=0.6, neg=0.45)))
    gt = boxes((3.5, 3.0, 0.0, 4.0, 1.0, 1.0, float(np.float32(np.pi / 4))))
    rp = run(a, gt, [0], AssignerParams(framework=Framework.PCDET, nearest_convention="pcdet"))
    rm = run(a, gt, [0], AssignerParams(framework=Framework.PCDET, nearest_convention="mmdet3d"))
    assert (rp.num_pos, rp.num_ignore, rp.num_neg) == (12, 0, 52)
    np.testing.assert_allclose(rp.pos_iou, 1 / 7, rtol=1e-6)
    assert (rm.num_pos, rm.num_ignore, rm.num_neg) == (2, 2, 60)
    assert rm.gt_max_iou[0] == pytest.approx(3.5 / 4.5, rel=1e-6)


def _two_gt_competition():
    # 2 x 2 anchors. GT0 = exactly anchor (3, 3): IoU 1 there. GT1 = 1 x 1 at (3, 3): IoU with anchor (3, 3)
    # 1 / (4 + 1 - 1) = 0.25, its unique best (anchor (4, 3): 0.5 / 4.5 = 0.111). Anchor (3, 3)'s own best GT is
    # GT0. All other anchors: a_max <= 1/3 (GT0's side neighbours: 2 / 6) -> negative with T_neg 0.45.
    a = generate_anchors(grid_layout(aset(size=(2.0, 2.0, 1.0), pos=0.6, neg=0.45, min_pos=0.2)))
    gt = boxes((3.0, 3.0, 0.0, 2.0, 2.0, 1.0, 0.0), (3.0, 3.0, 0.0, 1.0, 1.0, 1.0, 0.0))
    return a, gt


def test_two_gt_identity_rules_differ():
    a, gt = _two_gt_competition()
    rp = run(a, gt, [0, 0], PCDET)
    rm = run(a, gt, [0, 0], AssignerParams(framework=Framework.MMDET))
    # pcdet: the shared forced anchor keeps its own argmax GT0; GT1 loses it.
    assert rp.gt_num_pos.tolist() == [1, 0] and rp.gt_num_forced.tolist() == [1, 0]
    assert rp.gt_zero_pos_reason.tolist() == [None, schema.REASON_TAKEN]
    np.testing.assert_allclose(rp.pos_iou, [1.0])
    # mmdet: GT1 comes later in the low-quality loop and overwrites GT0 (0.25 >= min_pos_iou 0.2).
    assert rm.gt_num_pos.tolist() == [0, 1] and rm.gt_num_forced.tolist() == [0, 1]
    assert rm.gt_zero_pos_reason.tolist() == [schema.REASON_TAKEN, None]
    np.testing.assert_allclose(rm.pos_iou, [0.25])
    # per-class counts agree
    assert rp.num_pos_per_set.tolist() == rm.num_pos_per_set.tolist() == [1]
    assert rp.num_neg == rm.num_neg == NUM - 1
    assert rp.gt_max_iou.tolist() == rm.gt_max_iou.tolist() == [1.0, 0.25]


def test_mmdet_min_pos_iou_gate():
    a, gt = _two_gt_competition()
    a_gated = generate_anchors(grid_layout(aset(size=(2.0, 2.0, 1.0), pos=0.6, neg=0.45, min_pos=0.3)))
    r = run(a_gated, gt, [0, 0], AssignerParams(framework=Framework.MMDET))
    # GT1's best IoU 0.25 < 0.3: no forced match, so GT0 keeps the anchor.
    assert r.gt_num_pos.tolist() == [1, 0] and r.gt_num_forced.tolist() == [1, 0]
    assert r.gt_zero_pos_reason.tolist() == [None, schema.REASON_BELOW_MIN_POS_IOU]
    # AssignerParams.min_pos_iou is the default when the set has none
    a_default = generate_anchors(grid_layout(aset(size=(2.0, 2.0, 1.0), pos=0.6, neg=0.45)))
    r2 = run(a_default, gt, [0, 0], AssignerParams(framework=Framework.MMDET, min_pos_iou=0.3))
    assert r2.gt_num_pos.tolist() == [1, 0]
    # pcdet has no gate: GT1 alone gets its forced anchor at IoU 0.25
    r3 = run(a_gated, gt[1:], [0], PCDET)
    assert r3.gt_num_pos.tolist() == [1]


def test_no_gt_of_a_class_makes_all_its_anchors_negative():
    # set 1 has unmatched_threshold 0 (untouched anchors would be ignored if it had GT) but no GT: all negative.
    a = generate_anchors(grid_layout(aset("a"), aset("b", neg=0.0)))
    for params in (PCDET, AssignerParams(framework=Framework.MMDET)):
        r = run(a, boxes((3.5, 3.0, 0.0, 2.0, 1.0, 1.0, 0.0)), [0], params)
        assert r.num_neg_per_set_band.sum(axis=1)[1] == NUM and r.num_ignore_per_set_band.sum(axis=1)[1] == 0
        r0 = run(a, boxes(), [], params)
        assert r0.num_pos == 0 and r0.num_neg == 2 * NUM and r0.gt_num_pos.shape == (0,)
    # with a GT of its class, T_neg = 0 leaves every non-positive anchor ignored (a_max < 0 never holds)
    r = run(a, boxes((3.5, 3.0, 0.0, 2.0, 1.0, 1.0, 0.0)), [1], PCDET)
    assert r.num_pos == 2 and r.num_ignore_per_set_band.sum(axis=1).tolist() == [0, NUM - 2]
    assert r.num_neg_per_set_band.sum(axis=1).tolist() == [NUM, 0]


def test_gt_of_class_without_anchor_set_competes_for_nothing():
    a = generate_anchors(grid_layout(aset()))
    r = run(a, boxes((3.5, 3.0, 0.0, 2.0, 1.0, 1.0, 0.0)), [-1])
    assert r.gt_num_pos.tolist() == [0] and r.num_neg == NUM
    assert r.gt_zero_pos_reason.tolist() == [schema.REASON_NO_OVERLAP]


@pytest.mark.parametrize("order", ["zero_first", "zero_last"])
def test_mmdet_min_pos_iou_zero_claims_every_anchor(order):
    # 0.4 m anchors at integer centres; a 0.3 m GT at (3.5, 3.5) overlaps nothing (g_max = 0). With
    # min_pos_iou = 0, mmdet forces every prior with IoU == 0 to it: all 64 anchors. A second GT identical to
    # anchor (5, 5) forces that anchor (IoU 1). Later GT index overwrites: zero GT first -> 63 + 1; last -> 64 + 0.
    a = generate_anchors(grid_layout(aset(size=(0.4, 0.4, 1.0), pos=0.6, neg=0.45, min_pos=0.0)))
    zero = (3.5, 3.5, 0.0, 0.3, 0.3, 1.0, 0.0)
    real = (5.0, 5.0, 0.0, 0.4, 0.4, 1.0, 0.0)
    gt = boxes(zero, real) if order == "zero_first" else boxes(real, zero)
    r = run(a, gt, [0, 0], AssignerParams(framework=Framework.MMDET))
    counts = [63, 1] if order == "zero_first" else [0, 64]
    assert r.gt_num_pos.tolist() == counts and r.gt_num_forced.tolist() == counts
    assert r.num_pos == 64 and r.num_neg == 0 and r.num_ignore == 0
    assert sorted(r.pos_gt_index.tolist()) == sorted([0] * counts[0] + [1] * counts[1])
    assert float(r.pos_iou.sum()) == pytest.approx(1.0 if order == "zero_first" else 0.0)
    if order == "zero_last":
        assert r.gt_zero_pos_reason.tolist() == [schema.REASON_TAKEN, None]
    # gt_max_assign_all False: the zero GT forces only the first prior (flat 0), the real GT its argmax.
    r1 = run(a, gt, [0, 0], AssignerParams(framework=Framework.MMDET, gt_max_assign_all=False))
    assert r1.num_pos == 2 and r1.num_neg == 62
    # pcdet never forces a GT with g_max == 0
    rp = run(a, gt, [0, 0], PCDET)
    assert rp.num_pos == 1 and rp.gt_zero_pos_reason[0 if order == "zero_first" else 1] == schema.REASON_NO_OVERLAP


def test_mmdet_class_agnostic_counts_by_gt_class():
    # Two sets with the same thresholds; a GT of set 1's class overlaps set 0's anchors best: class-agnostic
    # assignment may make a set-0 anchor positive for it, counted under the GT's class (set 1).
    a = generate_anchors(grid_layout(aset("a", size=(2.0, 2.0, 1.0)), aset("b", size=(0.5, 0.5, 1.0))))
    gt = boxes((3.0, 3.0, 0.0, 2.0, 2.0, 1.0, 0.0))
    r = run(a, gt, [1], AssignerParams(framework=Framework.MMDET, class_agnostic=True))
    # anchor "a" (3, 3): IoU 1 -> positive; "b" (3, 3): 0.25 / 4 = 0.0625 -> negative; a's neighbours 1/3 -> neg
    assert r.gt_num_pos.tolist() == [1] and r.num_pos_per_set.tolist() == [0, 1]
    assert r.num_neg == 2 * NUM - 1
    r_pc = run(a, gt, [1], AssignerParams(framework=Framework.MMDET))
    assert r_pc.gt_num_pos.tolist() == [1] and r_pc.pos_iou[0] == pytest.approx(0.0625)


def test_match_height_uses_3d_iou():
    # 2 x 2 x 2 anchors, bottom -1 -> centre z 0. GT identical in BEV to anchor (3, 3).
    a = generate_anchors(grid_layout(aset(size=(2.0, 2.0, 2.0), bottom=-1.0, pos=0.6, neg=0.45)))
    p3d = AssignerParams(framework=Framework.PCDET, iou=IouKind.IOU_3D)
    # z = 1: height overlap 1 of 2 -> 3D IoU 4 / (8 + 8 - 4) = 1/3: only the forced anchor is positive
    # (neighbour (4, 3): 2 / 14). Nearest BEV ignores z: IoU 1.
    gt = boxes((3.0, 3.0, 1.0, 2.0, 2.0, 2.0, 0.0))
    r3, rb = run(a, gt, [0], p3d), run(a, gt, [0])
    assert r3.gt_num_pos.tolist() == [1] and r3.gt_num_forced.tolist() == [1]
    assert r3.gt_max_iou[0] == pytest.approx(1 / 3, abs=2e-3)
    assert rb.gt_max_iou[0] == 1.0
    # z = 2.5: no height overlap -> 3D IoU 0 everywhere, no positive; nearest BEV still gives one.
    gt_hi = boxes((3.0, 3.0, 2.5, 2.0, 2.0, 2.0, 0.0))
    r3 = run(a, gt_hi, [0], p3d)
    assert r3.gt_num_pos.tolist() == [0] and r3.gt_zero_pos_reason.tolist() == [schema.REASON_NO_OVERLAP]
    assert run(a, gt_hi, [0]).gt_num_pos.tolist() == [1]
    # a rotated GT still finds its candidates (AABB of the rotated box)
    gt_rot = boxes((3.0, 3.0, 0.0, 2.0, 2.0, 2.0, 0.3))
    assert run(a, gt_rot, [0], p3d).gt_num_pos[0] >= 1
    # exact rotated BEV IoU (z ignored): the z = 2.5 GT is identical in BEV to anchor (3, 3) -> IoU 1
    rbev = run(a, gt_hi, [0], AssignerParams(framework=Framework.MMDET, iou=IouKind.BEV))
    assert rbev.gt_num_pos.tolist() == [1] and rbev.gt_max_iou[0] == pytest.approx(1.0, abs=1e-5)


def test_inputs_are_not_modified():
    a, gt = _two_gt_competition()
    before_gt, before_anchors = gt.clone(), a.boxes.clone()
    run(a, gt, [0, 0])
    assert torch.equal(gt, before_gt) and torch.equal(a.boxes, before_anchors)


def test_bad_inputs_raise_one_line_errors():
    a = generate_anchors(grid_layout(aset()))
    with pytest.raises(DataError, match="NaN"):
        run(a, boxes((float("nan"), 3.0, 0.0, 2.0, 1.0, 1.0, 0.0)), [0])
    with pytest.raises(DataError, match="gt_set_index"):
        run(a, boxes((3.0, 3.0, 0.0, 2.0, 1.0, 1.0, 0.0)), [0, 0])
    with pytest.raises(DataError, match="anchor set index"):
        run(a, boxes((3.0, 3.0, 0.0, 2.0, 1.0, 1.0, 0.0)), [3])
    two = generate_anchors(grid_layout(aset("a", pos=0.6), aset("b", pos=0.5)))
    with pytest.raises(ConfigError, match="'b'"):
        run(two, boxes(), [], AssignerParams(framework=Framework.MMDET, class_agnostic=True))
    zero = generate_anchors(grid_layout(aset("z", pos=0.0)))
    with pytest.raises(ConfigError, match="matched_threshold"):
        run(zero, boxes(), [])


def test_bad_input_through_cli_is_one_line_exit_2():
    import typer
    from typer.testing import CliRunner

    from assignaudit.cli.app import cli_errors

    app = typer.Typer()

    @app.command()
    @cli_errors
    def go() -> None:
        a = generate_anchors(grid_layout(aset()))
        run(a, boxes((float("nan"), 3.0, 0.0, 2.0, 1.0, 1.0, 0.0)), [0])

    res = CliRunner().invoke(app, [])
    assert res.exit_code == 2
    err = res.stderr if hasattr(res, "stderr") else res.output
    assert err.strip().count("\n") == 0 and err.startswith("error:") and "NaN" in err
    assert "Traceback" not in res.output
