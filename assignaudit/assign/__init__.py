"""Anchor generators (OpenPCDet, mmdetection3d range / aligned-range with FPN levels) and assigners (OpenPCDet
AxisAligned, mmdet MaxIoU class-agnostic / per size / per class, OpenPCDet ATSS per anchor set).

`generate_anchors` builds a layout's anchors once; `assign_frame` labels one frame's GT against them and returns a
`FrameAssignment` of per-GT and per-set/band tallies. See `assignaudit.assign.anchors` for the generators' float32
recipes and `assignaudit.assign.assigner` for the exact rules.
"""

from assignaudit.assign.anchors import Anchors, generate_anchors
from assignaudit.assign.assigner import assign_frame
from assignaudit.assign.params import AnchorLayout, AnchorLevel, AnchorSet, AssignerParams, Framework, IouKind
from assignaudit.assign.result import FrameAssignment

__all__ = [
    "AnchorLayout", "AnchorLevel", "AnchorSet", "Anchors", "AssignerParams", "FrameAssignment", "Framework", "IouKind",
    "assign_frame", "generate_anchors",
]
