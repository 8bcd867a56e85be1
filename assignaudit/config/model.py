"""The resolved detector config: one frozen dataclass that every importer (our YAML, presets, OpenPCDet YAML)
produces, and that `count` and `yaw` consume."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from assignaudit.assign.params import HeatmapParams
from assignaudit.assign.params import AnchorLayout, AssignerParams, QueryParams
from assignaudit.augment.params import AugOp


@dataclass(frozen=True)
class GTFilters:
    """Which GT reach the assigner (after augmentation; spec §3.5, §9.1)."""

    min_lidar_points: int = 1  # FILTER_MIN_POINTS_IN_GT: keep num_lidar_pts >= this (pcdet nuScenes: 1)
    drop_classes: tuple[str, ...] = ()
    """Dataset class names removed before the augmentation queue, as the dataset class does (OpenPCDet KITTI drops
    ``DontCare``, Waymo ``unknown``): unlike other out-of-config classes they then never block a gt_sampling
    paste."""
    class_mapping: tuple[tuple[str, str], ...] = ()  # dataset class -> config class (applied before the class filter)
    range_filter: str = "pcdet"  # "pcdet": centre inside on x, y, z inclusive; "mmdet3d": BEV strictly inside;
    # "none": no GT range filter (OpenPCDet without mask_points_and_boxes_outside_range / REMOVE_OUTSIDE_BOXES False)
    drop_other_classes: bool = False
    """mmdet3d ``KittiDataset`` / ``WaymoDataset`` (``Det3DDataset._remove_dontcare``): every GT whose class (after
    ``class_mapping``) is not in ``class_names`` has label -1 and is removed before the pipeline, so it never blocks
    an ``ObjectSample`` paste or an ``ObjectNoise`` trial (nuScenes / Lyft keep them until ``ObjectNameFilter``)."""
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
    nms_thresh_per_class: tuple[float, ...] = ()
    """OpenPCDet ``class_specific_nms`` (DSVT CenterHead): ``NMS_THRESH[k]`` for the class of label k, NMS per
    class; empty otherwise. `yaw` asks for ``--nms-thresh`` when the values differ."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a framework config says about its training data: the dataset class and the files its ``create_data``
    step wrote. Provenance and file lookup only (``count --data-path DIR`` finds the train infos and the
    gt_sampling database from it); it never changes a count by itself, so it is not part of config equality.

    Paths are as written in the config (usually relative to ``data_path``, which is itself relative to where the
    framework runs); `assignaudit.sources` resolves them against ``--data-path``.
    """

    framework: str | None = None
    """``pcdet`` | ``mmdet3d`` | None (our YAML / presets)."""
    dataset_type: str | None = None
    """OpenPCDet ``DATA_CONFIG.DATASET`` (``KittiDataset``, ``WaymoDataset``, ...) or mmdet3d's train dataset
    ``type`` (after unwrapping CBGS / Repeat wrappers)."""
    data_path: str | None = None
    """OpenPCDet ``DATA_PATH`` / mmdet3d ``data_root``."""
    train_infos: tuple[str, ...] = ()
    """Info files of the training split: OpenPCDet ``INFO_PATH[DATA_SPLIT['train']]`` / mmdet3d ``ann_file``."""
    db_infos: tuple[str, ...] = ()
    """gt_sampling database info files: OpenPCDet ``DB_INFO_PATH`` (all are loaded) / mmdet3d
    ``db_sampler.info_path``."""
    backup_db_infos: tuple[str, ...] = ()
    """OpenPCDet ``BACKUP_DB_INFO.DB_INFO_PATH``: used when a ``DB_INFO_PATH`` file is missing (Waymo configs)."""
    db_data_path: tuple[str, ...] = ()
    """OpenPCDet ``DB_DATA_PATH`` (shared-memory point files; no effect on boxes, recorded)."""
    options: tuple[tuple[str, str], ...] = ()
    """Dataset-class options that change which GT a frame hands on (``FILTER_EMPTY_BOXES_FOR_TRAIN``, ...), as
    ``(key, json value)`` pairs, for the record; OpenPCDet gt_sampling options that touch only points or files
    (``USE_SHARED_MEMORY``, ``FILTER_OBJ_POINTS_BY_TIMESTAMP``, ``TIME_RANGE``, ``BACKUP_DB_INFO``, ...) are
    recorded as ``gt_sampling.<KEY>``."""
    backup_db_data_path: tuple[str, ...] = ()
    """OpenPCDet ``BACKUP_DB_INFO.DB_DATA_PATH``: the point file that goes with ``backup_db_infos``."""
    skipped_transforms: tuple[str, ...] = ()
    """Train-pipeline transforms accepted without a replay because they only change images (mmdet3d
    ``MultiViewWrapper[...]``, ``ResizeCropFlipImage``, ...), for the record."""


HEAD_KINDS = ("anchor", "center", "query", "fcos")


@dataclass(frozen=True)
class DetectorConfig:
    """``head`` says which target family the detector trains with, and which of the three parameter blocks is set:

    * ``anchor``: ``anchors`` + ``assigner`` (AxisAligned, MaxIoU or ATSS; §3, §4, §6);
    * ``center``: ``heatmap`` (OpenPCDet or mmdet3d CenterHead; §5, §7);
    * ``query``: ``query`` (Hungarian matching of decoder queries; §8);
    * ``fcos``: ``fcos`` (FCOS-style centre sampling on BEV points; `assignaudit.assign.fcos`).
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
    dataset: DatasetSpec = field(default_factory=DatasetSpec, compare=False)
    """Where the config's training data lives (provenance and file lookup; not part of equality)."""
    fcos: Any = None
    """`assignaudit.assign.fcos.FcosParams` for ``head == "fcos"``."""

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """``round((PCR[3:6] - PCR[0:3]) / voxel)`` with numpy's round-half-even, as OpenPCDet's DataProcessor."""
        import numpy as np

        pcr = np.asarray(self.point_cloud_range, dtype=np.float32)
        vs = np.asarray(self.voxel_size, dtype=np.float32)
        g = np.round((pcr[3:6] - pcr[0:3]) / vs).astype(np.int64)
        return int(g[0]), int(g[1]), int(g[2])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the resolved config (what reports store and hash); ``dataset`` is left out (see
        `DatasetSpec`; reports record it separately)."""

        def conv(obj: Any) -> Any:
            if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
                d = {"type": type(obj).__name__} if type(obj).__module__.endswith("augment.params") else {}
                # compare=False fields (``dataset``) are provenance, not target semantics: not hashed.
                d.update({f.name: conv(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.compare})
                return d
            if isinstance(obj, Enum):
                return obj.value
            if isinstance(obj, (list, tuple)):
                return [conv(x) for x in obj]
            if isinstance(obj, float) and not math.isfinite(obj):
                return str(obj)
            return obj

        return conv(self)
