"""Frozen parameters of anchor layouts and assigners (built by `assignaudit.config`, read by `assignaudit.assign`).

Assigners never see a YAML dict or an EasyDict: importers end by building these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from assignaudit.errors import ConfigError


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


Variant = Literal["pcdet", "mmdet3d"]


@dataclass(frozen=True)
class HeatmapParams:
    """A CenterHead's target settings (OpenPCDet ``TARGET_ASSIGNER_CONFIG`` / mmdet3d ``train_cfg`` + ``tasks``).

    ``heads`` lists the class names of each head (pcdet ``CLASS_NAMES_EACH_HEAD``) or task (mmdet3d ``tasks``);
    ``class_names`` is the dataset's class list that GT class indices refer to (pcdet ``CLASS_NAMES``, mmdet3d
    ``class_names``/``classes``).
    """

    point_cloud_range: tuple[float, float, float, float, float, float]  # x_min, y_min, z_min, x_max, y_max, z_max (m)
    voxel_size: tuple[float, float, float]  # metres
    feature_map_stride: int  # pcdet FEATURE_MAP_STRIDE, mmdet3d out_size_factor
    heads: tuple[tuple[str, ...], ...]
    class_names: tuple[str, ...]
    num_max_objs: int = 500  # mmdet3d: max_objs * dense_reg
    gaussian_overlap: float = 0.1
    min_radius: int = 2
    variant: Variant = "pcdet"
    feature_map_size: tuple[int, int] | None = None
    """(W, H). None: ``grid_size[:2] // stride`` with ``grid_size = round(range / voxel)`` (mmdet3d always does
    this; pcdet uses the real network output, which is the same for the shipped backbones)."""

    def __post_init__(self) -> None:
        if self.variant not in ("pcdet", "mmdet3d"):
            raise ConfigError(f"heatmap variant {self.variant!r} is unknown; use 'pcdet' or 'mmdet3d'")
        if len(self.point_cloud_range) != 6 or len(self.voxel_size) != 3:
            raise ConfigError("point_cloud_range needs 6 numbers and voxel_size 3")
        if not all(v > 0 for v in self.voxel_size[:2]) or self.feature_map_stride <= 0:
            raise ConfigError("voxel_size (x, y) and feature_map_stride must be positive")
        if self.num_max_objs < 0 or self.min_radius < 0 or not 0.0 < self.gaussian_overlap < 1.0:
            raise ConfigError("num_max_objs and min_radius must be >= 0 and gaussian_overlap in (0, 1)")
        w, h = self.map_size
        if w <= 0 or h <= 0:
            raise ConfigError(f"feature map size {(w, h)} is empty; check point_cloud_range, voxel_size and stride")
        flat = [c for head in self.head_classes for c in head]
        if len(set(flat)) != len(flat):
            raise ConfigError(f"a class appears in more than one head: {self.heads}")
        if len(set(self.class_names)) != len(self.class_names):
            raise ConfigError(f"class_names has duplicates: {self.class_names}")
        if len(flat) != len(self.class_names):
            # pcdet asserts this (center_head.py __init__); mmdet3d would index past its task list.
            raise ConfigError(
                f"heads cover {len(flat)} classes {tuple(flat)} but class_names has {len(self.class_names)}"
            )

    @property
    def map_size(self) -> tuple[int, int]:
        """(W, H) of the feature map in cells."""
        if self.feature_map_size is not None:
            return int(self.feature_map_size[0]), int(self.feature_map_size[1])
        pcr, v, s = self.point_cloud_range, self.voxel_size, self.feature_map_stride
        grid = [int(round((pcr[i + 3] - pcr[i]) / v[i])) for i in range(2)]
        return grid[0] // s, grid[1] // s

    @property
    def head_classes(self) -> tuple[tuple[str, ...], ...]:
        """Channel names per head. pcdet drops head classes that are not in ``class_names``; mmdet3d keeps tasks."""
        if self.variant == "pcdet":
            return tuple(tuple(c for c in head if c in self.class_names) for head in self.heads)
        return tuple(tuple(head) for head in self.heads)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Config-level traps that change which heatmap a GT lands in (see `heatmap_targets`)."""
        out: list[str] = []
        heads = self.head_classes
        head_of = {c: h for h, names in enumerate(heads) for c in names}
        if self.variant == "pcdet":
            for h, names in enumerate(heads):
                for local, name in enumerate(names):
                    alias = self.class_names[local]
                    if head_of[alias] > h:
                        out.append(
                            f"pcdet CenterHead head order is not monotone in CLASS_NAMES: GT of class {name!r} "
                            f"(head {h}) are relabelled in place to {alias!r} and drawn again in head "
                            f"{head_of[alias]} (center_head.py assign_targets mutates gt_boxes)"
                        )
        else:
            concat = tuple(c for names in heads for c in names)
            if concat != tuple(self.class_names):
                out.append(
                    "mmdet3d CenterHead maps GT to tasks by label index: class_names "
                    f"{tuple(self.class_names)} differs from the concatenated tasks {concat}, so label i is drawn "
                    "as the i-th task class"
                )
        return tuple(out)
