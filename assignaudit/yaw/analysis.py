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
    columns: "PredictionColumns"  # the per-prediction outcomes (`predictions` builds the table from them)
    summary: pd.DataFrame  # schema.YAW_SUMMARY_COLUMNS
    hist: pd.DataFrame  # schema.YAW_HIST_COLUMNS
    nms_sweep: pd.DataFrame | None  # schema.NMS_SWEEP_COLUMNS, when a sweep was asked
    aoe_nusc: dict[str, float]  # class -> nuScenes AOE (radians)

    @property
    def predictions(self) -> pd.DataFrame:
        """schema.PREDICTIONS_COLUMNS (+ band), rows by input position; built on each access (val scale: 3 M rows;
        the report writer streams `columns` instead)."""
        return self.columns.frame()


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


ANALYSIS_BLOCK_BOXES = 262_144
"""Matching, duplicates and NMS run on blocks of whole samples holding about this many predictions (a sample is
never split): their pairs and intermediates exist for one block at a time. Every step is local to a sample, so the
per-prediction outcomes, and hence every table, equal the one-block run's (tests/test_yaw_blocked.py)."""


def _sample_blocks(sample: np.ndarray, n_samples: int, block_boxes: int) -> list[tuple[int, int]]:
    """Consecutive sample-id ranges ``[s0, s1)`` holding about ``block_boxes`` predictions each."""
    if n_samples == 0:
        return [(0, 0)]
    per = np.bincount(sample, minlength=n_samples)
    cum = np.cumsum(per)
    bounds = [0]
    while bounds[-1] < n_samples:
        done = int(cum[bounds[-1] - 1]) if bounds[-1] else 0
        nxt = int(np.searchsorted(cum, done + max(int(block_boxes), 1), side="right"))
        bounds.append(min(max(nxt, bounds[-1] + 1), n_samples))
    return list(zip(bounds[:-1], bounds[1:]))


def _rows_of_samples(sample: np.ndarray, by_sample: np.ndarray | None, cum: np.ndarray, s0: int, s1: int) -> np.ndarray:
    """Rows (ascending) whose sample id is in ``[s0, s1)``; ``by_sample``: stable argsort of ``sample`` (None: the
    ids are already non-decreasing, rows are a range)."""
    a, b = int(cum[s0]), int(cum[s1])
    if by_sample is None:
        return np.arange(a, b, dtype=np.int64)
    return np.sort(by_sample[a:b])


def _subset(data: EvalData, prow: np.ndarray, grow: np.ndarray, s0: int) -> EvalData:
    """The predictions ``prow`` and GT ``grow`` (rows ascending, samples ``>= s0``) as their own `EvalData`, sample
    ids shifted by ``-s0`` (order-preserving: every per-sample step sees the same boxes in the same order)."""
    p, g = data.preds, data.gt
    preds = EvalPreds(sample=p.sample[prow] - s0, class_id=p.class_id[prow], score=p.score[prow],
                      index=p.index[prow], boxes_lidar=p.boxes_lidar[prow], xy_eval=p.xy_eval[prow],
                      yaw_eval=p.yaw_eval[prow])
    gt = EvalGT(sample=g.sample[grow] - s0, class_id=g.class_id[grow], boxes_lidar=g.boxes_lidar[grow],
                xy_eval=g.xy_eval[grow], yaw_eval=g.yaw_eval[grow], ann_token=g.ann_token[grow])
    return EvalData(sample_tokens=data.sample_tokens, classes=data.classes, gt=gt, preds=preds,
                    eval_frame=data.eval_frame, dropped=data.dropped)


def analyse(data: EvalData, options: YawOptions, *, block_boxes: int | None = None) -> YawTables:
    """Run the whole analysis on ``data`` (see the module docstring). Pure: inputs are not modified.

    ``block_boxes``: predictions per block of whole samples (default `ANALYSIS_BLOCK_BOXES`); the result does not
    depend on it.
    """
    p, g = data.preds, data.gt
    n_pred, n_gt, n_cls = len(p.score), len(g.sample), len(data.classes)
    order = devkit_order(p.score, p.index)
    block_boxes = ANALYSIS_BLOCK_BOXES if block_boxes is None else int(block_boxes)
    n_samples = int(max(p.sample.max(initial=-1), g.sample.max(initial=-1))) + 1

    match = np.full(n_pred, -1, dtype=np.int64)
    is_dup_gt = np.zeros(n_pred, dtype=bool)
    is_dup = np.zeros(n_pred, dtype=bool)
    kept = np.zeros(n_pred, dtype=bool)
    is_dup_post = np.zeros(n_pred, dtype=bool)
    gt_matched_after = np.zeros(n_gt, dtype=bool)
    reuse_tp = options.match == "center" and options.threshold == NUSC_TP_DIST_M
    match_tp = match if reuse_tp else np.full(n_pred, -1, dtype=np.int64)
    sweep_acc = {t: _SweepCounts(n_cls) for t in options.nms_sweep}

    def arranged(sample):
        sorted_ = bool(sample.size == 0 or np.all(sample[1:] >= sample[:-1]))
        by = None if sorted_ else np.argsort(sample, kind="stable")
        cum = np.r_[0, np.cumsum(np.bincount(sample, minlength=n_samples))]
        return by, cum

    p_by, p_cum = arranged(p.sample)
    g_by, g_cum = arranged(g.sample)
    for s0, s1 in _sample_blocks(p.sample, n_samples, block_boxes):
        prow = _rows_of_samples(p.sample, p_by, p_cum, s0, s1)
        grow = _rows_of_samples(g.sample, g_by, g_cum, s0, s1)
        d = _subset(data, prow, grow, s0)
        b = _analyse_block(d, options, reuse_tp, sweep_acc)
        m = b["match"]
        match[prow] = np.where(m >= 0, grow[np.maximum(m, 0)] if grow.size else -1, -1)
        if not reuse_tp:
            mt = b["match_tp"]
            match_tp[prow] = np.where(mt >= 0, grow[np.maximum(mt, 0)] if grow.size else -1, -1)
        is_dup_gt[prow] = b["is_dup_gt"]
        is_dup[prow] = b["is_dup"]
        kept[prow] = b["kept"]
        is_dup_post[prow] = b["is_dup_post"]
        gt_matched_after[grow] = b["gt_matched_after"]
        del d, b, prow, grow, m
    del p_by, g_by

    # ---- residuals (all predictions as given) -------------------------------------------------------------------
    matched = match >= 0
    center_dist = np.full(n_pred, np.nan)
    center_dist[matched] = bev_distance(p.xy_eval[matched], g.xy_eval[match[matched]])
    residual = np.full(n_pred, np.nan)
    residual[matched] = yaw_residual(p.yaw_eval[matched], g.yaw_eval[match[matched]])
    flip = np.zeros(n_pred, dtype=bool)
    swap = np.zeros(n_pred, dtype=bool)
    flip[matched] = is_flip(residual[matched], options.flip_deg)
    swap[matched] = is_swap_90(residual[matched], options.swap_tol_deg)

    # ---- nuScenes AOE: always the devkit's TP matching (centre, 2 m) over all predictions ----------------------
    aoe = {}
    gt_per_class = np.bincount(g.class_id, minlength=n_cls)
    for c, name in enumerate(data.classes):
        sel = order[p.class_id[order] == c]
        tp = match_tp[sel] >= 0
        err = np.abs(devkit_angle_diff(g.yaw_eval[match_tp[sel][tp]], p.yaw_eval[sel][tp], aoe_period(name)))
        aoe[name] = nuscenes_aoe(name, int(gt_per_class[c]), p.score[sel], tp, err)
        del sel, tp, err
    del order, match_tp

    gt_matched_before = np.zeros(n_gt, dtype=bool)
    gt_matched_before[match[matched]] = True
    tp_lost = gt_matched_before & ~gt_matched_after

    # ---- tables ---------------------------------------------------------------------------------------------------
    bands = options.bands
    pred_band = bands.index(np.hypot(p.boxes_lidar[:, 0], p.boxes_lidar[:, 1]))
    gt_band = bands.index(np.hypot(g.boxes_lidar[:, 0], g.boxes_lidar[:, 1]))

    summary = _summary_table(data, options, pred_band, gt_band, matched, match, residual, flip, swap, aoe,
                             is_dup, is_dup_gt, kept, is_dup_post, tp_lost)
    hist = _hist_table(data, options, matched, match, residual, gt_band)
    sweep = None
    if options.nms_sweep:
        sweep = _sweep_table(data, options, gt_matched_before, is_dup, sweep_acc)
    del swap, tp_lost, gt_matched_before, is_dup_post, gt_matched_after
    columns = PredictionColumns(data, match, center_dist, residual, flip, is_dup, is_dup_gt, kept,
                                tuple(bands.names), pred_band.astype(np.int8 if len(bands) < 127 else np.int64))
    return YawTables(columns=columns, summary=summary, hist=hist, nms_sweep=sweep, aoe_nusc=aoe)


class _SweepCounts:
    """Per-class integer counts of one sweep threshold, summed over blocks."""

    def __init__(self, n_cls: int) -> None:
        self.kept = np.zeros(n_cls, dtype=np.int64)
        self.dup_left = np.zeros(n_cls, dtype=np.int64)
        self.tp_after = np.zeros(n_cls, dtype=np.int64)
        self.lost = np.zeros(n_cls, dtype=np.int64)


def _analyse_block(d: EvalData, options: YawOptions, reuse_tp: bool, sweep_acc: dict) -> dict:
    """Matching, GT-view duplicates, duplicates and NMS (and the sweep's counts) of one block of whole samples."""
    p, g = d.preds, d.gt
    n_pred, n_gt, n_cls = len(p.score), len(g.sample), len(d.classes)
    order = devkit_order(p.score, p.index)
    matcher = _Matcher(d, options.match, options.threshold, order)
    pos = matcher.pos
    match = matcher.match()
    matched = match >= 0

    # GT view of duplicates: the prediction's preferred GT went to an earlier prediction.
    best = matcher.best()
    gt_taker = np.full(n_gt, -1, dtype=np.int64)
    gt_taker[match[matched]] = np.flatnonzero(matched)
    is_dup_gt = (best >= 0) & (gt_taker[np.maximum(best, 0)] != np.arange(n_pred))
    del best, gt_taker
    out = {"match": match, "is_dup_gt": is_dup_gt}
    if not reuse_tp:
        out["match_tp"], _ = match_center(p.xy_eval, matcher.pgroup, order, g.xy_eval, matcher.ggroup, NUSC_TP_DIST_M)

    def dups_among(subset: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(subset)
        res = np.zeros(n_pred, dtype=bool)
        res[rows] = duplicate_flags(p.boxes_lidar[rows], matcher.pgroup[rows], p.sample[rows], pos[rows],
                                    options.dup_dist_m, options.dup_iou)
        return res

    out["is_dup"] = dups_among(np.ones(n_pred, dtype=bool))
    kept = apply_nms(p.boxes_lidar, p.score, p.sample, p.class_id, order, options.nms)
    out["kept"] = kept
    out["is_dup_post"] = dups_among(kept)
    match_after = matcher.match(kept)
    gt_after = np.zeros(n_gt, dtype=bool)
    gt_after[match_after[match_after >= 0]] = True
    out["gt_matched_after"] = gt_after
    if sweep_acc:
        gt_before = np.zeros(n_gt, dtype=bool)
        gt_before[match[matched]] = True
        for t, acc in sweep_acc.items():
            k = apply_nms(p.boxes_lidar, p.score, p.sample, p.class_id, order, options.nms.with_threshold(t))
            dup_left = dups_among(k) & k
            m_after = matcher.match(k)
            ga = np.zeros(n_gt, dtype=bool)
            ga[m_after[m_after >= 0]] = True
            acc.kept += np.bincount(p.class_id[k], minlength=n_cls)
            acc.dup_left += np.bincount(p.class_id[dup_left], minlength=n_cls)
            acc.tp_after += np.bincount(g.class_id[ga], minlength=n_cls)
            acc.lost += np.bincount(g.class_id[gt_before & ~ga], minlength=n_cls)
    return out


class PredictionColumns:
    """The per-prediction outcomes behind ``predictions.parquet``: compact arrays, turned into the table on demand
    (`frame`) or streamed to Parquet in row groups (`arrow_batches`); rows sorted by input position."""

    def __init__(self, data, match, center_dist, residual, flip, is_dup, is_dup_gt, kept, band_names, pred_band):
        self.data = data
        self.match, self.center_dist, self.residual, self.flip = match, center_dist, residual, flip
        self.is_dup, self.is_dup_gt, self.kept = is_dup, is_dup_gt, kept
        self.band_names, self.pred_band = band_names, pred_band
        idx = data.preds.index
        ordered = idx.size == 0 or bool(np.all(idx[1:] >= idx[:-1]))
        self._perm = None if ordered else np.argsort(idx, kind="stable")

    def __len__(self) -> int:
        return len(self.match)

    def _columns(self, rows) -> dict:
        p, g = self.data.preds, self.data.gt
        tokens = np.array(self.data.sample_tokens, dtype=object)
        classes = np.array(self.data.classes, dtype=object)
        match = self.match[rows]
        ann = np.full(len(match), None, dtype=object)
        m = match >= 0
        ann[m] = g.ann_token[match[m]]
        boxes = p.boxes_lidar[rows]
        band = self.pred_band[rows]
        return {
            "sample_token": tokens[p.sample[rows]] if len(tokens) else np.empty(0, object),
            "index": p.index[rows].astype(np.int64),
            "class": classes[p.class_id[rows]] if len(classes) else np.empty(0, object),
            "score": p.score[rows],
            **{k: boxes[:, j] for j, k in enumerate(("x", "y", "z", "dx", "dy", "dz", "yaw"))},
            "matched_ann_token": ann,
            "center_dist": self.center_dist[rows],
            "yaw_residual": self.residual[rows],
            "is_flip": self.flip[rows],
            "is_duplicate": self.is_dup[rows],
            "kept_by_nms": self.kept[rows],
            "is_duplicate_gt": self.is_dup_gt[rows],
            "band": np.array(self.band_names, dtype=object)[band] if len(band) else np.empty(0, object),
        }

    def frame(self) -> pd.DataFrame:
        """The whole table as a DataFrame (schema.PREDICTIONS_COLUMNS + band)."""
        rows = np.arange(len(self)) if self._perm is None else self._perm
        df = pd.DataFrame(self._columns(rows), columns=list(PREDICTIONS_COLUMNS) + list(PREDICTIONS_EXTRA_COLUMNS))
        return df

    def arrow_batches(self, schema, rows_per_batch: int):
        """`pyarrow.Table` slices of the table (``schema``: the table's Arrow schema), ``rows_per_batch`` rows each."""
        import pyarrow as pa

        n = len(self)
        for a in range(0, n, rows_per_batch):
            b = min(a + rows_per_batch, n)
            rows = np.arange(a, b) if self._perm is None else self._perm[a:b]
            cols = self._columns(rows)
            yield pa.Table.from_arrays([pa.array(cols[f.name], type=f.type, from_pandas=True) for f in schema],
                                       schema=schema)
            del cols


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


def _sweep_table(data, options, gt_matched_before, is_dup, sweep_acc) -> pd.DataFrame:
    p, g = data.preds, data.gt
    n_cls = len(data.classes)
    tp_before = np.bincount(g.class_id, weights=gt_matched_before, minlength=n_cls)
    num_pred = np.bincount(p.class_id, minlength=n_cls)
    dup_before = np.bincount(p.class_id, weights=is_dup, minlength=n_cls)
    rows = []
    for t in options.nms_sweep:
        settings = options.nms.with_threshold(t)
        acc = sweep_acc[t]
        n_kept, n_dup_left, tp_after, lost = acc.kept, acc.dup_left, acc.tp_after, acc.lost
        for c, name in enumerate(data.classes):
            rows.append({
                "class": name, "nms_type": settings.nms_type, "nms_value": float(t),
                "num_pred": int(num_pred[c]), "num_kept": int(n_kept[c]),
                "num_dup_before": int(dup_before[c]), "num_dup_left": int(n_dup_left[c]),
                "dup_rate_left": float(_ratio(n_dup_left[c], n_kept[c])),
                "tp_before": int(tp_before[c]), "tp_after": int(tp_after[c]), "tp_lost": int(lost[c]),
            })
    return pd.DataFrame(rows, columns=list(NMS_SWEEP_COLUMNS))
