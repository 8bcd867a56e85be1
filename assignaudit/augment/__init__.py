"""Seeded, deterministic replay of the augmentation list and the GT filters: OpenPCDet's ops (flip, rotation,
scaling, translation, gt_sampling) and mmdetection3d 1.x's (GlobalRotScaleTrans, RandomFlip3D, ObjectSample,
use_valid_flag). See `assignaudit.augment.replay` for the pipeline orders and the seeding."""

from assignaudit.augment.database import ClassDatabase, GTDatabase, build_database
from assignaudit.augment.frame import (
    DROP_CLASS_FILTER,
    DROP_MIN_POINTS,
    DROP_OUT_OF_RANGE,
    DROP_REASONS,
    SOURCE_DATASET,
    SOURCE_GT_SAMPLING,
    AugmentedFrame,
    DroppedGT,
)
from assignaudit.augment.replay import AugmentationReplay, stable_int

__all__ = [
    "AugmentationReplay",
    "AugmentedFrame",
    "ClassDatabase",
    "DroppedGT",
    "GTDatabase",
    "build_database",
    "stable_int",
    "DROP_CLASS_FILTER",
    "DROP_MIN_POINTS",
    "DROP_OUT_OF_RANGE",
    "DROP_REASONS",
    "SOURCE_DATASET",
    "SOURCE_GT_SAMPLING",
]
