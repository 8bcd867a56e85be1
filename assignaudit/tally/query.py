"""Query heads (DETR3D / PETR in mmdet3d, TransFusion in OpenPCDet): Hungarian matching tallies (assignment-semantics
§8, §14; dump layout in docs/query-dumps.md).

Every decoder layer is matched on its own; the summary reports the LAST layer (the one the detector predicts with),
``layers.parquet`` every layer:

* positive = a query matched to a GT (one per GT while K <= Q), in the GT's class and band;
* negative = every unmatched query (label = background, weight 1 in every class channel of the sigmoid focal loss),
  so each class gets the same count, banded by the query's decoded BEV centre (as class-agnostic anchors);
* no ignore, nothing forced; ``num_gt_useless``: GT whose last-layer query has 3D IoU < ``USELESS_IOU`` (0.1) with
  it (unmatched GT count as useless, as in `FrameReplay.useless`); ``iou_pos_p10/p50``: matched IoUs.

With a dump the GT must be the ones the model saw, so the pipeline runs without augmentation. Without a dump the
match itself is unknowable, but its size is not: ``min(K, Q)`` positives per frame (credited to the first ``Q`` GT
in frame order when K > Q, which real frames never reach) and ``Q - min(K, Q)`` negatives, in band ``all`` only (no
query positions to band them by).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from assignaudit import schema
from assignaudit.assign.hungarian import USELESS_IOU, QueryDump, QueryFrame, replay_frame
from assignaudit.bands import Bands
from assignaudit.config.model import DetectorConfig
from assignaudit.errors import ConfigError, DataError
from assignaudit.sources.base import Frame
from assignaudit.tally.base import FrameTally, GTBands, Tallies, add_iou_hist, add_per_band, band_of_points

LAYERS_SCHEMA = pa.schema([
    ("class", pa.string()), ("layer", pa.int64()), ("num_gt", pa.int64()), ("num_matched", pa.int64()),
    ("num_useless", pa.int64()), ("frac_useless", pa.float64()), ("mean_matched_iou", pa.float64()),
])
if tuple(LAYERS_SCHEMA.names) != schema.LAYERS_COLUMNS:
    raise ImportError("tally.query.LAYERS_SCHEMA is out of step with schema.LAYERS_COLUMNS")

POSITIVES_NO_DUMP = "K per frame (no dump)"


class QueryTally:
    head = "query"
    collect_positives = False  # count --quality: hand back each matched query's decoded box (needs a dump)

    def __init__(self, config: DetectorConfig, bands: Bands, device: torch.device,
                 dump: QueryDump | None = None) -> None:
        if config.query is None:
            raise ConfigError(f"config {config.name!r}: head 'query' needs 'query' (Hungarian matcher settings)")
        self.config, self.bands, self.dump = config, bands, dump
        self.class_names = tuple(config.class_names)
        num_c = len(self.class_names)
        self.tallies = Tallies(num_c, len(bands) + 1)
        if dump is not None:
            n_logits = dump.logits.shape[-1]
            if n_logits != num_c:
                raise DataError(f"query dump {dump.path}: {n_logits} logit columns but config {config.name!r} has "
                                f"{num_c} classes {list(self.class_names)} (column c must be class c)")
            self.token_index = {tok: i for i, tok in enumerate(dump.sample_tokens)}
            self.num_layers, self.num_queries = int(dump.boxes.shape[1]), int(dump.boxes.shape[2])
            if self.num_queries != config.query.num_queries:
                config_q = config.query.num_queries
                self.query_count_note = f"dump has {self.num_queries} queries, config says {config_q}: dump used"
            else:
                self.query_count_note = None
        else:
            self.token_index = {}
            self.num_layers, self.num_queries = int(config.query.num_layers), int(config.query.num_queries)
            self.query_count_note = None
        # query.cost bonet: the soft IoU / cross-entropy terms run over the frame's points (`see_frame`).
        self.needs_points = dump is not None and config.query.cost == "bonet"
        self._points: tuple[str, np.ndarray] | None = None
        self.points_read: dict[str, Any] = {"frames": 0, "points": 0, "points_in_range": 0, "files": {}}
        shape = (num_c, self.num_layers)
        self.layer_gt = np.zeros(shape, np.int64)
        self.layer_matched = np.zeros(shape, np.int64)
        self.layer_useless = np.zeros(shape, np.int64)
        self.layer_iou_sum = np.zeros(shape, np.float64)

    def missing_tokens(self, tokens: list[str]) -> list[str]:
        """Tokens (of the frames to count) the dump has no entry for."""
        return [t for t in tokens if t not in self.token_index] if self.dump is not None else []

    def see_frame(self, frame: Frame) -> None:
        """Read ``frame``'s points for the next `add_frame` (``query.cost: bonet``), cropped to the config's
        point-cloud range. DataError when the source gives the frame no point cloud."""
        from assignaudit.assign.bonet import crop_points
        from assignaudit.sources.points import frame_points_path, read_points_bin

        where = frame_points_path(frame)
        if where is None:
            raise DataError(f"query.cost bonet needs the frame's points, and frame {frame.sample_token!r} has none "
                            "(use --kitti-root, nuScenes with samples/LIDAR_TOP, or info files with a --data-path "
                            "that holds the velodyne files)")
        path, num_features = where
        pts = read_points_bin(path, num_features)
        kept = crop_points(pts, self.config.point_cloud_range)
        r = self.points_read
        r["frames"] += 1
        r["points"] += int(pts.shape[0])
        r["points_in_range"] += int(kept.shape[0])
        kind = (".pcd.bin (nuScenes, 5 float32 columns)" if num_features == 5
                else ".bin (KITTI-style, 4 float32 columns)")
        r["files"].setdefault(kind, str(Path(path).parent))
        self._points = (frame.sample_token, kept)

    @property
    def frame_points(self) -> np.ndarray | None:
        """The cropped points `see_frame` read last (None when the cost needs none)."""
        return self._points[1] if self._points is not None else None

    def add_frame(self, boxes: np.ndarray, class_name: np.ndarray, gtb: GTBands, sample_token: str) -> FrameTally:
        if self.dump is None:
            return self._add_no_dump(gtb)
        i = self.token_index.get(sample_token)
        if i is None:
            raise DataError(f"query dump {self.dump.path}: no entry for sample_token {sample_token!r}")
        t = self.tallies
        num_c, k = t.num_classes, boxes.shape[0]
        dump = self.dump
        qf = QueryFrame(sample_token, dump.boxes[i], dump.logits[i], dump.yaw_encoding)
        none = np.full(k, None, dtype=object)
        gt = Frame(sample_token, boxes, class_name, class_name, none, none, np.full(k, -1, np.int64),
                   np.full(k, -1, np.int64))
        points = None
        if self.needs_points:
            if self._points is None or self._points[0] != sample_token:
                raise DataError(f"query.cost bonet: no points were read for frame {sample_token!r}")
            points = self._points[1]
        rep = replay_frame(qf, gt, self.class_names, self.config.query.cost,
                           point_cloud_range=self.config.point_cloud_range, points=points)
        # Every GT reaching here has a config class, so the replay keeps them all, in order.
        last_q, last_iou, useless = rep.matched_query[-1], rep.matched_iou[-1], rep.useless
        matched = last_q >= 0
        gtb.add(t.num_gt)
        gtb.add(t.num_pos, matched.astype(np.float64))
        gtb.add(t.num_gt_zero_pos, select=~matched)
        gtb.add(t.num_gt_useless, select=useless[-1])
        add_iou_hist(t, gtb, np.flatnonzero(matched), last_iou[matched])

        # Negatives: unmatched queries of the last layer, banded by their BEV centre, the same for every class.
        is_neg = np.ones(self.num_queries, dtype=bool)
        is_neg[last_q[matched]] = False
        centre = dump.boxes[i, -1]
        q_band = band_of_points(centre[:, 0].astype(np.float64), centre[:, 1].astype(np.float64), self.bands)
        neg_b = np.bincount(q_band[is_neg], minlength=len(self.bands)).astype(np.int64)
        neg_cb = np.broadcast_to(neg_b, (num_c, len(self.bands)))
        add_per_band(t.num_neg, neg_cb)

        # Per layer and class.
        n_l = self.num_layers
        flat = (gtb.gt_class[None, :] * n_l + np.arange(n_l)[:, None]).ravel()
        size = num_c * n_l
        all_m = (rep.matched_query >= 0).ravel()
        self.layer_gt += np.bincount(flat, minlength=size).reshape(num_c, n_l)
        self.layer_matched += np.bincount(flat, all_m, minlength=size).astype(np.int64).reshape(num_c, n_l)
        self.layer_useless += np.bincount(flat, useless.ravel(), minlength=size).astype(np.int64).reshape(num_c, n_l)
        self.layer_iou_sum += np.bincount(flat, np.where(all_m, rep.matched_iou.ravel(), 0.0),
                                          minlength=size).reshape(num_c, n_l)

        reason = np.where(matched, None, schema.REASON_UNMATCHED).astype(object)
        positives = None
        if self.collect_positives:
            from assignaudit.assign.hungarian import decode_query_boxes
            from assignaudit.quality import Positives

            g = np.flatnonzero(matched)
            q = torch.from_numpy(np.ascontiguousarray(dump.boxes[i, -1][last_q[g]]))
            positives = Positives(decode_query_boxes(q.to(torch.float32), dump.yaw_encoding), g.astype(np.int64))
        return FrameTally(
            positives=positives,
            gt_num_pos=matched.astype(np.int64), gt_num_forced=np.zeros(k, np.int64),
            gt_max_iou=np.where(matched, last_iou, np.nan).astype(np.float32), gt_zero_pos_reason=reason,
            class_num_pos=np.bincount(gtb.gt_class, matched, minlength=num_c).astype(np.int64),
            class_num_neg=np.full(num_c, int(neg_b.sum()), np.int64), class_num_ignore=np.zeros(num_c, np.int64),
        )

    def _add_no_dump(self, gtb: GTBands) -> FrameTally:
        t = self.tallies
        num_c, k, q = t.num_classes, gtb.gt_class.shape[0], self.num_queries
        matched = np.arange(k) < q  # min(K, Q) positives; which GT lose when K > Q depends on the predictions
        gtb.add(t.num_gt)
        gtb.add(t.num_pos, matched.astype(np.float64))
        gtb.add(t.num_gt_zero_pos, select=~matched)
        n_neg = q - int(matched.sum())
        t.num_neg[:, -1] += n_neg  # band `all` only: no query positions without a dump
        reason = np.where(matched, None, schema.REASON_UNMATCHED).astype(object)
        return FrameTally(
            gt_num_pos=matched.astype(np.int64), gt_num_forced=np.zeros(k, np.int64),
            gt_max_iou=np.full(k, np.nan, np.float32), gt_zero_pos_reason=reason,
            class_num_pos=np.bincount(gtb.gt_class, matched, minlength=num_c).astype(np.int64),
            class_num_neg=np.full(num_c, n_neg, np.int64), class_num_ignore=np.zeros(num_c, np.int64),
        )

    def layers_frame(self) -> pd.DataFrame:
        """One row per (class, decoder layer): ``schema.LAYERS_COLUMNS`` (the same numbers as
        `summarize_replays` over the counted frames; classes without GT have NaN fractions)."""
        num_c, n_l = self.layer_gt.shape
        gt = self.layer_gt.reshape(-1)
        matched = self.layer_matched.reshape(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(gt > 0, self.layer_useless.reshape(-1) / np.maximum(gt, 1), np.nan)
            mean_iou = np.where(matched > 0, self.layer_iou_sum.reshape(-1) / np.maximum(matched, 1), np.nan)
        return pd.DataFrame({
            "class": np.repeat(np.array(self.class_names, dtype=object), n_l),
            "layer": np.tile(np.arange(n_l, dtype=np.int64), num_c), "num_gt": gt, "num_matched": matched,
            "num_useless": self.layer_useless.reshape(-1), "frac_useless": frac, "mean_matched_iou": mean_iou,
        }, columns=list(schema.LAYERS_COLUMNS))

    def metadata(self) -> dict[str, Any]:
        has_dump = self.dump is not None
        meta: dict[str, Any] = {
            "counting": {
                "family": "query",
                "positive": ("queries matched to a GT by the Hungarian assigner in the LAST decoder layer"
                             if has_dump else "min(K, Q) per frame: every GT is matched while K <= Q (no dump, so "
                                              "which query is unknown)"),
                "negative": "unmatched queries (background in every class channel): the same count for every class"
                            + ("" if has_dump else "; band 'all' only"),
                "ignore": "none (Hungarian assigners have no ignore state)",
                "forced": "none",
                "useless": f"GT whose last-layer match has 3D IoU < {USELESS_IOU} (unmatched GT included)",
                "band_attribution": "GT and positives: band of the GT (augmented BEV distance from the LiDAR "
                                    "origin); negatives: band of the query's decoded BEV centre"
                                    + ("" if has_dump else " (no dump: band 'all' only)"),
            },
            "query_dump": self.dump.path if has_dump else None,
            "positives": "matched queries, last decoder layer (dump)" if has_dump else POSITIVES_NO_DUMP,
            "num_queries": self.num_queries,
            "num_layers": self.num_layers,
            "cost": self.config.query.cost,
        }
        if self.query_count_note:
            meta["query_count_note"] = self.query_count_note
        if self.config.query.cost == "bonet":
            meta["bonet"] = {
                "cost": "vertex L2 of the 3D AABB min/max corners + (-soft IoU) + cross-entropy over the points, "
                        "weights 1, 1, 1 (3D-BoNet defaults); no class term",
                "membership": "per-point soft membership computed from each query's decoded box (3D-BoNet "
                              "Algorithm 1, theta 100 / 20); query dumps carry no per-point scores",
                "points_read": has_dump,
                "points": {**self.points_read, "cropped_to": list(self.config.point_cloud_range),
                           "moved": "no: a query dump turns augmentation off, so points and GT are both in the "
                                    "dataset's LiDAR frame"} if has_dump else None,
            }
        return meta

    def extra_reports(self) -> dict[str, tuple[pd.DataFrame, pa.Schema]]:
        if self.dump is None:
            return {}
        return {schema.LAYERS_FILE: (self.layers_frame(), LAYERS_SCHEMA)}

    def nan_columns(self) -> tuple[str, ...]:
        return ("radius_p50",) + (() if self.dump is not None else ("iou_pos_p10", "iou_pos_p50"))

    MERGE_FIELDS: tuple[str, ...] = ("layer_gt", "layer_matched", "layer_useless", "layer_iou_sum")
    """Accumulators besides ``tallies`` that `merge` adds. ``layer_iou_sum`` is a float sum: merged shards equal the
    serial run only up to float rounding, so `count` shards query heads only without a dump (assignaudit.parallel)."""

    def merge(self, other) -> None:
        """Add the counts of ``other`` (same config, other frames; or a shard's delta, assignaudit.parallel)."""
        self.tallies.merge(other.tallies)
        for name in self.MERGE_FIELDS:
            getattr(self, name).__iadd__(getattr(other, name))
