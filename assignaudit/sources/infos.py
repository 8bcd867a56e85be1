"""The frameworks' info files (OpenPCDet ``*_infos_*.pkl``, mmdetection3d >= 1.1 v2 infos) as a source.

Placeholder: the readers are being written (issue: "Read the data users already have").
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from assignaudit.errors import DataError


def open_infos(infos: Sequence[Path], *, infos_format: str | None = None, data_path: Path | None = None,
               split: str | None = None, config=None):
    raise DataError("--infos / --data-path: framework info files are not supported yet")
