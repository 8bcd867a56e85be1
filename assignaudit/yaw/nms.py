"""Duplicates among predictions, and NMS applied to them through `assignaudit.ops`.

Duplicate (prediction view): a prediction is a duplicate if a prediction of the same class in the same sample that
is visited earlier (higher score; equal scores in `devkit_order`) lies within ``dup_dist_m`` BEV centre distance
(``<=``), or, when an IoU criterion is given, has rotated BEV IoU ``> dup_iou`` with it (the IoU criterion then
replaces the distance one). Both are measured on the canonical LiDAR-frame boxes, where detectors run NMS.

NMS: what the detectors do at inference (spec §10), on the LiDAR boxes of each sample:

* ``rotate``: greedy, suppress when rotated BEV IoU ``> thresh`` (``nms_gpu`` / ``nms_bev``); per class
  (pcdet ``MULTI_CLASSES_NMS: True``: pre/post max per class; mmdet3d ``box3d_multiclass_nms``: pre max per class
  here, and ``max_num`` keeps the global top ``post_max`` by score over all classes together,
  ``post_max_per_class=False``) or class-agnostic (pcdet default, CenterPoint within a task; pre/post max per
  sample);
* ``circle``: CenterPoint ``circle_nms``: suppress when the **squared** BEV centre distance is ``<= radius_sq``
  (the config numbers are m^2, not m).

Boxes with ``score < score_thresh`` are dropped first. Greedy NMS is not monotone in its threshold: lowering it can
*increase* the kept count (A suppresses B, which no longer suppresses C and D). What is guaranteed is that after
per-class rotate NMS at ``t``, no two kept boxes of a class overlap with IoU ``> t``, so the IoU-duplicates left at
criterion ``T >= t`` are zero.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from assignaudit.errors import ConfigError
from assignaudit.yaw.matching import pairs_within

NMS_TYPES = ("rotate", "circle")


@dataclass(frozen=True)
class NmsSettings:
    """How NMS is replayed. ``thresh`` is an IoU for ``rotate`` and unused for ``circle`` (``circle_radius_sq``, m^2)."""

    nms_type: str = "rotate"
    thresh: float = 0.2
    circle_radius_sq: float = 4.0
    class_agnostic: bool = False
    pre_max: int | None = None
    post_max: int | None = None
    score_thresh: float = 0.0
    post_max_per_class: bool = True
    """Per-class NMS only: True caps each class at ``post_max`` (OpenPCDet); False keeps the ``post_max``
    best-scored boxes of all classes together (mmdet3d ``box3d_multiclass_nms`` ``max_num``)."""

    def __post_init__(self) -> None:
        if self.nms_type not in NMS_TYPES:
            raise ConfigError(f"--nms-type must be one of {', '.join(NMS_TYPES)}, got {self.nms_type!r}")
        if not (0.0 <= self.thresh <= 1.0):
            raise ConfigError(f"--nms-thresh must be an IoU in [0, 1], got {self.thresh}")
        if not (self.circle_radius_sq >= 0):
            raise ConfigError(f"--circle-radius-sq must be >= 0 (m^2), got {self.circle_radius_sq}")
        for name, v in (("--nms-pre-max", self.pre_max), ("--nms-post-max", self.post_max)):
            if v is not None and v <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {v}")

    def with_threshold(self, value: float) -> "NmsSettings":
        """The same settings with the sweep variable replaced (IoU for rotate, squared radius for circle)."""
        import dataclasses

        if self.nms_type == "circle":
            return dataclasses.replace(self, circle_radius_sq=float(value))
        return dataclasses.replace(self, thresh=float(value))


@contextlib.contextmanager
def single_torch_thread():
    """Run the per-sample op loops with one intra-op thread, restoring the caller's setting after.

    Each call sees one sample's few hundred boxes: intra-op threads only add synchronisation, and on a shared
    2-core machine their spin-waiting made the NMS loop ~10x slower (bench_yaw: 35 s vs 3.6 s at 600 samples).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _later_of_pairs(i: np.ndarray, j: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """bool ``[n]``: rows that are the later-visited member of at least one pair."""
    out = np.zeros(n, dtype=bool)
    later = np.where(pos[i] > pos[j], i, j)
    out[later] = True
    return out


def duplicate_flags(boxes_lidar: np.ndarray, group: np.ndarray, sample: np.ndarray, pos: np.ndarray,
                    dup_dist_m: float, dup_iou: float | None) -> np.ndarray:
    """bool ``[P]``: is each prediction a duplicate of an earlier-visited one of its (sample, class) group.

    ``boxes_lidar [P, 7+]`` canonical; ``group`` int64 (sample, class) id; ``sample`` int64 sample id; ``pos``
    int64 visiting position (`devkit_order` inverse). See the module docstring for the criteria.
    """
    n = boxes_lidar.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    if dup_iou is None:
        i, j, _ = pairs_within(boxes_lidar[:, :2], group, None, None, dup_dist_m)
        return _later_of_pairs(i, j, pos, n)
    i, j = _iou_pairs_within_samples(boxes_lidar, sample, group, dup_iou)
    return _later_of_pairs(i, j, pos, n)


def _iou_pairs_within_samples(boxes: np.ndarray, sample: np.ndarray, group: np.ndarray,
                              min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of the same group with rotated BEV IoU > ``min_iou`` (ops.box_iou_bev_sparse per sample)."""
    ii, jj = [], []
    with single_torch_thread():
        pairs = [_sample_iou_pairs(boxes, rows, min_iou) for rows in _rows_by_key(sample) if rows.size >= 2]
    for ia, ib in pairs:
        keep = (ia < ib) & (group[ia] == group[ib])
        ii.append(ia[keep])
        jj.append(ib[keep])
    if not ii:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(ii), np.concatenate(jj)


def _sample_iou_pairs(boxes: np.ndarray, rows: np.ndarray, min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    from assignaudit.ops import box_iou_bev_sparse

    b = torch.as_tensor(boxes[rows, :7])
    ia, ib, _iou = box_iou_bev_sparse(b, b, min_iou=min_iou)
    return rows[np.asarray(ia, dtype=np.int64)], rows[np.asarray(ib, dtype=np.int64)]


def iou_pairs(boxes_a: np.ndarray, group_a: np.ndarray, sample_a: np.ndarray, boxes_b: np.ndarray,
              group_b: np.ndarray, sample_b: np.ndarray, min_iou: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cross pairs ``(i in a, j in b)`` of the same group with rotated BEV IoU ``> min_iou``, and that IoU."""
    out_i, out_j, out_v = [], [], []
    b_rows = dict(zip(*_key_rows(sample_b)))
    with single_torch_thread():
        for key, rows_a in zip(*_key_rows(sample_a)):
            _cross_sample(boxes_a, group_a, rows_a, boxes_b, group_b, b_rows.get(key), min_iou, out_i, out_j, out_v)
    if not out_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_v)


def _cross_sample(boxes_a, group_a, rows_a, boxes_b, group_b, rows_b, min_iou, out_i, out_j, out_v) -> None:
    from assignaudit.ops import box_iou_bev_sparse

    if rows_b is None:
        return
    ia, ib, v = box_iou_bev_sparse(torch.as_tensor(boxes_a[rows_a, :7]), torch.as_tensor(boxes_b[rows_b, :7]),
                                   min_iou=min_iou)
    ia, ib = rows_a[np.asarray(ia, dtype=np.int64)], rows_b[np.asarray(ib, dtype=np.int64)]
    v = np.asarray(v, dtype=np.float64)
    keep = group_a[ia] == group_b[ib]
    out_i.append(ia[keep])
    out_j.append(ib[keep])
    out_v.append(v[keep])


def _key_rows(key: np.ndarray) -> tuple[list, list[np.ndarray]]:
    """Distinct keys and the rows of each (rows ascending)."""
    key = np.asarray(key)
    if key.size == 0:
        return [], []
    srt = np.argsort(key, kind="stable")
    ks = key[srt]
    cut = np.flatnonzero(ks[1:] != ks[:-1]) + 1
    return [ks[c] for c in np.r_[0, cut]], np.split(srt, cut)


def _rows_by_key(key: np.ndarray) -> list[np.ndarray]:
    return _key_rows(key)[1]


def apply_nms(boxes_lidar: np.ndarray, score: np.ndarray, sample: np.ndarray, class_id: np.ndarray,
              order: np.ndarray, settings: NmsSettings) -> np.ndarray:
    """bool ``[P]``: kept by NMS as configured (see the module docstring), every sample at once.

    Equal to `apply_nms_per_sample` (each sample through `ops.nms_bev` / `batched_nms_bev` / `circle_nms`), without
    its per-sample calls: the eligible boxes of all samples are ranked by (sample, visiting order) (`devkit_order`,
    so equal scores resolve as in matching); the candidate pairs come from one AABB enumeration in which each sample's
    rectangles are shifted along x by ``sample x stride`` (samples can never pair up; the exact IoU / distance is
    computed on the unshifted boxes, the same elementwise kernel as per sample); edges join boxes of one NMS group
    (sample, or sample x class); and one vectorised greedy pass (`ops.nms.greedy_keep`) decides every group.
    ``pre_max`` / ``post_max`` apply per group, as the per-sample ops apply them.
    """
    n = boxes_lidar.shape[0]
    kept = np.zeros(n, dtype=bool)
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    rows = np.flatnonzero(score >= settings.score_thresh)
    if rows.size == 0:
        return kept
    rows = rows[np.lexsort((pos[rows], sample[rows]))]  # rank order: sample, then visiting order

    def groups(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s_id = np.unique(sample[r], return_inverse=True)[1].astype(np.int64).reshape(-1)
        if settings.class_agnostic:
            return s_id, s_id
        c_id = np.unique(class_id[r], return_inverse=True)[1].astype(np.int64).reshape(-1)
        return s_id, s_id * (int(c_id.max()) + 1) + c_id

    s_id, group = groups(rows)
    if settings.pre_max:
        rows = rows[_rank_within(group) < settings.pre_max]
        s_id, group = groups(rows)
    keep = np.zeros(rows.size, dtype=bool)
    # Blocks of whole samples (bounded memory: pairs and the IoU kernel's intermediates grow with the boxes).
    cuts = np.r_[0, np.flatnonzero(s_id[1:] != s_id[:-1]) + 1, rows.size]
    start = 0
    with single_torch_thread():
        while start < rows.size:
            stop = int(cuts[np.searchsorted(cuts, start + NMS_BLOCK_BOXES, side="right") - 1])
            if stop <= start:  # one sample larger than a block
                stop = int(cuts[np.searchsorted(cuts, start, side="right")])
            keep[start:stop] = _block_keep(boxes_lidar[rows[start:stop], :7], s_id[start:stop],
                                           group[start:stop], settings)
            start = stop
    k = np.flatnonzero(keep)
    if settings.post_max:
        # mmdet3d's box3d_multiclass_nms caps max_num over all classes of a sample together; OpenPCDet per class.
        cap_group = group if settings.post_max_per_class else s_id
        k = k[_rank_within(cap_group[k]) < settings.post_max]
    kept[rows[k]] = True
    return kept


NMS_BLOCK_BOXES = 1 << 17
"""`apply_nms` handles whole samples in blocks of about this many boxes (one AABB enumeration and greedy pass each)."""
NMS_PAIR_CHUNK = 1 << 21
"""IoU kernel calls take at most this many pairs (its intermediates are ~1 kB per pair)."""


def _block_keep(boxes: np.ndarray, s_id: np.ndarray, group: np.ndarray, settings: NmsSettings) -> np.ndarray:
    """Greedy keep mask of one block of rank-ordered boxes (whole samples): shifted AABB candidates, exact edges."""
    from assignaudit.ops.nms import greedy_keep
    from assignaudit.ops.pairs import aabb_overlap_pairs
    from assignaudit.ops.rotated import bev_aabb, box_iou_bev_aligned

    b = torch.as_tensor(boxes)
    if settings.nms_type == "rotate":
        xyxy = bev_aabb(b)
    else:  # the squares `ops.circle_nms` enumerates its candidates with
        hw = 0.5 * math.sqrt(settings.circle_radius_sq) * (1 + 1e-4) + 1e-4
        xyxy = torch.cat((b[:, :2] - hw, b[:, :2] + hw), dim=1)
    stride = float(xyxy[:, 2].max() - xyxy[:, 0].min()) + 16.0
    # Each NMS group (sample, or sample x class) on its own stretch of x: only same-group pairs are enumerated.
    g_local = np.unique(group, return_inverse=True)[1].reshape(-1)
    shift = torch.as_tensor(g_local, dtype=xyxy.dtype) * stride
    xyxy[:, 0] += shift
    xyxy[:, 2] += shift
    ia, ib = aabb_overlap_pairs(xyxy, xyxy, ordered=False)
    ia_np, ib_np = ia.numpy(), ib.numpy()
    fwd = (ia_np < ib_np) & (group[ia_np] == group[ib_np])
    ia_np, ib_np = ia_np[fwd], ib_np[fwd]
    del ia, ib, fwd
    edge = np.empty(ia_np.size, dtype=bool)
    for lo in range(0, ia_np.size, NMS_PAIR_CHUNK):
        i = torch.from_numpy(ia_np[lo:lo + NMS_PAIR_CHUNK])
        j = torch.from_numpy(ib_np[lo:lo + NMS_PAIR_CHUNK])
        if settings.nms_type == "rotate":
            e = box_iou_bev_aligned(b[i], b[j]) > settings.thresh
        else:
            dx = b[i, 0] - b[j, 0]
            dy = b[i, 1] - b[j, 1]
            e = dx * dx + dy * dy <= settings.circle_radius_sq
        edge[lo:lo + NMS_PAIR_CHUNK] = e.numpy()
    return greedy_keep(boxes.shape[0], ia_np[edge], ib_np[edge])


def _rank_within(group: np.ndarray) -> np.ndarray:
    """For entries listed in rank order, each one's rank among the entries of its group (0-based)."""
    perm = np.argsort(group, kind="stable")
    g = group[perm]
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    run_start = np.repeat(start, np.diff(np.r_[start, g.size]))
    rank = np.empty_like(perm)
    rank[perm] = np.arange(g.size) - run_start
    return rank


def apply_nms_per_sample(boxes_lidar: np.ndarray, score: np.ndarray, sample: np.ndarray, class_id: np.ndarray,
                         order: np.ndarray, settings: NmsSettings) -> np.ndarray:
    """`apply_nms` one sample at a time through the `assignaudit.ops` NMS functions (the reference it is tested
    against; slow on val-sized files: one call per sample)."""
    n = boxes_lidar.shape[0]
    kept = np.zeros(n, dtype=bool)
    eligible = score >= settings.score_thresh
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    with single_torch_thread():
        for rows in _rows_by_key(sample):
            _nms_sample(boxes_lidar, score, class_id, pos, rows[eligible[rows]], settings, kept)
    return kept


def _nms_sample(boxes_lidar, score, class_id, pos, rows, settings: NmsSettings, kept: np.ndarray) -> None:
    """NMS of one sample's eligible ``rows``; marks the survivors in ``kept`` (allocated by `apply_nms`)."""
    from assignaudit.ops import batched_nms_bev, circle_nms, nms_bev

    if rows.size == 0:
        return
    rows = rows[np.argsort(pos[rows])]
    b = torch.as_tensor(boxes_lidar[rows, :7])
    s = torch.as_tensor(score[rows])
    if settings.nms_type == "rotate":
        if settings.class_agnostic:
            keep = nms_bev(b, s, settings.thresh, pre_max=settings.pre_max, post_max=settings.post_max)
        else:
            keep = batched_nms_bev(b, s, torch.as_tensor(class_id[rows]), settings.thresh,
                                   pre_max=settings.pre_max, post_max=settings.post_max,
                                   post_max_per_class=settings.post_max_per_class)
        kept[rows[np.asarray(keep, dtype=np.int64)]] = True
        return
    sub_groups = [np.arange(rows.size)] if settings.class_agnostic else _rows_by_key(class_id[rows])
    for sub in sub_groups:
        sub = sub[: settings.pre_max] if settings.pre_max else sub  # rows are in score order already
        keep = circle_nms(b[sub], s[sub], settings.circle_radius_sq, post_max=settings.post_max)
        kept[rows[sub[np.asarray(keep, dtype=np.int64)]]] = True
