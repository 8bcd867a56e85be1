"""Load two report sets, refuse apples-to-pears comparisons, align the (class, band) cells and judge every rule.

A report set is a `count` output directory (``summary.parquet``, optionally ``yaw_summary.parquet`` from `yaw`)
or a single summary file. The gate reads only the summaries: they are small enough to commit as a baseline.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from assignaudit import schema
from assignaudit.bands import ALL_BANDS
from assignaudit.errors import ReportError
from assignaudit.gate.policy import Policy
from assignaudit.gate.rules import (
    RULES, SUMMARY_METRICS, YAW_METRICS, RuleKind, RuleSpec, Status, Thresholds, Verdict, format_threshold,
    format_value, judge,
)
from assignaudit.report import SCHEMA_VERSION, read_report

SUMMARY: Final = "summary"
YAW: Final = "yaw"

# Report kind (as the `kind` metadata field says) -> which summary file it is, its file name and columns.
_KINDS: Final = {
    SUMMARY: ("count", schema.SUMMARY_FILE, schema.SUMMARY_COLUMNS),
    YAW: ("yaw", schema.YAW_SUMMARY_FILE, schema.YAW_SUMMARY_COLUMNS),
}
_NUMERIC: Final = {
    SUMMARY: ("num_gt", "num_pos", "num_neg", "num_ignore", "num_gt_zero_pos"),
    YAW: ("num_pred", "num_matched"),
}
_NUMERIC_NAN_OK: Final = {SUMMARY: ("pos_per_gt",), YAW: ("flip_rate", "aoe_nusc", "dup_rate_post_nms")}

# Provenance fields: a display name -> the dotted metadata paths that may hold it (count nests the dataset and band
# edges; yaw writes them flat). REQUIRED must agree unless --allow-mismatch: they define what was counted. SHOWN are
# displayed only: a changed config (or prediction file) is the very thing the gate exists to judge, and the dataroot
# differs between a laptop and a CI runner.
REQUIRED_FIELDS: Final = {
    "dataset.kind": ("dataset.kind", "dataset_kind"),
    "dataset.version": ("dataset.version", "dataset_version"),
    "dataset.split": ("dataset.split", "split"),
    "dataset.num_samples": ("dataset.num_samples", "num_samples"),
    "seed": ("seed",),
    "replays": ("replays",),
    "class_names": ("class_names",),
    # only the edges: count also stores band names and an explanatory sentence that may be reworded
    "bands": ("bands.edges_m", "band_edges_m", "bands"),
}
SHOWN_FIELDS: Final = {
    "config_sha256": ("config_sha256",),
    "config_name": ("config_name", "config.name"),
    "config_source": ("config_source", "config.source", "config"),
    "predictions_sha256": ("predictions_sha256",),
    "dataset.dataroot": ("dataset.dataroot", "dataroot"),
    "augment": ("augment",),
    "device": ("device",),
    "tool_version": ("tool_version",),
    "torch_version": ("torch_version",),
}


@dataclass(frozen=True, eq=False)
class ReportFile:
    """One validated summary file: ``table`` has the schema's columns, unique (class, band) rows."""

    path: Path
    kind: str
    """``"summary"`` or ``"yaw"``."""
    table: pd.DataFrame
    metadata: dict[str, Any]


@dataclass(frozen=True)
class FieldCheck:
    """One provenance field of one report kind, as the two sides recorded it (None: not recorded)."""

    report: str
    field: str
    baseline: Any
    current: Any
    required: bool

    @property
    def matches(self) -> bool:
        return _canonical(self.baseline) == _canonical(self.current)


@dataclass(frozen=True)
class GateResult:
    """Everything the gate decided. ``verdicts`` are ordered violations first, then report, class, band, metric."""

    baseline: str
    current: str
    verdicts: tuple[Verdict, ...]
    provenance: tuple[FieldCheck, ...]
    notes: tuple[str, ...] = ()
    policy_source: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    """The global thresholds in force (policy rules and flags; overrides are per cell)."""

    @property
    def violations(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.status is Status.FAIL)

    @property
    def passed(self) -> bool:
        return not self.violations

    def count(self, status: Status) -> int:
        return sum(v.status is status for v in self.verdicts)


# ------------------------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _get(meta: dict[str, Any], *paths: str) -> Any:
    """The first of the dotted ``paths`` present in ``meta`` with a scalar or list value (None if none is)."""
    for dotted in paths:
        node: Any = meta
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                node = None
                break
            node = node[part]
        if node is not None and not isinstance(node, dict):
            return node
    return None


def read_summary_file(path: Path, expect: str | None = None) -> ReportFile:
    """Read and validate one summary file (``summary.parquet`` or ``yaw_summary.parquet``).

    ``expect`` forces the kind (``"summary"``/``"yaw"``); otherwise the ``kind`` metadata decides.
    Raises `ReportError` (one line naming the file) when it is missing, not Parquet, not ours, of another
    schema version, misses columns, has non-numeric counts or duplicated (class, band) rows.
    """
    path = Path(path)
    df, meta = read_report(path)
    meta_kind = meta.get("kind")
    kind = expect
    if kind is None:
        kind = next((k for k, (mk, _, _) in _KINDS.items() if mk == meta_kind), None)
        if kind is None:
            raise ReportError(f"{path}: an assignaudit report of kind {meta_kind!r}, not a count or yaw summary")
    want_kind, _, columns = _KINDS[kind]
    if meta_kind != want_kind:
        raise ReportError(f"{path}: expected a {want_kind!r} report, the metadata says {meta_kind!r}")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ReportError(f"{path}: report schema version {meta.get('schema_version')!r}, this assignaudit reads "
                          f"{SCHEMA_VERSION} (rerun the report with this version)")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: not a {want_kind} summary, missing columns: {', '.join(missing)}")
    for col in _NUMERIC[kind]:
        values = pd.to_numeric(df[col], errors="coerce")
        if values.isna().any() or (values < 0).any():
            raise ReportError(f"{path}: column {col!r} must hold counts >= 0 (found a missing, negative or "
                              f"non-numeric value)")
    for col in _NUMERIC_NAN_OK[kind]:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise ReportError(f"{path}: column {col!r} must be numeric, found dtype {df[col].dtype}")
    df = df.assign(**{"class": df["class"].astype(str), "band": df["band"].astype(str)})
    dup = df.duplicated(["class", "band"])
    if dup.any():
        row = df.loc[dup].iloc[0]
        raise ReportError(f"{path}: duplicated row for class {row['class']!r}, band {row['band']!r}")
    return ReportFile(path=path, kind=kind, table=df, metadata=meta)


@dataclass(frozen=True, eq=False)
class ReportSet:
    location: Path
    files: dict[str, ReportFile]
    """``"summary"``/``"yaw"`` -> the file; at least one entry."""


def load_report_set(path: Path) -> ReportSet:
    """A report directory (its summary files) or one summary file; `ReportError` when there is nothing to read."""
    from assignaudit.report_set import verify_folder

    path = Path(path)
    if path.is_dir():
        # a summary the manifest lists is missing: an incomplete or mixed set (a yaw gate must not silently vanish)
        verify_folder(path, tuple(name for _, name, _ in _KINDS.values()))
        files = {kind: read_summary_file(path / name, expect=kind)
                 for kind, (_, name, _) in _KINDS.items() if (path / name).is_file()}
        if not files:
            names = " or ".join(name for _, name, _ in _KINDS.values())
            raise ReportError(f"no {names} in report directory {path}")
        return ReportSet(location=path, files=files)
    if not path.exists():
        raise ReportError(f"report not found: {path}")
    report = read_summary_file(path)
    return ReportSet(location=path, files={report.kind: report})


# ------------------------------------------------------------------------------------------------------------------
# Provenance
# ------------------------------------------------------------------------------------------------------------------


def check_provenance(report: str, base_meta: dict[str, Any], cur_meta: dict[str, Any],
                     allow_mismatch: bool) -> tuple[tuple[FieldCheck, ...], tuple[str, ...]]:
    """Field checks for one report kind, and notes; `ReportError` on a required mismatch unless allowed.

    Fields recorded on neither side are left out (a yaw report records no seed, for instance).
    """
    checks = []
    for name, paths in (REQUIRED_FIELDS | SHOWN_FIELDS).items():
        b, c = _get(base_meta, *paths), _get(cur_meta, *paths)
        if b is None and c is None:
            continue
        checks.append(FieldCheck(report, name, b, c, required=name in REQUIRED_FIELDS))
    bad = [ch for ch in checks if ch.required and not ch.matches]
    notes = []
    if bad:
        what = "; ".join(f"{ch.field} (baseline {_short(ch.baseline)}, current {_short(ch.current)})" for ch in bad)
        if not allow_mismatch:
            raise ReportError(f"the {report} reports were made differently: {what}; pass --allow-mismatch to "
                              f"compare anyway")
        notes.append(f"{report}: compared despite differing {what} (--allow-mismatch)")
    return tuple(checks), tuple(notes)


def _short(value: Any, limit: int = 60) -> str:
    text = _canonical(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------------------------------
# Cells
# ------------------------------------------------------------------------------------------------------------------


def band_sort_key(band: str) -> float:
    """``"0-20"`` -> 0, ``"50+"`` -> 50, ``"all"`` -> inf (last); unknown names sort after the numeric bands."""
    if band == ALL_BANDS:
        return math.inf
    head = band.split("-")[0].rstrip("+")
    try:
        return float(head)
    except ValueError:
        return 1e300


def _with_all_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Summary rows for band ``all`` synthesised from the band rows where a class has none (sums of counts)."""
    has_all = set(df.loc[df["band"] == ALL_BANDS, "class"])
    band_rows = df[(df["band"] != ALL_BANDS) & ~df["class"].isin(has_all)]
    if band_rows.empty:
        return df
    counts = ["num_gt", "num_pos", "num_neg", "num_ignore", "num_forced", "num_gt_zero_pos"]
    sums = band_rows.groupby("class", sort=False)[counts].sum().reset_index()
    sums["band"] = ALL_BANDS
    sums["pos_per_gt"] = np.where(sums["num_gt"] > 0, sums["num_pos"] / sums["num_gt"].where(sums["num_gt"] > 0, 1),
                                  np.nan)
    return pd.concat([df, sums], ignore_index=True)


def _metric_table(report: ReportFile) -> pd.DataFrame:
    """``class, band`` + the compared metrics as float64 (NaN where undefined)."""
    df = report.table
    if report.kind == SUMMARY:
        df = _with_all_rows(df)
        num_pos = df["num_pos"].astype(np.float64)
        safe = num_pos.where(num_pos > 0)
        out = pd.DataFrame({
            "class": df["class"], "band": df["band"],
            "num_gt": df["num_gt"].astype(np.float64),
            "num_pos": num_pos,
            "pos_per_gt": df["pos_per_gt"].astype(np.float64),
            "num_gt_zero_pos": df["num_gt_zero_pos"].astype(np.float64),
            # Ratios per positive anchor: the class balance a loss sees (a fraction of all anchors would sit at
            # 0.999 and hide any change).
            "neg_per_pos": df["num_neg"].astype(np.float64) / safe,
            "ignore_per_pos": df["num_ignore"].astype(np.float64) / safe,
        })
    else:
        out = pd.DataFrame({"class": df["class"], "band": df["band"]})
        for col in ("num_pred", "num_matched", "flip_rate", "aoe_nusc", "dup_rate_post_nms"):
            out[col] = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
        # dup_rate_post_nms is per prediction kept by NMS; older yaw summaries lack that count, num_pred bounds it.
        kept = "num_kept_nms" if "num_kept_nms" in df.columns else "num_pred"
        out["num_kept_nms"] = pd.to_numeric(df[kept], errors="coerce").astype(np.float64)
    return out.reset_index(drop=True)


# Values a (class, band) row absent from one side stands for, when the class is in both reports: nothing counted.
_ABSENT_ROW: Final = {
    SUMMARY: {"num_gt": 0.0, "num_pos": 0.0, "num_gt_zero_pos": 0.0},
    YAW: {"num_pred": 0.0, "num_matched": 0.0},
}


def align(kind: str, base: ReportFile | None, cur: ReportFile, classes: list[str],
          common_bands_only: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Outer-join the two sides on (class, band) over ``classes``: columns ``<metric>_b`` and ``<metric>_c``.

    A row present on one side only (the report writer may skip empty cells) counts as zeros on the other.
    ``common_bands_only`` (the band edges differ, --allow-mismatch) keeps only band names both sides have instead.
    ``base`` None (no baseline report of this kind) leaves every baseline value NaN.
    """
    notes = []
    cur_t = _metric_table(cur)
    cur_t = cur_t[cur_t["class"].isin(classes)]
    if base is None:
        base_t = cur_t.assign(**{c: np.nan for c in cur_t.columns if c not in ("class", "band")})
    else:
        base_t = _metric_table(base)
        base_t = base_t[base_t["class"].isin(classes)]
    if common_bands_only and base is not None:
        common = set(base_t["band"]) & set(cur_t["band"])
        dropped = sorted(set(base_t["band"]) ^ set(cur_t["band"]), key=lambda b: (band_sort_key(b), b))
        if dropped:
            notes.append(f"{kind}: bands in one report only, not compared: {', '.join(dropped)}")
        base_t, cur_t = base_t[base_t["band"].isin(common)], cur_t[cur_t["band"].isin(common)]
    merged = base_t.merge(cur_t, on=["class", "band"], how="outer", suffixes=("_b", "_c"), indicator=True)
    if base is not None:
        for side, suffix, label in (("left_only", "_c", "current"), ("right_only", "_b", "baseline")):
            sel = merged["_merge"] == side
            if sel.any():
                cells = ", ".join(f"{c} {b}" for c, b in merged.loc[sel, ["class", "band"]].itertuples(index=False))
                notes.append(f"{kind}: no {label} row for {cells}; counted as zero")
                for col, value in _ABSENT_ROW[kind].items():
                    merged.loc[sel, col + suffix] = value
    order = {c: i for i, c in enumerate(classes)}
    merged = merged.drop(columns="_merge").assign(
        _c=merged["class"].map(order), _b=merged["band"].map(band_sort_key)
    ).sort_values(["_c", "_b", "band"], kind="stable").drop(columns=["_c", "_b"]).reset_index(drop=True)
    return merged, notes


# ------------------------------------------------------------------------------------------------------------------
# Judging
# ------------------------------------------------------------------------------------------------------------------


def _message(spec: RuleSpec, cls: str, band: str, b: float | None, c: float | None, thr: float, status: Status,
             reason: str, th: Thresholds) -> str:
    where = f"{cls} [{band}]"
    change = f"{format_value(spec.metric, b)} -> {format_value(spec.metric, c)}"
    if b and c is not None:
        change += f" ({100 * (c - b) / b:+.1f}%)"
    limit = format_threshold(spec.name, thr)
    if spec.kind is RuleKind.ZERO_CLASS:  # here ``b`` is the current GT count, not a baseline
        if status is Status.SKIP:
            return f"{where} {spec.name}: not judged, {reason}"
        verb = "FAIL" if status is Status.FAIL else "ok"
        return f"{where} {spec.name}: {verb}, {format_value('num_pos', c)} positives for {format_value('num_gt', b)} GT"
    if status is Status.SKIP:
        return f"{where} {spec.name}: not judged, {reason} ({spec.metric} {change})"
    extra = f", tie tolerance {th.tie_tolerance}" if spec.kind is RuleKind.REL_DROP else ""
    if status is Status.FAIL:
        return f"{where} {spec.name}: {spec.label}, {spec.metric} {change}; limit {limit}{extra}"
    return f"{where} {spec.name}: ok, {spec.metric} {change}; limit {limit}{extra}"


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def judge_cells(kind: str, cells: pd.DataFrame, policy: Policy) -> list[Verdict]:
    """Every rule of ``kind`` on every aligned cell, plus an INFO verdict for each compared metric no rule judged.

    Returned in the cells' order (class, band), then metric, then rule.
    """
    keys = list(zip(cells["class"], cells["band"]))
    per_cell = {key: policy.thresholds_for(*key) for key in set(keys)}
    th = [per_cell[key] for key in keys]
    keyed: list[tuple[tuple[int, int, int], Verdict]] = []  # (cell, metric, rule) order -> verdict
    metrics = SUMMARY_METRICS if kind == SUMMARY else YAW_METRICS
    metric_rank = {m: j for j, m in enumerate(metrics)}
    judged: set[tuple[int, str]] = set()

    def col(name: str, side: str) -> np.ndarray:
        full = f"{name}_{side}"
        return cells[full].to_numpy(np.float64) if full in cells else np.full(len(cells), np.nan)

    for rule_rank, spec in enumerate(RULES):
        if spec.source != kind:
            continue
        if spec.kind is RuleKind.ZERO_CLASS:
            thr = np.array([1.0 if t.fail_on_zero_pos_class else np.nan for t in th])
            thr[cells["band"].to_numpy() != ALL_BANDS] = np.nan  # a class-level rule: its `all` row only
        else:
            thr = np.array([np.nan if getattr(t, spec.name) is None else float(getattr(t, spec.name)) for t in th])
        count = spec.count_column
        res = judge(
            spec,
            baseline=col(spec.metric, "b"), current=col(spec.metric, "c"), threshold=thr,
            min_count=np.array([float(t.min_count) for t in th]),
            tie_tolerance=np.array([float(t.tie_tolerance) for t in th]),
            count_baseline=col(count, "b") if count else np.full(len(cells), np.nan),
            count_current=col(count, "c") if count else np.full(len(cells), np.nan),
            gt_current=col("num_gt", "c"),
        )
        b_vals, c_vals = col(spec.metric, "b"), col(spec.metric, "c")
        gt_vals = col("num_gt", "c")
        # A metric undefined on both sides (AOE exists only in the `all` row; a rate with no predictions) is not
        # applicable: the cell is shown as INFO rather than reported as a skipped test.
        applicable = ~np.isnan(thr) & ~(np.isnan(b_vals) & np.isnan(c_vals))
        for i in np.flatnonzero(applicable):
            cls, band = keys[i]
            b, c = _nan_to_none(b_vals[i]), _nan_to_none(c_vals[i])
            if spec.kind is RuleKind.ZERO_CLASS:
                b = _nan_to_none(gt_vals[i])  # the message reads "N positives for M GT"
            status = res.status[i]
            keyed.append(((i, metric_rank[spec.metric], rule_rank), Verdict(
                report=kind, rule=spec.name, metric=spec.metric, class_name=cls, band=band,
                baseline=_nan_to_none(b_vals[i]), current=c,
                delta=None if np.isnan(b_vals[i]) or c is None else c - float(b_vals[i]),
                threshold=float(thr[i]), status=status,
                message=_message(spec, cls, band, b, c, float(thr[i]), status, res.reason[i], th[i]),
            )))
            judged.add((i, spec.metric))
    for metric in metrics:
        b_vals, c_vals = col(metric, "b"), col(metric, "c")
        for i, (cls, band) in enumerate(keys):
            if (i, metric) in judged:
                continue
            b, c = _nan_to_none(b_vals[i]), _nan_to_none(c_vals[i])
            keyed.append(((i, metric_rank[metric], -1), Verdict(
                report=kind, rule=None, metric=metric, class_name=cls, band=band, baseline=b, current=c,
                delta=None if b is None or c is None else c - b, threshold=None, status=Status.INFO,
                message=f"{cls} [{band}] {metric}: {format_value(metric, b)} -> {format_value(metric, c)}",
            )))
    return [v for _, v in sorted(keyed, key=lambda kv: kv[0])]


def run_gate(baseline: Path, current: Path, policy: Policy | None = None, allow_mismatch: bool = False) -> GateResult:
    """Compare two report sets under ``policy`` (default: built-in thresholds).

    Raises `ReportError` for unreadable/foreign reports and, unless ``allow_mismatch``, for reports made from
    different data (dataset, split, seed, replays, class list, bands); `ConfigError` for a policy override naming
    a class or band the reports do not have.
    """
    policy = policy or Policy()
    base_set, cur_set = load_report_set(baseline), load_report_set(current)
    verdicts: list[Verdict] = []
    provenance: list[FieldCheck] = []
    notes: list[str] = []
    all_classes: set[str] = set()
    all_bands: set[str] = set()
    for kind in (SUMMARY, YAW):
        base, cur = base_set.files.get(kind), cur_set.files.get(kind)
        if base is not None and cur is None:
            raise ReportError(f"the baseline has a {kind} report but the current {cur_set.location} has none")
        if cur is None:
            continue
        if base is None:
            notes.append(f"{kind}: no baseline report; only absolute rules (ceilings, zero-positive classes) "
                         f"are judged")
            base_classes = cur_classes = _classes(cur)
        else:
            checks, more = check_provenance(kind, base.metadata, cur.metadata, allow_mismatch)
            provenance.extend(checks)
            notes.extend(more)
            base_classes, cur_classes = _classes(base), _classes(cur)
        classes = [c for c in base_classes if c in set(cur_classes)]
        dropped = sorted(set(base_classes) ^ set(cur_classes))
        if dropped:
            notes.append(f"{kind}: classes in one report only, not compared: {', '.join(dropped)}")
        band_paths = REQUIRED_FIELDS["bands"]
        bands_differ = base is not None and _canonical(_get(base.metadata, *band_paths)) != _canonical(
            _get(cur.metadata, *band_paths))
        cells, more = align(kind, base, cur, classes, common_bands_only=bands_differ)
        notes.extend(more)
        all_classes.update(cells["class"])
        all_bands.update(cells["band"])
        verdicts.extend(judge_cells(kind, cells, policy))
    policy.check_names(all_classes, all_bands)
    # Violations first; the stable sort keeps the (report, class, band, metric, rule) order within each group.
    ordered = sorted(verdicts, key=lambda v: v.status is not Status.FAIL)
    return GateResult(baseline=str(baseline), current=str(current), verdicts=tuple(ordered),
                      provenance=tuple(provenance), notes=tuple(notes), policy_source=policy.source,
                      thresholds=policy.rules)


def _classes(report: ReportFile) -> list[str]:
    """The report's class order: the ``class_names`` metadata, then any other class found in the table."""
    names = [str(c) for c in (report.metadata.get("class_names") or [])]
    seen = set(names)
    extra = [c for c in pd.unique(report.table["class"]) if c not in seen]
    return names + sorted(extra)
