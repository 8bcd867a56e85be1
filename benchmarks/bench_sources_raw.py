"""Frames/s of loading raw KITTI (``--kitti-root``) and AV2 (``--av2-root``) against nuScenes ``--dataroot``.

    python benchmarks/bench_sources_raw.py [--kitti-frames 200] [--kitti-points 120000] [--av2-logs 4]
                                           [--av2-sweeps 150] [--av2-cuboids 80] [--repeat 3]

Builds replicated fixtures in a temp dir (fixtures/make_kitti_fixture.py, fixtures/make_av2_fixture.py) with
realistic sizes (KITTI: HDL-64-sized clouds, ~7 objects + DontCare per frame; AV2: logs of ~150 sweeps x ~80
cuboids), then for each source measures, best of ``--repeat``:

* open: constructing the source (reading and validating every label / calib / annotations file);
* iterate: ``source.frames()`` over the split (KITTI: reading each ``.bin`` and counting points in boxes);
* frames/s = frames / (open + iterate), and the ratio to the bundled nuScenes fixture through ``--dataroot``
  (nuscenes-devkit table loading + our vectorised extraction), the baseline.

Timings on a shared 2-core machine are noisy; compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import tempfile
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's assignaudit, not an installed one


from _source_timing import generator as _generator, measure as _measure  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kitti-frames", type=int, default=200, help="train frames (3 of every 5 generated)")
    ap.add_argument("--kitti-points", type=int, default=120_000)
    ap.add_argument("--av2-logs", type=int, default=4, help="train logs")
    ap.add_argument("--av2-sweeps", type=int, default=150)
    ap.add_argument("--av2-cuboids", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from assignaudit.sources.av2 import AV2Source
    from assignaudit.sources.kitti import KittiSource
    from assignaudit.sources.open import FIXTURE_DATAROOT, open_source

    import nuscenes.nuscenes  # noqa: F401  (import cost outside the timings, as for the other sources)
    import pyarrow.feather  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        kitti_root, av2_root = Path(tmp) / "kitti", Path(tmp) / "av2"
        t0 = time.perf_counter()
        _generator("make_kitti_fixture").make_kitti_fixture(
            kitti_root, replicate=max(1, -(-args.kitti_frames // 3)), background_points=args.kitti_points)
        _generator("make_av2_fixture").make_av2_fixture(
            av2_root, replicate=max(1, -(-args.av2_logs // 2)), sweeps=args.av2_sweeps,
            extra_tracks=max(0, args.av2_cuboids - 8))
        print(f"fixtures written in {time.perf_counter() - t0:.1f} s")

        rows = [
            ("nuscenes --dataroot (bundled fixture, devkit)",
             lambda: open_source(dataroot=FIXTURE_DATAROOT, version="v1.0-mini", split="fixture_all")),
            (f"kitti --kitti-root ({args.kitti_points} pts/frame, point counts)",
             lambda: KittiSource(kitti_root, "train")),
            ("kitti --kitti-root without velodyne/ (labels + calib only)", None),
            ("av2 --av2-root", lambda: AV2Source(av2_root, "train")),
        ]
        results = []
        for name, fn in rows:
            if fn is None:
                import shutil

                shutil.rmtree(kitti_root / "training" / "velodyne")
                fn = lambda: KittiSource(kitti_root, "train")  # noqa: E731
            t_open, t_iter, n, boxes = _measure(fn, args.repeat)
            results.append((name, t_open, t_iter, n, boxes))

    base = results[0][3] / (results[0][1] + results[0][2])
    print(f"{'source':<62} {'frames':>7} {'boxes/fr':>8} {'open ms':>9} {'iter ms/fr':>10} {'frames/s':>9} {'vs nusc':>8}")
    for name, t_open, t_iter, n, boxes in results:
        fps = n / (t_open + t_iter)
        print(f"{name:<62} {n:>7} {boxes / max(n, 1):>8.1f} {t_open * 1e3:>9.0f} {t_iter * 1e3 / max(n, 1):>10.3f} "
              f"{fps:>9.0f} {fps / base:>7.2f}x")


if __name__ == "__main__":
    main()
