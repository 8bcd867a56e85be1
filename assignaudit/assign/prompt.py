r"""Point-prompted queries (Point-DETR3D style): one query per annotated point, so the query-GT pairing is fixed by
construction; the audit question is whether a plain Hungarian match would agree with it (*prompt agreement*).

* **Prompt points** (`prompt_points`): per GT, its centre (``mode="centre"``) or a point drawn uniformly inside the
  box scaled by ``jitter`` (``mode="jitter"``, box frame, ``u ~ U(-jitter dx/2, jitter dx/2)``, likewise ``v``;
  z at the centre), from a generator seeded by (seed, sample token), so a run is reproducible.
* **Match with a dump** (`count --queries DUMP --prompts ...`): the dump's first K queries of a frame are the prompt
  queries in GT order (query j was prompted by GT j's point); the Hungarian assignment of the config's cost
  (`assignaudit.assign.hungarian.replay_frame`, last decoder layer) is run on those K queries and GT j *agrees* when
  it is matched to query j.
* **Match without a dump** (proxy): each prompt point is a query at that point; the cost is the BEV centre L1
  distance to each GT centre (the centre part of DETR3D's ``BBox3DL1Cost``), solved with scipy's
  ``linear_sum_assignment``; GT j agrees when prompt j is assigned to it. This isolates what the prompts alone
  decide: with jitter in crowded scenes a prompt can sit nearer to a neighbour's centre.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from assignaudit.errors import ConfigError, DataError

PROMPT_MODES = ("centre", "jitter")
SOURCE_DUMP = "dump: the first K queries of each frame are the prompt queries, in GT order (Hungarian, last layer)"
SOURCE_PROXY = ("proxy (no --queries): Hungarian on the BEV centre L1 distance between the prompt points and the GT "
                "centres")


@dataclass(frozen=True)
class PromptOptions:
    mode: str = "centre"
    jitter: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in PROMPT_MODES:
            raise ConfigError(f"--prompts must be one of {', '.join(PROMPT_MODES)}, got {self.mode!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError(f"--prompt-jitter must be in [0, 1] (fraction of the half size), got {self.jitter}")


def _rng(seed: int, token: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{token}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def prompt_points(boxes: np.ndarray, options: PromptOptions, token: str = "") -> np.ndarray:
    """float64 ``[K, 3]`` prompt points of canonical boxes ``[K, 7+]`` (module docstring)."""
    b = np.asarray(boxes, np.float64)
    if b.ndim != 2 or b.shape[1] < 7:
        raise DataError(f"boxes has shape {b.shape}; expected [K, 7+]")
    pts = b[:, :3].copy()
    if options.mode == "jitter" and len(b):
        r = _rng(options.seed, token)
        u = r.uniform(-0.5, 0.5, len(b)) * options.jitter * b[:, 3]
        v = r.uniform(-0.5, 0.5, len(b)) * options.jitter * b[:, 4]
        c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
        pts[:, 0] += c * u - s * v
        pts[:, 1] += s * u + c * v
    return pts


def proxy_match(points: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """int64 ``[K]``: the GT each prompt point is assigned to by Hungarian on the BEV centre L1 distance."""
    p, g = np.asarray(points, np.float64), np.asarray(gt_boxes, np.float64)
    if len(p) == 0:
        return np.zeros(0, np.int64)
    cost = np.abs(p[:, None, 0] - g[None, :, 0]) + np.abs(p[:, None, 1] - g[None, :, 1])
    rows, cols = linear_sum_assignment(cost)
    out = np.full(len(p), -1, np.int64)
    out[rows] = cols
    return out


def agreement_from_matched_query(matched_query_last: np.ndarray) -> np.ndarray:
    """bool ``[K]``: GT j matched to query j (the dump's prompt queries are in GT order)."""
    m = np.asarray(matched_query_last, np.int64)
    return m == np.arange(m.shape[0])
