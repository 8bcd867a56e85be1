"""Anchor generators (OpenPCDet, mmdetection3d range / aligned-range with FPN levels) and assigners (OpenPCDet
AxisAligned, mmdet MaxIoU class-agnostic / per size / per class, OpenPCDet ATSS per anchor set).

`generate_anchors` builds a layout's anchors once; `assign_frame` labels one frame's GT against them and returns a
`FrameAssignment` of per-GT and per-set/band tallies. See `assignaudit.assign.anchors` for the generators' float32
recipes and `assignaudit.assign.assigner` for the exact rules.
"""

from assignaudit._lazy import lazy_getattr

# Lazy (PEP 562): `assignaudit.assign.params` is imported by the config loaders, which must not pull in torch
# (`config show` stays fast); the torch modules load on first use of a name below.
_EXPORTS = {
    "Anchors": "anchors", "generate_anchors": "anchors", "assign_frame": "assigner", "FrameAssignment": "result",
    "AnchorLayout": "params", "AnchorLevel": "params", "AnchorSet": "params", "AssignerParams": "params",
    "Framework": "params", "IouKind": "params",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, globals(), _EXPORTS)
