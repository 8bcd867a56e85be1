"""The `yaw` analysis on flat arrays: matching, residuals, nuScenes AOE, duplicates, NMS and the NMS sweep.

Input is `EvalData` (GT and predictions of one split as flat, aligned arrays; built from a source and a prediction
file by `assignaudit.yaw.prepare`, or synthetically by the benchmark). Output is `YawTables`: the per-prediction
table first, and summaries computed from the same per-object arrays.

Frames: matching distances, residuals and the AOE use the *eval frame* (``xy_eval``, ``yaw_eval``): the nuScenes
global frame when the source has poses (that is where the devkit measures), else the LiDAR frame. Bands, duplicates
and NMS use the canonical LiDAR-frame boxes (bands are measured from the LiDAR origin as in `count`; detectors run
NMS in the LiDAR frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from assignaudit.bands import ALL_BANDS, Bands
from assignaudit.errors import ConfigError
from assignaudit.schema import (
    NMS_SWEEP_COLUMNS, PREDICTIONS_COLUMNS, PREDICTIONS_EXTRA_COLUMNS, YAW_HIST_COLUMNS, YAW_SUMMARY_COLUMNS,
    YAW_SUMMARY_EXTRA_COLUMNS,
)
from assignaudit.yaw.matching import (
    best_candidate, bev_distance, devkit_order, greedy_match, match_center, pairs_within,
)
from assignaudit.yaw.nms import NmsSettings, apply_nms, duplicate_flags, iou_pairs
from assignaudit.yaw.residuals import (
    NUSC_TP_DIST_M, aoe_period, devkit_angle_diff, hist_bin, hist_edges, is_flip, is_swap_90, nuscenes_aoe,
    yaw_residual,
)

MATCH_MODES = ("center", "iou")
DEFAULT_MATCH_THRESHOLD = {"center": 2.0, "iou": 0.5}


@dataclass(frozen=True)
class EvalGT:
    """Ground truth of the evaluated split, one row per box (rows of a sample contiguous, in annotation order)."""

    sample: np.ndarray  # int64 [G]: index into EvalData.sample_tokens
    class_id: np.ndarray  # int64 [G]: index into EvalData.classes
    boxes_lidar: np.ndarray  # float64 [G, 9] canonical, LiDAR frame
    xy_eval: np.ndarray  # float64 [G, 2] BEV centre in the eval frame (m)
    yaw_eval: np.ndarray  # float64 [G] yaw in the eval frame (rad)
    ann_token: np.ndarray  # object [G] (None where unknown)


@dataclass(frozen=True)
class EvalPreds:
    """Predictions of the evaluated split, one row per box, in input order."""

    sample: np.ndarray  # int64 [P]
    class_id: np.ndarray  # int64 [P]
    score: np.ndarray  # float64 [P]
    index: np.ndarray  # int64 [P]: position in the input file (devkit tie order)
    boxes_lidar: np.ndarray  # float64 [P, 9]
    xy_eval: np.ndarray  # float64 [P, 2]
    yaw_eval: np.ndarray  # float64 [P]


@dataclass(frozen=True)
class EvalData:
    sample_tokens: tuple[str, ...]
    classes: tuple[str, ...]
    gt: EvalGT
    preds: EvalPreds
    eval_frame: str = "lidar"  # "global" (nuScenes) | "lidar"
    dropped: dict = field(default_factory=dict)  # reason -> number of predictions/GT left out before the analysis


@dataclass(frozen=True)
class YawOptions:
    """Everything `analyse` needs besides the data. Angles in degrees, distances in metres."""

    match: str = "center"
    match_threshold: float | None = None  # None: 2.0 m (center) / 0.5 IoU (iou)
    bins: int = 72
    flip_deg: float = 150.0
    swap_tol_deg: float = 30.0
    bands: Bands = field(default_factory=Bands)
    dup_dist_m: float = 0.5
    dup_iou: float | None = None
    nms: NmsSettings = field(default_factory=NmsSettings)
    nms_sweep: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.match not in MATCH_MODES:
            raise ConfigError(f"--match must be one of {', '.join(MATCH_MODES)}, got {self.match!r}")
        if self.match_threshold is not None and not (self.match_threshold > 0 and math.isfinite(self.match_threshold)):
            raise ConfigError(f"--match-threshold must be positive, got {self.match_threshold}")
        if self.match == "iou" and self.match_threshold is not None and self.match_threshold > 1:
            raise ConfigError(f"--match-threshold is an IoU with --match iou and must be <= 1, got {self.match_threshold}")
        if not (2 <= self.bins <= 3600):
            raise ConfigError(f"--bins must be between 2 and 3600, got {self.bins}")
        if not (0 < self.flip_deg <= 180):
            raise ConfigError(f"--flip-deg must be in (0, 180], got {self.flip_deg}")
        if not (0 <= self.swap_tol_deg < 90):
            raise ConfigError(f"--swap-deg must be in [0, 90), got {self.swap_tol_deg}")
        if not (self.dup_dist_m >= 0 and math.isfinite(self.dup_dist_m)):
            raise ConfigError(f"--dup-dist must be >= 0 m, got {self.dup_dist_m}")
        if self.dup_iou is not None and not (0 <= self.dup_iou < 1):
            raise ConfigError(f"--dup-iou must be in [0, 1), got {self.dup_iou}")
        for t in self.nms_sweep:
            self.nms.with_threshold(t)  # validates each value

    @property
    def threshold(self) -> float:
        return DEFAULT_MATCH_THRESHOLD[self.match] if self.match_threshold is None else float(self.match_threshold)


@dataclass(frozen=True)
class YawTables:
    predictions: pd.DataFrame  # schema.PREDICTIONS_COLUMNS (+ band)
    summary: pd.DataFrame  # schema.YAW_SUMMARY_COLUMNS
    hist: pd.DataFrame  # schema.YAW_HIST_COLUMNS
    nms_sweep: pd.DataFrame | None  # schema.NMS_SWEEP_COLUMNS, when a sweep was asked
    aoe_nusc: dict[str, float]  # class -> nuScenes AOE (radians)


class _Matcher:
    """Runs the configured matching on any subset of the predictions (NMS survivors, sweep survivors)."""

    def __init__(self, data: EvalData, mode: str, threshold: float, order: np.ndarray) -> None:
        self.d = data
        self.mode = mode
        self.threshold = threshold
        n_cls = max(len(data.classes), 1)
        self.pgroup = data.preds.sample * n_cls + data.preds.class_id
        self.ggroup = data.gt.sample * n_cls + data.gt.class_id
        self.order = order
        self.pos = np.empty(order.size, dtype=np.int64)
        self.pos[order] = np.arange(order.size)
        p, g = data.preds, data.gt
        if mode == "center":
            i, j, c = pairs_within(p.xy_eval, self.pgroup, g.xy_eval, self.ggroup, threshold)
            strict = c < threshold  # devkit: ``min_dist < dist_th``
            self.cand = (i[strict], j[strict], c[strict])
        else:
            i, j, iou = iou_pairs(p.boxes_lidar, self.pgroup, p.sample, g.boxes_lidar, self.ggroup, g.sample,
                                  min_iou=threshold)
            self.cand = (i, j, -iou)  # prefer the highest IoU; `iou_pairs` keeps IoU > threshold

    def match(self, subset: np.ndarray | None = None) -> np.ndarray:
        """int64 ``[P]`` matched GT row (-1) using only the predictions in the bool ``subset`` (None: all).

        Restricting the candidate pairs is enough: a prediction outside the subset has no candidates, so it takes
        nothing and the visiting order of the others is unchanged.
        """
        i, j, c = self.cand
        if subset is not None:
            keep = subset[i]
            i, j, c = i[keep], j[keep], c[keep]
        return greedy_match(self.pos.size, len(self.d.gt.sample), self.order, self.pgroup, i, j, c)

    def best(self) -> np.ndarray:
        return best_candidate(self.pos.size, *self.cand)


def analyse(data: EvalData, options: YawOptions) -> YawTables:
    """Run the whole analysis on ``data`` (see the module docstring). Pure: inputs are not modified."""
    p, g = data.preds, data.gt
    n_pred, n_gt, n_cls = len(p.score), len(g.sample), len(data.classes)
    order = devkit_order(p.score, p.index)
    matcher = _Matcher(data, options.match, options.threshold, order)
    pos = matcher.pos

    # ---- matching and residuals (all predictions as given) ------------------------------------------------------
    match = matcher.match()
    matched = match >= 0
    center_dist = np.full(n_pred, np.nan)
    center_dist[matched] = bev_distance(p.xy_eval[matched], g.xy_eval[match[matched]])
    residual = np.full(n_pred, np.nan)
    residual[matched] = yaw_residual(p.yaw_eval[matched], g.yaw_eval[match[matched]])
    flip = np.zeros(n_pred, dtype=bool)
    swap = np.zeros(n_pred, dtype=bool)
    flip[matched] = is_flip(residual[matched], options.flip_deg)
    swap[matched] = is_swap_90(residual[matched], options.swap_tol_deg)

    # GT view of duplicates: the prediction's preferred GT went to an earlier prediction.
    best = matcher.best()
    gt_taker = np.full(n_gt, -1, dtype=np.int64)
    gt_taker[match[matched]] = np.flatnonzero(matched)
    is_dup_gt = (best >= 0) & (gt_taker[np.maximum(best, 0)] != np.arange(n_pred))

    # ---- nuScenes AOE: always the devkit's TP matching (centre, 2 m) over all predictions ----------------------
    if options.match == "center" and options.threshold == NUSC_TP_DIST_M:
        match_tp = match
    else:
        match_tp, _ = match_center(p.xy_eval, matcher.pgroup, order, g.xy_eval, matcher.ggroup, NUSC_TP_DIST_M)
    aoe = {}
    gt_per_class = np.bincount(g.class_id, minlength=n_cls)
    for c, name in enumerate(data.classes):
        sel = order[p.class_id[order] == c]
        tp = match_tp[sel] >= 0
        err = np.abs(devkit_angle_diff(g.yaw_eval[match_tp[sel][tp]], p.yaw_eval[sel][tp], aoe_period(name)))
        aoe[name] = nuscenes_aoe(name, int(gt_per_class[c]), p.score[sel], tp, err)

    # ---- duplicates and NMS ---------------------------------------------------------------------------------------
    def dups_among(subset: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(subset)
        out = np.zeros(n_pred, dtype=bool)
        out[rows] = duplicate_flags(p.boxes_lidar[rows], matcher.pgroup[rows], p.sample[rows], pos[rows],
                                    options.dup_dist_m, options.dup_iou)
        return out

    everything = np.ones(n_pred, dtype=bool)
    is_dup = dups_among(everything)
    kept = apply_nms(p.boxes_lidar, p.score, p.sample, p.class_id, order, options.nms)
    is_dup_post = dups_among(kept)
    gt_matched_before = np.zeros(n_gt, dtype=bool)
    gt_matched_before[match[matched]] = True
    match_after = matcher.match(kept)
    gt_matched_after = np.zeros(n_gt, dtype=bool)
    gt_matched_after[match_after[match_after >= 0]] = True
    tp_lost = gt_matched_before & ~gt_matched_after

    # ---- tables ---------------------------------------------------------------------------------------------------
    bands = options.bands
    pred_band = bands.index(np.hypot(p.boxes_lidar[:, 0], p.boxes_lidar[:, 1]))
    gt_band = bands.index(np.hypot(g.boxes_lidar[:, 0], g.boxes_lidar[:, 1]))
    matched_gt_band = np.full(n_pred, -1, dtype=np.int64)
    matched_gt_band[matched] = gt_band[match[matched]]

    predictions = _predictions_table(data, match, center_dist, residual, flip, is_dup, is_dup_gt, kept,
                                     bands.names, pred_band)
    summary = _summary_table(data, options, pred_band, gt_band, matched, match, residual, flip, swap, aoe,
                             is_dup, is_dup_gt, kept, is_dup_post, tp_lost)
    hist = _hist_table(data, options, matched, match, residual, gt_band)
    sweep = None
    if options.nms_sweep:
        sweep = _sweep_table(data, options, order, matcher, gt_matched_before, is_dup, dups_among)
    return YawTables(predictions=predictions, summary=summary, hist=hist, nms_sweep=sweep, aoe_nusc=aoe)


def _predictions_table(data, match, center_dist, residual, flip, is_dup, is_dup_gt, kept, band_names,
                       pred_band) -> pd.DataFrame:
    p, g = data.preds, data.gt
    tokens = np.array(data.sample_tokens, dtype=object)
    classes = np.array(data.classes, dtype=object)
    ann = np.full(len(match), None, dtype=object)
    m = match >= 0
    ann[m] = g.ann_token[match[m]]
    cols = {
        "sample_token": tokens[p.sample] if len(tokens) else np.empty(0, object),
        "index": p.index.astype(np.int64),
        "class": classes[p.class_id] if len(classes) else np.empty(0, object),
        "score": p.score,
        **{k: p.boxes_lidar[:, j] for j, k in enumerate(("x", "y", "z", "dx", "dy", "dz", "yaw"))},
        "matched_ann_token": ann,
        "center_dist": center_dist,
        "yaw_residual": residual,
        "is_flip": flip,
        "is_duplicate": is_dup,
        "kept_by_nms": kept,
        "is_duplicate_gt": is_dup_gt,
        "band": np.array(band_names, dtype=object)[pred_band] if len(pred_band) else np.empty(0, object),
    }
    df = pd.DataFrame(cols, columns=list(PREDICTIONS_COLUMNS) + list(PREDICTIONS_EXTRA_COLUMNS))
    return df.sort_values("index", kind="stable").reset_index(drop=True)


def _per_class_band(n_cls: int, n_bands: int, cls: np.ndarray, band: np.ndarray,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """``[C, B + 1]`` sums per (class, band); the last column is the whole class ("all")."""
    key = cls.astype(np.int64) * n_bands + band.astype(np.int64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.zeros((n_cls, n_bands + 1))
    out[:, :n_bands] = np.bincount(key, weights=w, minlength=n_cls * n_bands).reshape(n_cls, n_bands)
    out[:, n_bands] = out[:, :n_bands].sum(axis=1)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _summary_table(data, options, pred_band, gt_band, matched, match, residual, flip, swap, aoe, is_dup,
                   is_dup_gt, kept, is_dup_post, tp_lost) -> pd.DataFrame:
    p, g = data.preds, data.gt
    n_cls, nb = len(data.classes), len(options.bands)
    band_names = options.bands.names + [ALL_BANDS]
    pc, gc = p.class_id, g.class_id
    mc, mb = pc[matched], gt_band[match[matched]]
    abs_res = np.abs(residual[matched])

    num_pred = _per_class_band(n_cls, nb, pc, pred_band)
    num_gt = _per_class_band(n_cls, nb, gc, gt_band)
    num_matched = _per_class_band(n_cls, nb, mc, mb)
    sum_abs = _per_class_band(n_cls, nb, mc, mb, abs_res)
    num_flips = _per_class_band(n_cls, nb, mc, mb, flip[matched])
    num_swaps = _per_class_band(n_cls, nb, mc, mb, swap[matched])
    num_dup = _per_class_band(n_cls, nb, pc, pred_band, is_dup)
    num_dup_gt = _per_class_band(n_cls, nb, pc, pred_band, is_dup_gt)
    num_kept = _per_class_band(n_cls, nb, pc, pred_band, kept)
    num_dup_post = _per_class_band(n_cls, nb, pc, pred_band, is_dup_post & kept)
    num_tp_lost = _per_class_band(n_cls, nb, gc, gt_band, tp_lost)

    # Medians need the values themselves: group the matched residuals by (class, band) and by class.
    med = np.full((n_cls, nb + 1), np.nan)
    if abs_res.size:
        mdf = pd.DataFrame({"c": mc, "b": mb, "r": abs_res})
        for (c, b), v in mdf.groupby(["c", "b"])["r"].median().items():
            med[c, b] = v
        for c, v in mdf.groupby("c")["r"].median().items():
            med[c, nb] = v

    rows = []
    for c, name in enumerate(data.classes):
        for b, bname in enumerate(band_names):
            rows.append({
                "class": name, "band": bname,
                "num_pred": int(num_pred[c, b]), "num_gt": int(num_gt[c, b]), "num_matched": int(num_matched[c, b]),
                "mean_abs_yaw_err": float(_ratio(sum_abs[c, b], num_matched[c, b])),
                "median_abs_yaw_err": float(med[c, b]),
                "num_flips": int(num_flips[c, b]), "flip_rate": float(_ratio(num_flips[c, b], num_matched[c, b])),
                "num_swaps_90": int(num_swaps[c, b]),
                "aoe_nusc": aoe[name] if b == nb else float("nan"),
                "num_dup_pre_nms": int(num_dup[c, b]),
                "dup_rate_pre_nms": float(_ratio(num_dup[c, b], num_pred[c, b])),
                "num_dup_post_nms": int(num_dup_post[c, b]),
                "dup_rate_post_nms": float(_ratio(num_dup_post[c, b], num_kept[c, b])),
                "tp_lost_by_nms": int(num_tp_lost[c, b]),
                "num_dup_gt": int(num_dup_gt[c, b]),
                "num_kept_nms": int(num_kept[c, b]),
            })
    return pd.DataFrame(rows, columns=list(YAW_SUMMARY_COLUMNS) + list(YAW_SUMMARY_EXTRA_COLUMNS))


def _hist_table(data, options, matched, match, residual, gt_band) -> pd.DataFrame:
    n_cls, nb, bins = len(data.classes), len(options.bands), options.bins
    edges = hist_edges(bins)
    mc = data.preds.class_id[matched]
    mb = gt_band[match[matched]]
    hb = hist_bin(residual[matched], bins)
    counts = np.zeros((n_cls, nb + 1, bins), dtype=np.int64)
    key = (mc * nb + mb) * bins + hb
    counts[:, :nb, :] = np.bincount(key, minlength=n_cls * nb * bins).reshape(n_cls, nb, bins)
    counts[:, nb, :] = counts[:, :nb, :].sum(axis=1)
    band_names = options.bands.names + [ALL_BANDS]
    cls_col = np.repeat(np.array(data.classes, dtype=object), (nb + 1) * bins)
    band_col = np.tile(np.repeat(np.array(band_names, dtype=object), bins), n_cls)
    return pd.DataFrame({
        "class": cls_col, "band": band_col,
        "bin_lo": np.tile(edges[:-1], n_cls * (nb + 1)), "bin_hi": np.tile(edges[1:], n_cls * (nb + 1)),
        "count": counts.reshape(-1),
    }, columns=list(YAW_HIST_COLUMNS))


def _sweep_table(data, options, order, matcher, gt_matched_before, is_dup, dups_among) -> pd.DataFrame:
    p, g = data.preds, data.gt
    n_cls = len(data.classes)
    tp_before = np.bincount(g.class_id, weights=gt_matched_before, minlength=n_cls)
    num_pred = np.bincount(p.class_id, minlength=n_cls)
    dup_before = np.bincount(p.class_id, weights=is_dup, minlength=n_cls)
    rows = []
    for t in options.nms_sweep:
        settings = options.nms.with_threshold(t)
        kept = apply_nms(p.boxes_lidar, p.score, p.sample, p.class_id, order, settings)
        dup_left = dups_among(kept) & kept
        m_after = matcher.match(kept)
        gt_after = np.zeros(len(g.sample), dtype=bool)
        gt_after[m_after[m_after >= 0]] = True
        tp_after = np.bincount(g.class_id, weights=gt_after, minlength=n_cls)
        lost = np.bincount(g.class_id, weights=gt_matched_before & ~gt_after, minlength=n_cls)
        n_kept = np.bincount(p.class_id, weights=kept, minlength=n_cls)
        n_dup_left = np.bincount(p.class_id, weights=dup_left, minlength=n_cls)
        for c, name in enumerate(data.classes):
            rows.append({
                "class": name, "nms_type": settings.nms_type, "nms_value": float(t),
                "num_pred": int(num_pred[c]), "num_kept": int(n_kept[c]),
                "num_dup_before": int(dup_before[c]), "num_dup_left": int(n_dup_left[c]),
                "dup_rate_left": float(_ratio(n_dup_left[c], n_kept[c])),
                "tp_before": int(tp_before[c]), "tp_after": int(tp_after[c]), "tp_lost": int(lost[c]),
            })
    return pd.DataFrame(rows, columns=list(NMS_SWEEP_COLUMNS))
