"""`count --config A --compare-config B`: two detector configs over the same frames, per class side by side.

Pipelines (``pipeline``):

* ``"a"`` (default): every frame is replayed ONCE through A's augmentation list (A's seed-derived draws, A's GT
  database, A's point filter and class mapping), with the class and range filters opened up; then each config
  applies its own class set and its own range filter (``point_cloud_range``, ``range_filter`` mode) on top. Both
  assigners therefore see the very same augmented boxes, and a difference in the table is the assigner's (or the
  filters'), never the dice's. With B == A this is exactly ``count --config A``.
* ``"own"``: each config replays its own augmentation list and filters with the same seed (each its own
  database), so differences also include the augmentation's.

Classes are matched by name (frameworks order them differently); a class in only one config has NaN on the other
side. Either config may be of any family (anchor, center, query); a query head is counted without a dump (K per
frame), as the two configs cannot share one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from assignaudit import schema
from assignaudit.augment.filters import class_mask, range_mask
from assignaudit.augment.replay import AugmentedFrame
from assignaudit.config.model import DetectorConfig
from assignaudit.count import CountOptions, FrameCounter, limited, make_replay, resolve_device
from assignaudit.errors import ConfigError
from assignaudit.report import base_metadata, config_sha256, write_parquet
from assignaudit.sources.base import BoxSource

PIPELINES = ("a", "own")
_SIDES = ("a", "b", "diff")

COMPARE_SCHEMA = pa.schema(
    [("class", pa.string()), ("band", pa.string()), ("in_a", pa.bool_()), ("in_b", pa.bool_())]
    + [(f"{m}_{side}", pa.float64()) for m in schema.COMPARE_METRICS for side in _SIDES]
)
if tuple(COMPARE_SCHEMA.names) != schema.COMPARE_COLUMNS:
    raise ImportError("compare_configs.COMPARE_SCHEMA is out of step with schema.COMPARE_COLUMNS")

PIPELINE_NOTES = {
    "a": "frames replayed once through config A's augmentation (same seed); each config applies its own class set "
         "and range filter on top (A's point filter and class mapping apply to both)",
    "own": "each config replays its own augmentation and filters with the same seed",
}


@dataclass
class CompareResult:
    table: pd.DataFrame
    """One row per (class, band), columns ``schema.COMPARE_COLUMNS`` (``<metric>_a``, ``_b``, ``_diff = b - a``)."""
    summary_a: pd.DataFrame
    summary_b: pd.DataFrame
    metadata: dict[str, Any]
    written: list[Path]


def shared_replay_config(a: DetectorConfig, b: DetectorConfig) -> DetectorConfig:
    """A with its class and range filters opened so that B's classes and range survive the shared replay.

    The class list grows by B's extra classes (appended: A's own gt_sampling groups and database entries are
    unchanged, and the replay's draws are keyed by op, not by class) and the range becomes unbounded; each side's
    real filters are applied afterwards (`restrict`).
    """
    extra = tuple(c for c in b.class_names if c not in a.class_names)
    inf = math.inf
    return dataclasses.replace(
        a, class_names=tuple(a.class_names) + extra, point_cloud_range=(-inf, -inf, -inf, inf, inf, inf),
        gt_filters=dataclasses.replace(a.gt_filters, range_filter="pcdet"),
    )


def restrict(aug: AugmentedFrame, config: DetectorConfig) -> AugmentedFrame:
    """The boxes of ``aug`` that ``config``'s class set and range filter keep (a new frame; ``aug`` is unchanged)."""
    keep = class_mask(aug.class_name, config.class_names)
    keep &= range_mask(aug.boxes, config.point_cloud_range, config.gt_filters.range_filter)
    n = aug.boxes.shape[0]
    per_box = {f.name: getattr(aug, f.name) for f in dataclasses.fields(aug)}
    return dataclasses.replace(aug, **{name: v[keep] for name, v in per_box.items()
                                       if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n})


def compare_table(summary_a: pd.DataFrame, summary_b: pd.DataFrame) -> pd.DataFrame:
    """Side-by-side table of two count summaries, matched on (class, band): A's classes in A's order, then B-only
    classes; band order as in the summaries (``all`` last)."""
    metrics = schema.COMPARE_METRICS

    def side(summary: pd.DataFrame) -> pd.DataFrame:
        s = summary.set_index(["class", "band"])
        out = pd.DataFrame(index=s.index)
        for m in metrics:
            if m == "frac_gt_zero_pos":
                gt = s["num_gt"].astype(np.float64)
                out[m] = np.where(gt > 0, s["num_gt_zero_pos"] / gt.where(gt > 0, 1.0), np.nan)
            else:
                out[m] = s[m].astype(np.float64)
        return out

    a, b = side(summary_a), side(summary_b)
    classes = list(dict.fromkeys(list(summary_a["class"]) + list(summary_b["class"])))
    bands = list(dict.fromkeys(list(summary_a["band"]) + list(summary_b["band"])))
    index = pd.MultiIndex.from_product([classes, bands], names=["class", "band"])
    a, b = a.reindex(index), b.reindex(index)
    cols: dict[str, Any] = {
        "class": index.get_level_values(0).astype(object), "band": index.get_level_values(1).astype(object),
        "in_a": np.isin(index.get_level_values(0), summary_a["class"].unique()),
        "in_b": np.isin(index.get_level_values(0), summary_b["class"].unique()),
    }
    for m in metrics:
        cols[f"{m}_a"] = a[m].to_numpy()
        cols[f"{m}_b"] = b[m].to_numpy()
        cols[f"{m}_diff"] = b[m].to_numpy() - a[m].to_numpy()
    return pd.DataFrame(cols, columns=list(schema.COMPARE_COLUMNS))


def _describe(config: DetectorConfig) -> dict[str, Any]:
    resolved = config.to_dict()
    return {"name": config.name, "source": config.source, "sha256": config_sha256(resolved), "head": config.head,
            "framework": config.framework, "class_names": list(config.class_names)}


def run_compare(
    config_a: DetectorConfig,
    config_b: DetectorConfig,
    source: BoxSource,
    options: CountOptions,
    out_dir: Path | None = None,
    *,
    pipeline: str = "a",
    on_progress: Callable[[int, int], None] | None = None,
) -> CompareResult:
    """Count ``config_a`` and ``config_b`` over the same frames (module docstring) and write ``compare.parquet``
    into ``out_dir`` (None: compute only)."""
    if pipeline not in PIPELINES:
        raise ConfigError(f"--compare-pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
    device = resolve_device(options.device)
    bands = options.bands
    counters = (FrameCounter(config_a, bands, device), FrameCounter(config_b, bands, device))
    kw = dict(seed=options.seed, augment=options.augment, max_frames=options.max_frames)
    if pipeline == "a":
        shared = make_replay(shared_replay_config(config_a, config_b), source, check=(config_a, config_b), **kw)
        replays = (shared,)
    else:
        replays = (make_replay(config_a, source, **kw), make_replay(config_b, source, **kw))

    total = min(len(source), options.max_frames or len(source)) * options.replays
    done = 0
    for frame in limited(source.frames(), options.max_frames):
        for r in range(options.replays):
            if pipeline == "a":
                aug = replays[0].apply(frame, r, augment=options.augment)
                for counter in counters:
                    counter.add(restrict(aug, counter.config), r)
            else:
                for counter, replay in zip(counters, replays):
                    counter.add(replay.apply(frame, r, augment=options.augment), r)
            done += 1
            if on_progress:
                on_progress(done, total)

    summary_a, summary_b = counters[0].summary(), counters[1].summary()
    table = compare_table(summary_a, summary_b)
    info = source.info
    metadata = base_metadata(
        "compare",
        config_a=_describe(config_a),
        config_b=_describe(config_b),
        configs={"a": config_a.to_dict(), "b": config_b.to_dict()},
        pipeline=pipeline,
        pipeline_note=PIPELINE_NOTES[pipeline],
        dataset={"kind": info.kind, "dataroot": info.dataroot, "version": info.version, "split": info.split,
                 "num_samples": total // options.replays},
        seed=options.seed,
        replays=options.replays,
        augment=options.augment,
        bands={"edges_m": list(bands.edges_m), "names": bands.names},
        device=str(device),
        counting={"a": counters[0].metadata()["counting"], "b": counters[1].metadata()["counting"]},
        num_frames_assigned={"a": counters[0].num_assigned, "b": counters[1].num_assigned},
        num_frames_skipped_empty={"a": counters[0].num_skipped, "b": counters[1].num_skipped},
        diff="B - A",
    )
    written: list[Path] = []
    if out_dir is not None:
        written.append(write_parquet(Path(out_dir) / schema.COMPARE_FILE, table, metadata, schema=COMPARE_SCHEMA))
    return CompareResult(table, summary_a, summary_b, metadata, written)
