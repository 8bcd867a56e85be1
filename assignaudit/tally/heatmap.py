"""CenterHead heatmaps (OpenPCDet / mmdet3d CenterPoint): tallies of `heatmap_targets` (assignment-semantics §5.3,
§7, §14).

What counts, per heatmap channel (= class), in the loss's own terms (``FocalLossCenterNet`` / ``GaussianFocalLoss``):

* positive = a cell with ``hm == 1`` exactly. It belongs to the GT slot that drew its centre there first (later GT
  of the same channel and cell are ``cell_collision``: they keep their regression slot but add no positive), and is
  counted in the band of that GT (BEV distance of the augmented centre from the LiDAR origin);
* negative = every other cell of the channel (``hm < 1``, weight ``(1 - hm)^4``), in the band of the cell centre
  ``pcr_min + (i + 0.5) * voxel * stride`` (metres); ``num_neg_reduced`` is the part with ``0 < hm < 1``;
* no ignore, nothing forced.

No pass over the dense maps: every drawn kernel is > 0 on its whole ``(2r+1)^2`` window (its smallest value, at a
corner, is ``exp(-36 r^2 / (2r+1)^2) > exp(-9)``, far above upstream's ``eps * max`` cut) and exactly 1 only at its
centre, so the non-zero cells are the union of the cropped windows and the positive cells are the owned centres.
A frame costs a few bincounts over its slots and one ``np.unique`` over the window cells (tests check the counts
against the dense maps).

pcdet's head-relabelling quirk (§5.1) can draw a GT a second time in a later head under another class. Channel
counts (summary ``num_pos``, ``num_neg``) follow the maps, so such a phantom positive is credited to the channel's
class; the per-GT columns (objects ``num_pos`` 0/1, ``zero_pos_reason``) describe each GT's own slot.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from assignaudit import schema
from assignaudit.assign.heatmap import HeatmapParams, HeatmapResult, heatmap_targets
from assignaudit.bands import ALL_BANDS, Bands
from assignaudit.config.model import DetectorConfig
from assignaudit.config.schema import log_heatmap_warnings
from assignaudit.errors import ConfigError
from assignaudit.tally.base import FrameTally, GTBands, Tallies, add_per_band

log = logging.getLogger(__name__)

RADIUS_SCHEMA = pa.schema([("class", pa.string()), ("band", pa.string()), ("radius_cells", pa.int64()),
                           ("num_gt", pa.int64())])
if tuple(RADIUS_SCHEMA.names) != schema.RADIUS_COLUMNS:
    raise ImportError("tally.heatmap.RADIUS_SCHEMA is out of step with schema.RADIUS_COLUMNS")


def cell_band_index(params: HeatmapParams, bands: Bands) -> np.ndarray:
    """int64 ``[H * W]``: band of each feature-map cell centre, row-major (``y * W + x``).

    Cell ``(i, j)`` centre = ``pcr_min + (i + 0.5) * voxel * stride`` metres on each axis.
    """
    w, h = params.map_size
    pcr, vox, s = params.point_cloud_range, params.voxel_size, params.feature_map_stride
    xs = pcr[0] + (np.arange(w) + 0.5) * vox[0] * s
    ys = pcr[1] + (np.arange(h) + 0.5) * vox[1] * s
    return bands.index(np.hypot(xs[None, :], ys[:, None]).reshape(-1))


def window_cells(channel: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray, w: int,
                 h: int) -> np.ndarray:
    """Distinct flat indices ``(channel * h + y) * w + x`` of every cell covered by a drawn kernel (the ``(2r+1)^2``
    window around each centre, cropped at the map border). int64 numpy ``[N]`` inputs; no loop over slots or radii.
    """
    if channel.size == 0:
        return np.zeros(0, dtype=np.int64)
    r_max = int(radius.max())
    off = np.arange(-r_max, r_max + 1, dtype=np.int64)
    inside = np.abs(off)[None, :] <= radius[:, None]  # [N, D]: offsets within this slot's own radius
    xs = cx[:, None] + off[None, :]
    ys = cy[:, None] + off[None, :]
    okx = inside & (xs >= 0) & (xs < w)
    oky = inside & (ys >= 0) & (ys < h)
    keys = (channel[:, None, None] * h + ys[:, :, None]) * w + xs[:, None, :]  # [N, D(y), D(x)]
    return np.unique(keys[oky[:, :, None] & okx[:, None, :]])


class HeatmapTally:
    head = "center"
    collect_positives = False  # count --quality: hand back each regression slot's decoded cell box

    def __init__(self, config: DetectorConfig, bands: Bands, device: torch.device) -> None:
        if config.heatmap is None:
            raise ConfigError(f"config {config.name!r}: head 'center' needs 'heatmap' (CenterHead target settings)")
        p: HeatmapParams = config.heatmap
        missing = [c for c in config.class_names if c not in p.class_names]
        if missing:
            raise ConfigError(f"config {config.name!r}: class(es) {missing} are not in heatmap.class_names "
                              f"{list(p.class_names)}")
        self.config, self.params, self.bands, self.device = config, p, bands, device
        self.class_names = tuple(config.class_names)
        class_index = {c: i for i, c in enumerate(self.class_names)}
        heads = p.head_classes
        self.ch_offset = np.cumsum([0] + [len(n) for n in heads]).astype(np.int64)
        channel_names = [c for names in heads for c in names]
        # Channel -> config class (-1: a channel no config class maps to; its cells are not reported).
        self.channel_class = np.array([class_index.get(c, -1) for c in channel_names], dtype=np.int64)
        self.w, self.h = p.map_size
        self.cell_band = cell_band_index(p, bands)
        self.cells_per_band = np.bincount(self.cell_band, minlength=len(bands)).astype(np.int64)  # [B]
        nb = len(bands)
        # [CH, C] one-hot: channel counts -> class counts with one matmul.
        self.ch_to_class = np.zeros((len(channel_names), len(self.class_names)), np.int64)
        ok = self.channel_class >= 0
        self.ch_to_class[np.flatnonzero(ok), self.channel_class[ok]] = 1
        self.nb = nb
        self.tallies = Tallies(len(self.class_names), nb + 1)
        self.num_phantom_slots = 0
        self.warnings = tuple(p.warnings)
        log_heatmap_warnings(p)  # once per process (the loader may already have said it)

    def targets(self, boxes: np.ndarray, class_name: np.ndarray) -> HeatmapResult:
        gt_boxes = torch.as_tensor(boxes[:, :7], dtype=torch.float32, device=self.device)
        return heatmap_targets(gt_boxes, class_name, self.params)

    def add_frame(self, boxes: np.ndarray, class_name: np.ndarray, gtb: GTBands, sample_token: str) -> FrameTally:
        return self.tally(self.targets(boxes, class_name), gtb, boxes)

    def _positives(self, res: HeatmapResult, slot_gt, slot_ch, slot_used, boxes: np.ndarray):
        """Every regression slot (mask = 1) of a config class, with the box decoded at its centre cell with zero
        offset (``x = ix * stride * voxel + pcr_min``) and its GT's own z, size and yaw (assignaudit.quality)."""
        from assignaudit.quality import Positives

        sel = slot_used & (self.channel_class[slot_ch] >= 0)
        g = slot_gt[sel]
        p = self.params
        pcr, vox, s = p.point_cloud_range, p.voxel_size, p.feature_map_stride
        ref = torch.as_tensor(np.asarray(boxes, np.float32)[g, :7], device=self.device).clone()
        ref[:, 0] = torch.as_tensor(res.cell_x[g] * (s * vox[0]) + pcr[0], dtype=torch.float32, device=self.device)
        ref[:, 1] = torch.as_tensor(res.cell_y[g] * (s * vox[1]) + pcr[1], dtype=torch.float32, device=self.device)
        return Positives(ref, g.astype(np.int64), self.channel_class[slot_ch[sel]].astype(np.int64))

    def tally(self, res: HeatmapResult, gtb: GTBands, boxes: np.ndarray | None = None) -> FrameTally:
        """Tally one frame's `heatmap_targets` result (its GT in the order of ``gtb``)."""
        t, nb, w, h = self.tallies, self.nb, self.w, self.h
        num_c = t.num_classes
        n_ch = self.channel_class.shape[0]

        # Slots of every head, channels made global.
        slot_gt = np.concatenate([hh.slot_gt for hh in res.heads])
        slot_ch = np.concatenate([hh.slot_channel + self.ch_offset[i] for i, hh in enumerate(res.heads)])
        slot_used = np.concatenate([hh.slot_used for hh in res.heads])
        slot_reason = np.concatenate([hh.slot_reason for hh in res.heads])
        self.num_phantom_slots += int(sum(int((hh.slot_phantom & hh.slot_used).sum()) for hh in res.heads))

        # Owned positive cells: drawn slots that no earlier slot of the channel beat to the cell.
        owner = slot_used & (slot_reason != schema.REASON_CELL_COLLISION)
        o_gt, o_ch = slot_gt[owner], slot_ch[owner]
        o_cell = res.cell_y[o_gt] * w + res.cell_x[o_gt]
        o_cls = self.channel_class[o_ch]
        credit = o_cls >= 0
        pos_gt_band = np.bincount(o_cls[credit] * nb + gtb.gt_band[o_gt[credit]],
                                  minlength=num_c * nb).reshape(num_c, nb)
        add_per_band(t.num_pos, pos_gt_band)

        # Non-zero cells per channel and cell band; negatives = all cells - positives, by cell band.
        used = slot_used
        u_gt = slot_gt[used]
        nz = window_cells(slot_ch[used], res.cell_x[u_gt], res.cell_y[u_gt], res.radius[u_gt], w, h)
        hw = h * w
        nz_cb = np.bincount((nz // hw) * nb + self.cell_band[nz % hw], minlength=n_ch * nb).reshape(n_ch, nb)
        pos_cb = np.bincount(o_ch * nb + self.cell_band[o_cell], minlength=n_ch * nb).reshape(n_ch, nb)
        neg_cls = self.ch_to_class.T @ (self.cells_per_band[None, :] - pos_cb)  # [C, B]
        red_cls = self.ch_to_class.T @ (nz_cb - pos_cb)
        add_per_band(t.num_neg, neg_cls)
        add_per_band(t.num_neg_reduced, red_cls)

        # Per GT (own slot).
        reason = res.reason
        has_pos = reason == None  # noqa: E711 -- elementwise on an object array
        gtb.add(t.num_gt)
        gtb.add(t.num_gt_zero_pos, select=~has_pos)
        gtb.add(t.num_gt_collision, select=reason == schema.REASON_CELL_COLLISION)
        gtb.add(t.num_gt_truncated, select=reason == schema.REASON_TRUNCATED_MAX_OBJS)
        gtb.add(t.num_gt_out_of_map, select=reason == schema.REASON_OUT_OF_MAP)
        gtb.add(t.num_gt_clamped, select=res.clamped)
        drawn = np.flatnonzero(res.used)
        if drawn.size:
            t.grow_radius(int(res.radius[drawn].max()))
            gtb.add_hist(t.radius_hist, drawn, res.radius[drawn])

        k = reason.shape[0]
        gt_num_pos = has_pos.astype(np.int64)
        positives = self._positives(res, slot_gt, slot_ch, slot_used, boxes) if self.collect_positives else None
        return FrameTally(
            positives=positives,
            gt_num_pos=gt_num_pos,
            gt_num_forced=np.zeros(k, np.int64),
            gt_max_iou=np.full(k, np.nan, np.float32),
            gt_zero_pos_reason=reason,
            class_num_pos=pos_gt_band.sum(axis=1),
            class_num_neg=neg_cls.sum(axis=1),
            class_num_ignore=np.zeros(num_c, np.int64),
        )

    def metadata(self) -> dict[str, Any]:
        p = self.params
        return {
            "counting": {
                "family": "center",
                "positive": "heatmap cells with hm == 1 (unique per channel; a GT whose centre cell an earlier GT "
                            "of its class already owns is a cell_collision and adds none)",
                "negative": "every other cell of the channel (hm < 1, weight (1-hm)^4); num_neg_reduced: the cells "
                            "with 0 < hm < 1 (penalty-reduced), part of num_neg",
                "ignore": "none (CenterHead has no ignore state)",
                "forced": "none",
                "band_attribution": "GT and positives: band of the GT owning the cell (augmented BEV distance from "
                                    "the LiDAR origin); negatives: band of the cell centre "
                                    "pcr_min + (i + 0.5) * voxel * stride",
                "objects_num_pos": "1 when the GT's own slot owns a positive cell, else 0 (pcdet's head "
                                   "relabelling can draw extra 'phantom' slots, credited to the channel's class in "
                                   "the summary)",
            },
            "heatmap": {
                "variant": p.variant, "map_size_wh": list(p.map_size), "feature_map_stride": p.feature_map_stride,
                "cells_per_channel": int(self.w * self.h), "num_channels": int(self.channel_class.shape[0]),
                "heads": [list(hc) for hc in p.head_classes], "num_max_objs": p.num_max_objs,
                "min_radius": p.min_radius, "gaussian_overlap": p.gaussian_overlap,
            },
            "heatmap_warnings": list(self.warnings),
            "num_phantom_slots": self.num_phantom_slots,
        }

    def extra_reports(self) -> dict[str, tuple[pd.DataFrame, pa.Schema]]:
        hist = self.tallies.radius_hist  # [C, B+1, R]
        c, b, r = np.nonzero(hist)
        band_names = np.array(self.bands.names + [ALL_BANDS], dtype=object)
        table = pd.DataFrame({"class": np.array(self.class_names, dtype=object)[c], "band": band_names[b],
                              "radius_cells": r.astype(np.int64), "num_gt": hist[c, b, r].astype(np.int64)},
                             columns=list(schema.RADIUS_COLUMNS))
        return {schema.RADIUS_FILE: (table, RADIUS_SCHEMA)}

    def nan_columns(self) -> tuple[str, ...]:
        return ("iou_pos_p10", "iou_pos_p50")

    MERGE_FIELDS: tuple[str, ...] = ("num_phantom_slots",)
    """Accumulators besides ``tallies`` that `merge` adds."""

    def merge(self, other) -> None:
        """Add the counts of ``other`` (same config, other frames; or a shard's delta, assignaudit.parallel)."""
        self.tallies.merge(other.tallies)
        self.num_phantom_slots += int(other.num_phantom_slots)
