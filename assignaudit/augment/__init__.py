"""Seeded, deterministic replay of the augmentation list and the GT filters: OpenPCDet's ops (flip, rotation,
scaling, translation, gt_sampling) and mmdetection3d 1.x's (GlobalRotScaleTrans, RandomFlip3D, ObjectSample,
use_valid_flag). See `assignaudit.augment.replay` for the pipeline orders and the seeding."""

from assignaudit._lazy import lazy_getattr

# Lazy (PEP 562): `assignaudit.augment.params` is imported by the config loaders, which must not pull in torch.
_EXPORTS = {
    "ClassDatabase": "database", "GTDatabase": "database", "build_database": "database",
    "AugmentationReplay": "replay", "stable_int": "replay",
    **{name: "frame" for name in ("DROP_CLASS_FILTER", "DROP_MIN_POINTS", "DROP_OUT_OF_RANGE", "DROP_REASONS",
                                  "SOURCE_DATASET", "SOURCE_GT_SAMPLING", "AugmentedFrame", "DroppedGT")},
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, globals(), _EXPORTS)
