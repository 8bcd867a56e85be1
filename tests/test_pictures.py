"""Pictures: `assignaudit show` (BEV of one frame's assignment) and `assignaudit report` (one HTML page).

Image tests check content: the colour at the pixel where a GT centre / a positive anchor centre must be drawn
(positions from the axes' own data-to-pixel transform), not a golden image.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from assignaudit.cli import app
from assignaudit.plots import fig_bytes
from assignaudit.plots.bev import CLASS_COLOURS, IGNORE_COLOUR, BevScene, bev_figure

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rgb(hex_colour: str) -> np.ndarray:
    from matplotlib.colors import to_rgb

    return np.array(to_rgb(hex_colour))


def _png_pixels(png: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")[..., :3]


def _pixel(img: np.ndarray, fig, ax, x: float, y: float) -> np.ndarray:
    """RGB of the image pixel under data point (x, y): display coordinates have their origin bottom-left, image rows
    go top-down."""
    px, py = ax.transData.transform((x, y))
    h = img.shape[0]
    assert img.shape[0] == round(fig.bbox.height) and img.shape[1] == round(fig.bbox.width)
    return img[int(h - py), int(px)]


# ---------------------------------------------------------------------------------------------------------------------
# BEV content
# ---------------------------------------------------------------------------------------------------------------------


def _synthetic_scene() -> BevScene:
    # GT 0: a car at (2, 1), 4 x 2 m, yaw 0.3; GT 1: a pedestrian at (4.5, -2.5). Two positive anchors credited to the
    # car (one forced-only), one credited to the pedestrian, one ignored anchor; pedestrian has 1 positive, car 2.
    gt = np.array([[2.0, 1.0, 0.0, 4.0, 2.0, 1.5, 0.3], [4.5, -2.5, 0.0, 0.6, 0.6, 1.7, 0.0]])
    pos = np.array([[1.0, 0.6, 0.0, 3.9, 1.6, 1.5, 0.0], [2.6, 1.8, 0.0, 3.9, 1.6, 1.5, 1.57],
                    [4.3, -2.0, 0.0, 0.6, 0.8, 1.7, 0.0]])
    return BevScene(class_names=("car", "pedestrian"), gt_boxes=gt, gt_class=np.array(["car", "pedestrian"], object),
                    gt_num_pos=np.array([2, 1]), gt_reason=np.array([None, None], object),
                    gt_source=np.array(["dataset", "dataset"], object), pos_boxes=pos, pos_gt=np.array([0, 0, 1]),
                    pos_forced=np.array([False, True, False]),
                    ignore_boxes=np.array([[-1.0, -2.5, 0.0, 2.0, 1.0, 1.5, 0.0]]), around=(1.5, 0.0), radius=5.0,
                    labels=False)


def test_bev_gt_and_positive_anchor_colours_at_their_pixels():
    scene = _synthetic_scene()
    fig = bev_figure(scene)
    ax = fig.axes[0]
    fig.canvas.draw()
    positions = {name: ax.transData.transform(xy) for name, xy in
                 (("gt0", (2.0, 1.0)), ("gt1", (4.5, -2.5)), ("p0", (1.0, 0.6)), ("p1", (2.6, 1.8)),
                  ("p2", (4.3, -2.0)), ("empty", (-4.0, 4.0)))}
    img = _png_pixels(fig_bytes(fig, dpi=fig.dpi))  # closes the figure; the transforms were read before
    h = img.shape[0]

    def at(name):
        px, py = positions[name]
        return img[int(h - py), int(px)]

    car, ped = _rgb(CLASS_COLOURS[0]), _rgb(CLASS_COLOURS[1])
    assert np.allclose(at("gt0"), car, atol=0.03)
    assert np.allclose(at("gt1"), ped, atol=0.03)
    assert np.allclose(at("p0"), car, atol=0.03)  # positive credited to the car: the car's colour
    assert np.allclose(at("p1"), car, atol=0.03)  # forced-only (an x marker), still the credited GT's colour
    assert np.allclose(at("p2"), ped, atol=0.03)  # credited to the pedestrian
    assert np.allclose(at("empty"), 1.0, atol=0.02)  # nothing drawn there: white


def test_bev_zero_positive_gt_highlighted_and_ignored_anchor_drawn():
    from assignaudit.plots.bev import ZERO_POS_COLOUR, box_corners

    scene = _synthetic_scene()
    scene.gt_num_pos = np.array([0, 1])
    scene.gt_reason = np.array(["no_overlap", None], object)
    scene.pos_boxes, scene.pos_gt, scene.pos_forced = scene.pos_boxes[2:], np.array([1]), np.array([False])
    fig = bev_figure(scene)
    ax = fig.axes[0]
    fig.canvas.draw()
    texts = [t.get_text() for t in ax.texts]
    assert any("no_overlap" in t for t in texts)
    # The ignored anchor's left edge midpoint: grey (dotted line, so look at a few pixels along the edge).
    c = box_corners(scene.ignore_boxes)[0]
    edge = [ax.transData.transform(c[1] + (c[2] - c[1]) * f) for f in np.linspace(0.2, 0.8, 25)]
    zero_halo = ax.transData.transform((2.0 + 2.0 * np.cos(0.3) + 0.25, 1.0 + 2.0 * np.sin(0.3)))
    img = _png_pixels(fig_bytes(fig, dpi=fig.dpi))
    h = img.shape[0]
    assert np.ptp(_rgb(IGNORE_COLOUR)) == 0  # a neutral grey: antialiased pixels of it stay neutral

    def greyish(p):  # drawn (not white) and neutral (R = G = B): the ignored outline, not a class colour
        return p.max() < 0.95 and np.ptp(p) < 0.04

    hits = [any(greyish(img[int(h - py) + dy, int(px) + dx]) for dx in (-1, 0, 1) for dy in (-1, 0, 1))
            for px, py in edge]
    assert sum(hits) >= 8
    # somewhere around the car box, the magenta halo
    px, py = zero_halo
    window = img[int(h - py) - 12:int(h - py) + 12, int(px) - 12:int(px) + 12]
    assert np.isclose(window, _rgb(ZERO_POS_COLOUR), atol=0.1).all(axis=-1).any()


def test_box_corners_against_hand_numbers():
    from assignaudit.plots.bev import box_corners

    c = box_corners(np.array([[1.0, 2.0, 0.0, 4.0, 2.0, 1.0, np.pi / 2]]))[0]
    # yaw 90 deg: length along +y. Front-left = centre + (0, 2) + (-1, 0)
    assert np.allclose(c, [[0.0, 4.0], [0.0, 0.0], [2.0, 0.0], [2.0, 4.0]], atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# show on the bundled fixture
# ---------------------------------------------------------------------------------------------------------------------


def test_show_zero_pos_traffic_cone_matches_count(tmp_path):
    from assignaudit.config import load_config
    from assignaudit.count import CountOptions, run_count
    from assignaudit.frame_detail import FrameQuery, find_frame_detail
    from assignaudit.cli.app import SourceArgs

    out = tmp_path / "cone.png"
    res = runner.invoke(app, ["show", "--zero-pos", "traffic_cone", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == PNG_MAGIC
    note = res.stdout.splitlines()[0]
    assert note.startswith("traffic_cone #") and "0 positive(s)" in note and "reason: no_overlap" in note

    cfg = load_config(None)
    source = SourceArgs().open(cfg)
    detail = find_frame_detail(cfg, source, FrameQuery(zero_pos="traffic_cone"))
    t = detail.target
    token = detail.aug.ann_token[t]
    assert token in note
    # The same seed, replay and frames through count (the gt_sampling database is built from the frames counted,
    # so --max-frames goes to both): that GT has no positive there either, with the same reason.
    first = list(source.sample_tokens()).index(detail.aug.sample_token)
    detail = find_frame_detail(cfg, source, FrameQuery(zero_pos="traffic_cone"), max_frames=first + 1)
    assert detail.aug.ann_token[detail.target] == token
    t = detail.target
    run_count(cfg, source, CountOptions(max_frames=first + 1, device="cpu"), tmp_path / "count")
    objects = pd.read_parquet(tmp_path / "count" / "objects.parquet")
    row = objects[(objects.ann_token == token) & (objects.sample_token == detail.aug.sample_token)].iloc[0]
    assert row.num_pos == 0 and row.zero_pos_reason == detail.tally.gt_zero_pos_reason[t] == "no_overlap"
    # per-anchor detail agrees with the per-GT tallies
    assert np.array_equal(np.bincount(detail.pos_gt, minlength=len(detail.aug)), detail.tally.gt_num_pos)
    mine = objects[objects.sample_token == detail.aug.sample_token].dropna(subset=["band"])
    assert int(mine.num_pos.sum()) == len(detail.pos_gt)
    assert len(np.unique(detail.pos_anchor)) == len(detail.pos_anchor)
    # anchors of the cone's set are drawn around it
    from assignaudit.plots.bev import scene_from_detail

    scene = scene_from_detail(detail)
    assert scene.near_boxes is not None and len(scene.near_boxes) > 10
    assert np.abs(scene.near_boxes[:, :2] - detail.aug.boxes[t, :2]).max() <= 8.0


def test_show_sample_index_svg(tmp_path):
    out = tmp_path / "f.svg"
    res = runner.invoke(app, ["show", "--sample", "0", "--svg", "--out", str(out), "--around", "0", "--radius", "10"])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "<svg" in text[:1000] and "augmentation" in text


@pytest.mark.parametrize("args, needle", [
    (["--sample", "not-a-token"], "unknown sample 'not-a-token'"),
    (["--sample", "999"], "sample index 999"),
    (["--zero-pos", "spaceship"], "'spaceship' is not a class"),
    (["--zero-pos", "car"], "no GT of class 'car' without a positive"),
    (["--gt", "feedbeef"], "annotation token 'feedbeef' is in no frame"),
    ([], "give exactly one of"),
    (["--sample", "0", "--radius", "-1"], "--radius must be > 0"),
])
def test_show_bad_inputs_one_error_line(tmp_path, args, needle):
    res = runner.invoke(app, ["show", *args, "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr
    assert "Traceback" not in res.output


# ---------------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("reports")
    res = runner.invoke(app, ["count", "--out", str(d), "--max-frames", "4", "-q", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["yaw", "--out", str(d), "--nms-sweep", "0.1,0.3", "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["gate", str(d), str(d), "--json", "--allow-mismatch"])
    assert res.exit_code == 0, res.output
    (d / "gate.json").write_text(res.stdout)
    return d


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.imgs: list[str] = []
        self.tags: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if "href" in a:
            self.hrefs.append(a["href"])


def test_report_html_every_section_inline_images(report_dir, tmp_path):
    from assignaudit.html_report import SECTIONS

    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(report_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = _Page()
    text = out.read_text()
    page.feed(text)
    assert page.sections == [sid for sid, _ in SECTIONS]
    assert len(page.imgs) >= 8
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    assert "script" not in page.tags and "link" not in page.tags
    assert all(h.startswith("#") for h in page.hrefs)
    assert "http://" not in text and "https://" not in text
    assert "PASSED" in text  # the gate verdict
    assert "traffic_cone" in text and "no_overlap" in text  # ledger


def test_report_compare_side_by_side(report_dir, tmp_path):
    out = tmp_path / "c.html"
    res = runner.invoke(app, ["report", str(report_dir), str(report_dir), "--compare", "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "<h3>A: " in text and "<h3>B: " in text
    res = runner.invoke(app, ["report", str(report_dir), "--compare", "--out", str(out)])
    assert res.exit_code == 2 and res.stderr.startswith("error: --compare needs exactly two")


def test_report_bad_dirs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for arg, needle in ((empty, "no assignaudit report"), (tmp_path / "missing", "not found")):
        res = runner.invoke(app, ["report", str(arg)])
        assert res.exit_code == 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (Debian package 'chromium')")
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    out = tmp_path / "r.html"
    assert runner.invoke(app, ["report", str(report_dir), "--out", str(out)]).exit_code == 0
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1200,1600", out.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    img = _png_pixels(shot.read_bytes())
    dark = (img.mean(axis=-1) < 0.6).mean()
    assert dark > 0.01, f"screenshot nearly blank ({dark:.4f} of the pixels are dark)"
    assert img.std() > 0.05


@pytest.mark.parametrize("preset", ["mmdet3d-nuscenes-pointpillars-secfpn", "pcdet-nuscenes-centerpoint-voxel0075"])
def test_show_other_families(tmp_path, preset):
    """mmdet MaxIoU (class-agnostic) anchors and a CenterHead heatmap: the per-target detail agrees with the per-GT
    tallies, and the picture is drawn."""
    from assignaudit.config import load_config
    from assignaudit.frame_detail import FrameQuery, find_frame_detail
    from assignaudit.cli.app import SourceArgs
    from assignaudit.plots.bev import render_bev, scene_from_detail

    cfg = load_config(preset)
    detail = find_frame_detail(cfg, SourceArgs().open(cfg), FrameQuery(sample="1"), max_frames=2)
    if cfg.head == "anchor":
        assert np.array_equal(np.bincount(detail.pos_gt, minlength=len(detail.aug)), detail.tally.gt_num_pos)
        assert len(detail.pos_forced) == len(detail.pos_gt)
    else:
        scene = scene_from_detail(detail)
        assert scene.heatmap is not None and scene.heatmap.max() == 1.0
        drawn = np.isfinite(scene.radius_m)
        assert drawn.any() and (scene.radius_m[drawn] > 0).all()
    assert render_bev(scene_from_detail(detail))[:8] == PNG_MAGIC


def test_show_query_head_with_dump(tmp_path):
    """Query head with a dump: each GT's last-layer match is a query with a line to it (the dump's layer 1 puts one
    query 0.2..3 m from each GT, the others are far away), unmatched queries faint."""
    from test_count_families import filtered_frames, make_dump, query_config

    from assignaudit.cli.app import SourceArgs
    from assignaudit.frame_detail import FrameQuery, find_frame_detail
    from assignaudit.plots.bev import render_bev, scene_from_detail

    cfg = query_config(q=60, layers=2)
    augs = filtered_frames(cfg, 2)
    dump = make_dump(tmp_path / "d.npz", cfg, augs, np.random.default_rng(0))
    detail = find_frame_detail(cfg, SourceArgs().open(cfg), FrameQuery(sample="1"), max_frames=2, query_dump=dump)
    m = detail.query_matched_gt
    k = len(detail.aug)
    assert sorted(m[m >= 0].tolist()) == list(range(k))  # every GT matched once (K <= Q)
    assert (detail.tally.gt_num_pos == 1).all()
    gap = np.hypot(*(detail.query_centres[m >= 0] - detail.aug.boxes[m[m >= 0], :2]).T)
    assert (gap < 3.5).all()
    assert render_bev(scene_from_detail(detail))[:8] == PNG_MAGIC
