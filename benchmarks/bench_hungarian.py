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

from scipy.optimize import linear_sum_assignment  # noqa: E402

from assignaudit.assign.hungarian import (  # noqa: E402
    QueryFrame, decode_query_boxes, normalize_bbox, replay_frame,
)
from assignaudit.ops import box_iou_3d_aligned  # noqa: E402
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


def reference_detr3d(qf: QueryFrame, fr: Frame) -> int:
    """The plain per-layer, per-GT replay (one cost column and one IoU per GT): the baseline the vectorised path is
    measured against. Returns the number of useless matches (IoU < 0.1), which must equal the vectorised count."""
    lookup = {c: i for i, c in enumerate(CLASSES)}
    gt = torch.from_numpy(fr.boxes_lidar).to(torch.float32)
    labels = [lookup[c] for c in fr.detection_class]
    gt_enc = normalize_bbox(gt)
    useless = 0
    for layer in range(qf.boxes.shape[0]):
        pred = torch.from_numpy(qf.boxes[layer])
        p = torch.from_numpy(qf.logits[layer]).sigmoid()
        decoded = decode_query_boxes(pred)
        cols = []
        for k in range(gt.shape[0]):  # one GT at a time
            pk = p[:, labels[k]]
            pos = -(pk + 1e-12).log() * 0.25 * (1 - pk).pow(2)
            neg = -(1 - pk + 1e-12).log() * 0.75 * pk.pow(2)
            cols.append(2.0 * (pos - neg) + 0.25 * (pred[:, :8] - gt_enc[k, :8]).abs().sum(dim=1))
        rows, ks = linear_sum_assignment(torch.stack(cols, dim=1).double().numpy())
        for q, k in zip(rows, ks):  # one IoU per matched GT
            iou = box_iou_3d_aligned(decoded[q:q + 1], gt[k:k + 1])
            useless += int(float(torch.nan_to_num(iou, nan=0.0)[0]) < 0.1)
    return useless


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
        if cost == "detr3d":
            n_ref = max(1, min(args.frames, 20))
            t0 = time.perf_counter()
            ref_useless = sum(reference_detr3d(qf, fr) for qf, fr in frames[:n_ref])
            dt_ref = (time.perf_counter() - t0) / n_ref
            ours_useless = sum(int(replay_frame(qf, fr, CLASSES, cost).useless.sum()) for qf, fr in frames[:n_ref])
            print(f"{'per-GT loop':12s} {n_ref} frames (reference, detr3d cost): {1 / dt_ref:8.1f} frames/s  "
                  f"({1e3 * dt_ref:.2f} ms/frame) -> vectorised is {dt_ref / (dt / args.frames):.1f}x faster; "
                  f"useless matches equal: {ref_useless == ours_useless}")


if __name__ == "__main__":
    main()
