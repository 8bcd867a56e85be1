#!/usr/bin/env python
"""Benchmark `count --workers N` end to end: wall and CPU seconds for 1 vs N workers, and the reports' bytes.

The bundled fixture's 24 frames are replicated (new frame ids) into a box table of ``--frames`` frames; each
``assignaudit count --boxes TABLE --workers N`` runs as its own process (start-up included), once per N in
``--workers`` (default ``1,2``). CPU time is the process's plus its workers' (``RUSAGE_CHILDREN``). Prints frames/s,
the speed-up of each N over the first, and whether every report file is byte-identical to the first run's.

    python benchmarks/bench_workers.py                     # 2,000 frames, 1 vs 2 workers, default preset
    python benchmarks/bench_workers.py --frames 400 --workers 1,2,4 -- --no-augment
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assignaudit.report_set import content_bytes  # noqa: E402  (this checkout's assignaudit)


def replicated_table(n_frames: int, path: Path) -> Path:
    from assignaudit.sources.open import open_source

    frames = list(open_source().frames())
    parts = []
    for k in range(n_frames):
        f = frames[k % len(frames)]
        ok = np.array([c is not None for c in f.detection_class], dtype=bool)
        b = f.boxes_lidar[ok]
        parts.append(pd.DataFrame({
            "frame_id": f"rep{k:06d}-{f.sample_token[:8]}", "class": f.detection_class[ok].astype(str),
            "x": b[:, 0], "y": b[:, 1], "z": b[:, 2], "dx": b[:, 3], "dy": b[:, 4], "dz": b[:, 5], "yaw": b[:, 6],
            "vx": b[:, 7], "vy": b[:, 8], "num_lidar_pts": f.num_lidar_pts[ok]}))
    pd.concat(parts, ignore_index=True).to_parquet(path)
    return path


def run(table: Path, out: Path, workers: int, extra: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # the same relative --out for every run (the command line is in the report metadata), ROOT on the path
    cmd = [sys.executable, "-m", "assignaudit", "count", "--boxes", str(table), "--quiet", "--out", "out",
           "--workers", str(workers), *extra]
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run(cmd, cwd=out, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"count failed ({res.returncode}): {res.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts; the first is the baseline")
    ap.add_argument("extra", nargs="*", help="extra count options after --, e.g. -- --no-augment --config X")
    args = ap.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = replicated_table(args.frames, tmp / "boxes.parquet")
        print(f"{args.frames} frames (fixture replicated), cores available: {len(os.sched_getaffinity(0))}, "
              f"load average {os.getloadavg()[0]:.1f}; count options: {' '.join(args.extra) or '(defaults)'}")
        base = None
        for w in counts:
            out = tmp / f"w{w}"
            wall, cpu = run(table, out, w, args.extra)
            files = content_bytes(out / "out")  # the manifest without its run id
            if base is None:
                base = (wall, files)
            same = files == base[1]
            print(f"--workers {w}: wall {wall:7.2f} s  ({args.frames / wall:7.1f} frames/s)  CPU {cpu:7.2f} s  "
                  f"speed-up {base[0] / wall:5.2f}x  reports byte-identical to --workers {counts[0]}: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
