"""The gate's rules as data: thresholds, the rule catalogue, verdicts, and the vectorised judging of each rule kind.

A rule is a threshold on one metric of one (class, band) cell, of one of four kinds:

``REL_DROP``      relative drop from baseline to current (positives, positives per GT). A few positives of the
                  drop are first absorbed by ``tie_tolerance`` (forced-match ties differ between float paths:
                  performance-facts.md, "Numerical facts"), and the rule is not judged when the baseline count
                  behind the figure is below ``min_count`` (small counts are noise).
``ABS_INCREASE``  absolute increase from baseline to current (GT with zero positives; nuScenes AOE in radians).
``MAX_VALUE``     an absolute ceiling on the current value (flip rate, duplicate rate after NMS); judged only
                  when the current count behind the rate reaches ``min_count``.
``ZERO_CLASS``    a class with GT but no positives at all (judged on the class's ``all`` band only).

A threshold of ``None`` switches a rule off. Nothing here knows about typer, rich, files or YAML.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import numpy as np

from assignaudit.errors import ConfigError


class RuleKind(str, Enum):
    REL_DROP = "rel_drop"
    ABS_INCREASE = "abs_increase"
    MAX_VALUE = "max_value"
    ZERO_CLASS = "zero_class"


class Status(str, Enum):
    """Verdict of one (rule, class, band); ``INFO`` marks a compared cell that no rule judges."""

    FAIL = "fail"
    PASS = "pass"
    SKIP = "skip"
    INFO = "info"


@dataclass(frozen=True)
class Thresholds:
    """Every rule's threshold for one (class, band) cell. ``None`` switches a rule off.

    Fractions are plain floats (``0.1`` = 10 %); ``max_aoe_increase`` is in radians; counts are ints.
    """

    max_pos_drop: float | None = 0.10
    """Largest allowed relative drop of ``num_pos`` (after the tie tolerance)."""
    max_pos_per_gt_drop: float | None = 0.10
    """Largest allowed relative drop of ``pos_per_gt`` (after the tie tolerance, spread over the GT)."""
    max_zero_pos_increase: int | None = 2
    """Largest allowed absolute increase of ``num_gt_zero_pos`` (GT left without any positive anchor)."""
    fail_on_zero_pos_class: bool = True
    """Fail when a class has GT but no positives (OpenPCDet #382: 9 of 10 classes silently at zero)."""
    max_flip_rate: float | None = None
    """Ceiling on the current ``flip_rate`` of a yaw report (off by default: barriers and cones are symmetric)."""
    max_dup_rate: float | None = None
    """Ceiling on the current ``dup_rate_post_nms`` of a yaw report."""
    max_aoe_increase: float | None = None
    """Largest allowed absolute increase of ``aoe_nusc`` (radians)."""
    min_count: int = 20
    """Counts below this floor are not judged by relative or rate rules (noise)."""
    tie_tolerance: int = 2
    """Positives of a drop absorbed before a relative rule is judged (tie noise between float paths)."""

    def replace(self, **values: Any) -> "Thresholds":
        return dataclasses.replace(self, **values)


THRESHOLD_KEYS: Final = tuple(f.name for f in dataclasses.fields(Thresholds))


@dataclass(frozen=True)
class RuleSpec:
    """One rule of the catalogue: which threshold judges which metric of which report, and how."""

    name: str
    """The `Thresholds` field that holds its threshold (also the policy key and the JUnit class name)."""
    source: str
    """``"summary"`` (count) or ``"yaw"`` (yaw_summary)."""
    metric: str
    kind: RuleKind
    count_column: str | None
    """The count compared with ``min_count`` (baseline side for drops, current side for ceilings)."""
    label: str
    """What it checks, in words (reports and JUnit)."""


RULES: Final = (
    RuleSpec("max_pos_drop", "summary", "num_pos", RuleKind.REL_DROP, "num_pos", "positives dropped"),
    RuleSpec("max_pos_per_gt_drop", "summary", "pos_per_gt", RuleKind.REL_DROP, "num_gt", "positives per GT dropped"),
    RuleSpec("max_zero_pos_increase", "summary", "num_gt_zero_pos", RuleKind.ABS_INCREASE, None,
             "GT with zero positives increased"),
    RuleSpec("fail_on_zero_pos_class", "summary", "num_pos", RuleKind.ZERO_CLASS, None,
             "class has GT but no positives"),
    RuleSpec("max_flip_rate", "yaw", "flip_rate", RuleKind.MAX_VALUE, "num_matched", "flip rate above ceiling"),
    RuleSpec("max_dup_rate", "yaw", "dup_rate_post_nms", RuleKind.MAX_VALUE, "num_kept_nms",
             "duplicate rate after NMS above ceiling"),
    RuleSpec("max_aoe_increase", "yaw", "aoe_nusc", RuleKind.ABS_INCREASE, "num_matched", "nuScenes AOE increased"),
)
RULES_BY_NAME: Final = {r.name: r for r in RULES}

# Metrics compared per (class, band) for each report kind, in display order. Those without a rule are shown as INFO.
SUMMARY_METRICS: Final = ("num_gt", "num_pos", "pos_per_gt", "num_gt_zero_pos", "neg_per_pos", "ignore_per_pos")
YAW_METRICS: Final = ("num_matched", "flip_rate", "aoe_nusc", "dup_rate_post_nms")
INTEGER_METRICS: Final = frozenset({"num_gt", "num_pos", "num_gt_zero_pos", "num_matched", "num_pred"})
FRACTION_RULES: Final = frozenset({"max_pos_drop", "max_pos_per_gt_drop", "max_flip_rate", "max_dup_rate"})


@dataclass(frozen=True)
class Verdict:
    """The outcome of one rule on one (class, band) cell, or an INFO row for a compared metric with no rule."""

    report: str
    """``"summary"`` (count) or ``"yaw"``: the report the metric comes from."""
    rule: str | None
    """`RuleSpec.name`, or None for INFO rows."""
    metric: str
    class_name: str
    band: str
    baseline: float | None
    """None when the report (or the row) is absent on that side; NaN-free."""
    current: float | None
    delta: float | None
    """``current - baseline`` (absolute), None when either side is missing."""
    threshold: float | None
    status: Status
    message: str
    """One line a human reads in CI logs: class, band, what changed, the limit."""

    @property
    def rel_delta(self) -> float | None:
        """``delta / baseline``; None when undefined."""
        if self.delta is None or not self.baseline:
            return None
        return self.delta / self.baseline


def format_value(metric: str, value: float | None) -> str:
    """How reports print a metric value: counts as integers, rates as percentages, "-" when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric.startswith("num_"):
        return f"{value:.0f}"
    if metric in ("flip_rate", "dup_rate_post_nms"):
        return f"{100 * value:.2f}%"
    return f"{value:.4g}"


def format_threshold(rule: str | None, threshold: float | None) -> str:
    """How reports print a rule's limit ("10%", "2", "0.05 rad", "on"); "" for INFO rows."""
    if rule is None or threshold is None:
        return ""
    spec = RULES_BY_NAME[rule]
    if spec.kind is RuleKind.ZERO_CLASS:
        return "on"
    if rule in FRACTION_RULES:
        return f"{100 * threshold:g}%"
    if rule == "max_aoe_increase":
        return f"{threshold:g} rad"
    return f"{threshold:g}"


# ------------------------------------------------------------------------------------------------------------------
# Parsing threshold values (flags and policy share these; `where` names the flag or policy key in the error)
# ------------------------------------------------------------------------------------------------------------------

_OFF_WORDS: Final = frozenset({"off", "none", "null", "no", "false"})
_PERCENT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*%\s*$")


def _is_off(value: Any) -> bool:
    # YAML 1.1 (PyYAML) reads a bare `off` / `no` as False, so False means "off" too.
    return value is None or value is False or (isinstance(value, str) and value.strip().lower() in _OFF_WORDS)


def parse_fraction(value: Any, where: str) -> float | None:
    """``"10%"``, ``"0.1"`` or ``0.1`` -> 0.1; ``"off"``/None -> None (rule off).

    A bare number above 1 is refused rather than read as a percentage: ``--max-pos-drop 10`` almost certainly
    meant 10 %, and silently allowing a 1000 % drop would make the gate pass everything.
    """
    if _is_off(value):
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{where} expects a fraction like 10% or 0.1, got {value!r}")
    if isinstance(value, str):
        m = _PERCENT.match(value)
        try:
            frac = float(m.group(1)) / 100.0 if m else float(value)
        except ValueError:
            raise ConfigError(f"{where} expects a fraction like 10% or 0.1, got {value!r}") from None
        if not m and frac > 1:
            raise ConfigError(f"{where} expects a fraction like 10% or 0.1, got {value!r} (did you mean {value}%?)")
    elif isinstance(value, (int, float)):
        frac = float(value)
        if frac > 1:
            raise ConfigError(f"{where} expects a fraction like 10% or 0.1, got {value!r} (did you mean {value}%?)")
    else:
        raise ConfigError(f"{where} expects a fraction like 10% or 0.1, got {value!r}")
    if not math.isfinite(frac) or frac < 0:
        raise ConfigError(f"{where} must be a finite fraction >= 0, got {value!r}")
    return frac


def parse_count(value: Any, where: str, allow_off: bool = True) -> int | None:
    """A non-negative integer count (``"2"`` or 2); ``"off"``/None -> None when ``allow_off``."""
    if allow_off and _is_off(value):
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{where} expects a whole number >= 0, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} expects a whole number >= 0, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise ConfigError(f"{where} expects a whole number >= 0, got {value!r}")
    return int(number)


def parse_radians(value: Any, where: str) -> float | None:
    """An angle increase in radians (``"0.05"``, or ``"3deg"``); ``"off"``/None -> None."""
    if _is_off(value):
        return None
    text = str(value).strip().lower()
    scale = 1.0
    if text.endswith("deg"):
        text, scale = text[:-3].strip(), math.pi / 180.0
    try:
        rad = float(text) * scale
    except ValueError:
        raise ConfigError(f"{where} expects radians like 0.05 (or degrees like 3deg), got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(rad) or rad < 0:
        raise ConfigError(f"{where} expects radians >= 0 like 0.05 (or degrees like 3deg), got {value!r}")
    return rad


def parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "on", "1"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "no", "off", "0"}:
        return False
    raise ConfigError(f"{where} expects true or false, got {value!r}")


def parse_threshold(key: str, value: Any, where: str) -> Any:
    """Parse one `Thresholds` field from a flag string or a YAML scalar; `ConfigError` naming ``where``."""
    if key in FRACTION_RULES:
        return parse_fraction(value, where)
    if key == "max_zero_pos_increase":
        return parse_count(value, where)
    if key in ("min_count", "tie_tolerance"):
        return parse_count(value, where, allow_off=False)
    if key == "max_aoe_increase":
        return parse_radians(value, where)
    if key == "fail_on_zero_pos_class":
        return parse_bool(value, where)
    raise ConfigError(f"{where}: unknown rule {key!r} (known: {', '.join(THRESHOLD_KEYS)})")


# ------------------------------------------------------------------------------------------------------------------
# Judging, vectorised over the cells of one rule (arrays line up cell by cell)
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """Per-cell outcome of one rule: ``status`` object ``[K]`` of `Status`, ``reason`` object ``[K]`` of str."""

    status: np.ndarray
    reason: np.ndarray


def judge(spec: RuleSpec, baseline: np.ndarray, current: np.ndarray, threshold: np.ndarray,
          min_count: np.ndarray, tie_tolerance: np.ndarray, count_baseline: np.ndarray,
          count_current: np.ndarray, gt_current: np.ndarray) -> Judgement:
    """Judge one rule on K cells.

    All inputs are float64 ``[K]``; NaN marks a value missing on that side (no report or undefined rate).
    ``threshold`` is NaN where the rule is off for the cell (such cells get no verdict: the caller drops them).
    ``count_*`` are the rule's `RuleSpec.count_column` on each side, ``gt_current`` the current ``num_gt``.
    """
    k = baseline.shape[0]
    # int8 codes while judging (numpy turns str-Enum members into plain str); mapped to `Status` at the end.
    passed, skipped, failed = 0, 1, 2
    code = np.full(k, passed, dtype=np.int8)
    reason = np.full(k, "", dtype=object)

    def skip(mask: np.ndarray, why: str) -> None:
        sel = mask & (code != skipped)
        code[sel] = skipped
        reason[sel] = why

    with np.errstate(invalid="ignore", divide="ignore"):
        if spec.kind is RuleKind.REL_DROP:
            skip(np.isnan(baseline) | np.isnan(current), "missing on one side")
            skip(~(count_baseline >= min_count), "baseline count below min_count")
            tie = tie_tolerance.copy()
            if spec.metric == "pos_per_gt":
                # The tolerance is in positives; spread over the current GT it becomes a tolerance in pos/GT.
                tie = np.where(gt_current > 0, tie / np.where(gt_current > 0, gt_current, 1.0), 0.0)
            effective_drop = np.maximum(baseline - current - tie, 0.0)
            rel = np.where(baseline > 0, effective_drop / np.where(baseline > 0, baseline, 1.0), 0.0)
            # A tiny epsilon so that a drop of exactly the limit passes despite float rounding of the division.
            fail = (rel > threshold + 1e-12) & (code != skipped)
        elif spec.kind is RuleKind.ABS_INCREASE:
            skip(np.isnan(baseline) | np.isnan(current), "missing on one side")
            if spec.count_column is not None:
                skip(~(np.fmin(count_baseline, count_current) >= min_count), "count below min_count")
            fail = (current - baseline > threshold + 1e-12) & (code != skipped)
        elif spec.kind is RuleKind.MAX_VALUE:
            skip(np.isnan(current), "no value in current")
            skip(~(count_current >= min_count), "current count below min_count")
            fail = (current > threshold + 1e-12) & (code != skipped)
        elif spec.kind is RuleKind.ZERO_CLASS:
            skip(np.isnan(current), "missing in current")
            fail = (gt_current > 0) & (current == 0) & (code != skipped)
        else:  # pragma: no cover - the enum is closed
            raise AssertionError(spec.kind)
    code[fail] = failed
    status = np.empty(k, dtype=object)
    status[:] = [(Status.PASS, Status.SKIP, Status.FAIL)[c] for c in code]
    return Judgement(status=status, reason=reason)
