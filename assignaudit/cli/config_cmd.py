"""`assignaudit config show|presets`: print a resolved detector config, list the built-in presets.

Registers the ``config`` sub-app on the shared app. Parsing and rendering only; the work is `assignaudit.config`.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from assignaudit.cli.app import CFG_OPTIONS_HELP, EXTRA_ARGS, JsonOpt, app, cli_errors, split_config_args
from assignaudit.errors import ConfigError

config_app = typer.Typer(
    name="config",
    help="Show resolved detector configs (presets, our YAML, OpenPCDet YAML, mmdetection3d .py) and list the built-in "
         "presets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: option names never cut at 80 columns, no metavar on flags
)
app.add_typer(config_app, name="config")


def split_config_and_sets(tokens: list[str]) -> tuple[Optional[str], list[tuple[str, str]], list[str]]:
    """``[CONFIG] --set KEY VALUE ... --cfg-options K=V ...`` in any order -> (CONFIG or None, set pairs, cfg options).

    typer cannot declare OpenPCDet's two-value ``--set`` nor mmdet3d's multi-value ``--cfg-options``; click then
    hands them to the optional positional, so the command takes the raw tokens and splits them here.
    """
    args = split_config_args(tokens)
    if len(args.positionals) > 1:
        raise ConfigError(f"expected at most one CONFIG, got {args.positionals[0]!r} and {args.positionals[1]!r}")
    return (args.positionals[0] if args.positionals else None), args.sets, args.cfg_options


@config_app.command(
    "show",
    context_settings=EXTRA_ARGS,
    help="Print the resolved config. CONFIG: a preset name (default pcdet-nuscenes-pointpillars-multihead), a YAML "
         "file in our schema, an OpenPCDet model YAML or an mmdetection3d .py config. Override keys with --set KEY "
         "VALUE (repeatable; our dotted keys such as anchors.0.matched_threshold, or OpenPCDet keys such as "
         "MODEL.DENSE_HEAD.ANCHOR_GENERATOR_CONFIG.0.matched_threshold for OpenPCDet files). " + CFG_OPTIONS_HELP,
)
@cli_errors
def show(
    ctx: typer.Context,
    config: Annotated[Optional[str], typer.Argument(metavar="CONFIG", show_default=False,
                                                    help="Preset name or config file.")] = None,
    json_out: JsonOpt = False,
    yaml_out: Annotated[bool, typer.Option("--yaml", help="Print the config in assignaudit's YAML schema "
                                                          "(loadable again; converts OpenPCDet and mmdetection3d "
                                                          "configs).")] = False,
) -> None:
    from assignaudit.config import config_to_dict, load_config

    spec, overrides, cfg_options = split_config_and_sets(([config] if config is not None else []) + list(ctx.args))
    cfg = load_config(spec, overrides, cfg_options=cfg_options)
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

    from assignaudit.config import load_config

    names = list_presets()
    rows = [(name, *_family_and_assigner(load_config(name))) for name in names]
    if json_out:
        typer.echo(json.dumps({"default": DEFAULT_PRESET, "presets": list(names),
                               "details": [{"name": n, "family": f, "assigner": a} for n, f, a in rows]}, indent=2))
        return
    width = max(len(n) for n in names) + len("  (default)")
    fam_width = max(len(f) for _, f, _ in rows)
    for name, family, assigner in rows:
        label = f"{name}{'  (default)' if name == DEFAULT_PRESET else ''}"
        typer.echo(f"{label:<{width}}  {family:<{fam_width}}  {assigner}")


def _family_and_assigner(cfg) -> tuple[str, str]:
    """What `config presets` shows: the target family (and framework) and the assigner in words."""
    family = f"{cfg.head} ({cfg.framework})"
    if cfg.head == "anchor" and cfg.assigner is not None:
        a = cfg.assigner
        kind = {"pcdet": "OpenPCDet AxisAligned", "mmdet": "mmdet MaxIoU", "atss": "OpenPCDet ATSS"}.get(
            getattr(a.framework, "value", str(a.framework)), str(a.framework))
        notes = []
        if getattr(a.framework, "value", "") == "mmdet":
            notes.append("class-agnostic" if a.class_agnostic else
                         ("assign_per_class" if a.assign_per_class else "every size sees every class"))
        return family, ", ".join([kind, *notes])
    if cfg.head == "center":
        return family, "OpenPCDet CenterHead" if cfg.framework == "pcdet" else "mmdet3d CenterHead"
    if cfg.head == "query" and cfg.query is not None:
        return family, f"Hungarian ({cfg.query.cost} cost, {cfg.query.num_queries} queries)"
    return family, "-"


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.10g}" if isinstance(v, float) else str(v) for v in values) + "]"


def _render(cfg) -> None:
    """Rich tables: summary, the head's targets (anchor sets, heatmap heads or queries), augmentations, filters and
    post-processing."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if console.width < 90:  # the anchor table needs ~85 columns; pipes and CliRunner report 80
        console = Console(width=90)
    grid = cfg.grid_size
    head = Table(title=escape(f"{cfg.name}  ({cfg.source})"), show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    head.add_row("framework", f"{cfg.framework}, {cfg.head} head")
    head.add_row("classes", ", ".join(cfg.class_names))
    head.add_row("point cloud range (m)", escape(_fmt(cfg.point_cloud_range)))
    head.add_row("voxel size (m)", escape(_fmt(cfg.voxel_size)))
    head.add_row("voxel grid", " x ".join(map(str, grid)))
    if cfg.head == "anchor":
        _summary_anchor(cfg, head)
    elif cfg.head == "center":
        _summary_center(cfg, head)
    elif cfg.head == "fcos":
        f = cfg.fcos
        head.add_row("assigner", f"FCOS-style points ({f.variant}: "
                                 + ("smallest area" if f.variant == "mmdet" else "nearest centre") + " wins), "
                                 + (f"centre sampling radius {f.center_sample_radius:g}" if f.sampling else
                                    "no centre sampling") + f", {f.box_frame} box frame")
        head.add_row("levels", escape("; ".join(f"stride {s} ({w}x{h}), range [{lo:g}, {hi:g}] m" for s, (w, h),
                                                (lo, hi) in zip(f.strides, f.map_sizes, f.regress_ranges))))
    else:
        q = cfg.query
        matcher = {"detr3d": "DETR3D/PETR Hungarian (focal cls 2.0 + L1 0.25 on 8 dims)",
                   "transfusion": "TransFusion Hungarian (focal cls 0.15 + BEV-centre L1 0.25 + IoU 0.25)",
                   "transfusion_mmdet3d": "BEVFusion TransFusion Hungarian (focal cls 0.15 + BEV-centre L1 0.25 + "
                                          "true 3D IoU 0.25)"}[q.cost]
        head.add_row("matcher", matcher)
        head.add_row("queries", f"{q.num_queries} per frame, matched independently in each of {q.num_layers} "
                                f"decoder layer(s); positives per layer = min(#GT, {q.num_queries})")
    console.print(head)
    if cfg.head == "anchor":
        console.print(_anchor_table(cfg))
    elif cfg.head == "center":
        console.print(_heatmap_table(cfg))
    _render_rest(cfg, console)


def _summary_anchor(cfg, head) -> None:
    a, layout = cfg.assigner, cfg.anchors
    if layout.generator == "mmdet3d_aligned_per_class":
        order = "mmdet3d per class (class, rot, y, x), one feature map per class"
    elif layout.generator != "pcdet":
        order = "mmdet3d (z, y, x, set, size, rot) per level"
    else:
        order = "multi-head (class, size, rot, z, y, x)" if layout.multihead else "single head (z, y, x, class, size, rot)"
    gen = {"pcdet": "OpenPCDet AnchorGenerator", "mmdet3d": "mmdet3d Anchor3DRangeGenerator (endpoints)",
           "mmdet3d_aligned": "mmdet3d AlignedAnchor3DRangeGenerator "
                              + ("(align_corner)" if layout.align_corner else "(cell centres)"),
           "mmdet3d_aligned_per_class": "mmdet3d AlignedAnchor3DRangeGeneratorPerCls "
                                        + ("(align_corner)" if layout.align_corner else "(cell centres)")}[
        layout.generator]
    head.add_row("anchor layout", f"{order}; {gen}")
    if layout.levels:
        head.add_row("FPN levels", ", ".join(f"stride {lv.feature_map_stride} (sizes x{lv.scale:g})"
                                             for lv in layout.levels) + "; concatenated before assignment")
    assigner = f"{a.framework.value}, iou {a.iou.value}, nearest convention {a.nearest_convention}"
    if a.framework.value == "mmdet":
        assigner += (f", min_pos_iou {a.min_pos_iou:g}, gt_max_assign_all {a.gt_max_assign_all}, "
                     f"class_agnostic {a.class_agnostic}, match_low_quality {a.match_low_quality}")
        if not a.class_agnostic:
            assigner += f", assign_per_class {a.assign_per_class}"
    elif a.framework.value == "atss":
        assigner += f", topk {a.atss_topk}, upstream quirks {a.atss_upstream_quirks}"
    head.add_row("assigner", assigner)


def _summary_center(cfg, head) -> None:
    h = cfg.heatmap
    w, hh = h.map_size
    channels = sum(len(x) for x in h.head_classes)
    head.add_row("heatmap", f"{h.variant} CenterHead, {w} x {hh} cells (stride {h.feature_map_stride}, "
                            f"{h.voxel_size[0] * h.feature_map_stride:g} x {h.voxel_size[1] * h.feature_map_stride:g} m)"
                            f", {channels} channels -> {w * hh * channels:,} cells per frame")
    head.add_row("radius", f"max(int(gaussian_radius(l, w, overlap {h.gaussian_overlap:g})), min_radius "
                           f"{h.min_radius}) cells")
    head.add_row("max objects", f"{h.num_max_objs} per head" + (" (frame order)" if h.variant == "pcdet"
                                                                 else " (class-grouped per task)"))
    for warning in h.warnings:
        head.add_row("[bold red]warning[/]", warning)


def _anchor_table(cfg):
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    grid = cfg.grid_size
    layout = cfg.anchors
    anchors = Table(title="anchor sets (size dx x dy x dz m, rotations rad, bottom z m, IoU thresholds "
                          "matched/unmatched, feature map x by y /stride)", title_justify="left",
                    box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, padding=(0, 1, 0, 0))
    for col in ("class", "size", "rot", "bottom z", "thr", "map", "anchors"):
        anchors.add_column(col, justify="right" if col == "anchors" else "left", no_wrap=True)
    levels = layout.levels or None
    total = 0
    for s in cfg.anchors.anchor_sets:
        strides = [(lv.feature_map_stride, lv.scale) for lv in levels] if levels else [(s.feature_map_stride, 1.0)]
        maps = [(grid[0] // st, grid[1] // st, st, sc) for st, sc in strides]  # spec §2.1 / §6.4: integer floor
        n = sum(nx * ny for nx, ny, _, _ in maps) * s.num_anchors_per_location
        total += n
        thr = f"{s.matched_threshold:g}/{s.unmatched_threshold:g}"
        if s.min_pos_iou is not None:
            thr += f" min_pos {s.min_pos_iou:g}"
        fmap = "+".join(f"{nx}x{ny}" for nx, ny, _, _ in maps) if levels else f"{maps[0][0]}x{maps[0][1]}/{maps[0][2]}"
        if s.align_center:
            fmap += " centred"
        anchors.add_row(s.class_name, "; ".join("x".join(f"{v:.4g}" for v in z) for z in s.sizes),
                        ", ".join(f"{v:g}" for v in s.rotations), ", ".join(f"{v:.4g}" for v in s.bottom_heights),
                        escape(thr), escape(fmap), f"{n:,}")
    anchors.add_row("total", "", "", "", "", "", f"{total:,}", style="bold")
    return anchors


def _heatmap_table(cfg):
    """One row per heatmap head (pcdet CLASS_NAMES_EACH_HEAD / mmdet3d task)."""
    from rich import box
    from rich.table import Table

    h = cfg.heatmap
    w, hh = h.map_size
    table = Table(title="heatmap heads (channels, cells per frame)", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True, padding=(0, 1, 0, 0))
    for col in ("head", "classes", "cells"):
        table.add_column(col, justify="right" if col == "cells" else "left", no_wrap=col != "classes")
    total = 0
    for i, names in enumerate(h.head_classes):
        n = w * hh * len(names)
        total += n
        table.add_row(str(i), ", ".join(names), f"{n:,}")
    table.add_row("total", "", f"{total:,}", style="bold")
    return table


def _render_rest(cfg, console) -> None:
    from rich.markup import escape
    from rich.table import Table

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
    if g.use_valid_flag:
        rest.add_row("point filter", "use_valid_flag: num_lidar_pts + num_radar_pts > 0")
    else:
        rest.add_row("min lidar points", str(g.min_lidar_points))
    rest.add_row("range filter", g.range_filter)
    rest.add_row("class mapping", ", ".join(f"{s} -> {d}" for s, d in g.class_mapping) or "(none)")
    rest.add_row("score thresh", f"{p.score_thresh:g}")
    rest.add_row("nms", f"{p.nms_type}, thresh {p.nms_thresh:g}, pre {p.nms_pre_maxsize}, post {p.nms_post_maxsize}"
                        + (" (class-agnostic)" if not p.multi_classes_nms else
                           " per class, post over all classes" if cfg.framework == "mmdet3d" else " per class"))
    if p.circle_min_radius_sq:
        rest.add_row("circle min radius (m^2)", escape(_fmt(p.circle_min_radius_sq)))
    if g.drop_classes:
        rest.add_row("dropped by the dataset", ", ".join(g.drop_classes))
    if p.nms_thresh_per_class:
        rest.add_row("nms thresh per class", escape(_fmt(p.nms_thresh_per_class)))
    d = cfg.dataset
    if d.framework is not None:  # provenance: files and options that change no box (docs/config.md)
        for label, value in (("dataset", d.dataset_type), ("db infos", ", ".join(d.db_infos)),
                             ("backup db infos", ", ".join(d.backup_db_infos + d.backup_db_data_path)),
                             *((f"option {k}", v) for k, v in d.options)):
            if value:
                rest.add_row(escape(label), escape(str(value)))
    console.print(rest)
