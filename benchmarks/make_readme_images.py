"""Regenerate the README's pictures (docs/img/*.png) from the bundled fixture, one of each kind.

``assignaudit show`` on the zero-positive traffic cone (anchor head) and on a CenterHead heatmap, and three charts of
``assignaudit report`` (positives per GT, yaw residuals polar, the NMS sweep) plus a zero-positive thumbnail strip.
Deterministic (seeded replay); each file stays well under 200 KB.

Usage: ``python benchmarks/make_readme_images.py [--out docs/img]`` from the repository root.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not another installed copy


def _run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "assignaudit", *args], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    _run("show", "--zero-pos", "traffic_cone", "--radius", "6", "--out", str(out / "show-zero-pos-cone.png"))
    _run("show", "--config", "pcdet-nuscenes-centerpoint-voxel0075", "--sample", "1", "--max-frames", "2",
         "--around", "1", "--radius", "6", "--out", str(out / "show-centerhead.png"))
    with tempfile.TemporaryDirectory() as tmp:
        _run("count", "--out", tmp, "-q")
        _run("yaw", "--out", tmp, "--nms-sweep", "0.01,0.1,0.2,0.3,0.5", "-q")
        from assignaudit.html_report import collect_reports
        from assignaudit.plots import charts

        rep = collect_reports([Path(tmp)])
        (out / "report-pos-per-gt.png").write_bytes(charts.pos_per_gt_chart(rep.counts[0][1], dpi=80))
        (out / "report-yaw-polar.png").write_bytes(charts.yaw_polar_chart(rep.yaw_hist, dpi=80))
        (out / "report-nms-sweep.png").write_bytes(charts.nms_sweep_chart(rep.nms_sweep, dpi=80))
    for p in sorted(out.glob("*.png")):
        size = p.stat().st_size
        print(f"{p}: {size / 1024:.0f} KB")
        if size > 200 * 1024:
            raise SystemExit(f"{p} is over 200 KB")


if __name__ == "__main__":
    main()
