"""`config show` time of the real mmdetection3d 1.4.0 configs in tests/data/mmdet3d_cfgs (issue 11: < 1.5 s each).

    python benchmarks/bench_config_mmdet3d.py [--repeat 3] [--cli]

* in-process: ``load_mmdet3d_config`` (mmengine ``Config.fromfile`` with the ``_base_`` tree + our import), best of
  ``--repeat``, per config; the ratio to the 1.5 s budget is printed (< 1 is within budget);
* ``--cli``: also one ``python -m assignaudit config show --json`` subprocess per config (interpreter start, imports,
  rendering): what a user waits for.

Timings on a shared 2-core machine are noisy; read the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "mmdet3d_cfgs"
BUDGET_S = 1.5


def _configs() -> list[Path]:
    out = []
    for p in sorted(CORPUS.glob("*/**/*.py")):
        if "_base_" in p.parts:
            continue
        out.append(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cli", action="store_true", help="also time a `config show` subprocess per config")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    logging.disable(logging.WARNING)
    from assignaudit.config.mmdet3d import load_mmdet3d_config
    from assignaudit.errors import AssignAuditError

    print(f"{'config':<72} {'load s':>7} {'ratio':>6} {'cli s':>6} {'ratio':>6}  result")
    worst = 0.0
    for path in _configs():
        best, result = float("inf"), "ok"
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            try:
                load_mmdet3d_config(path)
            except AssignAuditError as err:
                result = "refused: " + str(err).split(": ", 2)[-1][:40]
            best = min(best, time.perf_counter() - t0)
        cli = ""
        if args.cli:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "assignaudit", "config", "show", str(path), "--json"], cwd=ROOT,
                           capture_output=True, check=False)
            dt = time.perf_counter() - t0
            worst = max(worst, dt)
            cli = f"{dt:6.2f} {dt / BUDGET_S:6.2f}"
        else:
            worst = max(worst, best)
        rel = str(path.relative_to(CORPUS))
        print(f"{rel[-72:]:<72} {best:7.3f} {best / BUDGET_S:6.2f} {cli:>13}  {result}")
    print(f"worst {'cli' if args.cli else 'in-process'} time {worst:.2f} s = {worst / BUDGET_S:.2f} x the "
          f"{BUDGET_S} s budget")


if __name__ == "__main__":
    main()
