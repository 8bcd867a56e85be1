"""`assignaudit yaw` end to end: resolve inputs, load, analyse, and write the reports with provenance metadata."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa

from assignaudit.errors import ConfigError
from assignaudit.report import base_metadata, config_sha256, write_parquet
from assignaudit.schema import (
    NMS_SWEEP_FILE, PREDICTIONS_COLUMNS, PREDICTIONS_EXTRA_COLUMNS, PREDICTIONS_FILE, YAW_HIST_FILE, YAW_SUMMARY_FILE,
)
from assignaudit.yaw.analysis import EvalData, YawOptions, YawTables, analyse
from assignaudit.yaw.nms import NmsSettings
from assignaudit.yaw.predictions import load_predictions

FIXTURE_PREDICTIONS = "fixture_predictions.json"


def bundled_predictions_path() -> Path:
    """The predictions file shipped for the bundled nuScenes fixture (fixtures/make_predictions.py writes it)."""
    return Path(str(resources.files("assignaudit") / "data" / "predictions" / FIXTURE_PREDICTIONS))


@dataclass(frozen=True)
class NmsOverrides:
    """NMS options as typed on the command line (None: take the detector config's value, else our default)."""

    nms_type: str | None = None
    thresh: float | None = None
    circle_radius_sq: float | None = None
    class_agnostic: bool | None = None
    pre_max: int | None = None
    post_max: int | None = None
    score_thresh: float | None = None


def resolve_nms(overrides: NmsOverrides, config=None) -> NmsSettings:
    """Command line > detector config ``post_processing`` > `NmsSettings` defaults.

    From a config: ``nms_gpu`` -> rotate, ``circle`` -> circle; ``multi_classes_nms: False`` (OpenPCDet's default)
    means class-agnostic; ``circle_min_radius_sq`` must hold one value (or equal values) unless
    ``--circle-radius-sq`` is given, because the task grouping of classes is not ours to guess.
    """
    base: dict[str, Any] = {}
    if config is not None:
        pp = config.post_processing
        base["nms_type"] = "circle" if pp.nms_type == "circle" else "rotate"
        base["thresh"] = float(pp.nms_thresh)
        base["class_agnostic"] = not pp.multi_classes_nms
        base["pre_max"] = pp.nms_pre_maxsize
        base["post_max"] = pp.nms_post_maxsize
        base["score_thresh"] = float(pp.score_thresh)
        if pp.nms_not_reproduced and None in (overrides.thresh, overrides.pre_max, overrides.post_max):
            raise ConfigError(f"config {config.source}: {pp.nms_not_reproduced}; give --nms-thresh, --nms-pre-max "
                              "and --nms-post-max")
        if len(set(pp.nms_thresh_per_class)) > 1 and overrides.thresh is None:
            raise ConfigError(f"config {config.source} has per-class NMS thresholds {list(pp.nms_thresh_per_class)} "
                              "(class_specific_nms); give one with --nms-thresh")
        # mmdet3d's per-class NMS (box3d_multiclass_nms) caps max_num over all classes together
        # (class_specific_nms-style heads cap each class)
        base["post_max_per_class"] = bool(pp.nms_thresh_per_class) or \
            not (pp.multi_classes_nms and getattr(config, "framework", "pcdet") == "mmdet3d")
        radii = set(pp.circle_min_radius_sq)
        if len(radii) == 1:
            base["circle_radius_sq"] = float(next(iter(radii)))
        elif len(radii) > 1 and overrides.circle_radius_sq is None and \
                (overrides.nms_type or base["nms_type"]) == "circle":
            raise ConfigError(f"config {config.source} has per-task circle radii {sorted(radii)}; "
                              "give one with --circle-radius-sq")
    for f in dataclasses.fields(overrides):
        v = getattr(overrides, f.name)
        if v is not None:
            base[f.name] = v
    return NmsSettings(**base)


@dataclass(frozen=True)
class YawReport:
    tables: YawTables
    data: EvalData
    metadata: dict[str, Any]
    source_info: Any = None
    options: YawOptions = field(default_factory=YawOptions)


def run_yaw(predictions: Path | None = None, *, dataroot: Path | None = None, version: str | None = None,
            split: str | None = None, boxes: Path | None = None, nusc_filters: bool = False,
            options: YawOptions = YawOptions(), config_spec: str | None = None, config=None,
            sources=None) -> YawReport:
    """Load GT and predictions, run `analyse`, and build the report metadata.

    ``predictions`` None: the bundled fixture predictions, allowed only with the bundled fixture GT.
    ``config``: an already loaded `DetectorConfig` (recorded with its sha256); ``config_spec`` its name/path.
    ``sources``: the CLI's `assignaudit.cli.app.SourceArgs` (every source kind); when given it replaces
    ``dataroot``/``version``/``split``/``boxes``.
    """
    from assignaudit.sources.open import open_source

    if sources is not None:
        dataroot, version, split, boxes = sources.dataroot, sources.version, sources.split, sources.boxes
        other = sources.infos or sources.data_path or sources.kitti_root or sources.av2_root
    else:
        other = None
    from assignaudit.yaw.prepare import build_eval_data

    if predictions is None:
        if dataroot is not None or boxes is not None or other:
            raise ConfigError("--predictions is required with a dataset source (--dataroot, --boxes, --infos, "
                              "--data-path, --kitti-root, --av2-root): the bundled predictions only fit the bundled "
                              "fixture")
        predictions = bundled_predictions_path()
    # The prediction file first: a malformed submission fails fast, before the dataset is loaded.
    preds = load_predictions(Path(predictions))
    source = sources.open(config) if sources is not None else \
        open_source(dataroot=dataroot, version=version, split=split, boxes=boxes)
    nusc = getattr(source, "nusc", None)
    dataset_tokens = {s["token"] for s in nusc.sample} if nusc is not None else None
    if dataset_tokens is None and hasattr(source, "dataset_tokens"):  # e.g. KITTI: every labelled frame id
        dataset_tokens = source.dataset_tokens()
    frames = list(source.frames())
    if hasattr(preds, "to_lidar"):  # camera-frame predictions (KITTI txt, mmdet3d KITTI pkl): the frames' calibration
        preds = preds.to_lidar(frames)
    info = source.info
    if nusc is not None and not nusc_filters:
        # Without the devkit filters only the annotations' global poses are read: keep those, let the devkit's
        # tables go before the evaluation arrays are built (val scale: ~0.5 GB less at that peak).
        nusc = _AnnotationPoses(nusc, frames)
        frames = _fresh_frames(frames)
        source = None
        release_memory()
    data = build_eval_data(frames, preds, nusc=nusc, nusc_filters=nusc_filters, dataset_tokens=dataset_tokens)
    pred_file = {"predictions_sha256": preds.sha256, "predictions_format": preds.kind,
                 "num_predictions_in_file": len(preds)}
    # Neither the file's columns nor the dataset (the devkit tables) are needed past here: val scale, ~800 MB less
    # at the analysis peak.
    del preds, source, nusc, frames, dataset_tokens
    release_memory()
    tables = analyse(data, options)

    opts = _options_dict(options)
    opts["nusc_filters"] = nusc_filters
    fields: dict[str, Any] = {
        "dataset_kind": info.kind, "dataroot": info.dataroot, "dataset_version": info.version, "split": info.split,
        "num_samples": info.num_samples,
        "predictions_file": str(predictions), **pred_file, "num_predictions_evaluated": int(len(data.preds.score)),
        "num_gt_evaluated": int(len(data.gt.sample)), "dropped": data.dropped, "eval_frame": data.eval_frame,
        "options": opts, "band_edges_m": list(options.bands.edges_m),
        "aoe_nusc": {k: (None if v != v else v) for k, v in tables.aoe_nusc.items()},
    }
    if config is not None:
        resolved = config.to_dict()
        fields.update({"config": config_spec or config.source, "config_sha256": config_sha256(resolved),
                       "resolved_config": resolved})
    meta = base_metadata("yaw", **fields)
    return YawReport(tables=tables, data=data, metadata=meta, source_info=info, options=options)


class _AnnotationPoses:
    """``nusc.get("sample_annotation", token)`` for the frames' annotations, with only the ``translation`` and
    ``rotation`` fields (what `build_eval_data` reads without ``--nusc-filters``), as float64 arrays."""

    def __init__(self, nusc, frames) -> None:
        import numpy as np

        tokens = [t for f in frames for t in f.ann_token if t is not None]
        self._row = {t: i for i, t in enumerate(tokens)}
        recs = [nusc.get("sample_annotation", t) for t in tokens]
        self._translation = np.array([r["translation"] for r in recs], dtype=np.float64).reshape(-1, 3)
        self._rotation = np.array([r["rotation"] for r in recs], dtype=np.float64).reshape(-1, 4)

    def get(self, table: str, token: str) -> dict:
        assert table == "sample_annotation", table
        i = self._row[token]
        return {"translation": self._translation[i], "rotation": self._rotation[i]}


def _fresh_frames(frames: list) -> list:
    """The frames with their strings and arrays re-created (equal values). The originals were made while the devkit's
    tables were being built; kept alive, a few of their small objects in each of the allocator's arenas would pin the
    devkit's freed memory (val scale: ~0.3 GB)."""
    import numpy as np

    cache: dict = {}

    def fresh(x):
        if type(x) is not str:
            return x
        y = cache.get(x)
        if y is None:
            y = cache[x] = x.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
        return y

    def copy(v):
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                out = np.empty(v.shape, dtype=object)
                out.reshape(-1)[:] = [fresh(x) for x in v.reshape(-1).tolist()]
                return out
            return v.copy()
        return fresh(v)

    out = [dataclasses.replace(f, **{k.name: copy(getattr(f, k.name)) for k in dataclasses.fields(f)
                                     if k.name != "extra"}) for f in frames]
    frames.clear()
    return out


def release_memory() -> None:
    """Collect cycles and hand freed heap pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere), so the
    next stage's peak does not sit on top of the previous stage's garbage."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _options_dict(options: YawOptions) -> dict[str, Any]:
    d = dataclasses.asdict(options)
    d["bands"] = list(options.bands.edges_m)
    d["match_threshold"] = options.threshold
    return json.loads(json.dumps(d, default=str))


PREDICTIONS_ROW_GROUP = 262_144
"""Rows per Parquet row group of ``predictions.parquet``: the table is streamed one row group at a time."""

PREDICTIONS_SCHEMA = pa.schema(
    [("sample_token", pa.large_string()), ("index", pa.int64()), ("class", pa.large_string()),
     *[(k, pa.float64()) for k in ("score", "x", "y", "z", "dx", "dy", "dz", "yaw")],
     ("matched_ann_token", pa.large_string()), ("center_dist", pa.float64()), ("yaw_residual", pa.float64()),
     *[(k, pa.bool_()) for k in ("is_flip", "is_duplicate", "kept_by_nms", "is_duplicate_gt")],
     ("band", pa.large_string())])
"""The Arrow schema of ``predictions.parquet`` (what pandas' string columns convert to)."""


def write_predictions(path: Path, columns, metadata: dict[str, Any],
                      rows_per_group: int | None = None) -> Path:
    """``predictions.parquet`` from `analysis.PredictionColumns`, atomically, one row group of
    ``rows_per_group`` (default `PREDICTIONS_ROW_GROUP`) rows built and written at a time."""
    import pyarrow.parquet as pq

    from assignaudit.errors import ReportError
    from assignaudit.report import METADATA_KEY, atomic_target, fault

    assert list(PREDICTIONS_SCHEMA.names) == list(PREDICTIONS_COLUMNS) + list(PREDICTIONS_EXTRA_COLUMNS)
    rows = PREDICTIONS_ROW_GROUP if rows_per_group is None else int(rows_per_group)
    meta = {METADATA_KEY.encode(): json.dumps(metadata, sort_keys=True, default=str).encode()}
    schema = PREDICTIONS_SCHEMA.with_metadata(meta)
    path = Path(path)
    try:
        with atomic_target(path) as tmp:
            fault("write")
            with pq.ParquetWriter(tmp, schema) as w:
                if len(columns) == 0:
                    w.write_table(schema.empty_table())
                for batch in columns.arrow_batches(schema, rows):
                    w.write_table(batch, row_group_size=rows)
    except OSError as err:
        raise ReportError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def write_yaw_reports(report: YawReport, out_dir: Path, plot: Path | None = None) -> list[Path]:
    """Write yaw_summary, yaw_hist, predictions (and nms_sweep when present) into ``out_dir`` as one report set
    (`assignaudit.report_set`). ``plot``: a PNG path; when it lies in ``out_dir`` it is written as part of the set."""
    import os

    from assignaudit.report_set import ReportSetWriter

    out_dir = Path(out_dir)
    with ReportSetWriter(out_dir, "yaw") as rs:
        stage = rs.dir
        written = [
            write_parquet(stage / YAW_SUMMARY_FILE, report.tables.summary, {**report.metadata, "report": "summary"}),
            write_parquet(stage / YAW_HIST_FILE, report.tables.hist, {**report.metadata, "report": "hist"}),
            write_predictions(stage / PREDICTIONS_FILE, report.tables.columns,
                              {**report.metadata, "report": "predictions"}),
        ]
        if report.tables.nms_sweep is not None:
            written.append(write_parquet(stage / NMS_SWEEP_FILE, report.tables.nms_sweep,
                                         {**report.metadata, "report": "nms_sweep"}))
        if plot is not None and os.path.dirname(os.path.abspath(plot)) == os.path.abspath(out_dir):
            from assignaudit.yaw.render import plot_png

            written.append(plot_png(report, stage / Path(plot).name))
    return [rs.final(p) for p in written]
