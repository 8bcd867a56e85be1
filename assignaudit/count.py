"""The `count` pipeline: source -> augmentation replay -> anchors + assigner -> streamed tallies -> reports.

Memory is flat in the number of frames: per-object and per-frame rows are flushed to Parquet in batches while the
class x band tallies are fixed-size arrays, and positive-anchor IoUs go into a fixed histogram (percentiles are exact to
the histogram resolution, `IOU_HIST_BINS`).

Attribution to range bands (not an upstream concept; recorded in the report metadata): GT counts, positives and forced
positives go to the band of the GT they are credited to (BEV distance of the *augmented* GT centre from the LiDAR
origin); negatives and ignores go to the band of the anchor centre.

Frames whose GT are all filtered out never reach the assigner in training (both frameworks draw another frame), so
they are skipped here too and counted in the metadata (`num_frames_skipped_empty`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from assignaudit import schema
from assignaudit.assign.anchors import Anchors, generate_anchors
from assignaudit.assign.assigner import assign_frame
from assignaudit.augment.params import GTSampling
from assignaudit.augment.replay import AugmentationReplay, AugmentedFrame, build_database
from assignaudit.bands import ALL_BANDS, Bands
from assignaudit.config.model import DetectorConfig
from assignaudit.errors import ConfigError
from assignaudit.report import METADATA_KEY, base_metadata, config_sha256, write_parquet
from assignaudit.sources.base import BoxSource

log = logging.getLogger(__name__)

IOU_HIST_BINS = 10_000  # positive-IoU percentiles are exact to 1e-4
_FLUSH_EVERY_FRAMES = 512

NUSCENES_DETECTION_CLASSES = (
    "car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle", "pedestrian",
    "traffic_cone",
)

# Reasons for GT that never reach the assigner (rows in objects.parquet, not counted in summary num_gt).
REASON_FILTERED_MIN_POINTS = "filtered_min_points"
REASON_FILTERED_OUT_OF_RANGE = "filtered_out_of_range"
_LEDGERED_DROPS = {"min_points": REASON_FILTERED_MIN_POINTS, "out_of_range": REASON_FILTERED_OUT_OF_RANGE}


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but torch sees no CUDA device (use --device auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


@dataclass(frozen=True)
class CountOptions:
    seed: int = 0
    replays: int = 1
    augment: bool = True
    bands: Bands = field(default_factory=Bands)
    device: str = "auto"
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.replays < 1:
            raise ConfigError(f"--replays must be >= 1, got {self.replays}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"--max-frames must be >= 1, got {self.max_frames}")


@dataclass
class _Tallies:
    """Fixed-size class x band accumulators (index B = len(bands) is the `all` band)."""

    num_classes: int
    num_bands: int

    def __post_init__(self) -> None:
        shape = (self.num_classes, self.num_bands)
        self.num_gt = np.zeros(shape, np.int64)
        self.num_pos = np.zeros(shape, np.int64)
        self.num_neg = np.zeros(shape, np.int64)
        self.num_ignore = np.zeros(shape, np.int64)
        self.num_forced = np.zeros(shape, np.int64)
        self.num_gt_zero_pos = np.zeros(shape, np.int64)
        self.iou_hist = np.zeros(shape + (IOU_HIST_BINS,), np.int64)


class _RowBuffer:
    """Column chunks flushed to a Parquet file (temp name; renamed into place by `finish`)."""

    def __init__(self, path: Path | None, schema_: pa.Schema, metadata: dict[str, Any]) -> None:
        self.path = path
        self.schema = schema_
        self.metadata = metadata
        self.chunks: dict[str, list[np.ndarray]] = {name: [] for name in schema_.names}
        self.writer: pq.ParquetWriter | None = None
        self.tmp: str | None = None

    def append(self, **columns: np.ndarray) -> None:
        for name, values in columns.items():
            self.chunks[name].append(values)

    def flush(self) -> None:
        if self.path is None or not self.chunks[self.schema.names[0]]:
            for v in self.chunks.values():
                v.clear()
            return
        arrays = []
        for f in self.schema:
            parts = self.chunks[f.name]
            values = np.concatenate(parts) if parts else np.array([])
            arrays.append(pa.array(values, type=f.type, from_pandas=True))
            parts.clear()
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            os.close(fd)
            import json

            meta = {METADATA_KEY.encode(): json.dumps(self.metadata, sort_keys=True, default=str).encode()}
            self.writer = pq.ParquetWriter(self.tmp, self.schema.with_metadata(meta))
        self.writer.write_table(table)

    def finish(self) -> Path | None:
        if self.path is None:
            return None
        self.flush()
        if self.writer is None:  # no rows at all: still write a valid empty file with the schema
            empty = pa.Table.from_arrays([pa.array([], type=f.type) for f in self.schema], schema=self.schema)
            write_parquet(self.path, empty, self.metadata)
            return self.path
        self.writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.tmp and os.path.exists(self.tmp):
            os.unlink(self.tmp)


OBJECTS_SCHEMA = pa.schema([
    ("sample_token", pa.string()), ("replay", pa.int32()), ("ann_token", pa.string()), ("source", pa.string()),
    ("class", pa.string()), ("x", pa.float64()), ("y", pa.float64()), ("z", pa.float64()), ("dx", pa.float64()),
    ("dy", pa.float64()), ("dz", pa.float64()), ("yaw", pa.float64()), ("dist", pa.float64()), ("band", pa.string()),
    ("num_lidar_pts", pa.int64()), ("num_pos", pa.int64()), ("num_forced", pa.int64()), ("max_iou", pa.float32()),
    ("zero_pos_reason", pa.string()),
])
FRAMES_SCHEMA = pa.schema([
    ("sample_token", pa.string()), ("replay", pa.int32()), ("class", pa.string()), ("num_gt", pa.int64()),
    ("num_pos", pa.int64()), ("num_neg", pa.int64()), ("num_ignore", pa.int64()),
])
SUMMARY_SCHEMA = pa.schema([
    ("class", pa.string()), ("band", pa.string()), ("band_lo", pa.float64()), ("band_hi", pa.float64()),
    ("num_gt", pa.int64()), ("num_pos", pa.int64()), ("num_neg", pa.int64()), ("num_ignore", pa.int64()),
    ("num_forced", pa.int64()), ("num_gt_zero_pos", pa.int64()), ("pos_per_gt", pa.float64()),
    ("iou_pos_p10", pa.float64()), ("iou_pos_p50", pa.float64()),
])
assert tuple(OBJECTS_SCHEMA.names) == schema.OBJECTS_COLUMNS
assert tuple(FRAMES_SCHEMA.names) == schema.FRAMES_COLUMNS
assert tuple(SUMMARY_SCHEMA.names) == schema.SUMMARY_COLUMNS


@dataclass
class CountResult:
    summary: pd.DataFrame
    metadata: dict[str, Any]
    written: list[Path]
    num_frames_assigned: int
    num_frames_skipped_empty: int


def dataset_classes(source: BoxSource) -> tuple[str, ...] | None:
    """The class vocabulary of a source (None when it can only be known by reading every frame)."""
    if source.info.kind == "nuscenes":
        return NUSCENES_DETECTION_CLASSES
    return None


def check_classes(config: DetectorConfig, vocabulary: set[str]) -> None:
    """Config classes the dataset does not know at all are an error (a typo or a missing class_mapping)."""
    mapping = dict(config.gt_filters.class_mapping)
    known = {mapping.get(c, c) for c in vocabulary}
    missing = [c for c in config.class_names if c not in known]
    if missing:
        raise ConfigError(
            f"config class(es) {missing} do not occur in this dataset (its classes: {sorted(vocabulary)}); "
            "map them with gt_filters.class_mapping"
        )


def _percentile_from_hist(hist: np.ndarray, q: float) -> float:
    """Nearest-rank percentile (the smallest value with at least ``q`` of the mass at or below it), as the centre
    of its histogram bin: exact to ``1 / IOU_HIST_BINS``."""
    total = int(hist.sum())
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(q * total))
    idx = int(np.searchsorted(np.cumsum(hist), rank))
    return (idx + 0.5) / IOU_HIST_BINS


def run_count(
    config: DetectorConfig,
    source: BoxSource,
    options: CountOptions,
    out_dir: Path | None = None,
    *,
    only_summary: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> CountResult:
    """Run the whole audit and write the reports into ``out_dir`` (None: compute only).

    ``on_progress(done, total)`` is called after each (frame, replay).
    """
    device = resolve_device(options.device)
    bands = options.bands
    class_names = tuple(config.class_names)
    class_index = {c: i for i, c in enumerate(class_names)}
    num_c, num_b = len(class_names), len(bands)

    anchors: Anchors = generate_anchors(config.anchors, device=device, bands=bands)
    set_class = np.array([class_index.get(s.class_name, -1) for s in config.anchors.anchor_sets], dtype=np.int64)
    set_of_class = np.full(num_c, -1, dtype=np.int64)
    for s, c in enumerate(set_class):
        if c >= 0:
            set_of_class[c] = s

    uses_gt_sampling = options.augment and any(isinstance(op, GTSampling) for op in config.augmentations)
    vocabulary = dataset_classes(source)
    database = None
    if uses_gt_sampling or vocabulary is None:
        frames_pass1 = _limited(source.frames(), options.max_frames)
        database, seen = build_database(frames_pass1, config, return_classes=True)
        vocabulary = vocabulary or tuple(sorted(seen))
    check_classes(config, set(vocabulary))
    # --no-augment: no random op at all (the filters still apply), so the replay gets no ops and needs no database.
    replay_config = config if options.augment else dataclasses.replace(config, augmentations=())
    replay = AugmentationReplay(replay_config, database if uses_gt_sampling else None, seed=options.seed)

    total_frames = min(len(source), options.max_frames or len(source))
    total = total_frames * options.replays
    resolved = config.to_dict()
    info = source.info
    metadata = base_metadata(
        "count",
        config=resolved,
        config_sha256=config_sha256(resolved),
        config_name=config.name,
        config_source=config.source,
        dataset={"kind": info.kind, "dataroot": info.dataroot, "version": info.version, "split": info.split,
                 "num_samples": total_frames},
        class_names=list(class_names),
        seed=options.seed,
        replays=options.replays,
        augment=options.augment,
        bands={"edges_m": list(bands.edges_m), "names": bands.names,
               "attribution": "GT, positives, forced: band of the credited GT (augmented BEV distance from the "
                              "LiDAR origin); negatives, ignores: band of the anchor centre"},
        device=str(device),
        assigner=resolved.get("assigner"),
        num_anchors_per_frame=int(anchors.boxes.shape[0]),
        iou_percentile_resolution=1.0 / IOU_HIST_BINS,
    )

    objects_buf = _RowBuffer(None if only_summary or out_dir is None else Path(out_dir) / schema.OBJECTS_FILE,
                             OBJECTS_SCHEMA, metadata)
    frames_buf = _RowBuffer(None if only_summary or out_dir is None else Path(out_dir) / schema.FRAMES_FILE,
                            FRAMES_SCHEMA, metadata)
    t = _Tallies(num_c, num_b + 1)
    band_names = np.array(bands.names, dtype=object)
    num_assigned = num_skipped = done = 0
    try:
        for frame in _limited(source.frames(), options.max_frames):
            for r in range(options.replays):
                aug = replay.apply(frame, r, augment=options.augment)
                _ledger_drops(objects_buf, aug, frame, r, class_index)
                done += 1
                if len(aug.boxes) == 0:
                    num_skipped += 1
                    if on_progress:
                        on_progress(done, total)
                    continue
                num_assigned += 1
                _tally_frame(aug, r, anchors, config, class_index, set_of_class, set_class, bands, band_names,
                             device, t, objects_buf, frames_buf)
                if num_assigned % _FLUSH_EVERY_FRAMES == 0:
                    objects_buf.flush()
                    frames_buf.flush()
                if on_progress:
                    on_progress(done, total)
        metadata["num_frames_assigned"] = num_assigned
        metadata["num_frames_skipped_empty"] = num_skipped
        summary = _summary_frame(t, class_names, bands)
        written: list[Path] = []
        if out_dir is not None:
            for buf in (objects_buf, frames_buf):
                p = buf.finish()
                if p is not None:
                    written.append(p)
            written.append(write_parquet(Path(out_dir) / schema.SUMMARY_FILE, summary, metadata,
                                         schema=SUMMARY_SCHEMA))
    except BaseException:
        objects_buf.abort()
        frames_buf.abort()
        raise
    if num_skipped:
        log.warning("%d frame(s) had no GT left after filtering and were skipped (training resamples them)",
                    num_skipped)
    return CountResult(summary, metadata, written, num_assigned, num_skipped)


def _limited(frames: Iterator, max_frames: int | None) -> Iterator:
    for i, f in enumerate(frames):
        if max_frames is not None and i >= max_frames:
            return
        yield f


def _ledger_drops(buf: _RowBuffer, aug: AugmentedFrame, frame, replay: int, class_index: dict[str, int]) -> None:
    """GT of a config class removed before assignment appear in objects.parquet with the reason."""
    if buf.path is None or not aug.dropped:
        return
    rows = [d for d in aug.dropped if d[2] in _LEDGERED_DROPS and d[1] in class_index]
    if not rows:
        return
    token_to_row = {tok: i for i, tok in enumerate(frame.ann_token)}
    idx = np.array([token_to_row.get(d[0], -1) for d in rows])
    ok = idx >= 0
    if not ok.any():
        return
    idx = idx[ok]
    rows = [d for d, k in zip(rows, ok) if k]
    boxes = frame.boxes_lidar[idx]
    n = len(idx)
    nan = np.full(n, np.nan)
    buf.append(
        sample_token=np.full(n, frame.sample_token, dtype=object), replay=np.full(n, replay, np.int32),
        ann_token=np.array([d[0] for d in rows], dtype=object), source=np.full(n, "dataset", dtype=object),
        **{"class": np.array([d[1] for d in rows], dtype=object)},
        x=boxes[:, 0], y=boxes[:, 1], z=boxes[:, 2], dx=boxes[:, 3], dy=boxes[:, 4], dz=boxes[:, 5], yaw=boxes[:, 6],
        dist=nan, band=np.full(n, None, dtype=object), num_lidar_pts=np.asarray(frame.num_lidar_pts)[idx],
        num_pos=np.zeros(n, np.int64), num_forced=np.zeros(n, np.int64), max_iou=nan.astype(np.float32),
        zero_pos_reason=np.array([_LEDGERED_DROPS[d[2]] for d in rows], dtype=object),
    )


def _tally_frame(aug: AugmentedFrame, replay: int, anchors: Anchors, config: DetectorConfig,
                 class_index: dict[str, int], set_of_class: np.ndarray, set_class: np.ndarray, bands: Bands,
                 band_names: np.ndarray, device: torch.device, t: _Tallies, objects_buf: _RowBuffer,
                 frames_buf: _RowBuffer) -> None:
    num_c, num_b = t.num_classes, len(bands)
    gt_class = np.array([class_index[c] for c in aug.class_name], dtype=np.int64)  # [K]
    gt_set = set_of_class[gt_class]
    boxes = aug.boxes
    gt_boxes = torch.as_tensor(boxes[:, :7], dtype=torch.float32, device=device)
    res = assign_frame(anchors, gt_boxes, torch.as_tensor(gt_set, device=device), config.assigner, bands)

    dist = np.hypot(boxes[:, 0], boxes[:, 1])
    gt_band = bands.index(dist)  # [K]
    flat = gt_class * (num_b + 1) + gt_band
    flat_all = gt_class * (num_b + 1) + num_b
    size = num_c * (num_b + 1)

    def add(target: np.ndarray, weights: np.ndarray | None) -> None:
        target += np.bincount(flat, weights, minlength=size).reshape(target.shape).astype(np.int64)
        target += np.bincount(flat_all, weights, minlength=size).reshape(target.shape).astype(np.int64)

    zero = res.gt_num_pos == 0
    add(t.num_gt, None)
    add(t.num_pos, res.gt_num_pos)
    add(t.num_forced, res.gt_num_forced)
    add(t.num_gt_zero_pos, zero.astype(np.float64))

    # negatives / ignores per anchor set (= class) and anchor-centre band
    valid_sets = set_class >= 0
    neg = res.num_neg_per_set_band[valid_sets]
    ign = res.num_ignore_per_set_band[valid_sets]
    cls_of_set = set_class[valid_sets]
    np.add.at(t.num_neg[:, :num_b], cls_of_set, neg)
    np.add.at(t.num_ignore[:, :num_b], cls_of_set, ign)
    t.num_neg[cls_of_set, num_b] += neg.sum(axis=1)
    t.num_ignore[cls_of_set, num_b] += ign.sum(axis=1)

    if len(res.pos_iou):
        pos_gt = res.pos_gt_index
        bins = np.minimum((res.pos_iou.astype(np.float64) * IOU_HIST_BINS).astype(np.int64), IOU_HIST_BINS - 1)
        cls_b = gt_class[pos_gt]
        band_b = gt_band[pos_gt]
        hist = t.iou_hist.reshape(-1)
        stride = IOU_HIST_BINS
        hist += np.bincount((cls_b * (num_b + 1) + band_b) * stride + bins, minlength=hist.size)
        hist += np.bincount((cls_b * (num_b + 1) + num_b) * stride + bins, minlength=hist.size)

    if frames_buf.path is not None:
        present = np.bincount(gt_class, minlength=num_c)
        pos_c = np.bincount(gt_class, weights=res.gt_num_pos, minlength=num_c).astype(np.int64)
        neg_c = np.zeros(num_c, np.int64)
        ign_c = np.zeros(num_c, np.int64)
        np.add.at(neg_c, cls_of_set, neg.sum(axis=1))
        np.add.at(ign_c, cls_of_set, ign.sum(axis=1))
        frames_buf.append(
            sample_token=np.full(num_c, aug.sample_token, dtype=object), replay=np.full(num_c, replay, np.int32),
            **{"class": np.array(config.class_names, dtype=object)}, num_gt=present.astype(np.int64),
            num_pos=pos_c, num_neg=neg_c, num_ignore=ign_c,
        )
    if objects_buf.path is not None:
        n = len(boxes)
        objects_buf.append(
            sample_token=np.full(n, aug.sample_token, dtype=object), replay=np.full(n, replay, np.int32),
            ann_token=np.asarray(aug.ann_token, dtype=object), source=np.asarray(aug.source, dtype=object),
            **{"class": np.asarray(aug.class_name, dtype=object)},
            x=boxes[:, 0], y=boxes[:, 1], z=boxes[:, 2], dx=boxes[:, 3], dy=boxes[:, 4], dz=boxes[:, 5],
            yaw=boxes[:, 6], dist=dist, band=band_names[gt_band], num_lidar_pts=np.asarray(aug.num_lidar_pts, np.int64),
            num_pos=np.asarray(res.gt_num_pos, np.int64), num_forced=np.asarray(res.gt_num_forced, np.int64),
            max_iou=np.asarray(res.gt_max_iou, np.float32), zero_pos_reason=np.asarray(res.gt_zero_pos_reason, object),
        )


def _summary_frame(t: _Tallies, class_names: tuple[str, ...], bands: Bands) -> pd.DataFrame:
    """One row per (class, band) plus band `all`, derived from the tallies."""
    rows = []
    band_names = bands.names + [ALL_BANDS]
    lows = bands.lows + [0.0]
    highs = bands.highs + [math.inf]
    for c, name in enumerate(class_names):
        for b, band in enumerate(band_names):
            num_gt = int(t.num_gt[c, b])
            num_pos = int(t.num_pos[c, b])
            rows.append({
                "class": name, "band": band, "band_lo": lows[b], "band_hi": highs[b], "num_gt": num_gt,
                "num_pos": num_pos, "num_neg": int(t.num_neg[c, b]), "num_ignore": int(t.num_ignore[c, b]),
                "num_forced": int(t.num_forced[c, b]), "num_gt_zero_pos": int(t.num_gt_zero_pos[c, b]),
                "pos_per_gt": num_pos / num_gt if num_gt else math.nan,
                "iou_pos_p10": _percentile_from_hist(t.iou_hist[c, b], 0.10),
                "iou_pos_p50": _percentile_from_hist(t.iou_hist[c, b], 0.50),
            })
    return pd.DataFrame(rows, columns=list(schema.SUMMARY_COLUMNS))
