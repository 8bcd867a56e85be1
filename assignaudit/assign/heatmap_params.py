"""`HeatmapParams`: a CenterHead's target settings, in a module that needs neither torch nor numpy (the config
importers build it; `assignaudit.assign.heatmap` computes the targets and re-exports it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from assignaudit.errors import ConfigError

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
