"""Charts of the reports (`assignaudit report`, `yaw --plot`): each function takes report tables (pandas, the columns
of `assignaudit.schema`) and returns PNG bytes. Band ``all`` is the last band of every report."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from assignaudit.bands import ALL_BANDS
from assignaudit.plots import fig_bytes, pyplot
from assignaudit.plots.bev import class_colour

_BAND_CMAP = "viridis"


def _bands(df: pd.DataFrame) -> list[str]:
    return [b for b in dict.fromkeys(df["band"]) if b != ALL_BANDS and b is not None]


def _classes(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["class"]))


def pos_per_gt_chart(summary: pd.DataFrame, dpi: int = 90) -> bytes:
    """Positives per GT by class (groups) and range band (bars), with the GT that get none as a count above."""
    plt = pyplot()
    classes, bands = _classes(summary), _bands(summary)
    by = summary.set_index(["class", "band"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(classes) + 2), 3.4))
    width = 0.8 / max(len(bands), 1)
    cmap = plt.get_cmap(_BAND_CMAP)
    for j, b in enumerate(bands):
        vals = [float(by.loc[(c, b), "pos_per_gt"]) for c in classes]
        x = np.arange(len(classes)) + (j - (len(bands) - 1) / 2) * width
        ax.bar(x, np.nan_to_num(vals), width=width, color=cmap(j / max(len(bands) - 1, 1)), label=f"{b} m")
        for xi, c in zip(x, classes):
            zero = int(by.loc[(c, b), "num_gt_zero_pos"])
            if zero:
                ax.annotate(str(zero), (xi, 0), xytext=(0, -9), textcoords="offset points", ha="center",
                            fontsize=6, color="#ff00ff")
    ax.set_xticks(np.arange(len(classes)))
    ax.set_xticklabels(classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("positives per GT")
    ax.set_title("positives per GT by class and band (magenta: GT with 0 positives)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig_bytes(fig, dpi=dpi)


def iou_chart(objects: pd.DataFrame | None, summary: pd.DataFrame, pos_thresholds: Mapping[str, float],
              eval_iou: float, dpi: int = 90) -> bytes:
    """Per class: the distribution of each GT's best anchor IoU (objects.parquet ``max_iou``, box plot), the
    positives' IoU p10 / p50 (summary, band all), the config's positive threshold and the evaluation IoU."""
    plt = pyplot()
    classes = _classes(summary)
    allb = summary[summary["band"] == ALL_BANDS].set_index("class")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(classes) + 2), 3.4))
    data, pos = [], []
    for i, c in enumerate(classes):
        if objects is not None and len(objects):
            v = objects.loc[(objects["class"] == c) & objects["band"].notna(), "max_iou"].to_numpy(np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                data.append(v)
                pos.append(i)
    if data:
        ax.boxplot(data, positions=pos, widths=0.5, showfliers=True, flierprops={"markersize": 2},
                   medianprops={"color": "black"})
    x = np.arange(len(classes))
    ax.scatter(x - 0.3, allb.loc[classes, "iou_pos_p10"], marker="v", color="tab:red", s=18, label="positives p10",
               zorder=5)
    ax.scatter(x - 0.3, allb.loc[classes, "iou_pos_p50"], marker="o", color="tab:blue", s=18,
               label="positives p50", zorder=5)
    thr = [pos_thresholds.get(c, math.nan) for c in classes]
    ax.scatter(x + 0.3, thr, marker="_", s=200, color="tab:green", label="config positive threshold", zorder=5)
    ax.axhline(eval_iou, color="tab:orange", linestyle="--", linewidth=1, label=f"evaluation IoU {eval_iou:g}")
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.set_title("best anchor IoU per GT (box) and positives' IoU percentiles", fontsize=9)
    ax.legend(fontsize=6.5, loc="upper right", frameon=False, ncol=2)
    fig.tight_layout()
    return fig_bytes(fig, dpi=dpi)


def yaw_hist_chart(hist: pd.DataFrame, dpi: int = 100) -> bytes:
    """Yaw residual histograms (band all) of every class with matches, one linear panel each (symlog counts)."""
    plt = pyplot()
    h = hist[hist["band"] == ALL_BANDS]
    classes = [c for c in dict.fromkeys(h["class"]) if h.loc[h["class"] == c, "count"].sum() > 0]
    n = max(len(classes), 1)
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for ax, c in zip(axes.ravel(), classes):
        hc = h[h["class"] == c]
        ax.set_visible(True)
        edges = np.degrees(np.append(hc["bin_lo"].to_numpy(), hc["bin_hi"].to_numpy()[-1]))
        ax.stairs(hc["count"].to_numpy(np.float64), edges, fill=True, color="tab:blue")  # one patch, not a bar each
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xlim(-180, 180)
        ax.set_xticks([-180, -90, 0, 90, 180])
        ax.tick_params(labelsize=7)
        ax.set_title(c, fontsize=9)
    fig.suptitle("yaw residual (pred - GT, degrees)", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.12 / rows, top=1 - 0.14 / rows, wspace=0.3, hspace=0.55)
    return fig_bytes(fig, dpi=dpi)


def yaw_polar_chart(hist: pd.DataFrame, dpi: int = 90) -> bytes:
    """The same residuals on one polar axes, one step outline per class (radius: sqrt of the fraction of the class's
    matches in the bin), so flips (180 deg) and swaps (+-90 deg) stand out."""
    plt = pyplot()
    h = hist[hist["band"] == ALL_BANDS]
    classes = [c for c in dict.fromkeys(h["class"]) if h.loc[h["class"] == c, "count"].sum() > 0]
    fig = plt.figure(figsize=(5.2, 4.2))
    ax = fig.add_axes((0.05, 0.08, 0.6, 0.8), projection="polar")
    steps = np.linspace(0.0, 1.0, 4)
    for i, c in enumerate(classes):
        hc = h[h["class"] == c]
        lo, hi = hc["bin_lo"].to_numpy(np.float64), hc["bin_hi"].to_numpy(np.float64)
        cnt = hc["count"].to_numpy(np.float64)
        r = np.sqrt(cnt / cnt.sum())
        theta = (lo[:, None] + (hi - lo)[:, None] * steps[None, :]).ravel()  # each bin an arc: one line per class
        ax.plot(np.append(theta, theta[0]), np.append(np.repeat(r, steps.size), r[0]), color=class_colour(i),
                linewidth=1.0, label=c)
    ax.set_yticklabels([])
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0), frameon=False)
    fig.suptitle("yaw residual, polar (radius = sqrt of the class's fraction)", fontsize=9)
    return fig_bytes(fig, dpi=dpi)


def flip_swap_chart(yaw_summary: pd.DataFrame, dpi: int = 90) -> bytes:
    """Flip rate and 90-degree swap rate (swaps / matched) by band, one line per class."""
    plt = pyplot()
    bands = _bands(yaw_summary)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharex=True)
    for i, c in enumerate(_classes(yaw_summary)):
        d = yaw_summary[(yaw_summary["class"] == c) & (yaw_summary["band"] != ALL_BANDS)].set_index("band")
        d = d.reindex(bands)
        matched = d["num_matched"].to_numpy(np.float64)
        swap = np.divide(d["num_swaps_90"].to_numpy(np.float64), matched, out=np.full(len(bands), np.nan),
                         where=matched > 0)
        axes[0].plot(bands, d["flip_rate"].to_numpy(np.float64), marker="o", markersize=3, color=class_colour(i),
                     label=c)
        axes[1].plot(bands, swap, marker="o", markersize=3, color=class_colour(i), label=c)
    axes[0].set_title("180-degree flip rate by band", fontsize=9)
    axes[1].set_title("length/width swap (90 deg) rate by band", fontsize=9)
    for ax in axes:
        ax.set_xlabel("band (m)")
        ax.tick_params(labelsize=7)
    axes[1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig_bytes(fig, dpi=dpi)


def duplicates_chart(yaw_summary: pd.DataFrame, dpi: int = 90) -> bytes:
    """Duplicate rate before vs after NMS per class (band all)."""
    plt = pyplot()
    d = yaw_summary[yaw_summary["band"] == ALL_BANDS]
    classes = d["class"].tolist()
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(classes) + 2), 3.0))
    ax.bar(x - 0.2, d["dup_rate_pre_nms"].to_numpy(np.float64), width=0.4, color="tab:red", label="before NMS")
    ax.bar(x + 0.2, d["dup_rate_post_nms"].to_numpy(np.float64), width=0.4, color="tab:green", label="after NMS")
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("duplicate rate")
    ax.set_title("duplicates before vs after NMS", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig_bytes(fig, dpi=dpi)


def nms_sweep_chart(sweep: pd.DataFrame, dpi: int = 90) -> bytes:
    """The NMS sweep per class: duplicates left (x) against TPs lost (y), one point per threshold (labelled)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, c in enumerate(_classes(sweep)):
        d = sweep[sweep["class"] == c].sort_values("nms_value")
        ax.plot(d["num_dup_left"], d["tp_lost"], marker="o", markersize=3, color=class_colour(i), label=c)
        if i == 0:
            for _, r in d.iterrows():
                ax.annotate(f"{r['nms_value']:g}", (r["num_dup_left"], r["tp_lost"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("duplicates left after NMS")
    ax.set_ylabel("true positives lost")
    ax.set_title("NMS sweep (labels: threshold)", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig_bytes(fig, dpi=dpi)


def compare_chart(a: pd.DataFrame, b: pd.DataFrame, labels: Sequence[str] = ("A", "B"), dpi: int = 90) -> bytes:
    """Positives per GT (band all) of two count summaries side by side."""
    plt = pyplot()
    aa = a[a["band"] == ALL_BANDS].set_index("class")
    bb = b[b["band"] == ALL_BANDS].set_index("class")
    classes = list(dict.fromkeys(list(aa.index) + list(bb.index)))
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(classes) + 2), 3.0))
    ax.bar(x - 0.2, aa["pos_per_gt"].reindex(classes).to_numpy(np.float64), width=0.4, label=labels[0])
    ax.bar(x + 0.2, bb["pos_per_gt"].reindex(classes).to_numpy(np.float64), width=0.4, label=labels[1])
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("positives per GT")
    ax.set_title("A vs B: positives per GT (band all)", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig_bytes(fig, dpi=dpi)
