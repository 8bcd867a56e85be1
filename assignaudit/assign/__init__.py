"""Anchor generators (OpenPCDet, mmdetection3d range / aligned-range with FPN levels) and assigners (OpenPCDet
AxisAligned, mmdet MaxIoU class-agnostic / per size / per class, OpenPCDet ATSS per anchor set).

`generate_anchors` builds a layout's anchors once; `assign_frame` labels one frame's GT against them and returns a
`FrameAssignment` of per-GT and per-set/band tallies. See `assignaudit.assign.anchors` for the generators' float32
recipes and `assignaudit.assign.assigner` for the exact rules.
"""

from assignaudit.assign.params import AnchorLayout, AnchorLevel, AnchorSet, AssignerParams, Framework, IouKind

# The torch-backed names load on first use (PEP 562), so importing the parameter classes (the config importers,
# `config show`) does not import torch.
_LAZY = {"Anchors": "anchors", "generate_anchors": "anchors", "assign_frame": "assigner", "FrameAssignment": "result"}

__all__ = [
    "AnchorLayout", "AnchorLevel", "AnchorSet", "Anchors", "AssignerParams", "FrameAssignment", "Framework", "IouKind",
    "assign_frame", "generate_anchors",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"assignaudit.assign.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'assignaudit.assign' has no attribute {name!r}")
