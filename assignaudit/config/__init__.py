"""Detector configs: our YAML schema, built-in presets and the OpenPCDet YAML importer."""

from assignaudit.config.model import DetectorConfig, GTFilters, PostProcessing

__all__ = ["DetectorConfig", "GTFilters", "PostProcessing"]
