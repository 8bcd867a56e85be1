"""The `count` pipeline: source -> augmentation replay -> the config's target family -> streamed tallies -> reports.

One pipeline for every target family (`DetectorConfig.head`): anchor heads (`assignaudit.tally.anchor`), CenterHead
heatmaps (`assignaudit.tally.heatmap`) and query heads (`assignaudit.tally.query`). What positive, negative and
ignored mean for each, and which band each count goes to, is in docs/count-families.md and in every report's
metadata (``counting``).

Memory is flat in the number of frames: per-object and per-frame rows are flushed to Parquet in batches while the
class x band tallies are fixed-size arrays, and positive IoUs go into a fixed histogram (percentiles are exact to
the histogram resolution, `IOU_HIST_BINS`).

Frames whose GT are all filtered out never reach the assigner in training (both frameworks draw another frame), so
they are skipped here too and counted in the metadata (`num_frames_skipped_empty`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
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
from assignaudit.augment.database import gt_sampling_op
from assignaudit.augment.frame import DROP_MIN_POINTS, DROP_OUT_OF_RANGE
from assignaudit.augment.replay import AugmentationReplay, AugmentedFrame, build_database
from assignaudit.bands import Bands
from assignaudit.config.model import DetectorConfig
from assignaudit.errors import ConfigError, DataError, ReportError
from assignaudit.report import METADATA_KEY, base_metadata, config_sha256, write_parquet
from assignaudit.report_set import ReportSetWriter, fault
from assignaudit.sources.base import BoxSource, Frame
from assignaudit.tally import IOU_HIST_BINS, SUMMARY_SCHEMA, FamilyTally, GTBands, make_tally
from assignaudit.tally.base import summary_frame

log = logging.getLogger(__name__)

__all__ = ["IOU_HIST_BINS", "SUMMARY_SCHEMA", "CountOptions", "CountResult", "FrameCounter", "check_classes",
           "dataset_classes", "make_replay", "resolve_device", "run_count", "set_torch_threads"]

_FLUSH_EVERY_FRAMES = 512

NUSCENES_DETECTION_CLASSES = (
    "car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle", "pedestrian",
    "traffic_cone",
)

# Reasons for GT that never reach the assigner (rows in objects.parquet, not counted in summary num_gt).
REASON_FILTERED_MIN_POINTS = "filtered_min_points"
REASON_FILTERED_OUT_OF_RANGE = "filtered_out_of_range"
_LEDGERED_DROPS = {DROP_MIN_POINTS: REASON_FILTERED_MIN_POINTS, DROP_OUT_OF_RANGE: REASON_FILTERED_OUT_OF_RANGE}

QUERY_DUMP_NOTE = ("a query dump holds the decoder outputs for the GT the model saw, so the frames are counted "
                   "without augmentation and with one replay")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but torch sees no CUDA device (use --device auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def set_torch_threads(threads: int) -> None:
    """Intra-op threads for this process (``--threads``; the CLI's default is 1). `count` runs hundreds of tiny ops
    per frame, and each enters an OpenMP region: one thread costs ~36 % less CPU than torch's default (issue 12)."""
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class CountOptions:
    seed: int = 0
    replays: int = 1
    augment: bool = True
    bands: Bands = field(default_factory=Bands)
    device: str = "auto"
    max_frames: int | None = None
    db_infos: tuple[Path, ...] = ()
    """``--db-infos``: gt_sampling database info files to paste from (empty: the config's, else rebuilt)."""
    workers: int | None = 1
    """``--workers``: processes counting shards of frames (None: the number of cores); assignaudit.parallel."""
    shard_frames: int = 64
    """Consecutive frames per shard handed to a worker."""
    ray: str | None = None
    """``--ray auto|ADDRESS``: count the shards as Ray tasks instead of local processes."""
    quality: Any = None
    paa: Any = None
    prompts: Any = None
    """``--prompts``: an `assignaudit.assign.prompt.PromptOptions` (query heads): prompt agreement (None: off)."""
    """``--paa``: an `assignaudit.assign.paa.PaaOptions` (anchor heads): PAA re-assignment (None: off)."""
    """``--quality``: an `assignaudit.quality.QualityOptions` to add the positives' regression view (None: off)."""

    def __post_init__(self) -> None:
        if self.replays < 1:
            raise ConfigError(f"--replays must be >= 1, got {self.replays}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.shard_frames < 1:
            raise ConfigError(f"shard_frames must be >= 1, got {self.shard_frames}")


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
        try:
            self._flush()
        except OSError as err:
            raise ReportError(f"cannot write {self.path}: {err.strerror or err}") from None

    def _flush(self) -> None:
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
            fault("write")
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
        try:
            self.writer.close()
            os.replace(self.tmp, self.path)
        except OSError as err:
            raise ReportError(f"cannot write {self.path}: {err.strerror or err}") from None
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
assert tuple(OBJECTS_SCHEMA.names) == schema.OBJECTS_COLUMNS
assert tuple(FRAMES_SCHEMA.names) == schema.FRAMES_COLUMNS


@dataclass
class CountResult:
    summary: pd.DataFrame
    metadata: dict[str, Any]
    written: list[Path]
    num_frames_assigned: int
    num_frames_skipped_empty: int
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    """The family's extra tables by report file name (``layers.parquet``, ``radius.parquet``)."""


def dataset_classes(source: BoxSource) -> tuple[str, ...] | None:
    """The class vocabulary of a source (None when it can only be known by reading every frame)."""
    if source.info.kind == "nuscenes":
        return NUSCENES_DETECTION_CLASSES
    return None


def check_classes(config: DetectorConfig, vocabulary: set[str]) -> None:
    """Config classes the dataset does not know (after ``class_mapping``).

    None of them in the dataset is an error (a wrong source or a missing ``--class-map``); only some missing is a
    warning, and those classes are counted with 0 GT. A missing class that differs from a dataset class only in
    case is named in the message with the ``--class-map`` that fixes it.
    """
    mapping = dict(config.gt_filters.class_mapping)
    known = {mapping.get(c, c) for c in vocabulary if c is not None}
    missing = [c for c in config.class_names if c not in known]
    if not missing:
        return
    by_lower = {str(c).lower(): c for c in vocabulary if c is not None and c not in mapping}
    case_only = [(by_lower[c.lower()], c) for c in missing if c.lower() in by_lower]
    hint = ""
    if case_only:
        pairs = ",".join(f"{src}={dst}" for src, dst in case_only)
        hint = f"; {', '.join(repr(s) for s, _ in case_only)} differ only in case: pass --class-map {pairs}"
    if len(missing) == len(config.class_names):
        raise ConfigError(
            f"none of the config classes {list(config.class_names)} occurs in this dataset (its classes: "
            f"{sorted(map(str, vocabulary))}){hint or '; map them with --class-map DATASET=CONFIG,...'}"
        )
    log.warning("config class(es) %s do not occur in this dataset (its classes: %s); they are counted with 0 GT%s",
                missing, sorted(map(str, vocabulary)), hint)


def limited(frames: Iterator[Frame], max_frames: int | None) -> Iterator[Frame]:
    """The first ``max_frames`` frames (all when None)."""
    for i, f in enumerate(frames):
        if max_frames is not None and i >= max_frames:
            return
        yield f


def make_replay(config: DetectorConfig, source: BoxSource, *, seed: int, augment: bool, max_frames: int | None,
                check: tuple[DetectorConfig, ...] = (), db_infos: tuple[Path, ...] = (),
                record: dict[str, Any] | None = None) -> AugmentationReplay:
    """The seeded augmentation replay of ``config`` over ``source`` (a GT database pass first when the config pastes
    objects). Checks that every class of ``config`` (and of the ``check`` configs) occurs in the dataset.

    ``augment=False`` (``--no-augment``): no random op at all (the filters still apply), so no database is needed.
    The database is the user's dbinfos file when `assignaudit.sources.dbinfos.choose_database` finds one
    (``db_infos`` = ``--db-infos``, else the config's under the source's ``data_path``), else rebuilt from the
    source; ``record["gt_database"]`` (when ``record`` is given) says which.
    """
    from assignaudit.sources.dbinfos import choose_database, load_database

    has_op = gt_sampling_op(config) is not None
    uses_db = augment and has_op
    if db_infos and not has_op:
        raise ConfigError("--db-infos: the config has no gt_sampling / ObjectSample step to draw from a database")
    vocabulary = dataset_classes(source)
    database = None
    choice = choose_database(config, db_infos, getattr(source, "data_path", None)) if uses_db else None
    if (uses_db and choice.kind == "rebuilt") or vocabulary is None:
        database, seen = build_database(limited(source.frames(), max_frames), config, return_classes=True)
        vocabulary = vocabulary or tuple(sorted(seen))
    for cfg in (config, *check):
        check_classes(cfg, set(vocabulary))
    if choice is not None and choice.kind == "file":
        database = load_database(choice.paths, config)
    if record is not None and choice is not None:
        record["gt_database"] = {**choice.metadata(), "entries_per_class": database.sizes()}
    replay_config = config if augment else dataclasses.replace(config, augmentations=())
    return AugmentationReplay(replay_config, database if uses_db else None, seed=seed)


class FrameCounter:
    """One config's counts over a stream of augmented frames: its family tally plus the optional row buffers.

    ``add(aug, replay)`` assigns and tallies one (sample, replay) and returns False when the frame had no GT left (it
    is skipped, as training resamples it); ``summary()`` is the class x band table at any point.
    """

    def __init__(self, config: DetectorConfig, bands: Bands, device: torch.device, *, query_dump=None,
                 objects_buf: "_RowBuffer | None" = None, frames_buf: "_RowBuffer | None" = None,
                 quality=None, paa=None, prompts=None) -> None:
        self.config = config
        self.bands = bands
        self.class_names = tuple(config.class_names)
        self.class_index = {c: i for i, c in enumerate(self.class_names)}
        self.tally: FamilyTally = make_tally(config, bands, device, query_dump)
        self.objects_buf = objects_buf
        self.frames_buf = frames_buf
        self._band_names = np.array(bands.names, dtype=object)
        self.num_assigned = 0
        self.num_skipped = 0
        self.device = device
        if paa is not None:
            if not hasattr(self.tally, "enable_paa"):
                raise ConfigError(f"--paa is for anchor heads; config {config.name!r} has head {config.head!r}")
            self.tally.enable_paa(paa)
        self.prompts = None
        if prompts is not None:  # count --prompts (assignaudit/tally/prompt.py)
            if config.head != "query":
                raise ConfigError(f"--prompts is for query heads; config {config.name!r} has head {config.head!r}")
            from assignaudit.tally.prompt import PromptTally

            self.prompts = PromptTally(config, bands, prompts, query_dump)
            self.prompts.points_of = lambda: getattr(self.tally, "frame_points", None)
        self.quality = None
        if quality is not None:  # count --quality (assignaudit/quality.py)
            from assignaudit.quality import QualityTally

            self.quality = QualityTally(self.class_names, bands, quality)
            self.tally.collect_positives = True

    def add(self, aug: AugmentedFrame, replay: int, frame: Frame | None = None) -> bool:
        if len(aug.boxes) == 0:
            self.num_skipped += 1
            return False
        self.num_assigned += 1
        boxes = aug.boxes
        gt_class = np.array([self.class_index[c] for c in aug.class_name], dtype=np.int64)  # [K], K names per frame
        gtb = GTBands(gt_class, np.hypot(boxes[:, 0], boxes[:, 1]), self.bands, len(self.class_names))
        if frame is not None and getattr(self.tally, "needs_points", False):
            self.tally.see_frame(frame)  # query.cost bonet: the cost runs over the frame's points
        ft = self.tally.add_frame(boxes, aug.class_name, gtb, aug.sample_token)
        if self.prompts is not None:
            self.prompts.add(boxes, aug.class_name, gtb, aug.sample_token)
        if self.quality is not None:
            self.quality.add(ft.positives, torch.as_tensor(boxes[:, :7], dtype=torch.float32, device=self.device),
                             gtb.gt_class, gtb.gt_band)
        if self.frames_buf is not None and self.frames_buf.path is not None:
            num_c = len(self.class_names)
            self.frames_buf.append(
                sample_token=np.full(num_c, aug.sample_token, dtype=object),
                replay=np.full(num_c, replay, np.int32), **{"class": np.array(self.class_names, dtype=object)},
                num_gt=np.bincount(gt_class, minlength=num_c).astype(np.int64), num_pos=ft.class_num_pos,
                num_neg=ft.class_num_neg, num_ignore=ft.class_num_ignore,
            )
        if self.objects_buf is not None and self.objects_buf.path is not None:
            n = len(boxes)
            self.objects_buf.append(
                sample_token=np.full(n, aug.sample_token, dtype=object), replay=np.full(n, replay, np.int32),
                ann_token=np.asarray(aug.ann_token, dtype=object), source=np.asarray(aug.source, dtype=object),
                **{"class": np.asarray(aug.class_name, dtype=object)},
                x=boxes[:, 0], y=boxes[:, 1], z=boxes[:, 2], dx=boxes[:, 3], dy=boxes[:, 4], dz=boxes[:, 5],
                yaw=boxes[:, 6], dist=gtb.dist_m, band=self._band_names[gtb.gt_band],
                num_lidar_pts=np.asarray(aug.num_lidar_pts, np.int64), num_pos=ft.gt_num_pos,
                num_forced=ft.gt_num_forced, max_iou=ft.gt_max_iou, zero_pos_reason=ft.gt_zero_pos_reason,
            )
        return True

    def summary(self) -> pd.DataFrame:
        table = summary_frame(self.tally.tallies, self.class_names, self.bands, self.tally.nan_columns())
        if self.quality is not None:
            table = table.assign(**self.quality.summary_columns())
        return table

    def summary_schema(self) -> pa.Schema:
        if self.quality is None:
            return SUMMARY_SCHEMA
        from assignaudit.quality import SUMMARY_QUALITY_SCHEMA

        return pa.schema(list(SUMMARY_SCHEMA) + list(SUMMARY_QUALITY_SCHEMA))

    def extra_reports(self) -> dict[str, tuple[pd.DataFrame, pa.Schema]]:
        extra = dict(self.tally.extra_reports())
        if self.quality is not None:
            from assignaudit.quality import QUALITY_SCHEMA

            extra[schema.QUALITY_FILE] = (self.quality.histogram_frame(), QUALITY_SCHEMA)
        if self.prompts is not None:
            from assignaudit.tally.prompt import PROMPTS_SCHEMA

            extra[schema.PROMPTS_FILE] = (self.prompts.frame(), PROMPTS_SCHEMA)
        return extra

    def metadata(self) -> dict[str, Any]:
        """``head``, ``framework`` and the family's counting semantics (see docs/count-families.md)."""
        meta = {"head": self.config.head, "framework": self.config.framework, **self.tally.metadata()}
        if self.quality is not None:
            meta.update(self.quality.metadata(self.config.head))
        if self.prompts is not None:
            meta.update(self.prompts.metadata())
        return meta


def run_count(
    config: DetectorConfig,
    source: BoxSource,
    options: CountOptions,
    out_dir: Path | None = None,
    *,
    only_summary: bool = False,
    query_dump: str | Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CountResult:
    """Run the whole audit and write the reports into ``out_dir`` (None: compute only).

    ``query_dump``: a query-head dump (docs/query-dumps.md) to replay the Hungarian match from; query heads only.
    With a dump the frames are counted without augmentation and with one replay (the dump holds the outputs for the
    GT the model saw); every counted frame must be in the dump (DataError naming the first missing sample token,
    checked before counting; ``max_frames`` limits which frames are counted, hence checked).

    ``on_progress(done, total)`` is called after each (frame, replay).
    """
    device = resolve_device(options.device)
    bands = options.bands
    dump = None
    if query_dump is not None:
        if config.head != "query":
            raise ConfigError(f"--queries is for query heads; config {config.name!r} has head {config.head!r}")
        from assignaudit.assign.hungarian import load_query_dump

        dump = load_query_dump(query_dump)
    augment, replays = options.augment, options.replays
    dump_meta: dict[str, Any] = {}
    paa_dump = options.paa is not None and options.paa.scores is not None
    if dump is not None or paa_dump:
        note = QUERY_DUMP_NOTE if dump is not None else QUERY_DUMP_NOTE.replace("a query dump holds the decoder "
                                                                               "outputs", "a PAA score dump holds the "
                                                                               "per-anchor losses")
        asked = [f for f, on in (("augmentation", augment and bool(config.augmentations)),
                                 (f"--replays {replays}", replays > 1)) if on]
        if asked:
            log.warning("%s dump given: %s ignored (%s)", "query" if dump is not None else "PAA score",
                        " and ".join(asked), note)
        dump_meta = {"augment_requested": augment, "replays_requested": replays, "augment_note": note}
        augment, replays = False, 1

    counter = FrameCounter(config, bands, device, query_dump=dump, quality=options.quality, paa=options.paa,
                           prompts=options.prompts)
    total_frames = min(len(source), options.max_frames or len(source))
    if options.paa is not None and options.paa.scores is not None:
        tokens = list(source.sample_tokens())[:total_frames]
        missing = [t for t in tokens if t not in options.paa.scores.index]
        if missing:
            raise DataError(f"PAA score dump {options.paa.scores.path}: no entry for sample_token {missing[0]!r} "
                            f"({len(missing)} of {len(tokens)} frame(s) to count are missing)")
    if dump is not None:
        tokens = list(source.sample_tokens())[:total_frames]
        missing = counter.tally.missing_tokens(tokens)
        if missing:
            raise DataError(f"query dump {dump.path}: no entry for sample_token {missing[0]!r} ({len(missing)} of "
                            f"{len(tokens)} frame(s) to count are missing; limit the frames with --max-frames)")
    db_record: dict[str, Any] = {}
    replay = make_replay(config, source, seed=options.seed, augment=augment, max_frames=options.max_frames,
                         db_infos=options.db_infos, record=db_record)

    total = total_frames * replays
    resolved = config.to_dict()
    info = source.info
    family = counter.metadata()
    metadata = base_metadata(
        "count",
        config=resolved,
        config_sha256=config_sha256(resolved),
        config_name=config.name,
        config_source=config.source,
        dataset={"kind": info.kind, "dataroot": info.dataroot, "version": info.version, "split": info.split,
                 "num_samples": total_frames},
        class_names=list(config.class_names),
        seed=options.seed,
        replays=replays,
        augment=augment,
        bands={"edges_m": list(bands.edges_m), "names": bands.names,
               "attribution": family["counting"]["band_attribution"]},
        device=str(device),
        iou_percentile_resolution=1.0 / IOU_HIST_BINS,
        **dump_meta,
        **db_record,
        **family,
    )

    # The reports go into a report set's staging folder and appear in out_dir together (assignaudit/report_set.py).
    writer = ReportSetWriter(Path(out_dir), "count").__enter__() if out_dir is not None else None
    stage = writer.dir if writer is not None else None
    write_rows = stage is not None and not only_summary
    objects_buf = _RowBuffer(stage / schema.OBJECTS_FILE if write_rows else None, OBJECTS_SCHEMA, metadata)
    frames_buf = _RowBuffer(stage / schema.FRAMES_FILE if write_rows else None, FRAMES_SCHEMA, metadata)
    counter.objects_buf, counter.frames_buf = objects_buf, frames_buf
    done = 0
    try:
        sharded = _sharding(options, config, bands, device, replay, augment, replays, write_rows, dump, total_frames)
        if sharded is not None:
            from assignaudit.parallel import count_sharded

            spec, workers = sharded
            count_sharded(limited(source.frames(), options.max_frames), counter, spec, objects_buf=objects_buf,
                          frames_buf=frames_buf, workers=workers, shard_frames=options.shard_frames,
                          ray_address=options.ray, flush_every=_FLUSH_EVERY_FRAMES, on_progress=on_progress,
                          total=total)
        for frame in (() if sharded is not None else limited(source.frames(), options.max_frames)):
            for r in range(replays):
                aug = replay.apply(frame, r, augment=augment)
                _ledger_drops(objects_buf, aug, frame, r, counter.class_index)
                done += 1
                if counter.add(aug, r, frame) and counter.num_assigned % _FLUSH_EVERY_FRAMES == 0:
                    objects_buf.flush()
                    frames_buf.flush()
                if on_progress:
                    on_progress(done, total)
        metadata.update(counter.metadata())  # family counters final (e.g. heatmap phantom slots)
        metadata["num_frames_assigned"] = counter.num_assigned
        metadata["num_frames_skipped_empty"] = counter.num_skipped
        summary = counter.summary()
        extra = counter.extra_reports()
        written: list[Path] = []
        if stage is not None:
            for buf in (objects_buf, frames_buf):
                p = buf.finish()
                if p is not None:
                    written.append(p)
            written.append(write_parquet(stage / schema.SUMMARY_FILE, summary, metadata,
                                         schema=counter.summary_schema()))
            if not only_summary:
                for name, (table, table_schema) in extra.items():
                    written.append(write_parquet(stage / name, table, metadata, schema=table_schema))
    except BaseException:
        objects_buf.abort()
        frames_buf.abort()
        if writer is not None:
            writer.__exit__(*sys.exc_info())
        raise
    if writer is not None:
        writer.__exit__(None, None, None)
        written = [writer.final(p) for p in written]
    if counter.num_skipped:
        log.warning("%d frame(s) had no GT left after filtering and were skipped (training resamples them)",
                    counter.num_skipped)
    return CountResult(summary, metadata, written, counter.num_assigned, counter.num_skipped,
                       {name: table for name, (table, _) in extra.items()})


def _sharding(options: CountOptions, config: DetectorConfig, bands: Bands, device: torch.device,
              replay: AugmentationReplay, augment: bool, replays: int, write_rows: bool, dump, total_frames: int):
    """``(ShardSpec, workers)`` when the run is sharded over processes or Ray (assignaudit.parallel), else None."""
    from assignaudit.parallel import ShardSpec, available_cores, resolve_workers

    workers = resolve_workers(options.workers, total_frames, options.shard_frames)
    if options.ray is None and workers <= 1:
        return None
    if dump is not None or device.type != "cpu":
        log.info("counting in one process (%s)", "query dump: float layer sums" if dump is not None else device)
        return None
    # The --quality / --paa / --prompts tallies have no shard merge yet: one process keeps them exact.
    single = [flag for flag, on in (("--quality", options.quality), ("--paa", options.paa),
                                    ("--prompts", options.prompts)) if on is not None]
    if single:
        log.info("counting in one process (%s)", ", ".join(single))
        return None
    threads = max(1, available_cores() // workers) if options.ray is None else 1
    return ShardSpec(config, bands, str(device), replay, augment, replays, write_rows, threads), workers


def _ledger_drops(buf: _RowBuffer, aug: AugmentedFrame, frame: Frame, replay: int,
                  class_index: dict[str, int]) -> None:
    """GT of a config class removed before assignment appear in objects.parquet with the reason."""
    d = aug.dropped
    if buf.path is None or not len(d):
        return
    keep = np.array([r in _LEDGERED_DROPS and c in class_index for r, c in zip(d.reason, d.class_name)], dtype=bool)
    keep &= d.frame_index >= 0
    if not keep.any():
        return
    idx = d.frame_index[keep]
    boxes = np.asarray(frame.boxes_lidar)[idx]
    n = idx.shape[0]
    nan = np.full(n, np.nan)
    buf.append(
        sample_token=np.full(n, frame.sample_token, dtype=object), replay=np.full(n, replay, np.int32),
        ann_token=d.ann_token[keep].astype(object), source=np.full(n, "dataset", dtype=object),
        **{"class": d.class_name[keep].astype(object)},
        x=boxes[:, 0], y=boxes[:, 1], z=boxes[:, 2], dx=boxes[:, 3], dy=boxes[:, 4], dz=boxes[:, 5], yaw=boxes[:, 6],
        dist=nan, band=np.full(n, None, dtype=object), num_lidar_pts=np.asarray(frame.num_lidar_pts)[idx],
        num_pos=np.zeros(n, np.int64), num_forced=np.zeros(n, np.int64), max_iou=nan.astype(np.float32),
        zero_pos_reason=np.array([_LEDGERED_DROPS[r] for r in d.reason[keep]], dtype=object),
    )
