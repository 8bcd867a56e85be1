"""Seeded, deterministic replay of the augmentation list and the GT filters (spec §3.5, §9.1, §9.2, §14).

What one OpenPCDet training step does to a nuScenes sample's GT, in order:

1. ``NuScenesDataset.__getitem__`` (pcdet/datasets/nuscenes/nuscenes_dataset.py): ``FILTER_MIN_POINTS_IN_GT``
   keeps ``num_lidar_pts >= n`` BEFORE anything else. So 0-point boxes are gone before ``gt_sampling`` and never
   block a paste.
2. ``DatasetTemplate.prepare_data`` (pcdet/datasets/dataset.py): ``gt_boxes_mask = name in CLASS_NAMES``, then the
   ``AUG_CONFIG_LIST`` queue in order. GT of classes outside ``CLASS_NAMES`` (nuScenes ``ignore``, unmapped
   categories) are still in ``gt_boxes`` while the queue runs, so they DO block pastes (the sampler tests
   against the unmasked ``gt_boxes``).
3. ``DataAugmentor.forward``: ``yaw <- limit_period(yaw, 0.5, 2 pi)``; then the class filter (``gt_boxes_mask``
   and ``keep_arrays_by_name``).
4. ``DataProcessor.mask_points_and_boxes_outside_range``: centre inside the range on x, y, z, inclusive.

mmdetection3d 1.x (spec §9.2; ``Det3DDataset.prepare_data`` then the ``train_pipeline``):

1. ``NuScenesDataset._filter_with_mask`` (mmdet3d/datasets/nuscenes_dataset.py) before the pipeline: with
   ``gt_filters.use_valid_flag`` it keeps ``num_lidar_pts + num_radar_pts > 0`` INSTEAD of the LiDAR-point filter
   (`filters.valid_flag_mask`; drops are recorded with the ``min_points`` reason); otherwise ``num_lidar_pts > 0``,
   which is ``min_lidar_points = 1``. GT of classes outside ``classes`` keep label -1 and stay in the frame.
2. the pipeline's augmentations in config order: ``ObjectSample`` (greedy collision rule,
   `gt_sampling.sample_and_paste_mmdet3d`), ``GlobalRotScaleTrans`` (rotate -> scale -> translate) and
   ``RandomFlip3D`` (horizontal, then vertical). nuScenes configs rotate then flip, KITTI configs flip then rotate;
   the two do not commute, so the list order is applied as given.
3. ``ObjectRangeFilter`` (``range_filter='mmdet3d'``: BEV centre strictly inside, z ignored), which also wraps
   ``yaw <- limit_period(yaw, 0.5, 2 pi)`` (we wrap just before the masks; neither mask reads yaw), then
   ``ObjectNameFilter``. So an out-of-range GT of an unknown class is recorded as ``out_of_range``.

Randomness: every (seed, sample, replay, op) gets its own generator, ``PCG64(SeedSequence([seed,
sha256(sample_token), replay, op_kind, occurrence]))``. Results do not depend on frame order or worker count, and
adding or removing one op (say ``gt_sampling``) leaves the draws of the others unchanged. Within an op the draws
follow OpenPCDet's order: flip -- one uniform per listed axis, flipped iff u >= 0.5 (``np.random.choice([False,
True], p=[.5, .5])`` picks True for u >= 0.5); rotation -- one uniform; scaling -- one uniform, or none when
``hi - lo < 1e-3``; translation -- three normals (x, y, z); gt_sampling -- one ``choice`` per sampled class;
local rotation / scaling / translation -- one uniform per box (per axis, then per box), see
`assignaudit.augment.local`.
mmdet3d's ops draw unconditionally (transforms_3d.py): ``GlobalRotScaleTrans`` -- one uniform for the angle, one
for the scale (no degenerate-range skip), then three normals (``np.random.normal(scale=std, size=3)``, drawn even
when std is 0; std is cast to float32 first, as upstream); ``RandomFlip3D`` -- one uniform for horizontal, then one
for vertical, each flipping iff u < ratio (the vertical uniform is drawn even when its ratio is 0; a LiDAR-only
pipeline never takes the ``sync_2d`` image branch); ``ObjectSample`` -- one ``choice`` per class with k > 0;
``ObjectNoise`` -- ``[N, num_try, 3]`` normals, ``[N, num_try]`` rotation uniforms, ``[N, num_try]`` global-rotation
uniforms (`augment.object_noise`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from assignaudit.augment import world
from assignaudit.augment.database import GTDatabase, build_database, gt_sampling_op
from assignaudit.augment.filters import (
    RANGE_FILTERS,
    class_mask,
    map_classes,
    min_points_mask,
    range_mask,
    valid_flag_mask,
)
from assignaudit.augment.frame import (
    DROP_CLASS_FILTER,
    DROP_MIN_POINTS,
    DROP_OUT_OF_RANGE,
    SOURCE_DATASET,
    SOURCE_GT_SAMPLING,
    AugmentedFrame,
    DroppedGT,
)
from assignaudit.augment.gt_sampling import PasteResult, sample_and_paste, sample_and_paste_mmdet3d
from assignaudit.augment.local import apply_local_op, validate_local_op
from assignaudit.augment.object_noise import apply_object_noise
from assignaudit.augment.params import (
    LOCAL_OPS,
    GlobalRotScaleTrans,
    BEVFusionGlobalRotScaleTrans,
    GlobalRotScaleTransImage,
    LocalFrustumDropout,
    LocalPyramidAug,
    LocalRotation,
    LocalScaling,
    LocalTranslation,
    GTSampling,
    ObjectNoise,
    ObjectRangeFilter,
    ObjectSample,
    RandomFlip3D,
    WorldFlip,
    WorldRotation,
    WorldScaling,
    WorldTranslation,
)
from assignaudit.conventions import BOX_DIM, wrap_yaw
from assignaudit.errors import ConfigError, DataError
from assignaudit.sources.base import Frame

if TYPE_CHECKING:  # config.model imports augment.params: a runtime import here would be circular
    from assignaudit.config.model import DetectorConfig

__all__ = ["AugmentationReplay", "AugmentedFrame", "DroppedGT", "GTDatabase", "build_database", "stable_int"]

# Stream ids of the op kinds (part of the seed derivation: changing them changes every replay).
_OP_KIND = {WorldFlip: 1, WorldRotation: 2, WorldScaling: 3, WorldTranslation: 4, GTSampling: 5,
            GlobalRotScaleTrans: 6, RandomFlip3D: 7, ObjectSample: 8,
            # OpenPCDet local (per-object) ops, assignaudit.augment.local (9-19); mmdet3d ops 20-29
            LocalRotation: 9, LocalScaling: 10, LocalTranslation: 11, LocalFrustumDropout: 12, LocalPyramidAug: 13,
            ObjectNoise: 20, GlobalRotScaleTransImage: 21, ObjectRangeFilter: 22,
            BEVFusionGlobalRotScaleTrans: 23}
# OpenPCDet's global_scaling skips (and draws nothing) below this range width.
SCALE_SKIP_WIDTH = 1e-3


def stable_int(text: str) -> int:
    """A process-independent 128-bit integer for a string (sha256; Python's ``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:16], "little")


def _validate_ops(config: "DetectorConfig") -> None:
    for i, op in enumerate(config.augmentations):
        where = f"augmentations[{i}]"
        if type(op) not in _OP_KIND:
            raise ConfigError(f"{where}: unsupported augmentation {type(op).__name__}")
        if isinstance(op, LOCAL_OPS):
            validate_local_op(op, where)
        elif isinstance(op, WorldFlip):
            bad = [a for a in op.axes if a not in ("x", "y")]
            if bad:
                raise ConfigError(f"{where}: flip axis {bad[0]!r} is not 'x' or 'y'")
        elif isinstance(op, WorldRotation):
            lo, hi = op.angle_range_rad
            if not lo <= hi:
                raise ConfigError(f"{where}: rotation range ({lo}, {hi}) has lo > hi")
        elif isinstance(op, WorldScaling):
            lo, hi = op.scale_range
            if not (0 < lo <= hi):
                raise ConfigError(f"{where}: scale range ({lo}, {hi}) must satisfy 0 < lo <= hi")
        elif isinstance(op, WorldTranslation):
            if len(op.std_m) != 3 or any(not s >= 0 for s in op.std_m):
                raise ConfigError(f"{where}: translation std {op.std_m} must be three values >= 0")
        elif isinstance(op, GTSampling):
            bad_n = [(c, n) for c, n in op.sample_groups if int(n) < 0]
            if bad_n:
                raise ConfigError(f"{where}: gt_sampling group {bad_n[0][0]}:{bad_n[0][1]} is negative")
        elif isinstance(op, GlobalRotScaleTrans):
            lo, hi = op.rot_range_rad
            if not lo <= hi:
                raise ConfigError(f"{where}: GlobalRotScaleTrans rot_range ({lo}, {hi}) has lo > hi")
            lo, hi = op.scale_range
            if not (0 < lo <= hi):
                raise ConfigError(f"{where}: GlobalRotScaleTrans scale_ratio_range ({lo}, {hi}) must satisfy "
                                  "0 < lo <= hi")
            if len(op.translation_std_m) != 3 or any(not s >= 0 for s in op.translation_std_m):
                raise ConfigError(f"{where}: GlobalRotScaleTrans translation_std {op.translation_std_m} must be "
                                  "three values >= 0")
        elif isinstance(op, RandomFlip3D):
            for label, ratio in (("horizontal", op.flip_ratio_bev_horizontal),
                                 ("vertical", op.flip_ratio_bev_vertical)):
                if not 0.0 <= ratio <= 1.0:
                    raise ConfigError(f"{where}: RandomFlip3D flip_ratio_bev_{label} {ratio} is not in [0, 1]")
        elif isinstance(op, ObjectNoise):
            lo, hi = op.rot_range
            glo, ghi = op.global_rot_range
            if not (lo <= hi and glo <= ghi):
                raise ConfigError(f"{where}: ObjectNoise rot_range / global_rot_range must have lo <= hi")
            if len(op.translation_std) != 3 or any(not s >= 0 for s in op.translation_std):
                raise ConfigError(f"{where}: ObjectNoise translation_std {op.translation_std} must be three "
                                  "values >= 0")
            if isinstance(op.num_try, bool) or not isinstance(op.num_try, (int, np.integer)) or op.num_try < 1:
                raise ConfigError(f"{where}: ObjectNoise num_try {op.num_try!r} must be an integer >= 1")
        elif isinstance(op, GlobalRotScaleTransImage):
            lo, hi = op.rot_range_rad
            slo, shi = op.scale_range
            if not (lo <= hi and 0 < slo <= shi):
                raise ConfigError(f"{where}: GlobalRotScaleTransImage needs rot lo <= hi and 0 < scale lo <= hi")
        elif isinstance(op, ObjectSample):
            if not (np.isfinite(op.rate) and op.rate >= 0):
                raise ConfigError(f"{where}: ObjectSample rate {op.rate} must be a finite value >= 0")
            for c, n in op.sample_groups:
                if c not in config.class_names:  # upstream: KeyError in DataBaseSampler's cat2label
                    raise ConfigError(f"{where}: ObjectSample sample_groups class {c!r} is not in class_names")
                if int(n) < 0:
                    raise ConfigError(f"{where}: ObjectSample sample_groups {c}:{n} is negative")


class AugmentationReplay:
    """Replays ``config.augmentations`` and the GT filters on frames, deterministically from ``seed``.

    ``database`` is required iff the config has a ``gt_sampling`` op (build it with `build_database` over the
    training split). Stateless after construction: `apply` may be called in any order, from any worker.
    """

    def __init__(self, config: "DetectorConfig", database: GTDatabase | None, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        if config.gt_filters.range_filter not in RANGE_FILTERS:
            raise ConfigError(
                f"gt_filters.range_filter: unknown mode {config.gt_filters.range_filter!r} "
                f"(expected one of {', '.join(RANGE_FILTERS)})"
            )
        _validate_ops(config)
        self._gt_sampling = gt_sampling_op(config)
        if self._gt_sampling is not None and database is None:
            what = "ObjectSample" if isinstance(self._gt_sampling, ObjectSample) else "gt_sampling"
            raise ConfigError(f"augmentations: {what} needs a GT database (build one from the training split)")
        self.config = config
        self.database = database
        self.seed = int(seed)
        self._class_names = tuple(config.class_names)
        self._mapping = tuple(config.gt_filters.class_mapping)
        self._min_points = int(config.gt_filters.min_lidar_points)
        self._use_valid_flag = bool(config.gt_filters.use_valid_flag)
        self._drop_classes = tuple(config.gt_filters.drop_classes)
        self._drop_other = bool(getattr(config.gt_filters, "drop_other_classes", False))
        self._range_mode = config.gt_filters.range_filter

    # ---------------------------------------------------------------------------------------------------------------

    def _generators(self, sample_token: str, replay: int) -> list[np.random.Generator]:
        """One generator per op in config order, keyed by (op kind, occurrence of that kind)."""
        base = [self.seed, stable_int(sample_token), int(replay)]
        seen: dict[int, int] = {}
        gens = []
        for op in self.config.augmentations:
            kind = _OP_KIND[type(op)]
            occurrence = seen.get(kind, 0)
            seen[kind] = occurrence + 1
            gens.append(np.random.Generator(np.random.PCG64(np.random.SeedSequence(base + [kind, occurrence]))))
        return gens

    def apply(self, frame: Frame, replay: int = 0, augment: bool = True) -> AugmentedFrame:
        """The GT of ``frame`` as the assigner sees them in replay ``replay`` (see the module docstring for order).

        ``augment=False`` (``--no-augment``): no random op runs (gt_sampling included), the filters still apply.
        The frame is not modified.
        """
        if isinstance(replay, bool) or not isinstance(replay, (int, np.integer)) or replay < 0:
            raise ConfigError(f"replay must be a non-negative integer, got {replay!r}")
        boxes, names, ann, pts, radar = self._frame_arrays(frame)
        index = np.arange(boxes.shape[0], dtype=np.int64)

        # 1. before the augmentation queue: pcdet FILTER_MIN_POINTS_IN_GT (__getitem__), or mmdet3d nuScenes
        #    _filter_with_mask with use_valid_flag (LiDAR + radar points > 0, replacing the LiDAR-point filter).
        #    Dataset classes the dataset class itself removes first (KITTI ``DontCare``, Waymo ``unknown``) go even
        #    before that, so they never block a paste.
        dropped = []
        if self._drop_classes:
            raw = np.asarray(frame.detection_class, dtype=object)
            gone = class_mask(raw, self._drop_classes)
            dropped.append((index[gone], names[gone], ann[gone], DROP_CLASS_FILTER))
            boxes, names, ann, pts, index = boxes[~gone], names[~gone], ann[~gone], pts[~gone], index[~gone]
            radar = radar[~gone] if radar is not None else None
        if self._drop_other:  # mmdet3d KITTI / Waymo: label -1 GT removed in parse_ann_info (_remove_dontcare)
            gone = ~class_mask(names, self._class_names)
            dropped.append((index[gone], names[gone], ann[gone], DROP_CLASS_FILTER))
            boxes, names, ann, pts, index = boxes[~gone], names[~gone], ann[~gone], pts[~gone], index[~gone]
            radar = radar[~gone] if radar is not None else None
        keep = valid_flag_mask(pts, radar) if self._use_valid_flag else min_points_mask(pts, self._min_points)
        dropped.append((index[~keep], names[~keep], ann[~keep], DROP_MIN_POINTS))
        boxes, names, ann, pts, index = boxes[keep], names[keep], ann[keep], pts[keep], index[keep]
        source = np.full(boxes.shape[0], SOURCE_DATASET, dtype=object)

        # 2. the augmentation queue, in config order.
        draws: list[tuple[str, float]] = []
        range_done = False
        if augment and self.config.augmentations:
            for op, rng in zip(self.config.augmentations, self._generators(frame.sample_token, replay)):
                if isinstance(op, ObjectRangeFilter):  # upstream filters here, before a later op moves boxes
                    inside = range_mask(boxes, self.config.point_cloud_range, self._range_mode)
                    sel = ~inside & (index >= 0)
                    dropped.append((index[sel], names[sel], ann[sel], DROP_OUT_OF_RANGE))
                    boxes, names, ann, pts = boxes[inside], names[inside], ann[inside], pts[inside]
                    index, source = index[inside], source[inside]
                    range_done = True
                    continue
                if isinstance(op, (GTSampling, ObjectSample)):
                    pasted = self._paste(op, boxes, names, rng)
                    n = pasted.boxes.shape[0]
                    boxes = np.concatenate([boxes, pasted.boxes])
                    names = np.concatenate([names, pasted.class_name])
                    ann = np.concatenate([ann, np.full(n, None, dtype=object)])
                    pts = np.concatenate([pts, pasted.num_lidar_pts])
                    index = np.concatenate([index, np.full(n, -1, dtype=np.int64)])
                    source = np.concatenate([source, np.full(n, SOURCE_GT_SAMPLING, dtype=object)])
                    draws += [("gt_sampling_drawn", float(pasted.num_drawn)), ("gt_sampling_pasted", float(n))]
                elif isinstance(op, LOCAL_OPS):
                    boxes = apply_local_op(op, boxes, rng, draws)
                else:
                    boxes = self._world_op(op, boxes, rng, draws)

        # 3. yaw wrap, then the class filter / range filter in the framework's order.
        boxes = boxes.copy()  # cheap ([N, 9]); guarantees the frame's own array is never written
        boxes[:, 6] = wrap_yaw(boxes[:, 6])
        in_class = class_mask(names, self._class_names)
        in_range = np.ones(boxes.shape[0], dtype=bool) if range_done else \
            range_mask(boxes, self.config.point_cloud_range, self._range_mode)
        is_dataset = index >= 0
        if self._range_mode == "mmdet3d":  # ObjectRangeFilter runs before ObjectNameFilter
            first, second = (~in_range, DROP_OUT_OF_RANGE), (in_range & ~in_class, DROP_CLASS_FILTER)
        else:  # prepare_data's class filter runs before the DataProcessor's range mask
            first, second = (~in_class, DROP_CLASS_FILTER), (in_class & ~in_range, DROP_OUT_OF_RANGE)
        for mask, reason in (first, second):
            sel = mask & is_dataset
            dropped.append((index[sel], names[sel], ann[sel], reason))
        if augment and self._gt_sampling is not None:
            draws.append(("gt_sampling_out_of_range", float(np.count_nonzero(~in_range & ~is_dataset))))

        keep = in_class & in_range
        return AugmentedFrame(
            sample_token=frame.sample_token,
            replay=int(replay),
            boxes=boxes[keep],
            class_name=names[keep],
            source=source[keep],
            ann_token=ann[keep],
            num_lidar_pts=pts[keep],
            frame_index=index[keep],
            dropped=_ledger(dropped),
            draws=tuple(draws),
            augmented=bool(augment),
        )

    # ---------------------------------------------------------------------------------------------------------------

    def _paste(self, op, boxes: np.ndarray, names: np.ndarray, rng: np.random.Generator) -> PasteResult:
        """One database op on the current GT: OpenPCDet's both-members rule or mmdet3d's greedy rule."""
        if isinstance(op, ObjectSample):
            return sample_and_paste_mmdet3d(boxes, names, op, self.database, rng)
        return sample_and_paste(boxes, names, op, self.database, self._class_names, rng)

    def _frame_arrays(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Validated copies-or-views of the frame's arrays (never written to): boxes, mapped names, ann, LiDAR
        points, radar points (the last only read, and only checked, under ``use_valid_flag``)."""
        boxes = np.asarray(frame.boxes_lidar, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != BOX_DIM:
            raise DataError(
                f"sample {frame.sample_token}: boxes_lidar has shape {boxes.shape}, expected [N, {BOX_DIM}]"
            )
        n = boxes.shape[0]
        cls = np.asarray(frame.detection_class, dtype=object)
        ann = np.asarray(frame.ann_token, dtype=object)
        pts = np.asarray(frame.num_lidar_pts)
        for field_name, arr in (("detection_class", cls), ("ann_token", ann), ("num_lidar_pts", pts)):
            if arr.shape != (n,):
                raise DataError(f"sample {frame.sample_token}: {field_name} has shape {arr.shape}, expected ({n},)")
        if not np.all(np.isfinite(boxes[:, :7])):
            raise DataError(f"sample {frame.sample_token}: non-finite box centre, size or yaw")
        radar = None
        if self._use_valid_flag:
            radar = np.asarray(frame.num_radar_pts)
            if radar.shape != (n,):
                raise DataError(f"sample {frame.sample_token}: num_radar_pts has shape {radar.shape}, expected ({n},)")
            radar = radar.astype(np.int64, copy=False)
        return boxes, map_classes(cls, self._mapping), ann, pts.astype(np.int64, copy=False), radar

    @staticmethod
    def _world_op(op, boxes: np.ndarray, rng: np.random.Generator, draws: list[tuple[str, float]]) -> np.ndarray:
        """Apply one world op with its draws (each framework's per-op draw order); appends the draws to ``draws``."""
        if isinstance(op, WorldFlip):
            for axis in op.axes:  # one draw per listed axis, in list order
                flip = bool(rng.random() >= 0.5)
                draws.append((f"flip_{axis}", float(flip)))
                if flip:
                    boxes = world.flip_along_x(boxes) if axis == "x" else world.flip_along_y(boxes)
            return boxes
        if isinstance(op, WorldRotation):
            angle = float(rng.uniform(*op.angle_range_rad))
            draws.append(("rotation_rad", angle))
            return world.rotate_about_z(boxes, angle)
        if isinstance(op, WorldScaling):
            lo, hi = op.scale_range
            if hi - lo < SCALE_SKIP_WIDTH:  # upstream returns early, without a draw
                return boxes
            factor = float(rng.uniform(lo, hi))
            draws.append(("scale", factor))
            return world.scale(boxes, factor)
        if isinstance(op, GlobalRotScaleTrans):
            # transforms_3d.py GlobalRotScaleTrans.transform: _rot_bbox_points, _random_scale + _scale_bbox_points,
            # _trans_bbox_points -- always in this order, each drawing unconditionally.
            angle = float(rng.uniform(*op.rot_range_rad))
            factor = float(rng.uniform(*op.scale_range))
            std = np.asarray(op.translation_std_m, dtype=np.float32).astype(np.float64)  # upstream: float32 std
            offset = rng.normal(0.0, std, size=3)
            draws += [("rotation_rad", angle), ("scale", factor)]
            draws += [(f"translate_{axis}_m", float(t)) for axis, t in zip("xyz", offset)]
            if isinstance(op, BEVFusionGlobalRotScaleTrans):  # same draws, applied rotate -> translate -> scale
                return world.scale(world.translate(world.rotate_about_z(boxes, angle), offset), factor)
            return world.translate(world.scale(world.rotate_about_z(boxes, angle), factor), offset)
        if isinstance(op, ObjectNoise):
            boxes, chosen = apply_object_noise(op, boxes, rng)
            moved = int(np.count_nonzero(chosen >= 0))
            draws += [("object_noise_moved", float(moved)), ("object_noise_unmoved", float(chosen.size - moved))]
            return boxes
        if isinstance(op, GlobalRotScaleTransImage):
            angle = float(rng.uniform(*op.rot_range_rad))
            factor = float(rng.uniform(*op.scale_range))
            draws += [("rotation_rad", angle), ("scale", factor)]
            turn = -angle if op.reverse_angle else angle
            boxes = world.rotate_about_z(boxes, turn)
            if not op.reverse_angle:
                boxes = boxes.copy()
                boxes[:, 6] -= 2 * turn
            return world.scale(boxes, factor)
        if isinstance(op, RandomFlip3D):
            # RandomFlip3D.transform: both uniforms are drawn (horizontal first) before either flip is applied.
            flip_h = bool(rng.random() < op.flip_ratio_bev_horizontal)
            flip_v = bool(rng.random() < op.flip_ratio_bev_vertical)
            draws += [("flip_horizontal", float(flip_h)), ("flip_vertical", float(flip_v))]
            if flip_h:
                boxes = world.flip_bev_horizontal(boxes)
            if flip_v:
                boxes = world.flip_bev_vertical(boxes)
            return boxes
        # WorldTranslation: three normals, x then y then z (always drawn, even for a zero std).
        offset = np.array([rng.normal(0.0, std) for std in op.std_m], dtype=np.float64)
        draws += [(f"translate_{axis}_m", float(t)) for axis, t in zip("xyz", offset)]
        return world.translate(boxes, offset)


def _ledger(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]) -> DroppedGT:
    """Concatenate the per-filter drop records into one `DroppedGT` (pipeline order)."""
    parts = [p for p in parts if p[0].shape[0]]
    if not parts:
        return DroppedGT.empty()
    return DroppedGT(
        frame_index=np.concatenate([p[0] for p in parts]),
        class_name=np.concatenate([p[1] for p in parts]),
        ann_token=np.concatenate([p[2] for p in parts]),
        reason=np.concatenate([np.full(p[0].shape[0], p[3], dtype=object) for p in parts]),
    )
