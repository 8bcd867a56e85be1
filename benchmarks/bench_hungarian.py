#!/usr/bin/env python
"""Benchmark the Hungarian query replay: frames/s of `assignaudit.assign.hungarian.replay_frame`.

Synthetic DETR3D-scale frames: ``--queries`` queries (900) x ``--layers`` decoder layers (6) x ``--gt`` GT (40) of
10 classes. Queries are jittered copies of the GT plus uniform clutter (realistic costs are slower for the solver
than uniform random ones). Target (issue 6): >= 200 frames/s with the DETR3D cost.

    python benchmarks/bench_hungarian.py                  # 200 frames, detr3d and transfusion costs
    python benchmarks/bench_hungarian.py --frames 50      # a quick check
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assignaudit.assign.hungarian import QueryFrame, normalize_bbox, replay_frame  # noqa: E402
from assignaudit.sources.base import Frame  # noqa: E402

CLASSES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
           "pedestrian", "traffic_cone")


def make_frame(rng: np.random.Generator, i: int, n_q: int, n_l: int, n_gt: int) -> tuple[QueryFrame, Frame]:
    gt = np.column_stack([rng.uniform(-50, 50, n_gt), rng.uniform(-50, 50, n_gt), rng.uniform(-2, 0, n_gt),
                          rng.uniform(0.5, 10, n_gt), rng.uniform(0.5, 3, n_gt), rng.uniform(1, 3, n_gt),
                          rng.uniform(-np.pi, np.pi, n_gt), rng.normal(0, 3, n_gt), rng.normal(0, 3, n_gt)])
    enc = normalize_bbox(torch.from_numpy(gt)).numpy()
    boxes = np.empty((n_l, n_q, 10), dtype=np.float32)
    src = rng.integers(0, n_gt, size=(n_l, n_q))
    boxes[:] = enc[src] + rng.normal(0, 0.5, size=(n_l, n_q, 10))
    clutter = rng.random((n_l, n_q)) < 0.7
    boxes[..., 0] = np.where(clutter, rng.uniform(-54, 54, (n_l, n_q)), boxes[..., 0])
    boxes[..., 1] = np.where(clutter, rng.uniform(-54, 54, (n_l, n_q)), boxes[..., 1])
    logits = rng.normal(-3, 2, size=(n_l, n_q, len(CLASSES))).astype(np.float32)
    token = f"s{i}"
    classes = np.array([CLASSES[c] for c in rng.integers(0, len(CLASSES), n_gt)], dtype=object)
    none = np.full(n_gt, None, dtype=object)
    frame = Frame(token, gt, classes, classes, none, none, np.full(n_gt, -1), np.full(n_gt, -1))
    return QueryFrame(token, boxes, logits), frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--queries", type=int, default=900)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--gt", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    frames = [make_frame(rng, i, args.queries, args.layers, args.gt) for i in range(args.frames)]
    for cost in ("detr3d", "transfusion"):
        kw = {"point_cloud_range": (-54, -54, -5, 54, 54, 3)} if cost == "transfusion" else {}
        replay_frame(*frames[0], CLASSES, cost, **kw)  # warm-up
        t0 = time.perf_counter()
        useless = 0
        for qf, fr in frames:
            useless += int(replay_frame(qf, fr, CLASSES, cost, **kw).useless.sum())
        dt = time.perf_counter() - t0
        print(f"{cost:12s} {args.frames} frames ({args.queries} queries x {args.layers} layers x {args.gt} GT): "
              f"{args.frames / dt:8.1f} frames/s  ({1e3 * dt / args.frames:.2f} ms/frame; useless matches {useless})")


if __name__ == "__main__":
    main()
