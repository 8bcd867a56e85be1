"""Benchmark: `assignaudit config show` wall time per shipped detector config (target < 1.5 s on an idle 2-core box).

For each config it times, in one run:
  * the CLI as a user runs it: ``python -m assignaudit config show CONFIG`` in a fresh process (interpreter start,
    imports, `_BASE_CONFIG_` / `_base_` resolution, validation, table rendering); the median of ``--repeat`` runs;
  * the importer alone, in this process (`assignaudit.config.loader.load_config`, after one warm-up call);
and, as the baseline, a bare ``python -c pass`` start, so the ratio says how much of the time is ours.

Configs: every OpenPCDet model YAML of the test corpus (tests/data/pcdet_cfgs/tools/cfgs/*_models/*.yaml).
mmdetection3d configs are added by `extra_configs()` (the hook: return more paths, e.g. from tests/data/mmdet3d) or
on the command line with ``--extra PATH ...``. A refused config is timed too (it must fail fast, with one line).

Usage: ``python benchmarks/bench_config_show.py [--repeat 3] [--extra CONFIG ...] [--limit N]``.
Timings on shared CPUs are noisy.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PCDET_CORPUS = ROOT / "tests" / "data" / "pcdet_cfgs" / "tools" / "cfgs"
TARGET_S = 1.5


def pcdet_configs() -> list[Path]:
    return sorted(PCDET_CORPUS.glob("*_models/*.yaml"))


def extra_configs() -> list[Path]:
    """Hook for other frameworks' configs (mmdetection3d .py files); empty until their corpus lands."""
    return []


def run_cli(config: Path) -> tuple[float, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "assignaudit", "config", "show", str(config)], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, proc.returncode


def bare_start(repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def in_process(config: Path) -> float:
    from assignaudit.config.loader import load_config
    from assignaudit.errors import AssignAuditError

    def once() -> None:
        try:
            load_config(config)
        except AssignAuditError:
            pass

    once()
    t0 = time.perf_counter()
    once()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--extra", nargs="*", type=Path, default=[])
    parser.add_argument("--limit", type=int, default=0, help="time only the first N configs (0: all)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    logging.disable(logging.CRITICAL)

    configs = pcdet_configs() + extra_configs() + list(args.extra)
    if args.limit:
        configs = configs[:args.limit]
    base = bare_start(args.repeat)
    print(f"python -c pass: {base * 1e3:.0f} ms (baseline); target per config < {TARGET_S:.1f} s")
    print(f"{'config':58s} {'rc':>3s} {'cli s':>7s} {'x base':>7s} {'import ms':>10s}")
    worst = 0.0
    over = []
    for cfg in configs:
        runs = [run_cli(cfg) for _ in range(args.repeat)]
        wall = statistics.median(t for t, _ in runs)
        rc = runs[0][1]
        imp = in_process(cfg)
        name = cfg.relative_to(PCDET_CORPUS).as_posix() if cfg.is_relative_to(PCDET_CORPUS) else str(cfg)
        print(f"{name:58s} {rc:3d} {wall:7.2f} {wall / base:7.1f} {imp * 1e3:10.1f}")
        worst = max(worst, wall)
        if wall >= TARGET_S:
            over.append(name)
    print(f"{len(configs)} configs; worst {worst:.2f} s; {len(over)} at or over {TARGET_S} s"
          + (f": {', '.join(over)}" if over else ""))


if __name__ == "__main__":
    main()
