"""The gate policy: global thresholds plus per-class / per-band overrides, from a small YAML file and flags.

Policy file (every key optional; unknown keys are an error, so a typo cannot silently switch a rule off)::

    rules:                      # global thresholds (built-in defaults: `Thresholds`)
      max_pos_drop: 10%         # "10%" or 0.1; null/off switches a rule off
      max_pos_per_gt_drop: 10%
      max_zero_pos_increase: 2
      fail_on_zero_pos_class: true
      max_flip_rate: 0.02
      max_dup_rate: off
      max_aoe_increase: 0.05    # radians, or "3deg"
      min_count: 20
      tie_tolerance: 2
    overrides:                  # the most specific match wins: class+band > class > band > rules
      - class: traffic_cone
        max_pos_drop: 25%
      - band: "50+"
        min_count: 50
      - class: pedestrian
        band: 40-50
        max_pos_drop: 5%

Precedence: built-in defaults < policy ``rules`` < command-line flags < policy ``overrides``. Flags replace the
global values the policy file sets (they "win" over the policy), but a per-class or per-band override is more
specific than any flag and still applies to its cells, like ruff's per-file-ignores next to ``--select``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Mapping

from assignaudit.errors import ConfigError
from assignaudit.gate.rules import THRESHOLD_KEYS, Thresholds, parse_threshold

_TOP_KEYS: Final = frozenset({"rules", "overrides"})


@dataclass(frozen=True)
class Override:
    """Thresholds for the cells of one class, one band, or one (class, band); ``values`` holds only what it sets."""

    class_name: str | None
    band: str | None
    values: tuple[tuple[str, Any], ...]

    @property
    def specificity(self) -> int:
        """0 band only, 1 class only, 2 class and band (applied in that order so the most specific wins)."""
        if self.class_name is not None:
            return 2 if self.band is not None else 1
        return 0

    def matches(self, class_name: str, band: str) -> bool:
        return (self.class_name is None or self.class_name == class_name) and (self.band is None or self.band == band)


@dataclass(frozen=True)
class Policy:
    rules: Thresholds = Thresholds()
    overrides: tuple[Override, ...] = ()
    source: str | None = None
    """The policy file the rules came from (None: built-in defaults and flags)."""

    def with_flags(self, flags: Mapping[str, Any]) -> "Policy":
        """A policy whose global thresholds take every flag given (None = flag not given).

        ``flags`` maps `Thresholds` field names to raw flag values (strings as typed, bools, ints); each is parsed
        here and a bad one raises `ConfigError` naming the flag (``--max-pos-drop``).
        """
        parsed = {}
        for key, raw in flags.items():
            if key not in THRESHOLD_KEYS:
                raise ConfigError(f"unknown gate rule {key!r} (known: {', '.join(THRESHOLD_KEYS)})")
            if raw is None:
                continue
            parsed[key] = parse_threshold(key, raw, "--" + key.replace("_", "-"))
        return Policy(rules=self.rules.replace(**parsed), overrides=self.overrides, source=self.source)

    def thresholds_for(self, class_name: str, band: str) -> Thresholds:
        """The thresholds that apply to one (class, band) cell."""
        out = self.rules
        for ov in sorted(self.overrides, key=lambda o: o.specificity):  # stable: file order within a level
            if ov.matches(class_name, band):
                out = out.replace(**dict(ov.values))
        return out

    def check_names(self, class_names: set[str], bands: set[str]) -> None:
        """`ConfigError` when an override names a class or band that the compared reports do not have."""
        for ov in self.overrides:
            if ov.class_name is not None and ov.class_name not in class_names:
                raise ConfigError(f"policy {self.source or ''}: override for unknown class {ov.class_name!r} "
                                  f"(reports have: {', '.join(sorted(class_names))})")
            if ov.band is not None and ov.band not in bands:
                raise ConfigError(f"policy {self.source or ''}: override for unknown band {ov.band!r} "
                                  f"(reports have: {', '.join(sorted(bands))})")


def policy_from_mapping(data: Any, source: str = "policy") -> Policy:
    """Build a `Policy` from the parsed YAML (a mapping); `ConfigError` naming the offending key."""
    if data is None:
        return Policy(source=source)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping with 'rules' and/or 'overrides', got {type(data).__name__}")
    unknown = set(map(str, data)) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key {sorted(unknown)[0]!r} (expected 'rules' and/or 'overrides')")
    rules_raw = data.get("rules") or {}
    if not isinstance(rules_raw, Mapping):
        raise ConfigError(f"{source}: 'rules' must be a mapping of rule: threshold")
    parsed = {str(k): parse_threshold(str(k), v, f"{source}: rules.{k}") for k, v in rules_raw.items()}
    overrides_raw = data.get("overrides") or []
    if not isinstance(overrides_raw, list):
        raise ConfigError(f"{source}: 'overrides' must be a list of mappings with 'class' and/or 'band'")
    overrides = []
    for i, item in enumerate(overrides_raw):
        where = f"{source}: overrides[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where} must be a mapping with 'class' and/or 'band'")
        item = {str(k): v for k, v in item.items()}
        class_name = item.pop("class", None)
        band = item.pop("band", None)
        if class_name is None and band is None:
            raise ConfigError(f"{where} needs 'class' and/or 'band'")
        values = tuple((k, parse_threshold(k, v, f"{where}.{k}")) for k, v in item.items())
        if not values:
            raise ConfigError(f"{where} sets no rule")
        overrides.append(Override(None if class_name is None else str(class_name),
                                  None if band is None else str(band), values))
    return Policy(rules=Thresholds().replace(**parsed), overrides=tuple(overrides), source=source)


def load_policy(path: Path | None) -> Policy:
    """Read a policy YAML file (None -> built-in defaults); `ConfigError` when missing or malformed."""
    if path is None:
        return Policy()
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"policy file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"policy file is not valid YAML: {path}{at}") from err
    return policy_from_mapping(data, source=str(path))
