"""Frames/s of loading each framework info-file source (``--infos``) against nuScenes ``--dataroot``.

    python benchmarks/bench_sources.py [--replicate 20] [--repeat 3]

Writes replicated info fixtures in a temp dir (fixtures/make_info_fixtures.py: the bundled nuScenes fixture's 24
frames repeated ``--replicate`` times under new tokens, ~42 boxes per frame, as OpenPCDet nuScenes / Waymo and
mmdetection3d v2 nuScenes / Waymo infos; the raw KITTI fixture's 3 train frames repeated likewise as OpenPCDet and
mmdetection3d KITTI infos), then for each format measures, best of ``--repeat``:

* open: ``open_infos`` (restricted unpickling, format detection, validation, every frame built);
* iterate: ``source.frames()`` over all frames;
* frames/s = frames / (open + iterate), and the ratio to the bundled nuScenes fixture (its 24 frames, the frames
  the nuScenes infos are made of) through ``--dataroot`` (nuscenes-devkit table loading + our vectorised
  extraction), the baseline. The gt_sampling database read from a dbinfos file (``load_database``) is timed too,
  per entry.

Timings on a shared 2-core machine are noisy; compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's assignaudit, not an installed one


from _source_timing import generator as _generator, measure as _measure  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicate", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from assignaudit.config.loader import load_config
    from assignaudit.sources.dbinfos import load_database
    from assignaudit.sources.infos import open_infos
    from assignaudit.sources.open import open_source

    import nuscenes.nuscenes  # noqa: F401  (import cost outside the timings)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = _generator("make_info_fixtures").make_info_fixtures(tmp, replicate=args.replicate)
        print(f"fixtures written in {time.perf_counter() - t0:.1f} s (replicate {args.replicate})")
        rows = [("nuscenes --dataroot (baseline)", _measure(lambda: open_source(), args.repeat))]
        for name in ("pcdet_nuscenes", "mmdet3d_nuscenes", "pcdet_waymo", "mmdet3d_waymo", "pcdet_kitti",
                     "mmdet3d_kitti"):
            path = files[f"{name}_infos_train.pkl"]
            rows.append((f"--infos {name}", _measure(lambda p=path: open_infos([p]), args.repeat)))
        base_fps = None
        print(f"{'source':34s} {'frames':>7s} {'boxes':>7s} {'open s':>8s} {'iter s':>8s} {'frames/s':>9s} "
              f"{'vs baseline':>11s}")
        for label, (t_open, t_iter, n_frames, n_boxes) in rows:
            fps = n_frames / (t_open + t_iter)
            base_fps = base_fps or fps
            print(f"{label:34s} {n_frames:7d} {n_boxes:7d} {t_open:8.3f} {t_iter:8.3f} {fps:9.0f} "
                  f"{fps / base_fps:10.2f}x")
        cfg = load_config(str(REPO / "tests/data/pcdet/tools/cfgs/nuscenes_models/cbgs_pp_multihead.yaml"))
        db_path = files["pcdet_nuscenes_dbinfos_train.pkl"]
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            db = load_database([db_path], cfg)
            best = min(best, time.perf_counter() - t0)
        n = sum(db.sizes().values())
        print(f"load_database (pcdet nuScenes dbinfos): {n} entries kept in {best:.3f} s "
              f"({n / best:,.0f} entries/s)")


if __name__ == "__main__":
    main()
