r"""Candidate pairs of overlapping axis-aligned boxes without an ``N x M`` mask.

`AabbIndex` sorts one set of boxes once; queries then enumerate only nearby boxes:

* the indexed boxes are split into *size groups* (``floor(log2(max extent))``), so that a few large boxes (a bus
  anchor) do not widen the search window of the many small ones;
* within a group, boxes are bucketed into horizontal strips of height ``h_g`` (the group's largest y extent) by their
  ``y1`` and sorted by ``(strip, x1)``. A query box ``q`` can only overlap an indexed box ``b`` of the group when
  ``b.y1`` lies in ``[q.y1 - maxext_y, q.y2]`` (a short run of strips) and ``b.x1`` in ``[q.x1 - maxext_x, q.x2]``
  (one ``searchsorted`` range per strip). All queries, strips and ranges are expanded with ``repeat_interleave``:
  no Python loop over boxes (only over the handful of size groups).

The window is a superset; the exact test keeps pairs whose rectangles overlap with **positive area**
(``min(x2) > max(x1)`` and ``min(y2) > max(y1)``, strict), so touching boxes are not candidates.
Pairs come back sorted by ``(i, j)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from assignaudit.errors import DataError


def _check_xyxy(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[1] != 4 or not t.is_floating_point():
        shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise DataError(f"{name}: expected a floating tensor of shape [N, 4] (x1, y1, x2, y2), got {shape}")


def _expand_ranges(starts: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ranges ``[starts[r], starts[r] + lens[r])`` return ``(range_id [T], value [T])`` for every element."""
    lens = lens.clamp_min(0)
    rid = torch.repeat_interleave(torch.arange(lens.shape[0], device=lens.device), lens)
    first = torch.cumsum(lens, 0) - lens  # position of each range's first element in the output
    offs = torch.arange(rid.shape[0], device=lens.device) - first[rid]
    return rid, starts[rid] + offs


@dataclass(frozen=True)
class AabbIndex:
    """A sorted index over ``Tensor[M, 4]`` xyxy boxes for repeated `query` calls (build once, e.g. per anchor
    layout). Build with `AabbIndex.build`; all tensors live on the boxes' device."""

    boxes: torch.Tensor  # [M, 4] the indexed xyxy boxes (original dtype)
    order: torch.Tensor  # [M'] int64: indices of valid boxes sorted by key
    keys: torch.Tensor  # [M'] float64: (group_offset + strip) * width + (x1 - x0)
    groups: tuple[tuple[int, float, float, float], ...]  # per group: (strip_offset, h, maxext_x, maxext_y)
    n_strips: tuple[int, ...]  # strips per group
    x0: float
    y0: float
    width: float  # key period per strip
    span: float  # max (x1 - x0) over indexed boxes

    @staticmethod
    def build(b_xyxy: torch.Tensor) -> "AabbIndex":
        _check_xyxy("b_xyxy", b_xyxy)
        dev = b_xyxy.device
        b = b_xyxy.double()
        ex, ey = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        valid = (ex > 0) & (ey > 0) & torch.isfinite(b).all(dim=1)  # zero-area boxes overlap nothing
        vidx = torch.nonzero(valid).squeeze(1)
        if vidx.numel() == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=dev)
            return AabbIndex(b_xyxy, empty, torch.zeros(0, dtype=torch.float64, device=dev), (), (), 0.0, 0.0,
                             1.0, 0.0)
        bv = b[vidx]
        exv, eyv = ex[vidx], ey[vidx]
        x0 = float(bv[:, 0].min())
        y0 = float(bv[:, 1].min())
        span = float(bv[:, 0].max()) - x0
        width = span + 2.0
        gid = torch.floor(torch.log2(torch.maximum(exv, eyv))).clamp(-8, 12).to(torch.int64)
        uniq = torch.unique(gid).tolist()
        strip = torch.empty_like(gid)
        gslot = torch.empty_like(gid)
        groups, n_strips, offset = [], [], 0
        y_span = float(bv[:, 1].max()) - y0
        for slot, g in enumerate(uniq):
            sel = gid == g
            mx, my = float(exv[sel].max()), float(eyv[sel].max())
            h = my
            ns = int(y_span // h) + 1
            strip[sel] = torch.floor((bv[sel, 1] - y0) / h).to(torch.int64).clamp(0, ns - 1)
            gslot[sel] = offset
            groups.append((offset, h, mx, my))
            n_strips.append(ns)
            offset += ns
        keys = (gslot + strip).double() * width + (bv[:, 0] - x0)
        keys, perm = torch.sort(keys)
        return AabbIndex(b_xyxy, vidx[perm], keys, tuple(groups), tuple(n_strips), x0, y0, width, span)

    def query(self, a_xyxy: torch.Tensor, *, ordered: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairs ``(i, j)`` with ``a_xyxy[i]`` and the indexed box ``j`` overlapping with positive area.

        Returns two ``LongTensor[P]``, sorted by ``(i, j)`` when ``ordered`` (otherwise in an unspecified but
        deterministic order, which saves a sort when the caller does not need it).
        """
        _check_xyxy("a_xyxy", a_xyxy)
        dev = a_xyxy.device
        empty = torch.zeros(0, dtype=torch.int64, device=dev)
        if a_xyxy.shape[0] == 0 or self.order.numel() == 0:
            return empty, empty
        q = a_xyxy.double()
        q_ok = ((q[:, 2] > q[:, 0]) & (q[:, 3] > q[:, 1]) & torch.isfinite(q).all(dim=1))
        qi_all, pos_all = [], []
        for (offset, h, mx, my), ns in zip(self.groups, self.n_strips):
            s_lo = torch.floor((q[:, 1] - my - self.y0) / h).clamp(0, ns - 1)
            s_hi = torch.floor((q[:, 3] - self.y0) / h).clamp(-1, ns - 1)
            s_hi = torch.where(q[:, 3] < self.y0, torch.full_like(s_hi, -1.0), s_hi)
            nstr = torch.where(q_ok, (s_hi - s_lo + 1).clamp_min(0), torch.zeros_like(s_hi)).to(torch.int64)
            qi, k = _expand_ranges(torch.zeros_like(nstr), nstr)  # (query, k-th strip of its run)
            strip = s_lo.to(torch.int64)[qi] + k
            base = (offset + strip).double() * self.width
            # Clamp the x offsets into [-0.5, span + 0.5] so a window never spills into the next strip's keys.
            lo = base + (q[qi, 0] - mx - self.x0).clamp(-0.5, self.span + 0.5)
            hi = base + (q[qi, 2] - self.x0).clamp(-0.5, self.span + 0.5)
            start = torch.searchsorted(self.keys, lo, right=False)
            stop = torch.searchsorted(self.keys, hi, right=True)
            rid, pos = _expand_ranges(start, stop - start)
            qi_all.append(qi[rid])
            pos_all.append(pos)
        qi = torch.cat(qi_all)
        bj = self.order[torch.cat(pos_all)]
        a_, b_ = a_xyxy[qi], self.boxes[bj]
        hit = ((torch.minimum(a_[:, 2], b_[:, 2]) > torch.maximum(a_[:, 0], b_[:, 0]))
               & (torch.minimum(a_[:, 3], b_[:, 3]) > torch.maximum(a_[:, 1], b_[:, 1])))
        qi, bj = qi[hit], bj[hit]
        if not ordered:
            return qi, bj
        key = qi * self.boxes.shape[0] + bj
        key, perm = torch.sort(key)
        return qi[perm], bj[perm]


def aabb_overlap_pairs(a_xyxy: torch.Tensor, b_xyxy: torch.Tensor, *,
                       ordered: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs ``(i, j)`` whose axis-aligned boxes ``a_xyxy[i]`` and ``b_xyxy[j]`` overlap with positive area.

    Args:
        a_xyxy: ``Tensor[N, 4]``, b_xyxy: ``Tensor[M, 4]`` ``[x1, y1, x2, y2]`` (metres, any float dtype, same
            device). Boxes with zero or negative extent, or non-finite coordinates, overlap nothing.

    Returns:
        ``(ia, ib)``: two ``LongTensor[P]`` sorted by ``(ia, ib)`` (``ordered=False`` skips that sort). Memory is
        O(N + M + candidates), never N x M.
        The larger set is indexed (see `AabbIndex`; build one yourself to reuse it across calls).
    """
    _check_xyxy("a_xyxy", a_xyxy)
    _check_xyxy("b_xyxy", b_xyxy)
    if b_xyxy.shape[0] >= a_xyxy.shape[0]:
        return AabbIndex.build(b_xyxy).query(a_xyxy, ordered=ordered)
    jb, ia = AabbIndex.build(a_xyxy).query(b_xyxy, ordered=False)
    if not ordered:
        return ia, jb
    key = ia * b_xyxy.shape[0] + jb
    perm = torch.argsort(key)
    return ia[perm], jb[perm]
