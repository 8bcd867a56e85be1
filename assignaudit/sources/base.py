"""What every dataset source hands to the rest of the pipeline: frames of canonical boxes.

A source turns the user's dataset into a stream of `Frame` objects. Everything downstream (augmentation replay,
assigners, yaw matching) sees only frames, so a new dataset is one new source module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol

import numpy as np


@dataclass(frozen=True)
class Frame:
    """The ground truth of one sample (one LiDAR sweep), in the canonical convention (`assignaudit.conventions`).

    Per-box arrays all have length N and line up row by row.
    """

    sample_token: str
    """nuScenes sample token, or the generic table's frame_id."""
    boxes_lidar: np.ndarray
    """float64 ``[N, 9]`` canonical boxes ``x, y, z, dx, dy, dz, yaw, vx, vy`` in the LIDAR_TOP frame."""
    detection_class: np.ndarray
    """object ``[N]``: detection class name (nuScenes: the devkit's ``category_to_detection_name``), or None."""
    category: np.ndarray
    """object ``[N]``: the dataset's own category name (``vehicle.car``, ...); equals the class for tables."""
    ann_token: np.ndarray
    """object ``[N]``: annotation token (None where the source has none)."""
    instance_token: np.ndarray
    """object ``[N]``: instance token (None where the source has none)."""
    num_lidar_pts: np.ndarray
    """int64 ``[N]``: LiDAR points inside the box (-1 when unknown)."""
    num_radar_pts: np.ndarray
    """int64 ``[N]``: radar points inside the box (-1 when unknown)."""
    scene_name: str | None = None
    global_SE3_lidar: np.ndarray | None = None
    """float64 ``[4, 4]``: maps LiDAR-frame points to the global frame (None for generic tables)."""
    ego_translation_global: np.ndarray | None = None
    """float64 ``[3]``: the ego position at the LIDAR_TOP timestamp (nuScenes eval distance is measured from it)."""
    difficulty: np.ndarray | None = None
    """int64 ``[N]``: the dataset's difficulty level (KITTI 0/1/2 easy/moderate/hard, -1 unknown or DontCare;
    Waymo 1/2 LEVEL_1/LEVEL_2; 0 where the format has the field but no value), or None when the source has none.
    gt_sampling's ``filter_by_difficulty`` and the KITTI evaluation read it."""
    lidar_path: str | None = None
    """Absolute path of the frame's point cloud (``.bin``, float32 x, y, z, ...) when the source knows it and it
    exists; heads whose targets need the points (VoxelNeXt) read it."""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.boxes_lidar.shape[0])

    @property
    def dist_bev_m(self) -> np.ndarray:
        """float64 ``[N]``: BEV distance of each box centre from the LiDAR origin, sqrt(x^2 + y^2)."""
        return np.hypot(self.boxes_lidar[:, 0], self.boxes_lidar[:, 1])


@dataclass(frozen=True)
class SourceInfo:
    """Provenance of a source, copied into report metadata and compared by the CI gate."""

    kind: str  # "nuscenes" | "table" | "pcdet_infos" | "mmdet3d_infos" | "kitti" | "av2"
    dataroot: str
    version: str
    split: str
    num_scenes: int
    num_samples: int


class BoxSource(Protocol):
    """A dataset of frames. Iteration order is the split's sample order and is deterministic."""

    info: SourceInfo

    def __len__(self) -> int: ...

    def sample_tokens(self) -> list[str]: ...

    def frames(self) -> Iterator[Frame]: ...
