"""Frozen parameters of anchor layouts and assigners (built by `assignaudit.config`, read by `assignaudit.assign`).

Assigners never see a YAML dict or an EasyDict: importers end by building these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Framework(str, Enum):
    """Whose assignment semantics to reproduce (assignment-semantics.md §3 vs §6, pitfalls §12)."""

    PCDET = "pcdet"  # AxisAlignedTargetAssigner: no min_pos_iou, forced anchor keeps its own argmax GT
    MMDET = "mmdet"  # MaxIoUAssigner: min_pos_iou gate, forcing GT wins, later GT index overwrites earlier


class IouKind(str, Enum):
    NEAREST_BEV = "nearest_bev"  # the frameworks' default for anchor heads (MATCH_HEIGHT False)
    IOU_3D = "3d"  # OpenPCDet MATCH_HEIGHT True (rotated BEV x centre-z height overlap)
    BEV = "bev"  # exact rotated BEV IoU


@dataclass(frozen=True)
class AnchorSet:
    """One entry of OpenPCDet's ``ANCHOR_GENERATOR_CONFIG`` (one class)."""

    class_name: str
    sizes: tuple[tuple[float, float, float], ...]  # (dx, dy, dz) metres
    rotations: tuple[float, ...]  # radians; the shipped configs use 1.57, not pi/2
    bottom_heights: tuple[float, ...]  # metres; anchor centre z = bottom + dz / 2
    matched_threshold: float
    unmatched_threshold: float
    feature_map_stride: int = 1
    align_center: bool = False
    min_pos_iou: float | None = None  # mmdet semantics only; None -> AssignerParams.min_pos_iou

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.sizes) * len(self.rotations) * len(self.bottom_heights)


@dataclass(frozen=True)
class AnchorLayout:
    """Every anchor of a detector: the range, the voxel grid and the per-class anchor sets."""

    point_cloud_range: tuple[float, float, float, float, float, float]  # x_min, y_min, z_min, x_max, y_max, z_max
    voxel_size: tuple[float, float, float]
    anchor_sets: tuple[AnchorSet, ...]
    multihead: bool = True  # AnchorHeadMulti flat order (class, size, rot, z, y, x) vs single (z, y, x, class, ...)


@dataclass(frozen=True)
class AssignerParams:
    """How anchors are labelled. See `assignaudit.assign` for the exact rules."""

    framework: Framework = Framework.PCDET
    iou: IouKind = IouKind.NEAREST_BEV
    nearest_convention: str = "pcdet"  # "pcdet": swap dims at |r| >= pi/4; "mmdet3d": at |r| > pi/4
    min_pos_iou: float = 0.0  # mmdet only (pcdet has none: any IoU > 0 forces a positive)
    gt_max_assign_all: bool = True  # mmdet only: every tied prior is forced (pcdet always does this)
    class_agnostic: bool = False  # mmdet only: one assigner over all anchors and all GT
    match_low_quality: bool = True  # mmdet only
