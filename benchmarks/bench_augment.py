"""Per-frame cost of the augmentation replay on synthetic nuScenes-like frames (~40 GT, 10 classes).

    python benchmarks/bench_augment.py [--frames 500] [--db-frames 2000]

Reports ms/frame for (a) the world ops + filters of the OpenPCDet nuScenes PointPillars pipeline (flip x, flip y,
rotation, scaling) and (b) the same with gt_sampling first (SAMPLE_GROUPS of cbgs_pp_multihead, LIMIT_WHOLE_SCENE,
min points 5), and the database build time. Timings on a shared 2-core VM are noisy: take the median of repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from assignaudit.assign.params import AnchorLayout, AssignerParams
from assignaudit.augment import AugmentationReplay, build_database
from assignaudit.augment.params import GTSampling, WorldFlip, WorldRotation, WorldScaling
from assignaudit.config.model import DetectorConfig, GTFilters
from assignaudit.sources.base import Frame

CLASSES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
           "pedestrian", "traffic_cone")
SIZES = {"car": (4.6, 1.9, 1.7), "truck": (6.9, 2.5, 2.8), "construction_vehicle": (6.4, 2.8, 3.2),
         "bus": (11.0, 2.9, 3.5), "trailer": (12.3, 2.9, 3.9), "barrier": (0.5, 2.5, 1.0),
         "motorcycle": (2.1, 0.8, 1.5), "bicycle": (1.7, 0.6, 1.3), "pedestrian": (0.7, 0.7, 1.8),
         "traffic_cone": (0.4, 0.4, 1.1)}
GROUPS = (("car", 2), ("truck", 3), ("construction_vehicle", 7), ("bus", 4), ("trailer", 6), ("barrier", 2),
          ("motorcycle", 6), ("bicycle", 6), ("pedestrian", 2), ("traffic_cone", 2))
PCR = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
FREQ = np.array([0.43, 0.08, 0.015, 0.015, 0.02, 0.13, 0.01, 0.01, 0.19, 0.09])


def synthetic_frames(n: int, seed: int, prefix: str) -> list[Frame]:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        m = int(rng.integers(25, 55))
        cls = np.array(CLASSES, dtype=object)[rng.choice(10, m, p=FREQ / FREQ.sum())]
        dims = np.array([SIZES[c] for c in cls]) * rng.uniform(0.9, 1.1, (m, 1))
        boxes = np.concatenate([rng.uniform(-55, 55, (m, 2)), rng.uniform(-2, 0, (m, 1)), dims,
                                rng.uniform(-np.pi, np.pi, (m, 1)), rng.normal(0, 2, (m, 2))], axis=1)
        frames.append(Frame(
            sample_token=f"{prefix}{i}", boxes_lidar=boxes, detection_class=cls, category=cls.copy(),
            ann_token=np.array([f"{prefix}{i}-{j}" for j in range(m)], dtype=object),
            instance_token=np.full(m, None, dtype=object),
            num_lidar_pts=rng.integers(0, 200, m), num_radar_pts=np.full(m, -1, dtype=np.int64),
        ))
    return frames


def config(with_sampling: bool) -> DetectorConfig:
    ops = [WorldFlip(("x", "y")), WorldRotation((-0.3925, 0.3925)), WorldScaling((0.95, 1.05))]
    if with_sampling:
        ops.insert(0, GTSampling(GROUPS, min_points=tuple((c, 5) for c in CLASSES), limit_whole_scene=True))
    return DetectorConfig(
        name="bench", class_names=CLASSES, point_cloud_range=PCR, voxel_size=(0.2, 0.2, 8.0),
        anchors=AnchorLayout(PCR, (0.2, 0.2, 8.0), ()), assigner=AssignerParams(), augmentations=tuple(ops),
        gt_filters=GTFilters(min_lidar_points=1),
    )


def time_per_frame(replay: AugmentationReplay, frames: list[Frame], repeats: int) -> float:
    runs = []
    for r in range(repeats):
        t0 = time.perf_counter()
        for f in frames:
            replay.apply(f, r)
        runs.append((time.perf_counter() - t0) / len(frames) * 1e3)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--db-frames", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    frames = synthetic_frames(args.frames, 0, "val")
    t0 = time.perf_counter()
    db = build_database(synthetic_frames(args.db_frames, 1, "train"), config(True))
    t_db = time.perf_counter() - t0
    world = AugmentationReplay(config(False), None, 0)
    full = AugmentationReplay(config(True), db, 0)
    time_per_frame(full, frames[:20], 1)  # warm-up (torch, allocator)
    ms_world = time_per_frame(world, frames, args.repeats)
    ms_full = time_per_frame(full, frames, args.repeats)
    ms_none = time_per_frame(_NoAug(full), frames, args.repeats)
    pasted = np.mean([(full.apply(f).source == "gt_sampling").sum() for f in frames[:100]])
    print(f"database: {sum(db.sizes().values())} objects from {args.db_frames} frames in {t_db:.2f} s "
          f"(incl. synthesising the frames)")
    print(f"filters only (--no-augment):            {ms_none:.3f} ms/frame")
    print(f"flip x/y + rotation + scaling + filters: {ms_world:.3f} ms/frame")
    print(f"gt_sampling + the above:                 {ms_full:.3f} ms/frame  ({pasted:.1f} pasted/frame)")


class _NoAug:
    def __init__(self, replay: AugmentationReplay):
        self.replay = replay

    def apply(self, frame: Frame, replay: int) -> object:
        return self.replay.apply(frame, replay, augment=False)


if __name__ == "__main__":
    main()
