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
    ATSS = "atss"  # OpenPCDet ATSSTargetAssigner (§4): class-agnostic, rotated BEV IoU, top-k 3D centre distance


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
    """pcdet: anchor bottoms, one z level each. mmdet3d generators: not used (the bottom is the ``anchor_range`` z,
    D = 1), may be empty."""
    matched_threshold: float
    unmatched_threshold: float
    feature_map_stride: int = 1
    align_center: bool = False
    min_pos_iou: float | None = None  # mmdet semantics only; None -> AssignerParams.min_pos_iou
    anchor_range: tuple[float, float, float, float, float, float] | None = None
    """mmdet3d generators only: this size's ``ranges`` entry (x_min, y_min, z_min, x_max, y_max, z_max), metres,
    z = anchor **bottom** (mmdet3d boxes are bottom-centred). None: the layout's point_cloud_range. pcdet: unused."""

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
    generator: str = "pcdet"
    """Whose anchor generator (assignment-semantics §2, §6.4):
    ``pcdet``: OpenPCDet AnchorGenerator (arange; ``align_center`` per set);
    ``mmdet3d``: ``Anchor3DRangeGenerator`` (linspace, endpoints included);
    ``mmdet3d_aligned``: ``AlignedAnchor3DRangeGenerator`` (cell centres; ``align_corner`` below).
    mmdet3d layouts are always single-head order per level ``(z, y, x, set, size, rot)``, levels concatenated."""
    align_corner: bool = False  # mmdet3d_aligned only
    levels: tuple["AnchorLevel", ...] = ()
    """mmdet3d FPN levels, concatenated in this order before assignment. Empty: one level at each set's
    ``feature_map_stride`` with scale 1."""


@dataclass(frozen=True)
class AnchorLevel:
    """One FPN output level of an mmdet3d anchor head: feature map = ``grid[:2] // feature_map_stride``; anchor
    sizes are multiplied by ``scale`` (``Anchor3DRangeGenerator(scales=[...])``)."""

    feature_map_stride: int
    scale: float = 1.0


@dataclass(frozen=True)
class AssignerParams:
    """How anchors are labelled. See `assignaudit.assign` for the exact rules."""

    framework: Framework = Framework.PCDET
    iou: IouKind = IouKind.NEAREST_BEV
    """AxisAligned / MaxIoU: the IoU of the candidate pairs. ATSS has no nearest-BEV variant: ``IOU_3D`` (pcdet
    ``MATCH_HEIGHT``) selects the 3D IoU, anything else the rotated BEV IoU."""
    nearest_convention: str = "pcdet"  # "pcdet": swap dims at |r| >= pi/4; "mmdet3d": at |r| > pi/4
    min_pos_iou: float = 0.0  # mmdet only (pcdet has none: any IoU > 0 forces a positive)
    gt_max_assign_all: bool = True  # mmdet only: every tied prior is forced (pcdet always does this)
    class_agnostic: bool = False  # mmdet only: one assigner over all anchors and all GT
    match_low_quality: bool = True  # mmdet only
    assign_per_class: bool = True
    """mmdet with one assigner per anchor size (``train_cfg.assigner`` a list, ``class_agnostic`` False): True ->
    size i sees only GT of class i (the set's class); False -> every size's assigner sees every GT of every class
    (mm3d <= 0.18 KITTI PointPillars, SECOND KITTI at HEAD; assignment-semantics §6.5)."""
    atss_topk: int = 9  # ATSS only: candidates per GT
    atss_upstream_quirks: bool = False  # ATSS only: reproduce the transposed inside-GT test (§4 step 3)


@dataclass(frozen=True)
class QueryParams:
    """A query-based head's Hungarian matcher (assignment-semantics §8)."""

    cost: str = "detr3d"  # "detr3d" (DETR3D / PETR) | "transfusion" (OpenPCDet TransFusion) | "transfusion_mmdet3d"
    # (mmdetection3d BEVFusion TransFusionHead: the same costs with the true 3D IoU)
    num_queries: int = 900
    num_layers: int = 6  # decoder layers whose outputs are matched independently
