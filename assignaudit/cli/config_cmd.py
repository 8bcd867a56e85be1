"""`assignaudit config show|presets`: print a resolved detector config, list the built-in presets.

Registers the ``config`` sub-app on the shared app. Parsing and rendering only; the work is `assignaudit.config`.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from assignaudit.cli.app import EXTRA_ARGS, JsonOpt, app, cli_errors, split_set_overrides
from assignaudit.errors import ConfigError

config_app = typer.Typer(
    name="config",
    help="Show resolved detector configs (presets, our YAML, OpenPCDet YAML) and list the built-in presets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")


def split_config_and_sets(tokens: list[str]) -> tuple[Optional[str], list[tuple[str, str]]]:
    """``[CONFIG] --set KEY VALUE ...`` in any order -> (CONFIG or None, [(KEY, VALUE), ...]).

    typer cannot declare OpenPCDet's two-value ``--set``; click then hands ``--set`` to the optional positional,
    so the command takes the raw tokens and splits them here.
    """
    positionals, pairs = split_set_overrides(tokens)
    if len(positionals) > 1:
        raise ConfigError(f"expected at most one CONFIG, got {positionals[0]!r} and {positionals[1]!r}")
    return (positionals[0] if positionals else None), pairs


@config_app.command(
    "show",
    context_settings=EXTRA_ARGS,
    help="Print the resolved config. CONFIG: a preset name (default pcdet-nuscenes-pointpillars-multihead), a YAML "
         "file in our schema, or an OpenPCDet model YAML. Override keys with --set KEY VALUE (repeatable; our dotted "
         "keys such as anchors.0.matched_threshold, or OpenPCDet keys such as "
         "MODEL.DENSE_HEAD.ANCHOR_GENERATOR_CONFIG.0.matched_threshold for OpenPCDet files).",
)
@cli_errors
def show(
    ctx: typer.Context,
    config: Annotated[Optional[str], typer.Argument(metavar="CONFIG", show_default=False,
                                                    help="Preset name or config file.")] = None,
    json_out: JsonOpt = False,
    yaml_out: Annotated[bool, typer.Option("--yaml", help="Print the config in assignaudit's YAML schema "
                                                          "(loadable again; converts OpenPCDet configs).")] = False,
) -> None:
    from assignaudit.config import config_to_dict, load_config

    spec, overrides = split_config_and_sets(([config] if config is not None else []) + list(ctx.args))
    cfg = load_config(spec, overrides)
    if json_out:
        typer.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    if yaml_out:
        import yaml

        typer.echo(yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None), nl=False)
        return
    _render(cfg)


@config_app.command("presets", help="List the built-in presets (use one with --config NAME or config show NAME).")
@cli_errors
def presets(json_out: JsonOpt = False) -> None:
    from assignaudit.config import DEFAULT_PRESET, list_presets

    names = list_presets()
    if json_out:
        typer.echo(json.dumps({"default": DEFAULT_PRESET, "presets": list(names)}, indent=2))
        return
    for name in names:
        typer.echo(f"{name}{'  (default)' if name == DEFAULT_PRESET else ''}")


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.10g}" if isinstance(v, float) else str(v) for v in values) + "]"


def _render(cfg) -> None:
    """Rich tables: summary, anchor sets, augmentations, filters and post-processing."""
    from rich.console import Console
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if console.width < 90:  # the anchor table needs ~85 columns; pipes and CliRunner report 80
        console = Console(width=90)
    a = cfg.assigner
    grid = cfg.grid_size
    head = Table(title=escape(f"{cfg.name}  ({cfg.source})"), show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    head.add_row("classes", ", ".join(cfg.class_names))
    head.add_row("point cloud range (m)", escape(_fmt(cfg.point_cloud_range)))
    head.add_row("voxel size (m)", escape(_fmt(cfg.voxel_size)))
    head.add_row("voxel grid", " x ".join(map(str, grid)))
    head.add_row("anchor layout", "multi-head (class, size, rot, z, y, x)" if cfg.anchors.multihead
                 else "single head (z, y, x, class, size, rot)")
    assigner = f"{a.framework.value}, iou {a.iou.value}, nearest convention {a.nearest_convention}"
    if a.framework.value == "mmdet":
        assigner += (f", min_pos_iou {a.min_pos_iou:g}, gt_max_assign_all {a.gt_max_assign_all}, "
                     f"class_agnostic {a.class_agnostic}, match_low_quality {a.match_low_quality}")
    head.add_row("assigner", assigner)
    console.print(head)

    anchors = Table(title="anchor sets (size dx x dy x dz m, rotations rad, bottom z m, IoU thresholds "
                          "matched/unmatched, feature map x by y /stride)", title_justify="left",
                    box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, padding=(0, 1, 0, 0))
    for col in ("class", "size", "rot", "bottom z", "thr", "map", "anchors"):
        anchors.add_column(col, justify="right" if col == "anchors" else "left", no_wrap=True)
    total = 0
    for s in cfg.anchors.anchor_sets:
        nx, ny = grid[0] // s.feature_map_stride, grid[1] // s.feature_map_stride  # spec §2.1: integer floor
        n = nx * ny * s.num_anchors_per_location
        total += n
        thr = f"{s.matched_threshold:g}/{s.unmatched_threshold:g}"
        if s.min_pos_iou is not None:
            thr += f" min_pos {s.min_pos_iou:g}"
        fmap = f"{nx}x{ny}/{s.feature_map_stride}" + (" centred" if s.align_center else "")
        anchors.add_row(s.class_name, "; ".join("x".join(f"{v:g}" for v in z) for z in s.sizes),
                        ", ".join(f"{v:g}" for v in s.rotations), ", ".join(f"{v:g}" for v in s.bottom_heights),
                        thr, fmap, f"{n:,}")
    anchors.add_row("total", "", "", "", "", "", f"{total:,}", style="bold")
    console.print(anchors)

    augs = Table(title="augmentations (replayed in this order)", title_justify="left")
    augs.add_column("#", justify="right")
    augs.add_column("op", no_wrap=True)
    augs.add_column("parameters")
    for i, op in enumerate(cfg.augmentations):
        parts = []
        for k, v in op.__dict__.items():
            if isinstance(v, tuple) and v and all(isinstance(x, tuple) for x in v):
                v = " ".join(f"{c}:{n}" for c, n in v)  # (class, count) pairs
            elif isinstance(v, tuple):
                v = _fmt(v)
            parts.append(f"{k}={v}")
        augs.add_row(str(i), type(op).__name__, escape("; ".join(parts)))
    if not cfg.augmentations:
        augs.add_row("-", "(none)", "")
    console.print(augs)

    g, p = cfg.gt_filters, cfg.post_processing
    rest = Table(title="GT filters and post-processing", show_header=False, title_justify="left")
    rest.add_column(style="bold")
    rest.add_column()
    rest.add_row("min lidar points", str(g.min_lidar_points))
    rest.add_row("range filter", g.range_filter)
    rest.add_row("class mapping", ", ".join(f"{s} -> {d}" for s, d in g.class_mapping) or "(none)")
    rest.add_row("score thresh", f"{p.score_thresh:g}")
    rest.add_row("nms", f"{p.nms_type}, thresh {p.nms_thresh:g}, pre {p.nms_pre_maxsize}, post {p.nms_post_maxsize}"
                        f"{' per class' if p.multi_classes_nms else ' (class-agnostic)'}")
    if p.circle_min_radius_sq:
        rest.add_row("circle min radius (m^2)", escape(_fmt(p.circle_min_radius_sq)))
    console.print(rest)
