r"""PAA (Probabilistic Anchor Assignment, Kim & Lee 2020) on top of an anchor assignment: per-GT GMM over
per-anchor scores, as mmdetection's ``PAAHead.paa_reassign`` (mmdet 3.3) does.

1. **Initial assignment**: the config's anchor assigner with both thresholds at ``init_iou`` (PAA's own
   ``MaxIoUAssigner(pos_iou_thr=0.1, neg_iou_thr=0.1, min_pos_iou=0)``); `count --paa` runs it.
2. **Score** of every initial positive: its loss against its GT, lower is better. Upstream it is the anchor's
   classification + regression loss of the current predictions (``get_pos_loss``), so it comes from a **dump**
   (`load_paa_scores`, ``anchor_loss [N, A]`` per frame in the layout's flat anchor order). Without a dump the
   ``iou`` proxy ``1 - IoU(anchor, GT)`` (the assigner's IoU) stands in, and the report says so.
3. **Candidates** per GT: on each level, the ``topk`` (9) initial positives of that GT with the lowest score
   (ties: lower anchor index first), all levels concatenated and sorted by score.
4. **GMM**: with fewer than 2 candidates the GT is skipped, and *all its initial positives become negatives*
   (upstream ``continue``). Otherwise scikit-learn's ``GaussianMixture(2, weights_init=[0.5, 0.5],
   means_init=[[min], [max]], precisions_init=1, covariance_type='diag')`` is fit to the sorted scores.
5. **Separation**: ``mmdet`` (default, upstream's scheme (c), Fig. 3 of the paper): among the candidates predicted
   in component 0 (the one initialised at the minimum), the positives are those up to and including the one with
   the highest ``score_samples``; ``component``: every candidate predicted in the component whose fitted mean is
   lower (the paper's plain reading). Initial positives that are not kept become negatives (label background,
   weight 1); nothing is ignored.

The GMM is fit once per GT, as upstream (a loop over GT, not over anchors); candidate selection is vectorised.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assignaudit import schema
from assignaudit.assign.result import FrameAssignment
from assignaudit.errors import ConfigError, DataError

SEPARATIONS = ("mmdet", "component")
COVARIANCE_TYPES = ("diag", "full", "spherical", "tied")
SCORE_IOU_PROXY = "iou proxy: 1 - IoU(anchor, GT) of the initial assignment (no --paa-scores dump)"
SCORE_DUMP = "dump: per-anchor loss (anchor_loss) of the model"


@dataclass(frozen=True)
class PaaScores:
    """``anchor_loss [N, A]`` per sample token (npz: ``sample_token [N]``, ``anchor_loss [N, A]``)."""

    path: str
    sample_tokens: tuple[str, ...]
    anchor_loss: np.ndarray
    index: dict = field(default_factory=dict, repr=False, compare=False)

    def frame(self, token: str) -> np.ndarray:
        i = self.index.get(token)
        if i is None:
            raise DataError(f"PAA score dump {self.path}: no entry for sample_token {token!r}")
        return self.anchor_loss[i]


def load_paa_scores(path: str | Path) -> PaaScores:
    """Read a PAA score dump (``.npz``: ``sample_token`` str ``[N]``, ``anchor_loss`` float ``[N, A]``)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"PAA score dump not found: {p}")
    try:
        z = np.load(p, allow_pickle=False)
        tokens, loss = z["sample_token"], z["anchor_loss"]
    except KeyError as err:
        raise DataError(f"PAA score dump {p}: missing array {err} (needs sample_token [N], anchor_loss [N, A])") \
            from None
    except Exception as err:  # noqa: BLE001 - numpy raises several types for a bad file
        raise DataError(f"PAA score dump {p}: not a readable .npz ({type(err).__name__})") from None
    if tokens.ndim != 1 or loss.ndim != 2 or loss.shape[0] != tokens.shape[0]:
        raise DataError(f"PAA score dump {p}: sample_token {tokens.shape} and anchor_loss {loss.shape} do not "
                        "match (expected [N] and [N, A])")
    toks = tuple(str(t) for t in tokens)
    if len(set(toks)) != len(toks):
        raise DataError(f"PAA score dump {p}: duplicate sample_token")
    loss = np.asarray(loss, np.float64)
    if not np.isfinite(loss).all():
        raise DataError(f"PAA score dump {p}: anchor_loss has non-finite values")
    return PaaScores(str(p), toks, loss, {t: i for i, t in enumerate(toks)})


@dataclass(frozen=True)
class PaaOptions:
    topk: int = 9
    init_iou: float = 0.1
    covariance_type: str = "diag"
    separation: str = "mmdet"
    scores: PaaScores | None = None

    def __post_init__(self) -> None:
        if self.topk < 1:
            raise ConfigError(f"--paa-topk must be >= 1, got {self.topk}")
        if not 0.0 < self.init_iou < 1.0:
            raise ConfigError(f"PAA init_iou must be in (0, 1), got {self.init_iou}")
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ConfigError(f"PAA covariance_type must be one of {', '.join(COVARIANCE_TYPES)}")
        if self.separation not in SEPARATIONS:
            raise ConfigError(f"--paa-separation must be one of {', '.join(SEPARATIONS)}, got {self.separation!r}")

    @property
    def score_source(self) -> str:
        return SCORE_DUMP if self.scores is not None else SCORE_IOU_PROXY


def fit_gmm(losses: np.ndarray, covariance_type: str = "diag"):
    """The upstream GMM on sorted candidate losses ``[n]`` -> (fitted model, predicted component, score_samples)."""
    from sklearn.mixture import GaussianMixture

    x = np.asarray(losses, np.float64).reshape(-1, 1)
    prec = {"full": np.ones((2, 1, 1)), "diag": np.ones((2, 1)), "spherical": np.ones(2),
            "tied": np.array([[1.0]])}[covariance_type]
    gmm = GaussianMixture(2, weights_init=np.array([0.5, 0.5]), means_init=np.array([[x.min()], [x.max()]]),
                          precisions_init=prec, covariance_type=covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on degenerate (equal) losses, as upstream tolerates
        gmm.fit(x)
    return gmm, gmm.predict(x), gmm.score_samples(x)


def separate(assignment: np.ndarray, scores: np.ndarray, means: np.ndarray, scheme: str) -> np.ndarray:
    """Indices (into the sorted candidates) kept positive."""
    if scheme == "component":
        return np.flatnonzero(assignment == int(np.argmin(means.reshape(-1))))
    fgs = np.flatnonzero(assignment == 0)
    if fgs.size == 0:
        return fgs
    thr = int(np.argmax(scores[fgs]))  # topk(1): the first maximum
    return fgs[: thr + 1]


def select_candidates(pos_gt: np.ndarray, pos_level: np.ndarray, pos_anchor: np.ndarray, loss: np.ndarray,
                      topk: int) -> np.ndarray:
    """Indices into the positives of the candidates: per (GT, level) the ``topk`` lowest losses (ties: lower
    anchor index), returned ordered by GT, then loss, then anchor index."""
    order = np.lexsort((pos_anchor, loss, pos_level, pos_gt))
    g, lv = pos_gt[order], pos_level[order]
    new_group = np.ones(order.size, bool)
    new_group[1:] = (g[1:] != g[:-1]) | (lv[1:] != lv[:-1])
    start = np.maximum.accumulate(np.where(new_group, np.arange(order.size), 0))
    rank = np.arange(order.size) - start
    keep = order[rank < topk]
    return keep[np.lexsort((pos_anchor[keep], loss[keep], pos_gt[keep]))]


@dataclass(frozen=True)
class PaaFrame:
    assignment: FrameAssignment
    num_gt_fitted: int
    num_gt_too_few: int
    num_demoted: int


def paa_reassign(initial: FrameAssignment, anchor_set: torch.Tensor, anchor_band: torch.Tensor,
                 anchor_level: torch.Tensor, num_bands: int, options: PaaOptions,
                 anchor_loss: np.ndarray | None = None) -> PaaFrame:
    """PAA on one frame's initial assignment (module docstring). ``anchor_loss``: float ``[A]`` from a dump, or
    None for the IoU proxy. The anchor tables are ``[A]`` int64 (set, band of the centre, level)."""
    pa = np.asarray(initial.pos_anchor_index, np.int64)
    pg = np.asarray(initial.pos_gt_index, np.int64)
    k = initial.gt_num_pos.shape[0]
    if anchor_loss is not None:
        if anchor_loss.shape[0] != anchor_set.shape[0]:
            raise DataError(f"PAA score dump has {anchor_loss.shape[0]} anchors per frame, the layout has "
                            f"{anchor_set.shape[0]}")
        loss = np.asarray(anchor_loss, np.float64)[pa]
    else:
        loss = 1.0 - np.asarray(initial.pos_iou, np.float64)
    level = anchor_level.cpu().numpy()[pa]
    cand = select_candidates(pg, level, pa, loss, options.topk)
    n_cand = np.bincount(pg[cand], minlength=k)[:k]
    keep = np.zeros(pa.shape[0], bool)
    fitted = 0
    bounds = np.searchsorted(pg[cand], np.arange(k + 1))
    for gi in np.flatnonzero(n_cand >= 2):  # one GMM per GT, as upstream
        idx = cand[bounds[gi]:bounds[gi + 1]]  # sorted by loss
        gmm, assign, scores = fit_gmm(loss[idx], options.covariance_type)
        keep[idx[separate(assign, scores, gmm.means_, options.separation)]] = True
        fitted += 1
    demoted = ~keep
    sets = anchor_set.cpu().numpy()
    bands = anchor_band.cpu().numpy()
    num_sets = initial.num_neg_per_set_band.shape[0]
    extra_neg = np.bincount(sets[pa[demoted]] * num_bands + bands[pa[demoted]],
                            minlength=num_sets * num_bands).reshape(num_sets, num_bands)
    gt_num_pos = np.bincount(pg[keep], minlength=k)[:k].astype(np.int64)
    reason = np.array(initial.gt_zero_pos_reason, dtype=object).copy()
    lost = (initial.gt_num_pos > 0) & (gt_num_pos == 0)
    reason[lost & (n_cand < 2)] = schema.REASON_PAA_TOO_FEW
    reason[lost & (n_cand >= 2)] = schema.REASON_PAA_BACKGROUND
    out = replace(
        initial, gt_num_pos=gt_num_pos, gt_num_forced=np.zeros(k, np.int64), gt_zero_pos_reason=reason,
        pos_gt_index=pg[keep], pos_iou=np.asarray(initial.pos_iou)[keep], pos_anchor_index=pa[keep],
        num_pos_per_set=np.bincount(sets[pa[keep]], minlength=num_sets).astype(np.int64),
        num_neg_per_set_band=(initial.num_neg_per_set_band + extra_neg).astype(np.int64),
    )
    return PaaFrame(out, fitted, int(((initial.gt_num_pos > 0) & (n_cand < 2)).sum()), int(demoted.sum()))


def initial_layout(layout: Any, init_iou: float):
    """The anchor layout with every set's thresholds at ``init_iou`` (PAA's initial MaxIoU 0.1 / 0.1)."""
    sets = tuple(replace(s, matched_threshold=init_iou, unmatched_threshold=init_iou) for s in layout.anchor_sets)
    return replace(layout, anchor_sets=sets)
