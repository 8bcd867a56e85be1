"""Argoverse 2 sensor-dataset annotations as a source.

Placeholder: the reader is being written (issue: "Read the data users already have").
"""

from __future__ import annotations

from assignaudit.errors import DataError


class AV2Source:
    def __init__(self, root, split: str = "train") -> None:
        raise DataError("--av2-root: Argoverse 2 is not supported yet")
