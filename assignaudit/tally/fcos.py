"""FCOS-style point heads (``head: fcos``): tallies of `assignaudit.assign.fcos.fcos_assign`.

Counting, per config class and range band:

* positive = a feature-map location (any level) assigned to a GT, credited to that GT's class and band;
* negative = every other location: FCOS labels it background (``num_classes``) and the sigmoid focal loss makes it
  a negative of every class channel, so every class gets the same all-location count, banded by the location's BEV
  distance (as class-agnostic anchors, docs/count-families.md);
* no ignore, nothing forced.

With ``count --quality`` the reference box of a positive is the box centred at the location with the GT's own z,
size and yaw (what a perfect ``l, t, r, b`` prediction from that location would decode to if the centre were
regressed from the location).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from assignaudit.assign.fcos import FcosParams, fcos_assign, points_per_band
from assignaudit.bands import Bands
from assignaudit.config.model import DetectorConfig
from assignaudit.errors import ConfigError
from assignaudit.tally.base import FrameTally, GTBands, Tallies, add_per_band


class FcosTally:
    head = "fcos"
    collect_positives = False  # count --quality

    def __init__(self, config: DetectorConfig, bands: Bands, device: torch.device) -> None:
        if config.fcos is None:
            raise ConfigError(f"config {config.name!r}: head 'fcos' needs an 'fcos' section")
        self.config, self.params, self.bands, self.device = config, config.fcos, bands, device
        p: FcosParams = config.fcos
        self.class_names = tuple(config.class_names)
        self.tallies = Tallies(len(self.class_names), len(bands) + 1)
        self.points_per_band = points_per_band(p, bands)  # [B]

    def add_frame(self, boxes: np.ndarray, class_name: np.ndarray, gtb: GTBands, sample_token: str) -> FrameTally:
        t = self.tallies
        num_c = t.num_classes
        gt = torch.as_tensor(boxes[:, :7], dtype=torch.float64, device=self.device)
        res = fcos_assign(gt, self.params)
        gtb.add(t.num_gt)
        gtb.add(t.num_pos, res.gt_num_pos.astype(np.float64))
        gtb.add(t.num_gt_zero_pos, (res.gt_num_pos == 0).astype(np.float64))
        pos_band = self.bands.index(np.hypot(res.pos_xy[:, 0], res.pos_xy[:, 1]))
        neg_b = self.points_per_band - np.bincount(pos_band, minlength=len(self.bands))
        neg_cb = np.broadcast_to(neg_b, (num_c, len(self.bands)))
        add_per_band(t.num_neg, neg_cb)
        positives = None
        if self.collect_positives:
            from assignaudit.quality import Positives

            ref = torch.as_tensor(boxes[res.pos_gt, :7], dtype=torch.float32, device=self.device).clone()
            ref[:, :2] = torch.as_tensor(res.pos_xy, dtype=torch.float32, device=self.device)
            positives = Positives(ref, res.pos_gt)
        return FrameTally(
            positives=positives,
            gt_num_pos=res.gt_num_pos, gt_num_forced=np.zeros(len(boxes), np.int64),
            gt_max_iou=np.full(len(boxes), np.nan, np.float32), gt_zero_pos_reason=res.gt_zero_pos_reason,
            class_num_pos=np.bincount(gtb.gt_class, weights=res.gt_num_pos, minlength=num_c).astype(np.int64),
            class_num_neg=np.full(num_c, int(neg_b.sum()), np.int64), class_num_ignore=np.zeros(num_c, np.int64),
        )

    def metadata(self) -> dict[str, Any]:
        p = self.params
        return {
            "counting": {
                "family": "fcos",
                "positive": "feature-map locations (every level) assigned to a GT: inside its (centre-sampling) "
                            "region and within the level's regression range; the smallest-area (mmdet) or nearest "
                            "(mmdet3d) GT wins",
                "negative": "every other location (background in every class channel): the same count for every "
                            "class",
                "ignore": "none (FCOS has no ignore state)",
                "forced": "none",
                "band_attribution": "GT and positives: band of the GT (augmented BEV distance from the LiDAR "
                                    "origin); negatives: band of the location",
            },
            "fcos": {**p.to_dict(), "map_sizes_wh": [list(m) for m in p.map_sizes],
                     "num_points_per_frame": p.num_points},
        }

    def extra_reports(self) -> dict[str, tuple[pd.DataFrame, pa.Schema]]:
        return {}

    def nan_columns(self) -> tuple[str, ...]:
        return ("iou_pos_p10", "iou_pos_p50", "radius_p50")

    MERGE_FIELDS: tuple[str, ...] = ()
    """Accumulators besides ``tallies`` that `merge` adds (none)."""

    def merge(self, other) -> None:
        """Add the counts of ``other`` (same config, other frames; or a shard's delta, assignaudit.parallel)."""
        self.tallies.merge(other.tallies)
