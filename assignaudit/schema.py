"""Column names of every Parquet report, in order (one place; the CI gate and the tests read them from here)."""

from __future__ import annotations

from typing import Final

# ---- count -------------------------------------------------------------------------------------------------------
SUMMARY_COLUMNS: Final = (
    "class", "band", "band_lo", "band_hi", "num_gt", "num_pos", "num_neg", "num_ignore", "num_forced",
    "num_gt_zero_pos", "pos_per_gt", "iou_pos_p10", "iou_pos_p50",
)
OBJECTS_COLUMNS: Final = (
    "sample_token", "replay", "ann_token", "source", "class", "x", "y", "z", "dx", "dy", "dz", "yaw", "dist", "band",
    "num_lidar_pts", "num_pos", "num_forced", "max_iou", "zero_pos_reason",
)
FRAMES_COLUMNS: Final = ("sample_token", "replay", "class", "num_gt", "num_pos", "num_neg", "num_ignore")

SUMMARY_FILE: Final = "summary.parquet"
OBJECTS_FILE: Final = "objects.parquet"
FRAMES_FILE: Final = "frames.parquet"

# zero_pos_reason values
REASON_NO_OVERLAP: Final = "no_overlap"  # best IoU with every anchor of its class is exactly 0
REASON_TAKEN: Final = "taken_by_other_gt"  # its maximal anchors went to another GT via the identity rule
REASON_BELOW_MIN_POS_IOU: Final = "below_min_pos_iou"  # mmdet: best IoU < min_pos_iou and < pos threshold
# CenterHead heatmaps (assign/heatmap.py keeps the same strings)
REASON_CELL_COLLISION: Final = "cell_collision"  # drawn, but an earlier GT of its class owns the same centre cell
REASON_TRUNCATED_MAX_OBJS: Final = "truncated_max_objs"  # beyond NUM_MAX_OBJS / max_objs in the head's order
REASON_OUT_OF_MAP: Final = "out_of_map"  # mmdet3d: integer centre cell outside the feature map, skipped
REASON_DEGENERATE_SIZE: Final = "degenerate_size"  # dx or dy <= 0 in cells: skipped
# FCOS-style point heads (assign/fcos.py)
REASON_NO_POINT_INSIDE: Final = "no_point_inside"  # no feature-map location inside its (centre) region, any level
REASON_OUTSIDE_REGRESS_RANGES: Final = "outside_regress_ranges"  # inside on some level, never in its range
# PAA re-assignment (assign/paa.py): the GT had initial positives but PAA kept none
REASON_PAA_TOO_FEW: Final = "paa_too_few_candidates"  # < 2 candidates: no GMM, every initial positive dropped
REASON_PAA_BACKGROUND: Final = "paa_background_component"  # the GMM put every candidate in the other component
# Query heads (Hungarian replay)
REASON_UNMATCHED: Final = "unmatched"  # more GT than queries: no query left for it

# Added for the heatmap and query families (additive, written after SUMMARY_COLUMNS for every family; 0 / NaN where
# a column has no meaning for the config's family). num_neg in the fixed columns stays "every negative"; for
# heatmaps it is pure (hm == 0) + penalty-reduced (0 < hm < 1) cells, and num_neg_reduced is the latter part.
SUMMARY_EXTRA_COLUMNS: Final = (
    "num_neg_reduced", "num_gt_collision", "num_gt_truncated", "num_gt_clamped", "num_gt_out_of_map",
    "num_gt_useless", "radius_p50",
)
# Extra `count` reports (only for the family that has them) and `count --compare-config`.
LAYERS_FILE: Final = "layers.parquet"  # query heads: per class and decoder layer (Hungarian replay of a dump)
LAYERS_COLUMNS: Final = ("class", "layer", "num_gt", "num_matched", "num_useless", "frac_useless", "mean_matched_iou")
RADIUS_FILE: Final = "radius.parquet"  # heatmap heads: Gaussian radius histogram of drawn GT, per class and band
RADIUS_COLUMNS: Final = ("class", "band", "radius_cells", "num_gt")
# `count --quality` (assignaudit/quality.py): summary columns appended after the extra ones, and a histogram report.
SUMMARY_QUALITY_COLUMNS: Final = (
    "num_pos_quality", "iou_bev_p50", "iou_3d_p50", "num_pos_low_iou", "num_pos_beyond_beta", "loss_iou_sum",
    "loss_eiou_sum", "loss_eiou_3d_sum", "focal_eiou_sum", "low_quality_share", "low_quality_share_focal",
)
QUALITY_FILE: Final = "quality.parquet"
QUALITY_COLUMNS: Final = ("class", "band", "quantity", "bin_lo", "bin_hi", "count")
# `count --prompts` (point-prompted queries, assign/prompt.py): prompt agreement per class and band.
PROMPTS_FILE: Final = "prompts.parquet"
PROMPTS_COLUMNS: Final = ("class", "band", "num_gt", "num_agree", "agreement_rate")
COMPARE_FILE: Final = "compare.parquet"
COMPARE_METRICS: Final = (
    "num_gt", "num_pos", "pos_per_gt", "num_gt_zero_pos", "frac_gt_zero_pos", "num_neg", "num_ignore",
)
COMPARE_COLUMNS: Final = ("class", "band", "in_a", "in_b") + tuple(
    f"{m}_{side}" for m in COMPARE_METRICS for side in ("a", "b", "diff")
)

# ---- yaw ---------------------------------------------------------------------------------------------------------
YAW_SUMMARY_COLUMNS: Final = (
    "class", "band", "num_pred", "num_gt", "num_matched", "mean_abs_yaw_err", "median_abs_yaw_err", "num_flips",
    "flip_rate", "num_swaps_90", "aoe_nusc", "num_dup_pre_nms", "dup_rate_pre_nms", "num_dup_post_nms",
    "dup_rate_post_nms", "tp_lost_by_nms",
)
YAW_HIST_COLUMNS: Final = ("class", "band", "bin_lo", "bin_hi", "count")
PREDICTIONS_COLUMNS: Final = (
    "sample_token", "index", "class", "score", "x", "y", "z", "dx", "dy", "dz", "yaw", "matched_ann_token",
    "center_dist", "yaw_residual", "is_flip", "is_duplicate", "kept_by_nms",
)
YAW_SUMMARY_FILE: Final = "yaw_summary.parquet"
YAW_HIST_FILE: Final = "yaw_hist.parquet"
PREDICTIONS_FILE: Final = "predictions.parquet"
NMS_SWEEP_FILE: Final = "nms_sweep.parquet"
# Added by `yaw` (additive): columns written after the fixed ones above, and the NMS sweep report.
YAW_SUMMARY_EXTRA_COLUMNS: Final = ("num_dup_gt", "num_kept_nms")
PREDICTIONS_EXTRA_COLUMNS: Final = ("is_duplicate_gt", "band")
NMS_SWEEP_COLUMNS: Final = (
    "class", "nms_type", "nms_value", "num_pred", "num_kept", "num_dup_before", "num_dup_left", "dup_rate_left",
    "tp_before", "tp_after", "tp_lost",
)
