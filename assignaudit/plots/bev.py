"""Bird's-eye view of one frame's assignment: GT boxes with heading, coloured by class; zero-positive GT highlighted
with their reason; positive anchors coloured by the class of the GT they are credited to (forced-only ones marked),
ignored anchors, the anchors of one set around a GT; a CenterHead heatmap under the boxes with the Gaussian radii;
matched queries with a line to their GT. Pasted (gt_sampling) objects are dashed.

`BevScene` is plain arrays (no pipeline object), so tests and the HTML report build scenes directly;
`scene_from_detail` turns a `assignaudit.frame_detail.FrameDetail` into one. `bev_figure` returns the matplotlib figure
(its ``axes[0].transData`` maps metres to pixels), `render_bev` the encoded bytes.

Colours: class ``i`` of the config is ``CLASS_COLOURS[i % 10]`` (GT box, GT centre dot, the centre dot of every
positive anchor credited to a GT of that class); zero-positive GT get a ``ZERO_POS_COLOUR`` halo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from assignaudit.plots import fig_bytes, pyplot

CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                 "#bcbd22", "#00a651")
ZERO_POS_COLOUR = "#ff00ff"
IGNORE_COLOUR = "#7f7f7f"
NEAR_COLOUR = "#b0b0b0"
QUERY_FAINT = "#c0c0c0"
SOURCE_GT_SAMPLING = "gt_sampling"


# What each zero-positive reason means, in the picture's words (schema.REASON_* values).
REASON_TEXT = {
    "no_overlap": "IoU 0 with every anchor of its set: it falls between anchor centres",
    "taken_by_other_gt": "its best anchors are credited to another GT (lines show who got them)",
    "below_min_pos_iou": "best IoU below min_pos_iou and below the positive threshold",
    "cell_collision": "an earlier GT of its class owns the same heatmap centre cell",
    "truncated_max_objs": "beyond max_objs in its head's order: silently dropped",
    "out_of_map": "its centre cell is outside the feature map",
    "degenerate_size": "size <= 0 in cells: skipped",
    "unmatched": "more GT than queries: no query left for it",
}


def class_colour(index: int) -> str:
    return CLASS_COLOURS[int(index) % len(CLASS_COLOURS)]


@dataclass
class BevScene:
    """Everything one BEV picture shows, as arrays in the (augmented) LiDAR frame, metres. K GT."""

    class_names: Sequence[str]
    """Config classes (their order fixes the colours)."""
    gt_boxes: np.ndarray
    """float ``[K, 7+]`` canonical boxes."""
    gt_class: np.ndarray
    """object ``[K]`` class names."""
    gt_num_pos: np.ndarray | None = None
    """int ``[K]``: positives of each GT (None: unknown, nothing highlighted)."""
    gt_reason: np.ndarray | None = None
    """object ``[K]``: why a GT has no positive (None entries where it has some)."""
    gt_source: np.ndarray | None = None
    """object ``[K]``: ``dataset`` / ``gt_sampling``."""
    gt_label: Sequence[str] | None = None
    """Per-GT label text (default: class and row)."""
    target: int | None = None
    """The GT the picture is about (labelled in full, reason in the legend)."""
    target_note: str = ""
    pos_boxes: np.ndarray | None = None
    """float ``[P, 7]``: positive anchors."""
    pos_gt: np.ndarray | None = None
    """int ``[P]``: GT row each positive is credited to."""
    pos_forced: np.ndarray | None = None
    """bool ``[P]``: forced-only positives (marked with an x)."""
    ignore_boxes: np.ndarray | None = None
    """float ``[I, 7]``: ignored anchors."""
    near_boxes: np.ndarray | None = None
    """float ``[N, 7]``: all anchors of one set around a GT (faint)."""
    heatmap: np.ndarray | None = None
    """float ``[H, W]``: a heatmap (row = y cell) drawn under the boxes over ``heatmap_extent``."""
    heatmap_extent: tuple[float, float, float, float] | None = None
    """``(x_min, x_max, y_min, y_max)`` metres."""
    radius_m: np.ndarray | None = None
    """float ``[K]``: Gaussian radius of each GT in metres (NaN: not drawn)."""
    query_centres: np.ndarray | None = None
    """float ``[Q, 2]``: decoded query centres."""
    query_matched_gt: np.ndarray | None = None
    """int ``[Q]``: matched GT row or -1."""
    extent: tuple[float, float, float, float] = (-51.2, 51.2, -51.2, 51.2)
    """The view without a zoom: ``(x_min, x_max, y_min, y_max)``."""
    around: tuple[float, float] | None = None
    radius: float = 8.0
    title: str = ""
    size_in: float = 8.0
    labels: bool | None = None
    """Label every GT (None: only when zoomed or at most 40 GT)."""
    compact: bool = False
    """Thumbnail: the axes fill the figure; no legend, title, axis labels or GT labels but the target's reason."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def view(self) -> tuple[float, float, float, float]:
        if self.around is None:
            return self.extent
        x, y = self.around
        return (x - self.radius, x + self.radius, y - self.radius, y + self.radius)


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """float ``[N, 4, 2]`` BEV corners (front-left, rear-left, rear-right, front-right) of canonical boxes."""
    b = np.asarray(boxes, np.float64).reshape(-1, np.asarray(boxes).shape[-1] if np.asarray(boxes).size else 7)
    if b.shape[0] == 0:
        return np.zeros((0, 4, 2))
    x, y, dx, dy, yaw = b[:, 0], b[:, 1], b[:, 3], b[:, 4], b[:, 6]
    local = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])  # [4, 2] in (length, width) units
    lx = local[None, :, 0] * dx[:, None]
    ly = local[None, :, 1] * dy[:, None]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    return np.stack([x[:, None] + c * lx - s * ly, y[:, None] + s * lx + c * ly], axis=-1)


def _in_view(xy: np.ndarray, view, margin: float) -> np.ndarray:
    x0, x1, y0, y1 = view
    return (xy[:, 0] >= x0 - margin) & (xy[:, 0] <= x1 + margin) & (xy[:, 1] >= y0 - margin) & (xy[:, 1] <= y1 + margin)


def bev_figure(scene: BevScene):
    """The matplotlib figure of ``scene`` (Agg). One axes, equal aspect, metres; the caller encodes or closes it."""
    plt = pyplot()
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

    view = scene.view
    zoomed = scene.around is not None
    fig = plt.figure(figsize=(scene.size_in, scene.size_in))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0) if scene.compact else (0.08, 0.12, 0.62, 0.76))
    ax.set_xlim(view[0], view[1])
    ax.set_ylim(view[2], view[3])
    ax.set_aspect("equal", adjustable="box")
    if scene.compact:
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.set_xlabel("x (m, augmented LiDAR frame)")
        ax.set_ylabel("y (m)")
    ax.grid(True, color="#eeeeee", linewidth=0.5, zorder=0)
    span = max(view[1] - view[0], view[3] - view[2])
    margin = 4.0
    cls_index = {c: i for i, c in enumerate(scene.class_names)}
    k = len(scene.gt_class)
    gt = np.asarray(scene.gt_boxes, np.float64).reshape(k, -1) if k else np.zeros((0, 7))
    gt_col = [class_colour(cls_index.get(c, len(cls_index))) for c in scene.gt_class]
    handles: dict[str, Any] = {}

    if scene.heatmap is not None and scene.heatmap_extent is not None:
        ax.imshow(scene.heatmap, extent=scene.heatmap_extent, origin="lower", cmap="Greys", vmin=0.0, vmax=1.0,
                  alpha=0.85, interpolation="nearest", zorder=1)
        handles["heatmap (max over the task's channels)"] = Line2D([], [], marker="s", linestyle="", color="#444444")

    if scene.near_boxes is not None and len(scene.near_boxes):
        nb = np.asarray(scene.near_boxes)
        nb = nb[_in_view(nb[:, :2], view, margin)]
        ax.add_collection(PolyCollection(box_corners(nb), closed=True, facecolors="none", edgecolors=NEAR_COLOUR,
                                         linewidths=0.4, zorder=2))
        ax.scatter(nb[:, 0], nb[:, 1], s=2, color=NEAR_COLOUR, zorder=2, linewidths=0)
        handles["anchors of the set (not positive)"] = Line2D([], [], color=NEAR_COLOUR, linewidth=1)

    if scene.ignore_boxes is not None and len(scene.ignore_boxes):
        ib = np.asarray(scene.ignore_boxes)
        ib = ib[_in_view(ib[:, :2], view, margin)]
        ax.add_collection(PolyCollection(box_corners(ib), closed=True, facecolors="none", edgecolors=IGNORE_COLOUR,
                                         linewidths=0.6, linestyles="dotted", zorder=3))
        handles["ignored anchor"] = Line2D([], [], color=IGNORE_COLOUR, linestyle=":", linewidth=1)

    if scene.pos_boxes is not None and len(scene.pos_boxes):
        pb = np.asarray(scene.pos_boxes)
        pg = np.asarray(scene.pos_gt, np.int64)
        pf = np.zeros(len(pb), bool) if scene.pos_forced is None else np.asarray(scene.pos_forced, bool)
        keep = _in_view(pb[:, :2], view, margin)
        pb, pg, pf = pb[keep], pg[keep], pf[keep]
        cols = [gt_col[g] for g in pg]
        ax.add_collection(PolyCollection(box_corners(pb), closed=True, facecolors="none", edgecolors=cols,
                                         linewidths=0.9, zorder=4))
        if zoomed or len(pb) <= 300:
            segs = np.stack([pb[:, :2], gt[pg, :2]], axis=1)
            ax.add_collection(LineCollection(segs, colors=cols, linewidths=0.5, alpha=0.6, zorder=4))
        dot = max(9.0, 900.0 / span)
        ax.scatter(pb[~pf, 0], pb[~pf, 1], s=dot, c=[c for c, f in zip(cols, pf) if not f], zorder=5, linewidths=0)
        if pf.any():
            ax.scatter(pb[pf, 0], pb[pf, 1], s=dot * 2.5, c=[c for c, f in zip(cols, pf) if f], marker="x",
                       zorder=5, linewidths=1.5)
            handles["forced-only positive (x)"] = Line2D([], [], marker="x", linestyle="", color="#333333")
        handles["positive anchor (credited GT colour)"] = Line2D([], [], marker="o", linestyle="",
                                                                            color="#333333", markersize=4)

    if scene.query_centres is not None and len(scene.query_centres):
        qc = np.asarray(scene.query_centres, np.float64)
        qm = np.asarray(scene.query_matched_gt, np.int64)
        un = qm < 0
        ax.scatter(qc[un, 0], qc[un, 1], s=6, color=QUERY_FAINT, zorder=3, linewidths=0)
        m = ~un
        if m.any():
            cols = [gt_col[g] for g in qm[m]]
            ax.add_collection(LineCollection(np.stack([qc[m], gt[qm[m], :2]], axis=1), colors=cols, linewidths=0.8,
                                             zorder=4))
            ax.scatter(qc[m, 0], qc[m, 1], s=18, c=cols, marker="D", zorder=5, linewidths=0)
        handles["matched query (line to its GT)"] = Line2D([], [], marker="D", linestyle="", color="#333333")
        handles["unmatched query"] = Line2D([], [], marker="o", linestyle="", color=QUERY_FAINT)

    if k:
        corners = box_corners(gt)
        pasted = np.zeros(k, bool) if scene.gt_source is None else np.asarray(scene.gt_source) == SOURCE_GT_SAMPLING
        for sel, style in ((~pasted, "solid"), (pasted, "dashed")):
            if sel.any():
                ax.add_collection(PolyCollection(corners[sel], closed=True, facecolors="none",
                                                 edgecolors=[c for c, s in zip(gt_col, sel) if s], linewidths=1.6,
                                                 linestyles=style, zorder=6))
        if pasted.any():
            handles["pasted (gt_sampling) GT"] = Line2D([], [], color="#333333", linestyle="--")
        front = corners[:, [0, 3]].mean(axis=1)
        ax.add_collection(LineCollection(np.stack([gt[:, :2], front], axis=1), colors=gt_col, linewidths=1.4,
                                         zorder=6))
        ax.scatter(gt[:, 0], gt[:, 1], s=max(8.0, min(30.0, 400.0 / span)), c=gt_col, zorder=7, linewidths=0)
        if scene.radius_m is not None:
            for i in np.flatnonzero(np.isfinite(np.asarray(scene.radius_m, np.float64))):
                ax.add_patch(Circle((gt[i, 0], gt[i, 1]), float(scene.radius_m[i]), fill=False, edgecolor=gt_col[i],
                                    linewidth=0.8, linestyle="-.", zorder=6))
            handles["Gaussian radius"] = Line2D([], [], color="#333333", linestyle="-.")
        zero = np.zeros(k, bool) if scene.gt_num_pos is None else np.asarray(scene.gt_num_pos) == 0
        if zero.any():
            zc = corners[zero]
            pad = max(0.25, span / 150.0)
            ctr = gt[zero, None, :2]
            grown = ctr + (zc - ctr) * 1.0 + np.sign(zc - ctr) * pad
            ax.add_collection(PolyCollection(grown, closed=True, facecolors="none", edgecolors=ZERO_POS_COLOUR,
                                             linewidths=2.2, zorder=8))
            handles["GT with no positive"] = Line2D([], [], color=ZERO_POS_COLOUR, linewidth=2)
        show_labels = scene.labels if scene.labels is not None else (zoomed or k <= 40)
        for i in range(k):
            if not _in_view(gt[i:i + 1, :2], view, 0.0)[0]:
                continue
            is_target = scene.target == i
            if not (show_labels or zero[i] or is_target) or (scene.compact and not is_target):
                continue
            text = scene.gt_label[i] if scene.gt_label is not None else f"{scene.gt_class[i]} #{i}"
            if scene.gt_num_pos is not None:
                text += f" ({int(scene.gt_num_pos[i])} pos)"
            if zero[i] and scene.gt_reason is not None and scene.gt_reason[i] is not None:
                text += f"\n{scene.gt_reason[i]}"
            ax.annotate(text, (gt[i, 0], gt[i, 1]), xytext=(6, 6), textcoords="offset points",
                        fontsize=8 if is_target else 6.5, color=ZERO_POS_COLOUR if zero[i] else gt_col[i],
                        fontweight="bold" if is_target else "normal", zorder=9,
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.75, "linewidth": 0})
        present = [c for c in scene.class_names if c in set(scene.gt_class)]
        for c in present:
            handles[c] = Line2D([], [], color=class_colour(cls_index[c]), linewidth=2)
    if scene.compact:
        return fig
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="upper left", bbox_to_anchor=(0.71, 0.88),
                   fontsize=7, frameon=False)
    if scene.target_note:
        import textwrap

        fig.text(0.02, 0.01, textwrap.fill(scene.target_note, 120), fontsize=8, color=ZERO_POS_COLOUR,
                 va="bottom", ha="left")
    if scene.title:
        fig.suptitle(scene.title, fontsize=8.5, x=0.02, y=0.985, ha="left", va="top")
    return fig


def render_bev(scene: BevScene, fmt: str = "png", dpi: int = 100) -> bytes:
    return fig_bytes(bev_figure(scene), fmt=fmt, dpi=dpi)


def write_bev(scene: BevScene, path: Path, fmt: str | None = None, dpi: int = 100) -> Path:
    """Draw ``scene`` into ``path`` atomically (format from the suffix unless ``fmt``)."""
    from assignaudit.report import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, render_bev(scene, fmt or (path.suffix.lstrip(".").lower() or "png"), dpi))
    return path


# ---------------------------------------------------------------------------------------------------------------------
# From the pipeline
# ---------------------------------------------------------------------------------------------------------------------


def augmentation_text(aug) -> str:
    """The replay's random draws in words: flips, rotation, scale, translation, pasted objects."""
    if not getattr(aug, "augmented", True) or not aug.draws:
        return "no augmentation"
    d = dict(aug.draws)
    parts = []
    flips = [a for key, a in (("flip_x", "x"), ("flip_y", "y"), ("flip_horizontal", "horizontal"),
                              ("flip_vertical", "vertical")) if d.get(key)]
    parts.append(f"flip {'+'.join(flips)}" if flips else "no flip")
    if "rotation_rad" in d:
        parts.append(f"rot {math.degrees(d['rotation_rad']):+.2f} deg")
    if "scale" in d:
        parts.append(f"scale {d['scale']:.4f}")
    t = [d.get(f"translate_{a}_m") for a in "xyz"]
    if any(v is not None for v in t):
        parts.append("trans (" + ", ".join(f"{v or 0:+.2f}" for v in t) + ") m")
    if "gt_sampling_pasted" in d:
        parts.append(f"pasted {int(d['gt_sampling_pasted'])}")
    return ", ".join(parts)


def scene_from_detail(detail, *, around: str | None = None, radius: float | None = None,
                      anchors_near: str | None = None, task: int | None = None) -> BevScene:
    """The `BevScene` of a `assignaudit.frame_detail.FrameDetail`.

    ``around`` / ``anchors_near``: a GT (annotation token or row) to zoom on / whose anchor set to draw around it.
    With a target GT (``--gt``, ``--zero-pos``) and neither given, the picture zooms on the target and draws its set.
    ``task``: the CenterHead task whose heatmap goes under the boxes (default: the target's, else 0).
    """
    cfg = detail.config
    aug = detail.aug
    ft = detail.tally
    k = len(aug)
    pcr = cfg.point_cloud_range
    extent = (float(pcr[0]), float(pcr[3]), float(pcr[1]), float(pcr[4])) if pcr is not None else \
        (-51.2, 51.2, -51.2, 51.2)
    focus = detail.gt_row(around) if around is not None else None
    near = detail.gt_row(anchors_near) if anchors_near is not None else None
    if detail.target is not None and focus is None and near is None:
        focus = near = detail.target
    if near is not None and focus is None:
        focus = near
    radius = float(radius) if radius is not None else (8.0 if focus is not None else None)
    if radius is not None and not radius > 0:
        from assignaudit.errors import ConfigError

        raise ConfigError(f"--radius must be > 0 metres, got {radius}")
    reasons = np.asarray(ft.gt_zero_pos_reason, dtype=object)
    labels = [f"{c} #{i}" + (" pasted" if s == SOURCE_GT_SAMPLING else "")
              for i, (c, s) in enumerate(zip(aug.class_name, aug.source))]
    scene = BevScene(class_names=cfg.class_names, gt_boxes=aug.boxes, gt_class=np.asarray(aug.class_name),
                     gt_num_pos=np.asarray(ft.gt_num_pos), gt_reason=reasons, gt_source=np.asarray(aug.source),
                     gt_label=labels, target=detail.target, extent=extent,
                     around=(float(aug.boxes[focus, 0]), float(aug.boxes[focus, 1])) if focus is not None else None,
                     radius=radius or 8.0)
    if detail.target is not None:
        t = detail.target
        why = reasons[t]
        iou = float(ft.gt_max_iou[t]) if ft.gt_max_iou is not None else math.nan
        scene.target_note = (f"{aug.class_name[t]} #{t} ({aug.ann_token[t] or 'pasted'}): "
                             f"{int(ft.gt_num_pos[t])} positive(s)"
                             + (f", reason: {why} ({REASON_TEXT.get(why, why)})" if why is not None else "")
                             + (f", best IoU with an anchor of its set {iou:.3f}" if math.isfinite(iou) else ""))
    if detail.head == "anchor":
        boxes = detail.anchor_boxes
        ok = detail.pos_anchor >= 0
        scene.pos_boxes = boxes[detail.pos_anchor[ok]]
        scene.pos_gt = detail.pos_gt[ok]
        scene.pos_forced = detail.pos_forced[ok]
        scene.ignore_boxes = boxes[detail.ignore_anchor]
        if near is not None and detail.gt_set[near] >= 0:
            r = radius or 8.0
            c = aug.boxes[near, :2]
            sel = (detail.anchor_set == detail.gt_set[near]) & (np.abs(boxes[:, 0] - c[0]) <= r) & \
                (np.abs(boxes[:, 1] - c[1]) <= r)
            scene.near_boxes = boxes[sel]
    elif detail.head == "center" and detail.heatmap is not None:
        res = detail.heatmap
        hm = cfg.heatmap
        if task is None:
            task = int(res.head[detail.target]) if detail.target is not None and k else 0
        if not 0 <= task < len(res.heads):
            from assignaudit.errors import ConfigError

            raise ConfigError(f"--task must be 0..{len(res.heads) - 1}, got {task}")
        scene.heatmap = res.heads[task].heatmap.amax(dim=0).cpu().numpy()
        w, h = hm.map_size
        cell = float(hm.voxel_size[0]) * float(hm.feature_map_stride)
        cell_y = float(hm.voxel_size[1]) * float(hm.feature_map_stride)
        x0, y0 = float(hm.point_cloud_range[0]), float(hm.point_cloud_range[1])
        scene.heatmap_extent = (x0, x0 + w * cell, y0, y0 + h * cell_y)
        scene.radius_m = np.where(res.used & (res.head == task), res.radius * cell, np.nan)
        scene.extra["task"] = task
    if detail.query_centres is not None:
        scene.query_centres = detail.query_centres
        scene.query_matched_gt = detail.query_matched_gt
    head = f"{cfg.name} [{cfg.head}, {cfg.framework}]"
    task_txt = f", task {scene.extra['task']} heatmap" if "task" in scene.extra else ""
    scene.title = (f"{head} -- sample {aug.sample_token}, replay {aug.replay}, {k} GT{task_txt}\n"
                   f"augmentation: {augmentation_text(aug)}")
    return scene
