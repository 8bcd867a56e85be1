r"""Hungarian (one-to-one) assignment of query-based heads, replayed from a dump of decoder outputs.

Query heads (DETR3D and PETR in mmdetection3d, TransFusion in OpenPCDet) match every GT to exactly one query by
minimising a matching cost with ``scipy.optimize.linear_sum_assignment`` (assignment-semantics.md §8). The result
depends on the predictions, so it can only be replayed from a dump of the decoder outputs (`load_query_dump`,
layout in ``docs/query-dumps.md``). Without a dump the count is known anyway: per decoder layer exactly
``min(K, Q)`` queries are positive (`positives_without_dump`), and nothing is ignored.

Box layouts (torch tensors):

* **query box** ``[..., 10]``: ``cx, cy, log l, log w, cz, log h, sin, cos, vx, vy``: the DETR3D head's
  ``bbox_pred`` with centres already in metres (the head denormalises ``sigmoid * range + min`` itself). ``cz`` is
  the geometric centre (the GT side uses ``gravity_center``). ``l`` lies along the heading (= canonical ``dx``).
* **yaw encoding** of ``sin, cos``: ``"detr3d"`` (default) is what mmdetection3d 1.x trains DETR3D/PETR with:
  ``projects/DETR3D/detr3d/util.py::normalize_bbox`` encodes ``rot = limit_period(-yaw - pi/2, 0.5, 2 pi)`` (the
  pre-1.0 yaw convention, kept so old checkpoints still load), and ``denormalize_bbox`` inverts it.
  ``"canonical"`` is ``sin(yaw), cos(yaw)`` of the canonical yaw (e.g. a TransFusion dump).
* **GT** are canonical ``[K, 7+]`` boxes (`assignaudit.conventions`), labels ``[K]`` int64 in ``[0, C)``.

Costs (the weights are the upstream defaults):

* `detr3d_cost`: ``FocalLossCost(weight 2.0, alpha 0.25, gamma 2, eps 1e-12) + BBox3DL1Cost(weight 0.25)`` over the
  first 8 dims of the query box against ``normalize_bbox(gt)``. Velocity is not in the cost, ``pc_range`` is unused
  despite the docstring, and the IoU cost is built but never added (mmdet3d
  ``projects/DETR3D/detr3d/hungarian_assigner_3d.py``).
* `transfusion_cost`: focal (weight 0.15) + 0.25 x L1 of BEV centres normalised to [0, 1] by the point-cloud range
  + ``-0.25 x IoU3D`` with OpenPCDet's height quirk (`transfusion_iou3d`; OpenPCDet
  ``pcdet/models/dense_heads/target_assigner/hungarian_assigner.py``).

`replay_frame` replays every decoder layer independently (upstream runs the assigner on each layer's output) and
reports, per GT and layer, the matched query and its rotated 3D IoU (`assignaudit.ops.box_iou_3d_aligned`, centre z)
with the decoded query box; a match with IoU < 0.1 is called *useless* (the query is trained towards a GT it does
not overlap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
import torch

from assignaudit.conventions import limit_period
from assignaudit.errors import DataError
from assignaudit.ops import aabb_overlap_pairs, bev_aabb, bev_intersection_aligned, box_iou_3d_aligned
from assignaudit.sources.base import Frame

YawEncoding = Literal["detr3d", "canonical"]
CostName = Literal["detr3d", "transfusion", "transfusion_mmdet3d", "bonet"]
QUERY_COST_NAMES = ("detr3d", "transfusion", "transfusion_mmdet3d", "bonet")

QUERY_BOX_DIM = 10
QUERY_BOX_COLUMNS = ("cx", "cy", "log_l", "log_w", "cz", "log_h", "sin_yaw", "cos_yaw", "vx", "vy")
USELESS_IOU = 0.1
"""A matched query whose 3D IoU with its GT is below this is counted as useless."""
COST_CLAMP = 100.0
"""PETR replaces NaN by 100 and +-inf by +-100 before the solver (``projects/PETR/petr/hungarian_assigner_3d.py``)."""
YAW_ENCODINGS = ("detr3d", "canonical")


# --------------------------------------------------------------------------------------------------------------------
# Box encodings
# --------------------------------------------------------------------------------------------------------------------


def _encode_yaw(yaw: torch.Tensor, yaw_encoding: str) -> torch.Tensor:
    if yaw_encoding == "detr3d":
        # mmdet3d 1.x DETR3D util.normalize_bbox: back to the legacy (pre-1.0) yaw, wrapped to [-pi, pi).
        return limit_period(-yaw - math.pi / 2, 0.5, 2 * math.pi)
    if yaw_encoding == "canonical":
        return yaw
    raise DataError(f"yaw_encoding: expected one of {YAW_ENCODINGS}, got {yaw_encoding!r}")


def normalize_bbox(gt_boxes: torch.Tensor, yaw_encoding: YawEncoding = "detr3d") -> torch.Tensor:
    """Canonical GT ``Tensor[K, 7+]`` -> query-box layout ``Tensor[K, 10]`` (``[K, 8]`` for 7-column input).

    ``cx, cy, log dx, log dy, cz, log dz, sin r, cos r[, vx, vy]`` with ``r`` per ``yaw_encoding`` (module docstring).
    Zero-size boxes give ``-inf`` logs (the cost then clamps to -100, as upstream would after PETR's nan_to_num).
    """
    r = _encode_yaw(gt_boxes[:, 6], yaw_encoding)
    cols = [gt_boxes[:, 0], gt_boxes[:, 1], gt_boxes[:, 3].log(), gt_boxes[:, 4].log(), gt_boxes[:, 2],
            gt_boxes[:, 5].log(), torch.sin(r), torch.cos(r)]
    if gt_boxes.shape[1] >= 9:
        cols += [gt_boxes[:, 7], gt_boxes[:, 8]]
    return torch.stack(cols, dim=1)


def decode_query_boxes(query_boxes: torch.Tensor, yaw_encoding: YawEncoding = "detr3d") -> torch.Tensor:
    """Query boxes ``Tensor[..., 10]`` -> canonical ``Tensor[..., 9]`` (``x, y, z, dx, dy, dz, yaw, vx, vy``).

    The inverse of `normalize_bbox` (mmdet3d DETR3D ``denormalize_bbox``): ``yaw = atan2(sin, cos)``, then for
    ``"detr3d"`` ``limit_period(-r - pi/2)`` back to the canonical yaw; sizes are ``exp`` of the logs.
    """
    r = torch.atan2(query_boxes[..., 6], query_boxes[..., 7])
    if yaw_encoding == "detr3d":
        yaw = limit_period(-r - math.pi / 2, 0.5, 2 * math.pi)
    elif yaw_encoding == "canonical":
        yaw = limit_period(r, 0.5, 2 * math.pi)
    else:
        raise DataError(f"yaw_encoding: expected one of {YAW_ENCODINGS}, got {yaw_encoding!r}")
    q = query_boxes
    return torch.stack([q[..., 0], q[..., 1], q[..., 4], q[..., 2].exp(), q[..., 3].exp(), q[..., 5].exp(), yaw,
                        q[..., 8], q[..., 9]], dim=-1)


# --------------------------------------------------------------------------------------------------------------------
# Costs
# --------------------------------------------------------------------------------------------------------------------


def focal_cost(cls_logits: torch.Tensor, gt_labels: torch.Tensor, *, weight: float, alpha: float = 0.25,
               gamma: float = 2.0, eps: float = 1e-12) -> torch.Tensor:
    """mmdet ``FocalLossCost`` (and OpenPCDet's ``focal_loss_cost``): ``[..., Q, C]`` logits, ``[K]`` labels ->
    ``[..., Q, K]``.

    With ``p = sigmoid(logit)``: ``pos = -alpha (1-p)^gamma log(p + eps)``, ``neg = -(1-alpha) p^gamma
    log(1 - p + eps)``, cost ``= weight * (pos - neg)[..., q, label_k]``.
    """
    p = cls_logits.sigmoid()
    neg = -(1 - p + eps).log() * (1 - alpha) * p.pow(gamma)
    pos = -(p + eps).log() * alpha * (1 - p).pow(gamma)
    # One gather of (pos - neg) over C columns, not two over K: the same numbers, a third of the time.
    return (pos - neg)[..., gt_labels] * weight


def _check_cost_inputs(pred: torch.Tensor, pred_cols: int, cls_logits: torch.Tensor, gt_boxes: torch.Tensor,
                       gt_labels: torch.Tensor) -> None:
    if pred.dim() < 2 or pred.shape[-1] < pred_cols:
        raise DataError(f"pred_boxes: expected shape [..., Q, {pred_cols}], got {list(pred.shape)}")
    if cls_logits.shape[:-1] != pred.shape[:-1]:
        raise DataError(f"cls_logits: expected shape {list(pred.shape[:-1])} + [C], got {list(cls_logits.shape)}")
    if gt_boxes.dim() != 2 or gt_boxes.shape[1] < 7:
        raise DataError(f"gt_boxes: expected canonical boxes [K, 7+], got {list(gt_boxes.shape)}")
    if gt_labels.shape != (gt_boxes.shape[0],):
        raise DataError(f"gt_labels: expected shape [{gt_boxes.shape[0]}], got {list(gt_labels.shape)}")
    if gt_labels.numel() and (int(gt_labels.min()) < 0 or int(gt_labels.max()) >= cls_logits.shape[-1]):
        raise DataError(f"gt_labels: values must lie in [0, {cls_logits.shape[-1]}) (one per logit column)")


def detr3d_cost(pred_boxes: torch.Tensor, cls_logits: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                *, yaw_encoding: YawEncoding = "detr3d", cls_weight: float = 2.0,
                reg_weight: float = 0.25) -> torch.Tensor:
    """DETR3D/PETR matching cost ``Tensor[..., Q, K]`` (mmdet3d ``HungarianAssigner3D``).

    Args:
        pred_boxes: ``Tensor[..., Q, 10]`` query boxes (module docstring; leading dims, e.g. decoder layers, batch).
        cls_logits: ``Tensor[..., Q, C]`` classification logits (before sigmoid).
        gt_boxes: canonical ``Tensor[K, 7+]`` (centre z, metres, LiDAR frame); gt_labels: ``LongTensor[K]``.

    Returns ``focal(weight 2.0) + reg_weight * sum_{d<8} |pred_d - normalize_bbox(gt)_d|``: velocity excluded, no
    IoU term and no range normalisation, exactly as upstream.
    """
    _check_cost_inputs(pred_boxes, QUERY_BOX_DIM, cls_logits, gt_boxes, gt_labels)
    gt_norm = normalize_bbox(gt_boxes.to(pred_boxes.dtype), yaw_encoding)[:, :8]
    reg = torch.cdist(pred_boxes[..., :8].contiguous(), gt_norm.expand(*pred_boxes.shape[:-2], -1, -1).contiguous(),
                      p=1)
    return focal_cost(cls_logits, gt_labels, weight=cls_weight) + reg * reg_weight


def transfusion_iou3d(pred_boxes: torch.Tensor, gt_boxes: torch.Tensor, *,
                      margin_compat: bool = False) -> torch.Tensor:
    """OpenPCDet TransFusion's ``overlaps``: canonical ``[Q, 7+] x [K, 7+] -> [Q, K]``, with its height quirk.

    The BEV part is the exact rotated intersection area (`assignaudit.ops.bev_intersection_aligned` on the pairs
    whose bounding rectangles overlap; all others are 0). The height overlap treats ``z`` as the **bottom** of both
    boxes (interval ``[z, z + dz]``) although OpenPCDet boxes are centre-based (``height_overlaps`` in
    ``pcdet/models/dense_heads/target_assigner/hungarian_assigner.py``), so this is not the true 3D IoU whenever the
    heights differ. ``iou = inter / max(vol_a + vol_b - inter, 1e-8)``.
    """
    q, k = pred_boxes.shape[0], gt_boxes.shape[0]
    inter_bev = pred_boxes.new_zeros((q, k))
    pad = 0.015 if margin_compat else 0.0  # the 1 cm margin kernel sees corners slightly outside the AABB
    iq, ik = aabb_overlap_pairs(bev_aabb(pred_boxes, pad), bev_aabb(gt_boxes, pad), ordered=False)
    inter_bev[iq, ik] = bev_intersection_aligned(pred_boxes[iq], gt_boxes[ik], margin_compat=margin_compat)
    top_a, bot_a = (pred_boxes[:, 2] + pred_boxes[:, 5])[:, None], pred_boxes[:, 2][:, None]
    top_b, bot_b = (gt_boxes[:, 2] + gt_boxes[:, 5])[None, :], gt_boxes[:, 2][None, :]
    overlap_h = torch.clamp(torch.min(top_a, top_b) - torch.max(bot_a, bot_b), min=0)
    inter = inter_bev * overlap_h
    vol_a = (pred_boxes[:, 3] * pred_boxes[:, 4] * pred_boxes[:, 5])[:, None]
    vol_b = (gt_boxes[:, 3] * gt_boxes[:, 4] * gt_boxes[:, 5])[None, :]
    return inter / torch.clamp(vol_a + vol_b - inter, min=1e-8)


def transfusion_cost(pred_boxes: torch.Tensor, cls_logits: torch.Tensor, gt_boxes: torch.Tensor,
                     gt_labels: torch.Tensor, point_cloud_range: Sequence[float], *, cls_weight: float = 0.15,
                     reg_weight: float = 0.25, iou_weight: float = 0.25, margin_compat: bool = False,
                     true_height: bool = False) -> torch.Tensor:
    """OpenPCDet TransFusion matching cost ``Tensor[Q, K]`` (``HungarianAssigner3D.assign``).

    ``true_height``: mmdetection3d's BEVFusion ``HungarianAssigner3D`` instead, whose ``IoU3DCost`` takes
    ``BboxOverlaps3D(coordinate='lidar')`` of bottom-centred boxes: the true 3D IoU (no height quirk). Same weights.

    Args:
        pred_boxes: canonical decoded query boxes ``Tensor[Q, 7+]``; cls_logits ``Tensor[Q, C]``.
        gt_boxes: canonical ``Tensor[K, 7+]``; gt_labels ``LongTensor[K]``.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` metres; only x, y are used.

    Returns ``focal(0.15) + 0.25 * L1((xy - min) / (max - min)) - 0.25 * transfusion_iou3d``.
    """
    _check_cost_inputs(pred_boxes, 7, cls_logits, gt_boxes, gt_labels)
    if pred_boxes.dim() != 2:
        raise DataError(f"pred_boxes: expected shape [Q, 7+] for the TransFusion cost, got {list(pred_boxes.shape)}")
    if len(point_cloud_range) != 6:
        raise DataError(f"point_cloud_range: expected 6 numbers (x_min, y_min, z_min, x_max, y_max, z_max), "
                        f"got {len(point_cloud_range)}")
    gt = gt_boxes.to(pred_boxes.dtype)
    start = pred_boxes.new_tensor(point_cloud_range[0:2])
    span = pred_boxes.new_tensor(point_cloud_range[3:5]) - start
    reg = torch.cdist((pred_boxes[:, :2] - start) / span, (gt[:, :2] - start) / span, p=1)
    if true_height:  # [z - dz/2, z + dz/2]: the height intervals transfusion_iou3d then takes are the real ones
        pred_boxes, gt = pred_boxes.clone(), gt.clone()
        pred_boxes[:, 2] -= pred_boxes[:, 5] / 2
        gt[:, 2] -= gt[:, 5] / 2
    iou = transfusion_iou3d(pred_boxes, gt, margin_compat=margin_compat)
    return focal_cost(cls_logits, gt_labels, weight=cls_weight) + reg * reg_weight - iou * iou_weight


# --------------------------------------------------------------------------------------------------------------------
# Solver
# --------------------------------------------------------------------------------------------------------------------


def hungarian_assign(cost: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching of a ``[Q, K]`` cost: ``(query_idx, gt_idx)``, int64 ``[min(Q, K)]`` each,
    sorted by query. NaN becomes 100 and +-inf +-100 first (PETR's ``nan_to_num``), so a bad prediction never
    crashes the solver. The input is not modified.
    """
    c = cost.detach().cpu().numpy() if isinstance(cost, torch.Tensor) else np.asarray(cost)
    if c.ndim != 2:
        raise DataError(f"cost: expected a [Q, K] matrix, got shape {list(c.shape)}")
    c = np.nan_to_num(c.astype(np.float64), nan=COST_CLAMP, posinf=COST_CLAMP, neginf=-COST_CLAMP)
    from scipy.optimize import linear_sum_assignment  # scipy only on the query path (start-up)

    rows, cols = linear_sum_assignment(c)
    return rows.astype(np.int64), cols.astype(np.int64)


def positives_without_dump(num_gt: int, num_queries: int = 900) -> int:
    """Positives per decoder layer when no dump is available: ``min(K, Q)`` (Q = 900 for DETR3D and PETR)."""
    return min(int(num_gt), int(num_queries))


# --------------------------------------------------------------------------------------------------------------------
# Query dumps
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryFrame:
    """One sample's decoder outputs. L decoder layers, Q queries, C classes."""

    sample_token: str
    boxes: np.ndarray
    """float32 ``[L, Q, 10]`` query boxes (module docstring)."""
    logits: np.ndarray
    """float32 ``[L, Q, C]`` classification logits."""
    yaw_encoding: str = "detr3d"


@dataclass(frozen=True)
class QueryDump:
    """A loaded query dump: S samples (see ``docs/query-dumps.md``)."""

    path: str
    sample_tokens: tuple[str, ...]
    boxes: np.ndarray
    """float32 ``[S, L, Q, 10]``."""
    logits: np.ndarray
    """float32 ``[S, L, Q, C]``."""
    yaw_encoding: str = "detr3d"

    def __len__(self) -> int:
        return len(self.sample_tokens)

    def frame(self, sample_token: str) -> QueryFrame:
        """The decoder outputs of one sample; DataError when the dump does not have it."""
        index = {t: i for i, t in enumerate(self.sample_tokens)}
        if sample_token not in index:
            raise DataError(f"query dump {self.path}: no entry for sample_token {sample_token!r}")
        i = index[sample_token]
        return QueryFrame(sample_token, self.boxes[i], self.logits[i], self.yaw_encoding)


def _validate(path: str, tokens: np.ndarray, boxes: np.ndarray, logits: np.ndarray, yaw_encoding: str) -> QueryDump:
    if boxes.ndim != 4 or boxes.shape[-1] != QUERY_BOX_DIM:
        raise DataError(f"query dump {path}: 'boxes' must have shape [S, L, Q, 10], got {list(boxes.shape)}")
    if logits.ndim != 4 or logits.shape[:3] != boxes.shape[:3] or logits.shape[3] < 1:
        raise DataError(f"query dump {path}: 'logits' must have shape {list(boxes.shape[:3])} + [C], "
                        f"got {list(logits.shape)}")
    if tokens.ndim != 1 or tokens.shape[0] != boxes.shape[0]:
        raise DataError(f"query dump {path}: 'sample_token' must have shape [{boxes.shape[0]}], "
                        f"got {list(tokens.shape)}")
    if tokens.dtype.kind not in "US":
        raise DataError(f"query dump {path}: 'sample_token' must be a string array, got dtype {tokens.dtype}")
    token_list = tuple(str(t) for t in tokens)
    if len(set(token_list)) != len(token_list):
        raise DataError(f"query dump {path}: 'sample_token' has duplicates")
    if yaw_encoding not in YAW_ENCODINGS:
        raise DataError(f"query dump {path}: 'yaw_encoding' must be one of {YAW_ENCODINGS}, got {yaw_encoding!r}")
    for name, arr in (("boxes", boxes), ("logits", logits)):
        if arr.dtype.kind != "f":
            raise DataError(f"query dump {path}: '{name}' must be floating point, got dtype {arr.dtype}")
    return QueryDump(path, token_list, boxes.astype(np.float32, copy=False), logits.astype(np.float32, copy=False),
                     yaw_encoding)


def _load_npz(path: Path) -> QueryDump:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("sample_token", "boxes", "logits") if k not in z.files]
            if missing:
                raise DataError(f"query dump {path}: missing array(s) {', '.join(missing)}")
            tokens, boxes, logits = z["sample_token"], z["boxes"], z["logits"]
            yaw = str(z["yaw_encoding"]) if "yaw_encoding" in z.files else "detr3d"
    except DataError:
        raise
    except ValueError as err:  # object arrays need pickle, which we refuse to load
        raise DataError(f"query dump {path}: unreadable .npz ({str(err).splitlines()[0]}); "
                        "store sample_token as a str array") from None
    except (OSError, EOFError) as err:
        raise DataError(f"query dump {path}: not a readable .npz file ({err.__class__.__name__})") from None
    return _validate(str(path), tokens, boxes, logits, yaw)


def _load_parquet(path: Path) -> QueryDump:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise DataError(f"query dump {path}: not a readable Parquet file ({err.__class__.__name__})") from None
    names = table.column_names
    missing = [c for c in ("sample_token", "layer", "query", *QUERY_BOX_COLUMNS) if c not in names]
    if missing:
        raise DataError(f"query dump {path}: missing column(s) {', '.join(missing)}")
    logit_cols = sorted((c for c in names if c.startswith("logit_") and c[6:].isdigit()), key=lambda c: int(c[6:]))
    if not logit_cols or [int(c[6:]) for c in logit_cols] != list(range(len(logit_cols))):
        raise DataError(f"query dump {path}: need logit columns logit_0 .. logit_<C-1> without gaps")
    tok = table.column("sample_token").to_numpy(zero_copy_only=False).astype(str)
    layer = table.column("layer").to_numpy(zero_copy_only=False)
    query = table.column("query").to_numpy(zero_copy_only=False)
    if layer.dtype.kind not in "iu" or query.dtype.kind not in "iu":
        raise DataError(f"query dump {path}: columns 'layer' and 'query' must be integers")
    tokens, tok_idx = np.unique(tok, return_inverse=True)
    # Keep the samples in order of first appearance in the file, not alphabetical order.
    first = np.full(tokens.shape[0], tok.shape[0], dtype=np.int64)
    np.minimum.at(first, tok_idx, np.arange(tok.shape[0]))
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    s_idx = rank[tok_idx]
    n_s = tokens.shape[0]
    n_l = int(layer.max()) + 1 if layer.size else 0
    n_q = int(query.max()) + 1 if query.size else 0
    if layer.size == 0 or int(layer.min()) < 0 or int(query.min()) < 0 or tok.shape[0] != n_s * n_l * n_q:
        raise DataError(f"query dump {path}: rows must cover every (sample_token, layer 0..L-1, query 0..Q-1) "
                        f"exactly once")
    flat = (s_idx * n_l + layer.astype(np.int64)) * n_q + query.astype(np.int64)
    if np.unique(flat).shape[0] != flat.shape[0]:
        raise DataError(f"query dump {path}: duplicate (sample_token, layer, query) rows")
    boxes = np.empty((flat.shape[0], QUERY_BOX_DIM), dtype=np.float32)
    logits = np.empty((flat.shape[0], len(logit_cols)), dtype=np.float32)
    try:
        boxes[flat] = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in QUERY_BOX_COLUMNS], axis=1)
        logits[flat] = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in logit_cols], axis=1)
    except (ValueError, TypeError):
        raise DataError(f"query dump {path}: box and logit columns must be numeric") from None
    meta = table.schema.metadata or {}
    yaw = meta.get(b"yaw_encoding", b"detr3d").decode()
    return _validate(str(path), tokens[order], boxes.reshape(n_s, n_l, n_q, QUERY_BOX_DIM),
                     logits.reshape(n_s, n_l, n_q, -1), yaw)


def load_query_dump(path: str | Path) -> QueryDump:
    """Load a query dump (``.npz`` or ``.parquet``; layout in ``docs/query-dumps.md``). DataError on bad input."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"query dump {p}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p)
    if suffix in (".parquet", ".pq"):
        return _load_parquet(p)
    raise DataError(f"query dump {p}: unknown format {suffix or '(no suffix)'}; use .npz or .parquet")


# --------------------------------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameReplay:
    """The Hungarian assignment of one frame, every decoder layer. L layers, K GT of the audited classes."""

    sample_token: str
    gt_index: np.ndarray
    """int64 ``[K]``: rows of ``Frame.boxes_lidar`` that took part (GT whose class is in ``class_names``)."""
    gt_class: np.ndarray
    """object ``[K]``: their class names."""
    matched_query: np.ndarray
    """int64 ``[L, K]``: the query matched to each GT per layer; -1 when unmatched (only possible when Q < K)."""
    matched_iou: np.ndarray
    """float32 ``[L, K]``: rotated 3D IoU (centre z) of the decoded matched query box with the GT; 0 if unmatched."""
    num_queries: int

    @property
    def useless(self) -> np.ndarray:
        """bool ``[L, K]``: matched IoU < `USELESS_IOU` (unmatched GT count as useless too)."""
        return self.matched_iou < USELESS_IOU

    @property
    def num_pos_per_layer(self) -> np.ndarray:
        """int64 ``[L]``: positives (matched queries) per layer, ``min(K, Q)``."""
        return (self.matched_query >= 0).sum(axis=1).astype(np.int64)


def replay_frame(dump_frame: QueryFrame, gt: Frame, class_names: Sequence[str], cost: CostName = "detr3d", *,
                 point_cloud_range: Sequence[float] | None = None, margin_compat: bool = False,
                 points: np.ndarray | None = None) -> FrameReplay:
    """Replay the Hungarian assignment of every decoder layer of one frame.

    Args:
        dump_frame: the frame's decoder outputs (`QueryDump.frame`).
        gt: the frame's ground truth (canonical boxes); GT whose ``detection_class`` is not in ``class_names`` are
            left out, as the frameworks drop them before assignment. Label = index in ``class_names``, which must
            match the logit columns.
        cost: ``"detr3d"`` (DETR3D/PETR) or ``"transfusion"`` (needs ``point_cloud_range``); ``"bonet"``: 3D-BoNet's
            association cost (`assignaudit.assign.bonet.bonet_query_cost`; no class term), which needs ``points``
            (the frame's ``[N, 3+]`` points in the same LiDAR frame as the GT).

    Returns a `FrameReplay`. Layers run independently; the work is batched over layers except the solver calls.
    """
    if dump_frame.sample_token != gt.sample_token:
        raise DataError(f"query dump frame {dump_frame.sample_token!r} replayed against GT of {gt.sample_token!r}")
    n_cls = dump_frame.logits.shape[-1]
    if n_cls != len(class_names):
        raise DataError(f"query dump has {n_cls} logit columns but {len(class_names)} class names were given")
    if cost not in QUERY_COST_NAMES:
        raise DataError(f"cost: expected one of {', '.join(QUERY_COST_NAMES)}, got {cost!r}")
    if cost == "bonet" and (points is None or len(points) == 0):
        raise DataError("cost 'bonet' needs the frame's points (its soft IoU and cross-entropy terms are over them)")
    if cost in ("transfusion", "transfusion_mmdet3d") and point_cloud_range is None:
        raise DataError(f"cost {cost!r} needs point_cloud_range (x_min, y_min, z_min, x_max, y_max, z_max)")
    lookup = {name: i for i, name in enumerate(class_names)}
    labels_all = np.array([lookup.get(c, -1) if isinstance(c, str) else -1 for c in gt.detection_class],
                          dtype=np.int64)
    gt_index = np.flatnonzero(labels_all >= 0)
    n_layers, n_q = dump_frame.boxes.shape[0], dump_frame.boxes.shape[1]
    k = gt_index.shape[0]
    matched_query = np.full((n_layers, k), -1, dtype=np.int64)
    matched_iou = np.zeros((n_layers, k), dtype=np.float32)
    if k and n_q:
        pred = torch.from_numpy(np.ascontiguousarray(dump_frame.boxes))
        logits = torch.from_numpy(np.ascontiguousarray(dump_frame.logits))
        gt_boxes = torch.from_numpy(gt.boxes_lidar[gt_index]).to(torch.float32)
        labels = torch.from_numpy(labels_all[gt_index])
        decoded = decode_query_boxes(pred, dump_frame.yaw_encoding)  # [L, Q, 9]
        if cost == "detr3d":
            costs = detr3d_cost(pred, logits, gt_boxes, labels, yaw_encoding=dump_frame.yaw_encoding)
        elif cost == "bonet":
            from assignaudit.assign.bonet import bonet_query_cost

            costs = bonet_query_cost(decoded, gt_boxes, torch.from_numpy(np.ascontiguousarray(points[:, :3])))
        else:
            costs = torch.stack([transfusion_cost(decoded[layer], logits[layer], gt_boxes, labels,
                                                  point_cloud_range, margin_compat=margin_compat,
                                                  true_height=cost == "transfusion_mmdet3d")
                                 for layer in range(n_layers)])
        costs_np = costs.numpy()
        for layer in range(n_layers):  # one solver call per decoder layer (L = 6), as upstream
            qi, gi = hungarian_assign(costs_np[layer])
            matched_query[layer, gi] = qi
        lay, col = np.nonzero(matched_query >= 0)
        q_sel = torch.from_numpy(matched_query[lay, col])
        pairs_pred = decoded[torch.from_numpy(lay), q_sel]
        ious = box_iou_3d_aligned(pairs_pred.contiguous(), gt_boxes[torch.from_numpy(col)].contiguous())
        # A diverged query (NaN/inf box) overlaps nothing: IoU 0, so it counts as useless.
        matched_iou[lay, col] = torch.nan_to_num(ious, nan=0.0, posinf=0.0, neginf=0.0).numpy()
    gt_class = np.asarray(gt.detection_class, dtype=object)[gt_index]
    return FrameReplay(gt.sample_token, gt_index.astype(np.int64), gt_class, matched_query, matched_iou, int(n_q))


def summarize_replays(replays: Iterable[FrameReplay]):
    """Per class and decoder layer: ``num_gt``, ``num_matched``, ``num_useless``, ``frac_useless`` and
    ``mean_matched_iou`` (over matched GT) as a pandas DataFrame sorted by class, layer. A groupby of the per-GT
    rows, so the numbers add up across frames."""
    import pandas as pd

    parts = []
    for r in replays:
        n_layers, k = r.matched_query.shape
        if k == 0:
            continue
        parts.append(pd.DataFrame({
            "class": np.tile(r.gt_class, n_layers),
            "layer": np.repeat(np.arange(n_layers, dtype=np.int64), k),
            "matched": (r.matched_query >= 0).ravel(),
            "useless": r.useless.ravel(),
            "iou": np.where(r.matched_query >= 0, r.matched_iou, np.nan).ravel(),
        }))
    cols = ["class", "layer", "num_gt", "num_matched", "num_useless", "frac_useless", "mean_matched_iou"]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "class" else float) for c in cols})
    rows = pd.concat(parts, ignore_index=True)
    out = rows.groupby(["class", "layer"], sort=True).agg(
        num_gt=("matched", "size"), num_matched=("matched", "sum"), num_useless=("useless", "sum"),
        mean_matched_iou=("iou", "mean")).reset_index()
    out["frac_useless"] = out["num_useless"] / out["num_gt"]
    return out[cols]
