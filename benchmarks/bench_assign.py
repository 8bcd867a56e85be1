"""Benchmark: anchor assignment frames/s on nuScenes-scale synthetic frames (327,680 anchors, 40-50 GT).

Compares, in one run:
  * ours: sparse candidates + scatter reductions (`assignaudit.assign.assign_frame`) plus the per-class/band tallies
    (summing the `FrameAssignment` arrays), both frameworks;
  * (a) a shapely + STRtree assigner (nearest-BEV rectangles as polygons, tree query per GT, same pcdet rule);
  * (b) dense torch nearest-BEV IoU without pruning (anchors x GT per class, same pcdet rule).

Usage: ``python benchmarks/bench_assign.py [--frames 200] [--threads 1]``. Timings on shared CPUs are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from assignaudit.assign import AnchorLayout, AnchorSet, AssignerParams, Framework, assign_frame, generate_anchors
from assignaudit.bands import Bands

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
    rng = np.random.default_rng(seed)
    names = [s.class_name for s in layout.anchor_sets]
    p = np.array([CLASS_MIX.get(c, 0.01) for c in names])
    p = p / p.sum()
    sizes = np.array([s.sizes[0] for s in layout.anchor_sets])
    bottoms = np.array([s.bottom_heights[0] for s in layout.anchor_sets])
    frames = []
    for _ in range(n):
        k = int(rng.integers(40, 51))
        cls = rng.choice(len(names), size=k, p=p)
        # denser near the ego: radius ~ |N(0, 22)| clipped to the range, uniform bearing
        r = np.clip(np.abs(rng.normal(0, 22, k)), 2, 50)
        th = rng.uniform(-np.pi, np.pi, k)
        dims = sizes[cls] * rng.uniform(0.85, 1.15, (k, 3))
        z = bottoms[cls] + dims[:, 2] / 2 + rng.normal(0, 0.2, k)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    # The sparse path is ~100 small ops per frame: intra-op threads only add synchronisation (and collapse under
    # CPU contention); scale with worker processes instead (performance-facts.md).
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave torch's default)")
    ap.add_argument("--baseline-frames", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    layout = nuscenes_layout()
    bands = Bands()
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
