"""Detector configs: our YAML schema, built-in presets and the OpenPCDet YAML importer (docs/config.md).

`load_config(spec, overrides)` is the one entry point: a preset name, a path to our YAML schema or to an OpenPCDet
model YAML, plus ``--set KEY VALUE`` overrides -> a frozen `DetectorConfig`.
"""

from assignaudit.config.loader import DEFAULT_PRESET, list_presets, load_config, preset_text
from assignaudit.config.model import DetectorConfig, GTFilters, PostProcessing
from assignaudit.config.schema import config_from_dict, config_to_dict

__all__ = [
    "DEFAULT_PRESET",
    "DetectorConfig",
    "GTFilters",
    "PostProcessing",
    "config_from_dict",
    "config_to_dict",
    "list_presets",
    "load_config",
    "preset_text",
]
