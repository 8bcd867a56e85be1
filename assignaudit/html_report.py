"""`assignaudit report`: one self-contained HTML page from the reports `count`, `yaw` and `gate` wrote.

Self-contained: every image is a PNG data URI, the style sheet is inline, there is no script and no external
reference, so the page opens offline and can be attached to a pull request or a ticket. Tables are read with
`assignaudit.report.read_report` (file names from `assignaudit.schema`); charts and thumbnails come from
`assignaudit.plots`. The page always holds every section of `SECTIONS`; a section without its report says which
command writes it.

The zero-positive ledger's thumbnails are drawn from objects.parquet alone (every GT of the same sample and replay,
in the augmented frame, without anchors), so the page needs no dataset; `assignaudit show --gt TOKEN` draws the
anchors of one of them.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from assignaudit import schema
from assignaudit.bands import ALL_BANDS
from assignaudit.errors import ReportError

SECTIONS: tuple[tuple[str, str], ...] = (
    ("provenance", "Provenance"),
    ("band-table", "Positives per class and range band"),
    ("pos-per-gt", "Positives per GT by class and band"),
    ("iou", "Positive IoU against the evaluation threshold"),
    ("zero-pos", "Zero-positive ledger"),
    ("yaw-hist", "Yaw residual histograms"),
    ("flip-swap", "Flip and swap rates by band"),
    ("nms", "Duplicates and NMS sweep"),
    ("gate", "Gate verdict"),
    ("compare", "Compare two count reports"),
)
GATE_FILE = "gate.json"
LEDGER_ROWS_PER_CLASS = 20

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.zero{color:#c0c;font-weight:bold}.fail{color:#c00;font-weight:bold}
.pass{color:#080;font-weight:bold}.note{color:#777;font-size:12px}img{max-width:100%}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}.thumb{font-size:10px;text-align:center;width:170px}
.side{display:flex;gap:16px;flex-wrap:wrap}.side>div{flex:1;min-width:380px}pre{font-size:11px;background:#f7f7f7;
padding:6px;overflow:auto;max-height:300px}nav a{margin-right:10px;font-size:12px}
"""


@dataclass(frozen=True)
class ReportOptions:
    compare: bool = False
    eval_iou: float = 0.5
    thumbnails: int = 3
    """BEV thumbnails per class in the zero-positive ledger."""


@dataclass
class Reports:
    """The report tables found in the given paths (the first of each kind; count summaries: all, for --compare)."""

    counts: list[tuple[Path, pd.DataFrame, dict[str, Any]]] = field(default_factory=list)
    objects: pd.DataFrame | None = None
    yaw_summary: pd.DataFrame | None = None
    yaw_meta: dict[str, Any] | None = None
    yaw_hist: pd.DataFrame | None = None
    nms_sweep: pd.DataFrame | None = None
    quality: pd.DataFrame | None = None
    """quality.parquet (count --quality): histograms of the positives' IoU, losses and residuals."""
    gate: dict[str, Any] | None = None
    gate_path: Path | None = None


def collect_reports(paths: list[Path]) -> Reports:
    """Read the count / yaw / gate reports in ``paths`` (directories or report files). `ReportError` when a path does
    not exist or none of them holds a report."""
    from assignaudit.report import read_report

    found = Reports()
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ReportError(f"report directory not found: {p}")
        files = sorted(p.iterdir()) if p.is_dir() else [p]
        names = {f.name: f for f in files if f.is_file()}
        if schema.SUMMARY_FILE in names:
            df, meta = read_report(names[schema.SUMMARY_FILE])
            if meta.get("kind") == "count":
                found.counts.append((p, df, meta))
        if schema.OBJECTS_FILE in names and found.objects is None:
            found.objects = read_report(names[schema.OBJECTS_FILE])[0]
        if schema.QUALITY_FILE in names and found.quality is None:
            found.quality = read_report(names[schema.QUALITY_FILE])[0]
        if schema.YAW_SUMMARY_FILE in names and found.yaw_summary is None:
            found.yaw_summary, found.yaw_meta = read_report(names[schema.YAW_SUMMARY_FILE])
        if schema.YAW_HIST_FILE in names and found.yaw_hist is None:
            found.yaw_hist = read_report(names[schema.YAW_HIST_FILE])[0]
        if schema.NMS_SWEEP_FILE in names and found.nms_sweep is None:
            found.nms_sweep = read_report(names[schema.NMS_SWEEP_FILE])[0]
        for name, f in names.items():
            if found.gate is None and f.suffix == ".json" and (name == GATE_FILE or not p.is_dir()):
                try:
                    data = json.loads(f.read_text())
                except (OSError, ValueError) as err:
                    raise ReportError(f"cannot read gate JSON {f}: {err}") from err
                if isinstance(data, dict) and "verdicts" in data and "passed" in data:
                    found.gate, found.gate_path = data, f
    if not (found.counts or found.yaw_summary is not None or found.gate is not None):
        compare_only = [str(p) for p in paths if Path(p).is_dir() and (Path(p) / schema.COMPARE_FILE).is_file()]
        if compare_only:
            raise ReportError(f"{compare_only[0]} holds only {schema.COMPARE_FILE} (count --compare-config), which "
                              "report does not draw; count each config into its own --out and run report --compare A B")
        raise ReportError(f"no assignaudit report (summary.parquet, yaw_summary.parquet or {GATE_FILE}) in "
                          + ", ".join(str(p) for p in paths))
    return found


# ---------------------------------------------------------------------------------------------------------------------
# HTML pieces
# ---------------------------------------------------------------------------------------------------------------------


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _img(png: bytes, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{_e(alt)}"{w} src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "-"
        return format(float(v), spec or ".3g")
    return _e(v)


def _table(df: pd.DataFrame, columns: list[str], formats: dict[str, str] | None = None, left: int = 1) -> str:
    formats = formats or {}
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(c)}</th>' for i, c in enumerate(columns))
    rows = []
    for _, r in df.iterrows():
        cells = "".join(f'<td class="{"l" if i < left else ""}">{_fmt(r[c], formats.get(c, ""))}</td>'
                        for i, c in enumerate(columns))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _missing(what: str) -> str:
    return f'<p class="note">no {what} in the given directories.</p>'


def _band_table(summary: pd.DataFrame) -> str:
    bands = [b for b in dict.fromkeys(summary["band"]) if b != ALL_BANDS] + [ALL_BANDS]
    by = summary.set_index(["class", "band"])
    head = '<th class="l">class</th>' + "".join(f"<th>{_e(b)}</th>" for b in bands) + \
        "<th>neg</th><th>ignore</th><th>forced</th><th>IoU p50</th>"
    rows = []
    for c in dict.fromkeys(summary["class"]):
        cells = []
        for b in bands:
            r = by.loc[(c, b)]
            gt, pos, zero = int(r.num_gt), int(r.num_pos), int(r.num_gt_zero_pos)
            text = f"{pos}/{gt}" if gt else "-"
            if zero:
                text += f' <span class="zero">({zero})</span>'
            cells.append(f"<td>{text}</td>")
        a = by.loc[(c, ALL_BANDS)]
        rows.append(f'<tr><td class="l">{_e(c)}</td>{"".join(cells)}<td>{int(a.num_neg):,}</td>'
                    f"<td>{int(a.num_ignore):,}</td><td>{int(a.num_forced):,}</td>"
                    f"<td>{_fmt(a.iou_pos_p50, '.2f')}</td></tr>")
    return (f"<table><tr>{head}</tr>{''.join(rows)}</table><p class=\"note\">cells: positives / GT "
            "(GT with 0 positives).</p>")


def _pos_thresholds(meta: dict[str, Any]) -> dict[str, float]:
    anchors = (meta.get("config") or {}).get("anchors") or {}
    return {s["class_name"]: float(s["matched_threshold"]) for s in anchors.get("anchor_sets") or ()
            if s.get("matched_threshold") is not None}


def _provenance(rep: Reports) -> str:
    keys = ("kind", "tool_version", "command_line", "config_name", "config_sha256", "head", "framework", "dataset",
            "seed", "replays", "augment", "device", "num_frames_assigned", "torch_version", "predictions_file",
            "predictions_sha256", "dataset_kind", "dataset_version", "split")
    parts = []
    metas = [(f"count ({p})", m) for p, _, m in rep.counts]
    if rep.yaw_meta is not None:
        metas.append(("yaw", rep.yaw_meta))
    for title, m in metas:
        rows = "".join(f'<tr><td class="l">{_e(k)}</td><td class="l">{_e(json.dumps(m[k], default=str)) if isinstance(m[k], (dict, list)) else _e(m[k])}</td></tr>'  # noqa: E501
                       for k in keys if k in m)
        full = _e(json.dumps(m, indent=1, sort_keys=True, default=str))
        parts.append(f"<h3>{_e(title)}</h3><table>{rows}</table><details><summary>all metadata</summary>"
                     f"<pre>{full}</pre></details>")
    if rep.gate is not None:
        parts.append(f"<h3>gate ({_e(rep.gate_path)})</h3><p>baseline {_e(rep.gate.get('baseline'))}, current "
                     f"{_e(rep.gate.get('current'))}, policy {_e(rep.gate.get('policy'))}</p>")
    return "".join(parts)


def _thumb_scene(objects: pd.DataFrame, row: pd.Series, class_names: list[str]):
    from assignaudit.plots.bev import BevScene

    same = objects[(objects["sample_token"] == row["sample_token"]) & (objects["replay"] == row["replay"])
                   & objects["band"].notna()].reset_index(drop=True)
    boxes = same[["x", "y", "z", "dx", "dy", "dz", "yaw"]].to_numpy(np.float64)
    hit = (same["ann_token"] == row["ann_token"]) & (same["x"] == row["x"]) & (same["y"] == row["y"])
    target = int(np.flatnonzero(hit.to_numpy())[0]) if hit.any() else None
    return BevScene(class_names=class_names, gt_boxes=boxes, gt_class=same["class"].to_numpy(object),
                    gt_num_pos=same["num_pos"].to_numpy(), gt_reason=same["zero_pos_reason"].to_numpy(object),
                    gt_source=same["source"].to_numpy(object), gt_label=[""] * len(same), target=target,
                    around=(float(row["x"]), float(row["y"])), radius=5.0, size_in=1.7, compact=True)


def _ledger(objects: pd.DataFrame | None, class_names: list[str], n_thumbs: int) -> str:
    if objects is None:
        return _missing("objects.parquet (run count without --only-summary)")
    from assignaudit.plots.bev import render_bev

    every = objects[objects["num_pos"] == 0]
    filtered = every[every["band"].isna()]
    zero = every[every["band"].notna()]
    parts = []
    if len(filtered):
        by = filtered.groupby(["class", "zero_pos_reason"]).size().rename("num_gt").reset_index()
        parts.append("<p>GT removed before the assigner (they never get a positive; not counted in num_gt):</p>"
                     + _table(by, ["class", "zero_pos_reason", "num_gt"], left=2))
    if zero.empty:
        return "".join(parts) + '<p class="pass">every GT that reached the assigner got at least one positive.</p>'
    counts = zero.groupby("zero_pos_reason", dropna=False).size()
    parts.append("<p>GT that reached the assigner and got no positive: "
                 + ", ".join(f"{_e(k)}: {int(v)}" for k, v in counts.items()) + "</p>")
    cols = ["class", "sample_token", "replay", "ann_token", "source", "dist", "band", "num_lidar_pts", "max_iou",
            "zero_pos_reason"]
    for c in [c for c in class_names if c in set(zero["class"])] + sorted(set(zero["class"]) - set(class_names)):
        zc = zero[zero["class"] == c]
        thumbs = []
        for _, r in zc.head(n_thumbs).iterrows():
            png = render_bev(_thumb_scene(objects, r, class_names), dpi=100)
            tok, why, dist = r["ann_token"], r["zero_pos_reason"], _fmt(r["dist"], ".1f")
            thumbs.append(f'<div class="thumb">{_img(png, f"{c} {tok}", 170)}<br>{_e(why)}, {dist} m<br>'
                          f"<code>{_e(tok)}</code></div>")
        parts.append(f"<h3>{_e(c)}: {len(zc)} GT with no positive</h3>")
        if thumbs:
            parts.append(f'<div class="thumbs">{"".join(thumbs)}</div>')
        more = f'<p class="note">first {LEDGER_ROWS_PER_CLASS} of {len(zc)}.</p>' if len(zc) > LEDGER_ROWS_PER_CLASS \
            else ""
        parts.append(_table(zc.head(LEDGER_ROWS_PER_CLASS), cols, {"dist": ".1f", "max_iou": ".3f"}, left=5) + more)
    parts.append('<p class="note">thumbnails: the GT of the same sample and replay in the augmented frame, the GT '
                 "in question in magenta; <code>assignaudit show --gt ANN_TOKEN</code> draws its anchors.</p>")
    return "".join(parts)


def _hist_quantile(hist: pd.DataFrame, q: float) -> float:
    """The ``q`` quantile of a histogram (rows bin_lo, bin_hi, count): the midpoint of the bin it falls in."""
    hist = hist.sort_values("bin_lo")
    counts = hist["count"].to_numpy(dtype=np.float64)
    if counts.sum() <= 0:
        return float("nan")
    i = int(np.searchsorted(np.cumsum(counts), q * counts.sum()))
    return float((hist["bin_lo"].iloc[i] + hist["bin_hi"].iloc[i]) / 2)


def _quality_iou(quality: pd.DataFrame | None, class_names: list[str]) -> str:
    """The positives' IoU distribution per class (band all) from quality.parquet, when the run had --quality."""
    if quality is None:
        return '<p class="note">the positives\' own IoU distribution (BEV and 3D): run count --quality</p>'
    rows = []
    for cls in class_names:
        mine = quality[(quality["class"] == cls) & (quality["band"] == ALL_BANDS)]
        bev, d3 = mine[mine["quantity"] == "iou_bev"], mine[mine["quantity"] == "iou_3d"]
        if not len(bev):
            continue
        rows.append({"class": cls, "positives": int(bev["count"].sum()),
                     **{f"iou_bev_p{int(q * 100)}": _hist_quantile(bev, q) for q in (0.1, 0.5, 0.9)},
                     "iou_3d_p50": _hist_quantile(d3, 0.5) if len(d3) else float("nan")})
    if not rows:
        return _missing("positives in quality.parquet")
    cols = ["class", "positives", "iou_bev_p10", "iou_bev_p50", "iou_bev_p90", "iou_3d_p50"]
    return ("<p class=\"note\">the positives' IoU with the GT they are credited to, every range (quality.parquet "
            "histograms, bin midpoints):</p>" + _table(pd.DataFrame(rows), cols, {c: ".3f" for c in cols[2:]}))


def _gate(gate: dict[str, Any] | None) -> str:
    if gate is None:
        return _missing(f"gate report (write one with <code>assignaudit gate BASE CUR --json &gt; DIR/{GATE_FILE}"
                        "</code>)")
    verdicts = gate.get("verdicts") or []
    by_status: dict[str, int] = {}
    for v in verdicts:
        by_status[v.get("status")] = by_status.get(v.get("status"), 0) + 1
    ok = bool(gate.get("passed"))
    head = (f'<p class="{"pass" if ok else "fail"}">{"PASSED" if ok else "FAILED"}: '
            f"{int(gate.get('num_violations', 0))} violation(s); "
            + ", ".join(f"{_e(k)} {v}" for k, v in sorted(by_status.items())) + "</p>")
    shown = [v for v in verdicts if v.get("status") == "fail"] or [v for v in verdicts if v.get("status") == "pass"]
    df = pd.DataFrame(shown[:60], columns=["status", "rule", "class", "band", "metric", "baseline", "current",
                                           "message"])
    notes = "".join(f"<li>{_e(n)}</li>" for n in gate.get("notes") or ())
    return head + (f"<ul>{notes}</ul>" if notes else "") + _table(df, list(df.columns), left=5)


def _compare(rep: Reports, options: ReportOptions) -> str:
    if not options.compare:
        return '<p class="note">pass <code>--compare A B</code> (two count report directories) to see them side by ' \
               "side.</p>"
    from assignaudit.plots.charts import compare_chart

    (pa_, a, ma), (pb, b, mb) = rep.counts[0], rep.counts[1]
    cols = []
    for title, p, s, m in (("A", pa_, a, ma), ("B", pb, b, mb)):
        cols.append(f"<div><h3>{title}: {_e(m.get('config_name'))} ({_e(p)})</h3><p class=\"note\">sha256 "
                    f"{_e(str(m.get('config_sha256'))[:12])}, seed {_e(m.get('seed'))}, {_e(m.get('replays'))} "
                    f"replay(s)</p>{_band_table(s)}</div>")
    return f'<div class="side">{"".join(cols)}</div>' + _img(compare_chart(a, b), "A vs B positives per GT")


def build_html(rep: Reports, options: ReportOptions = ReportOptions()) -> str:
    """The page (a string). Sections in `SECTIONS` order, each ``<section id=...>``."""
    from assignaudit.plots import charts

    body: dict[str, str] = {}
    count = rep.counts[0] if rep.counts else None
    body["provenance"] = _provenance(rep)
    if count is not None:
        _, summary, meta = count
        class_names = list(meta.get("class_names") or dict.fromkeys(summary["class"]))
        body["band-table"] = _band_table(summary)
        body["pos-per-gt"] = _img(charts.pos_per_gt_chart(summary), "positives per GT")
        body["iou"] = _img(charts.iou_chart(rep.objects, summary, _pos_thresholds(meta), options.eval_iou),
                           "IoU distribution") + \
            '<p class="note">box: each GT\'s best IoU with an anchor it competes for (objects.parquet max_iou); ' \
            "markers: the positives' IoU p10 / p50 (summary), the config's positive threshold and the evaluation " \
            "IoU (--eval-iou).</p>" + _quality_iou(rep.quality, class_names)
        body["zero-pos"] = _ledger(rep.objects, class_names, options.thumbnails)
    else:
        for sid in ("band-table", "pos-per-gt", "iou", "zero-pos"):
            body[sid] = _missing("count report (summary.parquet)")
    if rep.yaw_hist is not None:
        body["yaw-hist"] = _img(charts.yaw_hist_chart(rep.yaw_hist), "yaw residuals") + \
            _img(charts.yaw_polar_chart(rep.yaw_hist), "yaw residuals, polar")
    else:
        body["yaw-hist"] = _missing("yaw report (yaw_hist.parquet)")
    if rep.yaw_summary is not None:
        ys = rep.yaw_summary
        body["flip-swap"] = _img(charts.flip_swap_chart(ys), "flip and swap rates") + _table(
            ys[ys["band"] == ALL_BANDS], ["class", "num_matched", "num_flips", "flip_rate", "num_swaps_90",
                                          "mean_abs_yaw_err", "aoe_nusc"], {"flip_rate": ".3f"})
        nms = _img(charts.duplicates_chart(ys), "duplicates before and after NMS") + _table(
            ys[ys["band"] == ALL_BANDS], ["class", "num_pred", "num_dup_pre_nms", "dup_rate_pre_nms",
                                          "num_dup_post_nms", "dup_rate_post_nms", "tp_lost_by_nms"],
            {"dup_rate_pre_nms": ".3f", "dup_rate_post_nms": ".3f"})
        if rep.nms_sweep is not None and len(rep.nms_sweep):
            nms += _img(charts.nms_sweep_chart(rep.nms_sweep), "NMS sweep")
        else:
            nms += _missing("NMS sweep (run yaw with --nms-sweep T1,T2,...)")
        body["nms"] = nms
    else:
        body["flip-swap"] = body["nms"] = _missing("yaw report (yaw_summary.parquet)")
    body["gate"] = _gate(rep.gate)
    body["compare"] = _compare(rep, options)

    nav = "".join(f'<a href="#{sid}">{_e(t)}</a>' for sid, t in SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{_e(t)}</h2>{body[sid]}</section>' for sid, t in SECTIONS)
    title = "assignaudit report"
    if count is not None:
        title += f" -- {count[2].get('config_name')}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1><nav>{nav}</nav>{sections}</body></html>\n")


def write_html_report(paths: list[Path], out: Path | None = None, options: ReportOptions = ReportOptions()) -> Path:
    """Collect the reports of ``paths``, build the page and write it atomically (default: first path /
    report.html)."""
    from assignaudit.errors import ConfigError
    from assignaudit.report import atomic_write_text

    if not paths:
        raise ConfigError("give at least one report directory")
    if options.thumbnails < 0:
        raise ConfigError(f"--thumbnails must be >= 0, got {options.thumbnails}")
    rep = collect_reports(paths)
    if options.compare and len(rep.counts) != 2:
        raise ReportError(f"--compare needs exactly two count report directories, found {len(rep.counts)} count "
                          "report(s)")
    page = build_html(rep, options)
    first = Path(paths[0])
    path = Path(out) if out is not None else (first if first.is_dir() else first.parent) / "report.html"
    atomic_write_text(path, page)
    return path
