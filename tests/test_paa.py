"""PAA re-assignment (assign/paa.py): a hand-worked GMM, a reference written with scikit-learn directly from
mmdet's PAAHead.paa_reassign, `count --paa` with and without a score dump, and bad input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from assignaudit import schema
from assignaudit.assign.paa import PaaOptions, fit_gmm, load_paa_scores, paa_reassign, separate
from assignaudit.assign.result import FrameAssignment
from assignaudit.bands import ALL_BANDS, Bands
from assignaudit.errors import ConfigError, DataError

BANDS = Bands((0.0, 20.0, 30.0, 40.0, 50.0))


def test_gmm_hand_case():
    # Two clusters {1, 1.5, 2} and {9, 9.5, 10}: EM converges to means 1.5 / 9.5, variances 1/6, weights 1/2.
    # score_samples at 1.5 = log(0.5) - 0.5 log(2 pi / 6) = -0.7162; at 1.0 and 2.0 another -0.25 / (2/6) = -0.75.
    losses = np.array([1.0, 1.5, 2.0, 9.0, 9.5, 10.0])
    gmm, assign, scores = fit_gmm(losses)
    np.testing.assert_allclose(gmm.means_.ravel(), [1.5, 9.5], atol=1e-9)
    np.testing.assert_allclose(gmm.covariances_.ravel(), [1 / 6, 1 / 6], atol=1e-5)
    assert assign.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(scores[:3], [math.log(0.5) - 0.5 * math.log(2 * math.pi / 6) - d for d in
                                            (0.75, 0.0, 0.75)], atol=1e-4)
    # upstream scheme (c): component-0 samples up to the most likely one -> the first two only
    assert separate(assign, scores, gmm.means_, "mmdet").tolist() == [0, 1]
    assert separate(assign, scores, gmm.means_, "component").tolist() == [0, 1, 2]


def initial(pos_anchor, pos_gt, pos_iou, k, num_sets=1, nb=len(BANDS)):
    pos_anchor, pos_gt = np.asarray(pos_anchor, np.int64), np.asarray(pos_gt, np.int64)
    n = np.bincount(pos_gt, minlength=k).astype(np.int64)
    return FrameAssignment(
        gt_num_pos=n, gt_num_forced=np.zeros(k, np.int64), gt_max_iou=np.ones(k, np.float32),
        gt_zero_pos_reason=np.array([None if x else schema.REASON_TAKEN for x in n], dtype=object),
        pos_gt_index=pos_gt, pos_iou=np.asarray(pos_iou, np.float32), num_pos_per_set=np.array([len(pos_gt)]),
        num_neg_per_set_band=np.zeros((num_sets, nb), np.int64),
        num_ignore_per_set_band=np.zeros((num_sets, nb), np.int64), pos_anchor_index=pos_anchor)


def reference(pos_anchor, pos_gt, level, loss, topk):
    """mmdet PAAHead.paa_reassign, loop by loop, with sklearn called here directly."""
    kept = set()
    for g in sorted(set(pos_gt.tolist())):
        cand = []
        for lv in sorted(set(level.tolist())):
            rows = [i for i in range(len(pos_gt)) if pos_gt[i] == g and level[i] == lv]
            rows.sort(key=lambda i: (loss[i], pos_anchor[i]))
            cand += rows[:topk]
        if len(cand) < 2:
            continue
        cand.sort(key=lambda i: (loss[i], pos_anchor[i]))
        x = np.array([loss[i] for i in cand]).reshape(-1, 1)
        gmm = GaussianMixture(2, weights_init=np.array([0.5, 0.5]), means_init=np.array([[x.min()], [x.max()]]),
                              precisions_init=np.array([1.0, 1.0]).reshape(2, 1), covariance_type="diag")
        gmm.fit(x)
        a, s = gmm.predict(x), gmm.score_samples(x)
        fgs = [j for j in range(len(cand)) if a[j] == 0]
        if fgs:
            thr = max(range(len(fgs)), key=lambda j: (s[fgs[j]], -j))
            kept.update(pos_anchor[cand[j]] for j in fgs[: thr + 1])
    return kept


def test_paa_reassign_matches_sklearn_reference():
    rng = np.random.default_rng(5)
    a_num = 400
    level = torch.as_tensor(np.repeat([0, 1], a_num // 2))
    sets = torch.zeros(a_num, dtype=torch.int64)
    band = torch.as_tensor(rng.integers(0, len(BANDS), a_num))
    pos_anchor = rng.choice(a_num, 150, replace=False)
    pos_gt = rng.integers(0, 6, 150)
    pos_gt[pos_gt == 5] = 4  # GT 5 gets nothing
    pos_gt[np.flatnonzero(pos_gt == 3)[1:]] = 2  # GT 3 keeps one initial positive: too few for a GMM
    loss_all = np.concatenate([rng.gamma(2.0, 0.8, a_num)])
    init = initial(pos_anchor, pos_gt, rng.uniform(0.1, 0.9, 150), 6)
    out = paa_reassign(init, sets, band, level, len(BANDS), PaaOptions(topk=9), loss_all)
    ref = reference(pos_anchor, pos_gt, level.numpy()[pos_anchor], loss_all[pos_anchor], 9)
    got = set(out.assignment.pos_anchor_index.tolist())
    assert got == ref and 0 < len(got) < 150
    a = out.assignment
    np.testing.assert_array_equal(a.gt_num_pos, np.bincount(a.pos_gt_index, minlength=6))
    assert a.gt_zero_pos_reason[3] == schema.REASON_PAA_TOO_FEW and a.gt_num_pos[3] == 0
    assert a.gt_zero_pos_reason[5] == schema.REASON_TAKEN  # no initial positive: the initial reason stays
    assert int(a.num_neg_per_set_band.sum()) == 150 - len(got) == out.num_demoted
    assert out.num_gt_too_few == 1 and out.num_gt_fitted == 4
    # the IoU proxy: score = 1 - IoU
    proxy = paa_reassign(init, sets, band, level, len(BANDS), PaaOptions(topk=9))
    ref_p = reference(pos_anchor, pos_gt, level.numpy()[pos_anchor], 1.0 - init.pos_iou.astype(np.float64), 9)
    assert set(proxy.assignment.pos_anchor_index.tolist()) == ref_p


def _dump(path, tokens, a_num, rng):
    np.savez(path, sample_token=np.array(tokens), anchor_loss=rng.gamma(2.0, 0.5, (len(tokens), a_num)))
    return path


def test_count_paa_with_dump_and_proxy(tmp_path):
    from assignaudit.augment.replay import AugmentationReplay
    from assignaudit.assign.assigner import assign_frame
    from assignaudit.assign.paa import initial_layout
    from assignaudit.assign.anchors import generate_anchors
    from assignaudit.config import load_config
    from assignaudit.count import CountOptions, run_count
    from assignaudit.sources.open import open_source
    from assignaudit.tally.anchor import AnchorTally

    cfg = load_config(None)
    src = open_source()
    tokens = list(src.sample_tokens())[:2]
    tally = AnchorTally(cfg, BANDS, torch.device("cpu"))
    a_num = tally.anchors.num_anchors
    scores = load_paa_scores(_dump(tmp_path / "s.npz", tokens, a_num, np.random.default_rng(2)))
    opts = PaaOptions(scores=scores)
    res = run_count(cfg, src, CountOptions(max_frames=2, device="cpu", bands=BANDS, paa=opts), None)
    assert res.metadata["augment"] is False and res.metadata["paa"]["score_dump"] == scores.path
    # reference: initial assignment at 0.1 / 0.1, then paa_reassign with the dump's losses
    anchors = generate_anchors(initial_layout(cfg.anchors, 0.1), bands=BANDS)
    replay = AugmentationReplay(dataclasses.replace(cfg, augmentations=()), None, seed=0)
    ci = {c: i for i, c in enumerate(cfg.class_names)}
    pos = np.zeros(len(cfg.class_names), np.int64)
    for i, fr in enumerate(src.frames()):
        if i >= 2:
            break
        aug = replay.apply(fr, 0, augment=False)
        gcls = np.array([ci[c] for c in aug.class_name])
        init = assign_frame(anchors, torch.tensor(aug.boxes[:, :7], dtype=torch.float32),
                            torch.as_tensor(tally.set_of_class[gcls]), dataclasses.replace(cfg.assigner,
                                                                                          min_pos_iou=0.0), BANDS)
        lvl = torch.zeros(anchors.num_anchors, dtype=torch.int64)
        out = paa_reassign(init, anchors.set_index, anchors.band_index, lvl, len(BANDS), opts, scores.frame(
            fr.sample_token))
        np.add.at(pos, gcls, out.assignment.gt_num_pos)
        assert 0 < out.assignment.num_pos < init.num_pos
    a = res.summary[res.summary.band == ALL_BANDS]
    np.testing.assert_array_equal(a.num_pos.to_numpy(), pos)

    proxy = run_count(cfg, src, CountOptions(max_frames=1, device="cpu", paa=PaaOptions()), None)
    assert proxy.metadata["paa"]["score"].startswith("iou proxy")


def test_paa_bad_input(tmp_path):
    from typer.testing import CliRunner

    from assignaudit.cli import app
    from assignaudit.config import load_config
    from assignaudit.count import CountOptions, run_count
    from assignaudit.sources.open import open_source

    with pytest.raises(ConfigError):
        PaaOptions(separation="paper")
    with pytest.raises(DataError, match="not found"):
        load_paa_scores(tmp_path / "none.npz")
    np.savez(tmp_path / "bad.npz", sample_token=np.array(["a"]), anchor_loss=np.zeros((2, 3)))
    with pytest.raises(DataError, match="do not match"):
        load_paa_scores(tmp_path / "bad.npz")
    np.savez(tmp_path / "nan.npz", sample_token=np.array(["a"]), anchor_loss=np.full((1, 3), np.nan))
    with pytest.raises(DataError, match="non-finite"):
        load_paa_scores(tmp_path / "nan.npz")
    cfg = load_config(None)
    src = open_source()
    miss = load_paa_scores(_dump(tmp_path / "m.npz", ["x"], 3, np.random.default_rng(0)))
    with pytest.raises(DataError, match="no entry for sample_token"):
        run_count(cfg, src, CountOptions(max_frames=1, device="cpu", paa=PaaOptions(scores=miss)), None)
    wrong = load_paa_scores(_dump(tmp_path / "w.npz", list(src.sample_tokens())[:1], 3, np.random.default_rng(0)))
    with pytest.raises(DataError, match="anchors per frame"):
        run_count(cfg, src, CountOptions(max_frames=1, device="cpu", paa=PaaOptions(scores=wrong)), None)
    runner = CliRunner()
    r = runner.invoke(app, ["count", "--paa-scores", str(tmp_path / "w.npz"), "--max-frames", "1"])
    assert r.exit_code == 2 and "only applies with --paa" in r.output
    r = runner.invoke(app, ["count", "--paa", "--config", "pcdet-nuscenes-centerpoint-voxel0075", "--max-frames",
                            "1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--paa is for anchor heads" in r.output and "Traceback" not in r.output
