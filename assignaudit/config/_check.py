"""Typed readers for raw YAML values: every problem is a one-line `ConfigError` naming the file and the key path.

Messages look like ``model.yaml: anchors[3].matched_threshold: expected a number, got 'high'``. Both importers (our
schema and OpenPCDet) read through these helpers, so the wording is the same everywhere.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from assignaudit.errors import ConfigError

_MISSING = object()


def show(value: Any) -> str:
    """A short description of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def join(path: str, key: str | int) -> str:
    """``join('anchors', 3) -> 'anchors[3]'``; ``join('anchors[3]', 'sizes') -> 'anchors[3].sizes'``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class Checker:
    """Reads raw values for one config source; ``origin`` (a file path or preset name) prefixes every error."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {path}: {message}" if path else f"{self.origin}: {message}")

    # ---- containers ------------------------------------------------------------------------------------------------
    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a mapping, got {type_name(value)} {show(value)}")
        return value

    def sequence(self, value: Any, path: str, length: int | None = None, min_length: int = 0) -> list[Any]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise self.error(path, f"expected a list, got {type_name(value)} {show(value)}")
        if length is not None and len(value) != length:
            raise self.error(path, f"expected {length} values, got {len(value)}: {show(value)}")
        if len(value) < min_length:
            what = "a non-empty list" if min_length == 1 else f"at least {min_length} values"
            raise self.error(path, f"expected {what}, got {show(value)}")
        return list(value)

    def no_unknown_keys(self, section: Mapping[str, Any], path: str, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in section:
            if key not in allowed:
                raise self.error(join(path, str(key)), f"unknown key (expected one of: {', '.join(allowed)})")

    def required(self, section: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in section:
            raise self.error(join(path, key), "missing required key")
        return section[key]

    # ---- scalars ---------------------------------------------------------------------------------------------------
    def number(self, value: Any, path: str, *, lo: float | None = None, hi: float | None = None,
               positive: bool = False) -> float:
        """A finite real number as ``float``; ints are accepted, booleans and strings are not."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(path, f"expected a number, got {show(value)}")
        out = float(value)
        if not math.isfinite(out):
            raise self.error(path, f"expected a finite number, got {show(value)}")
        if positive and out <= 0:
            raise self.error(path, f"expected a positive number, got {show(value)}")
        if (lo is not None and out < lo) or (hi is not None and out > hi):
            if lo is not None and hi is not None:
                want = f"a number in [{lo:g}, {hi:g}]"
            else:
                want = f"a number >= {lo:g}" if lo is not None else f"a number <= {hi:g}"
            raise self.error(path, f"expected {want}, got {show(value)}")
        return out

    def fraction(self, value: Any, path: str) -> float:
        """A threshold / IoU in [0, 1]."""
        return self.number(value, path, lo=0.0, hi=1.0)

    def integer(self, value: Any, path: str, *, minimum: int | None = None) -> int:
        # 4.0 is accepted as 4 (a YAML author may write it); 4.5 and True are not.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()
        ):
            raise self.error(path, f"expected an integer, got {show(value)}")
        out = int(value)
        if minimum is not None and out < minimum:
            raise self.error(path, f"expected an integer >= {minimum}, got {show(value)}")
        return out

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {show(value)}")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(path, f"expected a non-empty string, got {show(value)}")
        return value

    def choice(self, value: Any, path: str, options: Iterable[str]) -> str:
        options = tuple(options)
        if not isinstance(value, str) or value not in options:
            raise self.error(path, f"expected one of {', '.join(options)}; got {show(value)}")
        return value

    # ---- composites ------------------------------------------------------------------------------------------------
    def numbers(self, value: Any, path: str, length: int | None = None, min_length: int = 0,
                positive: bool = False) -> tuple[float, ...]:
        items = self.sequence(value, path, length=length, min_length=min_length)
        return tuple(self.number(v, join(path, i), positive=positive) for i, v in enumerate(items))

    def range_pair(self, value: Any, path: str, *, symmetric_scalar: bool = False,
                   positive: bool = False) -> tuple[float, float]:
        """``[lo, hi]`` with lo <= hi; with ``symmetric_scalar`` a single number ``a`` means ``[-a, a]``."""
        if symmetric_scalar and not isinstance(value, (list, tuple)):
            a = self.number(value, path, lo=0.0)
            return (-a, a)
        lo, hi = self.numbers(value, path, length=2, positive=positive)
        if lo > hi:
            raise self.error(path, f"expected [low, high] with low <= high, got {show(value)}")
        return (lo, hi)

    def class_count_map(self, value: Any, path: str, *, minimum: int) -> tuple[tuple[str, int], ...]:
        """``{class: count, ...}`` in file order -> ``((class, count), ...)``."""
        section = self.mapping(value, path)
        out = []
        for name, count in section.items():
            key_path = join(path, str(name))
            out.append((self.string(name, key_path), self.integer(count, key_path, minimum=minimum)))
        return tuple(out)
