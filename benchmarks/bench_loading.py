"""Loading + conversion time per nuScenes frame: our vectorised path vs the devkit's per-Box path.

    python benchmarks/bench_loading.py [--dataroot DIR --version V --split S] [--repeat 5]

* ours: ``NuScenesSource.frame(i)`` for every sample of the split (global -> LiDAR for all boxes of a frame with
  one 4x4, velocities precomputed once for all annotations), best of ``--repeat`` passes.
* devkit: ``nusc.get_sample_data(lidar_sd)`` (``get_boxes`` + per-Box ``translate``/``rotate``) plus
  ``quaternion_yaw`` per box: what an info converter does per frame (without velocity, which would add a
  ``box_velocity`` call per box).

Also prints the one-time cost of constructing the source (devkit table loading + our extraction). Timings on a
shared 2-core machine are noisy; compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _best_ms_per_frame(fn, n_frames: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / max(n_frames, 1)


def main() -> None:
    from nuscenes.eval.common.utils import quaternion_yaw

    from assignaudit.sources.open import open_source

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataroot")
    ap.add_argument("--version")
    ap.add_argument("--split")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    src = open_source(dataroot=args.dataroot, version=args.version, split=args.split)
    t_open = time.perf_counter() - t0
    nusc = src.nusc
    n = len(src)
    sd_tokens = [nusc.get("sample", t)["data"]["LIDAR_TOP"] for t in src.sample_tokens()]
    n_boxes = sum(len(nusc.get("sample", t)["anns"]) for t in src.sample_tokens())

    def ours():
        for i in range(n):
            src.frame(i)

    def devkit():
        for sd in sd_tokens:
            _, boxes, _ = nusc.get_sample_data(sd)
            np.array([[*b.center, *b.wlh, quaternion_yaw(b.orientation)] for b in boxes])

    ms_ours = _best_ms_per_frame(ours, n, args.repeat)
    ms_devkit = _best_ms_per_frame(devkit, n, args.repeat)
    print(f"source: {src.info.dataroot} {src.info.version} split={src.info.split}: {n} frames, "
          f"{n_boxes / max(n, 1):.1f} boxes/frame")
    print(f"open_source (devkit table load + our extraction, devkit already imported): {t_open * 1e3:.0f} ms")
    print(f"ours   (vectorised)          : {ms_ours:.3f} ms/frame")
    print(f"devkit (get_sample_data, Box): {ms_devkit:.3f} ms/frame")
    print(f"ratio devkit/ours            : {ms_devkit / ms_ours:.1f}x")


if __name__ == "__main__":
    main()
