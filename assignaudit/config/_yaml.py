"""YAML reading for configs: one safe loader, and malformed files become a one-line `ConfigError` with file:line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from assignaudit.errors import ConfigError


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float.

    PyYAML implements YAML 1.1, where a float needs a dot (``1.0e-3``), so ``1e-3`` silently becomes the *string*
    ``'1e-3'``; a threshold typed that way would then fail validation with a confusing "got '1e-3'". YAML 1.2 (and
    every user's intuition) says it is a number.
    """


_FLOAT_NO_DOT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")
_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_NO_DOT, list("-+0123456789"))


def parse_yaml_text(text: str, origin: str) -> Any:
    """Parse YAML ``text``; ``origin`` (a file name or ``--set KEY``) names it in the error message."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{origin}:{mark.line + 1}:{mark.column + 1}" if mark is not None else origin
        problem = err.problem or err.context or "invalid YAML"
        raise ConfigError(f"{where}: malformed YAML: {problem}") from err
    except yaml.YAMLError as err:  # pragma: no cover - every PyYAML parse error is marked
        raise ConfigError(f"{origin}: malformed YAML: {err}".splitlines()[0]) from err


def read_yaml_file(path: Path) -> Any:
    """Read and parse a YAML file; a missing/unreadable file or malformed YAML is a one-line `ConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: config file not found") from err
    except IsADirectoryError as err:
        raise ConfigError(f"{path}: is a directory, expected a YAML config file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config file: {err}".splitlines()[0]) from err
    return parse_yaml_text(text, str(path))
