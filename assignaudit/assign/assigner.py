"""The anchor assigners: OpenPCDet AxisAligned and mmdet MaxIoU on sparse candidates, OpenPCDet ATSS per anchor set.

AxisAligned and MaxIoU run on the candidate pairs of `assignaudit.assign.candidates` (every pair with IoU > 0 is
among them) plus the static per-set/per-band anchor totals: an anchor that is no candidate of any GT has IoU 0 with
all of them, so its label is decided per anchor set without looking at it (negative, ignored when
``unmatched_threshold <= 0``, or, in mmdet's ``min_pos_iou = 0`` corner case, positive). Labels of candidate
("touched") anchors are computed with scatter reductions over the pairs; nothing of size anchors x GT is ever built.

Rules reproduced (assignment-semantics §3.3, §6.1, §12):

OpenPCDet ``AxisAlignedTargetAssigner.assign_targets_single`` (``pcdet/models/dense_heads/target_assigner/
axis_aligned_target_assigner.py`` @ 8cacccec), class-aware per anchor set:
  * ``a_max / a_arg`` over the set's GT; ties -> the lowest GT index (torch ``argmax`` returns the first maximum).
  * ``g_max[j]`` over the set's anchors; ``g_max == 0 -> -1`` so a GT overlapping nothing forces nothing.
  * forced F = every anchor with ``M[i, j] == g_max[j]`` for some j, exact float equality, so **all tied anchors**.
  * identity: a forced anchor is labelled and regressed with **its own** ``a_arg``, not the GT that forced it
    (OpenPCDet issue #55), so a GT can lose its forced anchors to a neighbour ("taken_by_other_gt").
  * pos = F u {a_max >= T_pos}; neg = {a_max < T_neg} \\ F; ignore = rest; no GT of the class -> all negative.
  * no ``min_pos_iou``: any IoU > 0 forces.

mmdet ``MaxIoUAssigner.assign_wrt_overlaps`` (``mmdet/models/task_modules/assigners/max_iou_assigner.py``), per
anchor set (``assign_per_class``) or class-agnostic (one assigner, all anchors, all GT):
  * neg = ``0 <= a_max < neg_thr``; pos = ``a_max >= pos_thr`` -> ``a_arg``.
  * low-quality matches loop over GT i in index order: if ``g_max[i] >= min_pos_iou``, every prior with
    ``M[i, :] == g_max[i]`` (``gt_max_assign_all``) or only the first argmax prior becomes ``i``, overwriting
    earlier assignments. Vectorised: the forcing GT of an anchor is the **largest** such i; it is also the credited
    GT (identity = forcing GT).
  * ``min_pos_iou = 0`` and a GT that overlaps nothing: ``g_max = 0 >= 0`` and every prior with IoU 0 (all priors
    it does not touch, i.e. practically every anchor it competes for) is forced to it, unless a later GT forces
    them. Handled without densifying: such a GT claims all untouched anchors of its domain by count, and every
    touched anchor of the domain through the per-domain maximum of those GT indices.

Which MaxIoU assigners run (mmdet3d ``Anchor3DHead``, §6.5; ``train_mixins.py::anchor_target_3d_single``):
  * ``class_agnostic``: ``train_cfg.assigner`` is a dict: one assigner over every anchor of every level (levels are
    concatenated before assignment, so low-quality matching competes across levels) and every GT, thresholds shared.
  * otherwise one assigner per anchor set (mmdet3d: per anchor size, ``train_cfg.assigner`` a list; each
    `AnchorSet` of an mmdet3d layout must then hold one size, and the layout one level, as upstream indexes
    ``anchors[..., i, :, :]`` of a single-level map), thresholds per set:
    - ``assign_per_class`` True: set i sees only the GT of its class (``gt_labels == i``);
    - ``assign_per_class`` False: **every** set's assigner sees **every** GT of every class (mm3d <= 0.18 KITTI
      PointPillars, SECOND KITTI), so a pedestrian-size anchor can become positive for a car. Implemented by
      expanding the K GT into S x K virtual GT ``v = s * K + k`` with set s, running the class-aware rule (each
      (GT, set) pair has its own ``g_max`` and forcing; within a set the virtual order is the GT order, so ties and
      "later GT wins" are unchanged) and folding back: per-GT counts are summed over sets, ``gt_max_iou`` is the
      maximum over sets, positives are credited to the original GT, and a zero-positive GT's reason is
      ``taken_by_other_gt`` if any set's assigner let it force, else ``no_overlap`` if it overlaps nothing in any
      set, else ``below_min_pos_iou``.

OpenPCDet ``ATSSTargetAssigner`` (§4; `assignaudit.assign.atss`): per anchor set, per frame, class-agnostic over all
GT (also GT of classes without an anchor set). Rotated BEV IoU (``IouKind.IOU_3D``: 3D IoU, ``MATCH_HEIGHT``; the
nearest-BEV kind, which ATSS does not have, reads as rotated BEV) with the kernel's 1 cm margin. Every GT forces its
argmax anchor in every set (IoU 0 everywhere: the set's first anchor), so a GT ends with 0 positives only when all its
forced anchors went to a later GT (``taken_by_other_gt``). No ignore state: everything else is negative.
"""

from __future__ import annotations

import numpy as np
import torch

from assignaudit import schema
from assignaudit.assign.anchors import MMDET3D_GENERATORS, Anchors, rotated_aabb
from assignaudit.assign.atss import AtssAnchorIndex, atss_positives_sets
from assignaudit.assign.candidates import candidate_iou, enumerate_candidates, gt_rectangles
from assignaudit.assign.params import AssignerParams, Framework, IouKind
from assignaudit.assign.result import FrameAssignment
from assignaudit.bands import Bands
from assignaudit.errors import ConfigError, DataError
from assignaudit.ops.host import to_host

_CONVENTIONS = ("pcdet", "mmdet3d")


def _check_inputs(anchors: Anchors, gt_boxes: torch.Tensor, gt_set_index: torch.Tensor, params: AssignerParams):
    if gt_boxes.ndim != 2 or gt_boxes.shape[1] < 7:
        raise DataError(f"gt_boxes must be [K, 7+] canonical boxes, got shape {tuple(gt_boxes.shape)}")
    if gt_set_index.shape != (gt_boxes.shape[0],):
        raise DataError(
            f"gt_set_index must have shape [{gt_boxes.shape[0]}] like gt_boxes, got {tuple(gt_set_index.shape)}"
        )
    if gt_boxes.shape[0]:
        # Both checks in one device-to-host read (one sync on CUDA).
        finite, sets_ok = torch.stack((torch.isfinite(gt_boxes[:, :7]).all(),
                                       ~((gt_set_index < -1) | (gt_set_index >= anchors.num_sets)).any())).tolist()
        if not finite:
            raise DataError("gt_boxes contain NaN or infinite values in x, y, z, dx, dy, dz or yaw")
        if not sets_ok:
            raise DataError(f"gt_set_index must be -1 or an anchor set index below {anchors.num_sets}")
    if params.nearest_convention not in _CONVENTIONS:
        raise ConfigError(f"nearest_convention must be one of {list(_CONVENTIONS)}, got {params.nearest_convention!r}")
    if params.framework is Framework.ATSS:
        if isinstance(params.atss_topk, bool) or not isinstance(params.atss_topk, int) or params.atss_topk < 1:
            raise ConfigError(f"ATSS topk must be an integer >= 1, got {params.atss_topk!r}")
        return  # ATSS has no IoU thresholds
    for s in anchors.layout.anchor_sets:
        # A non-positive positive threshold would make every IoU-0 anchor positive: not a real config, and the
        # sparse path could not represent it without densifying.
        if not s.matched_threshold > 0:
            raise ConfigError(f"anchor set {s.class_name!r}: matched_threshold must be > 0, got {s.matched_threshold}")


def _check_per_size_assigners(anchors: Anchors) -> None:
    """mmdet3d's list of assigners indexes ``anchors[..., i, :, :]`` of one ``[D, H, W, n_size, n_rot, 7]`` map:
    one assigner per size of a single level. Our per-set rule matches that when every set holds one size."""
    layout = anchors.layout
    if layout.generator not in MMDET3D_GENERATORS:
        return
    if anchors.num_levels > 1:
        raise ConfigError(
            "one assigner per anchor size needs a single-level anchor map (mmdetection3d's Anchor3DHead indexes "
            f"the size axis of one level), but the layout has {anchors.num_levels} levels: use class_agnostic"
        )
    multi = [s.class_name for s in layout.anchor_sets if len(s.sizes) != 1]
    if multi:
        raise ConfigError(
            f"one assigner per anchor size needs one size per anchor set (= ranges entry), but {multi} have several"
        )


def _min_pos_per_set(anchors: Anchors, params: AssignerParams) -> list[float]:
    return [s.min_pos_iou if s.min_pos_iou is not None else params.min_pos_iou for s in anchors.layout.anchor_sets]


def _agnostic_thresholds(anchors: Anchors, params: AssignerParams) -> tuple[float, float, float]:
    """A class-agnostic MaxIoUAssigner has one (pos, neg, min_pos) triple: every anchor set must agree."""
    sets = anchors.layout.anchor_sets
    mp = _min_pos_per_set(anchors, params)
    ref = (sets[0].matched_threshold, sets[0].unmatched_threshold, mp[0])
    for s, m in zip(sets, mp):
        if (s.matched_threshold, s.unmatched_threshold, m) != ref:
            raise ConfigError(
                f"class-agnostic assigner needs one threshold triple, but anchor set {s.class_name!r} has "
                f"(pos {s.matched_threshold}, neg {s.unmatched_threshold}, min_pos {m}) != {ref}"
            )
    return ref


def assign_frame(
    anchors: Anchors,
    gt_boxes: torch.Tensor,
    gt_set_index: torch.Tensor,
    params: AssignerParams,
    bands: Bands,
) -> FrameAssignment:
    """Assign one frame's GT to ``anchors`` with ``params.framework``'s rule; return the tallies.

    ``gt_boxes``: float32 ``[K, 7+]`` canonical boxes (centre z, LiDAR frame), same device as the anchors; only
    columns 0-6 are used. ``gt_set_index``: int64 ``[K]``, the anchor set of each GT's class, -1 for a class
    without anchor set (such a GT competes for nothing, except where every GT competes for every anchor set:
    class-agnostic mmdet, mmdet with ``assign_per_class`` False, ATSS). Thresholds come from each `AnchorSet`.
    Inputs are not modified. Device-agnostic torch; the returned arrays are numpy on the CPU.
    """
    _check_inputs(anchors, gt_boxes, gt_set_index, params)
    anchors = anchors.with_bands(bands)
    gt = gt_boxes[:, :7].to(torch.float32)
    gt_set = gt_set_index.to(device=gt.device, dtype=torch.int64)
    if params.framework is Framework.PCDET:
        return _assign_pcdet(anchors, gt, gt_set, params)
    if params.framework is Framework.ATSS:
        return _assign_atss(anchors, gt, gt_set, params)
    if not params.class_agnostic:
        _check_per_size_assigners(anchors)
        if not params.assign_per_class:
            return _assign_mmdet_every_gt_per_set(anchors, gt, gt_set, params)
    return _assign_mmdet(anchors, gt, gt_set, params)


# --------------------------------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------------------------------


def _candidates(anchors: Anchors, gt: torch.Tensor, gt_combo_mask: torch.Tensor, params: AssignerParams):
    rect, mode = gt_rectangles(gt, params.iou, params.nearest_convention)
    cand_a, cand_g = enumerate_candidates(anchors, rect, mode, gt_combo_mask)
    iou = candidate_iou(anchors, gt, rect, cand_a, cand_g, params.iou, params.nearest_convention, params.framework)
    return cand_a, cand_g, iou


def _unique_anchors(anchors: Anchors, cand_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(cand_a, return_inverse=True)`` (ascending unique anchors, pair -> unique index), the same
    tensors. Many pairs (the 560k class-agnostic layout: ~60-75k per frame): through per-layout scratch arrays of one
    slot per anchor, O(A + P) instead of a sort of the pairs (on the CPU in numpy, whose mask scan is several times
    faster than torch's CPU ``nonzero``); few pairs: the sort."""
    n_a = anchors.num_anchors
    if cand_a.numel() * 16 < n_a:
        return torch.unique(cand_a, return_inverse=True)
    key = ("unique_scratch", cand_a.device)
    if key not in anchors._cache:
        anchors._cache[key] = unique_scratch(n_a, cand_a.device)
    return unique_with_scratch(cand_a, anchors._cache[key])


def unique_scratch(num_anchors: int, device: torch.device):
    """Scratch for `unique_with_scratch` over anchor indices ``0 .. num_anchors - 1`` on ``device``."""
    if torch.device(device).type == "cpu":
        return np.zeros(num_anchors, dtype=bool), np.zeros(num_anchors, dtype=np.int64)
    return torch.full((num_anchors,), -1, dtype=torch.int64, device=device)


def unique_with_scratch(cand_a: torch.Tensor, scratch) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(cand_a, return_inverse=True)`` for int64 indices below the scratch size; the scratch is left
    as it was found (numpy pair on the CPU, a torch tensor of -1 elsewhere)."""
    if isinstance(scratch, tuple):
        seen, slot = scratch
        a = cand_a.numpy()
        seen[a] = True
        uniq = np.flatnonzero(seen)
        seen[uniq] = False  # all False again for the next frame
        slot[uniq] = np.arange(uniq.size, dtype=np.int64)
        return torch.from_numpy(uniq.astype(np.int64, copy=False)), torch.from_numpy(slot[a])
    mark = scratch
    mark.index_fill_(0, cand_a, 0)
    uniq = torch.nonzero(mark == 0).squeeze(1)
    mark.index_copy_(0, uniq, torch.arange(uniq.numel(), device=cand_a.device))
    inv = mark.index_select(0, cand_a)
    mark.index_fill_(0, uniq, -1)  # all -1 again for the next frame
    return uniq, inv


def _touched(anchors: Anchors, cand_a: torch.Tensor, cand_g: torch.Tensor, iou: torch.Tensor, num_gt: int):
    """Unique touched anchors ``[T]``, pair -> touched index, ``a_max [T]``, ``a_arg [T]`` (lowest GT on ties) and
    ``g_max [K]`` (0 for a GT without candidates)."""
    uniq, inv = _unique_anchors(anchors, cand_a)
    t = uniq.numel()
    a_max = torch.zeros(t, dtype=iou.dtype, device=iou.device).scatter_reduce(0, inv, iou, "amax")
    best = torch.where(iou == a_max.index_select(0, inv), cand_g, num_gt)
    a_arg = torch.full((t,), num_gt, dtype=torch.int64, device=iou.device).scatter_reduce(0, inv, best, "amin")
    g_max = torch.zeros(num_gt, dtype=iou.dtype, device=iou.device).scatter_reduce(0, cand_g, iou, "amax")
    return uniq, inv, a_max, a_arg, g_max


def _set_band_counts_t(anchors: Anchors, set_t: torch.Tensor, band_t: torch.Tensor, neg: torch.Tensor,
                       ign: torch.Tensor) -> torch.Tensor:
    """int64 ``[3, S, B]`` counts of the touched anchors (on their device): all of them, the ``neg`` ones and the
    ``ign`` ones (one scatter for the three)."""
    nb = len(anchors.bands)
    key = set_t * nb + band_t
    weights = torch.stack((torch.ones_like(neg), neg, ign)).to(torch.int64)  # [3, T]
    out = torch.zeros((3, anchors.num_sets * nb), dtype=torch.int64, device=key.device)
    out.index_add_(1, key, weights)
    return out.view(3, anchors.num_sets, nb)


def _set_band_counts(anchors: Anchors, set_t: torch.Tensor, band_t: torch.Tensor, neg: torch.Tensor,
                     ign: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_set_band_counts_t` as numpy ``(touched, neg, ign)``."""
    touched, n, i = _set_band_counts_t(anchors, set_t, band_t, neg, ign).cpu().numpy()
    return touched, n, i


def _reasons(num_pos: np.ndarray, g_max: np.ndarray, no_overlap: np.ndarray, below_min: np.ndarray) -> np.ndarray:
    reason = np.full(num_pos.shape[0], None, dtype=object)
    zero = num_pos == 0
    reason[zero] = schema.REASON_TAKEN
    reason[zero & below_min] = schema.REASON_BELOW_MIN_POS_IOU
    reason[zero & no_overlap] = schema.REASON_NO_OVERLAP
    return reason


def _empty_pairs(device):
    e = torch.zeros(0, dtype=torch.int64, device=device)
    return e, e, torch.zeros(0, dtype=torch.float32, device=device)


# --------------------------------------------------------------------------------------------------------------------
# OpenPCDet AxisAlignedTargetAssigner
# --------------------------------------------------------------------------------------------------------------------


def _assign_pcdet(anchors: Anchors, gt: torch.Tensor, gt_set: torch.Tensor, params: AssignerParams) -> FrameAssignment:
    k, s_num = gt.shape[0], anchors.num_sets
    dev = gt.device
    gt_combo_mask = gt_set[:, None] == anchors.combo_set[None, :]  # [K, C]; set -1 matches nothing
    cand_a, cand_g, iou = _candidates(anchors, gt, gt_combo_mask, params) if k else _empty_pairs(dev)
    uniq, inv, a_max, a_arg, g_max = _touched(anchors, cand_a, cand_g, iou, k)
    t = uniq.numel()

    # g_max == 0 -> -1: a GT overlapping nothing forces nothing (and the IoU-0 pairs never tie with -1).
    g_eff = torch.where(g_max == 0, torch.full_like(g_max, -1.0), g_max)
    forced_pair = (iou == g_eff.index_select(0, cand_g)).to(torch.uint8)
    forced = torch.zeros(t, dtype=torch.uint8, device=dev).scatter_reduce(0, inv, forced_pair, "amax").bool()
    set_t = anchors.set_index.index_select(0, uniq)
    band_t = anchors.band_index.index_select(0, uniq)
    pos = forced | (a_max >= anchors.matched_threshold.index_select(0, set_t))
    neg = ~forced & (a_max < anchors.unmatched_threshold.index_select(0, set_t))
    ign = ~pos & ~neg

    # Counts by scatter-add over the touched anchors (the same integers as bincounts of masked selections) and the
    # positives / ignores by one index list each, so that on CUDA the frame synchronises for the two index lists
    # and one packed device-to-host copy (`to_host`) only.
    pos_idx = torch.nonzero(pos).squeeze(1)
    ign_idx = torch.nonzero(ign).squeeze(1)
    pos_gt = a_arg.index_select(0, pos_idx)  # pcdet identity: the anchor's own best GT, forced or not
    zeros_k = torch.zeros(k + 1, dtype=torch.int64, device=dev)  # slot k as bincount(...)[:k] drops
    gt_num_pos = zeros_k.scatter_add(0, a_arg, pos.to(torch.int64))[:k]
    gt_num_forced = zeros_k.scatter_add(0, a_arg, forced.to(torch.int64))[:k]
    num_pos_per_set = torch.zeros(s_num, dtype=torch.int64, device=dev).scatter_add(0, set_t, pos.to(torch.int64))
    has_set = gt_set >= 0
    gt_per_set_t = torch.zeros(s_num, dtype=torch.int64, device=dev).scatter_add(
        0, gt_set.clamp_min(0), has_set.to(torch.int64))
    pos_forced = (forced & (a_max < anchors.matched_threshold.index_select(0, set_t))).index_select(0, pos_idx)
    (gt_per_set, sb, gt_num_pos_np, gt_num_forced_np, g_max_np, pos_gt_np, pos_iou_np, num_pos_per_set_np,
     pos_anchor_np, pos_forced_np, ign_anchor_np) = to_host(
        gt_per_set_t, _set_band_counts_t(anchors, set_t, band_t, neg, ign), gt_num_pos, gt_num_forced, g_max, pos_gt,
        a_max.index_select(0, pos_idx), num_pos_per_set, uniq.index_select(0, pos_idx), pos_forced,
        uniq.index_select(0, ign_idx))
    touched, neg_sb, ign_sb = sb

    # Untouched anchors have IoU 0 with every GT of their set: negative if 0 < T_neg or the set has no GT at all.
    unmatched = np.array([s.unmatched_threshold for s in anchors.layout.anchor_sets], dtype=np.float32)
    untouched_neg = (gt_per_set == 0) | (np.float32(0) < unmatched)
    untouched = anchors.band_counts - touched
    num_neg = neg_sb + np.where(untouched_neg[:, None], untouched, 0)
    num_ign = ign_sb + np.where(untouched_neg[:, None], 0, untouched)

    gt_num_pos_np = gt_num_pos_np.astype(np.int64)
    g_max_np = g_max_np.astype(np.float32)
    return FrameAssignment(
        gt_num_pos=gt_num_pos_np,
        gt_num_forced=gt_num_forced_np.astype(np.int64),
        gt_max_iou=g_max_np,
        gt_zero_pos_reason=_reasons(gt_num_pos_np, g_max_np, g_max_np == 0, np.zeros(k, dtype=bool)),
        pos_gt_index=pos_gt_np.astype(np.int64),
        pos_iou=pos_iou_np.astype(np.float32),
        num_pos_per_set=num_pos_per_set_np.astype(np.int64),
        num_neg_per_set_band=num_neg.astype(np.int64),
        num_ignore_per_set_band=num_ign.astype(np.int64),
        num_candidates=int(cand_a.numel()),
        pos_anchor_index=pos_anchor_np.astype(np.int64),
        pos_forced=pos_forced_np,
        ignore_anchor_index=ign_anchor_np.astype(np.int64),
    )


# --------------------------------------------------------------------------------------------------------------------
# mmdet MaxIoUAssigner
# --------------------------------------------------------------------------------------------------------------------


def _assign_mmdet(anchors: Anchors, gt: torch.Tensor, gt_set: torch.Tensor, params: AssignerParams) -> FrameAssignment:
    k, s_num = gt.shape[0], anchors.num_sets
    dev = gt.device
    sets = anchors.layout.anchor_sets
    agnostic = params.class_agnostic
    if agnostic:
        pos_thr, neg_thr, min_pos = _agnostic_thresholds(anchors, params)
        min_pos_set = np.full(s_num, min_pos, dtype=np.float64)
        gt_combo_mask = torch.ones(k, anchors.combo_set.numel(), dtype=torch.bool, device=dev)
        # One domain (all anchors): a GT's domain is 0 and every GT takes part.
        gt_dom = torch.zeros(k, dtype=torch.int64, device=dev)
        n_dom = 1
    else:
        min_pos_set = np.asarray(_min_pos_per_set(anchors, params), dtype=np.float64)
        gt_combo_mask = gt_set[:, None] == anchors.combo_set[None, :]
        gt_dom = gt_set  # -1: competes for nothing
        n_dom = s_num

    cand_a, cand_g, iou = _candidates(anchors, gt, gt_combo_mask, params) if k else _empty_pairs(dev)
    g_max = torch.zeros(k, dtype=torch.float32, device=dev).scatter_reduce(0, cand_g, iou, "amax")
    in_dom = gt_dom >= 0
    # min_pos_iou gate: mmdet compares a float32 0-d tensor with the Python float, which torch does in float32.
    min_pos_gt = torch.as_tensor(min_pos_set, dtype=torch.float32, device=dev)[gt_dom.clamp_min(0)]
    gate = in_dom & (g_max >= min_pos_gt) if params.match_low_quality else torch.zeros_like(in_dom)
    zero_gt = gate & (g_max == 0)  # "overlaps nothing" GT that still passes the gate (min_pos_iou <= 0)
    dom_first = anchors.set_first_index if not agnostic else torch.zeros(1, dtype=torch.int64, device=dev)

    if params.match_low_quality and not params.gt_max_assign_all and bool(zero_gt.any()):
        # Only the first argmax prior is forced; with all IoUs 0 that is the domain's first anchor, which need not
        # be a candidate: add the (IoU 0) pair so it is touched.
        zg = torch.nonzero(zero_gt)[:, 0]
        cand_a = torch.cat([cand_a, dom_first[gt_dom[zg]]])
        cand_g = torch.cat([cand_g, zg])
        iou = torch.cat([iou, torch.zeros(zg.numel(), dtype=iou.dtype, device=dev)])

    uniq, inv, a_max, a_arg, _ = _touched(anchors, cand_a, cand_g, iou, k)
    t = uniq.numel()
    set_t = anchors.set_index.index_select(0, uniq)
    band_t = anchors.band_index.index_select(0, uniq)
    dom_t = set_t if not agnostic else torch.zeros_like(set_t)

    # Forcing GT of each touched anchor = the largest gated GT index that forces it (later GT overwrite earlier).
    if params.gt_max_assign_all:
        fpair = gate.index_select(0, cand_g) & (iou == g_max.index_select(0, cand_g))
    else:
        # The first argmax prior of GT i: the lowest flat index among its anchors at g_max (flat order restricted to
        # a set, or to all anchors, is the assigner's prior order in both head layouts).
        big = torch.iinfo(torch.int64).max
        at_max = torch.where(iou == g_max.index_select(0, cand_g), cand_a, big)
        first = torch.full((k,), big, dtype=torch.int64, device=dev).scatter_reduce(0, cand_g, at_max, "amin")
        fpair = gate.index_select(0, cand_g) & (cand_a == first.index_select(0, cand_g))
    forcing = torch.full((t,), -1, dtype=torch.int64, device=dev).scatter_reduce(
        0, inv, torch.where(fpair, cand_g, -1), "amax"
    )
    zmax_dom = torch.full((n_dom,), -1, dtype=torch.int64, device=dev)
    if params.gt_max_assign_all and bool(zero_gt.any()):
        zmax_dom = zmax_dom.scatter_reduce(0, gt_dom[zero_gt], torch.nonzero(zero_gt)[:, 0], "amax")
        forcing = torch.maximum(forcing, zmax_dom.index_select(0, dom_t))
    forced = forcing >= 0

    if agnostic:
        pos_thr_t = torch.full((t,), pos_thr, dtype=torch.float32, device=dev)
        neg_thr_t = torch.full((t,), neg_thr, dtype=torch.float32, device=dev)
    else:
        pos_thr_t = anchors.matched_threshold.index_select(0, set_t)
        neg_thr_t = anchors.unmatched_threshold.index_select(0, set_t)
    by_thr = a_max >= pos_thr_t
    credit = torch.where(forced, forcing, torch.where(by_thr, a_arg, -1))
    pos = credit >= 0
    neg = ~pos & (a_max < neg_thr_t)
    ign = ~pos & ~neg
    # IoU of a positive with its credited GT: a forced anchor sits at its forcing GT's g_max.
    pos_iou_t = torch.where(forced, g_max.index_select(0, forcing.clamp_min(0)) if k else a_max, a_max)

    # One index list per selection and one packed device-to-host copy (`to_host`; one sync on CUDA).
    pos_idx = torch.nonzero(pos).squeeze(1)
    ign_idx = torch.nonzero(ign).squeeze(1)
    pos_gt = credit.index_select(0, pos_idx)
    forcing_f = forcing.index_select(0, torch.nonzero(forced).squeeze(1))
    if agnostic:
        pos_set = gt_set.index_select(0, pos_gt)
        pos_set_ok = pos_set.index_select(0, torch.nonzero(pos_set >= 0).squeeze(1))
    else:
        pos_set_ok = set_t.index_select(0, pos_idx)
    (gt_num_pos, gt_num_forced, num_pos_per_set, sb, zmax_np, pos_gt_np, pos_iou_np, pos_anchor_np, pos_forced_np,
     g_max_np, gate_np, in_dom_np, ign_anchor_np) = to_host(
        torch.bincount(pos_gt, minlength=k)[:k], torch.bincount(forcing_f, minlength=k)[:k],
        torch.bincount(pos_set_ok, minlength=s_num), _set_band_counts_t(anchors, set_t, band_t, neg, ign), zmax_dom,
        pos_gt, pos_iou_t.index_select(0, pos_idx), uniq.index_select(0, pos_idx),
        (forced & ~by_thr).index_select(0, pos_idx), g_max, gate, in_dom, uniq.index_select(0, ign_idx))
    gt_num_pos = gt_num_pos.astype(np.int64)
    gt_num_forced = gt_num_forced.astype(np.int64)
    num_pos_per_set = num_pos_per_set.astype(np.int64)

    # Untouched anchors (IoU 0 with every GT of their domain).
    touched, neg_sb, ign_sb = sb
    untouched = anchors.band_counts - touched  # [S, B]
    set_dom = np.zeros(s_num, dtype=np.int64) if agnostic else np.arange(s_num)
    claim = zmax_np[set_dom]  # [S]: GT claiming the untouched anchors of each set, or -1
    if agnostic:
        gt_in_dom = np.full(s_num, k)
        neg_thr_set = np.full(s_num, neg_thr, dtype=np.float32)
    else:
        gt_in_dom = torch.bincount(gt_set[gt_set >= 0], minlength=s_num).cpu().numpy()
        neg_thr_set = np.array([s.unmatched_threshold for s in sets], dtype=np.float32)
    untouched_neg = (claim < 0) & ((gt_in_dom == 0) | (np.float32(0) < neg_thr_set))
    untouched_ign = (claim < 0) & ~untouched_neg
    num_neg = neg_sb + np.where(untouched_neg[:, None], untouched, 0)
    num_ign = ign_sb + np.where(untouched_ign[:, None], untouched, 0)

    pos_gt_np = pos_gt_np.astype(np.int64)
    pos_iou_np = pos_iou_np.astype(np.float32)
    pos_anchor_np = pos_anchor_np.astype(np.int64)
    claimed = untouched.sum(axis=1)
    extra_gt, extra_n, extra_anchor = [], [], []
    for s in np.nonzero(claim >= 0)[0]:  # loop over anchor sets only (the min_pos_iou = 0 corner case)
        c, n = int(claim[s]), int(claimed[s])
        gt_num_pos[c] += n
        gt_num_forced[c] += n
        if agnostic:
            gs = int(gt_set[c])
            if gs >= 0:
                num_pos_per_set[gs] += n
        else:
            num_pos_per_set[s] += n
        extra_gt.append(np.full(n, c, dtype=np.int64))
        extra_n.append(n)
        in_set = anchors.set_index == int(s)
        in_set[uniq] = False  # the set's untouched anchors
        extra_anchor.append(torch.nonzero(in_set)[:, 0].cpu().numpy().astype(np.int64))
    if extra_gt:
        pos_gt_np = np.concatenate([pos_gt_np, *extra_gt])
        pos_iou_np = np.concatenate([pos_iou_np, np.zeros(sum(extra_n), dtype=np.float32)])
        pos_anchor_np = np.concatenate([pos_anchor_np, *extra_anchor])
        pos_forced_np = np.concatenate([pos_forced_np, np.ones(sum(extra_n), dtype=bool)])

    g_max_np = g_max_np.astype(np.float32)
    pos_thr_gt = (
        np.full(k, pos_thr, dtype=np.float32) if agnostic
        else np.array([sets[s].matched_threshold if s >= 0 else np.inf for s in gt_set.cpu().tolist()], np.float32)
    )
    no_overlap = ~gate_np & (g_max_np == 0)
    no_overlap |= ~in_dom_np
    below_min = ~gate_np & ~no_overlap & (g_max_np < pos_thr_gt)
    return FrameAssignment(
        gt_num_pos=gt_num_pos,
        gt_num_forced=gt_num_forced,
        gt_max_iou=g_max_np,
        gt_zero_pos_reason=_reasons(gt_num_pos, g_max_np, no_overlap, below_min),
        pos_gt_index=pos_gt_np,
        pos_iou=pos_iou_np,
        num_pos_per_set=num_pos_per_set,
        num_neg_per_set_band=num_neg.astype(np.int64),
        num_ignore_per_set_band=num_ign.astype(np.int64),
        num_candidates=int(cand_a.numel()),
        pos_anchor_index=pos_anchor_np,
        pos_forced=pos_forced_np,
        ignore_anchor_index=ign_anchor_np.astype(np.int64),
    )


# --------------------------------------------------------------------------------------------------------------------
# mmdet per-size assigners that see every GT (assign_per_class False)
# --------------------------------------------------------------------------------------------------------------------


def _assign_mmdet_every_gt_per_set(
    anchors: Anchors, gt: torch.Tensor, gt_set: torch.Tensor, params: AssignerParams
) -> FrameAssignment:
    """One MaxIoU assigner per set, each over every GT: S x K virtual GT through the class-aware rule, folded back
    (module docstring)."""
    k, s_num = gt.shape[0], anchors.num_sets
    if k == 0:
        return _assign_mmdet(anchors, gt, gt_set, params)
    dev = gt.device
    virtual_gt = gt.repeat(s_num, 1)  # [S * K, 7]: v = s * K + k keeps the GT order inside every set
    virtual_set = torch.arange(s_num, device=dev).repeat_interleave(k)  # [S * K]
    r = _assign_mmdet(anchors, virtual_gt, virtual_set, params)

    gt_num_pos = r.gt_num_pos.reshape(s_num, k).sum(axis=0)
    reasons = r.gt_zero_pos_reason.reshape(s_num, k)
    zero = gt_num_pos == 0
    any_taken = (reasons == schema.REASON_TAKEN).any(axis=0)
    all_no_overlap = (reasons == schema.REASON_NO_OVERLAP).all(axis=0)
    reason = np.full(k, None, dtype=object)
    reason[zero] = schema.REASON_BELOW_MIN_POS_IOU
    reason[zero & all_no_overlap] = schema.REASON_NO_OVERLAP
    reason[zero & any_taken] = schema.REASON_TAKEN
    return FrameAssignment(
        gt_num_pos=gt_num_pos,
        gt_num_forced=r.gt_num_forced.reshape(s_num, k).sum(axis=0),
        gt_max_iou=r.gt_max_iou.reshape(s_num, k).max(axis=0),
        gt_zero_pos_reason=reason,
        pos_gt_index=r.pos_gt_index % k,
        pos_iou=r.pos_iou,
        num_pos_per_set=r.num_pos_per_set,
        num_neg_per_set_band=r.num_neg_per_set_band,
        num_ignore_per_set_band=r.num_ignore_per_set_band,
        num_candidates=r.num_candidates,
        pos_anchor_index=r.pos_anchor_index,
        pos_forced=r.pos_forced,
        ignore_anchor_index=r.ignore_anchor_index,
    )


# --------------------------------------------------------------------------------------------------------------------
# OpenPCDet ATSSTargetAssigner, per anchor set
# --------------------------------------------------------------------------------------------------------------------


def _atss_index(anchors: Anchors) -> AtssAnchorIndex:
    """The layout's `AtssAnchorIndex` over all sets (the kernel margin is always on here). Cached."""
    key = ("atss_index", anchors.device)
    if key not in anchors._cache:
        anchors._cache[key] = AtssAnchorIndex.build(anchors.boxes, anchors.set_index, num_sets=anchors.num_sets,
                                                    margin_compat=True)
    return anchors._cache[key]


def _atss_pairs(anchors: Anchors, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gt, anchor)`` pairs for `atss_assign_sets` from the grid windows of every GT in every combo (ATSS is
    class-agnostic): the rotated-mode edges are the anchors' float64 AABBs grown by `ROTATED_AABB_MARGIN_M` (2 cm),
    the GT rectangles likewise, a superset of the index's pairs (rectangles grown by 1.5 cm in float32 with a few
    ulps). Several times cheaper than the generic AABB query."""
    rect = rotated_aabb(gt)
    mask = torch.ones(gt.shape[0], anchors.combo_set.numel(), dtype=torch.bool, device=gt.device)
    cand_a, cand_g = enumerate_candidates(anchors, rect, "rotated", mask)
    return cand_g, cand_a


def _assign_atss(anchors: Anchors, gt: torch.Tensor, gt_set: torch.Tensor, params: AssignerParams) -> FrameAssignment:
    k, s_num = gt.shape[0], anchors.num_sets
    nb = len(anchors.bands)
    iou_3d = params.iou is IouKind.IOU_3D
    if k == 0:  # every anchor negative (upstream never assigns an empty frame in training)
        return FrameAssignment(
            gt_num_pos=np.zeros(0, np.int64), gt_num_forced=np.zeros(0, np.int64),
            gt_max_iou=np.zeros(0, np.float32), gt_zero_pos_reason=np.full(0, None, dtype=object),
            pos_gt_index=np.zeros(0, np.int64), pos_iou=np.zeros(0, np.float32),
            num_pos_per_set=np.zeros(s_num, np.int64), num_neg_per_set_band=anchors.band_counts.copy(),
            num_ignore_per_set_band=np.zeros_like(anchors.band_counts), pos_anchor_index=np.zeros(0, np.int64),
        )
    # One assigner per anchor set, as upstream, all sets in one vectorised call: set s sees its anchors in the
    # layout's flat order restricted to s (upstream's view(-1, 7) / multihead permute) and every GT.
    r = atss_positives_sets(anchors.boxes, gt, gt_set, params.atss_topk, index=_atss_index(anchors),
                            upstream_quirks=params.atss_upstream_quirks, margin_compat=True, iou_3d=iou_3d,
                            pairs=_atss_pairs(anchors, gt))
    set_t = anchors.set_index
    # Positives listed set by set (each in anchor order), as one assigner per set would produce them. ``r.anchor``
    # is ascending, so no pass over all anchors is needed.
    by_set = torch.argsort(set_t.index_select(0, r.anchor), stable=True)
    pos_idx = r.anchor.index_select(0, by_set)
    pos_gt = r.assigned_gt.index_select(0, by_set)
    pos_iou_t, pos_forced_t = r.iou.index_select(0, by_set), r.forced.index_select(0, by_set)
    # No ignore state: negatives = the static per-set/band anchor totals minus the positives (no pass over A).
    pos_key = set_t.index_select(0, pos_idx) * nb + anchors.band_index.index_select(0, pos_idx)
    # One packed device-to-host copy for the frame (`to_host`: one sync on CUDA).
    num_pos_sb, gt_num_pos, g_max_np, gt_num_forced, pos_gt_np, pos_iou_np, num_pos_set, pos_idx_np, pos_forced_np = \
        to_host(torch.bincount(pos_key, minlength=s_num * nb).view(s_num, nb), torch.bincount(pos_gt, minlength=k),
                r.gt_max_iou.amax(dim=0), torch.bincount(pos_gt[pos_forced_t], minlength=k), pos_gt, pos_iou_t,
                torch.bincount(set_t.index_select(0, pos_idx), minlength=s_num), pos_idx, pos_forced_t)
    num_neg = anchors.band_counts - num_pos_sb
    gt_num_pos = gt_num_pos.astype(np.int64)
    g_max_np = g_max_np.astype(np.float32)
    reason = np.full(k, None, dtype=object)
    reason[gt_num_pos == 0] = schema.REASON_TAKEN  # every GT forces one anchor per set: lost only to a later GT
    return FrameAssignment(
        gt_num_pos=gt_num_pos,
        gt_num_forced=gt_num_forced.astype(np.int64),
        gt_max_iou=g_max_np,
        gt_zero_pos_reason=reason,
        pos_gt_index=pos_gt_np.astype(np.int64),
        pos_iou=pos_iou_np.astype(np.float32),
        num_pos_per_set=num_pos_set.astype(np.int64),
        num_neg_per_set_band=num_neg.astype(np.int64),
        num_ignore_per_set_band=np.zeros((s_num, nb), dtype=np.int64),
        num_candidates=r.num_iou_pairs,
        pos_anchor_index=pos_idx_np.astype(np.int64),
        pos_forced=pos_forced_np,
        ignore_anchor_index=np.zeros(0, dtype=np.int64),
    )
