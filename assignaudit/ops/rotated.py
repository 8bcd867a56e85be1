r"""Rotated BEV intersection kernels on row pairs (the building block of every exact IoU in `assignaudit.ops`).

Two kernels, both vectorised over pairs ``(a[i], b[i])`` with no Python loop over boxes or pairs:

**Exact mode** (`_inter_area_exact`, the default). Box A is expressed in box B's local frame (origin at B's centre,
axes along B's heading), where B is the axis-aligned rectangle ``[-hx, hx] x [-hy, hy]``. A's four corners are
clipped against B with two *slab* clips (x, then y). Each slab clip turns every polygon edge into three points:
its start point, and its crossings of the two slab lines in order along the edge (a missing crossing is replaced by
the start point again). Every point is then clamped into the slab. Clamping moves the vertices outside the slab onto
the slab line, where they are collinear with the two crossings that bound the outside run, so they add nothing to
the shoelace area; the polygon stays closed by construction, and there is no sorting and no variable-length
polygon: ``4 -> 12 -> 36`` edges of fixed shape, and the shoelace area is the sum of ``cross(start, end)`` over
edges, which needs no vertex order. Working in B's frame keeps coordinates small (no cancellation at
50 m from the sensor), and a crossing of two near-parallel edges can only be misplaced *along* a line that the
polygon follows anyway, so its error enters the area to second order. This float32 formulation agrees with shapely
(float64 GEOS) to a few 1e-6 in IoU. A separating-axis test returns exactly 0 for disjoint or touching boxes
(otherwise the collinear points of a fully clamped polygon could leave ~1e-7 of rounding noise).

**Margin mode** (`_inter_area_pcdet_margin`, ``margin_compat=True``): a vectorised replay of OpenPCDet
``pcdet/ops/iou3d_nms/src/iou3d_nms_kernel.cu::box_overlap`` (the kernel behind ``boxes_iou_bev``,
``boxes_iou3d_gpu`` and ``nms_gpu``; mmcv's ``iou3d`` kernel is the same family). Its rules, reproduced here:

* corners are built in absolute coordinates: ``[x -/+ dx/2, y -/+ dy/2]`` rotated about the centre by yaw;
* an edge pair contributes its crossing point only for a *proper* crossing: bounding boxes touch (``<=``) and
  ``s1*s2 > 0 and s3*s4 > 0`` (strict), with the kernel's two formulas for the point (``|s5 - s1| > 1e-8``);
* ``check_in_box2d``: a corner of one box counts as inside the other when, in that box's frame,
  ``|x| < dx/2 + MARGIN and |y| < dy/2 + MARGIN`` with ``MARGIN = 1e-2`` metres (strict ``<``). This is the 1 cm
  margin: two boxes 5 mm apart get a thin positive "intersection";
* the points are sorted by ``atan2`` around their mean (a stable bubble sort in the kernel; a stable sort here on
  the same candidate order: 16 crossings edge-major, then corner k of B, corner k of A) and the area is the fan
  ``|sum cross(p_k - p_0, p_k+1 - p_0)| / 2``.

It matches the CUDA kernel up to float32 rounding of sin/cos and summation order (no claim of bit equality).

Both kernels compute in the input dtype, on the input device; the same code runs on CPU and CUDA.
IoU denominators follow OpenPCDet: BEV ``inter / max(area_a + area_b - inter, 1e-8)`` (``iou_bev``), 3D
``inter / max(vol_a + vol_b - inter, 1e-6)`` (``iou3d_nms_utils.boxes_iou3d_gpu``).
"""

from __future__ import annotations

import torch

from assignaudit.ops._checks import check_pair

BEV_EPS = 1e-8  # OpenPCDet iou3d_nms_kernel.cu EPS (union floor of iou_bev)
IOU3D_EPS = 1e-6  # OpenPCDet iou3d_nms_utils.boxes_iou3d_gpu union floor
MARGIN = 1e-2  # OpenPCDet check_in_box2d MARGIN, metres
_CHUNK = 1 << 14  # pairs per kernel call


# ---------------------------------------------------------------------------------------------------------------
# Exact kernel
# ---------------------------------------------------------------------------------------------------------------


def _clip_slab(sx: torch.Tensor, sy: torch.Tensor, ex: torch.Tensor, ey: torch.Tensor,
               h: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Clip the edges ``(sx, sy) -> (ex, ey)`` (each ``[P, K]``) of closed polygons to the slab ``-h <= x <= h``
    (``h`` ``[P, 1]``).

    Every edge becomes three edges ``s'->c1, c1->c2, c2->e'`` (``c1``, ``c2`` the slab-line crossings in order
    along the edge, or ``s`` repeated); all points are clamped into the slab. Returns ``[P, 3K]`` start and end
    coordinates. The shoelace area (sum of ``cross(start, end)`` over edges, in any order) equals the clipped
    polygon's: see the module docstring.
    """
    dx = ex - sx  # [P, K]
    dy = ey - sy
    safe = torch.where(dx == 0, torch.ones_like(dx), dx)  # only used where the edge crosses, so dx != 0 there
    zero = torch.zeros_like(sx)
    t_hi = torch.where((sx > h) != (ex > h), (h - sx) / safe, zero)
    t_lo = torch.where((sx < -h) != (ex < -h), (-h - sx) / safe, zero)
    # Both crossings lie on the edge; emit them in order along it. t = 0 repeats the start point (harmless).
    t1 = torch.minimum(t_hi, t_lo)
    t2 = torch.maximum(t_hi, t_lo)
    lo = -h
    px = torch.cat((sx, sx + t1 * dx, sx + t2 * dx, ex), dim=1)  # [P, 4K]: s, c1, c2, e
    px = torch.minimum(torch.maximum(px, lo), h)
    py = torch.cat((sy, sy + t1 * dy, sy + t2 * dy, ey), dim=1)
    k = sx.shape[1]
    # Edges s->c1, c1->c2, c2->e: starts are the first 3K points, ends the last 3K.
    return px[:, : 3 * k], py[:, : 3 * k], px[:, k:], py[:, k:]


def _inter_area_exact(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact BEV intersection area (m^2) of row pairs; ``a``, ``b`` ``[P, 7+]`` -> ``[P]`` (input dtype)."""
    cb, sb = torch.cos(b[:, 6]), torch.sin(b[:, 6])
    ddx = a[:, 0] - b[:, 0]
    ddy = a[:, 1] - b[:, 1]
    rx = cb * ddx + sb * ddy  # A's centre in B's frame
    ry = cb * ddy - sb * ddx
    dth = a[:, 6] - b[:, 6]
    c, s = torch.cos(dth), torch.sin(dth)
    hax, hay = a[:, 3] * 0.5, a[:, 4] * 0.5
    hbx, hby = b[:, 3] * 0.5, b[:, 4] * 0.5
    ux, uy = c * hax, s * hax  # A's half-length vector (along its heading), B frame
    vx, vy = -s * hay, c * hay  # A's half-width vector
    # A's corners, counter-clockwise: +u+v, -u+v, -u-v, +u-v.  [P, 4]
    px = torch.stack((rx + ux + vx, rx - ux + vx, rx - ux - vx, rx + ux - vx), dim=1)
    py = torch.stack((ry + uy + vy, ry - uy + vy, ry - uy - vy, ry + uy - vy), dim=1)

    qx, qy = torch.roll(px, -1, dims=1), torch.roll(py, -1, dims=1)  # edge ends
    sx, sy, ex, ey = _clip_slab(px, py, qx, qy, hbx[:, None])  # 12 edges
    sy, sx, ey, ex = _clip_slab(sy, sx, ey, ex, hby[:, None])  # 36 edges
    area = 0.5 * (sx * ey - ex * sy).sum(dim=1)

    # Separating axes (B's axes, then A's): disjoint or touching boxes are exactly 0.
    ac, as_ = c.abs(), s.abs()
    sep = (rx.abs() >= hbx + ux.abs() + vx.abs()) | (ry.abs() >= hby + uy.abs() + vy.abs())
    r1 = rx * c + ry * s  # B's centre relative to A, on A's axes (sign irrelevant)
    r2 = ry * c - rx * s
    sep = sep | (r1.abs() >= hax + hbx * ac + hby * as_) | (r2.abs() >= hay + hbx * as_ + hby * ac)
    area = torch.where(sep, torch.zeros_like(area), area)
    # Rounding can push a contained box a hair above its own area; the intersection cannot exceed either area.
    return torch.minimum(area.clamp_min(0), torch.minimum(a[:, 3] * a[:, 4], b[:, 3] * b[:, 4]))


# ---------------------------------------------------------------------------------------------------------------
# OpenPCDet-compatible kernel (1 cm corner margin)
# ---------------------------------------------------------------------------------------------------------------


def _pcdet_corners(box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Corners ``[P, 4]`` (x, y) in the kernel's order and arithmetic (``box_overlap`` + ``rotate_around_center``)."""
    x, y = box[:, 0:1], box[:, 1:2]
    hx, hy = box[:, 3:4] / 2, box[:, 4:5] / 2
    x1, y1, x2, y2 = x - hx, y - hy, x + hx, y + hy
    cx = torch.cat((x1, x2, x2, x1), dim=1)
    cy = torch.cat((y1, y1, y2, y2), dim=1)
    cos, sin = torch.cos(box[:, 6:7]), torch.sin(box[:, 6:7])
    rx = (cx - x) * cos + (cy - y) * (-sin) + x
    ry = (cx - x) * sin + (cy - y) * cos + y
    return rx, ry


def _in_box_margin(box: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """``check_in_box2d(box, p)`` for points ``[P, 4]``: strict ``<`` against half-size + 1 cm."""
    x, y = box[:, 0:1], box[:, 1:2]
    cos, sin = torch.cos(-box[:, 6:7]), torch.sin(-box[:, 6:7])
    rot_x = (px - x) * cos + (py - y) * (-sin)
    rot_y = (px - x) * sin + (py - y) * cos
    return (rot_x.abs() < box[:, 3:4] / 2 + MARGIN) & (rot_y.abs() < box[:, 4:5] / 2 + MARGIN)


def _inter_area_pcdet_margin(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """BEV intersection area of row pairs with OpenPCDet's kernel rules (see module docstring). ``[P]``."""
    n = a.shape[0]
    ax, ay = _pcdet_corners(a)
    bx, by = _pcdet_corners(b)
    # Edge i of A: p0 = corner i, p1 = corner i+1; edge j of B likewise. Broadcast to [P, 4, 4] (i-major).
    p0x, p0y = ax[:, :, None], ay[:, :, None]
    p1x, p1y = torch.roll(ax, -1, 1)[:, :, None], torch.roll(ay, -1, 1)[:, :, None]
    q0x, q0y = bx[:, None, :], by[:, None, :]
    q1x, q1y = torch.roll(bx, -1, 1)[:, None, :], torch.roll(by, -1, 1)[:, None, :]

    rect = ((torch.minimum(p0x, p1x) <= torch.maximum(q0x, q1x))
            & (torch.minimum(q0x, q1x) <= torch.maximum(p0x, p1x))
            & (torch.minimum(p0y, p1y) <= torch.maximum(q0y, q1y))
            & (torch.minimum(q0y, q1y) <= torch.maximum(p0y, p1y)))

    # The kernel's cross(p1, p2, p0) = (p1 - p0) x (p2 - p0) for s1..s5, with each coordinate difference computed
    # once (the same float operations in the same order, so the same bits). s3 and s4 only enter ``s3 * s4 > 0``,
    # where the sign of a zero is irrelevant: s3 = (p0 - q0) x (q1 - q0) is formed from -(q0 - p0), i.e. as
    # ``dqx * B1 - A1 * dqy``, equal in value to the kernel's product difference (negation is exact).
    dpx, dpy = p1x - p0x, p1y - p0y  # [P, 4, 1]
    dqx, dqy = q1x - q0x, q1y - q0y  # [P, 1, 4]
    a1x, a1y = q0x - p0x, q0y - p0y  # [P, 4, 4]
    a2x, a2y = q1x - p0x, q1y - p0y
    s1 = a1x * dpy - dpx * a1y
    s2 = dpx * a2y - a2x * dpy
    s3 = dqx * a1y - a1x * dqy
    s4 = dqx * (p1y - q0y) - (p1x - q0x) * dqy
    ok = rect & (s1 * s2 > 0) & (s3 * s4 > 0)  # [P, 4, 4]
    # Crossing points only where the kernel takes them (``ok``, a few of the 16 edge pairs): the same elementwise
    # formulas on the gathered operands, so the same bits; the other entries are never read (masked by ``valid``).
    sel = torch.nonzero(ok.reshape(-1)).squeeze(1)  # flat (pair, edge i of A, edge j of B)
    ip, iq = sel // 4, (sel // 16) * 4 + sel % 4  # rows of the [P, 4, 1] (A edge) and [P, 1, 4] (B edge) operands
    p0x, p0y, p1x, p1y = (t.reshape(-1).index_select(0, ip) for t in (p0x, p0y, p1x, p1y))
    q0x, q0y, q1x, q1y = (t.reshape(-1).index_select(0, iq) for t in (q0x, q0y, q1x, q1y))
    s1 = s1.reshape(-1).index_select(0, sel)
    s5 = (q1x - p0x) * (p1y - p0y) - (p1x - p0x) * (q1y - p0y)
    den = s5 - s1
    main = den.abs() > BEV_EPS
    den_safe = torch.where(main, den, torch.ones_like(den))
    ix_main = (s5 * q0x - s1 * q1x) / den_safe
    iy_main = (s5 * q0y - s1 * q1y) / den_safe
    a0, b0 = p0y - p1y, p1x - p0x
    c0 = p0x * p1y - p1x * p0y
    a1, b1 = q0y - q1y, q1x - q0x
    c1 = q0x * q1y - q1x * q0y
    d = a0 * b1 - a1 * b0
    d_safe = torch.where(d == 0, torch.ones_like(d), d)
    ix = ax.new_zeros(n * 16).index_copy_(0, sel, torch.where(main, ix_main, (b0 * c1 - b1 * c0) / d_safe))
    iy = ax.new_zeros(n * 16).index_copy_(0, sel, torch.where(main, iy_main, (a1 * c0 - a0 * c1) / d_safe))

    b_in_a = _in_box_margin(a, bx, by)  # [P, 4]
    a_in_b = _in_box_margin(b, ax, ay)
    # Candidate order as in the kernel: 16 crossings, then (B corner k, A corner k) for k = 0..3.
    pts_x = torch.cat((ix.reshape(n, 16), torch.stack((bx, ax), dim=2).reshape(n, 8)), dim=1)  # [P, 24]
    pts_y = torch.cat((iy.reshape(n, 16), torch.stack((by, ay), dim=2).reshape(n, 8)), dim=1)
    valid = torch.cat((ok.reshape(n, 16), torch.stack((b_in_a, a_in_b), dim=2).reshape(n, 8)), dim=1)

    zero = torch.zeros_like(pts_x)
    cnt = valid.sum(dim=1, keepdim=True).clamp_min(1).to(pts_x.dtype)
    cen_x = torch.where(valid, pts_x, zero).sum(dim=1, keepdim=True) / cnt
    cen_y = torch.where(valid, pts_y, zero).sum(dim=1, keepdim=True) / cnt
    ang = torch.atan2(pts_y - cen_y, pts_x - cen_x)
    ang = torch.where(valid, ang, torch.full_like(ang, float("inf")))
    order = torch.sort(ang, dim=1, stable=True).indices
    sx, sy = pts_x.gather(1, order), pts_y.gather(1, order)
    sv = valid.gather(1, order)
    ux, uy = sx - sx[:, :1], sy - sy[:, :1]
    terms = ux[:, :-1] * uy[:, 1:] - uy[:, :-1] * ux[:, 1:]  # cross(p_k - p_0, p_k+1 - p_0)
    terms = torch.where(sv[:, 1:], terms, torch.zeros_like(terms))
    return terms.sum(dim=1).abs() / 2


# ---------------------------------------------------------------------------------------------------------------
# Public aligned forms
# ---------------------------------------------------------------------------------------------------------------


def bev_intersection_aligned(a: torch.Tensor, b: torch.Tensor, *, margin_compat: bool = False) -> torch.Tensor:
    """Rotated BEV intersection area (m^2) of row pairs ``(a[i], b[i])``: ``Tensor[N, 7+]`` x2 -> ``Tensor[N]``."""
    check_pair("a", a, "b", b, aligned=True)
    if a.shape[0] == 0:
        return a.new_zeros(0)
    kernel = _inter_area_pcdet_margin if margin_compat else _inter_area_exact
    if a.shape[0] <= _CHUNK:
        return kernel(a, b)
    # Chunks keep the [P, 36] temporaries cache-sized: ~3x the throughput of one 64k-pair call on this CPU.
    return torch.cat([kernel(a[s:s + _CHUNK], b[s:s + _CHUNK]) for s in range(0, a.shape[0], _CHUNK)])


def box_iou_bev_aligned(a: torch.Tensor, b: torch.Tensor, *, margin_compat: bool = False) -> torch.Tensor:
    """Rotated BEV IoU of row pairs ``(a[i], b[i])``.

    Args:
        a, b: ``Tensor[N, 7+]`` canonical boxes (x, y, z, dx, dy, dz, yaw); same dtype and device. z, dz ignored.
        margin_compat: reproduce OpenPCDet's 1 cm corner margin (see module docstring); off = exact geometry.

    Returns:
        ``Tensor[N]`` in the input dtype: ``inter / max(area_a + area_b - inter, 1e-8)``, in ``[0, 1]``.
        Degenerate boxes (zero area) give 0. Symmetric up to float rounding (the exact kernel works in b's frame).
    """
    inter = bev_intersection_aligned(a, b, margin_compat=margin_compat)
    area_a = a[:, 3] * a[:, 4]
    area_b = b[:, 3] * b[:, 4]
    return inter / torch.clamp_min(area_a + area_b - inter, min=BEV_EPS)


def _height_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``max(0, min(top_a, top_b) - max(bottom_a, bottom_b))`` with centre z (OpenPCDet boxes_iou3d_gpu order)."""
    a_max, a_min = a[:, 2] + a[:, 5] / 2, a[:, 2] - a[:, 5] / 2
    b_max, b_min = b[:, 2] + b[:, 5] / 2, b[:, 2] - b[:, 5] / 2
    return torch.clamp(torch.min(a_max, b_max) - torch.max(a_min, b_min), min=0)


def box_iou_3d_aligned(a: torch.Tensor, b: torch.Tensor, *, margin_compat: bool = False) -> torch.Tensor:
    """3D IoU of row pairs: rotated BEV intersection x centre-z height overlap, over
    ``max(vol_a + vol_b - inter, 1e-6)`` (OpenPCDet ``boxes_iou3d_gpu`` semantics). ``Tensor[N, 7+]`` x2 ->
    ``Tensor[N]`` in the input dtype."""
    inter = bev_intersection_aligned(a, b, margin_compat=margin_compat) * _height_overlap(a, b)
    vol_a = a[:, 3] * a[:, 4] * a[:, 5]
    vol_b = b[:, 3] * b[:, 4] * b[:, 5]
    return inter / torch.clamp(vol_a + vol_b - inter, min=IOU3D_EPS)


def bev_aabb(boxes: torch.Tensor, pad: float = 0.0) -> torch.Tensor:
    """Exact axis-aligned bounding rectangle of each rotated BEV box: ``Tensor[N, 7+] -> Tensor[N, 4]`` xyxy.

    ``pad`` (metres) grows every side, e.g. to cover the 1 cm margin of ``margin_compat``.
    """
    c, s = torch.cos(boxes[:, 6]).abs(), torch.sin(boxes[:, 6]).abs()
    hx = (boxes[:, 3] * c + boxes[:, 4] * s) * 0.5
    hy = (boxes[:, 3] * s + boxes[:, 4] * c) * 0.5
    x, y = boxes[:, 0], boxes[:, 1]
    # A few ulps of the coordinates' magnitude, so rounding never lets the AABB cut the box.
    eps = torch.finfo(boxes.dtype).eps * 4
    hx = hx + eps * (hx + x.abs()) + pad
    hy = hy + eps * (hy + y.abs()) + pad
    return torch.stack((x - hx, y - hy, x + hx, y + hy), dim=1)
