"""``gt_sampling`` on boxes: draw database objects per class and paste those that collide with nothing.

Two frameworks, two collision rules (spec §9.1, §9.2). On one batch of samples where A overlaps B and B overlaps C
(A and C apart) and nothing else overlaps:

* OpenPCDet (`sample_and_paste`) rejects every sample that overlaps any other sample of its batch: **none** kept;
* mmdet3d (`sample_and_paste_mmdet3d`) walks the batch in order and removes a sample from the collision matrix as
  soon as it overlaps anything still in it: A goes (B is still there), B goes (C is still there), C stays (A and B
  are gone): **C** kept.

OpenPCDet ``DataBaseSampler.__call__`` (pcdet/datasets/augmentor/database_sampler.py):

* classes in ``SAMPLE_GROUPS`` order; groups of classes outside ``CLASS_NAMES`` are skipped (``__init__``);
* ``k = group_num - #GT of that class in the frame`` with ``LIMIT_WHOLE_SCENE``, else ``group_num``; ``k <= 0``
  samples nothing. The count is over the frame's GT names as they entered the sampler (earlier pasted classes do
  not count), and the frame's GT are those that survived ``FILTER_MIN_POINTS_IN_GT`` in ``__getitem__``;
* collision: ``iou1 = bev_iou(sampled, existed)``, ``iou2 = bev_iou(sampled, sampled)`` with a zero diagonal, and a
  sample is kept iff ``iou1.max(1) + iou2.max(1) == 0``. So a sample touching ANY other sample of its own batch is
  rejected together with its partner (not greedy, unlike mmdet3d's ``ObjectSample``), and ``existed`` is every GT
  box in the frame (``gt_boxes``, *not* masked by ``gt_boxes_mask``: GT of classes outside ``CLASS_NAMES`` block
  pastes too) plus the samples accepted for earlier classes;
* the overlap is ``iou3d_nms_utils.boxes_bev_iou_cpu`` (``iou3d_nms/src/iou3d_cpu.cpp``), whose ``check_in_box2d``
  counts a corner within 1 cm (``MARGIN = 1e-2``) of the other box as inside: boxes less than ~1 cm apart collide.
  We use ``box_iou_bev_aligned(..., margin_compat=True)``, the vectorised replay of that kernel in
  `assignaudit.ops`, on the pairs that a padded AABB test and a separating-axis classification cannot decide.

mmdet3d 1.x ``ObjectSample`` -> ``DataBaseSampler.sample_all`` / ``sample_class_v2``
(mmdet3d/datasets/transforms/dbsampler.py, data_augment_utils.py):

* classes in ``sample_groups`` order; every class must be one of the dataset classes (``cat2label[name]``);
* ``k = round(rate * int(max_num - #GT with that label))`` with numpy's round-half-even, all k computed from the
  frame's GT as they entered ``ObjectSample`` (after ``_filter_with_mask``; nuScenes keeps GT of classes outside
  ``classes`` as label -1 until ``ObjectNameFilter``, so they block pastes, as in OpenPCDet);
* collision: ``box_collision_test`` on the BEV corners of [GT + samples accepted for earlier classes + this batch]:
  axis-aligned bounds overlapping with positive width and height, then a proper edge crossing or one box strictly
  inside the other, i.e. the interiors overlap with positive area. **No 1 cm margin**: boxes that touch, or are 5 mm
  apart, do not collide (OpenPCDet's kernel rejects the latter). We decide it with the separating-axis gap
  (`separation_m` < 0), exact for rectangles;
* greedy within the batch (``for i in samples: if coll_mat[i].any(): clear row and column i``). Because a kept
  sample j never overlapped any later sample still in the matrix, a later sample i can only be blocked by GT, by
  earlier classes, or by a sample AFTER it in the batch: ``keep_i = no GT/earlier hit and no hit with any j > i``.
  That closed form is what `sample_and_paste_mmdet3d` evaluates (vectorised, no loop over samples).

Documented deviations:

* Draws: upstream walks a per-class pointer over a permutation that is shared across the whole epoch (and across
  the frames one worker process sees), so which objects a frame gets depends on iteration order and worker count.
  We draw ``min(k, M)`` objects without replacement from the class's M entries with the per-(sample, replay)
  generator, so a replay is reproducible on its own. (Upstream, near the end of the permutation, a batch can also
  come out shorter than k; we never shorten it.) mmdet3d's ``BatchSampler`` walks its shuffled indices the same way
  and gets the same treatment. A class with an empty database is skipped (mmdet3d would fail in ``np.stack``).
* mmdet3d computes corners in float32; we test in float64, so boxes within ~1e-6 m of touching may differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from assignaudit.augment.database import GTDatabase
from assignaudit.augment.params import GTSampling, ObjectSample
from assignaudit.ops import box_iou_bev_aligned


@dataclass(frozen=True)
class PasteResult:
    """Objects accepted by one ``gt_sampling`` call, row-aligned arrays of length P."""

    boxes: np.ndarray
    """float64 ``[P, 9]``: database boxes, unchanged (their stored position in their own LiDAR frame)."""
    class_name: np.ndarray
    """object ``[P]``."""
    num_lidar_pts: np.ndarray
    """int64 ``[P]``."""
    num_drawn: int
    """How many objects were drawn before the collision test (accepted + rejected)."""


# OpenPCDet iou3d_cpu.cpp check_in_box2d MARGIN (metres); the same constant drives ops' margin_compat kernel.
MARGIN = 1e-2
# Pre-check thresholds (metres). The 1 cm-margin kernel can only report an overlap for boxes closer than
# MARGIN * sqrt(2) (a corner inside the other box grown by 1 cm on each side), so pairs separated by more than
# FAR_M are certainly 0; pairs that interpenetrate by more than DEEP_M along every axis certainly overlap with
# positive area, which the kernel also reports. Only the thin band in between needs the kernel itself.
FAR_M = MARGIN * 1.5 + 1e-3
DEEP_M = 1e-3


def bev_aabb(boxes: np.ndarray, pad: float = 0.0) -> np.ndarray:
    """float64 ``[N, 4]`` ``(x_min, y_min, x_max, y_max)``: axis-aligned BEV bound of each rotated box, grown by
    ``pad`` metres on every side."""
    c, s = np.abs(np.cos(boxes[:, 6])), np.abs(np.sin(boxes[:, 6]))
    half_x = 0.5 * (boxes[:, 3] * c + boxes[:, 4] * s) + pad
    half_y = 0.5 * (boxes[:, 3] * s + boxes[:, 4] * c) + pad
    return np.stack([boxes[:, 0] - half_x, boxes[:, 1] - half_y, boxes[:, 0] + half_x, boxes[:, 1] + half_y], axis=1)


def separation_m(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 ``[P]``: separating-axis gap of the BEV rectangles of row pairs ``(a[i], b[i])`` (``[P, 7+]`` each).

    The largest, over the four edge normals of the two rectangles, of (centre distance projected on the normal)
    minus (the two half-extents projected on it). > 0: disjoint, and at least that far apart; < 0: they overlap
    and every axis sees at least that much penetration. A classification of pairs, not an intersection area; the
    area comes from `assignaudit.ops`.
    """
    d = b[:, 0:2] - a[:, 0:2]
    ca, sa, cb, sb = np.cos(a[:, 6]), np.sin(a[:, 6]), np.cos(b[:, 6]), np.sin(b[:, 6])
    cos_d = np.abs(ca * cb + sa * sb)  # |cos(yaw_b - yaw_a)|
    sin_d = np.abs(sb * ca - cb * sa)  # |sin(yaw_b - yaw_a)|
    hxa, hya, hxb, hyb = a[:, 3] / 2, a[:, 4] / 2, b[:, 3] / 2, b[:, 4] / 2
    gaps = np.stack([
        np.abs(d[:, 0] * ca + d[:, 1] * sa) - (hxa + hxb * cos_d + hyb * sin_d),  # a's heading axis
        np.abs(-d[:, 0] * sa + d[:, 1] * ca) - (hya + hxb * sin_d + hyb * cos_d),  # a's lateral axis
        np.abs(d[:, 0] * cb + d[:, 1] * sb) - (hxb + hxa * cos_d + hya * sin_d),  # b's heading axis
        np.abs(-d[:, 0] * sb + d[:, 1] * cb) - (hyb + hxa * sin_d + hya * cos_d),  # b's lateral axis
    ])
    return gaps.max(axis=0)


def pairs_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool ``[P]``: OpenPCDet ``boxes_bev_iou_cpu > 0`` for row pairs ``(a[i], b[i])`` (canonical ``[P, 7+]``).

    Clear cases are decided by `separation_m`; the rest (boxes within ~1.5 cm of touching) go, in one batched
    call, to ``box_iou_bev_aligned(margin_compat=True)`` in float32 as upstream (``sampled_boxes.astype(float32)``).
    The kernel has a fixed cost of ~1 ms per call on CPU, so deciding clear pairs here keeps gt_sampling cheap.
    """
    gap = separation_m(a, b)
    hit = gap < -DEEP_M
    unsure = np.flatnonzero((gap >= -DEEP_M) & (gap <= FAR_M))
    if unsure.size:
        iou = box_iou_bev_aligned(
            torch.from_numpy(a[unsure, :7].astype(np.float32)),
            torch.from_numpy(b[unsure, :7].astype(np.float32)),
            margin_compat=True,
        ).numpy()
        hit[unsure] = iou > 0
    return hit


def _aabb_candidates(la: np.ndarray, lb: np.ndarray) -> np.ndarray:
    """bool ``[A, B]``: padded AABBs overlap (strict: touching padded AABBs are > FAR_M apart)."""
    return (
        (la[:, None, 0] < lb[None, :, 2]) & (lb[None, :, 0] < la[:, None, 2])
        & (la[:, None, 1] < lb[None, :, 3]) & (lb[None, :, 1] < la[:, None, 3])
    )


def bev_overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool ``[A, B]``: OpenPCDet ``boxes_bev_iou_cpu(a, b) > 0`` for canonical boxes ``a [A, 7+]``, ``b [B, 7+]``.

    Sparse: a padded AABB test on all pairs, then `pairs_overlap` on the candidates only.
    """
    out = np.zeros((a.shape[0], b.shape[0]), dtype=bool)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return out
    ia, ib = np.nonzero(_aabb_candidates(bev_aabb(a, FAR_M), bev_aabb(b, FAR_M)))
    out[ia, ib] = pairs_overlap(a[ia], b[ib])
    return out


def collisions(cand: np.ndarray, existing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hit_existing bool [S, N], hit_cand bool [S, S])`` for the sampled boxes against the frame and each other.

    One sparse pass (so at most one kernel call per frame): candidates come from the padded AABBs of
    ``cand`` against ``existing`` and against ``cand`` itself (upper triangle; the kernel's point set is symmetric
    in its two boxes, so the result is mirrored). The diagonal is False, as upstream's ``iou2[i, i] = 0``.
    """
    s, n = cand.shape[0], existing.shape[0]
    hit_existing = np.zeros((s, n), dtype=bool)
    hit_cand = np.zeros((s, s), dtype=bool)
    if s == 0:
        return hit_existing, hit_cand
    lc = bev_aabb(cand, FAR_M)
    ie, je = np.nonzero(_aabb_candidates(lc, bev_aabb(existing, FAR_M))) if n else (np.empty(0, int),) * 2
    ic, jc = np.nonzero(np.triu(_aabb_candidates(lc, lc), k=1))
    hit = pairs_overlap(
        np.concatenate([cand[ie], cand[ic]]), np.concatenate([existing[je], cand[jc]])
    )
    hit_existing[ie, je] = hit[: ie.size]
    hc = hit[ie.size:]
    hit_cand[ic, jc] = hc
    hit_cand[jc, ic] = hc
    return hit_existing, hit_cand


def sample_and_paste(
    existing_boxes: np.ndarray,
    existing_names: np.ndarray,
    op: GTSampling,
    database: GTDatabase,
    class_names: tuple[str, ...],
    rng: np.random.Generator,
) -> PasteResult:
    """Run one ``gt_sampling`` op on a frame.

    ``existing_boxes`` float64 ``[N, 9]``: every GT box currently in the frame (all classes, incl. those outside
    ``class_names``); ``existing_names`` object ``[N]``: their classes after ``class_mapping`` (for
    ``LIMIT_WHOLE_SCENE``). ``rng`` is this op's generator; draws are one ``choice`` per sampled class, in
    ``SAMPLE_GROUPS`` order. Inputs are not modified.
    """
    batches: list[tuple[str, np.ndarray]] = []  # (class, database rows) per class with k > 0
    for class_name, group_num in op.sample_groups:
        if class_name not in class_names:  # DataBaseSampler.__init__ skips such groups
            continue
        k = int(group_num)
        if op.limit_whole_scene:
            k -= int(np.count_nonzero(existing_names == class_name))
        size = min(k, len(database[class_name]))
        if size <= 0:
            continue
        batches.append((class_name, rng.choice(len(database[class_name]), size=size, replace=False)))

    if not batches:
        return _empty_result(0)

    cand_boxes = np.concatenate([database[name].boxes[rows] for name, rows in batches])
    cand_pts = np.concatenate([database[name].num_lidar_pts[rows] for name, rows in batches])
    cand_names = np.concatenate([np.full(rows.shape[0], name, dtype=object) for name, rows in batches])
    bounds = np.cumsum([0] + [rows.shape[0] for _, rows in batches])

    # All overlaps in one sparse pass; the class-by-class acceptance below is boolean algebra on small matrices.
    hit_e, hit_cand = collisions(cand_boxes, existing_boxes)
    hit_existing = hit_e.any(axis=1)  # [S]

    accepted = np.zeros(cand_boxes.shape[0], dtype=bool)
    for lo, hi in zip(bounds[:-1], bounds[1:]):  # one iteration per sampled class (<= 10), not per box
        block = hit_cand[lo:hi]
        reject = hit_existing[lo:hi] | block[:, accepted].any(axis=1) | block[:, lo:hi].any(axis=1)
        accepted[lo:hi] = ~reject

    return _accepted_result(cand_boxes, cand_names, cand_pts, accepted)


def _accepted_result(cand_boxes: np.ndarray, cand_names: np.ndarray, cand_pts: np.ndarray,
                     accepted: np.ndarray) -> PasteResult:
    """The accepted candidates of a draw (both collision rules end here)."""
    return PasteResult(
        boxes=cand_boxes[accepted],
        class_name=cand_names[accepted],
        num_lidar_pts=cand_pts[accepted].astype(np.int64),
        num_drawn=int(cand_boxes.shape[0]),
    )


def _empty_result(num_drawn: int) -> PasteResult:
    return PasteResult(
        np.empty((0, 9), dtype=np.float64), np.empty(0, dtype=object), np.empty(0, dtype=np.int64), num_drawn
    )


# ---------------------------------------------------------------------------------------------------------------------
# mmdetection3d 1.x ObjectSample
# ---------------------------------------------------------------------------------------------------------------------


def bev_overlaps_strict(cand: np.ndarray, existing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hit_existing bool [S, N], hit_cand bool [S, S])``: mmdet3d ``box_collision_test`` (positive-area BEV
    overlap, no margin) of the sampled boxes against the frame and against each other (symmetric, False diagonal).

    Candidates come from strict AABB overlap (upstream's ``iw > 0 and ih > 0`` on the standup boxes), then the
    separating-axis gap decides: the rectangles' interiors intersect iff every axis sees penetration (gap < 0).
    """
    s, n = cand.shape[0], existing.shape[0]
    hit_existing = np.zeros((s, n), dtype=bool)
    hit_cand = np.zeros((s, s), dtype=bool)
    if s == 0:
        return hit_existing, hit_cand
    lc = bev_aabb(cand)
    ie, je = np.nonzero(_aabb_candidates(lc, bev_aabb(existing))) if n else (np.empty(0, int),) * 2
    ic, jc = np.nonzero(np.triu(_aabb_candidates(lc, lc), k=1))
    hit = separation_m(np.concatenate([cand[ie], cand[ic]]), np.concatenate([existing[je], cand[jc]])) < 0.0
    hit_existing[ie, je] = hit[: ie.size]
    hit_cand[ic, jc] = hit[ie.size:]
    hit_cand[jc, ic] = hit[ie.size:]
    return hit_existing, hit_cand


def object_sample_counts(existing_names: np.ndarray, op: ObjectSample) -> list[tuple[str, int]]:
    """``[(class, k)]`` in ``sample_groups`` order: ``k = round(rate * int(max_num - #GT of the class))``.

    ``int`` first, then ``np.round`` (half to even) of the product, as ``DataBaseSampler.sample_all``: with rate 0.5
    and 5 missing objects, k = round(2.5) = 2; k <= 0 samples nothing.
    """
    counts = []
    for class_name, max_num in op.sample_groups:
        missing = int(int(max_num) - np.count_nonzero(existing_names == class_name))
        counts.append((class_name, int(np.round(op.rate * missing))))
    return counts


def sample_and_paste_mmdet3d(
    existing_boxes: np.ndarray,
    existing_names: np.ndarray,
    op: ObjectSample,
    database: GTDatabase,
    rng: np.random.Generator,
) -> PasteResult:
    """Run one mmdet3d ``ObjectSample`` on a frame (greedy collision rule, see the module docstring).

    ``existing_boxes`` float64 ``[N, 9]``: every GT box in the frame as it entered the op (all classes);
    ``existing_names`` object ``[N]``: their classes after ``class_mapping`` (for k). ``rng``: this op's generator;
    one ``choice`` per class with k > 0, in ``sample_groups`` order. Inputs are not modified.
    """
    batches: list[tuple[str, np.ndarray]] = []
    for class_name, k in object_sample_counts(existing_names, op):
        size = min(k, len(database[class_name]))
        if size > 0:
            batches.append((class_name, rng.choice(len(database[class_name]), size=size, replace=False)))
    if not batches:
        return _empty_result(0)

    cand_boxes = np.concatenate([database[name].boxes[rows] for name, rows in batches])
    cand_pts = np.concatenate([database[name].num_lidar_pts[rows] for name, rows in batches])
    cand_names = np.concatenate([np.full(rows.shape[0], name, dtype=object) for name, rows in batches])
    bounds = np.cumsum([0] + [rows.shape[0] for _, rows in batches])

    hit_e, hit_cand = bev_overlaps_strict(cand_boxes, existing_boxes)
    hit_existing = hit_e.any(axis=1)
    accepted = np.zeros(cand_boxes.shape[0], dtype=bool)
    for lo, hi in zip(bounds[:-1], bounds[1:]):  # one iteration per sampled class (<= 10), not per box
        block = hit_cand[lo:hi]
        # avoid_coll_boxes = GT + accepted samples of earlier classes (``accepted`` is still False for this class)
        blocked = hit_existing[lo:hi] | block[:, accepted].any(axis=1)
        # greedy order: only samples AFTER i can still be in the matrix and overlap i (module docstring)
        later = np.triu(block[:, lo:hi], k=1).any(axis=1)
        accepted[lo:hi] = ~(blocked | later)

    return _accepted_result(cand_boxes, cand_names, cand_pts, accepted)
