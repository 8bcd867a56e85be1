"""One frame's assignment in detail, for pictures (`assignaudit show`): which anchors / cells / queries a GT got.

`count` keeps only tallies; this module runs the same pipeline (`assignaudit.count.make_replay`, the family's tally
from `assignaudit.tally`) on the one frame asked for and keeps the per-target detail: positive anchors and the GT they
are credited to, forced-only positives, ignored anchors (anchor heads); the task heatmaps and Gaussian radii
(CenterHead); the matched queries (query heads with a dump). The per-GT numbers (``num_pos``, ``zero_pos_reason``)
are the ones `count` writes to objects.parquet for the same seed and replay.

Frames are chosen by sample token or index (``sample``), by annotation token (``gt``), or as the first (frame,
replay) with a GT of a class that gets no positive (``zero_pos``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from assignaudit.augment.replay import AugmentedFrame
from assignaudit.config.model import DetectorConfig
from assignaudit.errors import ConfigError, DataError
from assignaudit.sources.base import BoxSource, Frame
from assignaudit.tally.base import FrameTally, GTBands

__all__ = ["FrameDetail", "FrameQuery", "find_frame_detail", "frame_detail"]


@dataclass(frozen=True)
class FrameQuery:
    """Which frame to look at: exactly one of ``sample`` (token or integer index), ``gt`` (annotation token) or
    ``zero_pos`` (config class name)."""

    sample: str | None = None
    gt: str | None = None
    zero_pos: str | None = None
    replay: int = 0

    def __post_init__(self) -> None:
        given = [n for n in ("sample", "gt", "zero_pos") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ConfigError("give exactly one of --sample TOKEN|INDEX, --gt ANN_TOKEN or --zero-pos CLASS"
                              + (f" (got {', '.join('--' + g.replace('_', '-') for g in given)})" if given else ""))
        if self.replay < 0:
            raise ConfigError(f"--replay must be >= 0, got {self.replay}")


@dataclass
class FrameDetail:
    """The augmented frame of one (sample, replay) and what its family's assignment did with each GT. K GT."""

    config: DetectorConfig
    aug: AugmentedFrame
    tally: FrameTally
    """Per-GT ``num_pos``, ``num_forced``, ``max_iou``, ``zero_pos_reason`` (as in objects.parquet)."""
    target: int | None = None
    """Row of the GT asked for (``--gt``, ``--zero-pos``), else None."""
    anchor_boxes: np.ndarray | None = None
    """float32 ``[A, 7]``: every anchor of the layout (anchor heads)."""
    anchor_set: np.ndarray | None = None
    """int64 ``[A]``: anchor set of each anchor."""
    gt_set: np.ndarray | None = None
    """int64 ``[K]``: the anchor set each GT competes for (-1: none)."""
    pos_anchor: np.ndarray | None = None
    """int64 ``[P]``: flat index of each positive anchor (-1: claimed by count, no position)."""
    pos_gt: np.ndarray | None = None
    """int64 ``[P]``: the GT each positive is credited to."""
    pos_forced: np.ndarray | None = None
    """bool ``[P]``: forced-only positive."""
    ignore_anchor: np.ndarray | None = None
    """int64 ``[I]``: ignored anchors touched by some GT."""
    heatmap: Any = None
    """CenterHead: the `assignaudit.assign.heatmap.HeatmapResult`."""
    query_centres: np.ndarray | None = None
    """float ``[Q, 2]``: last-layer decoded BEV centres of the dump's queries (query heads with a dump)."""
    query_matched_gt: np.ndarray | None = None
    """int64 ``[Q]``: the GT each query is matched to in the last layer, -1 unmatched."""

    @property
    def head(self) -> str:
        return self.config.head

    def gt_row(self, spec: str) -> int:
        """Row of a GT given by annotation token or by integer row in the augmented frame."""
        tokens = [str(t) if t is not None else None for t in self.aug.ann_token]
        if spec in tokens:
            return tokens.index(spec)
        try:
            i = int(spec)
        except ValueError:
            raise DataError(f"GT {spec!r} is not in sample {self.aug.sample_token} (give an annotation token of "
                            f"this frame or a row 0..{len(self.aug) - 1})") from None
        if not 0 <= i < len(self.aug):
            raise DataError(f"GT row {i} is outside 0..{len(self.aug) - 1} of sample {self.aug.sample_token}")
        return i


def _tally(config: DetectorConfig, device: torch.device, query_dump):
    from assignaudit.bands import Bands
    from assignaudit.tally import make_tally

    return make_tally(config, Bands(), device, query_dump)


def frame_detail(config: DetectorConfig, aug: AugmentedFrame, tally=None, device: torch.device | None = None,
                 query_dump=None, frame: Frame | None = None) -> FrameDetail:
    """Assign one augmented frame with ``config``'s family and keep the detail (see the module docstring).

    ``tally``: a family tally from `assignaudit.tally.make_tally` to reuse across frames (built when None).
    """
    device = device or torch.device("cpu")
    tally = tally or _tally(config, device, query_dump)
    class_index = {c: i for i, c in enumerate(config.class_names)}
    boxes = aug.boxes
    gt_class = np.array([class_index[c] for c in aug.class_name], dtype=np.int64)
    gtb = GTBands(gt_class, np.hypot(boxes[:, 0], boxes[:, 1]), tally.bands, len(config.class_names))
    head = config.head
    if head == "anchor":
        from assignaudit.assign.assigner import assign_frame

        gt_set = tally.set_of_class[gt_class]
        res = assign_frame(tally.anchors, torch.as_tensor(boxes[:, :7], dtype=torch.float32, device=device),
                           torch.as_tensor(gt_set, device=device), config.assigner, tally.bands)
        ft = FrameTally(gt_num_pos=res.gt_num_pos, gt_num_forced=res.gt_num_forced, gt_max_iou=res.gt_max_iou,
                        gt_zero_pos_reason=res.gt_zero_pos_reason, class_num_pos=np.zeros(0, np.int64),
                        class_num_neg=np.zeros(0, np.int64), class_num_ignore=np.zeros(0, np.int64))
        return FrameDetail(config, aug, ft, anchor_boxes=tally.anchors.boxes.cpu().numpy(),
                           anchor_set=tally.anchors.set_index.cpu().numpy(), gt_set=gt_set,
                           pos_anchor=res.pos_anchor_index, pos_gt=res.pos_gt_index, pos_forced=res.pos_forced,
                           ignore_anchor=res.ignore_anchor_index)
    if head == "center":
        res = tally.targets(boxes, aug.class_name)
        ft = tally.tally(res, gtb)
        return FrameDetail(config, aug, ft, heatmap=res)
    if frame is not None and getattr(tally, "needs_points", False):
        tally.see_frame(frame)  # query.cost bonet: the replay runs over the frame's points
    ft = tally.add_frame(boxes, aug.class_name, gtb, aug.sample_token)
    detail = FrameDetail(config, aug, ft)
    if getattr(tally, "dump", None) is not None:
        from assignaudit.assign.hungarian import QueryFrame, replay_frame

        dump = tally.dump
        i = tally.token_index[aug.sample_token]
        k = len(aug)
        none = np.full(k, None, dtype=object)
        gt = Frame(aug.sample_token, boxes, aug.class_name, aug.class_name, none, none, np.full(k, -1, np.int64),
                   np.full(k, -1, np.int64))
        rep = replay_frame(QueryFrame(aug.sample_token, dump.boxes[i], dump.logits[i], dump.yaw_encoding), gt,
                           tally.class_names, config.query.cost, point_cloud_range=config.point_cloud_range,
                           points=tally.frame_points)
        last = rep.matched_query[-1]
        matched = np.full(int(dump.boxes.shape[2]), -1, np.int64)
        matched[last[last >= 0]] = np.flatnonzero(last >= 0)
        detail.query_centres = np.asarray(dump.boxes[i, -1][:, :2], np.float64)
        detail.query_matched_gt = matched
    return detail


def _frames(source: BoxSource, max_frames: int | None) -> Iterator[tuple[int, Frame]]:
    for i, f in enumerate(source.frames()):
        if max_frames is not None and i >= max_frames:
            return
        yield i, f


def find_frame_detail(config: DetectorConfig, source: BoxSource, query: FrameQuery, *, seed: int = 0,
                      augment: bool = True, replays: int = 1, device: str = "cpu", max_frames: int | None = None,
                      query_dump: str | Path | None = None, db_infos: tuple[Path, ...] = ()) -> FrameDetail:
    """The `FrameDetail` asked for by ``query`` (the same seeded replay `count` runs with these options).

    ``--zero-pos CLASS`` scans (frame, replay) in `count`'s order and stops at the first GT of that class with no
    positive; unknown samples, annotations and classes, and a class whose GT all get a positive, are `DataError` /
    `ConfigError` (one ``error:`` line).
    """
    from assignaudit.count import make_replay, resolve_device

    dev = resolve_device(device)
    dump = None
    if query_dump is not None:
        if config.head != "query":
            raise ConfigError(f"--queries is for query heads; config {config.name!r} has head {config.head!r}")
        from assignaudit.assign.hungarian import load_query_dump

        dump = load_query_dump(query_dump)
        augment, replays = False, 1
    if query.zero_pos is not None and query.zero_pos not in config.class_names:
        raise ConfigError(f"--zero-pos: {query.zero_pos!r} is not a class of config {config.name!r} "
                          f"({', '.join(config.class_names)})")
    if query.replay >= replays and query.zero_pos is None:
        replays = query.replay + 1
    pick = _pick_sample(source, query.sample) if query.sample is not None else None
    replay = make_replay(config, source, seed=seed, augment=augment, max_frames=max_frames, db_infos=db_infos)
    tally = _tally(config, dev, dump)
    scanned = 0
    for _, frame in _frames(source, max_frames):
        if pick is not None and frame.sample_token != pick:
            continue
        if query.gt is not None and query.gt not in set(map(str, frame.ann_token)):
            continue
        replay_ids = range(replays) if query.zero_pos is not None else (query.replay,)
        for r in replay_ids:
            aug = replay.apply(frame, r, augment=augment)
            scanned += 1
            if query.gt is not None and query.gt not in set(map(str, aug.ann_token)):
                reason = next((why for tok, _, why in aug.dropped if str(tok) == query.gt), "class_filter")
                raise DataError(f"GT {query.gt} of sample {frame.sample_token} never reaches the assigner in replay "
                                f"{r} (removed before assignment: {reason})")
            if len(aug) == 0:
                if query.zero_pos is not None:
                    continue
                raise DataError(f"sample {frame.sample_token} has no GT left after filtering in replay {r} "
                                "(training resamples it)")
            detail = frame_detail(config, aug, tally, dev, dump, frame)
            if query.gt is not None:
                detail.target = detail.gt_row(query.gt)
                return detail
            if query.zero_pos is None:
                return detail
            zero = np.flatnonzero((np.asarray(aug.class_name) == query.zero_pos) & (detail.tally.gt_num_pos == 0))
            if zero.size:
                detail.target = int(zero[0])
                return detail
    if query.zero_pos is not None:
        raise DataError(f"no GT of class {query.zero_pos!r} without a positive in {scanned} frame replay(s) "
                        f"(seed {seed}); every one gets at least one positive")
    if query.gt is not None:
        raise DataError(f"annotation token {query.gt!r} is in no frame of this source")
    raise DataError(f"sample {query.sample!r} is not in this source")  # pragma: no cover  (checked by _pick_sample)


def _pick_sample(source: BoxSource, spec: str) -> str:
    tokens = list(source.sample_tokens())
    if spec in tokens:
        return spec
    try:
        i = int(spec)
    except ValueError:
        raise DataError(f"unknown sample {spec!r}: not a sample token of this source ({len(tokens)} samples; an "
                        "integer index works too)") from None
    if not -len(tokens) <= i < len(tokens):
        raise DataError(f"sample index {i} is outside 0..{len(tokens) - 1}")
    return tokens[i]
