"""Benchmark: anchor assignment frames/s on nuScenes-scale synthetic frames (40-50 GT per frame).

Compares, in one run:
  * ours: sparse candidates + scatter reductions (`assignaudit.assign.assign_frame`) plus the per-class/band tallies
    (summing the `FrameAssignment` arrays), on
    - the OpenPCDet nuScenes PointPillars multihead layout (327,680 anchors), pcdet and mmdet per-class rules;
    - the mmdetection3d SECFPN nuScenes PointPillars layout (560,000 anchors: 7 sizes x 2 rotations x 200 x 200,
      aligned generator, one class-agnostic MaxIoU assigner, pos 0.6 / neg 0.3 / min_pos 0.3, nearest-BEV with the
      mmdet3d snapping convention; built here from assignment-semantics §11.3 (b)); target >= 80 frames/s on one
      torch thread;
  * OpenPCDet ATSS (`Framework.ATSS`, rotated BEV IoU with the kernel margin, topk 9) on the same layout and frames,
    against the previous dense-distance path (per set: a dense [A_set, K] 3D distance matrix + topk, and the margin
    IoU of every pair whose rectangles overlap; the rest of the rule is cheap and left out of that timing);
  * (a) a shapely + STRtree assigner (nearest-BEV rectangles as polygons, tree query per GT, same pcdet rule);
  * (b) dense torch nearest-BEV IoU without pruning (anchors x GT per class, same pcdet rule; for the mmdet3d layout
    one [560,000, K] matrix and the same class-agnostic MaxIoU rule).

Usage: ``python benchmarks/bench_assign.py [--frames 200] [--threads 1]``. Timings on shared CPUs are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from assignaudit import ops
from assignaudit.assign import AnchorLayout, AnchorSet, AssignerParams, Framework, assign_frame, generate_anchors
from assignaudit.assign.params import IouKind
from assignaudit.bands import Bands

# mmdetection3d nuScenes class order (configs/_base_/datasets/nus-3d.py) with mean (dx, dy, dz) and centre z for the
# synthetic GT (the §11.1 anchor sizes; bottom + dz / 2).
MM3D_CLASSES = {
    "car": ((4.63, 1.97, 1.74), -0.08), "truck": ((6.93, 2.51, 2.84), 0.82), "trailer": ((12.29, 2.90, 3.87), 2.05),
    "bus": ((10.5, 2.94, 3.47), 1.65), "construction_vehicle": ((6.37, 2.85, 3.19), 1.37),
    "bicycle": ((1.70, 0.60, 1.28), -0.54), "motorcycle": ((2.11, 0.77, 1.47), -0.35),
    "pedestrian": ((0.73, 0.67, 1.77), -0.05), "traffic_cone": ((0.41, 0.41, 1.07), -0.75),
    "barrier": ((0.50, 2.53, 0.98), -0.84),
}
# §11.3 (b) pointpillars_hv_secfpn_sbn-all_8xb4-2x_nus-3d.py: (size slot, (x, y, z) size, bottom z of its range)
MM3D_SECFPN = [
    ("car", (4.60718145, 1.95017717, 1.72270761), -1.80032795),
    ("truck", (6.73778078, 2.4560939, 2.73004906), -1.74440365),
    ("trailer", (12.01320693, 2.87427237, 3.81509561), -1.68526504),
    ("bicycle", (1.68452161, 0.60058911, 1.27192197), -1.67339111),
    ("pedestrian", (0.7256437, 0.66344886, 1.75748069), -1.61785072),
    ("traffic_cone", (0.40359262, 0.39694519, 1.06232151), -1.80984986),
    ("barrier", (0.48578221, 2.49008838, 0.98297065), -1.763965),
]
MM3D_AGNOSTIC = AssignerParams(framework=Framework.MMDET, class_agnostic=True, min_pos_iou=0.3,
                               nearest_convention="mmdet3d")


def mmdet3d_secfpn_layout() -> AnchorLayout:
    """560,000 anchors: PCR +-50 m, pillars 0.25 m -> 400 x 400, SECFPN output stride 2 -> 200 x 200; one ranges entry
    per size (x/y -49.6 .. 49.6, z = the size's bottom), AlignedAnchor3DRangeGenerator, rotations [0, 1.57]."""
    sets = tuple(
        AnchorSet(name, (size,), (0.0, 1.57), (), 0.6, 0.3, feature_map_stride=2, min_pos_iou=0.3,
                  anchor_range=(-49.6, -49.6, bottom, 49.6, 49.6, bottom))
        for name, size, bottom in MM3D_SECFPN
    )
    return AnchorLayout((-50.0, -50.0, -5.0, 50.0, 50.0, 3.0), (0.25, 0.25, 8.0), sets, generator="mmdet3d_aligned")

# nuScenes train class mix (approximate share of annotations) and the §11.1 anchor sizes as mean sizes.
CLASS_MIX = {
    "car": 0.43, "truck": 0.08, "construction_vehicle": 0.013, "bus": 0.014, "trailer": 0.02, "barrier": 0.13,
    "motorcycle": 0.011, "bicycle": 0.01, "pedestrian": 0.19, "traffic_cone": 0.09,
}


def nuscenes_layout() -> AnchorLayout:
    try:
        from assignaudit.config import load_config  # the default preset (pcdet nuScenes PP multihead)

        return load_config().anchors
    except Exception:  # config layer not available: the §11.1 numbers by hand
        nus = [
            ("car", (4.63, 1.97, 1.74), -0.95, 0.6, 0.45), ("truck", (6.93, 2.51, 2.84), -0.6, 0.55, 0.4),
            ("construction_vehicle", (6.37, 2.85, 3.19), -0.225, 0.5, 0.35),
            ("bus", (10.5, 2.94, 3.47), -0.085, 0.55, 0.4), ("trailer", (12.29, 2.90, 3.87), 0.115, 0.5, 0.35),
            ("barrier", (0.50, 2.53, 0.98), -1.33, 0.55, 0.4), ("motorcycle", (2.11, 0.77, 1.47), -1.085, 0.5, 0.3),
            ("bicycle", (1.70, 0.60, 1.28), -1.18, 0.5, 0.35), ("pedestrian", (0.73, 0.67, 1.77), -0.935, 0.6, 0.4),
            ("traffic_cone", (0.41, 0.41, 1.07), -1.285, 0.6, 0.4),
        ]
        sets = tuple(AnchorSet(n, (s,), (0.0, 1.57), (b,), m, u, feature_map_stride=4) for n, s, b, m, u in nus)
        return AnchorLayout((-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), (0.2, 0.2, 8.0), sets)


def synthetic_frames(layout: AnchorLayout, n: int, seed: int = 0):
    """GT of the layout's classes (one per anchor set): (boxes [K, 7], class = set index [K])."""
    names = [s.class_name for s in layout.anchor_sets]
    sizes = np.array([s.sizes[0] for s in layout.anchor_sets])
    bottoms = np.array([s.bottom_heights[0] for s in layout.anchor_sets])
    return _frames(names, sizes, bottoms + sizes[:, 2] / 2, n, seed)


def _frames(names, sizes: np.ndarray, z_centre: np.ndarray, n: int, seed: int):
    rng = np.random.default_rng(seed)
    p = np.array([CLASS_MIX.get(c, 0.01) for c in names])
    p = p / p.sum()
    frames = []
    for _ in range(n):
        k = int(rng.integers(40, 51))
        cls = rng.choice(len(names), size=k, p=p)
        # denser near the ego: radius ~ |N(0, 22)| clipped to the range, uniform bearing
        r = np.clip(np.abs(rng.normal(0, 22, k)), 2, 50)
        th = rng.uniform(-np.pi, np.pi, k)
        dims = sizes[cls] * rng.uniform(0.85, 1.15, (k, 3))
        z = z_centre[cls] + rng.normal(0, 0.2, k)
        yaw = rng.uniform(-np.pi, np.pi, k)
        boxes = np.c_[r * np.cos(th), r * np.sin(th), z, dims, yaw]
        frames.append((torch.tensor(boxes, dtype=torch.float32), torch.tensor(cls, dtype=torch.int64)))
    return frames


def tally(res, gt_set: np.ndarray, gt_band: np.ndarray, num_sets: int, num_bands: int) -> np.ndarray:
    """Per class x band: num_gt, num_pos (by the credited GT's band), num_neg, num_ignore, num_gt_zero_pos."""
    out = np.zeros((num_sets, num_bands, 5), dtype=np.int64)
    ok = gt_set >= 0
    key = gt_set[ok] * num_bands + gt_band[ok]
    out[..., 0] = np.bincount(key, minlength=num_sets * num_bands).reshape(num_sets, num_bands)
    pk = gt_set[res.pos_gt_index] * num_bands + gt_band[res.pos_gt_index]
    out[..., 1] = np.bincount(pk, minlength=num_sets * num_bands).reshape(num_sets, num_bands)
    out[..., 2] = res.num_neg_per_set_band
    out[..., 3] = res.num_ignore_per_set_band
    zk = key[res.gt_num_pos[ok] == 0]
    out[..., 4] = np.bincount(zk, minlength=num_sets * num_bands).reshape(num_sets, num_bands)
    return out


def pcdet_rule_dense(m: torch.Tensor, t_pos: float, t_neg: float):
    """The AxisAligned rule on a dense [N, K] matrix -> (num_pos, num_neg)."""
    a_max, a_arg = m.max(dim=1)
    g_max = m.max(dim=0).values
    g_max = torch.where(g_max == 0, torch.full_like(g_max, -1), g_max)
    forced = (m == g_max[None]).any(dim=1)
    pos = forced | (a_max >= t_pos)
    neg = (a_max < t_neg) & ~forced
    return int(pos.sum()), int(neg.sum())


def run_dense(anchors, frames, layout):
    from assignaudit import ops

    iou = ops.box_iou_nearest_bev
    slices = anchors.set_slices
    for gt, gs in frames:
        for s, aset in enumerate(layout.anchor_sets):
            g = gt[gs == s]
            if g.shape[0]:
                pcdet_rule_dense(iou(anchors.boxes[slices[s]], g, "pcdet"), aset.matched_threshold,
                                 aset.unmatched_threshold)


def maxiou_agnostic_dense(m: torch.Tensor, t_pos: float, t_neg: float, min_pos: float):
    """mmdet MaxIoUAssigner on a dense [N, K] matrix, class-agnostic, gt_max_assign_all -> (num_pos, num_neg)."""
    a_max = m.max(dim=1).values
    g_max = m.max(dim=0).values
    hit = (m == g_max[None]) & (g_max >= min_pos)[None]  # [N, K] low-quality matches; the last GT wins
    forced = hit.any(dim=1)
    pos = forced | (a_max >= t_pos)
    neg = ~pos & (a_max < t_neg)
    return int(pos.sum()), int(neg.sum())


def run_dense_agnostic(anchors, frames):
    from assignaudit import ops

    for gt, _ in frames:
        m = ops.box_iou_nearest_bev(anchors.boxes, gt, "mmdet3d")  # [560,000, K]
        maxiou_agnostic_dense(m, 0.6, 0.3, 0.3)


def bench_mmdet3d_agnostic(args, bands: Bands) -> None:
    layout = mmdet3d_secfpn_layout()
    t0 = time.perf_counter()
    anchors = generate_anchors(layout, bands=bands)
    print(f"\nmmdet3d SECFPN nuScenes: {anchors.num_anchors:,} anchors ({len(layout.anchor_sets)} sizes x 2 rotations "
          f"x 200 x 200), generated in {(time.perf_counter() - t0) * 1e3:.0f} ms; one class-agnostic assigner")
    names = list(MM3D_CLASSES)
    sizes = np.array([MM3D_CLASSES[c][0] for c in names])
    z = np.array([MM3D_CLASSES[c][1] for c in names])
    frames = _frames(names, sizes, z, args.frames, seed=1)
    slot = {s.class_name: i for i, s in enumerate(layout.anchor_sets)}
    set_of_class = np.array([slot.get(c, -1) for c in names])  # bus, construction_vehicle, motorcycle: no slot
    nb, nc = len(bands), len(names)
    for gt, cls in frames[:5]:  # warm-up
        assign_frame(anchors, gt, torch.from_numpy(set_of_class[cls.numpy()]), MM3D_AGNOSTIC, bands)
    t0 = time.perf_counter()
    total = np.zeros((nc, nb, 5), dtype=np.int64)
    neg = np.zeros((anchors.num_sets, nb), dtype=np.int64)
    cands = 0
    for gt, cls in frames:
        c = cls.numpy()
        res = assign_frame(anchors, gt, torch.from_numpy(set_of_class[c]), MM3D_AGNOSTIC, bands)
        gt_band = bands.index(np.hypot(gt[:, 0].numpy(), gt[:, 1].numpy()))
        total += tally_by_class(res, c, gt_band, nc, nb)
        neg += res.num_neg_per_set_band + res.num_ignore_per_set_band
        cands += res.num_candidates
    dt = (time.perf_counter() - t0) / len(frames)
    print(f"ours [mmdet class-agnostic, 560k]: {dt * 1e3:.2f} ms/frame = {1 / dt:.0f} frames/s (assign + tallies; "
          f"target >= 80); {cands / len(frames):.0f} candidate pairs/frame; pos/frame "
          f"{total[..., 1].sum() / len(frames):.1f}; GT with 0 pos/frame {total[..., 4].sum() / len(frames):.2f}")
    base = frames[: args.baseline_frames]
    t0 = time.perf_counter()
    run_dense_agnostic(anchors, base)
    dense = (time.perf_counter() - t0) / len(base)
    print(f"(b) dense torch nearest-BEV IoU [560,000 x K] + the same rule: {dense * 1e3:.1f} ms/frame "
          f"-> ours is {dense / dt:.1f}x faster")


def tally_by_class(res, gt_class: np.ndarray, gt_band: np.ndarray, num_classes: int, num_bands: int) -> np.ndarray:
    """Per class x band: num_gt, num_pos (credited GT's class and band), 0, 0, num_gt_zero_pos (anchor-set negatives
    and ignores are summed separately: a class-agnostic layout's sets are sizes, not classes)."""
    out = np.zeros((num_classes, num_bands, 5), dtype=np.int64)
    key = gt_class * num_bands + gt_band
    size = num_classes * num_bands
    out[..., 0] = np.bincount(key, minlength=size).reshape(num_classes, num_bands)
    out[..., 1] = np.bincount(key[res.pos_gt_index], minlength=size).reshape(num_classes, num_bands)
    out[..., 4] = np.bincount(key[res.gt_num_pos == 0], minlength=size).reshape(num_classes, num_bands)
    return out


def build_strtree(anchors):
    import shapely
    from shapely.strtree import STRtree

    xyxy = anchors.xyxy["pcdet"].double().numpy()
    polys = shapely.box(xyxy[:, 0], xyxy[:, 1], xyxy[:, 2], xyxy[:, 3])
    return STRtree(polys), polys


def run_shapely(tree, polys, anchors, frames, layout):
    import shapely

    from assignaudit import ops

    set_index = anchors.set_index.numpy()
    for gt, gs in frames:
        g = ops.nearest_bev_xyxy(gt, "pcdet").double().numpy()
        gpolys = shapely.box(g[:, 0], g[:, 1], g[:, 2], g[:, 3])
        gi, ai = tree.query(gpolys, predicate="intersects")
        same = set_index[ai] == gs.numpy()[gi]
        gi, ai = gi[same], ai[same]
        inter = shapely.area(shapely.intersection(gpolys[gi], polys[ai]))
        union = shapely.area(gpolys[gi]) + shapely.area(polys[ai]) - inter
        iou = inter / np.maximum(union, 1e-6)
        # same rule on the sparse pairs (numpy): a_max per anchor, g_max per GT, forced ties
        k = g.shape[0]
        g_max = np.zeros(k)
        np.maximum.at(g_max, gi, iou)
        g_eff = np.where(g_max == 0, -1, g_max)
        forced = np.unique(ai[iou == g_eff[gi]])
        a_max = np.zeros(anchors.num_anchors)
        np.maximum.at(a_max, ai, iou)
        _ = forced, a_max


def atss_previous_dense(anchors, frames, topk: int = 9) -> None:
    """The previous ATSS path's two dominant steps, one anchor set at a time: the dense [A_set, K] 3D distance matrix
    with topk and the (gt, distance, anchor) ordering, and the margin IoU of every overlapping pair (forced match)."""
    sets = [torch.nonzero(anchors.set_index == s)[:, 0] for s in range(anchors.num_sets)]
    for gt, _ in frames:
        for idx in sets:
            a = anchors.boxes[idx]
            dist = (a[:, None, 0:3] - gt[None, :, 0:3]).norm(dim=-1)
            kth = dist.topk(topk, dim=0, largest=False).values[-1]
            ik, ia = (dist <= kth[None, :]).t().nonzero(as_tuple=True)
            perm = torch.argsort(dist[ia, ik], stable=True)
            perm = perm[torch.argsort(ik[perm], stable=True)]
            s_a, s_g, s_iou = ops.box_iou_bev_sparse(a, gt, min_iou=0.0, margin_compat=True)
            torch.zeros(gt.shape[0]).scatter_reduce(0, s_g, s_iou, reduce="amax")


def bench_atss(args, anchors, frames, bands: Bands) -> None:
    params = AssignerParams(framework=Framework.ATSS, iou=IouKind.BEV, atss_topk=9)
    for gt, gs in frames[:3]:  # warm-up (builds the cached AtssAnchorIndex)
        assign_frame(anchors, gt, gs, params, bands)
    t0 = time.perf_counter()
    pairs = 0
    for gt, gs in frames:
        pairs += assign_frame(anchors, gt, gs, params, bands).num_candidates
    dt = (time.perf_counter() - t0) / len(frames)
    base = frames[: max(args.baseline_frames, 1)]
    t0 = time.perf_counter()
    atss_previous_dense(anchors, base)
    prev = (time.perf_counter() - t0) / len(base)
    print(f"ours [atss, window top-k + pruned IoU]: {dt * 1e3:.2f} ms/frame = {1 / dt:.0f} frames/s; "
          f"{pairs / len(frames):.0f} IoU pairs/frame; previous dense-distance path {prev * 1e3:.1f} ms/frame "
          f"-> {prev / dt:.1f}x faster")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    # The sparse path is ~100 small ops per frame: intra-op threads only add synchronisation (and collapse under
    # CPU contention); scale with worker processes instead (performance-facts.md).
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave torch's default)")
    ap.add_argument("--baseline-frames", type=int, default=3)
    ap.add_argument("--only", choices=("all", "pcdet", "mmdet3d"), default="all",
                    help="which layout(s) to run: the pcdet multihead one, the mmdet3d 560k one, or both")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bands = Bands()
    if args.only in ("all", "pcdet"):
        bench_pcdet(args, bands)
    if args.only in ("all", "mmdet3d"):
        bench_mmdet3d_agnostic(args, bands)


def bench_pcdet(args, bands: Bands) -> None:
    layout = nuscenes_layout()
    t0 = time.perf_counter()
    anchors = generate_anchors(layout, bands=bands)
    print(f"anchors: {anchors.num_anchors:,} in {len(layout.anchor_sets)} sets, generated in "
          f"{(time.perf_counter() - t0) * 1e3:.0f} ms; torch threads {torch.get_num_threads()}")
    frames = synthetic_frames(layout, args.frames)
    nb, ns = len(bands), anchors.num_sets
    rates = {}
    for name, params in (("pcdet", AssignerParams(framework=Framework.PCDET)),
                         ("mmdet per-class", AssignerParams(framework=Framework.MMDET, min_pos_iou=0.3))):
        for gt, gs in frames[:5]:  # warm-up
            assign_frame(anchors, gt, gs, params, bands)
        t0 = time.perf_counter()
        total = np.zeros((ns, nb, 5), dtype=np.int64)
        cands = 0
        for gt, gs in frames:
            res = assign_frame(anchors, gt, gs, params, bands)
            gt_band = bands.index(np.hypot(gt[:, 0].numpy(), gt[:, 1].numpy()))
            total += tally(res, gs.numpy(), gt_band, ns, nb)
            cands += res.num_candidates
        dt = (time.perf_counter() - t0) / len(frames)
        rates[name] = dt
        print(f"ours [{name}]: {dt * 1e3:.2f} ms/frame = {1 / dt:.0f} frames/s (assign + tallies); "
              f"{cands / len(frames):.0f} candidate pairs/frame; pos/frame {total[..., 1].sum() / len(frames):.1f}")
    bench_atss(args, anchors, frames[: max(args.frames // 4, 5)], bands)

    base = frames[: args.baseline_frames]
    t0 = time.perf_counter()
    run_dense(anchors, base, layout)
    dense = (time.perf_counter() - t0) / len(base)
    print(f"(b) dense torch nearest-BEV IoU, no pruning: {dense * 1e3:.1f} ms/frame "
          f"-> ours is {dense / rates['pcdet']:.1f}x faster")
    try:
        t0 = time.perf_counter()
        tree, polys = build_strtree(anchors)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_shapely(tree, polys, anchors, base, layout)
        shp = (time.perf_counter() - t0) / len(base)
        print(f"(a) shapely + STRtree (tree built once in {build:.1f} s): {shp * 1e3:.1f} ms/frame "
              f"-> ours is {shp / rates['pcdet']:.1f}x faster")
    except ImportError:
        print("(a) shapely not installed: skipped")


if __name__ == "__main__":
    main()
