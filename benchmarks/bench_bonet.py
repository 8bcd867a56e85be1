"""Benchmark: one frame's 3D-BoNet query replay (`replay_frame(..., "bonet", points=...)`) against the DETR3D
replay of the same dump frame (the baseline: no points), on a KITTI-sized frame.

Frame: K = 20 GT, L = 6 decoder layers x Q queries (300 and 900), N points in range (20k, the crop of a ~120k HDL-64
sweep to the KITTI range; and 60k). Prints ms per frame for both replays and the ratio bonet / detr3d, plus the
cost-matrix part alone (`bonet_cost` on the L x Q AABBs): the near-box path (default) against every
(prediction, point) pair (``dense=True``, the previous implementation; run once), with the largest difference.

Usage: ``python benchmarks/bench_bonet.py [--repeats 3] [--threads 1]``. Timings on shared CPUs are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from assignaudit.assign.bonet import bonet_cost, box_vertices
from assignaudit.assign.hungarian import QueryFrame, decode_query_boxes, replay_frame
from assignaudit.sources.base import Frame


def make(k: int, n_l: int, q: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = np.column_stack([rng.uniform(0, 60, k), rng.uniform(-30, 30, k), rng.uniform(-1.5, -0.5, k),
                         rng.uniform(0.6, 4.5, k), rng.uniform(0.5, 1.9, k), rng.uniform(1.4, 1.9, k),
                         rng.uniform(-np.pi, np.pi, k), np.zeros(k), np.zeros(k)])
    b = np.concatenate([np.repeat(g[:, :7], q // k + 1, 0)[:q] + rng.normal(0, 0.5, (q, 7)) * [1, 1, .1, 0, 0, 0, .3]])
    b[:, 3:6] = np.abs(b[:, 3:6]) + 0.1
    qb = np.column_stack([b[:, 0], b[:, 1], np.log(b[:, 3]), np.log(b[:, 4]), b[:, 2], np.log(b[:, 5]),
                          np.sin(b[:, 6]), np.cos(b[:, 6]), np.zeros(q), np.zeros(q)]).astype(np.float32)
    boxes = np.repeat(qb[None], n_l, 0)
    pts = np.column_stack([rng.uniform(0, 70, n), rng.uniform(-40, 40, n), rng.uniform(-3, 1, n),
                           np.zeros(n)]).astype(np.float32)
    none = np.full(k, None, dtype=object)
    frame = Frame("f", g, np.array(["Car"] * k, dtype=object), none, none, none, np.full(k, -1), np.full(k, -1))
    qf = QueryFrame("f", boxes, rng.normal(0, 1, (n_l, q, 1)).astype(np.float32), "canonical")
    return qf, frame, pts


def timed(fn, repeats: int) -> float:
    fn()
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return 1000 * min(t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch threads {a.threads}; K = 20 GT, L = 6 layers; best of {a.repeats}")
    print(f"{'Q':>5} {'points':>7} {'detr3d ms':>10} {'bonet ms':>9} {'bonet/detr3d':>13} {'cost ms':>8} "
          f"{'dense ms':>9} {'dense/ours':>11} {'max |diff|':>11}")
    for q, n in ((300, 20_000), (900, 20_000), (900, 60_000)):
        qf, frame, pts = make(20, 6, q, n)
        base = timed(lambda: replay_frame(qf, frame, ["Car"], "detr3d"), a.repeats)
        ours = timed(lambda: replay_frame(qf, frame, ["Car"], "bonet", points=pts), a.repeats)
        dec = decode_query_boxes(torch.from_numpy(qf.boxes), "canonical")
        pv = box_vertices(dec.reshape(-1, 9).to(torch.float64))
        gv = box_vertices(torch.from_numpy(frame.boxes_lidar[:, :7]))
        p64 = torch.from_numpy(pts[:, :3]).to(torch.float64)
        cost = timed(lambda: bonet_cost(pv, gv, p64), a.repeats)
        t0 = time.perf_counter()
        dense = bonet_cost(pv, gv, p64, dense=True).total
        t_dense = 1000 * (time.perf_counter() - t0)
        diff = float((bonet_cost(pv, gv, p64).total - dense).abs().max())
        print(f"{q:>5} {n:>7} {base:>10.1f} {ours:>9.1f} {ours / base:>12.1f}x {cost:>8.1f} {t_dense:>9.0f} "
              f"{t_dense / cost:>10.1f}x {diff:>11.1e}")

if __name__ == "__main__":
    main()
