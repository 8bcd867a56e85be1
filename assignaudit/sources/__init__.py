"""Dataset sources: nuScenes (through nuscenes-devkit) and generic box tables (Parquet/CSV)."""

from assignaudit.sources.base import BoxSource, Frame, SourceInfo
from assignaudit.sources.nuscenes import NuScenesSource
from assignaudit.sources.open import FIXTURE_DATAROOT, FIXTURE_SPLIT, FIXTURE_VERSION, open_source

__all__ = ["BoxSource", "Frame", "SourceInfo", "NuScenesSource", "TableSource", "open_source", "FIXTURE_DATAROOT",
           "FIXTURE_VERSION", "FIXTURE_SPLIT"]


def __getattr__(name: str):
    # TableSource pulls in pandas (~0.3 s); import it only when asked for.
    if name == "TableSource":
        from assignaudit.sources.table import TableSource

        return TableSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
