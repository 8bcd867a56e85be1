"""mmdetection3d ``ObjectNoise`` on boxes: per-object rotation and translation, kept only where nothing collides.

Upstream (mmdet3d/datasets/transforms/transforms_3d.py ``ObjectNoise.transform`` -> data_augment_utils.py
``noise_per_object_v3_``), for the N GT boxes as they enter the transform (every class, pasted ones included):

1. draws, always all of them and in this order (numpy, C order)::

       loc  = normal(scale=translation_std, size=[N, num_try, 3])        # std cast to the boxes' float32
       rot  = uniform(rot_range[0], rot_range[1], size=[N, num_try])
       grot = uniform(global_rot_range[0] - b, global_rot_range[1] - b, size=[N, num_try]),  b = arctan2(x, y)

   (``grot`` is drawn even when the global rotation is off);
2. ``noise_per_box`` (``global_rot_range`` narrower than 1e-3) or ``noise_per_box_v2_``: boxes in index order; box i
   tries j = 0 .. num_try-1 and takes the **first** trial whose BEV rectangle collides (``box_collision_test``) with
   no other box -- boxes before i at their new place, boxes after i where they were, i itself excluded. A box
   with no collision-free trial keeps its place and yaw. Trial j of box i: centre ``c + loc[i, j, :2]``, yaw
   ``yaw + rot[i, j]``; with the global rotation (v2) the centre is first carried to the bearing
   ``arctan2(x, y) + grot[i, j]`` (angle from +y, so the position turns clockwise) at the same distance from the
   origin while the yaw turns by ``+grot[i, j]`` (upstream's mix of the two conventions, replayed as is);
3. ``box3d_transform_``: the chosen trial's ``loc[i, j]`` (x, y **and z**) and rotation are added; velocity
   is not rotated.

``box_collision_test`` is the same positive-area BEV overlap test as ``ObjectSample``'s (strict axis-aligned
bounds overlap, then a proper edge crossing or one box strictly inside the other, no margin): we decide it with
the separating-axis gap (`gt_sampling.separation_m` < 0), exact for rectangles except for degenerate contact
(coincident edges, which a continuous noise draw reaches with probability 0). Corners are computed in float64
(upstream: float32), so trials within ~1e-6 m of touching may differ.

Randomness: the op's own generator (`replay`), with the draw calls above (same shapes and order), so adding an
``ObjectNoise`` leaves every other op's draws unchanged. Cost: one pass over the boxes (box i depends on where the
boxes before it went, a sequential dependency upstream has too), each vectorised over its trials and the other
boxes (``[num_try, N]`` pairs).
"""

from __future__ import annotations

import numpy as np

from assignaudit.augment.gt_sampling import bev_aabb, separation_m
from assignaudit.augment.params import ObjectNoise

# noise_per_object_v3_: the global rotation is enabled iff |hi - lo| >= 1e-3.
GLOBAL_ROT_MIN_WIDTH = 1e-3


def global_rotation_enabled(op: ObjectNoise) -> bool:
    lo, hi = op.global_rot_range
    return abs(lo - hi) >= GLOBAL_ROT_MIN_WIDTH


def draw_noise(op: ObjectNoise, boxes: np.ndarray, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(loc [N, T, 3], rot [N, T], grot [N, T])`` drawn as ``noise_per_object_v3_`` does (module docstring)."""
    n, t = boxes.shape[0], int(op.num_try)
    std = np.asarray(op.translation_std, dtype=np.float32).astype(np.float64)
    loc = rng.normal(0.0, std, size=(n, t, 3))
    rot = rng.uniform(op.rot_range[0], op.rot_range[1], size=(n, t))
    bearing = np.arctan2(boxes[:, 0], boxes[:, 1])
    grot = rng.uniform((op.global_rot_range[0] - bearing)[:, None], (op.global_rot_range[1] - bearing)[:, None],
                       size=(n, t))
    return loc, rot, grot


def _collides(trials: np.ndarray, others: np.ndarray, lb: np.ndarray) -> np.ndarray:
    """bool ``[T, K]``: ``box_collision_test`` of each trial box against each other box (canonical ``[., 7+]``;
    ``lb``: the others' `bev_aabb`)."""
    out = np.zeros((trials.shape[0], others.shape[0]), dtype=bool)
    if out.size == 0:
        return out
    la = bev_aabb(trials)
    cand = ((la[:, None, 0] < lb[None, :, 2]) & (lb[None, :, 0] < la[:, None, 2])
            & (la[:, None, 1] < lb[None, :, 3]) & (lb[None, :, 1] < la[:, None, 3]))
    it, io = np.nonzero(cand)
    if it.size:
        out[it, io] = separation_m(trials[it], others[io]) < 0.0
    return out


def _chunks(n: int) -> list[tuple[int, int]]:
    """Trial ranges tested in turn: [0, 1), [1, 8), [8, n) (the first free trial is the same either way)."""
    cuts = [0] + [c for c in (1, 8) if c < n] + [n]
    return list(zip(cuts[:-1], cuts[1:]))


def noise_boxes(boxes: np.ndarray, loc: np.ndarray, rot: np.ndarray, grot: np.ndarray, global_rotation: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes' [N, D], chosen [N] int64)``: the boxes after ``ObjectNoise`` with the given noise, and the index of
    the trial each box took (-1: none collision-free, the box is unchanged). ``boxes`` is not modified."""
    n = boxes.shape[0]
    chosen = np.full(n, -1, dtype=np.int64)
    out = np.array(boxes, dtype=np.float64, copy=True)
    if n == 0 or loc.shape[1] == 0:
        return out, chosen
    current = out[:, :7].copy()  # where each box is now (earlier boxes moved, later ones not yet)
    everyone = np.arange(n)
    bounds = bev_aabb(current)  # kept in step with `current`
    alone = np.zeros(n, dtype=bool) if global_rotation else _isolated(boxes, loc)
    for i in np.flatnonzero(~alone):  # sequential upstream too: box i is tested against where boxes < i went
        x, y, yaw = boxes[i, 0], boxes[i, 1], boxes[i, 6]
        trials = np.repeat(current[i:i + 1], loc.shape[1], axis=0)
        if global_rotation:
            radius, bearing = np.hypot(x, y), np.arctan2(x, y)
            target = bearing + grot[i]
            trials[:, 0] = radius * np.sin(target) + loc[i, :, 0]
            trials[:, 1] = radius * np.cos(target) + loc[i, :, 1]
            trials[:, 6] = yaw + (target - bearing) + rot[i]
        else:
            trials[:, 0] = x + loc[i, :, 0]
            trials[:, 1] = y + loc[i, :, 1]
            trials[:, 6] = yaw + rot[i]
        rest = everyone != i
        others, others_bounds = current[rest], bounds[rest]
        j = -1
        for lo, hi in _chunks(trials.shape[0]):  # most boxes take trial 0: test it alone first
            free = ~_collides(trials[lo:hi], others, others_bounds).any(axis=1)
            if free.any():
                j = lo + int(np.argmax(free))
                break
        if j < 0:
            continue
        chosen[i] = j
        current[i] = trials[j]
        bounds[i] = bev_aabb(trials[j:j + 1])[0]
        out[i, 0], out[i, 1], out[i, 6] = trials[j, 0], trials[j, 1], trials[j, 6]
        out[i, 2] = boxes[i, 2] + loc[i, j, 2]
    # Boxes no other box can reach take their first trial, whatever the others do (exactly what the loop would find).
    chosen[alone] = 0
    out[alone, 0:3] = boxes[alone, 0:3] + loc[alone, 0]
    out[alone, 6] = boxes[alone, 6] + rot[alone, 0]
    return out, chosen


def _isolated(boxes: np.ndarray, loc: np.ndarray) -> np.ndarray:
    """bool ``[N]``: boxes whose every trial is farther from every other box's every place (original or any trial)
    than the two half-diagonals: their BEV rectangles can never overlap, so their first trial is always free and no
    other box's choice depends on them. Bounding discs, vectorised over all pairs."""
    reach = 0.5 * np.hypot(boxes[:, 3], boxes[:, 4]) + np.hypot(loc[:, :, 0], loc[:, :, 1]).max(axis=1)
    d = np.hypot(boxes[:, None, 0] - boxes[None, :, 0], boxes[:, None, 1] - boxes[None, :, 1])
    near = d <= reach[:, None] + reach[None, :]
    np.fill_diagonal(near, False)
    return ~near.any(axis=1)


def apply_object_noise(op: ObjectNoise, boxes: np.ndarray, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
    """One ``ObjectNoise`` on the frame's current boxes (canonical ``[N, 9]``): ``(boxes', chosen trial [N])``."""
    loc, rot, grot = draw_noise(op, boxes, rng)
    return noise_boxes(boxes, loc, rot, grot, global_rotation_enabled(op))


__all__ = ["GLOBAL_ROT_MIN_WIDTH", "apply_object_noise", "draw_noise", "global_rotation_enabled", "noise_boxes"]
