"""CenterPoint heatmap targets: against per-GT reference loops written here from the upstream code, and hand numbers.

The reference loops follow OpenPCDet ``center_head.py::assign_targets`` / ``assign_target_of_single_head`` (with the
in-place class relabelling) and mmdet3d ``centerpoint_head.py::get_targets_single``: one GT at a time, a float64
numpy kernel cropped by slicing and merged with ``torch.max``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from assignaudit.assign.heatmap import HeatmapParams, gaussian_radius, heatmap_targets
from assignaudit.errors import ConfigError, DataError

NUS = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle", "pedestrian",
       "traffic_cone")
HEADS = (("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",), ("motorcycle", "bicycle"),
         ("pedestrian", "traffic_cone"))
PCR = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
VOX = (0.075, 0.075, 0.2)


def params(variant="pcdet", heads=HEADS, class_names=NUS, **kw) -> HeatmapParams:
    return HeatmapParams(PCR, VOX, 8, heads, class_names, variant=variant, **kw)


def box(x, y, dx, dy):
    return [x, y, 0.0, dx, dy, 1.5, 0.3]


# ------------------------------------------------------------------------------------------------------------------
# Reference loops (one GT at a time, as upstream)
# ------------------------------------------------------------------------------------------------------------------


def ref_radius(height, width, o):
    a1 = 1
    b1 = height + width
    c1 = width * height * (1 - o) / (1 + o)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - o) * width * height
    r2 = (b2 + torch.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3 = 4 * o
    b3 = -2 * o * (height + width)
    c3 = (o - 1) * width * height
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.min(torch.min(r1, r2), r3)


def ref_draw(hm2d, x, y, r):
    d = 2 * r + 1
    sigma = d / 6
    yy, xx = np.ogrid[-r : r + 1, -r : r + 1]
    g = np.exp(-(xx * xx + yy * yy) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    height, width = hm2d.shape
    left, right = min(x, r), min(width - x, r + 1)
    top, bottom = min(y, r), min(height - y, r + 1)
    sub = hm2d[y - top : y + bottom, x - left : x + right]
    gg = torch.from_numpy(g[r - top : r + bottom, r - left : r + right]).float()
    if min(gg.shape) > 0 and min(sub.shape) > 0:
        torch.max(sub, gg, out=sub)


def ref_pcdet(boxes, cls, p: HeatmapParams):
    """Returns per head: heatmap, list of (frame index, channel, used, cx, cy, radius) in slot order."""
    W, H = p.map_size
    gt = torch.cat([boxes.float(), torch.as_tensor(cls, dtype=torch.float32)[:, None] + 1], 1)
    frame_idx = torch.arange(len(cls), dtype=torch.float32)
    all_names = ["bg", *p.class_names]
    heads = [[c for c in hd if c in p.class_names] for hd in p.heads]
    out = []
    for names in heads:
        label_names = [all_names[int(v)] for v in gt[:, -1].long()]
        rows, fidx = [], []
        for i, n in enumerate(label_names):
            if n not in names:
                continue
            row = gt[i]
            row[-1] = names.index(n) + 1  # the upstream in-place write into the shared tensor
            rows.append(row[None].clone())
            fidx.append(int(frame_idx[i]))
        sub = torch.cat(rows) if rows else gt[:0]
        hm = torch.zeros(len(names), H, W)
        cx = torch.clamp((sub[:, 0] - p.point_cloud_range[0]) / p.voxel_size[0] / p.feature_map_stride, 0, W - 0.5)
        cy = torch.clamp((sub[:, 1] - p.point_cloud_range[1]) / p.voxel_size[1] / p.feature_map_stride, 0, H - 0.5)
        ci = torch.stack([cx, cy], 1).int()
        dx = sub[:, 3] / p.voxel_size[0] / p.feature_map_stride
        dy = sub[:, 4] / p.voxel_size[1] / p.feature_map_stride
        rad = torch.clamp_min(ref_radius(dx, dy, p.gaussian_overlap).int(), p.min_radius)
        slots = []
        for k in range(sub.shape[0]):
            used = False
            if k < p.num_max_objs and not (dx[k] <= 0 or dy[k] <= 0):
                ref_draw(hm[int(sub[k, -1]) - 1], int(cx[k]), int(cy[k]), int(rad[k]))
                used = True
            slots.append((fidx[k], int(sub[k, -1]) - 1, used, int(ci[k, 0]), int(ci[k, 1]), int(rad[k])))
        out.append((hm, slots))
    return out


def ref_mmdet3d(boxes, cls, p: HeatmapParams):
    W, H = p.map_size
    boxes = boxes.float()
    labels = torch.as_tensor(cls)
    pc_range = torch.tensor(p.point_cloud_range)
    vsize = torch.tensor(p.voxel_size)
    osf = p.feature_map_stride
    out, flag = [], 0
    for names in p.heads:
        idx = torch.cat([torch.where(labels == names.index(n) + flag)[0] for n in names])
        tb, tc = boxes[idx], labels[idx] - flag
        flag += len(names)
        hm = torch.zeros(len(names), H, W)
        slots = []
        for k in range(min(tb.shape[0], p.num_max_objs) if p.num_max_objs else 0):
            width = tb[k][3] / vsize[0] / osf
            length = tb[k][4] / vsize[1] / osf
            if not (width > 0 and length > 0):
                slots.append((int(idx[k]), int(tc[k]), False))
                continue
            radius = max(p.min_radius, int(ref_radius(length, width, p.gaussian_overlap)))
            cx = (tb[k][0] - pc_range[0]) / vsize[0] / osf
            cy = (tb[k][1] - pc_range[1]) / vsize[1] / osf
            ci = torch.tensor([cx, cy], dtype=torch.float32).to(torch.int32)
            if not (0 <= ci[0] < W and 0 <= ci[1] < H):
                slots.append((int(idx[k]), int(tc[k]), False))
                continue
            ref_draw(hm[int(tc[k])], int(ci[0]), int(ci[1]), radius)
            slots.append((int(idx[k]), int(tc[k]), True, int(ci[0]), int(ci[1]), radius))
        out.append((hm, slots))
    return out


def random_frame(rng, k, n_cls=10):
    x = rng.uniform(-56, 56, k)  # some outside the range: pcdet clamps, mmdet3d drops
    y = rng.uniform(-56, 56, k)
    x[: k // 8] = 54.0  # on x_max exactly
    dx = rng.uniform(0.2, 13.0, k)
    dy = rng.uniform(0.2, 3.5, k)
    dx[rng.random(k) < 0.05] = 0.0  # degenerate
    b = np.stack([x, y, rng.uniform(-2, 1, k), dx, dy, rng.uniform(0.5, 4, k), rng.uniform(-3, 3, k)], 1)
    dup = rng.integers(0, k, k // 5)  # same cell, often same class
    b[dup, :2] = b[0, :2] + rng.uniform(-0.05, 0.05, (dup.size, 2))
    return torch.tensor(b, dtype=torch.float32), rng.integers(0, n_cls, k)


# ------------------------------------------------------------------------------------------------------------------
# Equivalence with the reference loops
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "heads,class_names,max_objs",
    [
        (HEADS, NUS, 500),
        (HEADS, NUS, 3),
        # non-monotone head order: exercises the relabelling quirk
        ((("pedestrian", "traffic_cone"), ("car",), ("truck", "construction_vehicle"), ("bus", "trailer"),
          ("barrier",), ("motorcycle", "bicycle")), NUS, 500),
    ],
)
def test_pcdet_matches_reference_loop(heads, class_names, max_objs):
    rng = np.random.default_rng(1)
    p = params("pcdet", heads, class_names, num_max_objs=max_objs)
    phantoms = 0
    for _ in range(6):
        boxes, cls = random_frame(rng, int(rng.integers(0, 45)))
        res = heatmap_targets(boxes, cls, p)
        ref = ref_pcdet(boxes, cls, p)
        phantoms += sum(int(h.slot_phantom.sum()) for h in res.heads)
        for head, (hm, slots) in zip(res.heads, ref):
            assert torch.equal(head.heatmap, hm)
            assert head.slot_gt.tolist() == [s[0] for s in slots]
            assert head.slot_channel.tolist() == [s[1] for s in slots]
            assert head.slot_used.tolist() == [s[2] for s in slots]
            for s in slots:
                if s[2] and not head.slot_phantom[head.slot_gt.tolist().index(s[0])]:
                    assert (res.cell_x[s[0]], res.cell_y[s[0]], res.radius[s[0]]) == s[3:]
    assert (phantoms > 0) == bool(p.warnings)  # the quirk case really exercises relabelled slots


@pytest.mark.parametrize("max_objs", [500, 4])
def test_mmdet3d_matches_reference_loop(max_objs):
    rng = np.random.default_rng(2)
    p = params("mmdet3d", num_max_objs=max_objs)
    for _ in range(6):
        boxes, cls = random_frame(rng, int(rng.integers(0, 45)))
        res = heatmap_targets(boxes, cls, p)
        ref = ref_mmdet3d(boxes, cls, p)
        for head, (hm, slots) in zip(res.heads, ref):
            assert torch.equal(head.heatmap, hm)
            n = len(slots)  # the reference only lists the first max_objs slots
            assert head.slot_gt[:n].tolist() == [s[0] for s in slots]
            assert head.slot_channel[:n].tolist() == [s[1] for s in slots]
            assert head.slot_used[:n].tolist() == [s[2] for s in slots]
            assert not head.slot_used[n:].any()
            for s in slots:
                if s[2]:
                    assert (res.cell_x[s[0]], res.cell_y[s[0]], res.radius[s[0]]) == s[3:]


def test_stats_count_cells_of_the_map():
    rng = np.random.default_rng(3)
    boxes, cls = random_frame(rng, 40)
    res = heatmap_targets(boxes, cls, params())
    W, H = 180, 180
    for st in res.class_stats:
        hm = res.heads[st.head].heatmap[st.channel]
        assert st.positive_cells == int((hm == 1).sum())
        assert st.reduced_negative_cells == int(((hm > 0) & (hm < 1)).sum())
        assert st.negative_cells == int((hm == 0).sum())
        assert st.positive_cells + st.reduced_negative_cells + st.negative_cells == W * H
        assert st.positive_cells == st.gt_slots - st.collisions
        assert sum(n for _, n in st.radius_counts) == st.gt_slots


# ------------------------------------------------------------------------------------------------------------------
# Hand-derived cases
# ------------------------------------------------------------------------------------------------------------------


def test_gaussian_radius_small_box_by_hand_and_min_radius():
    # h = 2, w = 1 cells, o = 0.1. By hand: r1 = (3 + sqrt(9 - 4*1.8/1.1))/2 = 2.2833,
    # r2 = (6 + sqrt(36 - 16*1.8))/2 = 4.3416, r3 = (-0.6 + sqrt(0.36 + 1.6*1.8))/2 = (-0.6 + 1.8)/2 = 0.6.
    r1 = (3 + math.sqrt(9 - 4 * 1.8 / 1.1)) / 2
    r2 = (6 + math.sqrt(36 - 16 * 1.8)) / 2
    r3 = (-0.6 + math.sqrt(0.36 + 1.6 * 1.8)) / 2
    assert r3 == pytest.approx(0.6) and r1 == pytest.approx(2.2833, abs=1e-4) and r2 == pytest.approx(4.3416, abs=1e-4)
    got = gaussian_radius(torch.tensor([2.0, 1.0]), torch.tensor([1.0, 2.0]), 0.1)
    assert got.tolist() == pytest.approx([min(r1, r2, r3)] * 2, abs=1e-6)  # symmetric
    # In a frame: 2 x 1 cells of 0.6 m -> int(0.6) = 0 -> MIN_RADIUS 2 -> a full 5 x 5 kernel (corner exp(-5.76) > eps).
    res = heatmap_targets(torch.tensor([box(0.3, 0.3, 1.2, 0.6)]), ["car"], params())
    assert res.radius.tolist() == [2]
    st = res.class_stats[0]
    assert (st.positive_cells, st.reduced_negative_cells, st.radius_counts) == (1, 24, ((2, 1),))
    hm = res.heads[0].heatmap[0]
    sigma = 5 / 6
    assert hm[90, 92].item() == pytest.approx(math.exp(-4 / (2 * sigma * sigma)), rel=1e-6)  # 2 cells right of centre


@pytest.mark.parametrize(
    "size,raw,final",
    [((4.63, 1.97), 2.11, 2), ((10.5, 2.94), 3.75, 3), ((12.29, 2.90), 3.95, 3), ((0.73, 0.67), 0.50, 2)],
)
def test_radius_table_for_0p6m_cells(size, raw, final):
    # assignment-semantics §11.2: car 2.11 -> 2, bus 3.75 -> 3, trailer 3.95 -> 3, pedestrian 0.50 -> 2
    r = gaussian_radius(torch.tensor(size[0] / 0.6), torch.tensor(size[1] / 0.6), 0.1).item()
    assert r == pytest.approx(raw, abs=0.006)
    for variant in ("pcdet", "mmdet3d"):
        res = heatmap_targets(torch.tensor([box(1.0, 1.0, *size)]), ["car"], params(variant))
        assert res.radius.tolist() == [final]


def test_same_class_same_cell_is_one_positive_and_a_collision():
    # 0.6 m cells from -54: x in [0.0, 0.6) is cell 90. Two cars and a pedestrian in that cell.
    boxes = torch.tensor([box(0.1, 0.1, 4.0, 2.0), box(0.5, 0.4, 4.5, 1.9), box(0.2, 0.2, 0.7, 0.7)])
    for variant in ("pcdet", "mmdet3d"):
        res = heatmap_targets(boxes, ["car", "car", "pedestrian"], params(variant))
        assert res.used.tolist() == [True, True, True]
        assert res.reason.tolist() == [None, "cell_collision", None]
        assert res.collision_with.tolist() == [-1, 0, -1]
        car = next(s for s in res.class_stats if s.class_name == "car")
        ped = next(s for s in res.class_stats if s.class_name == "pedestrian")
        assert (car.gt_slots, car.positive_cells, car.collisions) == (2, 1, 1)
        assert (ped.gt_slots, ped.positive_cells, ped.collisions) == (1, 1, 0)
        assert res.heads[0].heatmap[0, 90, 90].item() == 1.0


def test_border_gt_pcdet_clamps_mmdet3d_drops():
    # x = x_max = 54: (54 + 54) / 0.075 / 8 = 180 = W -> pcdet clamps to 179.5 -> cell 179; mmdet3d int 180 >= W.
    boxes = torch.tensor([box(54.0, 0.0, 4.0, 2.0)])
    pc = heatmap_targets(boxes, ["car"], params("pcdet"))
    assert (pc.used[0], pc.cell_x[0], pc.cell_y[0], pc.clamped[0], pc.reason[0]) == (True, 179, 90, True, None)
    assert pc.heads[0].heatmap[0, 90, 179].item() == 1.0
    mm = heatmap_targets(boxes, ["car"], params("mmdet3d"))
    assert (mm.used[0], mm.cell_x[0], mm.clamped[0], mm.reason[0]) == (False, 180, False, "out_of_map")
    assert mm.heads[0].heatmap.abs().sum().item() == 0.0
    assert mm.class_stats[0].negative_cells == 180 * 180


def test_pcdet_head_order_mutation_draws_pedestrian_as_car():
    # §5.1: heads [[pedestrian], [car]], CLASS_NAMES [car, pedestrian]. The pedestrian (label 2) is rewritten to
    # local id 1 in head 0, which head 1 reads as CLASS_NAMES[0] = car.
    p = params("pcdet", heads=(("pedestrian",), ("car",)), class_names=("car", "pedestrian"))
    boxes = torch.tensor([box(10.0, 10.0, 0.7, 0.7), box(-20.0, 5.0, 4.6, 1.9)])
    res = heatmap_targets(boxes, ["pedestrian", "car"], p)
    ped_cell = (int((10 + 54) / 0.6), int((10 + 54) / 0.6))  # (106, 106)
    car_cell = (int((-20 + 54) / 0.6), int((5 + 54) / 0.6))  # (56, 98)
    assert res.heads[0].heatmap[0, ped_cell[1], ped_cell[0]].item() == 1.0
    car_hm = res.heads[1].heatmap[0]
    assert car_hm[ped_cell[1], ped_cell[0]].item() == 1.0  # the pedestrian, drawn as a car
    assert car_hm[car_cell[1], car_cell[0]].item() == 1.0
    assert int((car_hm == 1).sum()) == 2
    assert res.heads[1].slot_gt.tolist() == [0, 1] and res.heads[1].slot_phantom.tolist() == [True, False]
    assert res.head.tolist() == [0, 1]  # each GT's own head
    assert any("relabelled" in w for w in res.warnings)
    assert not p.__class__(PCR, VOX, 8, (("car",), ("pedestrian",)), ("car", "pedestrian")).warnings
    mono_p = params("pcdet", (("car",), ("pedestrian",)), ("car", "pedestrian"))
    mono = heatmap_targets(boxes, ["pedestrian", "car"], mono_p)
    assert int((mono.heads[0].heatmap == 1).sum()) == 1 and not mono.warnings


def test_truncation_order_differs_between_variants():
    # One head [car, pedestrian], max 2 objects. Frame order: pedestrian, car, car.
    heads, names = (("car", "pedestrian"),), ("car", "pedestrian")
    boxes = torch.tensor([box(-30.0, 0.0, 0.7, 0.7), box(0.0, 0.0, 4.6, 1.9), box(30.0, 0.0, 4.6, 1.9)])
    cls = ["pedestrian", "car", "car"]
    pc = heatmap_targets(boxes, cls, params("pcdet", heads, names, num_max_objs=2))
    assert pc.used.tolist() == [True, True, False]  # frame order: the last car goes
    assert pc.reason.tolist() == [None, None, "truncated_max_objs"]
    mm = heatmap_targets(boxes, cls, params("mmdet3d", heads, names, num_max_objs=2))
    assert mm.heads[0].slot_gt.tolist() == [1, 2, 0]  # grouped by class: cars first
    assert mm.used.tolist() == [False, True, True]  # the pedestrian goes
    assert mm.reason.tolist() == ["truncated_max_objs", None, None]


def test_degenerate_size_is_skipped_but_takes_a_slot():
    boxes = torch.tensor([box(0.0, 0.0, 0.0, 1.0), box(5.0, 0.0, 4.6, 1.9), box(10.0, 0.0, 4.6, 1.9)])
    for variant in ("pcdet", "mmdet3d"):
        res = heatmap_targets(boxes, ["car"] * 3, params(variant, num_max_objs=2))
        assert res.reason.tolist() == ["degenerate_size", None, "truncated_max_objs"]
        assert res.radius[0] == -1


def test_empty_frame_and_inputs_not_mutated():
    res = heatmap_targets(torch.zeros(0, 7), [], params())
    assert all(h.heatmap.abs().sum() == 0 for h in res.heads) and res.used.shape == (0,)
    boxes = torch.tensor([box(54.0, -60.0, 4.0, 2.0)])
    before = boxes.clone()
    cls = np.array([0])
    heatmap_targets(boxes, cls, params("pcdet", heads=(("pedestrian",), ("car",)), class_names=("car", "pedestrian")))
    assert torch.equal(boxes, before) and cls.tolist() == [0]


def test_mmdet3d_class_order_mismatch_warns():
    p = params("mmdet3d", heads=(("car",), ("pedestrian",)), class_names=("pedestrian", "car"))
    assert p.warnings and "label index" in p.warnings[0]
    # label 0 (pedestrian in class_names) is drawn in task 0, the car task: mmdet3d matches by index.
    res = heatmap_targets(torch.tensor([box(0.0, 0.0, 0.7, 0.7)]), ["pedestrian"], p)
    assert res.head.tolist() == [0] and res.heads[0].heatmap.max().item() == 1.0


# ------------------------------------------------------------------------------------------------------------------
# Bad input: one clear line
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "boxes,cls,match",
    [
        (torch.zeros(2, 5), ["car", "car"], "gt_boxes has shape"),
        (torch.zeros(2, 7), ["car"], "gt_class has shape"),
        (torch.zeros(1, 7), ["lorry"], "'lorry' is not in class_names"),
        (torch.zeros(1, 7), np.array([12]), "index 12 is outside class_names"),
        (torch.tensor([[float("nan"), 0, 0, 1, 1, 1, 0]]), ["car"], "row 0 has a non-finite"),
    ],
)
def test_bad_input_raises_one_line_data_error(boxes, cls, match):
    with pytest.raises(DataError, match=match) as e:
        heatmap_targets(boxes, cls, params())
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(heads=(("car",),)), "heads cover 1 classes"),
        (dict(heads=(("car",), ("car",))), "more than one head"),
        (dict(variant="tf"), "variant 'tf' is unknown"),
        (dict(gaussian_overlap=1.5), "gaussian_overlap"),
    ],
)
def test_bad_params_raise_config_error(kw, match):
    kw.setdefault("heads", HEADS)
    with pytest.raises(ConfigError, match=match) as e:
        HeatmapParams(PCR, VOX, 8, kw.pop("heads"), NUS, **kw)
    assert "\n" not in str(e.value)
