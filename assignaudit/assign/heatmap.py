"""CenterPoint heatmap targets as OpenPCDet and mmdetection3d build them (assignment-semantics §5, §7, §12.10-12).

`heatmap_targets` turns one frame's GT into the per-head class heatmaps a CenterHead is trained on, and says for
every GT whether it got a regression slot (``mask = 1``), where its centre cell is, which radius it was drawn with
and, if it does not own a positive cell, why.

Both frameworks do this with a Python loop over GT that splats one Gaussian at a time. The result does not depend
on the order of the splats (they are merged with an elementwise max), so here every kernel cell of every drawn GT
becomes one (flat index, value) pair and a single ``scatter_reduce('amax')`` writes them all: no loop per GT. The
per-GT bookkeeping (cells, radii, truncation) is elementwise float32 arithmetic done with the upstream operation
order, so cells and radii are bit-identical to the upstream loops.

Frames and units: GT boxes are canonical (`assignaudit.conventions`: LiDAR frame, metres, centre z); cells are
feature-map cells, ``x`` along the map width ``W`` and ``y`` along its height ``H``; heatmaps are ``[C, H, W]``.

Which GT count as positives (assignment-semantics §5.3): a cell is a positive of class c when ``hm == 1`` exactly,
every other cell is a negative weighted ``(1 - hm)**4`` ("penalty-reduced" when ``0 < hm < 1``); there is no ignore.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from assignaudit.assign.params import HeatmapParams, Variant  # noqa: F401  (defined there: torch-free config)
from assignaudit.errors import DataError


REASON_TRUNCATED = "truncated_max_objs"
REASON_OUT_OF_MAP = "out_of_map"
REASON_DEGENERATE = "degenerate_size"
REASON_COLLISION = "cell_collision"


# Parameters: `HeatmapParams` lives in `assignaudit.assign.params` (configs build it without importing torch).


# --------------------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadHeatmap:
    """One head's (task's) heatmap and the GT slots it used, in the order the framework saw them.

    M = slots of this head. A slot is one GT as seen by this head; with pcdet's relabelling quirk one GT can have a
    slot in several heads (``slot_phantom`` marks the extra ones).
    """

    head: int
    class_names: tuple[str, ...]
    """Channel names, ``C_h`` of them."""
    heatmap: torch.Tensor
    """float32 ``[C_h, H, W]`` on the device of the GT boxes."""
    slot_gt: np.ndarray
    """int64 ``[M]``: frame index of the GT in each slot (pcdet: frame order; mmdet3d: by class, then frame)."""
    slot_channel: np.ndarray
    """int64 ``[M]``: channel the slot is drawn in."""
    slot_used: np.ndarray
    """bool ``[M]``: drawn, with regression ``mask = 1``."""
    slot_reason: np.ndarray
    """object ``[M]``: None, or one of the ``REASON_*`` strings (see `HeatmapResult.reason`)."""
    slot_phantom: np.ndarray
    """bool ``[M]``: the GT already had a slot in an earlier head (pcdet relabelling quirk)."""


@dataclass(frozen=True)
class ClassHeatmapStats:
    """Cell and GT counts of one heatmap channel (one class of one head)."""

    class_name: str
    head: int
    channel: int
    gt_slots: int
    """Slots drawn in this channel (GT with ``mask = 1``, phantom slots included)."""
    positive_cells: int
    """Cells with ``hm == 1``: the loss's positives; fewer than ``gt_slots`` when centres collide."""
    reduced_negative_cells: int
    """Cells with ``0 < hm < 1``."""
    negative_cells: int
    """Cells with ``hm == 0``."""
    collisions: int
    """Drawn slots whose centre cell an earlier slot of the same channel already owns."""
    radius_counts: tuple[tuple[int, int], ...]
    """(radius in cells, drawn slots) pairs, ascending radius."""


@dataclass(frozen=True)
class HeatmapResult:
    """One frame's CenterHead targets. K = GT passed in; the per-GT arrays describe each GT's own (first) slot."""

    heads: tuple[HeadHeatmap, ...]
    head: np.ndarray
    """int64 ``[K]``: head of the GT's own slot."""
    channel: np.ndarray
    """int64 ``[K]``: channel within that head."""
    used: np.ndarray
    """bool ``[K]``: drawn and given a regression slot (``mask = 1``)."""
    cell_x: np.ndarray
    """int64 ``[K]``: centre cell column (after pcdet's clamp; mmdet3d may be outside ``[0, W)`` when out_of_map)."""
    cell_y: np.ndarray
    """int64 ``[K]``: centre cell row."""
    radius: np.ndarray
    """int64 ``[K]``: Gaussian radius in cells, ``max(int(gaussian_radius), min_radius)``; -1 for degenerate size."""
    clamped: np.ndarray
    """bool ``[K]``: pcdet moved the centre onto the map border (always False for mmdet3d)."""
    reason: np.ndarray
    """object ``[K]``: None when the GT owns a positive cell, else why not:
    ``truncated_max_objs`` (slot beyond ``num_max_objs`` in the head's order: silently dropped),
    ``degenerate_size`` (dx or dy <= 0: skipped), ``out_of_map`` (mmdet3d: integer centre outside the map: skipped),
    ``cell_collision`` (drawn, ``mask = 1``, but an earlier slot of the same channel has the same centre cell, so
    both regress from one positive cell; see ``collision_with``)."""
    collision_with: np.ndarray
    """int64 ``[K]``: for ``cell_collision``, the frame index of the GT that owns the cell; else -1."""
    class_stats: tuple[ClassHeatmapStats, ...]
    warnings: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------------------------


def gaussian_radius(height, width, min_overlap: float) -> torch.Tensor:
    """CornerNet's Gaussian radius, with its known error, elementwise (centernet_utils.py / mmdet3d gaussian.py).

    ``height``, ``width``: box extents in feature-map cells (tensors of one shape, or floats); returns the radius in
    cells (float, not yet truncated), in the inputs' dtype (float32 for non-tensors).

    The three roots are each divided by 2 instead of 2a (the CornerNet bug), so the radius is smaller than the one
    that would keep IoU >= ``min_overlap``; with ``min_overlap = 0.1`` the third root is always the minimum. The
    operation order below is the upstream one, so float32 results are bit-identical; pass (dx, dy) for pcdet and
    (dy, dx) for mmdet3d (the formula is symmetric, its rounding in ``c2``/``c3`` is not quite).
    """
    h = height if isinstance(height, torch.Tensor) else torch.as_tensor(height, dtype=torch.float32)
    w = width if isinstance(width, torch.Tensor) else torch.as_tensor(width, dtype=torch.float32)
    o = float(min_overlap)
    b1 = h + w
    c1 = w * h * (1 - o) / (1 + o)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - o) * w * h
    r2 = (b2 + torch.sqrt(b2**2 - 16 * c2)) / 2
    b3 = -2 * o * (h + w)
    c3 = (o - 1) * w * h
    r3 = (b3 + torch.sqrt(b3**2 - 4 * (4 * o) * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


@lru_cache(maxsize=64)
def _kernel(radius: int) -> np.ndarray:
    """float32 ``[2r+1, 2r+1]`` Gaussian, sigma = (2r+1)/6, computed in float64 like upstream ``gaussian2D``.

    Values below ``eps_float64 * max`` are zeroed before the float32 cast, as upstream; only the centre is 1.0.
    """
    d = 2 * radius + 1
    sigma = d / 6
    u = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(u[None, :] * u[None, :] + u[:, None] * u[:, None]) / (2 * sigma * sigma))
    g[g < np.finfo(np.float64).eps * g.max()] = 0
    out = g.astype(np.float32)
    out.setflags(write=False)
    return out


def _draw(num_channels: int, w: int, h: int, channel, cx, cy, radius, device) -> tuple[torch.Tensor, np.ndarray]:
    """Max-merge one Gaussian per drawn slot into a zero ``[num_channels, h, w]`` float32 map, cropped at borders.

    ``channel``, ``cx``, ``cy``, ``radius``: int64 numpy ``[N]``. One scatter for all slots; a loop over the few
    distinct radii only (at the shipped settings: 2 and 3). Also returns the flat indices of the cells written with
    a value > 0 (int64, with repeats), from which the cell counts follow without a pass over the dense map.
    """
    flat = torch.zeros(num_channels * h * w, dtype=torch.float32, device=device)
    if channel.size == 0:
        return flat.view(num_channels, h, w), np.zeros(0, dtype=np.int64)
    idx_parts, val_parts = [], []
    for r in np.unique(radius).tolist():
        sel = radius == r
        ker = _kernel(int(r))
        off = np.arange(-r, r + 1, dtype=np.int64)
        xs = cx[sel, None, None] + off[None, None, :]  # [n, 1, d]
        ys = cy[sel, None, None] + off[None, :, None]  # [n, d, 1]
        ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h) & (ker[None] > 0)
        idx = (channel[sel, None, None] * h + ys) * w + xs
        idx_parts.append(idx[ok])
        val_parts.append(np.broadcast_to(ker[None], ok.shape)[ok])
    idx = np.concatenate(idx_parts)
    idx_t = torch.from_numpy(idx).to(device)
    val_t = torch.from_numpy(np.concatenate(val_parts)).to(device)
    flat.scatter_reduce_(0, idx_t, val_t, reduce="amax", include_self=True)
    return flat.view(num_channels, h, w), idx


# --------------------------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------------------------


def _class_indices(gt_class, k: int, class_names: tuple[str, ...]) -> np.ndarray:
    if isinstance(gt_class, torch.Tensor):
        gt_class = gt_class.detach().cpu().numpy()
    arr = np.asarray(gt_class)
    if arr.shape != (k,):
        raise DataError(f"gt_class has shape {arr.shape}; expected one class per GT box ({k})")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind in "iu":
        bad = (arr < 0) | (arr >= len(class_names))
        if bad.any():
            raise DataError(f"gt_class index {int(arr[bad][0])} is outside class_names (0..{len(class_names) - 1})")
        return arr.astype(np.int64)
    lookup = {c: i for i, c in enumerate(class_names)}
    out = np.empty(k, dtype=np.int64)
    for i, name in enumerate(arr.tolist()):  # K names, once per frame; not a hot path
        if name not in lookup:
            raise DataError(f"GT class {name!r} is not in class_names {class_names}")
        out[i] = lookup[name]
    return out


def _slots_pcdet(cls: np.ndarray, params: HeatmapParams):
    """pcdet slot order per head, with the in-place relabelling of ``assign_targets`` (center_head.py).

    Upstream reads each GT's class name through ``['bg', *CLASS_NAMES][label]`` and, when it is in the head, writes
    ``label = index_in_head + 1`` into the shared ``gt_boxes`` tensor. A later head therefore sees the GT as
    ``CLASS_NAMES[index_in_head]``; with a non-monotone head order that name can belong to a later head and the GT
    is drawn a second time, under the wrong class. We replay exactly that.
    """
    heads = params.head_classes
    n_cls = len(params.class_names)
    head_of = np.full(n_cls, -1, dtype=np.int64)
    local_of = np.full(n_cls, -1, dtype=np.int64)
    for h, names in enumerate(heads):
        for j, name in enumerate(names):
            ci = params.class_names.index(name)
            head_of[ci], local_of[ci] = h, j
    cur = cls.copy()
    seen = np.zeros(cls.shape[0], dtype=bool)
    out = []
    for h in range(len(heads)):
        members = np.flatnonzero(head_of[cur] == h)  # frame order
        local = local_of[cur[members]]
        out.append((members, local, seen[members].copy()))
        seen[members] = True
        cur[members] = local  # label = local + 1 -> name CLASS_NAMES[local]
    return out


def _slots_mmdet3d(cls: np.ndarray, params: HeatmapParams):
    """mmdet3d slot order per task: label L belongs to the task covering position L of the concatenated task lists
    (``get_targets_single``: ``gt_labels_3d == task.index(name) + flag``); within a task, grouped by class in task
    order, frame order within a class."""
    sizes = [len(t) for t in params.head_classes]
    starts = np.cumsum([0] + sizes)
    task_of = np.repeat(np.arange(len(sizes)), sizes)
    out = []
    for t in range(len(sizes)):
        members = np.flatnonzero(task_of[cls] == t)
        local = cls[members] - starts[t]
        order = np.argsort(local, kind="stable")
        out.append((members[order], local[order], np.zeros(members.shape[0], dtype=bool)))
    return out


def heatmap_targets(gt_boxes, gt_class, params: HeatmapParams) -> HeatmapResult:
    """One frame's CenterHead heatmaps and per-GT target bookkeeping.

    ``gt_boxes``: ``[K, 7+]`` canonical boxes (tensor or array; cast to float32 as both frameworks hold them; only
    x, y, dx, dy are read). ``gt_class``: ``[K]`` class names or indices into ``params.class_names``. Heatmaps are
    built on ``gt_boxes``' device; the per-GT arithmetic runs on CPU like pcdet (``gt_boxes.cpu()``), which also
    keeps the float32 division exact (CUDA divides by a CPU scalar through its reciprocal).

    pcdet (``assign_target_of_single_head``): per head, GT in frame order; slots beyond ``NUM_MAX_OBJS`` dropped;
    ``dx <= 0 or dy <= 0`` skipped; centres clamped into ``[0, W-0.5] x [0, H-0.5]`` so none leaves the map.
    mmdet3d (``get_targets_single``): per task, GT grouped by class; ``max_objs`` truncation in that order; integer
    centre outside ``[0, W) x [0, H)`` skipped, no clamp. Both: radius ``max(int(gaussian_radius(dx_c, dy_c)),
    min_radius)``, kernel centred on the integer cell, merged with max.

    Raises DataError for a malformed box array, a non-finite x/y/dx/dy or an unknown class.
    """
    if not isinstance(gt_boxes, torch.Tensor):
        gt_boxes = torch.as_tensor(np.asarray(gt_boxes, dtype=np.float32))
    if gt_boxes.dim() != 2 or gt_boxes.shape[1] < 7:
        raise DataError(f"gt_boxes has shape {tuple(gt_boxes.shape)}; expected [K, 7+] canonical boxes")
    device = gt_boxes.device
    k = int(gt_boxes.shape[0])
    cls = _class_indices(gt_class, k, params.class_names)
    boxes = gt_boxes.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(boxes[:, [0, 1, 3, 4]]).all()):
        bad = int((~torch.isfinite(boxes[:, [0, 1, 3, 4]])).any(1).nonzero()[0, 0])
        raise DataError(f"gt_boxes row {bad} has a non-finite x, y, dx or dy")

    w, h = params.map_size
    pcr, vox, s = params.point_cloud_range, params.voxel_size, params.feature_map_stride
    pcdet = params.variant == "pcdet"

    # Per GT (does not depend on the head): the upstream float32 expressions, same order.
    coord_x = (boxes[:, 0] - pcr[0]) / vox[0] / s
    coord_y = (boxes[:, 1] - pcr[1]) / vox[1] / s
    dx_c = boxes[:, 3] / vox[0] / s
    dy_c = boxes[:, 4] / vox[1] / s
    if pcdet:
        # center_head.py: clamp to [0, size - 0.5] so that int() stays on the map ("1e-6 does not work").
        cx_f = torch.clamp(coord_x, min=0, max=w - 0.5)
        cy_f = torch.clamp(coord_y, min=0, max=h - 0.5)
        clamped = ((cx_f != coord_x) | (cy_f != coord_y)).numpy()
        rad_f = gaussian_radius(dx_c, dy_c, params.gaussian_overlap)
    else:
        cx_f, cy_f = coord_x, coord_y
        clamped = np.zeros(k, dtype=bool)
        # centerpoint_head.py calls gaussian_radius((length, width)) with length = y extent.
        rad_f = gaussian_radius(dy_c, dx_c, params.gaussian_overlap)
    ix = cx_f.to(torch.int32).numpy().astype(np.int64)  # truncation toward zero, as .int() / .to(int32)
    iy = cy_f.to(torch.int32).numpy().astype(np.int64)
    degenerate = ((dx_c <= 0) | (dy_c <= 0)).numpy()
    radius = np.maximum(torch.nan_to_num(rad_f).to(torch.int32).numpy().astype(np.int64), params.min_radius)
    radius[degenerate] = -1
    in_map = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)  # always True for pcdet (clamped)

    per_head = _slots_pcdet(cls, params) if pcdet else _slots_mmdet3d(cls, params)
    heads = params.head_classes
    ch_offset = np.cumsum([0] + [len(n) for n in heads])

    slot_gt = np.concatenate([m for m, _, _ in per_head]).astype(np.int64)
    slot_local = np.concatenate([c for _, c, _ in per_head]).astype(np.int64)
    slot_phantom = np.concatenate([p for _, _, p in per_head]).astype(bool)
    slot_head = np.repeat(np.arange(len(heads)), [m.shape[0] for m, _, _ in per_head])
    slot_pos = np.concatenate([np.arange(m.shape[0]) for m, _, _ in per_head]).astype(np.int64)
    slot_ch = ch_offset[slot_head] + slot_local  # channel in the stacked [sum C_h, H, W] map

    truncated = slot_pos >= params.num_max_objs
    deg_s = degenerate[slot_gt]
    oob_s = ~in_map[slot_gt]
    used = ~truncated & ~deg_s & ~oob_s
    sx, sy, sr = ix[slot_gt], iy[slot_gt], radius[slot_gt]

    # Collisions: among drawn slots, the first (in head order) with a given (channel, cell) owns the positive.
    owner = np.full(slot_gt.shape[0], -1, dtype=np.int64)
    u_idx = np.flatnonzero(used)
    if u_idx.size:
        key = (slot_ch[u_idx] * h + sy[u_idx]) * w + sx[u_idx]
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        owner[u_idx] = u_idx[first[inv]]
    collided = used & (owner != np.arange(slot_gt.shape[0])) & (owner >= 0)

    reason = np.full(slot_gt.shape[0], None, dtype=object)
    reason[collided] = REASON_COLLISION
    reason[oob_s & ~truncated & ~deg_s] = REASON_OUT_OF_MAP
    reason[deg_s & ~truncated] = REASON_DEGENERATE
    reason[truncated] = REASON_TRUNCATED

    total_ch = int(ch_offset[-1])
    stacked, written = _draw(total_ch, w, h, slot_ch[used], sx[used], sy[used], sr[used], device)

    # Per-channel cell counts without a pass over the dense map: the kernel is exactly 1.0 only at its centre and
    # > 0 wherever it was written, so positives (hm == 1) are the distinct drawn centre cells and nonzero cells the
    # distinct written cells. (The tests check these counts against the map itself.)
    n_slots = np.bincount(slot_ch[used], minlength=total_ch)
    n_coll = np.bincount(slot_ch[collided], minlength=total_ch)
    n_pos = n_slots - n_coll
    n_nz = np.bincount(np.unique(written) // (h * w), minlength=total_ch)
    r_max = int(sr[used].max()) + 1 if used.any() else 1
    r_hist = np.bincount(slot_ch[used] * r_max + sr[used], minlength=total_ch * r_max).reshape(total_ch, r_max)

    class_stats = []
    head_results = []
    for hd, names in enumerate(heads):
        sel = slot_head == hd
        head_results.append(
            HeadHeatmap(
                head=hd, class_names=names, heatmap=stacked[ch_offset[hd] : ch_offset[hd + 1]],
                slot_gt=slot_gt[sel], slot_channel=slot_local[sel], slot_used=used[sel], slot_reason=reason[sel],
                slot_phantom=slot_phantom[sel],
            )
        )
        for j, name in enumerate(names):
            c = ch_offset[hd] + j
            class_stats.append(
                ClassHeatmapStats(
                    class_name=name, head=hd, channel=j, gt_slots=int(n_slots[c]), positive_cells=int(n_pos[c]),
                    reduced_negative_cells=int(n_nz[c] - n_pos[c]), negative_cells=int(h * w - n_nz[c]),
                    collisions=int(n_coll[c]),
                    radius_counts=tuple((int(r), int(n)) for r, n in enumerate(r_hist[c]) if n),
                )
            )

    # Per GT: its own slot is the first (non-phantom) one; every GT has exactly one (params validation).
    own = np.flatnonzero(~slot_phantom)
    gt_slot = np.empty(k, dtype=np.int64)
    gt_slot[slot_gt[own]] = own
    coll_with = np.where(collided[gt_slot], slot_gt[np.maximum(owner[gt_slot], 0)], -1)

    warnings = list(params.warnings)
    n_phantom = int((slot_phantom & used).sum())
    if n_phantom:
        warnings.append(
            f"{n_phantom} GT drawn a second time under another class by pcdet's in-place relabelling in this frame"
        )
    return HeatmapResult(
        heads=tuple(head_results),
        head=slot_head[gt_slot].astype(np.int64),
        channel=slot_local[gt_slot],
        used=used[gt_slot],
        cell_x=ix,
        cell_y=iy,
        radius=radius,
        clamped=clamped,
        reason=reason[gt_slot],
        collision_with=coll_with.astype(np.int64),
        class_stats=tuple(class_stats),
        warnings=tuple(warnings),
    )
