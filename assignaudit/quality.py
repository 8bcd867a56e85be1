r"""`count --quality`: the regression view of every positive, per class x range band.

Counting positives says whether a class gets supervision; this module says what kind. For every positive of every
target family it takes the positive's *reference box* and the GT it regresses to:

* anchor heads: the positive anchor (``FrameAssignment.pos_anchor_index``) and the GT it is credited to;
* CenterHead heatmaps: every regression slot (``mask = 1``, ``cell_collision`` slots included: they regress from
  the shared cell) with the box the decoder produces at the slot's centre cell with a zero offset prediction and the
  GT's own z, size and yaw: ``x = ix * stride * voxel_x + pcr_x_min`` (upstream ``decode_bbox_from_heatmap`` /
  ``CenterPointBBoxCoder.decode`` with ``reg = 0``), likewise y;
* query heads (with a dump): the decoded box of the query matched to the GT in the last decoder layer.

Per (reference ``a``, GT ``g``) pair, all in torch, vectorised over the positives of a frame:

* ``iou_bev`` (exact rotated BEV IoU) and ``iou_3d`` (centre-z 3D IoU): the formulas of
  `assignaudit.ops.box_iou_bev_aligned` / `box_iou_3d_aligned` on one shared `bev_intersection_aligned` call.
* the ResidualCoder encoding (OpenPCDet ``ResidualCoder``, mmdet3d ``DeltaXYZWLHRBBoxCoder``; both with centre z):
  ``d = sqrt(dx_a^2 + dy_a^2)``, ``(x_g - x_a) / d``, ``(y_g - y_a) / d``, ``(z_g - z_a) / dz_a``, ``log(dx_g /
  dx_a)``, ``log(dy_g / dy_a)``, ``log(dz_g / dz_a)``, ``yaw_g - yaw_a``. A positive is *beyond beta* when any
  component has ``|r| >= beta`` (default 1/9, OpenPCDet's ``WeightedSmoothL1Loss`` and mmdet3d's ``SmoothL1Loss``),
  i.e. lies in the smooth-L1's linear (L1) part where the gradient no longer shrinks with the error. The yaw
  component is judged as the loss sees it, ``sin(yaw_g - yaw_a)`` (both frameworks' sin-difference, pcdet
  ``add_sin_difference``, mmdet3d ``diff_rad_by_sin``); the histogram holds the raw difference.
* ``L_IoU = 1 - IoU_bev``;
  ``L_EIoU = 1 - IoU_bev + rho^2(b, b_g) / c^2 + (dx - dx_g)^2 / C_w^2 + (dy - dy_g)^2 / C_h^2`` (Zhang et al.,
  "Focal and Efficient IOU Loss"), in BEV: ``rho`` the BEV centre distance, ``C_w x C_h`` the smallest axis-aligned
  rectangle enclosing both rotated boxes (all their corners), ``c^2 = C_w^2 + C_h^2`` its squared diagonal, and
  ``w, h`` each box's own ``dx`` (along its heading) and ``dy``.
  3D extension (``loss_eiou_3d_sum``): ``1 - IoU_3d + rho_3d^2 / c_3d^2 + (dx - dx_g)^2 / C_w^2 + (dy - dy_g)^2 /
  C_h^2 + (dz - dz_g)^2 / C_d^2``, with the 3D centre distance, ``C_d`` the enclosing z extent and ``c_3d^2 = C_w^2
  + C_h^2 + C_d^2``.
* Focal-EIoU: weight ``IoU_bev^gamma`` (``--quality-gamma``, default 0.5), normalised by the sum of the weights over
  the batch as the paper does; a batch here is one frame (all its positives, every class), so a positive's share of
  the frame's Focal-EIoU loss is ``IoU_i^gamma L_EIoU_i / sum_j IoU_j^gamma`` (0 when every weight is 0).
* low-quality share: the fraction of the total ``L_EIoU`` (``low_quality_share``), and of the Focal-EIoU-weighted
  total (``low_quality_share_focal``), that comes from positives with ``IoU_bev < --quality-low-iou`` (0.5).

Summary columns (`schema.SUMMARY_QUALITY_COLUMNS`, appended to ``summary.parquet`` with ``--quality``) and the
``quality.parquet`` histogram (`schema.QUALITY_COLUMNS`: class, band, quantity, bin_lo, bin_hi, count; non-empty
bins only) are per class and band; a positive goes to the band of its GT, and to ``all``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from assignaudit import schema
from assignaudit.bands import ALL_BANDS, Bands
from assignaudit.errors import ConfigError
from assignaudit.ops import bev_intersection_aligned
from assignaudit.ops.rotated import BEV_EPS, IOU3D_EPS

DEFAULT_GAMMA = 0.5
DEFAULT_LOW_IOU = 0.5
DEFAULT_BETA = 1.0 / 9.0
RESIDUAL_NAMES = ("x", "y", "z", "dx", "dy", "dz", "yaw")
IOU_BINS = 1000  # medians exact to 1e-3
LOSS_MAX, LOSS_BINS = 4.0, 200  # L_EIoU (BEV) lies in [0, 4)
_EPS = 1e-12
FLUSH_FRAMES, FLUSH_PAIRS = 64, 1 << 16  # pairs are measured in batches of up to this many frames / pairs

QUALITY_SCHEMA = pa.schema([
    ("class", pa.string()), ("band", pa.string()), ("quantity", pa.string()), ("bin_lo", pa.float64()),
    ("bin_hi", pa.float64()), ("count", pa.int64()),
])
SUMMARY_QUALITY_SCHEMA = pa.schema([
    ("num_pos_quality", pa.int64()), ("iou_bev_p50", pa.float64()), ("iou_3d_p50", pa.float64()),
    ("num_pos_low_iou", pa.int64()), ("num_pos_beyond_beta", pa.int64()), ("loss_iou_sum", pa.float64()),
    ("loss_eiou_sum", pa.float64()), ("loss_eiou_3d_sum", pa.float64()), ("focal_eiou_sum", pa.float64()),
    ("low_quality_share", pa.float64()), ("low_quality_share_focal", pa.float64()),
])
if tuple(QUALITY_SCHEMA.names) != schema.QUALITY_COLUMNS:
    raise ImportError("quality.QUALITY_SCHEMA is out of step with schema.QUALITY_COLUMNS")
if tuple(SUMMARY_QUALITY_SCHEMA.names) != schema.SUMMARY_QUALITY_COLUMNS:
    raise ImportError("quality.SUMMARY_QUALITY_SCHEMA is out of step with schema.SUMMARY_QUALITY_COLUMNS")


@dataclass(frozen=True)
class QualityOptions:
    """``--quality-gamma``, ``--quality-low-iou`` and the smooth-L1 ``beta`` of `count --quality`."""

    gamma: float = DEFAULT_GAMMA
    low_iou: float = DEFAULT_LOW_IOU
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ConfigError(f"--quality-gamma must be a finite number >= 0, got {self.gamma}")
        if not (0 < self.low_iou <= 1):
            raise ConfigError(f"--quality-low-iou must be in (0, 1], got {self.low_iou}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ConfigError(f"smooth-L1 beta must be a finite number > 0, got {self.beta}")


@dataclass(frozen=True)
class Positives:
    """One frame's positives as (reference box, GT) pairs, handed from a family tally to `QualityTally`. P pairs."""

    ref: torch.Tensor
    """float ``[P, 7+]`` canonical reference boxes (anchor / decoded cell box / matched query box)."""
    gt_index: np.ndarray
    """int64 ``[P]``: row of the frame's GT each positive regresses to."""
    cls: np.ndarray | None = None
    """int64 ``[P]``: config class the positive is credited to; None = its GT's class."""


# ---------------------------------------------------------------------------------------------------------------
# Per-pair geometry (torch, vectorised)
# ---------------------------------------------------------------------------------------------------------------


def residual_encode(ref: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """ResidualCoder targets of row pairs: ``Tensor[P, 7+]`` x2 -> ``Tensor[P, 7]`` (x, y, z, dx, dy, dz, yaw).

    OpenPCDet ``ResidualCoder.encode_torch`` (``encode_angle_by_sincos`` False) = mmdet3d
    ``DeltaXYZWLHRBBoxCoder.encode`` after its bottom -> centre z shift; sizes clamped at 1e-5 as pcdet does.
    """
    a, g = ref[:, :7], gt[:, :7]
    da = torch.clamp_min(a[:, 3:6], 1e-5)
    dg = torch.clamp_min(g[:, 3:6], 1e-5)
    diag = torch.sqrt(da[:, 0] ** 2 + da[:, 1] ** 2)
    return torch.stack([(g[:, 0] - a[:, 0]) / diag, (g[:, 1] - a[:, 1]) / diag, (g[:, 2] - a[:, 2]) / da[:, 2],
                        torch.log(dg[:, 0] / da[:, 0]), torch.log(dg[:, 1] / da[:, 1]), torch.log(dg[:, 2] / da[:, 2]),
                        g[:, 6] - a[:, 6]], dim=1)


def _half_extents(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c, s = torch.cos(b[:, 6]).abs(), torch.sin(b[:, 6]).abs()
    return (b[:, 3] * c + b[:, 4] * s) * 0.5, (b[:, 3] * s + b[:, 4] * c) * 0.5


def pair_losses(ref: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """``iou_bev``, ``iou_3d``, ``loss_iou``, ``loss_eiou`` (BEV) and ``loss_eiou_3d`` of row pairs (module
    docstring), each ``Tensor[P]`` in the input dtype."""
    a, g = ref[:, :7].contiguous(), gt[:, :7].contiguous()
    inter = bev_intersection_aligned(a, g)  # once for both IoUs (same expressions as the ops' aligned IoUs)
    iou_bev = inter / torch.clamp_min(a[:, 3] * a[:, 4] + g[:, 3] * g[:, 4] - inter, BEV_EPS)
    h_ov = torch.clamp(torch.min(a[:, 2] + a[:, 5] / 2, g[:, 2] + g[:, 5] / 2)
                       - torch.max(a[:, 2] - a[:, 5] / 2, g[:, 2] - g[:, 5] / 2), min=0)
    inter3 = inter * h_ov
    iou_3d = inter3 / torch.clamp(a[:, 3] * a[:, 4] * a[:, 5] + g[:, 3] * g[:, 4] * g[:, 5] - inter3, min=IOU3D_EPS)
    hxa, hya = _half_extents(a)
    hxg, hyg = _half_extents(g)
    cw = torch.max(a[:, 0] + hxa, g[:, 0] + hxg) - torch.min(a[:, 0] - hxa, g[:, 0] - hxg)
    ch = torch.max(a[:, 1] + hya, g[:, 1] + hyg) - torch.min(a[:, 1] - hya, g[:, 1] - hyg)
    cd = torch.max(a[:, 2] + a[:, 5] / 2, g[:, 2] + g[:, 5] / 2) - torch.min(a[:, 2] - a[:, 5] / 2,
                                                                           g[:, 2] - g[:, 5] / 2)
    cw2, ch2, cd2 = (torch.clamp_min(v * v, _EPS) for v in (cw, ch, cd))
    rho2 = (a[:, 0] - g[:, 0]) ** 2 + (a[:, 1] - g[:, 1]) ** 2
    size_wh = (a[:, 3] - g[:, 3]) ** 2 / cw2 + (a[:, 4] - g[:, 4]) ** 2 / ch2
    loss_eiou = 1 - iou_bev + rho2 / (cw2 + ch2) + size_wh
    rho2_3d = rho2 + (a[:, 2] - g[:, 2]) ** 2
    loss_eiou_3d = 1 - iou_3d + rho2_3d / (cw2 + ch2 + cd2) + size_wh + (a[:, 5] - g[:, 5]) ** 2 / cd2
    return {"iou_bev": iou_bev, "iou_3d": iou_3d, "loss_iou": 1 - iou_bev, "loss_eiou": loss_eiou,
            "loss_eiou_3d": loss_eiou_3d}


def focal_weights(iou: torch.Tensor, gamma: float) -> torch.Tensor:
    """Focal-EIoU weights ``IoU^gamma / sum(IoU^gamma)`` over one batch (frame); all zero when the sum is 0."""
    w = torch.clamp_min(iou, 0) ** gamma
    total = w.sum()
    return w / total if float(total) > 0 else torch.zeros_like(w)


def _residual_edges(beta: float) -> np.ndarray:
    edges = np.concatenate([np.round(np.linspace(-4.0, 4.0, 161), 10), [-beta, beta]])
    return np.concatenate([[-np.inf], np.unique(edges), [np.inf]])


# ---------------------------------------------------------------------------------------------------------------
# Accumulators
# ---------------------------------------------------------------------------------------------------------------


class QualityTally:
    """Fixed-size class x band accumulators of the positives' regression view (band index ``len(bands)`` = all)."""

    def __init__(self, class_names: tuple[str, ...], bands: Bands, options: QualityOptions) -> None:
        self.class_names, self.bands, self.options = tuple(class_names), bands, options
        nc, nb = len(class_names), len(bands) + 1
        self.nc, self.nb = nc, nb
        shape = (nc, nb)
        self.num = np.zeros(shape, np.int64)
        self.num_low = np.zeros(shape, np.int64)
        self.num_beyond = np.zeros(shape, np.int64)
        self.sums = {k: np.zeros(shape, np.float64) for k in ("loss_iou", "loss_eiou", "loss_eiou_low",
                                                              "loss_eiou_3d", "focal", "focal_low")}
        self.res_edges = _residual_edges(options.beta)
        n_res = len(self.res_edges) - 1
        sizes = {"iou_bev": IOU_BINS, "iou_3d": IOU_BINS, "loss_eiou": LOSS_BINS + 1,  # last bin: >= LOSS_MAX
                 "focal_weight": 100, **{f"residual_{n}": n_res for n in RESIDUAL_NAMES}}
        # One flat buffer holds every histogram (one bincount per frame); ``hist[name]`` are [C, B+1, bins] views.
        self._hist_offset, total = {}, 0
        for name, n in sizes.items():
            self._hist_offset[name] = total
            total += nc * nb * n
        self._hist_buf = np.zeros(total, np.int64)
        self.hist = {name: self._hist_buf[o:o + nc * nb * sizes[name]].reshape(nc, nb, sizes[name])
                     for name, o in self._hist_offset.items()}
        self.num_frames = 0
        self.num_frames_without_positives = 0
        self._buf_ref: list[torch.Tensor] = []
        self._buf_gt: list[torch.Tensor] = []
        self._buf_cls: list[np.ndarray] = []
        self._buf_band: list[np.ndarray] = []
        self._buf_pairs = 0

    def _flat(self, cls: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return cls * self.nb + band, cls * self.nb + (self.nb - 1)

    def _add(self, target: np.ndarray, flat: tuple[np.ndarray, np.ndarray], weights=None) -> None:
        t = target.reshape(-1)
        for f in flat:
            t += np.bincount(f, weights, minlength=t.size).astype(t.dtype)

    def _hist_keys(self, name: str, flat: tuple[np.ndarray, np.ndarray], bins: np.ndarray) -> list[np.ndarray]:
        n, o = self.hist[name].shape[-1], self._hist_offset[name]
        return [o + f * n + bins for f in flat]

    def add(self, pos: Positives | None, gt_boxes: torch.Tensor, gt_class: np.ndarray, gt_band: np.ndarray) -> None:
        """Add one frame: ``gt_boxes`` ``[K, 7+]`` torch, ``gt_class`` / ``gt_band`` int64 ``[K]`` (config class,
        band of the GT centre). Pairs are buffered and measured in batches of frames (`flush`), which amortises the
        per-op cost of the small per-frame tensors; the Focal-EIoU normalisation stays per frame."""
        self.num_frames += 1
        if pos is None or pos.gt_index.size == 0:
            self.num_frames_without_positives += 1
            return
        gi = torch.as_tensor(pos.gt_index, device=gt_boxes.device)
        self._buf_gt.append(gt_boxes.index_select(0, gi)[:, :7].to(torch.float32))
        self._buf_ref.append(pos.ref[:, :7].to(device=gt_boxes.device, dtype=torch.float32))
        cls = np.asarray(gt_class, np.int64)[pos.gt_index] if pos.cls is None else np.asarray(pos.cls, np.int64)
        self._buf_cls.append(cls)
        self._buf_band.append(np.asarray(gt_band, np.int64)[pos.gt_index])
        self._buf_pairs += cls.shape[0]
        if len(self._buf_cls) >= FLUSH_FRAMES or self._buf_pairs >= FLUSH_PAIRS:
            self.flush()

    def flush(self) -> None:
        """Measure the buffered pairs and add them to the accumulators."""
        if not self._buf_cls:
            return
        n_per = np.array([c.shape[0] for c in self._buf_cls], np.int64)
        a, g = torch.cat(self._buf_ref), torch.cat(self._buf_gt)
        cls, band = np.concatenate(self._buf_cls), np.concatenate(self._buf_band)
        self._buf_ref, self._buf_gt, self._buf_cls, self._buf_band, self._buf_pairs = [], [], [], [], 0
        frame = torch.repeat_interleave(torch.arange(n_per.shape[0], device=a.device),
                                        torch.as_tensor(n_per, device=a.device))
        v = pair_losses(a, g)
        res = residual_encode(a, g)
        opt = self.options
        fw_t = torch.clamp_min(v["iou_bev"], 0) ** opt.gamma
        w_sum = torch.zeros(n_per.shape[0], dtype=fw_t.dtype, device=a.device).index_add_(0, frame, fw_t)
        w_sum = w_sum.index_select(0, frame)
        focal = torch.where(w_sum > 0, fw_t * v["loss_eiou"] / torch.where(w_sum > 0, w_sum, 1), 0)
        judged = torch.cat([res[:, :6], torch.sin(res[:, 6:7])], dim=1).abs()
        beyond = (judged >= opt.beta).any(dim=1)
        low = v["iou_bev"] < opt.low_iou
        # One device -> host copy of everything.
        cols = torch.stack([v["iou_bev"], v["iou_3d"], v["loss_iou"], v["loss_eiou"], v["loss_eiou_3d"], focal, fw_t,
                            low.to(focal.dtype), beyond.to(focal.dtype)], dim=1)
        host = torch.cat([cols, res], dim=1).double().cpu().numpy()
        keep = cls >= 0
        if not keep.all():
            host, cls, band = host[keep], cls[keep], band[keep]
        iou_bev, iou_3d, l_iou, l_eiou, l_eiou3, foc, fw, low_n, beyond_n = host[:, :9].T
        low_b = low_n > 0
        residual = host[:, 9:]
        flat = self._flat(cls, band)
        self._add(self.num, flat)
        self._add(self.num_low, flat, low_b.astype(np.float64))
        self._add(self.num_beyond, flat, beyond_n)
        s = self.sums
        self._add(s["loss_iou"], flat, l_iou)
        self._add(s["loss_eiou"], flat, l_eiou)
        self._add(s["loss_eiou_low"], flat, np.where(low_b, l_eiou, 0.0))
        self._add(s["loss_eiou_3d"], flat, l_eiou3)
        self._add(s["focal"], flat, foc)
        self._add(s["focal_low"], flat, np.where(low_b, foc, 0.0))
        keys: list[np.ndarray] = []
        iou_bin = lambda x: np.clip((np.nan_to_num(x) * IOU_BINS).astype(np.int64), 0, IOU_BINS - 1)  # noqa: E731
        keys += self._hist_keys("iou_bev", flat, iou_bin(iou_bev))
        keys += self._hist_keys("iou_3d", flat, iou_bin(iou_3d))
        lb = np.clip((np.nan_to_num(l_eiou, nan=LOSS_MAX) / LOSS_MAX * LOSS_BINS).astype(np.int64), 0, LOSS_BINS)
        keys += self._hist_keys("loss_eiou", flat, lb)
        keys += self._hist_keys("focal_weight", flat, np.clip((np.nan_to_num(fw) * 100).astype(np.int64), 0, 99))
        r = np.nan_to_num(residual, nan=np.inf)
        rbins = np.clip(np.searchsorted(self.res_edges, r, side="right") - 1, 0, len(self.res_edges) - 2)  # [P, 7]
        for j, n in enumerate(RESIDUAL_NAMES):
            keys += self._hist_keys(f"residual_{n}", flat, rbins[:, j])
        self._hist_buf += np.bincount(np.concatenate(keys), minlength=self._hist_buf.size)

    # -- reports ----------------------------------------------------------------------------------------------

    def summary_columns(self) -> dict[str, np.ndarray]:
        """`schema.SUMMARY_QUALITY_COLUMNS`, rows in `summary_frame` order (class-major, bands then ``all``)."""
        from assignaudit.tally.base import percentile_from_hist

        self.flush()
        n = self.num.reshape(-1)
        s = {k: v.reshape(-1) for k, v in self.sums.items()}

        def share(part, total):
            return np.divide(part, total, out=np.full(total.shape, np.nan), where=total > 0)

        def p50(name):
            hh = self.hist[name].reshape(n.size, -1)
            return np.array([percentile_from_hist(x, 0.5, scale=1.0 / IOU_BINS) for x in hh])

        return {
            "num_pos_quality": n.copy(), "iou_bev_p50": p50("iou_bev"), "iou_3d_p50": p50("iou_3d"),
            "num_pos_low_iou": self.num_low.reshape(-1).copy(), "num_pos_beyond_beta": self.num_beyond.reshape(-1).copy(),
            "loss_iou_sum": s["loss_iou"], "loss_eiou_sum": s["loss_eiou"], "loss_eiou_3d_sum": s["loss_eiou_3d"],
            "focal_eiou_sum": s["focal"], "low_quality_share": share(s["loss_eiou_low"], s["loss_eiou"]),
            "low_quality_share_focal": share(s["focal_low"], s["focal"]),
        }

    def _edges(self, name: str) -> np.ndarray:
        if name in ("iou_bev", "iou_3d"):
            return np.linspace(0.0, 1.0, IOU_BINS + 1)
        if name == "loss_eiou":
            return np.concatenate([np.linspace(0.0, LOSS_MAX, LOSS_BINS + 1), [np.inf]])
        if name == "focal_weight":
            return np.linspace(0.0, 1.0, 101)
        return self.res_edges

    def histogram_frame(self) -> pd.DataFrame:
        """``quality.parquet``: non-empty bins of every quantity, per class and band (`schema.QUALITY_COLUMNS`)."""
        self.flush()
        band_names = np.array(self.bands.names + [ALL_BANDS], dtype=object)
        cls_names = np.array(self.class_names, dtype=object)
        parts = []
        for name, hist in self.hist.items():
            c, b, i = np.nonzero(hist)
            e = self._edges(name)
            parts.append(pd.DataFrame({"class": cls_names[c], "band": band_names[b],
                                       "quantity": np.full(c.size, name, dtype=object), "bin_lo": e[i],
                                       "bin_hi": e[i + 1], "count": hist[c, b, i].astype(np.int64)}))
        return pd.concat(parts, ignore_index=True)[list(schema.QUALITY_COLUMNS)]

    def metadata(self, family: str) -> dict[str, Any]:
        reference = {
            "anchor": "the positive anchor",
            "center": "the box decoded at the slot's centre cell with zero offset and the GT's own z, size and yaw "
                      "(every regression slot, cell collisions included)",
            "query": "the decoded box of the query matched in the last decoder layer",
            "fcos": "the box centred at the positive location with the GT's own z, size and yaw",
        }.get(family, "none")
        return {"quality": {
            "gamma": self.options.gamma, "low_iou": self.options.low_iou, "smooth_l1_beta": self.options.beta,
            "reference_box": reference, "iou": "rotated BEV IoU (L_IoU, L_EIoU, Focal weights, low-quality split); "
                                               "centre-z 3D IoU for iou_3d_p50 and loss_eiou_3d_sum",
            "focal_normalisation": "IoU^gamma / sum over the frame's positives (a batch = one frame)",
            "beyond_beta": "any ResidualCoder component with |r| >= beta (yaw as sin of the difference)",
            "num_frames": self.num_frames, "num_frames_without_positives": self.num_frames_without_positives,
        }}

