r"""FCOS-style point assignment on BEV feature maps: centre sampling, per-level regression ranges, one GT per point.

The rule is mmdetection's ``FCOSHead._get_targets_single`` (mmdet 3.3) and mmdetection3d's
``FCOSMono3DHead._get_target_single`` (mmdet3d 1.4), moved from the image plane to the BEV grid of a point / pillar
head (FCOS-LiDAR-style heads). Every feature-map location of every level is a *point*; for each (point, GT) pair:

1. ``l, t, r, b``: the distances from the point to the GT box's four sides, in the box's own frame
   (``box_frame: rotated``, default) or to the sides of its axis-aligned bounding rectangle (``axis_aligned``, which
   is exactly the 2D rule on a BEV image).
2. **inside**: without centre sampling, ``min(l, t, r, b) > 0``. With centre sampling (``center_sampling``), the
   point must lie strictly inside the *centre region* ``centre +- stride_m * center_sample_radius`` (per axis of the
   same frame; ``stride_m`` is the level's cell size in metres, upstream ``strides[lvl] * radius``). Variant
   ``mmdet`` clips the region to the GT box (``torch.where(x_mins > gt_x1, ...)``); variant ``mmdet3d`` does not
   (``center_gts = centers_2d +- stride``), so a point outside a small box can still be positive.
3. **regression range**: ``lo_lvl <= max(l, t, r, b) <= hi_lvl`` (both ends inclusive, metres).
4. **ambiguity**: among the GT passing 2 and 3, ``mmdet`` keeps the one with the smallest area (``areas.min(dim=1)``),
   ``mmdet3d`` the one whose centre is nearest (``dists.min(dim=1)``, BEV distance); ties go to the lowest GT index
   (torch's ``min`` returns the first minimum). A point with no GT is background.

Points: level ``lvl`` with stride ``s`` (in voxels) has ``W = grid_x // s`` x ``H = grid_y // s`` locations at
``pcr_min + (i + point_offset) * voxel * s`` (mmdet ``MlvlPointGenerator``, ``offset = 0.5``). Regression ranges are
given in metres (upstream: pixels; multiply by the metres per pixel of your BEV map).

Upstream defaults: mmdet ``FCOSHead`` ``regress_ranges ((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF))``,
``center_sampling False``, ``center_sample_radius 1.5``; mmdet3d ``FCOSMono3DHead`` ``((-1, 48), (48, 96), (96, 192),
(192, 384), (384, INF))``, ``center_sampling True`` (asserted), radius 1.5. No head of OpenPCDet or of mmdetection3d's
LiDAR detectors trains with this rule; mmdet3d's image heads that do (``FCOSMono3DHead``, ``PGDHead``) assign on
projected 2D centres and are refused by the mmdet3d importer, as is ``FCAF3DHead`` (a different rule: the top-k
points nearest each centre at one level chosen by the box volume). Write an FCOS BEV head as ``head: fcos`` in our
YAML (docs/count-families.md).

Vectorised: each GT enumerates only the grid window of its region on each level (no ``[points, GT]`` matrix); the
winner per point is two ``scatter_reduce`` passes. `benchmarks/` and the tests compare it with a dense loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np
import torch

from assignaudit import schema
from assignaudit.bands import Bands
from assignaudit.errors import ConfigError, DataError

FcosVariant = Literal["mmdet", "mmdet3d"]
FCOS_VARIANTS = ("mmdet", "mmdet3d")
BOX_FRAMES = ("rotated", "axis_aligned")
FCOS_KEYS = ("variant", "strides", "regress_ranges", "center_sampling", "center_sample_radius", "box_frame",
             "point_offset")
REASON_NO_POINT_INSIDE = schema.REASON_NO_POINT_INSIDE
REASON_OUTSIDE_REGRESS_RANGES = schema.REASON_OUTSIDE_REGRESS_RANGES
REFUSED_HEADS = {
    "FCOSMono3DHead": "assigns FCOS-style on the projected 2D centres of a camera image (needs intrinsics; "
                      "assignaudit audits LiDAR BEV targets); the BEV analogue is 'head: fcos' with "
                      "'variant: mmdet3d' in our YAML",
    "PGDHead": "is FCOSMono3DHead's rule on the image plane (camera projection); see 'head: fcos' in our YAML for "
               "the BEV analogue",
    "FCAF3DHead": "assigns the top-k points nearest each box centre at one level chosen by the box volume, which is "
                  "not the FCOS centre-sampling rule that 'head: fcos' reproduces",
}
"""mmdet3d head types whose FCOS-like rule `fcos_assign` does not cover, with the reason the importer gives."""


@dataclass(frozen=True)
class FcosParams:
    """An FCOS-style point head's target settings (module docstring). Lengths in metres, strides in voxels."""

    point_cloud_range: tuple[float, float, float, float, float, float]
    voxel_size: tuple[float, float, float]
    strides: tuple[int, ...]
    regress_ranges: tuple[tuple[float, float], ...]
    variant: FcosVariant = "mmdet"
    center_sampling: bool | None = None
    """None: the variant's default (mmdet False, mmdet3d True)."""
    center_sample_radius: float = 1.5
    box_frame: str = "rotated"
    point_offset: float = 0.5

    def __post_init__(self) -> None:
        if self.variant not in FCOS_VARIANTS:
            raise ConfigError(f"fcos variant {self.variant!r} is unknown; use one of {', '.join(FCOS_VARIANTS)}")
        if self.box_frame not in BOX_FRAMES:
            raise ConfigError(f"fcos box_frame {self.box_frame!r} is unknown; use one of {', '.join(BOX_FRAMES)}")
        if not self.strides or any(int(s) != s or s <= 0 for s in self.strides):
            raise ConfigError(f"fcos strides must be positive integers, got {list(self.strides)}")
        if len(self.regress_ranges) != len(self.strides):
            raise ConfigError(f"fcos: {len(self.regress_ranges)} regress_ranges for {len(self.strides)} strides "
                              "(one (lo, hi) per level)")
        for lo, hi in self.regress_ranges:
            if not (lo < hi) or math.isnan(lo) or math.isnan(hi):
                raise ConfigError(f"fcos regress range ({lo}, {hi}) is empty (need lo < hi)")
        if self.variant == "mmdet3d" and self.center_sampling is False:
            raise ConfigError("fcos variant mmdet3d needs center_sampling (FCOSMono3DHead asserts it)")
        if not (self.center_sample_radius > 0):
            raise ConfigError(f"fcos center_sample_radius must be > 0, got {self.center_sample_radius}")
        if not (0.0 <= self.point_offset < 1.0):
            raise ConfigError(f"fcos point_offset must be in [0, 1), got {self.point_offset}")
        for lvl, (w, h) in enumerate(self.map_sizes):
            if w <= 0 or h <= 0:
                raise ConfigError(f"fcos level {lvl} (stride {self.strides[lvl]}) has an empty feature map {(w, h)}")

    @property
    def sampling(self) -> bool:
        return self.variant == "mmdet3d" if self.center_sampling is None else bool(self.center_sampling)

    @property
    def map_sizes(self) -> tuple[tuple[int, int], ...]:
        """``(W, H)`` per level: ``round(range / voxel) // stride``."""
        pcr, v = self.point_cloud_range, self.voxel_size
        grid = [int(round((pcr[i + 3] - pcr[i]) / v[i])) for i in range(2)]
        return tuple((grid[0] // s, grid[1] // s) for s in self.strides)

    @property
    def num_points(self) -> int:
        return int(sum(w * h for w, h in self.map_sizes))

    def level_points(self, lvl: int) -> tuple[np.ndarray, np.ndarray]:
        """float64 x ``[W]`` and y ``[H]`` of level ``lvl``'s locations (metres)."""
        (w, h), s = self.map_sizes[lvl], self.strides[lvl]
        pcr, v = self.point_cloud_range, self.voxel_size
        return (pcr[0] + (np.arange(w) + self.point_offset) * v[0] * s,
                pcr[1] + (np.arange(h) + self.point_offset) * v[1] * s)

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "strides": list(self.strides),
                "regress_ranges": [[lo, None if math.isinf(hi) else hi] for lo, hi in self.regress_ranges],
                "center_sampling": self.sampling, "center_sample_radius": self.center_sample_radius,
                "box_frame": self.box_frame, "point_offset": self.point_offset}


def fcos_params_from_dict(chk, raw: Any, path: str, pcr: tuple[float, ...], voxel: tuple[float, ...]) -> FcosParams:
    """Our YAML ``fcos:`` block (keys `FCOS_KEYS`; a ``regress_ranges`` upper end of null or ``inf`` is INF)."""
    from assignaudit.config._check import join

    sec: Mapping[str, Any] = chk.mapping(raw, path)
    chk.no_unknown_keys(sec, path, FCOS_KEYS)
    sp = join(path, "strides")
    strides = tuple(chk.integer(s, join(sp, i), minimum=1)
                    for i, s in enumerate(chk.sequence(chk.required(sec, "strides", path), sp, min_length=1)))
    rp = join(path, "regress_ranges")
    ranges = []
    for i, pair in enumerate(chk.sequence(chk.required(sec, "regress_ranges", path), rp)):
        lo_hi = chk.sequence(pair, join(rp, i), length=2)
        lo = chk.number(lo_hi[0], join(join(rp, i), 0))
        hi = math.inf if lo_hi[1] in (None, "inf", "INF") else chk.number(lo_hi[1], join(join(rp, i), 1))
        ranges.append((float(lo), float(hi)))
    d = FcosParams
    cs = sec.get("center_sampling")
    try:
        return FcosParams(
            point_cloud_range=tuple(pcr), voxel_size=tuple(voxel), strides=strides,  # type: ignore[arg-type]
            regress_ranges=tuple(ranges),
            variant=chk.choice(sec.get("variant", d.variant), join(path, "variant"), FCOS_VARIANTS),
            center_sampling=None if cs is None else chk.boolean(cs, join(path, "center_sampling")),
            center_sample_radius=chk.number(sec.get("center_sample_radius", d.center_sample_radius),
                                            join(path, "center_sample_radius")),
            box_frame=chk.choice(sec.get("box_frame", d.box_frame), join(path, "box_frame"), BOX_FRAMES),
            point_offset=chk.number(sec.get("point_offset", d.point_offset), join(path, "point_offset")),
        )
    except ConfigError as err:
        raise chk.error(path, str(err)) from None


# ---------------------------------------------------------------------------------------------------------------
# Assignment
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FcosAssignment:
    """One frame's FCOS targets. K GT, P positive points; flat point index = level offset + ``iy * W + ix``."""

    pos_point: np.ndarray
    """int64 ``[P]``: flat index of each positive point, ascending."""
    pos_gt: np.ndarray
    """int64 ``[P]``: the GT each positive point regresses to."""
    pos_level: np.ndarray
    """int64 ``[P]``."""
    pos_xy: np.ndarray
    """float64 ``[P, 2]``: the positive points' BEV positions (metres)."""
    gt_num_pos: np.ndarray
    """int64 ``[K]``."""
    gt_zero_pos_reason: np.ndarray
    """object ``[K]``: None, ``no_point_inside`` (no location in its (centre) region on any level),
    ``outside_regress_ranges`` (inside on some level, but never within that level's range) or
    ``taken_by_other_gt`` (every such point went to a smaller / nearer GT)."""
    num_points: int


def _half_extents(boxes: torch.Tensor, frame: str) -> tuple[torch.Tensor, torch.Tensor]:
    if frame == "axis_aligned":
        c, s = torch.cos(boxes[:, 6]).abs(), torch.sin(boxes[:, 6]).abs()
        return (boxes[:, 3] * c + boxes[:, 4] * s) / 2, (boxes[:, 3] * s + boxes[:, 4] * c) / 2
    return boxes[:, 3] / 2, boxes[:, 4] / 2


def fcos_assign(gt_boxes: torch.Tensor, params: FcosParams) -> FcosAssignment:
    """Assign one frame's GT (``[K, 7+]`` canonical boxes) to the points of every level (module docstring).

    Computed in float64 on the boxes' device; levels are a short Python loop, pairs are vectorised.
    """
    if gt_boxes.dim() != 2 or gt_boxes.shape[1] < 7:
        raise DataError(f"gt_boxes has shape {tuple(gt_boxes.shape)}; expected [K, 7+] canonical boxes")
    dev = gt_boxes.device
    g = gt_boxes[:, :7].to(torch.float64)
    k = g.shape[0]
    if not bool(torch.isfinite(g).all()):
        raise DataError("gt_boxes has a non-finite value")
    rotated = params.box_frame == "rotated"
    yaw = g[:, 6] if rotated else torch.zeros_like(g[:, 6])
    cos_y, sin_y = torch.cos(yaw), torch.sin(yaw)
    hx, hy = _half_extents(g, params.box_frame)  # half sizes in the box frame
    area = 4 * hx * hy
    # World AABB half extents of the box frame's rectangle, to bound each GT's window.
    wx = hx * cos_y.abs() + hy * sin_y.abs()
    wy = hx * sin_y.abs() + hy * cos_y.abs()
    sampling, mm3d = params.sampling, params.variant == "mmdet3d"
    pcr, vox = params.point_cloud_range, params.voxel_size

    cand_pt, cand_gt, cand_key, cand_lvl = [], [], [], []
    inside_any = torch.zeros(k, dtype=torch.bool, device=dev)
    offset = 0
    for lvl, ((w, h), s) in enumerate(zip(params.map_sizes, params.strides)):
        cx_m, cy_m = vox[0] * s, vox[1] * s
        lo_r, hi_r = params.regress_ranges[lvl]
        # upstream strides[lvl] * radius, in metres (square voxels in practice; the smaller side otherwise)
        rad = s * params.center_sample_radius * min(vox[0], vox[1]) if sampling else 0.0
        ex, ey = wx, wy
        if sampling and mm3d:  # the unclipped centre square can stick out of small boxes
            rs = rad * (cos_y.abs() + sin_y.abs())
            ex, ey = torch.maximum(wx, rs), torch.maximum(wy, rs)
        x0 = torch.ceil((g[:, 0] - ex - pcr[0]) / cx_m - params.point_offset).clamp(0, w).to(torch.int64)
        x1 = torch.floor((g[:, 0] + ex - pcr[0]) / cx_m - params.point_offset).clamp(-1, w - 1).to(torch.int64)
        y0 = torch.ceil((g[:, 1] - ey - pcr[1]) / cy_m - params.point_offset).clamp(0, h).to(torch.int64)
        y1 = torch.floor((g[:, 1] + ey - pcr[1]) / cy_m - params.point_offset).clamp(-1, h - 1).to(torch.int64)
        nx, ny = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
        n = nx * ny
        total = int(n.sum())
        if total:
            gi = torch.repeat_interleave(torch.arange(k, device=dev), n)
            start = torch.cumsum(n, 0) - n
            local = torch.arange(total, device=dev) - start.index_select(0, gi)
            nxg = nx.index_select(0, gi)
            ix = x0.index_select(0, gi) + local % nxg
            iy = y0.index_select(0, gi) + local // nxg
            px = pcr[0] + (ix.to(torch.float64) + params.point_offset) * cx_m
            py = pcr[1] + (iy.to(torch.float64) + params.point_offset) * cy_m
            gb = g.index_select(0, gi)
            dxw, dyw = px - gb[:, 0], py - gb[:, 1]
            c, sn = cos_y.index_select(0, gi), sin_y.index_select(0, gi)
            u, v = c * dxw + sn * dyw, -sn * dxw + c * dyw  # point in the box frame
            bhx, bhy = hx.index_select(0, gi), hy.index_select(0, gi)
            left, right, top, bottom = u + bhx, bhx - u, v + bhy, bhy - v
            if sampling:
                rx = torch.full_like(bhx, rad) if mm3d else torch.minimum(bhx, torch.full_like(bhx, rad))
                ry = torch.full_like(bhy, rad) if mm3d else torch.minimum(bhy, torch.full_like(bhy, rad))
                # mmdet clips the region to the box: [max(c - rad, c - h), min(c + rad, c + h)] (strict inside)
                inside = (torch.stack([u + rx, rx - u, v + ry, ry - v], 1).amin(1) > 0)
            else:
                inside = torch.stack([left, right, top, bottom], 1).amin(1) > 0
            max_d = torch.stack([left, right, top, bottom], 1).amax(1)
            in_range = (max_d >= lo_r) & (max_d <= hi_r)
            inside_any |= torch.bincount(gi[inside], minlength=k)[:k] > 0
            ok = inside & in_range
            key = torch.sqrt(dxw * dxw + dyw * dyw) if mm3d else area.index_select(0, gi)
            cand_pt.append(offset + iy[ok] * w + ix[ok])
            cand_gt.append(gi[ok])
            cand_key.append(key[ok])
            cand_lvl.append(torch.full((int(ok.sum()),), lvl, dtype=torch.int64, device=dev))
        offset += w * h

    if cand_pt:
        pt, gt_i, key, lv = torch.cat(cand_pt), torch.cat(cand_gt), torch.cat(cand_key), torch.cat(cand_lvl)
    else:
        pt = gt_i = lv = torch.zeros(0, dtype=torch.int64, device=dev)
        key = torch.zeros(0, dtype=torch.float64, device=dev)
    uniq, inv = torch.unique(pt, return_inverse=True)
    best = torch.full((uniq.numel(),), math.inf, dtype=torch.float64, device=dev).scatter_reduce(0, inv, key, "amin")
    is_best = key == best.index_select(0, inv)
    winner = torch.full((uniq.numel(),), k, dtype=torch.int64, device=dev).scatter_reduce(
        0, inv, torch.where(is_best, gt_i, k), "amin")
    win_pair = is_best & (gt_i == winner.index_select(0, inv))  # exactly one pair per point
    order = torch.argsort(pt[win_pair])
    pos_point, pos_gt, pos_level = pt[win_pair][order], gt_i[win_pair][order], lv[win_pair][order]

    gt_num_pos = torch.bincount(pos_gt, minlength=k)[:k].cpu().numpy().astype(np.int64)
    had_cand = torch.bincount(gt_i, minlength=k)[:k].cpu().numpy() > 0
    inside_np = inside_any.cpu().numpy()
    reason = np.full(k, None, dtype=object)
    zero = gt_num_pos == 0
    reason[zero & had_cand] = schema.REASON_TAKEN
    reason[zero & ~had_cand & inside_np] = REASON_OUTSIDE_REGRESS_RANGES
    reason[zero & ~inside_np] = REASON_NO_POINT_INSIDE
    return FcosAssignment(
        pos_point=pos_point.cpu().numpy().astype(np.int64), pos_gt=pos_gt.cpu().numpy().astype(np.int64),
        pos_level=pos_level.cpu().numpy().astype(np.int64), pos_xy=point_xy(params, pos_point.cpu().numpy()),
        gt_num_pos=gt_num_pos, gt_zero_pos_reason=reason, num_points=params.num_points,
    )


def point_xy(params: FcosParams, flat: np.ndarray) -> np.ndarray:
    """float64 ``[N, 2]`` BEV positions of flat point indices."""
    flat = np.asarray(flat, np.int64)
    out = np.zeros((flat.shape[0], 2))
    offset = 0
    for lvl, (w, h) in enumerate(params.map_sizes):
        sel = (flat >= offset) & (flat < offset + w * h)
        xs, ys = params.level_points(lvl)
        local = flat[sel] - offset
        out[sel, 0], out[sel, 1] = xs[local % w], ys[local // w]
        offset += w * h
    return out


def points_per_band(params: FcosParams, bands: Bands) -> np.ndarray:
    """int64 ``[B]``: points of every level per band of the point's BEV distance (static)."""
    out = np.zeros(len(bands), np.int64)
    for lvl in range(len(params.strides)):
        xs, ys = params.level_points(lvl)
        out += np.bincount(bands.index(np.hypot(xs[None, :], ys[:, None]).ravel()), minlength=len(bands))
    return out
