"""Kept for imports written against it: `HeatmapParams` lives in `assignaudit.assign.params` (torch-free)."""

from assignaudit.assign.params import HeatmapParams, Variant  # noqa: F401

__all__ = ["HeatmapParams", "Variant"]
