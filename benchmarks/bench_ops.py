"""Benchmark of `assignaudit.ops`: rotated IoU (dense, sparse), nearest-BEV IoU and NMS, vs a shapely baseline.

Run: ``python benchmarks/bench_ops.py [--quick] [--threads N]``. One run prints every figure; timings are the best
of a few repeats (wall clock, this machine is shared, so expect noise). The shapely baseline is one
``Polygon.intersection(...).area`` per pair in a Python loop, timed on a subsample and extrapolated.

Scenarios:
* pcdet layout: 40 nuScenes-like GT (all ten classes) vs the OpenPCDet nuScenes PointPillars multihead anchors
  (128 x 128 grid, pitch 0.806299 m, rotations 0 / 1.57, ten classes = 327,680 anchors), class-agnostic;
* 5000 random boxes self-IoU (100 m x 100 m);
* nms_bev on 1000 and 5000 clustered boxes (detections around 60 / 300 objects).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import shapely
import torch

from assignaudit.ops import (
    box_iou_bev,
    box_iou_bev_sparse,
    box_iou_nearest_bev,
    nms_bev,
)

# (dx, dy, dz, centre z): spec §11.1
PCDET_ANCHORS = [
    (4.63, 1.97, 1.74, -0.080), (6.93, 2.51, 2.84, 0.820), (6.37, 2.85, 3.19, 1.370), (10.5, 2.94, 3.47, 1.650),
    (12.29, 2.90, 3.87, 2.050), (0.50, 2.53, 0.98, -0.840), (2.11, 0.77, 1.47, -0.350), (1.70, 0.60, 1.28, -0.540),
    (0.73, 0.67, 1.77, -0.050), (0.41, 0.41, 1.07, -0.750),
]


def pcdet_anchors() -> torch.Tensor:
    xs = -51.2 + 0.806299 * torch.arange(128, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    out = []
    for dx, dy, dz, z in PCDET_ANCHORS:
        for rot in (0.0, 1.57):
            a = torch.zeros(128 * 128, 7, dtype=torch.float64)
            a[:, 0], a[:, 1], a[:, 2] = gx.flatten(), gy.flatten(), z
            a[:, 3:6] = torch.tensor((dx, dy, dz), dtype=torch.float64)
            a[:, 6] = rot
            out.append(a)
    return torch.cat(out).float()  # [327680, 7]


def nuscenes_like_gt(rng: np.random.Generator, n: int) -> torch.Tensor:
    cls = rng.integers(0, 10, n)
    g = np.zeros((n, 7))
    g[:, 0:2] = rng.uniform(-50, 50, (n, 2))
    for k in range(n):
        dx, dy, dz, z = PCDET_ANCHORS[cls[k]]
        g[k, 3:6] = np.array((dx, dy, dz)) * rng.uniform(0.85, 1.15, 3)
        g[k, 2] = z + rng.normal(0, 0.2)
    g[:, 6] = rng.uniform(-math.pi, math.pi, n)
    return torch.tensor(g, dtype=torch.float32)


def random_boxes(rng: np.random.Generator, n: int, spread: float = 50.0) -> torch.Tensor:
    b = np.zeros((n, 7))
    b[:, 0:2] = rng.uniform(-spread, spread, (n, 2))
    b[:, 3:6] = rng.uniform(0.4, 5.0, (n, 3))
    b[:, 6] = rng.uniform(-math.pi, math.pi, n)
    return torch.tensor(b, dtype=torch.float32)


def clustered_boxes(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    objects = nuscenes_like_gt(rng, max(n // 16, 1)).numpy()
    which = rng.integers(0, objects.shape[0], n)
    b = objects[which].copy()
    b[:, 0:2] += rng.normal(0, 0.4, (n, 2))
    b[:, 3:6] *= rng.uniform(0.9, 1.1, (n, 3))
    b[:, 6] += rng.normal(0, 0.2, n)
    return torch.tensor(b, dtype=torch.float32), torch.tensor(rng.uniform(0, 1, n), dtype=torch.float32)


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def shapely_seconds_per_pair(a: torch.Tensor, b: torch.Tensor, n: int) -> float:
    def poly(x):
        x = x.double().numpy()
        c, s = math.cos(x[6]), math.sin(x[6])
        pts = [(x[0] + c * u * x[3] / 2 - s * v * x[4] / 2, x[1] + s * u * x[3] / 2 + c * v * x[4] / 2)
               for u, v in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
        return shapely.Polygon(pts)

    pa, pb = [poly(x) for x in a[:n]], [poly(x) for x in b[:n]]
    t = time.perf_counter()
    for p, q in zip(pa, pb):
        inter = p.intersection(q).area
        _ = inter / max(p.area + q.area - inter, 1e-8)
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller shapely subsample")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reps = 1 if args.quick else 3
    n_shapely = 500 if args.quick else 3000
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, quick={args.quick}")

    # --- pcdet layout -----------------------------------------------------------------------------------------
    anchors = pcdet_anchors()
    gt = nuscenes_like_gt(rng, 40)
    n_pairs = gt.shape[0] * anchors.shape[0]
    ia, ib, v = box_iou_bev_sparse(gt, anchors)
    t_sparse = best_of(lambda: box_iou_bev_sparse(gt, anchors), reps)
    t_dense = best_of(lambda: box_iou_bev(gt, anchors), reps)
    t_near = best_of(lambda: box_iou_nearest_bev(gt, anchors), reps)
    sh = shapely_seconds_per_pair(gt[torch.randint(0, 40, (n_shapely,))],
                                  anchors[torch.randint(0, anchors.shape[0], (n_shapely,))], n_shapely)
    print(f"\n[pcdet layout] 40 GT x {anchors.shape[0]:,} anchors = {n_pairs:,} pairs, {v.numel():,} overlapping")
    print(f"  box_iou_bev_sparse   {t_sparse * 1e3:8.2f} ms   {n_pairs / t_sparse / 1e6:8.1f} M pairs/s (dense-equivalent)")
    print(f"  box_iou_bev (dense)  {t_dense * 1e3:8.2f} ms   {n_pairs / t_dense / 1e6:8.1f} M pairs/s")
    print(f"  box_iou_nearest_bev  {t_near * 1e3:8.2f} ms   {n_pairs / t_near / 1e6:8.1f} M pairs/s (all pairs, dense)")
    print(f"  shapely per pair     {sh * 1e6:8.2f} us/pair -> {sh * n_pairs:8.2f} s extrapolated for all pairs")
    print(f"  speedup vs shapely: sparse {sh * n_pairs / t_sparse:,.0f}x, dense {sh * n_pairs / t_dense:,.0f}x")

    # --- 5000 random boxes self-IoU ---------------------------------------------------------------------------
    boxes = random_boxes(rng, 5000)
    n_pairs = 5000 * 5000
    ia, ib, v = box_iou_bev_sparse(boxes, boxes)
    t_sparse = best_of(lambda: box_iou_bev_sparse(boxes, boxes), reps)
    t_dense = best_of(lambda: box_iou_bev(boxes, boxes), reps)
    sh = shapely_seconds_per_pair(boxes[torch.randint(0, 5000, (n_shapely,))],
                                  boxes[torch.randint(0, 5000, (n_shapely,))], n_shapely)
    print(f"\n[5000 random boxes, self] {n_pairs:,} pairs, {v.numel():,} overlapping")
    print(f"  box_iou_bev_sparse   {t_sparse * 1e3:8.2f} ms   {n_pairs / t_sparse / 1e6:8.1f} M pairs/s (dense-equivalent)")
    print(f"  box_iou_bev (dense)  {t_dense * 1e3:8.2f} ms   {n_pairs / t_dense / 1e6:8.1f} M pairs/s")
    print(f"  shapely per pair     {sh * 1e6:8.2f} us/pair -> {sh * n_pairs:8.2f} s extrapolated")
    print(f"  speedup vs shapely: sparse {sh * n_pairs / t_sparse:,.0f}x")

    # --- NMS ----------------------------------------------------------------------------------------------------
    print("\n[nms_bev, clustered boxes, threshold 0.2]")
    for n in (1000, 5000):
        b, s = clustered_boxes(rng, n)
        kept = nms_bev(b, s, 0.2)
        t = best_of(lambda: nms_bev(b, s, 0.2), reps)
        # Shapely baseline: greedy loop, one intersection per (kept, candidate) pair, extrapolated from per-pair cost.
        sh = shapely_seconds_per_pair(b[torch.randint(0, n, (n_shapely,))], b[torch.randint(0, n, (n_shapely,))],
                                      n_shapely)
        # A plain greedy loop tests each box against the boxes kept before it: sum over ranks of kept-so-far.
        is_kept = torch.zeros(n, dtype=torch.bool)
        is_kept[kept] = True
        ranked = is_kept[torch.sort(s, descending=True, stable=True).indices].long()
        est_pairs = int((torch.cumsum(ranked, 0) - ranked).sum())
        print(f"  n={n:5d}: {t * 1e3:8.2f} ms, kept {kept.numel():5d}; shapely greedy ~{sh * est_pairs:7.2f} s "
              f"({sh * est_pairs / t:,.0f}x)")


if __name__ == "__main__":
    main()
