"""Detector configs: our YAML schema, built-in presets, the OpenPCDet YAML and mmdetection3d .py importers
(docs/config.md).

`load_config(spec, overrides, cfg_options=())` is the one entry point: a preset name, a path to our YAML schema, to an
OpenPCDet model YAML or to an mmdetection3d .py config, plus ``--set KEY VALUE`` overrides (YAML) or
``--cfg-options key=value`` strings (.py) -> a frozen `DetectorConfig`.
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
