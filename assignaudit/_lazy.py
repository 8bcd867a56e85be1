"""PEP 562 lazy package attributes: a package names which submodule defines each public name, and the submodule is
imported on first use. Used where a package's light submodules (parameter classes the config importers build) must
import without its torch-backed ones (`config show`, `--help` stay fast)."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_getattr(package: str, namespace: dict, exports: dict[str, str]) -> Callable[[str], object]:
    """The ``__getattr__`` for ``package``: ``exports`` maps a name to its submodule; the value is cached in the
    package's ``namespace`` after the first import."""

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
