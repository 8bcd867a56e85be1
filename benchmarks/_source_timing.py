"""Shared by the source-loading benchmarks (bench_sources.py, bench_sources_raw.py): the fixture generators and the
best-of-N open / iterate timing."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generator(name: str):
    """The fixture generator ``fixtures/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "fixtures" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measure(open_fn, repeat: int) -> tuple[float, float, int, int]:
    """Best (open seconds, iterate seconds) over ``repeat`` runs, frames, boxes."""
    best_open = best_iter = float("inf")
    n_frames = n_boxes = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        src = open_fn()
        t1 = time.perf_counter()
        n_frames = n_boxes = 0
        for f in src.frames():
            n_frames += 1
            n_boxes += len(f)
        t2 = time.perf_counter()
        best_open, best_iter = min(best_open, t1 - t0), min(best_iter, t2 - t1)
    return best_open, best_iter, n_frames, n_boxes
