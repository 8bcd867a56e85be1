"""The resolved detector config: one frozen dataclass that every importer (our YAML, presets, OpenPCDet YAML)
produces, and that `count` and `yaw` consume."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from assignaudit.assign.heatmap import HeatmapParams
from assignaudit.assign.params import AnchorLayout, AssignerParams, QueryParams
from assignaudit.augment.params import AugOp


@dataclass(frozen=True)
class GTFilters:
    """Which GT reach the assigner (after augmentation; spec §3.5, §9.1)."""

    min_lidar_points: int = 1  # FILTER_MIN_POINTS_IN_GT: keep num_lidar_pts >= this (pcdet nuScenes: 1)
    class_mapping: tuple[tuple[str, str], ...] = ()  # dataset class -> config class (applied before the class filter)
    range_filter: str = "pcdet"  # "pcdet": centre inside on x, y, z inclusive; "mmdet3d": BEV strictly inside
    use_valid_flag: bool = False
    """mmdet3d nuScenes ``use_valid_flag=True`` (CenterPoint configs): keep ``num_lidar_pts + num_radar_pts > 0``
    instead of the LiDAR-point filter, so 0-LiDAR-point boxes with radar points are kept (spec §9.2, §12.11)."""


@dataclass(frozen=True)
class PostProcessing:
    """Post-processing / NMS settings (spec §10), used as defaults by `yaw`."""

    score_thresh: float = 0.1
    multi_classes_nms: bool = False  # True: NMS per class, post_maxsize per class
    nms_type: str = "nms_gpu"  # "nms_gpu" (rotated BEV) | "circle"
    nms_thresh: float = 0.2
    nms_pre_maxsize: int | None = None
    nms_post_maxsize: int | None = None
    circle_min_radius_sq: tuple[float, ...] = ()  # squared metres, per task/class group


HEAD_KINDS = ("anchor", "center", "query")


@dataclass(frozen=True)
class DetectorConfig:
    """``head`` says which target family the detector trains with, and which of the three parameter blocks is set:

    * ``anchor``: ``anchors`` + ``assigner`` (AxisAligned, MaxIoU or ATSS; §3, §4, §6);
    * ``center``: ``heatmap`` (OpenPCDet or mmdet3d CenterHead; §5, §7);
    * ``query``: ``query`` (Hungarian matching of decoder queries; §8).
    """

    name: str
    class_names: tuple[str, ...]
    point_cloud_range: tuple[float, float, float, float, float, float]
    voxel_size: tuple[float, float, float]
    anchors: AnchorLayout | None
    assigner: AssignerParams | None
    augmentations: tuple[AugOp, ...] = ()
    gt_filters: GTFilters = field(default_factory=GTFilters)
    post_processing: PostProcessing = field(default_factory=PostProcessing)
    source: str = "preset"  # where it came from: preset name or config path
    head: str = "anchor"
    heatmap: HeatmapParams | None = None
    query: QueryParams | None = None
    framework: str = "pcdet"  # "pcdet" | "mmdet3d": whose semantics the config reproduces (reports, compare)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """``round((PCR[3:6] - PCR[0:3]) / voxel)`` with numpy's round-half-even, as OpenPCDet's DataProcessor."""
        import numpy as np

        pcr = np.asarray(self.point_cloud_range, dtype=np.float32)
        vs = np.asarray(self.voxel_size, dtype=np.float32)
        g = np.round((pcr[3:6] - pcr[0:3]) / vs).astype(np.int64)
        return int(g[0]), int(g[1]), int(g[2])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the resolved config (what reports store and hash)."""

        def conv(obj: Any) -> Any:
            if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
                d = {"type": type(obj).__name__} if type(obj).__module__.endswith("augment.params") else {}
                d.update({f.name: conv(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
                return d
            if isinstance(obj, Enum):
                return obj.value
            if isinstance(obj, (list, tuple)):
                return [conv(x) for x in obj]
            if isinstance(obj, float) and not math.isfinite(obj):
                return str(obj)
            return obj

        return conv(self)
