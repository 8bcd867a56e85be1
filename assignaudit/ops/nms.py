r"""Greedy rotated BEV NMS, per-class NMS and circle NMS on a sparse overlap graph.

Greedy NMS keeps a box unless a *kept* higher-ranked box overlaps it above the threshold. Only pairs that overlap
at all matter, so instead of a dense ``N x N`` IoU matrix:

1. sort by score, descending, **stable** (ties keep input order), and keep the first ``pre_max``;
2. enumerate candidate pairs ``i < j`` (in rank order) from the boxes' AABBs (`aabb_overlap_pairs`) and compute
   the exact IoU (or squared centre distance for circle NMS) only on them; an edge ``i -> j`` means "i suppresses j
   if i is kept";
3. sweep the ranks in order over the sources of edges only: when source ``i`` is not suppressed it is kept and its
   targets are marked suppressed. Every earlier rank has been decided when ``i`` is reached, so this is exactly the
   greedy result. The loop runs over boxes that have neighbours (numpy slices, ~1 us each), not over dense rows.

Upstream semantics reproduced (spec §10): OpenPCDet ``nms_gpu`` and mmcv ``nms_rotated`` suppress ``j`` when
``IoU(kept, j) > thresh`` (strict); ``pre_max`` / ``post_max`` are ``NMS_PRE_MAXSIZE`` / ``NMS_POST_MAXSIZE``
(``pre_max_size`` / ``post_max_size``). OpenPCDet's ``topk`` does not promise an order for tied scores; here ties
are broken by input index, deterministically on CPU and CUDA.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from assignaudit.errors import DataError
from assignaudit.ops._checks import check_boxes, check_scores
from assignaudit.ops.dense import _candidates
from assignaudit.ops.pairs import aabb_overlap_pairs
from assignaudit.ops.rotated import box_iou_bev_aligned


def _check_limit(name: str, v: int | None) -> None:
    if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0):
        raise DataError(f"{name} must be a non-negative integer or None, got {v!r}")


def _rank_order(scores: torch.Tensor, pre_max: int | None) -> torch.Tensor:
    order = torch.sort(scores, descending=True, stable=True).indices
    return order if pre_max is None else order[:pre_max]


def _greedy_sweep(n: int, src: torch.Tensor, dst: torch.Tensor) -> np.ndarray:
    """Greedy keep mask ``bool[n]`` for suppression edges ``src -> dst`` (ranks, ``src < dst``)."""
    if src.numel() == 0:
        return np.ones(n, dtype=bool)
    return greedy_keep(n, src.cpu().numpy(), dst.cpu().numpy())


def greedy_keep(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Greedy NMS on a suppression graph, vectorised in rounds: ``bool[n]``, rank ``u`` kept iff no kept ``v < u``
    has an edge ``v -> u`` (edges ``src < dst``, any order; several graphs may share one call).

    Each round keeps every undecided rank whose remaining in-edges are all gone, marks the targets of the newly
    kept suppressed, and drops the edges out of suppressed or into decided ranks. A rank is kept only once all its
    in-neighbours are decided and none of them is kept, and suppressed only by a kept in-neighbour, so this is the
    rank-order greedy result exactly; the lowest undecided rank is always free, so every round decides one at
    least (NMS clusters need a handful of rounds: each round costs O(n + remaining edges) numpy).
    """
    state = np.zeros(n, dtype=np.int8)  # 0 undecided, 1 kept, 2 suppressed
    s = np.asarray(src, dtype=np.int64)
    d = np.asarray(dst, dtype=np.int64)
    undecided = np.arange(n, dtype=np.int64)
    while undecided.size:
        has_in = np.zeros(n, dtype=bool)
        has_in[d] = True
        free = undecided[~has_in[undecided]]
        state[free] = 1
        from_kept = state[s] == 1
        state[d[from_kept]] = 2
        live = state[s] == 0
        live &= state[d] == 0
        s, d = s[live], d[live]
        undecided = undecided[state[undecided] == 0]
    return state == 1


def nms_bev(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, pre_max: int | None = None,
            post_max: int | None = None, *, margin_compat: bool = False) -> torch.Tensor:
    """Greedy rotated BEV NMS.

    Args:
        boxes: ``Tensor[N, 7+]`` canonical boxes; scores: ``Tensor[N]`` (same device).
        iou_threshold: suppress ``j`` when ``IoU(kept, j) > iou_threshold`` (exact rotated BEV IoU, or OpenPCDet's
            kernel with its 1 cm margin when ``margin_compat``).
        pre_max: consider only the ``pre_max`` best-scored boxes; post_max: return at most this many.

    Returns:
        ``LongTensor[K]`` indices into ``boxes``, in descending score order (ties: lower index first).
    """
    check_boxes("boxes", boxes)
    check_scores("scores", scores, boxes.shape[0])
    _check_limit("pre_max", pre_max)
    _check_limit("post_max", post_max)
    return _nms_graph(boxes, scores, None, iou_threshold, pre_max, post_max, margin_compat)


def _nms_graph(boxes, scores, labels, iou_threshold, pre_max, post_max, margin_compat) -> torch.Tensor:
    order = _rank_order(scores, pre_max)
    b = boxes[order]
    ia, ib = _candidates(b, b, margin_compat, ordered=False)  # the sweep groups edges itself
    fwd = ia < ib  # rank i may suppress later rank j
    if labels is not None:
        lab = labels[order]
        fwd &= lab[ia] == lab[ib]
    ia, ib = ia[fwd], ib[fwd]
    iou = box_iou_bev_aligned(b[ia], b[ib], margin_compat=margin_compat)
    edge = iou > iou_threshold
    keep = _greedy_sweep(order.shape[0], ia[edge], ib[edge])
    kept = order[torch.from_numpy(np.nonzero(keep)[0]).to(order.device)]
    return kept if post_max is None else kept[:post_max]


def _rank_within(labels: torch.Tensor) -> torch.Tensor:
    """For labels listed in rank order, each entry's rank among entries of the same label (0-based)."""
    perm = torch.sort(labels, stable=True).indices
    sl = labels[perm]
    _, counts = torch.unique_consecutive(sl, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(perm.shape[0], device=labels.device) - starts
    return rank


def batched_nms_bev(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float,
                    pre_max: int | None = None, post_max: int | None = None, *,
                    post_max_per_class: bool = True, margin_compat: bool = False) -> torch.Tensor:
    """Per-class greedy rotated BEV NMS: boxes suppress only boxes with the same label.

    The classes share one overlap graph whose cross-class edges are dropped; there is no coordinate-offset trick
    (torchvision's ``batched_nms`` shifts boxes by ``label * (max_coord + 1)``, which breaks on LiDAR frames whose
    coordinates are negative and, for rotated IoU, is not needed).

    Args:
        boxes: ``Tensor[N, 7+]``; scores: ``Tensor[N]``; labels: integer ``Tensor[N]``.
        pre_max: per class, the ``pre_max`` best-scored boxes enter NMS (OpenPCDet ``multi_classes_nms``).
        post_max, post_max_per_class: ``True`` (OpenPCDet ``MULTI_CLASSES_NMS``) keeps at most ``post_max`` per
            class; ``False`` (mmdet3d ``box3d_multiclass_nms`` ``max_num``) keeps the global top ``post_max`` by
            score after concatenating the classes.

    Returns:
        ``LongTensor[K]`` indices into ``boxes`` in descending score order over all classes (ties: lower index).
    """
    check_boxes("boxes", boxes)
    n = boxes.shape[0]
    check_scores("scores", scores, n)
    check_scores("labels", labels, n)
    if labels.is_floating_point():
        raise DataError(f"labels: expected an integer tensor, got {labels.dtype}")
    _check_limit("pre_max", pre_max)
    _check_limit("post_max", post_max)
    sel = torch.arange(n, device=boxes.device)
    if pre_max is not None:
        order = _rank_order(scores, None)
        sel = order[_rank_within(labels[order]) < pre_max]
    kept = sel[_nms_graph(boxes[sel], scores[sel], labels[sel], iou_threshold, None, None, margin_compat)]
    if post_max is None:
        return kept
    if post_max_per_class:
        return kept[_rank_within(labels[kept]) < post_max]
    return kept[:post_max]


def circle_nms(boxes_or_centres: torch.Tensor, scores: torch.Tensor, min_radius_sq: float,
               post_max: int | None = None) -> torch.Tensor:
    """CenterPoint circle NMS: greedy in score order; suppress ``j`` when the squared BEV centre distance to a kept
    box is ``<= min_radius_sq``.

    ``min_radius_sq`` is in **square metres**: OpenPCDet ``centernet_utils.circle_nms`` and mmdet3d
    ``circle_nms`` compare ``dx**2 + dy**2 <= thresh`` and the configs pass ``min_radius`` values straight in
    (spec §10.2), so ``min_radius: 4`` means 2 m.

    Args:
        boxes_or_centres: ``Tensor[N, 2+]`` (columns 0, 1 are the BEV centre x, y in metres).
        scores: ``Tensor[N]``. post_max: return at most this many.

    Returns:
        ``LongTensor[K]`` indices in descending score order (ties: lower index first).
    """
    if not isinstance(boxes_or_centres, torch.Tensor) or boxes_or_centres.dim() != 2 or boxes_or_centres.shape[1] < 2:
        shape = list(boxes_or_centres.shape) if isinstance(boxes_or_centres, torch.Tensor) else "?"
        raise DataError(f"boxes_or_centres: expected a tensor of shape [N, 2+] (x, y, ...), got {shape}")
    n = boxes_or_centres.shape[0]
    check_scores("scores", scores, n)
    _check_limit("post_max", post_max)
    if not math.isfinite(min_radius_sq) or min_radius_sq < 0:
        raise DataError(f"min_radius_sq must be a finite non-negative number (square metres), got {min_radius_sq}")
    order = _rank_order(scores, None)
    c = boxes_or_centres[order, :2]
    # Squares of half-width r/2 overlap for every pair within distance r; the slack covers float32 rounding of
    # the square corners at ~100 m. The exact squared-distance test below decides.
    hw = 0.5 * math.sqrt(min_radius_sq) * (1 + 1e-4) + 1e-4
    sq = torch.cat((c - hw, c + hw), dim=1)
    ia, ib = aabb_overlap_pairs(sq, sq, ordered=False)
    fwd = ia < ib
    ia, ib = ia[fwd], ib[fwd]
    dx = c[ia, 0] - c[ib, 0]
    dy = c[ia, 1] - c[ib, 1]
    edge = dx * dx + dy * dy <= min_radius_sq  # input dtype, the frameworks' comparison
    keep = _greedy_sweep(n, ia[edge], ib[edge])
    kept = order[torch.from_numpy(np.nonzero(keep)[0]).to(order.device)]
    return kept if post_max is None else kept[:post_max]
