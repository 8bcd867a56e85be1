"""What one frame's assignment leaves behind: per-GT and per-set tallies as CPU numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameAssignment:
    """The assignment of one frame, reduced to what the tallies need (no per-anchor arrays).

    K = number of GT passed in, S = anchor sets, B = range bands, P = positive anchors.

    Positives are credited to one GT by the framework's identity rule: OpenPCDet AxisAligned credits every positive
    (forced or not) to the anchor's own best GT ``a_arg``; mmdet credits a forced anchor to the (last) GT that forced
    it; ATSS to the GT it ends assigned to (a forced anchor: the last GT whose argmax it is). Where one GT is seen by
    several assigners (mmdet per-size assigners with ``assign_per_class`` False, ATSS per anchor set) its counts are
    summed over them.
    Negatives and ignores are tallied by the anchor set and the band of the anchor centre; positives are left to the
    caller to attribute by the credited GT (``pos_gt_index``), as assignment-semantics §14 suggests.
    """

    gt_num_pos: np.ndarray
    """int64 ``[K]``: positives credited to each GT."""
    gt_num_forced: np.ndarray
    """int64 ``[K]``: forced positives credited to each GT (pcdet: forced anchors whose ``a_arg`` is this GT;
    mmdet: anchors this GT forced and kept)."""
    gt_max_iou: np.ndarray
    """float32 ``[K]``: best IoU of the GT with any anchor it competes for (``g_max`` before pcdet's ``0 -> -1``)."""
    gt_zero_pos_reason: np.ndarray
    """object ``[K]``: None where ``gt_num_pos > 0``, else a ``schema.REASON_*`` string."""
    pos_gt_index: np.ndarray
    """int64 ``[P]``: for each positive anchor, the GT it is credited to."""
    pos_iou: np.ndarray
    """float32 ``[P]``: that anchor's IoU with that GT."""
    num_pos_per_set: np.ndarray
    """int64 ``[S]``: positive anchors per anchor set, whatever the credited GT's class (so a pedestrian-size anchor
    positive for a car counts for the pedestrian set with ``assign_per_class`` False or ATSS). Class-agnostic mmdet
    alone counts per set of the credited GT's class (one assigner, no per-set split); positives of a GT whose class
    has no anchor set are then only in ``gt_num_pos``."""
    num_neg_per_set_band: np.ndarray
    """int64 ``[S, B]``: negative anchors per anchor set and band of the anchor centre."""
    num_ignore_per_set_band: np.ndarray
    """int64 ``[S, B]``: ignored anchors per anchor set and band of the anchor centre."""
    num_candidates: int = 0
    """Anchor-GT pairs whose IoU was evaluated (diagnostics)."""
    pos_anchor_index: np.ndarray | None = None
    """int64 ``[P]`` (aligned with ``pos_gt_index``): flat anchor index of each positive (the untouched anchors that
    mmdet's ``min_pos_iou = 0`` corner case claims included). For `count --quality` and pictures (`assignaudit show`)."""
    pos_forced: np.ndarray | None = None
    """bool ``[P]``: the positive is forced (low-quality match) and would not pass the positive threshold alone."""
    ignore_anchor_index: np.ndarray | None = None
    """int64 ``[I]``: flat index of the ignored anchors that some GT touches (an IoU > 0 pair); untouched ignored
    anchors (a set with ``unmatched_threshold <= 0``) are not listed."""

    @property
    def num_pos(self) -> int:
        return int(self.pos_gt_index.shape[0])

    @property
    def num_neg(self) -> int:
        return int(self.num_neg_per_set_band.sum())

    @property
    def num_ignore(self) -> int:
        return int(self.num_ignore_per_set_band.sum())
