"""Raw KITTI object detection labels and calibration as a source.

Placeholder: the reader is being written (issue: "Read the data users already have").
"""

from __future__ import annotations

from assignaudit.errors import DataError


class KittiSource:
    def __init__(self, root, split: str = "train") -> None:
        raise DataError("--kitti-root: raw KITTI is not supported yet")
