"""Benchmark: start-up cost of the CLI commands, measured with ``python -X importtime`` in fresh interpreters.

For each command: wall time and CPU time of the whole process (``resource.getrusage(RUSAGE_CHILDREN)``), the
cumulative import time of the heaviest top-level packages (from ``-X importtime``), and whether torch / the nuScenes
devkit / matplotlib / scipy / sklearn were imported at all. Targets (issue 12): ``--help`` < 0.5 s, ``config show``
< 1.5 s, neither imports torch nor the devkit; the devkit is imported only when a nuScenes source is opened.

The ratio column is ``count`` (which must import torch and, on a nuScenes source, the devkit) over the command.
Timings on shared CPUs are noisy: CPU time is the steadier figure.

Usage: ``python benchmarks/bench_startup.py [--repeat 3]``.
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

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "nuscenes", "matplotlib", "scipy", "sklearn", "pandas", "pyarrow")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(args: list[str], cwd: Path) -> tuple[float, float, dict[str, float], int]:
    """(wall s, CPU s, top-level package -> cumulative import s, exit code) of one fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "assignaudit", *args], capture_output=True,
                          text=True, cwd=cwd, env=env)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    packages: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        top = parts[2].strip().split(".")[0]
        # The outermost entry of a package carries its cumulative time, the largest of its entries.
        packages[top] = max(packages.get(top, 0.0), int(parts[1]) / 1e6)
    return wall, cpu, packages, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per command; the minimum is reported")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        commands = {
            "--help": ["--help"],
            "config show": ["config", "show"],
            "config presets": ["config", "presets"],
            "gate (input error)": ["gate", "missing-a", "missing-b"],
            "count (fixture, 24 frames)": ["count", "--no-augment", "-q", "--out", str(cwd / "out")],
        }
        targets = {"--help": 0.5, "config show": 1.5}
        rows = []
        for label, args in commands.items():
            best = None
            for _ in range(a.repeat):
                r = run_once(args, cwd)
                if best is None or r[1] < best[1]:
                    best = r
            rows.append((label, *best))
        count_cpu = rows[-1][2]
        print(f"{'command':<28} {'wall s':>7} {'CPU s':>7} {'target':>7} {'count/this':>10}  heavy imports (cum. s)")
        for label, wall, cpu, pkgs, code in rows:
            heavy = ", ".join(f"{m} {pkgs[m]:.2f}" for m in HEAVY if m in pkgs) or "none"
            tgt = f"<{targets[label]}" if label in targets else ""
            ok = "" if label not in targets else (" ok" if wall < targets[label] else " SLOW")
            print(f"{label:<28} {wall:7.2f} {cpu:7.2f} {tgt:>7} {count_cpu / max(cpu, 1e-9):10.1f}x  {heavy}{ok}"
                  f"{'' if code in (0, 2) else f'  (exit {code})'}")


if __name__ == "__main__":
    main()
