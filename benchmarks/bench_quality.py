"""Benchmark: what `count --quality` adds to the anchor count (target: under 25 % of the anchor count's time).

Runs `run_count` on the bundled nuScenes fixture (24 samples, default preset: pcdet nuScenes PointPillars
multihead, 327,680 anchors, augmentation replay with gt_sampling) without and with ``--quality``, in the same process,
best of ``--repeat`` runs each, and prints both times, the overhead ratio and the time spent in `QualityTally`
(``add`` + ``flush``: the per-positive IoU / EIoU / residual work and the histograms) as a share of the plain count.

Usage: ``python benchmarks/bench_quality.py [--frames 24] [--replays 2] [--repeat 3] [--threads 1]``. Timings on
shared CPUs are noisy; the in-process ``QualityTally`` share is the steadier figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's assignaudit, not an installed one


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--replays", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from assignaudit.config import load_config
    from assignaudit.count import CountOptions, run_count
    from assignaudit.quality import QualityOptions, QualityTally
    from assignaudit.sources.open import open_source

    cfg = load_config(None)
    source = open_source()
    spent = [0.0]
    inside = [False]
    orig_add, orig_flush = QualityTally.add, QualityTally.flush

    def timed_add(self, *a, **k):  # buffering, plus the batch flushes it triggers
        t0 = time.perf_counter()
        inside[0] = True
        try:
            orig_add(self, *a, **k)
        finally:
            inside[0] = False
        spent[0] += time.perf_counter() - t0

    def timed_flush(self):  # the final flush (from the summary), not counted twice
        if inside[0]:
            return orig_flush(self)
        t0 = time.perf_counter()
        orig_flush(self)
        spent[0] += time.perf_counter() - t0

    QualityTally.add, QualityTally.flush = timed_add, timed_flush

    def run(quality):
        opts = CountOptions(seed=0, replays=args.replays, max_frames=args.frames, device=args.device,
                            quality=QualityOptions() if quality else None)
        t0 = time.perf_counter()
        res = run_count(cfg, source, opts, None)
        return time.perf_counter() - t0, res

    run(False)  # warm-up: anchor generation caches, devkit tables
    base, qual, add_share = [], [], []
    n_pos = 0
    for _ in range(args.repeat):
        t, _ = run(False)
        base.append(t)
        spent[0] = 0.0
        t, res = run(True)
        qual.append(t)
        add_share.append(spent[0])
        n_pos = int(res.summary.loc[res.summary.band == "all", "num_pos_quality"].sum())
    b, q, a = min(base), min(qual), min(add_share)
    frames = res.num_frames_assigned  # assignments: frames x replays
    print(f"default preset, {frames // args.replays} frame(s) x {args.replays} replay(s) = {frames} assignments, {n_pos} positives, "
          f"device {args.device}, {args.threads} thread(s), best of {args.repeat}")
    print(f"  count            {b * 1e3:9.1f} ms  ({b / frames * 1e3:.2f} ms / assignment)")
    print(f"  count --quality  {q * 1e3:9.1f} ms  ({q / frames * 1e3:.2f} ms / assignment)")
    print(f"  overhead (end to end)      {100 * (q - b) / b:6.1f} % of the anchor count")
    print(f"  QualityTally add + flush   {100 * a / b:6.1f} % of the anchor count ({a / frames * 1e3:.2f} ms / "
          f"assignment; target < 25 %)")


if __name__ == "__main__":
    main()
