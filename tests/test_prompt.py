"""Point-prompted queries (assign/prompt.py, tally/prompt.py): prompt points, the proxy match against a brute
force, the dump replay with a hand-built dump, refusals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from assignaudit import schema
from assignaudit.assign.prompt import PromptOptions, prompt_points, proxy_match
from assignaudit.bands import ALL_BANDS, Bands
from assignaudit.errors import ConfigError, DataError

BANDS = Bands((0.0, 20.0, 30.0, 40.0, 50.0))


def test_prompt_points():
    b = np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.7], [-5.0, 3.0, 0.0, 1.0, 1.0, 1.0, -2.0]])
    np.testing.assert_array_equal(prompt_points(b, PromptOptions()), b[:, :3])
    np.testing.assert_allclose(prompt_points(b, PromptOptions(mode="jitter", jitter=0.0), "t"), b[:, :3])
    p = prompt_points(b, PromptOptions(mode="jitter"), "tok")
    np.testing.assert_array_equal(p, prompt_points(b, PromptOptions(mode="jitter"), "tok"))  # reproducible
    assert not np.allclose(p, prompt_points(b, PromptOptions(mode="jitter"), "other"))
    for (x, y, _), box in zip(p, b):  # inside its box (box frame)
        c, s = math.cos(box[6]), math.sin(box[6])
        u, v = c * (x - box[0]) + s * (y - box[1]), -s * (x - box[0]) + c * (y - box[1])
        assert abs(u) <= box[3] / 2 and abs(v) <= box[4] / 2


def test_proxy_match_by_hand_and_brute_force():
    # Two GT 1 m apart; each prompt sits 0.1 m from the *other* centre: L1 costs 0.9 own, 0.1 swapped -> swap.
    gt = np.array([[0.0, 0, 0, 4, 2, 1.5, 0], [1.0, 0, 0, 4, 2, 1.5, 0]])
    assert proxy_match(np.array([[0.9, 0, 0], [0.1, 0, 0]]), gt).tolist() == [1, 0]
    assert proxy_match(np.array([[0.1, 0, 0], [0.9, 0, 0]]), gt).tolist() == [0, 1]
    rng = np.random.default_rng(4)
    g = np.zeros((6, 7))
    g[:, :2] = rng.uniform(-3, 3, (6, 2))
    pts = g[:, :3] + rng.normal(0, 1.0, (6, 3))
    m = proxy_match(pts, g)
    cost = lambda perm: sum(abs(pts[i, 0] - g[j, 0]) + abs(pts[i, 1] - g[j, 1]) for i, j in enumerate(perm))  # noqa
    assert cost(m) == pytest.approx(min(cost(p) for p in itertools.permutations(range(6))), abs=1e-12)


def test_count_prompts_with_dump(tmp_path):
    from test_count_families import filtered_frames, query_config

    from assignaudit.assign.hungarian import normalize_bbox
    from assignaudit.count import CountOptions, run_count
    from assignaudit.sources.open import open_source

    cfg = query_config(q=80, layers=2)
    augs = filtered_frames(cfg, 2)
    ci = {c: i for i, c in enumerate(cfg.class_names)}
    tokens, boxes, logits, swapped = [], [], [], []
    for aug in augs:
        k = len(aug.boxes)
        b = np.zeros((2, 80, 10), np.float32)
        b[:, :, 0] = 200.0  # unused queries far away
        b[:, :, 7] = 1.0
        exact = normalize_bbox(torch.tensor(aug.boxes, dtype=torch.float32)).numpy()
        b[:, :k] = exact
        # last layer: the first two prompt queries predict each other's GT -> those two GT disagree
        b[1, 0], b[1, 1] = exact[1], exact[0]
        lg = np.full((2, 80, len(cfg.class_names)), -8.0, np.float32)
        lab = np.array([ci[c] for c in aug.class_name])
        lg[:, np.arange(k), lab] = 8.0
        lg[1, 0], lg[1, 1] = lg[0, 1].copy(), lg[0, 0].copy()
        tokens.append(aug.sample_token)
        boxes.append(b)
        logits.append(lg)
        swapped.append(aug.class_name[:2])
    np.savez(tmp_path / "d.npz", sample_token=np.array(tokens), boxes=np.stack(boxes), logits=np.stack(logits))
    res = run_count(cfg, open_source(), CountOptions(max_frames=2, device="cpu", bands=BANDS,
                                                     prompts=PromptOptions()), tmp_path / "o",
                    query_dump=tmp_path / "d.npz")
    pr = res.extra[schema.PROMPTS_FILE]
    a = pr[pr.band == ALL_BANDS].set_index("class")
    n_gt = sum(len(x.boxes) for x in augs)
    assert a.num_gt.sum() == n_gt and a.num_agree.sum() == n_gt - 4
    lost = {}
    for names in swapped:
        for c in names:
            lost[c] = lost.get(c, 0) + 1
    for c, row in a.iterrows():
        assert row.num_gt - row.num_agree == lost.get(c, 0)
    assert res.metadata["prompts"]["source"].startswith("dump")
    assert (tmp_path / "o" / schema.PROMPTS_FILE).is_file()


def test_prompt_refusals():
    from assignaudit.config import load_config
    from assignaudit.count import CountOptions, run_count
    from assignaudit.sources.open import open_source

    with pytest.raises(ConfigError):
        PromptOptions(mode="random")
    with pytest.raises(ConfigError):
        PromptOptions(jitter=2.0)
    with pytest.raises(ConfigError, match="--prompts is for query heads"):
        run_count(load_config(None), open_source(), CountOptions(max_frames=1, device="cpu",
                                                                 prompts=PromptOptions()), None)
    with pytest.raises(DataError):
        prompt_points(np.zeros((2, 3)), PromptOptions())


def test_cli_prompts(tmp_path):
    from typer.testing import CliRunner

    from assignaudit.cli import app

    cfg = tmp_path / "q.yaml"
    cfg.write_text("assignaudit: 1\nname: q\nhead: query\nclass_names: [car, truck, construction_vehicle, bus, "
                   "trailer, barrier, motorcycle, bicycle, pedestrian, traffic_cone]\npoint_cloud_range: [-51.2, "
                   "-51.2, -5.0, 51.2, 51.2, 3.0]\nvoxel_size: [0.2, 0.2, 8.0]\nquery: {cost: detr3d, num_queries: "
                   "900, num_layers: 6}\n")
    runner = CliRunner()
    r = runner.invoke(app, ["count", "--config", str(cfg), "--prompts", "jitter", "--max-frames", "2", "--device",
                            "cpu", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "prompt agreement (jitter; proxy" in r.stdout and (tmp_path / "o" / schema.PROMPTS_FILE).is_file()
    r = runner.invoke(app, ["count", "--config", str(cfg), "--prompts", "random", "--max-frames", "1"])
    assert r.exit_code == 2 and "--prompts must be one of" in r.output
