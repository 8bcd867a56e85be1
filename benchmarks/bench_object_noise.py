"""mmdet3d ``ObjectNoise`` replay per frame: `augment.object_noise` vs a literal per-box, per-trial, per-pair loop.

    python benchmarks/bench_object_noise.py [--frames 20] [--boxes 10,30,80] [--num-try 100]

Frames of N car-sized boxes spread like KITTI's (x 0..70 m, y -40..40 m), the KITTI configs' noise (translation std
1, 1, 0.5 m; rotation +-pi/4; 100 trials). ours: one pass over the boxes, each vectorised over its trials and the
other boxes. baseline: the upstream algorithm written as plain loops (corners, edge crossings, containment), as
``noise_per_object_v3_`` runs it under numba; here in Python, so the ratio is against an unjitted loop. Both give
the same boxes (checked). Timings on a shared 2-core machine are noisy; read the ratio.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assignaudit.augment.object_noise import draw_noise, noise_boxes  # noqa: E402
from assignaudit.augment.params import ObjectNoise  # noqa: E402


def _corners(x, y, dx, dy, yaw):
    c, s = math.cos(yaw), math.sin(yaw)
    return [(u * dx * c - v * dy * s + x, u * dx * s + v * dy * c + y)
            for u, v in ((-0.5, -0.5), (-0.5, 0.5), (0.5, 0.5), (0.5, -0.5))]


def _collide(a, b):
    if min(max(p[0] for p in a), max(p[0] for p in b)) - max(min(p[0] for p in a), min(p[0] for p in b)) <= 0:
        return False
    if min(max(p[1] for p in a), max(p[1] for p in b)) - max(min(p[1] for p in a), min(p[1] for p in b)) <= 0:
        return False
    for k in range(4):
        A, B = a[k], a[(k + 1) % 4]
        for m in range(4):
            C, D = b[m], b[(m + 1) % 4]
            if ((D[1] - A[1]) * (C[0] - A[0]) > (C[1] - A[1]) * (D[0] - A[0])) != \
                    ((D[1] - B[1]) * (C[0] - B[0]) > (C[1] - B[1]) * (D[0] - B[0])) and \
                    ((C[1] - A[1]) * (B[0] - A[0]) > (B[1] - A[1]) * (C[0] - A[0])) != \
                    ((D[1] - A[1]) * (B[0] - A[0]) > (B[1] - A[1]) * (D[0] - A[0])):
                return True

    def inside(p, q):
        return all(-(p[k][1] - p[(k + 1) % 4][1]) * (p[k][0] - pt[0]) + (p[k][0] - p[(k + 1) % 4][0])
                   * (p[k][1] - pt[1]) < 0 for pt in q for k in range(4))

    return inside(a, b) or inside(b, a)


def _loop(boxes, loc, rot):
    n, t = loc.shape[:2]
    corners = [_corners(b[0], b[1], b[3], b[4], b[6]) for b in boxes]
    out = boxes.copy()
    for i in range(n):
        for j in range(t):
            trial = _corners(boxes[i, 0] + loc[i, j, 0], boxes[i, 1] + loc[i, j, 1], boxes[i, 3], boxes[i, 4],
                             boxes[i, 6] + rot[i, j])
            if not any(_collide(trial, corners[k]) for k in range(n) if k != i):
                corners[i] = trial
                out[i, :3] += loc[i, j]
                out[i, 6] += rot[i, j]
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--boxes", default="10,30,80")
    ap.add_argument("--num-try", type=int, default=100)
    args = ap.parse_args()
    op = ObjectNoise((1.0, 1.0, 0.5), (-0.78539816, 0.78539816), (0.0, 0.0), args.num_try)
    print(f"{'boxes':>6} {'ours ms/frame':>14} {'loop ms/frame':>14} {'speed-up':>9}")
    for n in (int(v) for v in args.boxes.split(",")):
        rng = np.random.default_rng(n)
        frames = []
        for _ in range(args.frames):
            b = np.zeros((n, 9))
            b[:, 0], b[:, 1] = rng.uniform(0, 70, n), rng.uniform(-40, 40, n)
            b[:, 3:6] = (3.9, 1.6, 1.56)
            b[:, 6] = rng.uniform(-math.pi, math.pi, n)
            frames.append((b, *draw_noise(op, b, np.random.default_rng(len(frames)))))
        t0 = time.perf_counter()
        ours = [noise_boxes(b, loc, rot, grot, False)[0] for b, loc, rot, grot in frames]
        t_ours = (time.perf_counter() - t0) / len(frames)
        t0 = time.perf_counter()
        ref = [_loop(b, loc, rot) for b, loc, rot, _ in frames]
        t_loop = (time.perf_counter() - t0) / len(frames)
        assert all(np.allclose(a, r, atol=1e-9) for a, r in zip(ours, ref)), "results differ"
        print(f"{n:>6} {1e3 * t_ours:>14.2f} {1e3 * t_loop:>14.2f} {t_loop / t_ours:>8.1f}x")


if __name__ == "__main__":
    main()
