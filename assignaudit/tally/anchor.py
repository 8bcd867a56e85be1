"""Anchor heads (OpenPCDet AxisAligned / ATSS, mmdet MaxIoU): tallies of `assign_frame` (assignment-semantics §3,
§4, §6, §14).

Counting, per config class and range band:

* positives (forced ones too) are credited to one GT by the framework's identity rule
  (`FrameAssignment.pos_gt_index`, §12.1) and counted in that GT's class and band;
* negatives and ignores are counted per anchor set in the band of the anchor centre. Class-aware assigners: a set's
  counts go to the set's class (a set whose ``class_name`` is no config class, e.g. generic FPN sizes, is left
  out). Class-agnostic mmdet (``assigner.class_agnostic``, mmdet3d nuScenes PointPillars: one ``Max3DIoUAssigner``
  over every size): a negative anchor has label ``num_classes`` (background) and weight 1 in the sigmoid focal loss,
  so it is a negative of *every* class channel, and an ignored anchor (weight 0) is ignored in every channel. So
  every class gets the totals over all anchors, whatever their set (§6.5 "Encoding").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from assignaudit.assign.anchors import Anchors, generate_anchors
from assignaudit.assign.assigner import assign_frame
from assignaudit.bands import Bands
from assignaudit.config.model import DetectorConfig
from assignaudit.errors import ConfigError
from assignaudit.tally.base import FrameTally, GTBands, Tallies, add_iou_hist, add_per_band


class AnchorTally:
    head = "anchor"
    collect_positives = False  # count --quality: hand back each positive's anchor (FrameTally.positives)

    def __init__(self, config: DetectorConfig, bands: Bands, device: torch.device) -> None:
        if config.anchors is None or config.assigner is None:
            raise ConfigError(f"config {config.name!r}: head 'anchor' needs 'anchors' and 'assigner'")
        self.config = config
        self.bands = bands
        self.device = device
        self.class_names = tuple(config.class_names)
        class_index = {c: i for i, c in enumerate(self.class_names)}
        num_c = len(self.class_names)
        self.anchors: Anchors = generate_anchors(config.anchors, device=device, bands=bands)
        sets = config.anchors.anchor_sets
        self.set_class = np.array([class_index.get(s.class_name, -1) for s in sets], dtype=np.int64)  # [S]
        # The set a GT of class c competes for (the first set of that class; -1: none). Several sets of one class
        # only occur with class-agnostic layouts, where every GT competes for every anchor anyway.
        self.set_of_class = np.full(num_c, -1, dtype=np.int64)
        for s in range(len(sets) - 1, -1, -1):
            if self.set_class[s] >= 0:
                self.set_of_class[self.set_class[s]] = s
        self.agnostic = bool(config.assigner.class_agnostic)
        self.tallies = Tallies(num_c, len(bands) + 1)
        self.paa = None  # count --paa: assign.paa.PaaOptions (enable_paa)

    def enable_paa(self, options) -> None:
        """``count --paa``: the initial assignment at PAA's thresholds, then `assign.paa.paa_reassign` per frame."""
        import dataclasses

        from assignaudit.assign.paa import initial_layout

        self.paa = options
        self.base_anchors = self.anchors
        layout = initial_layout(self.config.anchors, options.init_iou)
        self.anchors = generate_anchors(layout, device=self.device, bands=self.bands)
        self.paa_assigner = dataclasses.replace(self.config.assigner, min_pos_iou=0.0)
        lvl = torch.zeros(self.anchors.num_anchors, dtype=torch.int64, device=self.device)
        for i, sl in enumerate(self.anchors.level_slices):
            lvl[sl] = i
        self.paa_level = lvl
        self.paa_stats = {"num_gt_fitted": 0, "num_gt_too_few_candidates": 0, "num_positives_demoted": 0}

    def add_frame(self, boxes: np.ndarray, class_name: np.ndarray, gtb: GTBands, sample_token: str) -> FrameTally:
        t = self.tallies
        num_c = t.num_classes
        gt_set = self.set_of_class[gtb.gt_class]
        gt_boxes = torch.as_tensor(boxes[:, :7], dtype=torch.float32, device=self.device)
        if self.paa is None:
            res = assign_frame(self.anchors, gt_boxes, torch.as_tensor(gt_set, device=self.device),
                               self.config.assigner, self.bands)
        else:
            res = self._paa_frame(gt_boxes, gt_set, sample_token)
        gtb.add(t.num_gt)
        gtb.add(t.num_pos, res.gt_num_pos)
        gtb.add(t.num_forced, res.gt_num_forced)
        gtb.add(t.num_gt_zero_pos, (res.gt_num_pos == 0).astype(np.float64))
        add_iou_hist(t, gtb, res.pos_gt_index, res.pos_iou)

        if self.agnostic:
            # Background of every class channel: each class gets the all-set totals (module docstring).
            neg_cb = np.broadcast_to(res.num_neg_per_set_band.sum(axis=0), (num_c, len(self.bands)))
            ign_cb = np.broadcast_to(res.num_ignore_per_set_band.sum(axis=0), (num_c, len(self.bands)))
        else:
            valid = self.set_class >= 0
            neg_cb = np.zeros((num_c, len(self.bands)), np.int64)
            ign_cb = np.zeros((num_c, len(self.bands)), np.int64)
            np.add.at(neg_cb, self.set_class[valid], res.num_neg_per_set_band[valid])
            np.add.at(ign_cb, self.set_class[valid], res.num_ignore_per_set_band[valid])
        add_per_band(t.num_neg, neg_cb)
        add_per_band(t.num_ignore, ign_cb)

        positives = None
        if self.collect_positives and res.pos_anchor_index is not None:
            from assignaudit.quality import Positives

            idx = torch.as_tensor(res.pos_anchor_index, device=self.anchors.boxes.device)
            positives = Positives(self.anchors.boxes.index_select(0, idx), np.asarray(res.pos_gt_index, np.int64))
        return FrameTally(
            positives=positives,
            gt_num_pos=np.asarray(res.gt_num_pos, np.int64),
            gt_num_forced=np.asarray(res.gt_num_forced, np.int64),
            gt_max_iou=np.asarray(res.gt_max_iou, np.float32),
            gt_zero_pos_reason=np.asarray(res.gt_zero_pos_reason, dtype=object),
            class_num_pos=np.bincount(gtb.gt_class, weights=res.gt_num_pos, minlength=num_c).astype(np.int64),
            class_num_neg=neg_cb.sum(axis=1).astype(np.int64),
            class_num_ignore=ign_cb.sum(axis=1).astype(np.int64),
        )

    def _paa_frame(self, gt_boxes, gt_set, sample_token):
        from assignaudit.assign.paa import paa_reassign

        init = assign_frame(self.anchors, gt_boxes, torch.as_tensor(gt_set, device=self.device), self.paa_assigner,
                            self.bands)
        scores = self.paa.scores.frame(sample_token) if self.paa.scores is not None else None
        out = paa_reassign(init, self.anchors.set_index, self.anchors.with_bands(self.bands).band_index,
                           self.paa_level, len(self.bands), self.paa, scores)
        st = self.paa_stats
        st["num_gt_fitted"] += out.num_gt_fitted
        st["num_gt_too_few_candidates"] += out.num_gt_too_few
        st["num_positives_demoted"] += out.num_demoted
        return out.assignment

    def metadata(self) -> dict[str, Any]:
        negs = ("every anchor whose label is background counts as a negative of every class (class-agnostic "
                "assigner: label num_classes with weight 1 is a negative in each sigmoid channel), banded by the "
                "anchor centre; per-class num_neg / num_ignore are therefore the all-anchor totals")
        counting = {
            "family": "anchor",
            "positive": "anchors labelled positive (forced included), credited to one GT by the framework's "
                        "identity rule (pcdet: the anchor's own argmax GT; mmdet: the forcing GT)",
            "negative": negs if self.agnostic else "anchors of the class's anchor set labelled negative",
            "ignore": ("anchors ignored (pcdet label -1; mmdet assigned -1, label weight 0)"
                       + ("; class-agnostic: all-anchor totals for every class" if self.agnostic else "")),
            "class_agnostic": self.agnostic,
            "band_attribution": "GT, positives, forced: band of the credited GT (augmented BEV distance from the "
                                "LiDAR origin); negatives, ignores: band of the anchor centre",
        }
        unused = [s.class_name for s, c in zip(self.config.anchors.anchor_sets, self.set_class) if c < 0]
        if unused and not self.agnostic:
            counting["sets_without_config_class"] = unused
        meta = {"counting": counting, "assigner": self.config.to_dict().get("assigner"),
                "num_anchors_per_frame": int(self.anchors.boxes.shape[0])}
        if self.paa is not None:
            p = self.paa
            meta["paa"] = {"score": p.score_source, "score_dump": p.scores.path if p.scores is not None else None,
                           "topk": p.topk, "init_iou": p.init_iou, "covariance_type": p.covariance_type,
                           "separation": p.separation, **self.paa_stats,
                           "initial_assignment": f"the config's assigner with both thresholds at {p.init_iou} and "
                                                 "min_pos_iou 0 (PAA's MaxIoUAssigner)"}
            counting["positive"] = ("anchors PAA keeps: per GT, the top-k lowest-score initial positives per level, "
                                    "a 2-component GMM, then the separation scheme (docs/count-families.md)")
        return meta

    def extra_reports(self) -> dict[str, tuple[pd.DataFrame, pa.Schema]]:
        return {}

    def nan_columns(self) -> tuple[str, ...]:
        return ("radius_p50",)

    MERGE_FIELDS: tuple[str, ...] = ()
    """Accumulators besides ``tallies`` that `merge` adds (none for anchors)."""

    def merge(self, other) -> None:
        """Add the counts of ``other`` (a tally of the same config over other frames, or a shard's delta with
        ``tallies`` and `MERGE_FIELDS`; assignaudit.parallel)."""
        self.tallies.merge(other.tallies)
