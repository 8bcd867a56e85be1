"""Yaw residuals, flip / 90-degree buckets, histograms, and the nuScenes AOE exactly as the devkit computes it.

Residual convention: ``wrap(yaw_pred - yaw_gt)`` in ``(-pi, pi]`` radians (positive = prediction rotated
counter-clockwise from the GT). Raw, period 2*pi, for every class (the histogram of a barrier shows its 180-degree
flips; only the nuScenes AOE folds barriers with period pi).

Buckets (both on ``|r|``, degrees are user options):

* **flip**: ``|r| >= flip_deg`` (default 150): the heading is reversed (direction classifier / ``dir_offset`` bugs).
* **90-degree swap**: ``| |r| - 90 deg | <= swap_tol_deg`` (default 30, i.e. ``60 <= |r| <= 120`` degrees): length
  and width exchanged, the signature of a pre-/post-mmdet3d-1.0 coordinate mix-up (mmdet3d #2390: mAOE ~ 1.57).
"""

from __future__ import annotations

import math

import numpy as np

from nuscenes.eval.common.utils import cummean as _devkit_cummean  # the devkit's NaN-aware cumulative mean

NUSC_MIN_RECALL = 0.1
NUSC_TP_DIST_M = 2.0
NUSC_NELEM = 101  # DetectionMetricData.nelem


def wrap_residual(delta_rad: np.ndarray) -> np.ndarray:
    """Wrap angles into ``(-pi, pi]`` (pi stays pi, -pi becomes pi)."""
    d = np.asarray(delta_rad, dtype=np.float64)
    return math.pi - np.mod(math.pi - d, 2 * math.pi)


def yaw_residual(yaw_pred: np.ndarray, yaw_gt: np.ndarray) -> np.ndarray:
    """``wrap(yaw_pred - yaw_gt)`` in ``(-pi, pi]``, float64 radians."""
    return wrap_residual(np.asarray(yaw_pred, dtype=np.float64) - np.asarray(yaw_gt, dtype=np.float64))


BUCKET_EPS_RAD = 1e-9
"""Bucket boundaries are inclusive up to this much rounding (degrees -> radians moves them by ~1e-16)."""


def is_flip(residual: np.ndarray, flip_deg: float) -> np.ndarray:
    """bool: ``|r| >= flip_deg``."""
    return np.abs(residual) >= math.radians(flip_deg) - BUCKET_EPS_RAD


def is_swap_90(residual: np.ndarray, tol_deg: float) -> np.ndarray:
    """bool: ``| |r| - pi/2 | <= tol_deg`` (length/width exchanged)."""
    return np.abs(np.abs(residual) - math.pi / 2) <= math.radians(tol_deg) + BUCKET_EPS_RAD


def hist_edges(bins: int) -> np.ndarray:
    """``bins + 1`` edges over ``[-pi, pi]``; the last bin is closed so a residual of exactly pi lands in it."""
    return np.linspace(-math.pi, math.pi, bins + 1)


def hist_bin(residual: np.ndarray, bins: int) -> np.ndarray:
    """int64 bin index of each residual (``np.histogram`` semantics on `hist_edges`)."""
    edges = hist_edges(bins)
    return np.clip(np.searchsorted(edges, residual, side="right") - 1, 0, bins - 1)


# ---------------------------------------------------------------------------------------------------------------------
# nuScenes AOE (nuscenes/eval/detection/algo.py ``accumulate`` + ``calc_tp``, evaluate.py per-class rules)
# ---------------------------------------------------------------------------------------------------------------------


def devkit_angle_diff(x: np.ndarray, y: np.ndarray, period: float) -> np.ndarray:
    """Vectorised ``nuscenes.eval.common.utils.angle_diff``: signed difference from ``y`` to ``x`` modulo ``period``,
    shifted into ``(-pi, pi]`` when ``period = 2*pi``; same operation order as the devkit."""
    diff = np.mod(x - y + period / 2, period) - period / 2
    return np.where(diff > np.pi, diff - 2 * np.pi, diff)


def aoe_period(class_name: str) -> float:
    """Barrier orientation is only defined up to 180 degrees (devkit ``accumulate``)."""
    return np.pi if class_name == "barrier" else 2 * np.pi


def nuscenes_aoe(class_name: str, npos: int, score_sorted: np.ndarray, is_tp_sorted: np.ndarray,
                 orient_err_tp: np.ndarray) -> float:
    """The per-class orientation error of ``DetectionEval`` from the class's matching outcome.

    ``npos``: GT of the class (after the eval filters). ``score_sorted`` float64 ``[Q]``: scores of the class's
    predictions in `devkit_order`; ``is_tp_sorted`` bool ``[Q]``: matched at 2 m; ``orient_err_tp`` float64
    ``[T]``: ``|angle_diff(yaw_gt, yaw_pred, period)|`` of the matches, in the same order.

    Reproduces the devkit: cumulative TP/FP -> recall, confidence interpolated on 101 recall points (``right=0``),
    cumulative mean of the errors resampled at those confidences, mean over ``[round(100*min_recall)+1,
    max_recall_ind]``, 1.0 when that range is empty or there is no match/GT, NaN for traffic cones.
    """
    if class_name == "traffic_cone":
        return float("nan")
    is_tp = np.asarray(is_tp_sorted, dtype=bool)
    if npos == 0 or not is_tp.any():
        return 1.0  # DetectionMetricData.no_predictions(): max_recall_ind 0 < first_ind
    tp = np.cumsum(is_tp.astype(np.int64)).astype(float)
    conf = np.asarray(score_sorted, dtype=np.float64)
    rec = tp / float(npos)
    rec_interp = np.linspace(0, 1, NUSC_NELEM)
    conf_i = np.interp(rec_interp, rec, conf, right=0)
    match_conf = conf[is_tp]
    tmp = _devkit_cummean(np.asarray(orient_err_tp, dtype=np.float64))
    orient = np.interp(conf_i[::-1], match_conf[::-1], tmp[::-1])[::-1]
    non_zero = np.nonzero(conf_i)[0]
    last_ind = non_zero[-1] if len(non_zero) else 0
    first_ind = round(100 * NUSC_MIN_RECALL) + 1
    if last_ind < first_ind:
        return 1.0
    return float(np.mean(orient[first_ind:last_ind + 1]))
