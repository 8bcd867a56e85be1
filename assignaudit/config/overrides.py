"""``--set KEY VALUE`` overrides on a raw (parsed, not yet validated) config dict.

Two dialects, chosen by the config's format:

* **our schema** (`apply_schema_overrides`): dotted keys, list indices as numbers (``anchors.0.matched_threshold``),
  the value parsed as YAML (``0.7`` -> float, ``[x, y]`` -> list, ``high`` -> the string ``'high'``). Missing
  mapping keys may be added (validation rejects unknown ones); list indices must exist. The result is then fully
  validated, so a wrongly typed value is reported like one in the file.
* **OpenPCDet** (`apply_pcdet_overrides`): ``pcdet/config.py::cfg_from_list`` semantics. Every key on the path must
  already exist; the value is ``ast.literal_eval``-ed with a fallback to the raw string; its type must equal the
  existing value's, except that (as upstream) a string for a mapping is read as ``k1:v1,k2:v2`` and a string for a
  list as comma-separated items cast to the type of the list's first item. Our extensions: numeric path segments
  index into lists (``MODEL.DENSE_HEAD.ANCHOR_GENERATOR_CONFIG.0.matched_threshold 0.7``), an int is accepted where
  a float is expected, and problems are `ConfigError`s instead of ``assert``.

Neither function modifies its input.
"""

from __future__ import annotations

import ast
import copy
from typing import Any, Sequence

from assignaudit.config._check import show, type_name
from assignaudit.config._yaml import parse_yaml_text
from assignaudit.errors import ConfigError


def _segments(key: str) -> list[str]:
    parts = key.split(".")
    if not key or any(p == "" for p in parts):
        raise ConfigError(f"--set {key!r}: expected a dotted key such as anchors.0.matched_threshold")
    return parts


def _step(node: Any, seg: str, key: str, *, create: bool) -> tuple[Any, Any]:
    """Resolve one path segment: returns (container, index-or-key). Lists take numeric segments."""
    if isinstance(node, list):
        try:
            idx = int(seg)
        except ValueError:
            raise ConfigError(f"--set {key}: {seg!r} indexes a list, expected a number") from None
        if not -len(node) <= idx < len(node):
            raise ConfigError(f"--set {key}: index {idx} is out of range (the list has {len(node)} entries)")
        return node, idx
    if isinstance(node, dict):
        if seg not in node and not create:
            raise ConfigError(f"--set {key}: key {seg!r} not found (available: {', '.join(map(str, node))})")
        return node, seg
    raise ConfigError(f"--set {key}: cannot descend into {type_name(node)} at {seg!r}")


def apply_schema_overrides(raw: Any, overrides: Sequence[tuple[str, str]]) -> Any:
    """Apply ``(dotted_key, yaml_value)`` pairs to a raw config in our schema; returns a new dict."""
    out = copy.deepcopy(raw)
    for key, value in overrides:
        parts = _segments(key)
        if not isinstance(out, dict):
            raise ConfigError(f"--set {key}: the config is not a mapping")
        node: Any = out
        for seg in parts[:-1]:
            container, k = _step(node, seg, key, create=True)
            if isinstance(container, dict) and k not in container:
                container[k] = {}
            node = container[k]
        container, k = _step(node, parts[-1], key, create=True)
        container[k] = parse_yaml_text(value, f"--set {key}")
    return out


def apply_pcdet_overrides(raw: Any, overrides: Sequence[tuple[str, str]]) -> Any:
    """Apply ``(dotted_key, value)`` pairs with OpenPCDet ``cfg_from_list`` semantics; returns a new dict."""
    out = copy.deepcopy(raw)
    for key, text in overrides:
        parts = _segments(key)
        node: Any = out
        for seg in parts[:-1]:
            container, k = _step(node, seg, key, create=False)
            node = container[k]
        container, k = _step(node, parts[-1], key, create=False)
        container[k] = _pcdet_value(container[k], text, key)
    return out


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text  # upstream: a bare `except` falls back to the string


def _same_type(old: Any, new: Any) -> bool:
    if type(old) is type(new):
        return True
    # Our leniency: 1 where 0.5 was is a float threshold written without a dot (upstream asserts here).
    return type(old) is float and type(new) is int


def _cast_like(old: Any, text: str, key: str) -> Any:
    text = text.strip()
    if isinstance(old, bool):
        if text in ("True", "true"):
            return True
        if text in ("False", "false"):
            return False
        raise ConfigError(f"--set {key}: expected True or False, got {text!r}")
    if old is None or isinstance(old, (int, float, str)):
        target = str if old is None else type(old)
        if target is str:
            return text
        value = _literal(text)
        if isinstance(value, bool) or not _same_type(target(), value):
            raise ConfigError(f"--set {key}: expected {target.__name__}, got {text!r}")
        return target(value)
    raise ConfigError(f"--set {key}: cannot set a {type_name(old)} item from a string")


def _pcdet_value(old: Any, text: str, key: str) -> Any:
    value = _literal(text)
    if isinstance(old, dict) and not isinstance(value, dict):
        # Upstream: "k1:v1,k2:v2" updates those keys of the mapping, each cast to its existing type.
        if not isinstance(value, str):
            raise ConfigError(f"--set {key}: expected a mapping or 'k1:v1,k2:v2', got {show(value)}")
        new = copy.deepcopy(old)
        for item in value.split(","):
            sub, sep, sub_text = item.partition(":")
            if not sep or sub.strip() not in new:
                raise ConfigError(f"--set {key}: {item!r} is not 'key:value' with an existing key "
                                  f"(keys: {', '.join(map(str, new))})")
            new[sub.strip()] = _cast_like(new[sub.strip()], sub_text, f"{key}.{sub.strip()}")
        return new
    if isinstance(old, list) and not isinstance(value, list):
        # Upstream: "a,b,c" -> a list whose items take the type of the existing first item.
        if not isinstance(value, (str, tuple)):
            raise ConfigError(f"--set {key}: expected a list or comma-separated values, got {show(value)}")
        if isinstance(value, tuple):
            return list(value)
        if not old:
            return [v.strip() for v in value.split(",")]
        return [_cast_like(old[0], v, key) for v in value.split(",")]
    if old is not None and not _same_type(old, value):
        raise ConfigError(f"--set {key}: type {type(value).__name__} ({show(value)}) does not match the existing "
                          f"{type(old).__name__} ({show(old)})")
    return float(value) if type(old) is float and type(value) is int else value


def parse_class_map(text: str) -> tuple[tuple[str, str], ...]:
    """``--class-map 'Car=car,Pedestrian=pedestrian'`` -> ``(('Car', 'car'), ('Pedestrian', 'pedestrian'))``."""
    pairs = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ConfigError(f"--class-map expects DATASET=CONFIG pairs separated by commas, e.g. Car=car, "
                              f"got {item!r}")
        pairs.append((src.strip(), dst.strip()))
    if not pairs:
        raise ConfigError("--class-map expects at least one DATASET=CONFIG pair, e.g. Car=car")
    sources = [s for s, _ in pairs]
    dup = next((s for s in sources if sources.count(s) > 1), None)
    if dup is not None:
        raise ConfigError(f"--class-map maps {dup!r} twice")
    return tuple(pairs)


def apply_class_map(config, text: str):
    """A copy of ``config`` whose ``gt_filters.class_mapping`` is extended by ``--class-map`` (its pairs win)."""
    import dataclasses

    pairs = parse_class_map(text)
    bad = [dst for _, dst in pairs if dst not in config.class_names]
    if bad:
        raise ConfigError(f"--class-map target {bad[0]!r} is not a class of config {config.name!r} "
                          f"(its classes: {', '.join(config.class_names)})")
    mapping = dict(config.gt_filters.class_mapping)
    mapping.update(pairs)
    filters = dataclasses.replace(config.gt_filters, class_mapping=tuple(mapping.items()))
    return dataclasses.replace(config, gt_filters=filters)
