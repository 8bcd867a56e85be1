r"""OpenPCDet's ``ATSSTargetAssigner`` (adaptive training sample selection), class-agnostic, one frame.

Upstream: ``pcdet/models/dense_heads/target_assigner/atss_target_assigner.py`` (assignment-semantics.md §4). No
shipped config uses it, and at HEAD selecting it raises a TypeError (the head passes ``use_multihead=`` to a
constructor that does not take it), so this is a replay of the algorithm, not of a trainable config.

Rule, per frame, over all anchors and all GT of every class (class-agnostic; an anchor takes its GT's class):

1. IoU = exact rotated BEV IoU (`assignaudit.ops.box_iou_bev_aligned`; pairs whose bounding rectangles do not
   overlap are exactly 0), or with ``iou_3d`` (``MATCH_HEIGHT``) the 3D IoU of ``boxes_iou3d_gpu`` (rotated BEV
   intersection x centre-z height overlap) on those same pairs. ``margin_compat`` replays the CUDA kernel's 1 cm
   corner margin.
2. Candidates: for every GT the ``topk`` anchors nearest in **3D** centre distance ``||a_xyz - g_xyz||``.
   Upstream uses ``topk(largest=False)`` whose order among equal distances is undefined; here ties at the k-th
   distance are broken towards the **lower anchor index** (deterministic).
3. Threshold per GT: ``t = mean(cand IoU) + std(cand IoU, unbiased N-1) + 1e-6``. With ``topk = 1`` the unbiased
   std is NaN, as in torch, so no candidate passes and only the forced match is left.
4. Candidate positive iff ``IoU >= t`` **and** its centre is inside the GT in BEV (inclusive). The correct test
   rotates the offset by ``-yaw`` and compares ``|x_local| <= dx/2`` and ``|y_local| <= dy/2``. Upstream indexes
   the dims ``[1, 0]`` (commented "bugfixed") and so compares ``|x_local|`` with ``dy/2`` and ``|y_local|`` with
   ``dx/2``: transposed in the OpenPCDet convention where ``dx`` lies along the heading. ``upstream_quirks=True``
   reproduces that.
5. An anchor positive for several GT keeps the GT with the highest IoU (ties: the lower GT index, torch's CPU
   ``max``).
6. Forced: every GT's argmax anchor over **all** anchors (first index among equal maxima; a GT that overlaps no
   anchor forces anchor 0) is assigned to that GT, overwriting step 5, without any IoU check. When several GT share
   one argmax anchor upstream writes them with a duplicate-index scatter, whose winner is undefined; here the
   **last GT (highest index) wins**.
7. No ignore state: everything else is background.

Speed (results identical to a dense ``[A, K]`` search over every anchor, which the tests keep as the reference):

* Candidates: the anchors of a set lie on a grid (every size and rotation shares the positions), so `AtssAnchorIndex`
  buckets them into square BEV cells once per layout and a GT looks only at a window of cells around it. The window
  is accepted only when its k-th distance is below the distance to anything outside it (the BEV distance to the
  window's open sides, combined with the z gap to the set's anchor heights), with a float safety margin; then every
  anchor outside is strictly farther than the k-th candidate, so the window's first k by (distance, anchor index)
  are the dense search's. A GT whose window fails (far outside the grid, a sparse layout) takes the dense path over
  its set. All sets and GT are searched in one pass as S x K virtual GT ``v = s * K + k``.
* IoU: the rule needs only the candidates' IoU (threshold, positives) and each GT's maximum and first argmax over the
  set (forced match). A non-candidate pair can be the argmax only if its IoU reaches the best candidate's, so it is
  evaluated only when a cheap upper bound of its IoU does (the projection overlap of the two rectangles, each grown by
  the kernel margin plus 2 cm, on either box's axes, with relative slack). Pairs with nearly parallel edges are never
  pruned (the margin kernel's near-collinear crossings are not bounded by the geometry). Each evaluated pair goes
  through the same elementwise kernel as before, so its IoU has the same bits.
* Result: steps 5 and 6 reduce over the distinct positive and forced anchors only; `atss_positives_sets` returns
  those (what `count` needs), `atss_assign_sets` the dense ``[A]`` form built from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from assignaudit.errors import ConfigError, DataError
from assignaudit.ops import AabbIndex, bev_aabb, bev_intersection_aligned, box_iou_3d_aligned, box_iou_bev_aligned
from assignaudit.ops._checks import check_boxes, check_pair
from assignaudit.ops.rotated import MARGIN, _height_overlap  # the 3D kernel's own height term

THRESHOLD_EPS = 1e-6
# A window is accepted when kth * (1 + _WINDOW_REL) + _WINDOW_ABS < distance to the outside: float32 distances are
# within ~1e-7 relative of the true ones and the cell edges within ~1e-12 m, so this margin is generous.
_WINDOW_REL, _WINDOW_ABS = 1e-5, 1e-5
# IoU upper bound: half-sizes grow by the kernel margin plus _BOUND_PAD metres, the bounded intersection by
# _BOUND_REL. float32 corners at 100 m are off by ~3e-5 m; a crossing of edges at angle theta by ~2 * that / theta,
# under 3e-3 m for theta >= 0.025 rad; the exact clip's area is within ~1e-5 relative.
_BOUND_PAD, _BOUND_REL = 0.01, 1e-3
# |sin(2 * yaw difference)| below this: some edge pair is within ~0.025 rad of parallel; such pairs are never pruned.
_PARALLEL_SIN2 = 5e-2


@dataclass(frozen=True)
class AtssAssignment:
    """ATSS labels of A anchors against K GT (torch tensors on the anchors' device).

    `atss_assign` (one set) returns the per-GT fields as documented; `atss_assign_sets` (S sets) gives them a set
    axis: ``candidates [topk, S, K]``, ``threshold [S, K]``, ``gt_max_iou [S, K]``.
    """

    assigned_gt: torch.Tensor
    """int64 ``[A]``: the matched GT index, -1 for background."""
    labels: torch.Tensor
    """int64 ``[A]``: ``gt_labels`` of the matched GT, -1 for background."""
    iou: torch.Tensor
    """``[A]`` (anchor dtype): rotated BEV IoU with the matched GT, 0 for background."""
    forced: torch.Tensor
    """bool ``[A]``: positive because it is some GT's argmax anchor (step 6)."""
    candidates: torch.Tensor
    """int64 ``[topk, K]``: candidate anchors per GT, nearest first."""
    threshold: torch.Tensor
    """``[K]``: the per-GT IoU threshold ``mean + std + 1e-6`` over the candidates."""
    gt_max_iou: torch.Tensor | None = None
    """``[K]``: each GT's best IoU over all anchors (the forced match's IoU; 0 for a GT overlapping nothing)."""
    num_iou_pairs: int = 0
    """Anchor-GT pairs whose IoU was evaluated (diagnostics)."""

    @property
    def positive(self) -> torch.Tensor:
        """bool ``[A]``."""
        return self.assigned_gt >= 0

    @property
    def num_pos(self) -> int:
        return int(self.positive.sum())


@dataclass(frozen=True)
class AtssPositives:
    """The positive anchors of `atss_positives_sets` only (the sparse form of `AtssAssignment`: no ``[A]`` tensor
    is built or scanned). Per-GT fields as `AtssAssignment` with its set axis."""

    anchor: torch.Tensor
    """int64 ``[N]``: the positive anchors, ascending."""
    assigned_gt: torch.Tensor
    """int64 ``[N]``: their GT."""
    iou: torch.Tensor
    """``[N]`` (anchor dtype): IoU with that GT."""
    forced: torch.Tensor
    """bool ``[N]``: forced (step 6)."""
    candidates: torch.Tensor
    threshold: torch.Tensor
    gt_max_iou: torch.Tensor
    num_iou_pairs: int = 0


@dataclass(frozen=True)
class AtssAnchorIndex:
    """Static search structures over the anchors of S ATSS anchor sets. Build once per anchor layout with
    `AtssAnchorIndex.build` and pass it to `atss_assign_sets` for every frame; tensors live on the anchors' device.

    Cells: set s is bucketed into square BEV cells of side ``cell_size[s]`` (about the spacing of its distinct
    positions) from ``cell_origin[s]`` (the set's minimum x, y); the key of cell ``(ix, iy)`` is
    ``key_base[s] + iy * cell_count[s, 0] + ix``, and ``keys`` / ``order`` list every anchor sorted by key (ascending
    anchor index within a cell).
    """

    num_anchors: int
    anchor_set: torch.Tensor
    """int64 ``[A]``: set of every anchor."""
    set_count: torch.Tensor
    """int64 ``[S]``: anchors per set."""
    set_first: torch.Tensor
    """int64 ``[S]``: lowest anchor index of each set (its "anchor 0", forced by a GT that overlaps nothing)."""
    set_table: torch.Tensor
    """int64 ``[S, max(set_count)]``: each set's anchors ascending, padded with -1 (the dense fallback)."""
    cell_origin: torch.Tensor
    """float64 ``[S, 2]``."""
    cell_size: torch.Tensor
    """float64 ``[S]``, metres."""
    cell_count: torch.Tensor
    """int64 ``[S, 2]``: cells along x and y."""
    key_base: torch.Tensor
    """int64 ``[S]``."""
    z_range: torch.Tensor
    """float64 ``[S, 2]``: lowest and highest anchor centre z of each set."""
    per_position: torch.Tensor
    """float64 ``[S]``: anchors per distinct BEV position (sizes x rotations x heights on a grid)."""
    keys: torch.Tensor
    """int64 ``[A]``: sorted cell keys."""
    order: torch.Tensor
    """int64 ``[A]``: the anchor of each sorted key."""
    aabb: AabbIndex
    """The anchors' BEV bounding rectangles grown by ``aabb_pad`` (IoU candidate pairs)."""
    aabb_pad: float

    @property
    def num_sets(self) -> int:
        return int(self.set_count.shape[0])

    @staticmethod
    def build(anchors: torch.Tensor, anchor_set: torch.Tensor | None = None, *, num_sets: int | None = None,
              margin_compat: bool = False) -> "AtssAnchorIndex":
        """Index canonical ``anchors [A, 7+]``; ``anchor_set`` int ``[A]`` in ``0..S-1`` (None: one set), S =
        ``num_sets`` or ``max(anchor_set) + 1``. ``margin_compat`` must match the `atss_assign_sets` calls (it sets
        the rectangles' padding)."""
        check_boxes("anchors", anchors)
        n_a, dev = anchors.shape[0], anchors.device
        if anchor_set is None:
            anchor_set = torch.zeros(n_a, dtype=torch.int64, device=dev)
        if (not isinstance(anchor_set, torch.Tensor) or anchor_set.shape != (n_a,) or anchor_set.is_floating_point()
                or (n_a and int(anchor_set.min()) < 0)):
            raise DataError(f"anchor_set: expected a non-negative integer tensor of shape [{n_a}] (one per anchor)")
        anchor_set = anchor_set.to(torch.int64)
        n_s = num_sets if num_sets is not None else (int(anchor_set.max()) + 1 if n_a else 0)
        if n_a and int(anchor_set.max()) >= n_s:
            raise DataError(f"anchor_set: values must be below num_sets={n_s}, got {int(anchor_set.max())}")
        arange = torch.arange(n_a, device=dev)
        set_count = torch.bincount(anchor_set, minlength=n_s)
        set_first = torch.full((n_s,), n_a, dtype=torch.int64, device=dev).scatter_reduce(
            0, anchor_set, arange, "amin")
        by_set = torch.argsort(anchor_set, stable=True)  # ascending anchor index within a set
        col = arange - (torch.cumsum(set_count, 0) - set_count)[anchor_set[by_set]]
        set_table = torch.full((n_s, int(set_count.max()) if n_s else 0), -1, dtype=torch.int64, device=dev)
        set_table[anchor_set[by_set], col] = by_set

        xyz = anchors[:, 0:3].double()
        idx3 = anchor_set[:, None].expand(n_a, 3)
        lo = torch.full((n_s, 3), math.inf, dtype=torch.float64, device=dev).scatter_reduce(0, idx3, xyz, "amin")
        hi = torch.full((n_s, 3), -math.inf, dtype=torch.float64, device=dev).scatter_reduce(0, idx3, xyz, "amax")
        empty = set_count == 0
        lo, hi = lo.masked_fill(empty[:, None], 0.0), hi.masked_fill(empty[:, None], 0.0)
        positions = torch.unique(torch.stack((anchor_set.double(), xyz[:, 0], xyz[:, 1]), dim=1), dim=0)
        n_pos = torch.bincount(positions[:, 0].to(torch.int64), minlength=n_s).double().clamp_min(1)
        ext = hi[:, 0:2] - lo[:, 0:2]
        area, longest = ext[:, 0] * ext[:, 1], ext.amax(dim=1)
        # About one distinct position per cell: a 2D grid -> sqrt(area / positions); a line of positions -> their
        # spacing; a single position -> any size.
        cell = torch.where(area > 0, (area / n_pos).sqrt(),
                           torch.where(longest > 0, longest / (n_pos - 1).clamp_min(1), torch.ones_like(area)))
        cell_count = torch.floor(ext / cell[:, None]).to(torch.int64) + 1
        n_cells = cell_count[:, 0] * cell_count[:, 1]
        key_base = torch.cumsum(n_cells, 0) - n_cells
        ixy = torch.floor((xyz[:, 0:2] - lo[anchor_set, 0:2]) / cell[anchor_set, None]).to(torch.int64)
        ixy = torch.minimum(ixy.clamp_min(0), cell_count[anchor_set] - 1)
        key = key_base[anchor_set] + ixy[:, 1] * cell_count[anchor_set, 0] + ixy[:, 0]
        keys, order = torch.sort(key, stable=True)
        pad = 1.5 * MARGIN if margin_compat else 0.0  # as assignaudit.ops.box_iou_bev_sparse
        return AtssAnchorIndex(n_a, anchor_set, set_count, set_first, set_table, lo[:, 0:2].contiguous(), cell,
                               cell_count, key_base, torch.stack((lo[:, 2], hi[:, 2]), dim=1),
                               set_count.double() / n_pos, keys, order, AabbIndex.build(bev_aabb(anchors, pad)), pad)


def _expand_ranges(starts: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ranges ``[starts[r], starts[r] + lens[r])``: ``(range id, value)`` of every element, range-major."""
    lens = lens.clamp_min(0)
    rid = torch.repeat_interleave(torch.arange(lens.shape[0], device=lens.device), lens)
    offs = torch.arange(rid.shape[0], device=lens.device) - (torch.cumsum(lens, 0) - lens)[rid]
    return rid, starts[rid] + offs


def _rank_entries(e_a: torch.Tensor, e_v: torch.Tensor, e_d: torch.Tensor, n_v: int, n_a: int):
    """Sort (anchor, virtual GT, distance) entries by (v, distance, anchor); returns them with each entry's rank
    within its v and the entries per v."""
    if e_d.dtype == torch.float32 and n_v <= (1 << 13) and n_a <= (1 << 19):
        # One sort of a packed int64 key (v, distance bits, anchor): a norm is a non-negative float32 (finite
        # inputs; +inf at worst), which orders like its bit pattern, and (v, anchor) is unique, so this is the
        # order of the three stable sorts below.
        key = (e_v << 50) | (e_d.view(torch.int32).to(torch.int64) << 19) | e_a
        perm = torch.argsort(key)
    else:
        perm = torch.argsort(e_a, stable=True)
        perm = perm[torch.argsort(e_d[perm], stable=True)]
        perm = perm[torch.argsort(e_v[perm], stable=True)]
    e_a, e_v, e_d = e_a[perm], e_v[perm], e_d[perm]
    counts = torch.bincount(e_v, minlength=n_v)
    rank = torch.arange(e_v.shape[0], device=e_v.device) - (torch.cumsum(counts, 0) - counts)[e_v]
    return e_a, e_v, e_d, rank, counts


def _nearest_candidates(index: AtssAnchorIndex, anchors_xyz: torch.Tensor, gt_xyz: torch.Tensor,
                        topk: int) -> tuple[torch.Tensor, int]:
    """``[topk, S * K]`` nearest anchors (3D) of every virtual GT ``v = s * K + k`` among set s, ordered by
    (distance, anchor index): the dense ``topk`` with ties towards the lower index. Also returns how many virtual GT
    took the dense fallback."""
    dev = anchors_xyz.device
    n_s, n_g = index.num_sets, gt_xyz.shape[0]
    n_v = n_s * n_g
    v_set = torch.arange(n_s, device=dev).repeat_interleave(n_g)
    v_gt = torch.arange(n_g, device=dev).repeat(n_s)
    g64 = gt_xyz.double()[v_gt]  # [V, 3]

    # Window radius in cells: enough cells for ~topk anchors plus a ring (a 5 x 5 window for topk 9, 2 per position).
    need = torch.ceil(topk / index.per_position)
    radius = torch.round(torch.sqrt(need / math.pi) + 0.75).clamp_min(1).to(torch.int64)[v_set]
    origin, cell, count = index.cell_origin[v_set], index.cell_size[v_set], index.cell_count[v_set]
    centre = torch.floor((g64[:, 0:2] - origin) / cell[:, None]).clamp(-1, 2**40).to(torch.int64)
    centre = torch.minimum(centre.clamp_min(0), count - 1)  # a GT outside the grid looks at its border cells
    lo = (centre - radius[:, None]).clamp_min(0)
    hi = torch.minimum(centre + radius[:, None], count - 1)

    # Distance from the GT to the region outside the window. A side on the grid border has no anchor beyond it.
    inf = torch.full_like(cell, math.inf)
    edge_lo = origin + lo.double() * cell[:, None]
    edge_hi = origin + (hi + 1).double() * cell[:, None]
    gap = torch.stack((torch.where(lo[:, 0] > 0, g64[:, 0] - edge_lo[:, 0], inf),
                       torch.where(hi[:, 0] < count[:, 0] - 1, edge_hi[:, 0] - g64[:, 0], inf),
                       torch.where(lo[:, 1] > 0, g64[:, 1] - edge_lo[:, 1], inf),
                       torch.where(hi[:, 1] < count[:, 1] - 1, edge_hi[:, 1] - g64[:, 1], inf)), dim=1)
    gap_bev = gap.amin(dim=1).clamp_min(0)
    z_lo, z_hi = index.z_range[v_set, 0], index.z_range[v_set, 1]
    gap_z = torch.maximum(torch.maximum(z_lo - g64[:, 2], g64[:, 2] - z_hi), torch.zeros_like(z_lo))
    outside = torch.sqrt(gap_bev * gap_bev + gap_z * gap_z)

    # One key range per cell row of every window.
    rows = hi[:, 1] - lo[:, 1] + 1
    w_v, row = _expand_ranges(lo[:, 1], rows)
    row_key = index.key_base[v_set[w_v]] + row * count[w_v, 0]
    start = torch.searchsorted(index.keys, row_key + lo[w_v, 0], right=False)
    stop = torch.searchsorted(index.keys, row_key + hi[w_v, 0], right=True)
    rid, pos = _expand_ranges(start, stop - start)
    e_v, e_a = w_v[rid], index.order[pos]
    e_d = (anchors_xyz.index_select(0, e_a) - gt_xyz.index_select(0, v_gt.index_select(0, e_v))).norm(dim=-1)  # upstream's op order, same bits as the dense matrix
    e_a, e_v, e_d, rank, counts = _rank_entries(e_a, e_v, e_d, n_v, index.num_anchors)

    kth = torch.full((n_v,), math.inf, dtype=torch.float64, device=dev)
    full = counts >= topk
    kth[full] = e_d[(torch.cumsum(counts, 0) - counts)[full] + topk - 1].double()
    ok = full & (kth * (1 + _WINDOW_REL) + _WINDOW_ABS < outside)
    fail = torch.nonzero(~ok).squeeze(1)
    if fail.numel():
        # Dense over the failing GT's set, as the reference: k-th distance by topk, then every anchor within it.
        table = index.set_table[v_set[fail]]  # [F, max set size]
        d = (anchors_xyz[table.clamp_min(0)] - gt_xyz[v_gt[fail]][:, None, :]).norm(dim=-1)
        d = d.masked_fill(table < 0, math.inf)
        kth_f = d.topk(topk, dim=1, largest=False).values[:, -1:]
        r, c = torch.nonzero(d <= kth_f, as_tuple=True)
        keep = ok[e_v]
        e_a, e_v, e_d, rank, counts = _rank_entries(torch.cat((e_a[keep], table[r, c])),
                                                    torch.cat((e_v[keep], fail[r])),
                                                    torch.cat((e_d[keep], d[r, c])), n_v, index.num_anchors)
    return e_a[rank < topk].view(n_v, topk).t().contiguous(), int(fail.numel())


def _grown(boxes: torch.Tensor, pad: float) -> torch.Tensor:
    """Boxes with every half-size grown by ``pad`` metres (BEV columns only matter)."""
    return torch.cat((boxes[:, 0:3], boxes[:, 3:5] + 2 * pad, boxes[:, 5:7]), dim=1)


def _iou_from_inter_bound(a: torch.Tensor, g: torch.Tensor, inter: torch.Tensor, iou_3d: bool) -> torch.Tensor:
    """float64 IoU bound from a bound on the BEV intersection (IoU grows with the intersection)."""
    a, g, inter = a.double(), g.double(), inter.double() * (1 + _BOUND_REL)
    if iou_3d:
        h = (torch.minimum(a[:, 2] + a[:, 5] / 2, g[:, 2] + g[:, 5] / 2)
             - torch.maximum(a[:, 2] - a[:, 5] / 2, g[:, 2] - g[:, 5] / 2)).clamp_min(0) + 1e-5
        inter = inter * h
        return inter / (a[:, 3] * a[:, 4] * a[:, 5] + g[:, 3] * g[:, 4] * g[:, 5] - inter).clamp_min(1e-6)
    return inter / (a[:, 3] * a[:, 4] + g[:, 3] * g[:, 4] - inter).clamp_min(1e-8)


def _projection_bound(a: torch.Tensor, g: torch.Tensor, pad: float) -> torch.Tensor:
    """float64 ``[P]`` bound of the BEV intersection of row pairs (anchor, GT) grown by ``pad``: the overlap of
    their projections on G's axes, and on A's axes (a box is the intersection of its two slabs)."""
    a, g = a.double(), g.double()
    ha, hg = a[:, 3:5] / 2 + pad, g[:, 3:5] / 2 + pad
    dyaw = a[:, 6] - g[:, 6]
    c, s = torch.cos(dyaw).abs(), torch.sin(dyaw).abs()
    dx, dy = a[:, 0] - g[:, 0], a[:, 1] - g[:, 1]

    def overlap(off: torch.Tensor, h_self: torch.Tensor, h_other: torch.Tensor) -> torch.Tensor:
        # length of [-h_self, h_self] n [off - h_other, off + h_other]
        return (torch.minimum(h_self, off + h_other) - torch.maximum(-h_self, off - h_other)).clamp_min(0)

    cg, sg = torch.cos(g[:, 6]), torch.sin(g[:, 6])
    in_g = (overlap(dx * cg + dy * sg, hg[:, 0], ha[:, 0] * c + ha[:, 1] * s)
            * overlap(-dx * sg + dy * cg, hg[:, 1], ha[:, 0] * s + ha[:, 1] * c))
    ca, sa = torch.cos(a[:, 6]), torch.sin(a[:, 6])
    in_a = (overlap(-dx * ca - dy * sa, ha[:, 0], hg[:, 0] * c + hg[:, 1] * s)
            * overlap(dx * sa - dy * ca, ha[:, 1], hg[:, 0] * s + hg[:, 1] * c))
    return torch.minimum(in_g, in_a)


def _aabb_inter_bound(a_rect: torch.Tensor, g_rect: torch.Tensor, rect_pad: float, margin_compat: bool) -> torch.Tensor:
    """float64 ``[P]`` bound of the BEV intersection of row pairs from their exact bounding rectangles
    (`bev_aabb` with ``rect_pad``): the area of the intersection of the two rectangles, each grown to contain the
    bounding rectangle of its box grown by `_may_reach`'s pad (a half-size grown by ``p`` moves the AABB side by
    ``p (|cos| + |sin|) <= p sqrt 2``). Gathers and min / max only: no trigonometry per pair."""
    pad = (MARGIN if margin_compat else 0.0) + _BOUND_PAD
    grow = max(pad * 1.5 - rect_pad, 0.0)  # 1.5 > sqrt 2
    a, g = a_rect.double(), g_rect.double()
    w = torch.minimum(a[:, 2], g[:, 2]) - torch.maximum(a[:, 0], g[:, 0]) + 2 * grow
    h = torch.minimum(a[:, 3], g[:, 3]) - torch.maximum(a[:, 1], g[:, 1]) + 2 * grow
    return w.clamp_min(0) * h.clamp_min(0)


def _may_reach(a: torch.Tensor, g: torch.Tensor, floor: torch.Tensor, margin_compat: bool,
               iou_3d: bool, aabb_inter: torch.Tensor | None = None) -> torch.Tensor:
    """bool ``[P]``: can the kernel IoU of row pair (a, g) reach ``floor`` (float64)? False only when proven not.

    Every vertex of the kernel's intersection polygon lies in both rectangles grown by the margin (the margin kernel
    counts corners up to 1 cm outside; a proper crossing lies on both boundaries), so the polygon, star-shaped
    around its vertices' mean, lies in the intersection of the grown rectangles, and its area is at most that
    intersection's: bounded cheaply by the projections, then (margin kernel only, whose polygon sort costs ~5x the
    exact clip) by the exact kernel on the grown boxes. ``_BOUND_PAD`` covers float32 corners and crossings, except
    for nearly parallel edges, where a crossing of near-collinear edges can land anywhere along them: such pairs
    always pass.
    """
    pad = (MARGIN if margin_compat else 0.0) + _BOUND_PAD
    parallel = torch.sin(2 * (a[:, 6].double() - g[:, 6].double())).abs() < _PARALLEL_SIN2
    if aabb_inter is not None:
        # ``aabb_inter`` (`_aabb_inter_bound`) bounds the same intersection more loosely but without trigonometry:
        # the pairs it rules out (most of them) skip the projection bound; the others go through it as before.
        pre = torch.nonzero(parallel | (_iou_from_inter_bound(a, g, aabb_inter, iou_3d) >= floor)).squeeze(1)
        live = torch.zeros_like(parallel)
        live[pre] = _may_reach(a.index_select(0, pre), g.index_select(0, pre), floor.index_select(0, pre),
                               margin_compat, iou_3d)
        return live
    live = parallel | (_iou_from_inter_bound(a, g, _projection_bound(a, g, pad), iou_3d) >= floor)
    if iou_3d:
        # No height overlap in the kernel's own float arithmetic: 3D IoU exactly 0, which never changes a maximum
        # (a GT whose maximum is 0 forces its set's first anchor whatever the pairs).
        live = live & (_height_overlap(a, g) > 0)
    if margin_compat:
        sel = torch.nonzero(live & ~parallel).squeeze(1)
        a_sel, g_sel = a.index_select(0, sel), g.index_select(0, sel)
        inter = bev_intersection_aligned(_grown(a_sel, pad), _grown(g_sel, pad))
        live[sel] = _iou_from_inter_bound(a_sel, g_sel, inter, iou_3d) >= floor.index_select(0, sel)
    return live


def atss_assign(anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, topk: int = 9, *,
                upstream_quirks: bool = False, margin_compat: bool = False, iou_3d: bool = False) -> AtssAssignment:
    """Label anchors with OpenPCDet's ATSS rule (module docstring): one anchor set, one frame.

    Args:
        anchors: canonical ``Tensor[A, 7+]`` (centre z, metres, LiDAR frame).
        gt_boxes: canonical ``Tensor[K, 7+]``, same dtype and device; gt_labels: ``LongTensor[K]``.
        topk: candidates per GT (OpenPCDet's ``TOPK``); ``1 <= topk <= A``.
        upstream_quirks: reproduce the transposed inside-GT test (``dy/2`` along the heading).
        margin_compat: OpenPCDet's 1 cm corner margin in the IoU kernel.
        iou_3d: 3D IoU (OpenPCDet ``MATCH_HEIGHT``) instead of rotated BEV IoU.

    Returns an `AtssAssignment`. Inputs are not modified.
    """
    check_pair("anchors", anchors, "gt_boxes", gt_boxes)
    one_set = AtssAnchorIndex.build(anchors, num_sets=1, margin_compat=margin_compat)
    r = atss_assign_sets(anchors, gt_boxes, gt_labels, topk, index=one_set, upstream_quirks=upstream_quirks,
                         margin_compat=margin_compat, iou_3d=iou_3d)
    return AtssAssignment(r.assigned_gt, r.labels, r.iou, r.forced, r.candidates[:, 0], r.threshold[0],
                          r.gt_max_iou[0], r.num_iou_pairs)


def atss_assign_sets(anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, topk: int = 9, *,
                     anchor_set: torch.Tensor | None = None, index: AtssAnchorIndex | None = None,
                     upstream_quirks: bool = False, margin_compat: bool = False,
                     iou_3d: bool = False, pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> AtssAssignment:
    """`atss_assign` for S anchor sets at once: set s's assigner sees the anchors with ``anchor_set == s`` (in
    ascending index order) and every GT; each anchor gets at most one GT.

    Args:
        anchors, gt_boxes, gt_labels, topk, upstream_quirks, margin_compat, iou_3d: as `atss_assign`; every set needs
            at least ``topk`` anchors.
        anchor_set: int ``[A]`` in ``0..S-1`` (None: one set). Ignored when ``index`` is given.
        index: ``AtssAnchorIndex.build(anchors, anchor_set, margin_compat=margin_compat)``, to reuse across frames.
        pairs: ``(gt index, anchor index)`` int64 ``[P]`` each: any superset of the (anchor, GT) pairs whose
            bounding rectangles grown by ``index.aabb_pad`` overlap (e.g. enumerated from a layout's grid, as
            `assignaudit.assign.assigner` does); None: the index's AABB query finds them. Extra pairs change
            nothing (their kernel IoU is 0).

    Returns an `AtssAssignment` whose per-GT fields carry a set axis (``threshold [S, K]``, ...). Inputs are not
    modified.
    """
    r = atss_positives_sets(anchors, gt_boxes, gt_labels, topk, anchor_set=anchor_set, index=index,
                            upstream_quirks=upstream_quirks, margin_compat=margin_compat, iou_3d=iou_3d, pairs=pairs)
    n_a, device = anchors.shape[0], anchors.device
    assigned_gt = torch.full((n_a,), -1, dtype=torch.int64, device=device)
    assigned_gt[r.anchor] = r.assigned_gt
    labels = torch.full((n_a,), -1, dtype=torch.int64, device=device)
    labels[r.anchor] = gt_labels.to(torch.int64).index_select(0, r.assigned_gt)
    iou = anchors.new_zeros(n_a)
    iou[r.anchor] = r.iou
    forced = torch.zeros(n_a, dtype=torch.bool, device=device)
    forced[r.anchor] = r.forced
    return AtssAssignment(assigned_gt, labels, iou, forced, r.candidates, r.threshold, r.gt_max_iou, r.num_iou_pairs)


def atss_positives_sets(anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, topk: int = 9, *,
                        anchor_set: torch.Tensor | None = None, index: AtssAnchorIndex | None = None,
                        upstream_quirks: bool = False, margin_compat: bool = False, iou_3d: bool = False,
                        pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> AtssPositives:
    """`atss_assign_sets` returning only the positive anchors (`AtssPositives`): the same assignment, with no pass
    over all anchors (the count path; ``[A]`` tensors cost more than the whole sparse search)."""
    check_pair("anchors", anchors, "gt_boxes", gt_boxes)
    n_a, n_g = anchors.shape[0], gt_boxes.shape[0]
    if not isinstance(gt_labels, torch.Tensor) or gt_labels.shape != (n_g,):
        shape = list(gt_labels.shape) if isinstance(gt_labels, torch.Tensor) else type(gt_labels).__name__
        raise DataError(f"gt_labels: expected a tensor of shape [{n_g}] (one per GT box), got {shape}")
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ConfigError(f"ATSS topk: expected an integer >= 1, got {topk!r}")
    if index is None:
        index = AtssAnchorIndex.build(anchors, anchor_set, margin_compat=margin_compat)
    elif index.num_anchors != n_a:
        raise DataError(f"index: built for {index.num_anchors} anchors, got {n_a}")
    device, n_s = anchors.device, index.num_sets
    if n_g == 0:
        # Upstream never sees an empty frame in training (the dataset resamples); all background here.
        none = torch.zeros(0, dtype=torch.int64, device=device)
        return AtssPositives(none, none.clone(), anchors.new_zeros(0), torch.zeros(0, dtype=torch.bool, device=device),
                             torch.zeros((min(topk, n_a), n_s, 0), dtype=torch.int64, device=device),
                             anchors.new_zeros((n_s, 0)), anchors.new_zeros((n_s, 0)), 0)
    if n_s == 0 or int(index.set_count.min()) < topk:
        fewest = int(index.set_count.min()) if n_s else 0
        raise ConfigError(f"ATSS topk={topk} exceeds the number of anchors ({fewest})")

    # Virtual GT v = s * K + k: GT k as seen by set s's assigner. An anchor only meets the v of its own set, and
    # within a set v orders like k, so "lower GT index" and "last GT wins" carry over.
    n_v = n_s * n_g
    v_gt = torch.arange(n_g, device=device).repeat(n_s)
    cand, _ = _nearest_candidates(index, anchors[:, 0:3], gt_boxes[:, 0:3], topk)  # [topk, V]
    v_of_cand = torch.arange(n_v, device=device).expand(topk, n_v)
    g_of_cand = v_gt.expand(topk, n_v)
    iou_fn = box_iou_3d_aligned if iou_3d else box_iou_bev_aligned

    # Candidates: the kernel gives exactly 0 to a pair whose margin-padded rectangles do not overlap (no crossing,
    # no corner within 1 cm), the value box_iou_bev_sparse leaves there.
    c_a, c_v = cand.reshape(-1), v_of_cand.reshape(-1)
    # (index_select rather than t[idx] for row gathers: torch's CPU advanced indexing is several times slower)
    c_g = v_gt.index_select(0, c_v)
    c_iou = iou_fn(anchors.index_select(0, c_a), gt_boxes.index_select(0, c_g), margin_compat=margin_compat)
    cand_iou = c_iou.view(topk, n_v)

    # Every other pair with IoU > 0 has overlapping padded rectangles (as box_iou_bev_sparse). An anchor fixes the
    # set, so (anchor, GT) identifies (anchor, v).
    gt_rect = bev_aabb(gt_boxes, index.aabb_pad)
    p_g, p_a = index.aabb.query(gt_rect, ordered=False) if pairs is None else pairs
    p_key = p_a * n_g + p_g
    c_sorted = torch.sort(c_a * n_g + c_g).values  # unique: a set's candidates of one GT are distinct anchors
    is_cand = c_sorted[torch.searchsorted(c_sorted, p_key).clamp_max(c_sorted.numel() - 1)] == p_key

    # Forced match: a non-candidate pair matters only if it can reach the best candidate IoU.
    r_a, r_g = p_a[~is_cand], p_g[~is_cand]
    r_v = index.anchor_set.index_select(0, r_a) * n_g + r_g
    floor = cand_iou.amax(dim=0).double().index_select(0, r_v) * (1 - 1e-6)
    aabb_inter = _aabb_inter_bound(index.aabb.boxes.index_select(0, r_a), gt_rect.index_select(0, r_g),
                                   index.aabb_pad, margin_compat)
    r_anchor = anchors.index_select(0, r_a)
    live_idx = torch.nonzero(_may_reach(r_anchor, gt_boxes.index_select(0, r_g), floor, margin_compat, iou_3d,
                                        aabb_inter)).squeeze(1)
    r_a, r_v, r_g = r_a.index_select(0, live_idx), r_v.index_select(0, live_idx), r_g.index_select(0, live_idx)
    r_iou = iou_fn(r_anchor.index_select(0, live_idx), gt_boxes.index_select(0, r_g), margin_compat=margin_compat)
    all_a, all_v, all_iou = torch.cat((c_a, r_a)), torch.cat((c_v, r_v)), torch.cat((c_iou, r_iou))

    # Per set on a contiguous [topk, K] block, the shape upstream reduces: torch's column reductions can round
    # differently with the number of columns. The std of one value is NaN in torch (with a warning): keep the NaN,
    # skip the warning.
    threshold = torch.cat([
        block.mean(dim=0) + (block.std(dim=0, unbiased=True) if topk > 1 else torch.full_like(block[0], float("nan")))
        + THRESHOLD_EPS for block in (cand_iou[:, s * n_g:(s + 1) * n_g].contiguous() for s in range(n_s))])
    is_pos = cand_iou >= threshold[None, :]

    # BEV inside test in the GT's frame (rotate the offset by -yaw).
    g_rows = gt_boxes.index_select(0, g_of_cand.reshape(-1))
    off = anchors.index_select(0, c_a)[:, 0:2] - g_rows[:, 0:2]
    yaw = g_rows[:, 6]
    c, s = torch.cos(yaw), torch.sin(yaw)
    x_local = off[:, 0] * c + off[:, 1] * s
    y_local = -off[:, 0] * s + off[:, 1] * c
    dims = g_rows[:, 3:5]
    if upstream_quirks:
        # atss_target_assigner.py indexes dims [1, 0] ("bugfixed"): x_local against dy, y_local against dx.
        dims = dims[:, [1, 0]]
    half = dims / 2
    inside = (x_local <= half[:, 0]) & (x_local >= -half[:, 0]) & (y_local <= half[:, 1]) & (y_local >= -half[:, 1])
    is_pos = is_pos & inside.view(topk, n_v)

    # Step 5: an anchor positive for several GT keeps the highest IoU; ties go to the lower GT index. Per distinct
    # positive anchor (sorted), the same max / min reductions as over all anchors.
    p_a5, p_v5, p_iou5 = cand[is_pos], v_of_cand[is_pos], cand_iou[is_pos]
    u5, inv5 = torch.unique(p_a5, sorted=True, return_inverse=True)
    best = torch.full((u5.numel(),), float("-inf"), dtype=anchors.dtype, device=device)
    best = best.scatter_reduce(0, inv5, p_iou5, reduce="amax")
    winner = p_iou5 == best.index_select(0, inv5)
    assigned5 = torch.full((u5.numel(),), n_v, dtype=torch.int64, device=device).scatter_reduce(
        0, inv5[winner], p_v5[winner], reduce="amin")

    # Step 6: forced argmax anchor per GT over the set's anchors (first index; all-zero IoU -> the set's first).
    g_max = anchors.new_zeros(n_v).scatter_reduce(0, all_v, all_iou, reduce="amax", include_self=True)
    g_max_all = g_max.index_select(0, all_v)
    at_max = (all_iou == g_max_all) & (g_max_all > 0)
    g_arg = index.set_first.repeat_interleave(n_g).scatter_reduce(
        0, all_v[at_max], all_a[at_max], reduce="amin", include_self=False)
    # Upstream's duplicate-index scatter has no defined winner; the highest GT index wins here.
    u6, inv6 = torch.unique(g_arg, sorted=True, return_inverse=True)
    forced_v = torch.full((u6.numel(),), -1, dtype=torch.int64, device=device).scatter_reduce(
        0, inv6, torch.arange(n_v, device=device), reduce="amax", include_self=True)

    # A forced anchor overwrites its step-5 result: sort forced entries before step-5 ones of the same anchor and
    # keep the first entry of every anchor.
    e_anchor = torch.cat((u6, u5))
    e_v = torch.cat((forced_v, assigned5))
    e_iou = torch.cat((g_max.index_select(0, forced_v), best))
    e_forced = torch.cat((torch.ones_like(u6, dtype=torch.bool), torch.zeros_like(u5, dtype=torch.bool)))
    order = torch.argsort(e_anchor, stable=True)
    e_anchor = e_anchor.index_select(0, order)
    first = torch.ones_like(e_anchor, dtype=torch.bool)
    first[1:] = e_anchor[1:] != e_anchor[:-1]
    keep = order[first]
    assigned_v = e_v.index_select(0, keep)
    return AtssPositives(e_anchor[first], v_gt.index_select(0, assigned_v), e_iou.index_select(0, keep),
                         e_forced.index_select(0, keep), cand.view(topk, n_s, n_g), threshold.view(n_s, n_g),
                         g_max.view(n_s, n_g), int(all_a.numel()))
