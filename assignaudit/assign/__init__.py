"""Anchor generators and assigners (OpenPCDet AxisAligned, mmdet MaxIoU) on a sparse candidate path.

`generate_anchors` builds a layout's anchors once; `assign_frame` labels one frame's GT against them and returns a
`FrameAssignment` of per-GT and per-set/band tallies. See `assignaudit.assign.assigner` for the exact rules.
"""

from assignaudit.assign.anchors import Anchors, generate_anchors
from assignaudit.assign.assigner import assign_frame
from assignaudit.assign.params import AnchorLayout, AnchorSet, AssignerParams, Framework, IouKind
from assignaudit.assign.result import FrameAssignment

__all__ = [
    "AnchorLayout", "AnchorSet", "Anchors", "AssignerParams", "FrameAssignment", "Framework", "IouKind",
    "assign_frame", "generate_anchors",
]
