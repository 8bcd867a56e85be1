"""`load_config`: a preset name, our YAML schema, an OpenPCDet model YAML or an mmdetection3d .py config -> one frozen
`DetectorConfig`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from assignaudit.config._yaml import parse_yaml_text, read_yaml_file
from assignaudit.config.model import DetectorConfig
from assignaudit.config.overrides import apply_pcdet_overrides, apply_schema_overrides
from assignaudit.config.schema import config_from_dict, is_our_schema
from assignaudit.errors import ConfigError

DEFAULT_PRESET = "pcdet-nuscenes-pointpillars-multihead"
_PRESET_SUFFIX = ".yaml"
_PCDET_KEYS = ("MODEL", "CLASS_NAMES", "DATA_CONFIG")


def _preset_dir():
    return resources.files("assignaudit") / "presets"


def list_presets() -> tuple[str, ...]:
    """Names of the built-in presets (files ``assignaudit/presets/<name>.yaml``), sorted."""
    return tuple(sorted(p.name[: -len(_PRESET_SUFFIX)] for p in _preset_dir().iterdir()
                        if p.name.endswith(_PRESET_SUFFIX)))


def preset_text(name: str) -> str:
    """The YAML text of a built-in preset (it doubles as an example of our schema)."""
    if name not in list_presets():
        raise ConfigError(f"unknown preset {name!r}; available presets: {', '.join(list_presets())}")
    return (_preset_dir() / f"{name}{_PRESET_SUFFIX}").read_text(encoding="utf-8")


def load_config(spec: str | Path | None = None, overrides: Sequence[tuple[str, str]] = (),
                cfg_options: Sequence[str] | Mapping[str, Any] = ()) -> DetectorConfig:
    """Resolve a detector config.

    ``spec``:
      * ``None`` -> the default preset ``pcdet-nuscenes-pointpillars-multihead``;
      * a preset name (`list_presets`);
      * a path to a YAML file, auto-detected as our schema (top-level ``assignaudit: 1``, ``anchors:``, ``heatmap:``
        or ``query:``) or an OpenPCDet model config (top-level ``MODEL`` / ``CLASS_NAMES`` / ``DATA_CONFIG``;
        ``_BASE_CONFIG_`` resolved);
      * a path to an mmdetection3d 1.x ``.py`` config (read with mmengine, ``_base_`` resolved; needs the
        ``assignaudit[mmdet3d]`` extra).

    ``overrides``: ``(KEY, VALUE)`` pairs from ``--set KEY VALUE``, applied before validation, in order. Keys use the
    dialect of the config's format (docs/config.md): ``anchors.0.matched_threshold`` for presets and our schema,
    OpenPCDet's ``MODEL.DENSE_HEAD....`` keys for OpenPCDet files. Not for ``.py`` configs.

    ``cfg_options``: ``"key=value"`` strings from ``--cfg-options`` (parsed with mmengine ``DictAction`` semantics,
    `assignaudit.config.mmdet3d.parse_cfg_options`), or an already parsed ``{key: value}`` mapping; merged into an
    mmdetection3d ``.py`` config before it is read. Only for ``.py`` configs.

    Raises `ConfigError` (one line naming the file and key) for anything unknown, malformed or unsupported.
    """
    overrides = tuple((str(k), str(v)) for k, v in overrides)
    cfg_options = dict(cfg_options) if isinstance(cfg_options, Mapping) else tuple(str(o) for o in cfg_options)
    if spec is None:
        spec = DEFAULT_PRESET
    path = Path(spec)
    is_py = path.suffix.lower() == ".py"
    if cfg_options and not is_py:
        raise ConfigError(f"--cfg-options applies to mmdetection3d .py configs only; for {spec} use "
                          "--set KEY VALUE (see docs/config.md)")
    if is_py:
        if overrides:
            raise ConfigError(f"{spec}: --set does not apply to mmdetection3d .py configs; use "
                              f"--cfg-options {overrides[0][0]}={overrides[0][1]} (mmengine key=value syntax)")
        if not path.exists():
            raise ConfigError(f"{spec}: config file not found")
        if path.is_dir():
            raise ConfigError(f"{spec}: is a directory, expected a config file")
        from assignaudit.config.mmdet3d import load_mmdet3d_config

        return load_mmdet3d_config(path, cfg_options)
    if isinstance(spec, str) and not path.exists() and spec in list_presets():
        raw = parse_yaml_text(preset_text(spec), f"preset {spec}")
        raw = apply_schema_overrides(raw, overrides)
        return config_from_dict(raw, f"preset {spec}", default_name=spec, source=f"preset:{spec}")
    if not path.exists():
        if isinstance(spec, str) and path.suffix.lower() not in (".yaml", ".yml") and "/" not in spec \
                and "\\" not in spec:
            raise ConfigError(f"unknown preset {spec!r}; available presets: {', '.join(list_presets())} "
                              "(or give a path to a YAML or mmdetection3d .py config)")
        raise ConfigError(f"{spec}: config file not found")
    raw = read_yaml_file(path)
    if is_our_schema(raw):
        raw = apply_schema_overrides(raw, overrides)
        return config_from_dict(raw, str(path), default_name=path.stem, source=str(path))
    if isinstance(raw, dict) and any(k in raw for k in _PCDET_KEYS):
        from assignaudit.config.pcdet import pcdet_config_from_dict, resolve_pcdet_yaml

        merged = resolve_pcdet_yaml(path, raw)
        merged = apply_pcdet_overrides(merged, overrides)
        return pcdet_config_from_dict(merged, str(path), name=path.stem, source=str(path))
    raise ConfigError(f"{path}: not a detector config: expected our schema (top-level 'assignaudit: 1' or "
                      f"'anchors:'), an OpenPCDet model config (top-level {' / '.join(_PCDET_KEYS)}) or an "
                      "mmdetection3d .py config")
