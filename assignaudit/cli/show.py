"""`assignaudit show`: a bird's-eye picture of one augmented frame's assignment (PNG, or SVG with --svg).

The frame is replayed exactly as `count` replays it (same source / config / seed / replay options); the drawing is
`assignaudit.plots.bev`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from assignaudit.cli.app import (
    CFG_OPTIONS_HELP, EXTRA_ARGS, SET_HELP, Av2RootOpt, BoxesOpt, DatarootOpt, DataPathOpt, InfosFormatOpt, InfosOpt,
    KittiRootOpt, SourceArgs, SplitOpt, VersionOpt, app, cli_errors, parse_config_overrides,
)
from assignaudit.cli.count import ConfigOpt


@app.command("show", context_settings=EXTRA_ARGS,
             help="Draw one augmented frame's assignment in bird's-eye view: GT, positive / forced / ignored anchors, "
                  "heatmaps, matched queries; zero-positive GT with their reason. "
                  f"{SET_HELP} {CFG_OPTIONS_HELP}")
@cli_errors
def show_cmd(
    ctx: typer.Context,
    sample: Annotated[Optional[str], typer.Option("--sample", help="Sample token or index (0-based) of the frame.",
                                                  show_default=False)] = None,
    gt: Annotated[Optional[str], typer.Option("--gt", help="The frame holding this annotation token, zoomed on it.",
                                              show_default=False)] = None,
    zero_pos: Annotated[Optional[str], typer.Option(
        "--zero-pos", help="The first GT of this class that gets no positive (zoomed on it, its anchors drawn).",
        show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output image (default assignaudit-out/show.png).",
                                                show_default=False)] = None,
    svg: Annotated[bool, typer.Option("--svg", help="Write SVG instead of PNG.")] = False,
    around: Annotated[Optional[str], typer.Option(
        "--around", help="Zoom on this GT (annotation token or row in the frame).", show_default=False)] = None,
    radius: Annotated[Optional[float], typer.Option(
        "--radius", help="Half-width of the zoom in metres (default 8 with a GT to zoom on).",
        show_default=False)] = None,
    anchors_near: Annotated[Optional[str], typer.Option(
        "--anchors-near", help="Draw every anchor of this GT's anchor set around it (annotation token or row).",
        show_default=False)] = None,
    task: Annotated[Optional[int], typer.Option("--task", help="CenterHead: the task whose heatmap is drawn.",
                                                show_default=False)] = None,
    config: ConfigOpt = None,
    dataroot: DatarootOpt = None,
    version: VersionOpt = None,
    split: SplitOpt = None,
    boxes: BoxesOpt = None,
    infos: InfosOpt = None,
    infos_format: InfosFormatOpt = None,
    data_path: DataPathOpt = None,
    kitti_root: KittiRootOpt = None,
    av2_root: Av2RootOpt = None,
    db_infos: Annotated[Optional[list[Path]], typer.Option(
        "--db-infos", help="As for count: the gt_sampling database info file(s) to draw pasted objects from.",
        show_default=False, metavar="<path>")] = None,
    class_map: Annotated[Optional[str], typer.Option("--class-map", help="As for count.", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the augmentation replay.")] = 0,
    replay: Annotated[int, typer.Option("--replay", help="Replay index of the frame (with --zero-pos: replays "
                                                         "0..N-1 are scanned, N = --replays).")] = 0,
    replays: Annotated[int, typer.Option("--replays", help="Replays per frame scanned by --zero-pos.")] = 1,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Skip the random augmentation.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")] = "cpu",
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", help="Look at the first N frames only.")] = None,
    queries: Annotated[Optional[Path], typer.Option("--queries", help="Query-head dump (docs/query-dumps.md).")] = None,
) -> None:
    from assignaudit.config import load_config
    from assignaudit.errors import ConfigError
    from assignaudit.frame_detail import FrameQuery, find_frame_detail
    from assignaudit.plots.bev import scene_from_detail, write_bev

    query = FrameQuery(sample=sample, gt=gt, zero_pos=zero_pos, replay=replay)
    if replays < 1:
        raise ConfigError(f"--replays must be >= 1, got {replays}")
    if radius is not None and not radius > 0:
        raise ConfigError(f"--radius must be > 0 metres, got {radius}")
    overrides, cfg_options = parse_config_overrides(list(ctx.args))
    from assignaudit.report_set import check_out_file

    check_out_file(out or Path("assignaudit-out") / ("show.svg" if svg else "show.png"), "--out")  # before the work
    cfg = load_config(config, overrides, cfg_options=cfg_options)
    if class_map is not None:
        from assignaudit.config.overrides import apply_class_map

        cfg = apply_class_map(cfg, class_map)
    source = SourceArgs(dataroot, version, split, boxes, tuple(infos or ()), infos_format, data_path, kitti_root,
                        av2_root).open(cfg)
    detail = find_frame_detail(cfg, source, query, seed=seed, augment=not no_augment, replays=replays, device=device,
                               max_frames=max_frames, query_dump=queries,
                               db_infos=tuple(db_infos or ()))
    scene = scene_from_detail(detail, around=around, radius=radius, anchors_near=anchors_near, task=task)
    path = out or Path("assignaudit-out") / ("show.svg" if svg else "show.png")
    if svg and path.suffix.lower() != ".svg":
        path = path.with_suffix(".svg")
    write_bev(scene, path, fmt="svg" if svg else "png")
    if scene.target_note:
        typer.echo(scene.target_note)
    typer.echo(f"wrote {path}")
