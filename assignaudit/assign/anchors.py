"""Anchors of OpenPCDet and mmdetection3d layouts, generated once per layout, with the grid metadata the sparse
candidate search needs.

OpenPCDet (``AnchorLayout.generator == "pcdet"``): ``pcdet/models/dense_heads/target_assigner/anchor_generator.py``
(``AnchorGenerator.generate_anchors``, OpenPCDet @ 8cacccec) and the flat orders of ``AnchorHeadMulti`` /
``AnchorHeadSingle`` (assignment-semantics §2).

mmdetection3d (``"mmdet3d"``, ``"mmdet3d_aligned"``): ``Anchor3DRangeGenerator`` / ``AlignedAnchor3DRangeGenerator``
(``mmdet3d/models/task_modules/anchor/anchor_3d_generator.py``) as ``Anchor3DHead`` feeds them to the assigner
(``train_mixins.py``; §6.4, §6.5): per level one ``[1, ny, nx, n_size, n_rot, 7]`` block whose size axis is the
concatenation of every ``ranges`` entry's sizes (one `AnchorSet` per entry), flattened ``(z, y, x, size, rot)``,
levels concatenated in order (FPN heads assign over all levels at once).

Float32 exactness matters here: forced matches compare IoUs with ``==`` (§3.3, §12.3), so a GT exactly midway
between two anchors ties only if the anchor centres are the very float32 numbers the framework uses. Those come from

* ``grid = np.round((pcr[3:] - pcr[:3]) / voxel)`` with pcr float32 (``DatasetTemplate.point_cloud_range``) and the
  voxel size float64 (``DataProcessor``), feature map ``grid[:2] // stride`` (integer floor);
* pcdet: ``stride = (pcr[3] - pcr[0]) / (n - 1)`` (``align_center`` False) or ``/ n`` with offset ``stride / 2``
  (True), evaluated in float64 from the float32 range ends;
* pcdet: ``torch.arange(x_min + offset, x_max + 1e-5, step=stride, dtype=torch.float32)`` **on the CPU** (upstream
  builds on the CPU and only then calls ``.cuda()``). The CPU kernel does not round ``start + i * step`` element by
  element: its vectorised path rounds each SIMD chunk's base to float32 first, so a few positions differ by one ulp
  from the "mathematical" float32 value. We therefore call the same ``torch.arange`` on the CPU instead of
  re-deriving it;
* pcdet: anchor centre ``z = float32(bottom) + float32(dz) / 2`` in float32 ("shift to box centers");
* mmdet3d: the range is ``torch.tensor(ranges[i])`` (float32); ``Anchor3DRangeGenerator`` takes
  ``torch.linspace(min, max, n)`` (endpoints included); ``AlignedAnchor3DRangeGenerator`` takes
  ``c = torch.linspace(min, max, n + 1)``, adds ``(c[1] - c[0]) / 2`` unless ``align_corner`` and keeps ``c[:n]``,
  all in float32. z is ``linspace(z_min, z_max, 1) = z_min`` (feature maps are 2D, D = 1) or, aligned,
  ``z_min + (z_max - z_min) / 2`` (``z_min`` with ``align_corner``): the anchor **bottom** (mmdet3d boxes are
  bottom-centred; `AnchorSet.bottom_heights` is not used). Sizes are ``float32(size) * scale``; the canonical centre
  is ``bottom + dz / 2`` in float32. torch's float32 ``linspace`` rounds ``start + i * step`` (first half) and
  ``end - (n - 1 - i) * step`` (second half) once, with ``step = float32((end - start) / (n - 1))``: the CPU kernel
  does so (checked against that formula for the nuScenes and KITTI ranges), and so does the CUDA kernel when nvcc
  contracts the multiply-add (its default), which is what upstream runs at loss time. We call ``torch.linspace`` on
  the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from assignaudit import ops
from assignaudit.assign.params import AnchorLayout, AnchorLevel, AnchorSet
from assignaudit.bands import Bands
from assignaudit.errors import ConfigError

GENERATORS = ("pcdet", "mmdet3d", "mmdet3d_aligned", "mmdet3d_aligned_per_class")
MMDET3D_GENERATORS = ("mmdet3d", "mmdet3d_aligned", "mmdet3d_aligned_per_class")
# AlignedAnchor3DRangeGeneratorPerCls (ShapeAwareHead, SSN): set i on its own feature map, multi-head flat order.
PER_CLASS_GENERATOR = "mmdet3d_aligned_per_class"
ALIGNED_GENERATORS = ("mmdet3d_aligned", PER_CLASS_GENERATOR)
# Per-combo "edge" modes: which BEV rectangle of an anchor the candidate search uses.
EDGE_MODES = ("pcdet", "mmdet3d", "rotated")
# Conservative margin (metres) for rotated-box AABBs. OpenPCDet's rotated-overlap kernel counts a corner within
# 1 cm of a box as inside (performance-facts.md), so boxes up to ~1 cm apart can get IoU > 0: prune at 2 cm.
ROTATED_AABB_MARGIN_M = 0.02


@dataclass(frozen=True)
class CandidateEdges:
    """BEV edges of every anchor combo along its grid axes, for ``searchsorted`` window look-ups.

    ``x1, x2``: ``[C, NX]`` (padded with +inf past a combo's ``nx``), ``y1, y2``: ``[C, NY]``. In the nearest-BEV
    modes these are the exact float32 xyxy edges of the anchors (the same numbers the IoU sees), so the window is
    exactly the set of anchors whose xyxy overlaps the GT's with positive area. In ``rotated`` mode they are float64
    conservative AABBs of the rotated anchors (margin `ROTATED_AABB_MARGIN_M`).
    """

    x1: torch.Tensor
    x2: torch.Tensor
    y1: torch.Tensor
    y2: torch.Tensor


@dataclass(frozen=True, eq=False)
class Anchors:
    """All anchors of a layout plus the index arithmetic of their grid. Built by `generate_anchors`; read-only.

    Flat order (the framework's): pcdet multihead ``per set [n_size, n_rot, nz, ny, nx]`` concatenated in set
    order; pcdet single head and every mmdet3d layout ``(z, y, x, set, size, rot)`` per level, levels concatenated
    (pcdet layouts have one level). Every anchor's flat index is
    ``combo_base[c] + iz * combo_stride[c, 0] + iy * combo_stride[c, 1] + ix * combo_stride[c, 2]`` where the combo
    ``c`` is one (level, set, size, rotation) tuple, numbered level-major, then set, size, rotation.
    """

    layout: AnchorLayout
    boxes: torch.Tensor
    """float32 ``[A, 7]`` canonical anchors ``x, y, z (centre), dx, dy, dz, yaw`` in the LiDAR frame."""
    set_index: torch.Tensor
    """int64 ``[A]``: anchor set (= class slot in `AnchorLayout.anchor_sets`) of every anchor."""
    band_index: torch.Tensor
    """int64 ``[A]``: range band of the anchor centre's BEV distance ``hypot(x, y)`` under `bands`."""
    bands: Bands
    band_counts: np.ndarray
    """int64 ``[S, B]``: anchors per set per band (static; negatives are derived from it)."""
    set_slices: tuple[slice | None, ...]
    """Per set, its contiguous flat range (pcdet multihead), or None (single head / mmdet3d interleave the sets)."""
    feature_map_sizes: tuple[tuple[int, int], ...]
    """Per set ``(nx, ny)`` of the first level (the only one except in mmdet3d FPN layouts)."""
    x_positions: tuple[torch.Tensor, ...]
    """Per set float32 ``[nx]`` anchor centre x of the first level (the upstream arange / linspace)."""
    y_positions: tuple[torch.Tensor, ...]
    """Per set float32 ``[ny]`` anchor centre y of the first level."""
    level_feature_map_sizes: tuple[tuple[tuple[int, int], ...], ...]
    """``[L][S]`` ``(nx, ny)`` of every level and set."""
    level_x_positions: tuple[tuple[torch.Tensor, ...], ...]
    """``[L][S]`` float32 ``[nx]`` anchor centre x of every level and set."""
    level_y_positions: tuple[tuple[torch.Tensor, ...], ...]
    """``[L][S]`` float32 ``[ny]`` anchor centre y of every level and set."""
    level_slices: tuple[slice, ...]
    """Per level, its contiguous flat range."""
    set_first_index: torch.Tensor
    """int64 ``[S]``: lowest flat index of each set (its first anchor in the set's own assigner order)."""
    combo_set: torch.Tensor
    """int64 ``[C]``: set of each (level, set, size, rot) combo."""
    combo_level: torch.Tensor
    """int64 ``[C]``: level of each combo."""
    combo_base: torch.Tensor
    """int64 ``[C]``: flat index of the combo's anchor at iz = iy = ix = 0."""
    combo_stride: torch.Tensor
    """int64 ``[C, 3]``: flat-index strides for (iz, iy, ix)."""
    combo_nz: torch.Tensor
    """int64 ``[C]``: number of bottom heights of the combo's set."""
    combo_nxy: torch.Tensor
    """int64 ``[C, 2]``: (nx, ny) of the combo's set."""
    xyxy: Mapping[str, torch.Tensor]
    """Per nearest convention (``pcdet``, ``mmdet3d``): float32 ``[A, 4]`` nearest-BEV xyxy of every anchor."""
    edges: Mapping[str, CandidateEdges]
    """Per mode in `EDGE_MODES`: the combo edge tables."""
    matched_threshold: torch.Tensor
    """float32 ``[S]`` per-set positive threshold (float32: torch compares the float32 IoU with a Python float in
    float32, as upstream does)."""
    unmatched_threshold: torch.Tensor
    """float32 ``[S]``."""
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_anchors(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_sets(self) -> int:
        return len(self.layout.anchor_sets)

    @property
    def device(self) -> torch.device:
        return self.boxes.device

    @property
    def num_levels(self) -> int:
        return len(self.level_slices)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(s.class_name for s in self.layout.anchor_sets)

    def set_counts(self) -> np.ndarray:
        """int64 ``[S]``: anchors per set."""
        return self.band_counts.sum(axis=1)

    def flat_index(self, set_idx: int, iz: int, iy: int, ix: int, size_idx: int = 0, rot_idx: int = 0,
                   level: int = 0) -> int:
        """Flat index of one anchor (tests and debugging; the hot path uses the combo tables)."""
        s = self.layout.anchor_sets[set_idx]
        n = [len(a.sizes) * len(a.rotations) for a in self.layout.anchor_sets]
        c = level * sum(n) + sum(n[:set_idx]) + size_idx * len(s.rotations) + rot_idx
        st = self.combo_stride[c].tolist()
        return int(self.combo_base[c]) + iz * st[0] + iy * st[1] + ix * st[2]

    def with_bands(self, bands: Bands) -> "Anchors":
        """The same anchors with band indices/counts for other band edges (cached)."""
        if bands == self.bands:
            return self
        if bands not in self._cache:
            band_index, band_counts = _band_tables(self.boxes, self.set_index, self.num_sets, bands)
            self._cache[bands] = _replace(self, bands=bands, band_index=band_index, band_counts=band_counts)
        return self._cache[bands]


def _replace(obj: Anchors, **kw) -> Anchors:
    import dataclasses

    return dataclasses.replace(obj, **kw)


def _grid_xy(layout: AnchorLayout) -> tuple[int, int]:
    """Voxel grid ``(gx, gy) = np.round((pcr[3:5] - pcr[0:2]) / voxel)``, pcr float32 and voxel float64 as upstream."""
    pcr = np.asarray(layout.point_cloud_range, dtype=np.float32)
    voxel = np.asarray(layout.voxel_size, dtype=np.float64)
    grid = np.round((pcr[3:6] - pcr[0:3]) / voxel).astype(np.int64)
    return int(grid[0]), int(grid[1])


def feature_map_size(layout: AnchorLayout, anchor_set: AnchorSet) -> tuple[int, int]:
    """``(nx, ny) = grid[:2] // stride``, ``grid = np.round((pcr[3:] - pcr[:3]) / voxel)`` as OpenPCDet."""
    stride = int(anchor_set.feature_map_stride)
    if stride < 1:
        raise ConfigError(f"anchor set {anchor_set.class_name!r}: feature_map_stride must be >= 1, got {stride}")
    gx, gy = _grid_xy(layout)
    return gx // stride, gy // stride


def _positions(lo: np.float32, hi: np.float32, n: int, align_center: bool, axis: str, name: str) -> torch.Tensor:
    """The upstream float32 arange of anchor centres along one axis (see the module docstring)."""
    if align_center:
        stride = (hi - lo) / np.int64(n)
        offset = stride / 2
    else:
        if n < 2:
            raise ConfigError(
                f"anchor set {name!r}: feature map has {n} cell(s) along {axis}; align_center False needs >= 2"
            )
        stride = (hi - lo) / np.int64(n - 1)  # float32 / int64 -> float64, as upstream with numpy scalars
        offset = 0.0
    start = float(lo) + float(offset)
    end = float(hi) + 1e-5
    # Always the CPU kernel: upstream builds here and moves to the GPU afterwards.
    pos = torch.arange(start, end, step=float(stride), dtype=torch.float32, device="cpu")
    if pos.numel() != n:
        # Upstream would fail later with a reshape error against the network output; we say so now.
        raise ConfigError(
            f"anchor set {name!r}: torch.arange gives {pos.numel()} anchor positions along {axis}, "
            f"the feature map has {n}"
        )
    return pos


def _band_tables(boxes: torch.Tensor, set_index: torch.Tensor, num_sets: int, bands: Bands):
    xy = boxes[:, :2].detach().cpu().numpy().astype(np.float64)
    band = bands.index(np.hypot(xy[:, 0], xy[:, 1])).astype(np.int64)
    sets = set_index.cpu().numpy()
    nb = len(bands)
    counts = np.bincount(sets * nb + band, minlength=num_sets * nb).reshape(num_sets, nb).astype(np.int64)
    return torch.from_numpy(band).to(boxes.device), counts


def _validate(layout: AnchorLayout) -> None:
    if layout.generator not in GENERATORS:
        raise ConfigError(f"anchor generator must be one of {list(GENERATORS)}, got {layout.generator!r}")
    if len(layout.point_cloud_range) != 6 or len(layout.voxel_size) != 3:
        raise ConfigError("point_cloud_range needs 6 numbers and voxel_size 3")
    if not layout.anchor_sets:
        raise ConfigError("the anchor layout has no anchor sets")
    pcr = layout.point_cloud_range
    if not all(pcr[i + 3] > pcr[i] for i in range(3)):
        raise ConfigError(f"point_cloud_range {list(pcr)} must have max > min on every axis")
    if not all(v > 0 for v in layout.voxel_size):
        raise ConfigError(f"voxel_size {list(layout.voxel_size)} must be positive")
    mm3d = layout.generator in MMDET3D_GENERATORS
    for s in layout.anchor_sets:
        # mmdet3d takes the bottom z from the range: bottom_heights is not needed there.
        if not s.sizes or not s.rotations or (not mm3d and not s.bottom_heights):
            what = "size and rotation" if mm3d else "size, rotation and bottom height"
            raise ConfigError(f"anchor set {s.class_name!r} needs at least one {what}")
        if any(len(sz) != 3 or min(sz) <= 0 for sz in s.sizes):
            raise ConfigError(f"anchor set {s.class_name!r}: sizes must be positive (dx, dy, dz) triples")
        if mm3d and s.anchor_range is not None:
            r = s.anchor_range
            if len(r) != 6 or not (r[3] > r[0] and r[4] > r[1]):
                raise ConfigError(
                    f"anchor set {s.class_name!r}: anchor_range {list(r)} must be 6 numbers "
                    "(x_min, y_min, z_min, x_max, y_max, z_max) with x_max > x_min and y_max > y_min"
                )
    if not mm3d and layout.levels:
        raise ConfigError("anchor levels (FPN) exist only for the mmdet3d generators, not for generator 'pcdet'")
    for lv in layout.levels:
        if int(lv.feature_map_stride) < 1 or not lv.scale > 0:
            raise ConfigError(f"anchor level {lv}: feature_map_stride must be >= 1 and scale > 0")


@dataclass
class _Grid:
    """What a generator leaves for `generate_anchors` to finish (CPU tensors, python lists)."""

    boxes: list = field(default_factory=list)  # float32 [A_block, 7] blocks in flat order
    set_index: list = field(default_factory=list)  # int64 [A_block] blocks
    combo: list = field(default_factory=list)  # (level, set, base, (sz, sy, sx), nz, (nx, ny)) per combo
    set_first: list | None = None  # [S] lowest flat index per set
    set_slices: tuple | None = None
    level_fm: list = field(default_factory=list)  # [L][S] (nx, ny)
    level_x: list = field(default_factory=list)  # [L][S] float32 [nx]
    level_y: list = field(default_factory=list)
    level_slices: list = field(default_factory=list)
    size: int = 0


def _interleave(grid: _Grid, per_set: list[torch.Tensor], level: int) -> None:
    """Append one level in single-head order ``(z, y, x, set, size, rot)``: per set ``[nz, ny, nx, ns, nr, 7]``,
    concatenated on the per-location axis (``AnchorHeadSingle``'s ``view(nz, ny, nx, -1)`` + cat, and mmdet3d's
    ``torch.cat(mr_anchors, dim=-3)``)."""
    nz, ny, nx = per_set[0].shape[:3]
    offset = grid.size
    block = torch.cat([a.reshape(nz, ny, nx, -1, 7) for a in per_set], dim=3).reshape(-1, 7)
    per_loc = [a.shape[3] * a.shape[4] for a in per_set]
    loc = int(sum(per_loc))
    loc_off = np.concatenate([[0], np.cumsum(per_loc)[:-1]]).astype(int)
    for si, a in enumerate(per_set):
        ns, nr = a.shape[3], a.shape[4]
        for isz in range(ns):
            for ir in range(nr):
                base = offset + int(loc_off[si]) + isz * nr + ir
                grid.combo.append((level, si, base, (ny * nx * loc, nx * loc, loc), nz, (nx, ny)))
    if grid.set_first is None:
        grid.set_first = [offset + int(o) for o in loc_off]
    per_loc_set = torch.repeat_interleave(torch.arange(len(per_set)), torch.tensor(per_loc))
    grid.boxes.append(block)
    grid.set_index.append(per_loc_set.repeat(nz * ny * nx))
    grid.level_slices.append(slice(offset, offset + block.shape[0]))
    grid.size += block.shape[0]


def _anchor_block(x: torch.Tensor, y: torch.Tensor, z_centre: torch.Tensor, size: torch.Tensor,
                  rot: torch.Tensor) -> torch.Tensor:
    """float32 ``[nz, ny, nx, ns, nr, 7]`` canonical anchors; ``z_centre`` is ``[nz, ns]``."""
    nz, ny, nx, ns, nr = z_centre.shape[0], y.numel(), x.numel(), size.shape[0], rot.numel()
    a = torch.empty((nz, ny, nx, ns, nr, 7), dtype=torch.float32)
    a[..., 0] = x.view(1, 1, nx, 1, 1)
    a[..., 1] = y.view(1, ny, 1, 1, 1)
    a[..., 2] = z_centre.view(nz, 1, 1, ns, 1)
    a[..., 3:6] = size.view(1, 1, 1, ns, 1, 3)
    a[..., 6] = rot.view(1, 1, 1, 1, nr)
    return a


def _pcdet_grid(layout: AnchorLayout) -> _Grid:
    sets = layout.anchor_sets
    pcr32 = np.asarray(layout.point_cloud_range, dtype=np.float32)
    fm = [feature_map_size(layout, s) for s in sets]
    if not layout.multihead:
        keys = {(nx, ny, len(s.bottom_heights)) for (nx, ny), s in zip(fm, sets)}
        if len(keys) > 1:
            raise ConfigError(
                "single-head anchor layout needs the same feature map and number of bottom heights for every "
                f"anchor set (AnchorHeadSingle concatenates them per location), got {sorted(keys)}"
            )
    per_set = []  # [nz, ny, nx, ns, nr, 7] float32 per set
    xs, ys = [], []
    for (nx, ny), s in zip(fm, sets):
        x = _positions(pcr32[0], pcr32[3], nx, s.align_center, "x", s.class_name)
        y = _positions(pcr32[1], pcr32[4], ny, s.align_center, "y", s.class_name)
        xs.append(x)
        ys.append(y)
        bottom = torch.tensor(s.bottom_heights, dtype=torch.float32)
        size = torch.tensor(s.sizes, dtype=torch.float32)  # [ns, 3]
        # float32 add of float32 halves, the generator's "shift to box centers" after the permute.
        z_centre = bottom.view(-1, 1) + size[:, 2].view(1, -1) / 2
        per_set.append(_anchor_block(x, y, z_centre, size, torch.tensor(s.rotations, dtype=torch.float32)))

    grid = _Grid(level_fm=[fm], level_x=[xs], level_y=[ys])
    if layout.multihead:
        _flatten_multihead(grid, per_set)
    else:
        _interleave(grid, per_set, 0)
        grid.set_slices = tuple(None for _ in sets)
    return grid


def _flatten_multihead(grid: _Grid, per_set: list[torch.Tensor]) -> None:
    """Per-set blocks in multi-head order: each ``[nz, ny, nx, ns, nr, 7]`` permuted to ``[ns, nr, nz, ny, nx]`` and
    flattened, sets concatenated in order (OpenPCDet ``AnchorHeadMulti``; mmdet3d
    ``AlignedAnchor3DRangeGeneratorPerCls.multi_cls_grid_anchors``, whose ``view(*featmap, -1, 7).permute`` is the
    same order with nz = ns = 1)."""
    slices, set_first = [], []
    for si, a in enumerate(per_set):
        nz, ny, nx, ns, nr = a.shape[:5]
        for isz in range(ns):
            for ir in range(nr):
                grid.combo.append((0, si, grid.size + (isz * nr + ir) * nz * ny * nx, (ny * nx, nx, 1), nz,
                                   (nx, ny)))
        n = a[..., 0].numel()
        set_first.append(grid.size)
        slices.append(slice(grid.size, grid.size + n))
        grid.boxes.append(a.permute(3, 4, 0, 1, 2, 5).reshape(-1, 7))
        grid.set_index.append(torch.full((n,), si, dtype=torch.int64))
        grid.size += n
    grid.set_first = set_first
    grid.set_slices = tuple(slices)
    grid.level_slices = [slice(0, grid.size)]


def _mmdet3d_axis(lo: float, hi: float, n: int, aligned: bool, align_corner: bool) -> torch.Tensor:
    """float32 ``[n]`` centres along one axis, with upstream's float32 ops (module docstring)."""
    lo_t = torch.tensor(lo, dtype=torch.float32)  # torch.tensor(anchor_range): float32
    hi_t = torch.tensor(hi, dtype=torch.float32)
    if not aligned:
        return torch.linspace(lo_t, hi_t, n, dtype=torch.float32, device="cpu")
    c = torch.linspace(lo_t, hi_t, n + 1, dtype=torch.float32, device="cpu")
    if not align_corner:
        c = c + (c[1] - c[0]) / 2
    return c[:n].contiguous()


def _mmdet3d_levels(layout: AnchorLayout) -> tuple[AnchorLevel, ...]:
    if layout.levels:
        return layout.levels
    strides = {int(s.feature_map_stride) for s in layout.anchor_sets}
    if len(strides) > 1:
        raise ConfigError(
            "mmdet3d anchor layout without levels needs one feature_map_stride for every anchor set (one "
            f"generator call per level builds every range on the same feature map), got {sorted(strides)}"
        )
    return (AnchorLevel(feature_map_stride=strides.pop(), scale=1.0),)


def _mmdet3d_per_class_grid(layout: AnchorLayout) -> _Grid:
    """``mmdet3d_aligned_per_class``: ``ShapeAwareHead`` + ``AlignedAnchor3DRangeGeneratorPerCls`` (SSN). Set i is
    built on its own feature map (``grid // feature_map_stride``) from ``ranges[i]`` / ``sizes[i]`` with the aligned
    generator's centres, sets concatenated in multi-head order (`_flatten_multihead`); no levels, scale 1."""
    aligned = True
    per_set, xs, ys, fm = [], [], [], []
    for s in layout.anchor_sets:
        nx, ny = feature_map_size(layout, s)
        if nx < 1 or ny < 1:
            raise ConfigError(f"anchor set {s.class_name!r}: feature map {nx} x {ny} is empty")
        r = s.anchor_range if s.anchor_range is not None else layout.point_cloud_range
        x = _mmdet3d_axis(r[0], r[3], nx, aligned, layout.align_corner)
        y = _mmdet3d_axis(r[1], r[4], ny, aligned, layout.align_corner)
        bottom = _mmdet3d_axis(r[2], r[5], 1, aligned, layout.align_corner)
        size = torch.tensor(s.sizes, dtype=torch.float32)
        z_centre = bottom.view(1, 1) + size[:, 2].view(1, -1) / 2
        per_set.append(_anchor_block(x, y, z_centre, size, torch.tensor(s.rotations, dtype=torch.float32)))
        xs.append(x)
        ys.append(y)
        fm.append((nx, ny))
    grid = _Grid(level_fm=[fm], level_x=[xs], level_y=[ys])
    _flatten_multihead(grid, per_set)
    return grid


def _mmdet3d_grid(layout: AnchorLayout) -> _Grid:
    sets = layout.anchor_sets
    aligned = layout.generator in ALIGNED_GENERATORS
    if layout.generator == PER_CLASS_GENERATOR:
        if layout.levels:
            raise ConfigError("generator mmdet3d_aligned_per_class has one feature map per class, no FPN levels "
                              "(AlignedAnchor3DRangeGeneratorPerCls supports a single scale)")
        return _mmdet3d_per_class_grid(layout)
    gx, gy = _grid_xy(layout)
    grid = _Grid()
    for li, lv in enumerate(_mmdet3d_levels(layout)):
        stride = int(lv.feature_map_stride)
        if stride < 1:
            raise ConfigError(f"anchor level {li}: feature_map_stride must be >= 1, got {stride}")
        nx, ny = gx // stride, gy // stride
        if nx < 1 or ny < 1:
            raise ConfigError(f"anchor level {li}: feature map {nx} x {ny} is empty (grid {gx} x {gy} // {stride})")
        per_set, xs, ys = [], [], []
        for s in sets:
            r = s.anchor_range if s.anchor_range is not None else layout.point_cloud_range
            x = _mmdet3d_axis(r[0], r[3], nx, aligned, layout.align_corner)
            y = _mmdet3d_axis(r[1], r[4], ny, aligned, layout.align_corner)
            bottom = _mmdet3d_axis(r[2], r[5], 1, aligned, layout.align_corner)  # D = 1
            size = torch.tensor(s.sizes, dtype=torch.float32) * lv.scale  # float32 multiply, as upstream
            z_centre = bottom.view(1, 1) + size[:, 2].view(1, -1) / 2  # bottom-centred -> canonical centre z
            per_set.append(_anchor_block(x, y, z_centre, size, torch.tensor(s.rotations, dtype=torch.float32)))
            xs.append(x)
            ys.append(y)
        _interleave(grid, per_set, li)
        grid.level_fm.append([(nx, ny)] * len(sets))
        grid.level_x.append(xs)
        grid.level_y.append(ys)
    grid.set_slices = tuple(None for _ in sets)
    return grid


def generate_anchors(layout: AnchorLayout, device: str | torch.device = "cpu", bands: Bands | None = None) -> Anchors:
    """Every anchor of ``layout`` in the framework's flat order, on ``device``, plus the candidate-search tables.

    Built on the CPU (bit-exact upstream positions) and moved to ``device`` once. Raises `ConfigError` for a layout
    the framework could not build (empty sets, a pcdet feature map with < 2 cells and align_center False, single-head
    sets with different grids, mmdet3d sets with different strides and no levels, an unknown generator).
    """
    _validate(layout)
    bands = bands if bands is not None else Bands()
    sets = layout.anchor_sets
    grid = _pcdet_grid(layout) if layout.generator == "pcdet" else _mmdet3d_grid(layout)
    n_sets = len(sets)
    boxes = torch.cat(grid.boxes, 0)
    set_index = torch.cat(grid.set_index, 0)

    combo_level_t = torch.tensor([c[0] for c in grid.combo], dtype=torch.int64)
    combo_set_t = torch.tensor([c[1] for c in grid.combo], dtype=torch.int64)
    combo_base_t = torch.tensor([c[2] for c in grid.combo], dtype=torch.int64)
    combo_stride_t = torch.tensor([c[3] for c in grid.combo], dtype=torch.int64)
    combo_nz_t = torch.tensor([c[4] for c in grid.combo], dtype=torch.int64)
    combo_nxy_t = torch.tensor([c[5] for c in grid.combo], dtype=torch.int64)

    xyxy = {conv: ops.nearest_bev_xyxy(boxes, conv).to(torch.float32) for conv in ("pcdet", "mmdet3d")}
    edges = {conv: _nearest_edges(xyxy[conv], combo_base_t, combo_stride_t, combo_nxy_t) for conv in xyxy}
    edges["rotated"] = _rotated_edges(boxes, combo_base_t, combo_stride_t, combo_nxy_t)
    band_index, band_counts = _band_tables(boxes, set_index, n_sets, bands)

    dev = torch.device(device)
    to = lambda t: t.to(dev)  # noqa: E731
    level_x = tuple(tuple(to(x) for x in xs) for xs in grid.level_x)
    level_y = tuple(tuple(to(y) for y in ys) for ys in grid.level_y)
    return Anchors(
        layout=layout,
        boxes=to(boxes),
        set_index=to(set_index),
        band_index=to(band_index),
        bands=bands,
        band_counts=band_counts,
        set_slices=grid.set_slices,
        feature_map_sizes=tuple(grid.level_fm[0]),
        x_positions=level_x[0],
        y_positions=level_y[0],
        level_feature_map_sizes=tuple(tuple(fm) for fm in grid.level_fm),
        level_x_positions=level_x,
        level_y_positions=level_y,
        level_slices=tuple(grid.level_slices),
        set_first_index=to(torch.tensor(grid.set_first, dtype=torch.int64)),
        combo_set=to(combo_set_t),
        combo_level=to(combo_level_t),
        combo_base=to(combo_base_t),
        combo_stride=to(combo_stride_t),
        combo_nz=to(combo_nz_t),
        combo_nxy=to(combo_nxy_t),
        xyxy={k: to(v) for k, v in xyxy.items()},
        edges={k: CandidateEdges(*(to(t) for t in (v.x1, v.x2, v.y1, v.y2))) for k, v in edges.items()},
        matched_threshold=to(torch.tensor([s.matched_threshold for s in sets], dtype=torch.float32)),
        unmatched_threshold=to(torch.tensor([s.unmatched_threshold for s in sets], dtype=torch.float32)),
    )


def _combo_axis_index(base, stride, nxy, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``[C, N]`` of the anchors along x (axis 0) or y (axis 1) at the combo's origin, and a pad mask."""
    n_max = int(nxy[:, axis].max())
    i = torch.arange(n_max)
    valid = i[None, :] < nxy[:, axis : axis + 1]
    st = stride[:, 2 - axis : 3 - axis]  # x stride is column 2, y stride column 1
    idx = base[:, None] + torch.where(valid, i[None, :], 0) * st
    return idx, valid


def _nearest_edges(xyxy: torch.Tensor, base, stride, nxy) -> CandidateEdges:
    ix, vx = _combo_axis_index(base, stride, nxy, 0)
    iy, vy = _combo_axis_index(base, stride, nxy, 1)
    inf = torch.tensor(float("inf"), dtype=xyxy.dtype)
    return CandidateEdges(
        x1=torch.where(vx, xyxy[ix, 0], inf),
        x2=torch.where(vx, xyxy[ix, 2], inf),
        y1=torch.where(vy, xyxy[iy, 1], inf),
        y2=torch.where(vy, xyxy[iy, 3], inf),
    )


def rotated_aabb(boxes: torch.Tensor) -> torch.Tensor:
    """float64 ``[N, 4]`` xyxy AABB of each rotated BEV box grown by `ROTATED_AABB_MARGIN_M` (``ops.bev_aabb``)."""
    return ops.bev_aabb(boxes.to(torch.float64), pad=ROTATED_AABB_MARGIN_M)


def _rotated_edges(boxes: torch.Tensor, base, stride, nxy) -> CandidateEdges:
    ix, vx = _combo_axis_index(base, stride, nxy, 0)
    iy, vy = _combo_axis_index(base, stride, nxy, 1)
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    bx = rotated_aabb(boxes[ix.reshape(-1)]).view(*ix.shape, 4)  # [C, NX, 4]
    by = rotated_aabb(boxes[iy.reshape(-1)]).view(*iy.shape, 4)  # [C, NY, 4]
    return CandidateEdges(
        x1=torch.where(vx, bx[..., 0], inf),
        x2=torch.where(vx, bx[..., 2], inf),
        y1=torch.where(vy, by[..., 1], inf),
        y2=torch.where(vy, by[..., 3], inf),
    )
