"""Dataset sources: nuScenes (through nuscenes-devkit) and generic box tables (Parquet/CSV)."""

from assignaudit.sources.base import BoxSource, Frame, SourceInfo

__all__ = ["BoxSource", "Frame", "SourceInfo"]
