"""Frozen parameters of the augmentation operations replayed by `assignaudit.augment` (spec §9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class WorldFlip:
    """OpenPCDet ``random_world_flip``: per axis in list order, p = 0.5. 'x': y -> -y, yaw -> -yaw, vy -> -vy;
    'y': x -> -x, yaw -> -(yaw + pi), vx -> -vx."""

    axes: tuple[str, ...] = ("x", "y")


@dataclass(frozen=True)
class WorldRotation:
    """OpenPCDet ``random_world_rotation``: alpha ~ U(lo, hi), counter-clockwise about z; velocity rotates too."""

    angle_range_rad: tuple[float, float] = (-0.3925, 0.3925)


@dataclass(frozen=True)
class WorldScaling:
    """OpenPCDet ``random_world_scaling``: s ~ U(lo, hi); xyz, dims and velocity scale; skipped if hi - lo < 1e-3."""

    scale_range: tuple[float, float] = (0.95, 1.05)


@dataclass(frozen=True)
class WorldTranslation:
    """OpenPCDet ``random_world_translation``: t ~ N(0, std) per axis added to the centres; velocity unchanged."""

    std_m: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class GTSampling:
    """OpenPCDet ``gt_sampling`` (DataBaseSampler) on boxes: paste database objects that do not collide."""

    sample_groups: tuple[tuple[str, int], ...]  # (class, group_num) in SAMPLE_GROUPS order
    min_points: tuple[tuple[str, int], ...] = ()  # PREPARE.filter_by_min_points, per class
    limit_whole_scene: bool = True
    filter_by_difficulty: tuple[int, ...] = ()  # PREPARE.filter_by_difficulty: database entries of these levels go


@dataclass(frozen=True)
class GlobalRotScaleTrans:
    """mmdet3d 1.x ``GlobalRotScaleTrans`` (spec §9.2): rotate (alpha ~ U(rot_range), counter-clockwise, velocity
    too) -> scale (s ~ U(scale_range): xyz, dims, velocity) -> translate (t ~ N(0, std) per axis), always in this
    order, draws in this order."""

    rot_range_rad: tuple[float, float] = (-0.3925, 0.3925)
    scale_range: tuple[float, float] = (0.95, 1.05)
    translation_std_m: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class RandomFlip3D:
    """mmdet3d 1.x ``RandomFlip3D`` (spec §9.2): horizontal if u < ratio_h (y -> -y, vy -> -vy, yaw -> -yaw), then
    vertical if u < ratio_v (x -> -x, vx -> -vx, yaw -> -yaw + pi)."""

    flip_ratio_bev_horizontal: float = 0.5
    flip_ratio_bev_vertical: float = 0.0


@dataclass(frozen=True)
class ObjectSample:
    """mmdet3d ``ObjectSample`` / ``DataBaseSampler`` (spec §9.2): per class k = round(rate * (max_num - #GT of the
    class)); BEV-corner collision against GT and earlier accepted samples, and **greedily** within the batch."""

    sample_groups: tuple[tuple[str, int], ...]  # (class, max_num) in sample_groups order
    min_points: tuple[tuple[str, int], ...] = ()  # prepare.filter_by_min_points, per class
    rate: float = 1.0
    filter_by_difficulty: tuple[int, ...] = ()  # prepare.filter_by_difficulty: database entries of these levels go


@dataclass(frozen=True)
class LocalRotation:
    """OpenPCDet ``random_local_rotation`` (augmentor_utils.py ``local_rotation``): for each GT box in order, one
    ``u ~ U(lo, hi)``; the box turns about its own centre (centre unchanged, ``yaw += u``)."""

    angle_range_rad: tuple[float, float] = (-0.15707963267, 0.15707963267)


@dataclass(frozen=True)
class LocalScaling:
    """OpenPCDet ``random_local_scaling`` (``local_scaling``): skipped without draws when ``hi - lo < 1e-3``; else
    for each GT box in order one ``s ~ U(lo, hi)``, ``dx, dy, dz *= s`` about the unchanged centre."""

    scale_range: tuple[float, float] = (0.95, 1.05)


@dataclass(frozen=True)
class LocalTranslation:
    """OpenPCDet ``random_local_translation`` (``random_local_translation_along_<axis>``): for each axis in list
    order, for each GT box in order, one ``t ~ U(lo, hi)`` metres added to the centre on that axis."""

    axes: tuple[str, ...] = ("x", "y", "z")
    offset_range: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class LocalFrustumDropout:
    """OpenPCDet ``random_local_frustum_dropout``: removes points in a slab of each box, never a box. Recorded;
    the box replay is the identity."""

    directions: tuple[str, ...] = ("top",)
    intensity_range: tuple[float, float] = (0.0, 0.2)


@dataclass(frozen=True)
class LocalPyramidAug:
    """OpenPCDet ``random_local_pyramid_aug`` (SE-SSD pyramid dropout / sparsify / swap): moves and removes points
    inside boxes, never a box. Recorded; the box replay is the identity."""

    drop_prob: float = 0.25
    sparsify_prob: float = 0.05
    sparsify_max_num: int = 50
    swap_prob: float = 0.1
    swap_max_num: int = 50


LOCAL_OPS = (LocalRotation, LocalScaling, LocalTranslation, LocalFrustumDropout, LocalPyramidAug)
"""OpenPCDet's per-object ops; replayed by `assignaudit.augment.local`."""


@dataclass(frozen=True)
class ObjectNoise:
    """mmdet3d ``ObjectNoise`` (``noise_per_object_v3_``, data_augment_utils.py): every GT box in turn gets the first
    of ``num_try`` (translation ~ N(0, std) per axis, rotation ~ U(rot_range)) trials whose BEV box collides with no
    other box (earlier boxes at their new place); a box with no such trial stays. ``global_rot_range`` wider than
    1e-3 also moves the box on a circle about the origin to a bearing ~ U(global_rot_range) first (v2 path).
    `assignaudit.augment.object_noise` replays it."""

    translation_std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    rot_range: tuple[float, float] = (-0.15707963267, 0.15707963267)
    global_rot_range: tuple[float, float] = (0.0, 0.0)
    num_try: int = 100


@dataclass(frozen=True)
class BEVFusionGlobalRotScaleTrans(GlobalRotScaleTrans):
    """BEVFusion's ``BEVFusionGlobalRotScaleTrans`` (projects/BEVFusion/bevfusion/transforms_3d.py): the same three
    draws in the same order as `GlobalRotScaleTrans` (angle, scale, translation), applied rotate -> translate ->
    scale, so the translation is scaled too."""


@dataclass(frozen=True)
class GlobalRotScaleTransImage:
    """PETR's ``GlobalRotScaleTransImage`` (projects/PETR/petr/transforms_3d.py) on the 3D boxes: a ~ U(rot_range)
    then s ~ U(scale_ratio_range) (two uniforms, in this order; ``translation_std`` is never used upstream). The
    boxes are rotated counter-clockwise by a (-a with ``reverse_angle``): centres and velocities; the yaw gets +a
    (-a), and then, without ``reverse_angle``, ``yaw -= 2 a``: centres turn by +a while yaws turn by -a, as upstream
    trains. Then centres, sizes and velocities are scaled by s."""

    rot_range_rad: tuple[float, float] = (-0.3925, 0.3925)
    scale_range: tuple[float, float] = (0.95, 1.05)
    reverse_angle: bool = False


@dataclass(frozen=True)
class ObjectRangeFilter:
    """mmdet3d ``ObjectRangeFilter`` where the pipeline has it *before* an op that moves boxes (PETR): the range
    filter (``gt_filters.range_filter``, the config's range) runs at this point of the list instead of after the
    augmentations; later ops may move boxes out of the range and they stay, as upstream."""


AugOp = Union[WorldFlip, WorldRotation, WorldScaling, WorldTranslation, GTSampling, GlobalRotScaleTrans,
              RandomFlip3D, ObjectSample, LocalRotation, LocalScaling, LocalTranslation, LocalFrustumDropout,
              LocalPyramidAug, ObjectNoise, GlobalRotScaleTransImage, ObjectRangeFilter,
              BEVFusionGlobalRotScaleTrans]
