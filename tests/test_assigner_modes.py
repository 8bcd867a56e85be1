"""The remaining assigner modes (assignment-semantics §4, §6.5, §12): mmdet class-agnostic over mmdet3d layouts
(FPN levels included), per-size assigners with ``assign_per_class`` False / True, OpenPCDet ATSS per anchor set.

Golden cases use an mmdetection3d non-aligned grid whose anchor centres are the integers 0..7 (``linspace(0, 7, 8)``
is exact), so the IoUs are derived by hand in the comments. Random frames compare the sparse results with dense
references written here (plain loops over domains and GT in index order, mmdet's literal low-quality loop; ATSS from
§4 with a dense IoU matrix) and with the dense mmdet reference of test_assign_equivalence.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from assignaudit import ops, schema
from assignaudit.assign import (
    AnchorLayout, AnchorSet, AssignerParams, Framework, IouKind, assign_frame, generate_anchors,
)
from assignaudit.assign.params import AnchorLevel
from assignaudit.errors import ConfigError
from test_assign_equivalence import (
    BANDS, anchor_bands, check_equal, dense_iou, dense_mmdet, new_tally, random_frame, tally_labels,
)

NUM = 64  # anchors per set in the 8 x 8 grid (one size, one rotation)


def grid_layout(*sets: AnchorSet, levels=()) -> AnchorLayout:
    return AnchorLayout((0.0, 0.0, -5.0, 8.0, 8.0, 3.0), (1.0, 1.0, 8.0), tuple(sets), generator="mmdet3d",
                        levels=levels)


def aset(name, size, pos=0.6, neg=0.3, min_pos=0.3, rot=(0.0,)) -> AnchorSet:
    return AnchorSet(name, (size,), rot, (), pos, neg, min_pos_iou=min_pos,
                     anchor_range=(0.0, 0.0, -1.0, 7.0, 7.0, -1.0))


def boxes(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 7)


def run(anchors, gt, sets, params):
    return assign_frame(anchors, gt, torch.tensor(sets, dtype=torch.int64), params, BANDS)


MMDET = AssignerParams(framework=Framework.MMDET, nearest_convention="mmdet3d")
AGNOSTIC = AssignerParams(framework=Framework.MMDET, class_agnostic=True, nearest_convention="mmdet3d")
EVERY_GT = AssignerParams(framework=Framework.MMDET, assign_per_class=False, nearest_convention="mmdet3d")


def test_grid_is_integers():
    a = generate_anchors(grid_layout(aset("a", (2.0, 0.5, 1.0))))
    np.testing.assert_array_equal(a.x_positions[0].numpy(), np.arange(8, dtype=np.float32))


def test_min_pos_iou_gate_vs_pcdet_forcing():
    # anchors 2 x 0.5; GT 2 x 0.5 at (3, 3.3): x overlap 2 with anchor x=3 (1 with x=2, 4); y: anchor row 3 spans
    # [2.75, 3.25], GT [3.05, 3.55] -> 0.2; row 4 [3.75, 4.25] -> 0. Best IoU 0.4 / (1 + 1 - 0.4) = 0.25 at (3, 3);
    # (2, 3), (4, 3): 0.2 / 1.8 = 0.111. mmdet: 0.25 < min_pos 0.3 -> no forced match, 0.25 < neg 0.3 -> every
    # anchor negative; pcdet (no min_pos_iou) forces (3, 3).
    a = generate_anchors(grid_layout(aset("a", (2.0, 0.5, 1.0))))
    gt = boxes((3.0, 3.3, 0.0, 2.0, 0.5, 1.0, 0.0))
    mm = run(a, gt, [0], MMDET)
    assert mm.gt_num_pos.tolist() == [0] and mm.num_pos == 0
    assert mm.gt_zero_pos_reason.tolist() == [schema.REASON_BELOW_MIN_POS_IOU]
    assert mm.gt_max_iou[0] == pytest.approx(0.25, abs=1e-5)
    assert mm.num_neg == NUM and mm.num_ignore == 0
    pc = run(a, gt, [0], AssignerParams(framework=Framework.PCDET, nearest_convention="mmdet3d"))
    assert pc.gt_num_pos.tolist() == [1] and pc.gt_num_forced.tolist() == [1]
    np.testing.assert_allclose(pc.pos_iou, [0.25], atol=1e-5)
    assert pc.num_neg == NUM - 1


def two_size_layout():
    # set 0 "car" anchors 4 x 2, set 1 "ped" anchors 0.6 x 0.6; one class-agnostic threshold triple
    return grid_layout(aset("car", (4.0, 2.0, 1.5)), aset("ped", (0.6, 0.6, 1.7)))


def test_class_agnostic_car_gt_takes_pedestrian_anchor():
    # A car GT (set 0) of 0.6 x 0.6 centred on the anchors at (3, 3): IoU with the ped anchor there 1.0; with the
    # car anchor there 0.36 / 8 = 0.045; ped anchors at (2, 3) etc. do not overlap (0.6 < 1 m apart).
    a = generate_anchors(two_size_layout())
    gt = boxes((3.0, 3.0, 0.0, 0.6, 0.6, 1.0, 0.0))
    ag = run(a, gt, [0], AGNOSTIC)
    assert ag.gt_num_pos.tolist() == [1] and ag.pos_gt_index.tolist() == [0]
    np.testing.assert_allclose(ag.pos_iou, [1.0], rtol=1e-6)
    # class-agnostic counts the positive for the set of the credited GT's class: car
    assert ag.num_pos_per_set.tolist() == [1, 0]
    # car anchors touched with IoU < neg 0.3 are negative; all 2 x 64 - 1 anchors negative
    assert ag.num_neg == 2 * NUM - 1 and ag.num_ignore == 0
    # class-aware (assign_per_class): the car GT only sees car anchors: best 0.045 < min_pos 0.3 -> nothing
    ca = run(a, gt, [0], MMDET)
    assert ca.gt_num_pos.tolist() == [0]
    assert ca.gt_zero_pos_reason.tolist() == [schema.REASON_BELOW_MIN_POS_IOU]
    assert ca.gt_max_iou[0] == pytest.approx(0.36 / 8, rel=1e-5)
    # per-size assigners that see every GT: the ped-size assigner makes the same anchor positive for the car
    ev = run(a, gt, [0], EVERY_GT)
    assert ev.gt_num_pos.tolist() == [1] and ev.num_pos_per_set.tolist() == [0, 1]
    assert ev.gt_max_iou[0] == pytest.approx(1.0)


def test_forcing_gt_identity_vs_pcdet_identity():
    # anchors 2 x 1. GT0 2 x 1 at (3, 3): IoU 1 with anchor (3, 3). GT1 2 x 1 at (3.4, 3): anchor (3, 3) overlap
    # 1.6 -> 1.6 / 2.4 = 0.667 (its best), anchor (4, 3) 1.4 / 2.6 = 0.538, (2, 3) 0.6 / 3.4 = 0.176. GT0 with
    # (2, 3), (4, 3): 1 / 3 = 0.333. Thresholds pos 0.9 / neg 0.3 / min_pos 0.3.
    # mmdet: (3, 3) is positive for GT0 (1 >= 0.9), then GT0 forces it, then GT1 (later index) forces it again and
    # keeps it: GT0 0 positives (taken), GT1 1 forced positive at 0.667. pcdet: the forced anchor keeps its own best
    # GT (GT0). Either way (2, 3) and (4, 3) are ignored (0.333 and 0.538 in [0.3, 0.9)).
    a = generate_anchors(grid_layout(aset("a", (2.0, 1.0, 1.0), pos=0.9)))
    gt = boxes((3.0, 3.0, 0.0, 2.0, 1.0, 1.0, 0.0), (3.4, 3.0, 0.0, 2.0, 1.0, 1.0, 0.0))
    mm = run(a, gt, [0, 0], MMDET)
    assert mm.gt_num_pos.tolist() == [0, 1] and mm.gt_num_forced.tolist() == [0, 1]
    assert mm.gt_zero_pos_reason.tolist() == [schema.REASON_TAKEN, None]
    np.testing.assert_allclose(mm.pos_iou, [1.6 / 2.4], rtol=1e-5)
    pc = run(a, gt, [0, 0], AssignerParams(framework=Framework.PCDET, nearest_convention="mmdet3d"))
    assert pc.gt_num_pos.tolist() == [1, 0] and pc.gt_num_forced.tolist() == [1, 0]
    assert pc.gt_zero_pos_reason.tolist() == [None, schema.REASON_TAKEN]
    for r in (mm, pc):
        assert r.num_ignore == 2 and r.num_neg == NUM - 3


def test_assign_per_class_false_vs_true_two_sizes():
    # set 0 "big" 2 x 2 (pos 0.6 / neg 0.2 / min_pos 0.2), set 1 "small" 1 x 1 (0.5 / 0.35 / 0.35).
    # GT0 class small, 1 x 1 at (3, 3): small anchor (3, 3) IoU 1; small neighbours only touch (0). Big anchor
    # (3, 3): 1 / 4 = 0.25; big (2, 3) etc.: 0.5 / 4.5 = 0.111; big (2, 2): 0.25 / 4.75 = 0.053.
    # GT1 class big, 2 x 2 at (5, 5): big anchor (5, 5) IoU 1; big (4, 5) etc.: 2 / 6 = 0.333 (ignored, in
    # [0.2, 0.6)); big (4, 4): 1 / 7 = 0.143. Small anchor (5, 5): 1 / 4 = 0.25 < 0.35; (4, 5): 0.5 / 4.5.
    # True: each GT sees its own set: 1 + 1 positives, big 4 ignored. False: the big assigner also sees GT0: its
    # best big anchor (3, 3) at 0.25 >= min_pos 0.2 is forced -> GT0 has 2 positives; the small assigner sees GT1
    # at 0.25 < 0.35: nothing more.
    a = generate_anchors(grid_layout(aset("big", (2.0, 2.0, 1.0), 0.6, 0.2, 0.2),
                                     aset("small", (1.0, 1.0, 1.0), 0.5, 0.35, 0.35)))
    gt = boxes((3.0, 3.0, 0.0, 1.0, 1.0, 1.0, 0.0), (5.0, 5.0, 0.0, 2.0, 2.0, 1.0, 0.0))
    per_class = run(a, gt, [1, 0], MMDET)
    assert per_class.gt_num_pos.tolist() == [1, 1] and per_class.num_pos_per_set.tolist() == [1, 1]
    assert per_class.num_ignore_per_set_band.sum(axis=1).tolist() == [4, 0]
    assert per_class.num_neg_per_set_band.sum(axis=1).tolist() == [NUM - 5, NUM - 1]
    every = run(a, gt, [1, 0], EVERY_GT)
    assert every.gt_num_pos.tolist() == [2, 1] and every.gt_num_forced.tolist() == [2, 1]
    assert every.num_pos_per_set.tolist() == [2, 1]  # by anchor set: the big anchor positive for the small GT
    assert sorted(every.pos_iou.round(4).tolist()) == [0.25, 1.0, 1.0]
    assert every.num_ignore_per_set_band.sum(axis=1).tolist() == [4, 0]
    assert every.num_neg_per_set_band.sum(axis=1).tolist() == [NUM - 6, NUM - 1]
    assert every.gt_max_iou.tolist() == [1.0, 1.0]


def test_every_gt_zero_pos_reasons_fold_over_sets():
    # One GT far outside the grid: no overlap in any set. One 0.3 x 0.3 GT at (3, 3): best 0.09 / 4 and 0.09 / 1
    # (below every min_pos) -> below_min_pos_iou.
    a = generate_anchors(grid_layout(aset("big", (2.0, 2.0, 1.0)), aset("small", (1.0, 1.0, 1.0))))
    gt = boxes((30.0, 30.0, 0.0, 1.0, 1.0, 1.0, 0.0), (3.0, 3.0, 0.0, 0.3, 0.3, 1.0, 0.0))
    r = run(a, gt, [0, 1], EVERY_GT)
    assert r.gt_zero_pos_reason.tolist() == [schema.REASON_NO_OVERLAP, schema.REASON_BELOW_MIN_POS_IOU]
    assert r.gt_max_iou[1] == pytest.approx(0.09, rel=1e-4)


def test_per_size_assigners_need_one_size_per_set_and_one_level():
    two_sizes = AnchorSet("a", ((1.0, 1.0, 1.0), (2.0, 1.0, 1.0)), (0.0,), (), 0.6, 0.3)
    a = generate_anchors(grid_layout(two_sizes))
    with pytest.raises(ConfigError, match="one size per anchor set"):
        run(a, boxes((3.0, 3.0, 0.0, 1.0, 1.0, 1.0, 0.0)), [0], MMDET)
    fpn = generate_anchors(grid_layout(aset("a", (1.0, 1.0, 1.0)), levels=(AnchorLevel(1), AnchorLevel(2, 2.0))))
    with pytest.raises(ConfigError, match="single-level"):
        run(fpn, boxes((3.0, 3.0, 0.0, 1.0, 1.0, 1.0, 0.0)), [0], EVERY_GT)
    run(fpn, boxes((3.0, 3.0, 0.0, 1.0, 1.0, 1.0, 0.0)), [0], AGNOSTIC)  # one assigner over all levels: fine


def test_low_quality_matching_competes_across_levels():
    # Level 0: 1 x 1 anchors at integers; level 1 (stride 2, scale 2): 2 x 2 anchors at linspace(0, 7, 4) =
    # 0, 7/3, 14/3, 7. GT 2 x 2 at (7, 7): level-1 anchor (7, 7) IoU 1, level-0 (7, 7) 1 / 4. One assigner over
    # both levels: the GT's single best (forced) prior is on level 1, level-0 anchors (6..7, 6..7) get 0.25 / 0.125.
    a = generate_anchors(grid_layout(aset("a", (1.0, 1.0, 1.0), 0.6, 0.2, 0.2),
                                     levels=(AnchorLevel(1), AnchorLevel(2, 2.0))))
    r = run(a, boxes((7.0, 7.0, 0.0, 2.0, 2.0, 1.0, 0.0)), [0], AGNOSTIC)
    assert r.gt_num_pos.tolist() == [1] and r.pos_iou.tolist() == [1.0]
    # level-0 anchor (7, 7) at 0.25 and (6, 7), (7, 6) at 0.5 / 4.5 = 0.111 (< 0.2): one ignore, rest negative
    assert r.num_ignore == 1 and r.num_neg == a.num_anchors - 2


# ------------------------------------------------------------------------------------------------------------------
# empty GT
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    AssignerParams(framework=Framework.PCDET), MMDET, AGNOSTIC, EVERY_GT,
    AssignerParams(framework=Framework.ATSS), AssignerParams(framework=Framework.ATSS, iou=IouKind.IOU_3D),
])
def test_empty_gt_every_anchor_negative(params):
    a = generate_anchors(two_size_layout(), bands=BANDS)
    r = assign_frame(a, torch.zeros((0, 7)), torch.zeros(0, dtype=torch.int64), params, BANDS)
    assert r.num_pos == 0 and r.num_ignore == 0 and r.num_neg == a.num_anchors
    np.testing.assert_array_equal(r.num_neg_per_set_band, a.band_counts)
    assert r.gt_num_pos.shape == (0,) and r.num_pos_per_set.tolist() == [0, 0]


# ------------------------------------------------------------------------------------------------------------------
# sparse == dense on random frames
# ------------------------------------------------------------------------------------------------------------------


def random_layout(generator: str, levels=(), thresholds=((0.6, 0.45, 0.3), (0.5, 0.35, 0.2), (0.55, 0.0, 0.1))):
    rng = (-10.0, -10.0, -1.0, 10.0, 10.0, -1.0)
    sizes = [(4.0, 2.0, 1.5), (1.2, 1.0, 1.0), (0.6, 0.6, 1.7)]
    sets = tuple(
        AnchorSet(n, (sz,), (0.0, 1.57), (), p, q, feature_map_stride=2, min_pos_iou=m,
                  anchor_range=rng if i != 2 else None)
        for i, (n, sz, (p, q, m)) in enumerate(zip(("big", "mid", "small"), sizes, thresholds))
    )
    return AnchorLayout((-10.0, -10.0, -5.0, 10.0, 10.0, 3.0), (0.5, 0.5, 8.0), sets, generator=generator,
                        levels=levels)


def dense_maxiou(anchors, gt, gt_set, params):
    """MaxIoU per domain (§6.1) with mmdet's literal loop; domains: one (class_agnostic), per set over the set's
    GT (assign_per_class) or per set over every GT. Per-GT counts summed over domains."""
    k = gt.shape[0]
    t = new_tally(anchors, k)
    bands = anchor_bands(anchors)
    sets = anchors.layout.anchor_sets
    for s in range(len(sets)):
        idx = torch.nonzero(anchors.set_index == s)[:, 0]
        gidx = torch.arange(k) if not params.assign_per_class else torch.nonzero(gt_set == s)[:, 0]
        assigned = torch.full((idx.numel(),), -1)
        forced_by = torch.full((idx.numel(),), -1)
        if gidx.numel() == 0:
            assigned[:] = 0
        else:
            ov = dense_iou(anchors.boxes[idx], gt[gidx], params).t()  # [K, N]
            max_ov, argmax_ov = ov.max(dim=0)
            gt_max = ov.max(dim=1).values
            t["gt_max_iou"][gidx.numpy()] = np.maximum(t["gt_max_iou"][gidx.numpy()], gt_max.numpy())
            assigned[(max_ov >= 0) & (max_ov < sets[s].unmatched_threshold)] = 0
            pos = max_ov >= sets[s].matched_threshold
            assigned[pos] = argmax_ov[pos] + 1
            for i in range(gidx.numel()):
                if gt_max[i] >= sets[s].min_pos_iou:
                    hit = ov[i, :] == gt_max[i]
                    assigned[hit] = i + 1
                    forced_by[hit] = i
            p = assigned > 0
            local = assigned[p] - 1
            credit = gidx[local]
            np.add.at(t["gt_num_pos"], credit.numpy(), 1)
            np.add.at(t["gt_num_forced"], gidx[forced_by[forced_by >= 0]].numpy(), 1)
            t["pos"] += list(zip(credit.tolist(), ov[local, torch.nonzero(p)[:, 0]].tolist()))
            t["num_pos_per_set"][s] += int(p.sum())
        tally_labels(t, anchors, bands, idx.numpy(), assigned.clamp(max=1).numpy())
    return t


@pytest.mark.parametrize("assign_per_class", [True, False])
def test_mmdet_per_size_sparse_equals_dense(assign_per_class):
    anchors = generate_anchors(random_layout("mmdet3d_aligned"), bands=BANDS)
    params = AssignerParams(framework=Framework.MMDET, assign_per_class=assign_per_class,
                            nearest_convention="mmdet3d")
    rng = np.random.default_rng(31 + assign_per_class)
    for frame in range(8):
        gt, gs = random_frame(rng, anchors, anchors.num_sets)
        check_equal(assign_frame(anchors, gt, gs, params, BANDS), dense_maxiou(anchors, gt, gs, params), frame)


@pytest.mark.parametrize("generator,levels", [
    ("mmdet3d", ()), ("mmdet3d_aligned", (AnchorLevel(2), AnchorLevel(4, 2.0), AnchorLevel(8, 4.0))),
])
def test_mmdet_class_agnostic_on_mmdet3d_layouts_sparse_equals_dense(generator, levels):
    layout = random_layout(generator, levels, thresholds=((0.6, 0.3, 0.3),) * 3)
    anchors = generate_anchors(layout, bands=BANDS)
    params = AssignerParams(framework=Framework.MMDET, class_agnostic=True, nearest_convention="mmdet3d")
    rng = np.random.default_rng(17)
    for frame in range(6):
        gt, gs = random_frame(rng, anchors, anchors.num_sets)
        check_equal(assign_frame(anchors, gt, gs, params, BANDS), dense_mmdet(anchors, gt, gs, params), frame)


def dense_atss(anchors, gt, params):
    """§4 per anchor set with a dense IoU matrix and plain loops (ties: nearest by (distance, anchor index), positive
    for several GT -> highest IoU then lowest GT, forced argmax = first anchor, later GT wins the forced anchor)."""
    k = gt.shape[0]
    t = new_tally(anchors, k)
    bands = anchor_bands(anchors)
    topk = params.atss_topk
    for s in range(anchors.num_sets):
        idx = torch.nonzero(anchors.set_index == s)[:, 0]
        a = anchors.boxes[idx]
        n = idx.numel()
        iou_fn = ops.box_iou_3d if params.iou is IouKind.IOU_3D else ops.box_iou_bev
        m = iou_fn(a, gt, margin_compat=True)  # [N, K]
        dist = (a[:, None, :3] - gt[None, :, :3]).norm(dim=-1)
        assigned = [-1] * n
        best = [-math.inf] * n
        for j in range(k):
            cand = torch.argsort(dist[:, j], stable=True)[:topk]
            vals = m[cand, j]
            std = vals.std() if topk > 1 else torch.tensor(float("nan"))  # torch: NaN for one value
            thr = vals.mean() + std + 1e-6
            c, sn = math.cos(float(gt[j, 6])), math.sin(float(gt[j, 6]))
            hx, hy = float(gt[j, 3]) / 2, float(gt[j, 4]) / 2
            if params.atss_upstream_quirks:
                hx, hy = hy, hx
            for i in cand.tolist():
                ox, oy = float(a[i, 0] - gt[j, 0]), float(a[i, 1] - gt[j, 1])
                xl, yl = ox * c + oy * sn, -ox * sn + oy * c
                v = float(m[i, j])
                if v >= float(thr) and abs(xl) <= hx and abs(yl) <= hy and v > best[i]:
                    best[i], assigned[i] = v, j
        forced = set()
        for j in range(k):
            i = int(torch.argmax(m[:, j]))
            assigned[i] = j
            forced.add(i)
        t["gt_max_iou"] = np.maximum(t["gt_max_iou"], m.max(dim=0).values.numpy())
        labels = np.zeros(n, dtype=np.int64)
        for i, j in enumerate(assigned):
            if j >= 0:
                labels[i] = 1
                t["gt_num_pos"][j] += 1
                t["gt_num_forced"][j] += i in forced
                t["pos"].append((j, float(m[i, j])))
                t["num_pos_per_set"][s] += 1
        tally_labels(t, anchors, bands, idx.numpy(), labels)
    return t


def atss_frame(rng, anchors):
    k = int(rng.integers(1, 7))
    xs = anchors.x_positions[0].numpy()
    rows = []
    for _ in range(k):
        if rng.random() < 0.4:  # on an anchor centre: exact distance ties between the two rotations
            x, y = float(xs[int(rng.integers(2, 18))]), float(xs[int(rng.integers(2, 18))])
        else:
            x, y = rng.uniform(-9, 9, 2)
        rows.append((x, y, float(rng.uniform(-1.0, 0.5)), *rng.uniform(0.4, 4.5, 2), float(rng.uniform(0.8, 2.0)),
                     float(rng.choice([0.0, math.pi / 2, rng.uniform(-math.pi, math.pi)]))))
    if rng.random() < 0.5:
        rows.append(rows[0])  # a duplicate GT: both force the same anchor, the later one keeps it
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize("generator,iou,quirks", [
    ("pcdet", IouKind.BEV, False), ("pcdet-single", IouKind.IOU_3D, True), ("mmdet3d_aligned", IouKind.NEAREST_BEV,
                                                                             False),
])
def test_atss_per_set_equals_dense_reference(generator, iou, quirks):
    if generator.startswith("pcdet"):
        sets = tuple(AnchorSet(n, (sz,), (0.0, 1.57), (-1.0,), 0.6, 0.45, feature_map_stride=2)
                     for n, sz in (("big", (4.0, 2.0, 1.5)), ("small", (0.8, 0.6, 1.7))))
        layout = AnchorLayout((-10.0, -10.0, -5.0, 10.0, 10.0, 3.0), (0.5, 0.5, 8.0), sets,
                              multihead=generator == "pcdet")
    else:
        layout = random_layout(generator)
    anchors = generate_anchors(layout, bands=BANDS)
    params = AssignerParams(framework=Framework.ATSS, iou=iou, atss_topk=9, atss_upstream_quirks=quirks)
    rng = np.random.default_rng(3)
    for frame in range(5):
        gt = atss_frame(rng, anchors)
        gs = torch.from_numpy(rng.integers(-1, anchors.num_sets, gt.shape[0]))  # classes do not matter: agnostic
        r = assign_frame(anchors, gt, gs, params, BANDS)
        check_equal(r, dense_atss(anchors, gt, params), frame)
        assert r.num_ignore == 0
        assert all(reason in (None, schema.REASON_TAKEN) for reason in r.gt_zero_pos_reason)


def test_atss_duplicate_gt_loses_its_forced_anchors():
    # Two identical GT on the anchors at (3, 3). topk 1: the unbiased std of one candidate is NaN, so no candidate
    # passes and only the forced step is left. Both GT force the same argmax anchor in each of the 2 sets (car-size
    # anchor (3, 3) at 0.36 / 8, ped-size (3, 3) at ~1); the later GT keeps both, the first ends with none.
    a = generate_anchors(two_size_layout(), bands=BANDS)
    gt = boxes((3.0, 3.0, -0.25, 0.6, 0.6, 1.7, 0.0), (3.0, 3.0, -0.25, 0.6, 0.6, 1.7, 0.0))
    params = AssignerParams(framework=Framework.ATSS, atss_topk=1)
    r = assign_frame(a, gt, torch.tensor([1, 1]), params, BANDS)
    check_equal(r, dense_atss(a, gt, params), "duplicate")
    assert r.gt_num_pos.tolist() == [0, 2] and r.gt_num_forced.tolist() == [0, 2]
    assert r.gt_zero_pos_reason.tolist() == [schema.REASON_TAKEN, None]
    assert r.num_pos_per_set.tolist() == [1, 1] and r.num_neg == 2 * NUM - 2
    np.testing.assert_allclose(sorted(r.pos_iou), [0.045, 1.0], rtol=2e-5)  # 1 cm margin: ped IoU 1 - 7e-7


def test_atss_window_fallback_and_pruning_equal_dense_reference():
    # assign_frame's single vectorised ATSS call (window search + pruned forced-match IoU) against the dense §4
    # reference: GT beyond the grid edge (dense fallback), parallel to the anchors, on anchor centres, and nested
    # small / large GT (many anchors inside a GT tie on IoU; the forced match takes the first).
    sets = tuple(AnchorSet(n, (sz,), (0.0, 1.57), (z,), 0.6, 0.45, feature_map_stride=2)
                 for n, sz, z in (("big", (4.0, 2.0, 1.5), -1.0), ("small", (0.8, 0.6, 1.7), -0.9)))
    anchors = generate_anchors(AnchorLayout((-10.0, -10.0, -5.0, 10.0, 10.0, 3.0), (0.5, 0.5, 8.0), sets,
                                            multihead=True), bands=BANDS)
    gt = boxes((14.0, 0.3, -1.0, 4.0, 2.0, 1.5, 0.3), (-9.0, -13.0, -1.0, 1.0, 0.8, 1.7, 0.0),
               (2.5, 3.5, -1.0, 4.0, 2.0, 1.5, 0.0), (2.5, 3.5, -1.0, 4.0, 2.0, 1.5, 1.57),
               (0.0, 0.0, -1.0, 9.0, 3.0, 3.0, 0.7), (0.1, 0.2, -0.9, 0.8, 0.6, 1.7, 0.7),
               (5.0, -5.0, 8.0, 2.0, 1.0, 1.0, -2.0))
    gs = torch.zeros(gt.shape[0], dtype=torch.int64)
    for topk, quirks, iou in ((9, False, IouKind.BEV), (4, True, IouKind.IOU_3D), (1, False, IouKind.BEV)):
        params = AssignerParams(framework=Framework.ATSS, iou=iou, atss_topk=topk, atss_upstream_quirks=quirks)
        check_equal(assign_frame(anchors, gt, gs, params, BANDS), dense_atss(anchors, gt, params), (topk, iou))
