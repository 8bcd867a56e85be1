"""Seeded, deterministic replay of the augmentation list and the GT filters: OpenPCDet's ops (flip, rotation,
scaling, translation, gt_sampling) and mmdetection3d 1.x's (GlobalRotScaleTrans, RandomFlip3D, ObjectSample,
use_valid_flag). See `assignaudit.augment.replay` for the pipeline orders and the seeding."""

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

# The replay and the database (torch, ops) load on first use (PEP 562): `augment.params` stays cheap to import.
_LAZY = {"ClassDatabase": "database", "GTDatabase": "database", "build_database": "database",
         "AugmentationReplay": "replay", "stable_int": "replay"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"assignaudit.augment.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'assignaudit.augment' has no attribute {name!r}")


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
