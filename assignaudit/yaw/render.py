"""Terminal and image output of a `YawReport`: a rich per-class table, unicode residual histograms, a PNG plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from assignaudit.bands import ALL_BANDS

_BLOCKS = " ▁▂▃▄▅▆▇█"


def _fmt(v: float, spec: str, nan: str = "-") -> str:
    return nan if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def summary_table(report):
    """A rich Table: one row per class (band ``all``)."""
    from rich import box
    from rich.table import Table

    meta = report.metadata
    s = report.tables.summary
    s = s[s["band"] == ALL_BANDS]
    opts = meta["options"]
    nms = opts["nms"]
    nms_desc = (f"{nms['nms_type']} "
                + (f"IoU>{nms['thresh']:g}" if nms["nms_type"] == "rotate" else f"d^2<={nms['circle_radius_sq']:g}m^2")
                + (" class-agnostic" if nms["class_agnostic"] else " per class"))
    table = Table(
        title=(f"yaw residuals and duplicates -- {meta['dataset_version']}:{meta['split']}, "
               f"{meta['num_predictions_evaluated']} predictions, match {opts['match']} "
               f"@ {opts['match_threshold']:g}{' m' if opts['match'] == 'center' else ' IoU'}"
               f"{', nuScenes filters' if opts.get('nusc_filters') else ''}; NMS {nms_desc}"),
        title_justify="left",
    )
    table.box = box.SIMPLE_HEAD
    table.pad_edge = False
    table.padding = (0, 1, 0, 0)  # one space between columns: the table fits 80 columns
    headers = ("class", "GT", "pred", "match", "|err|", "flips", "90°", "AOE", "dups", "lost")
    rows = []
    for r in s.itertuples(index=False):  # r[0] is the class ("class" is a keyword: no attribute)
        flips = f"{r.num_flips} {_fmt(100 * r.flip_rate, '.0f')}%" if r.num_matched else "-"
        err = _fmt(math.degrees(r.mean_abs_yaw_err), ".1f") + "°" if r.num_matched else "-"
        rows.append(([r[0], str(r.num_gt), str(r.num_pred), str(r.num_matched), err, flips, str(r.num_swaps_90),
                      _fmt(r.aoe_nusc, ".3f"), f"{r.num_dup_pre_nms}→{r.num_dup_post_nms}", str(r.tp_lost_by_nms)],
                     (r.num_flips > 0, r.num_swaps_90 > 0, r.num_dup_post_nms > 0, r.tp_lost_by_nms > 0)))
    # Fixed widths from the plain text, so that rich never elides a number in a narrow terminal.
    widths = [max([len(h)] + [len(cells[k]) for cells, _ in rows]) for k, h in enumerate(headers)]
    for k, h in enumerate(headers):
        table.add_column(h, justify="left" if k == 0 else "right", no_wrap=True, min_width=widths[k])
    for cells, (flip, swap, dup_left, lost) in rows:
        for k, bad, style in ((5, flip, "bold red"), (6, swap, "bold yellow"), (8, dup_left, "bold red"),
                              (9, lost, "bold red")):
            if bad:
                cells[k] = f"[{style}]{cells[k]}[/]"
        table.add_row(*cells)
    table.caption = ("|err|: mean |yaw residual|; flips: |residual| >= "
                     f"{opts['flip_deg']:g}°; 90°: length/width swaps; AOE: nuScenes (rad); "
                     "dups: duplicates before → after NMS; lost: true positives NMS removed "
                     "(GT-view duplicates and kept counts: --json / Parquet)")
    table.caption_justify = "left"
    return table


def histogram_text(counts: np.ndarray, height: int = 4) -> list[str]:
    """Unicode bar chart of ``counts`` (one column per bin), ``height`` rows of eighth-blocks.

    Square-root scale so that a few flips still show next to the peak at 0; any non-zero bin gets at least one
    eighth. Returns ``height`` lines followed by an axis line labelled in degrees.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.size
    top = counts.max() if n else 0
    levels = np.zeros(n, dtype=np.int64)
    if top > 0:
        levels = np.ceil(np.sqrt(counts / top) * 8 * height).astype(np.int64)
    lines = []
    for row in range(height - 1, -1, -1):
        cell = np.clip(levels - 8 * row, 0, 8)
        lines.append("".join(_BLOCKS[c] for c in cell))
    axis = [" "] * n
    for deg in (-180, -90, 0, 90, 180):
        label = f"{deg}"
        col = min(max(int(round((deg + 180) / 360 * n)) - (len(label) // 2), 0), max(n - len(label), 0))
        axis[col:col + len(label)] = list(label)
    lines.append("".join(axis)[:n])
    return lines


def render(report, console=None) -> None:
    """Print the table, then a residual histogram for every class with flips, then the written files."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    console.print(summary_table(report))
    hist = report.tables.hist
    s = report.tables.summary
    flip_classes = s[(s["band"] == ALL_BANDS) & (s["num_flips"] > 0)]["class"].tolist()
    for c in flip_classes:
        h = hist[(hist["class"] == c) & (hist["band"] == ALL_BANDS)]
        n = int(h["count"].sum())
        console.print(f"\n[bold]{escape(c)}[/]: yaw residual pred - GT, {n} matches, "
                      f"{len(h)} bins of {360 / len(h):g}° (sqrt scale)")
        for line in histogram_text(h["count"].to_numpy()):
            console.print(escape(line), highlight=False)
    dropped = {k: v for k, v in report.metadata.get("dropped", {}).items() if v}
    if dropped:
        console.print("left out before the analysis: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))


def json_payload(report, written: list[Path]) -> str:
    meta = report.metadata
    keys = ("dataset_version", "split", "predictions_file", "predictions_sha256", "num_predictions_evaluated",
            "num_gt_evaluated", "dropped", "eval_frame", "options", "aoe_nusc", "config", "config_sha256")
    payload: dict[str, Any] = {
        "meta": {k: meta[k] for k in keys if k in meta},
        "summary": json.loads(report.tables.summary.to_json(orient="records")),
        "written": [str(p) for p in written],
    }
    if report.tables.nms_sweep is not None:
        payload["nms_sweep"] = json.loads(report.tables.nms_sweep.to_json(orient="records"))
    return json.dumps(payload, indent=2)


def plot_png(report, path: Path) -> Path:
    """Residual histograms (band ``all``) of every class with matches, one panel each, saved as PNG
    (`assignaudit.plots.charts.yaw_hist_chart`, the one plotting module)."""
    from assignaudit.plots.charts import yaw_hist_chart
    from assignaudit.report import atomic_write_bytes

    atomic_write_bytes(Path(path), yaw_hist_chart(report.tables.hist))
    return Path(path)
