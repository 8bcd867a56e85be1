"""What every target family's tally shares: the class x band accumulators, the per-frame result handed back to the
`count` pipeline, and the summary table built from the accumulators.

Shapes: C = config classes, B = range bands (`assignaudit.bands.Bands`), index B of the band axis is band ``all``.
Everything is fixed-size per run, so memory is flat in the number of frames (the IoU percentiles go through a fixed
histogram, exact to ``1 / IOU_HIST_BINS``; radii are integers and go through an integer histogram).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from assignaudit import schema
from assignaudit.bands import ALL_BANDS, Bands

IOU_HIST_BINS = 10_000  # positive-IoU percentiles are exact to 1e-4

SUMMARY_SCHEMA = pa.schema([
    ("class", pa.string()), ("band", pa.string()), ("band_lo", pa.float64()), ("band_hi", pa.float64()),
    ("num_gt", pa.int64()), ("num_pos", pa.int64()), ("num_neg", pa.int64()), ("num_ignore", pa.int64()),
    ("num_forced", pa.int64()), ("num_gt_zero_pos", pa.int64()), ("pos_per_gt", pa.float64()),
    ("iou_pos_p10", pa.float64()), ("iou_pos_p50", pa.float64()),
    # SUMMARY_EXTRA_COLUMNS: written for every family, 0 / NaN where meaningless
    ("num_neg_reduced", pa.int64()), ("num_gt_collision", pa.int64()), ("num_gt_truncated", pa.int64()),
    ("num_gt_clamped", pa.int64()), ("num_gt_out_of_map", pa.int64()), ("num_gt_useless", pa.int64()),
    ("radius_p50", pa.float64()),
])
if tuple(SUMMARY_SCHEMA.names) != schema.SUMMARY_COLUMNS + schema.SUMMARY_EXTRA_COLUMNS:
    raise ImportError("tally.base.SUMMARY_SCHEMA is out of step with schema.SUMMARY_COLUMNS + SUMMARY_EXTRA_COLUMNS")

_COUNT_FIELDS = ("num_gt", "num_pos", "num_neg", "num_ignore", "num_forced", "num_gt_zero_pos", "num_neg_reduced",
                 "num_gt_collision", "num_gt_truncated", "num_gt_clamped", "num_gt_out_of_map", "num_gt_useless")


class Tallies:
    """Fixed-size class x band accumulators (band index B = ``len(bands)`` is ``all``), int64."""

    def __init__(self, num_classes: int, num_bands: int) -> None:
        self.num_classes = num_classes
        self.num_bands = num_bands  # including `all`
        shape = (num_classes, num_bands)
        for name in _COUNT_FIELDS:
            setattr(self, name, np.zeros(shape, np.int64))
        self.iou_hist = np.zeros(shape + (IOU_HIST_BINS,), np.int64)
        self.radius_hist = np.zeros(shape + (1,), np.int64)  # [C, B+1, R]: grows with the largest radius seen

    def grow_radius(self, max_radius: int) -> None:
        if max_radius >= self.radius_hist.shape[2]:
            pad = max_radius + 1 - self.radius_hist.shape[2]
            self.radius_hist = np.pad(self.radius_hist, ((0, 0), (0, 0), (0, pad)))

    def merge(self, other: "Tallies") -> None:
        """Add ``other``'s counts (the tallies of other frames, e.g. a worker's shard). Integer sums: exact and
        independent of the order shards are merged in."""
        if (other.num_classes, other.num_bands) != (self.num_classes, self.num_bands):
            raise ValueError("cannot merge tallies of different class x band shapes")
        for name in _COUNT_FIELDS:
            getattr(self, name).__iadd__(getattr(other, name))
        self.iou_hist += other.iou_hist
        self.grow_radius(other.radius_hist.shape[2] - 1)
        self.radius_hist[:, :, : other.radius_hist.shape[2]] += other.radius_hist

    def __getstate__(self) -> dict:
        """Pickled sparse (a shard's histograms are mostly zeros: ~4 MB dense, a few kB sparse)."""
        state = dict(self.__dict__)
        for name in ("iou_hist", "radius_hist"):
            h = state.pop(name)
            idx = np.flatnonzero(h)
            state[name] = (h.shape, idx, h.reshape(-1)[idx])
        return state

    def __setstate__(self, state: dict) -> None:
        for name in ("iou_hist", "radius_hist"):
            shape, idx, values = state[name]
            h = np.zeros(shape, np.int64)
            h.reshape(-1)[idx] = values
            state[name] = h
        self.__dict__.update(state)


class GTBands:
    """One frame's GT by (class, band): the flat indices the per-GT quantities are bincounted with.

    ``gt_class``: int64 ``[K]`` config class index; ``gt_band``: int64 ``[K]`` band of the GT centre (BEV distance of
    the *augmented* centre from the LiDAR origin, metres).
    """

    def __init__(self, gt_class: np.ndarray, dist_m: np.ndarray, bands: Bands, num_classes: int) -> None:
        self.gt_class = gt_class
        self.dist_m = dist_m
        self.gt_band = bands.index(dist_m)
        self.nb = len(bands) + 1
        self.flat = gt_class * self.nb + self.gt_band
        self.flat_all = gt_class * self.nb + (self.nb - 1)
        self.size = num_classes * self.nb

    def add(self, target: np.ndarray, weights: np.ndarray | None = None, select: np.ndarray | None = None) -> None:
        """``target[class, band] += sum of weights`` over the GT (in their band and in ``all``)."""
        flat, flat_all = self.flat, self.flat_all
        if select is not None:
            flat, flat_all = flat[select], flat_all[select]
            weights = None if weights is None else weights[select]
        t = target.reshape(-1)
        t += np.bincount(flat, weights, minlength=self.size).astype(np.int64)
        t += np.bincount(flat_all, weights, minlength=self.size).astype(np.int64)

    def add_hist(self, hist: np.ndarray, gt: np.ndarray, bins: np.ndarray) -> None:
        """``hist[class, band, bin] += 1`` for each (credited GT index, bin) pair, in the GT's band and in ``all``."""
        n_bins = hist.shape[2]
        h = hist.reshape(-1)  # a view: hist is C-contiguous
        # One unbuffered scatter-add of both index sets, O(pairs): a dense ``bincount(minlength=C*B*bins)`` would
        # allocate and add the whole 10,000-bin histogram (millions of cells) per frame.
        idx = np.concatenate((self.flat[gt], self.flat_all[gt])) * n_bins + np.concatenate((bins, bins))
        np.add.at(h, idx, 1)


def add_iou_hist(t: Tallies, gtb: GTBands, gt: np.ndarray, iou: np.ndarray) -> None:
    """Positive IoUs credited to GT ``gt`` into the percentile histogram."""
    if gt.size:
        bins = np.clip((np.asarray(iou, np.float64) * IOU_HIST_BINS).astype(np.int64), 0, IOU_HIST_BINS - 1)
        gtb.add_hist(t.iou_hist, gt, bins)


def add_per_band(target: np.ndarray, per_band: np.ndarray) -> None:
    """``target[:, :B] += per_band`` and ``target[:, B] += per_band.sum(1)`` (per_band ``[C, B]`` int64)."""
    target[:, :-1] += per_band
    target[:, -1] += per_band.sum(axis=1)


@dataclass
class FrameTally:
    """What one frame's tally hands back to the pipeline for the per-object and per-frame rows. K GT, C classes."""

    gt_num_pos: np.ndarray  # int64 [K]
    gt_num_forced: np.ndarray  # int64 [K]
    gt_max_iou: np.ndarray  # float32 [K] (NaN where the family has no IoU)
    gt_zero_pos_reason: np.ndarray  # object [K]: None or a schema.REASON_* string
    class_num_pos: np.ndarray  # int64 [C]
    class_num_neg: np.ndarray  # int64 [C]
    class_num_ignore: np.ndarray  # int64 [C]
    positives: Any = None  # assignaudit.quality.Positives when the tally collects them (count --quality), else None


class FamilyTally(Protocol):
    """One target family (anchor, center, query): tallies frames into ``tallies``; knows its report semantics."""

    head: str
    tallies: Tallies

    def add_frame(self, boxes: np.ndarray, class_name: np.ndarray, gtb: GTBands, sample_token: str) -> FrameTally:
        """Assign one augmented frame (canonical ``boxes`` ``[K, 9]``, config class names ``[K]``) and tally it."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Family-specific report metadata, including ``counting`` (what pos / neg / ignore mean, band rules)."""
        ...

    def extra_reports(self) -> dict[str, tuple[pd.DataFrame, pa.Schema]]:
        """Additional report files of this family: file name -> (table, schema)."""
        ...

    def nan_columns(self) -> tuple[str, ...]:
        """Summary columns meaningless for this family (written as NaN where they are floats)."""
        ...


def percentile_from_hist(hist: np.ndarray, q: float, scale: float = 1.0 / IOU_HIST_BINS,
                         centre: float = 0.5) -> float:
    """Nearest-rank percentile (the smallest value with at least ``q`` of the mass at or below it) from a histogram
    over bins ``i``: the value ``(i + centre) * scale`` (IoU: the bin centre, exact to ``1 / IOU_HIST_BINS``; integer
    radii: ``centre = 0, scale = 1``)."""
    total = int(hist.sum())
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(q * total))
    idx = int(np.searchsorted(np.cumsum(hist), rank))
    return (idx + centre) * scale


def summary_frame(t: Tallies, class_names: tuple[str, ...], bands: Bands,
                  nan_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per (class, band) plus band ``all``, columns SUMMARY_COLUMNS + SUMMARY_EXTRA_COLUMNS."""
    band_names = bands.names + [ALL_BANDS]
    lows = bands.lows + [0.0]
    highs = bands.highs + [math.inf]
    nb = len(band_names)
    nc = len(class_names)
    out: dict[str, Any] = {
        "class": np.repeat(np.array(class_names, dtype=object), nb),
        "band": np.tile(np.array(band_names, dtype=object), nc),
        "band_lo": np.tile(np.array(lows, np.float64), nc),
        "band_hi": np.tile(np.array(highs, np.float64), nc),
    }
    for name in _COUNT_FIELDS:
        out[name] = getattr(t, name).reshape(-1).copy()
    num_gt = out["num_gt"].astype(np.float64)
    out["pos_per_gt"] = np.divide(out["num_pos"], num_gt, out=np.full(num_gt.shape, np.nan), where=num_gt > 0)
    iou = t.iou_hist.reshape(nc * nb, -1)
    out["iou_pos_p10"] = np.array([percentile_from_hist(h, 0.10) for h in iou])
    out["iou_pos_p50"] = np.array([percentile_from_hist(h, 0.50) for h in iou])
    rad = t.radius_hist.reshape(nc * nb, -1)
    out["radius_p50"] = np.array([percentile_from_hist(h, 0.50, scale=1.0, centre=0.0) for h in rad])
    for name in nan_columns:
        if np.issubdtype(np.asarray(out[name]).dtype, np.floating):
            out[name] = np.full(nc * nb, np.nan)
    return pd.DataFrame(out, columns=list(SUMMARY_SCHEMA.names))


def band_of_points(x_m: np.ndarray, y_m: np.ndarray, bands: Bands) -> np.ndarray:
    """int64 band index of BEV points (metres, LiDAR frame); a NaN position (a diverged query) goes to the last
    band rather than crashing."""
    dist = np.hypot(x_m, y_m)
    return bands.index(np.nan_to_num(dist, nan=np.inf, posinf=np.inf))
