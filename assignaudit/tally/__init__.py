"""Per-family tallies of the `count` pipeline: one module per target family.

| module | family (`DetectorConfig.head`) | assigns with |
|---|---|---|
| `tally.anchor` | ``anchor``: AxisAligned, MaxIoU, ATSS | `assignaudit.assign.assigner.assign_frame` |
| `tally.heatmap` | ``center``: OpenPCDet / mmdet3d CenterHead | `assignaudit.assign.heatmap.heatmap_targets` |
| `tally.query` | ``query``: DETR3D / PETR / TransFusion | `assignaudit.assign.hungarian.replay_frame` (with a dump) |
| `tally.fcos` | ``fcos``: FCOS-style point heads | `assignaudit.assign.fcos.fcos_assign` |

Each tally takes one augmented frame at a time, adds it to fixed-size class x band accumulators (`tally.base`) and
hands back the per-GT and per-class numbers for the streamed per-object / per-frame reports. docs/count-families.md
says what positive, negative and ignored mean for each family.
"""

from __future__ import annotations

import torch

from assignaudit.assign.hungarian import QueryDump
from assignaudit.bands import Bands
from assignaudit.config.model import HEAD_KINDS, DetectorConfig
from assignaudit.errors import ConfigError
from assignaudit.tally.base import IOU_HIST_BINS, SUMMARY_SCHEMA, FamilyTally, FrameTally, GTBands, Tallies

__all__ = ["IOU_HIST_BINS", "SUMMARY_SCHEMA", "FamilyTally", "FrameTally", "GTBands", "Tallies", "make_tally"]


def make_tally(config: DetectorConfig, bands: Bands, device: torch.device,
               query_dump: QueryDump | None = None) -> FamilyTally:
    """The tally of ``config.head``'s family. ``query_dump`` only for ``head == "query"``."""
    if config.head == "anchor":
        from assignaudit.tally.anchor import AnchorTally

        tally: FamilyTally = AnchorTally(config, bands, device)
    elif config.head == "center":
        from assignaudit.tally.heatmap import HeatmapTally

        tally = HeatmapTally(config, bands, device)
    elif config.head == "fcos":
        from assignaudit.tally.fcos import FcosTally

        tally = FcosTally(config, bands, device)
    elif config.head == "query":
        from assignaudit.tally.query import QueryTally

        return QueryTally(config, bands, device, query_dump)
    else:
        raise ConfigError(f"config {config.name!r}: head must be one of {', '.join(HEAD_KINDS)}, got {config.head!r}")
    if query_dump is not None:
        raise ConfigError(f"--queries is for query heads; config {config.name!r} has head {config.head!r}")
    return tally
