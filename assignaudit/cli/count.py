"""`assignaudit count`: positives, negatives and ignores per class and range band, after augmentation replay."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from assignaudit.cli.app import (
    EXTRA_ARGS, SET_HELP, BandsOpt, BoxesOpt, DatarootOpt, JsonOpt, OutOpt, QuietOpt, SplitOpt, VersionOpt, app,
    cli_errors, parse_set_overrides,
)

ConfigOpt = Annotated[
    Optional[str],
    typer.Option("--config", "--cfg_file", "--cfg-file",
                 help="Preset name or config file (our YAML or an OpenPCDet model YAML). "
                      "Default: pcdet-nuscenes-pointpillars-multihead."),
]


@app.command("count", context_settings=EXTRA_ARGS, help=f"Count anchor targets per class and range band. {SET_HELP}")
@cli_errors
def count_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    dataroot: DatarootOpt = None,
    version: VersionOpt = None,
    split: SplitOpt = None,
    boxes: BoxesOpt = None,
    bands: BandsOpt = None,
    out: OutOpt = Path("assignaudit-out"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the augmentation replay.")] = 0,
    replays: Annotated[int, typer.Option("--replays", help="Augmented replays per frame.")] = 1,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Skip the random augmentation (filters still apply).")] = False,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda (auto = CUDA when available).")] = "auto",
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", help="Stop after this many frames.")] = None,
    only_summary: Annotated[bool, typer.Option("--only-summary", help="Write only summary.parquet (for baselines).")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    from assignaudit.bands import Bands
    from assignaudit.config import load_config
    from assignaudit.count import CountOptions, run_count
    from assignaudit.sources.open import open_source

    overrides = parse_set_overrides(list(ctx.args))
    cfg = load_config(config, overrides)
    source = open_source(dataroot=dataroot, version=version, split=split, boxes=boxes)
    options = CountOptions(seed=seed, replays=replays, augment=not no_augment, bands=Bands.parse(bands),
                           device=device, max_frames=max_frames)
    show_progress = not quiet and not as_json and sys.stderr.isatty()
    if show_progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("counting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("count", total=None)
            result = run_count(cfg, source, options, out, only_summary=only_summary,
                               on_progress=lambda done, total: progress.update(task, completed=done, total=total))
    else:
        result = run_count(cfg, source, options, out, only_summary=only_summary)

    if as_json:
        records = json.loads(result.summary.to_json(orient="records"))
        payload = {"meta": {k: result.metadata[k] for k in ("config_name", "config_sha256", "dataset", "seed",
                                                              "replays", "augment", "device", "num_frames_assigned",
                                                              "num_frames_skipped_empty")},
                   "summary": records, "written": [str(p) for p in result.written]}
        typer.echo(json.dumps(payload, indent=2))
        return
    _render(result, cfg.class_names)


def _render(result, class_names) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=160)
    summary = result.summary
    bands = [b for b in summary["band"].unique() if b != "all"] + ["all"]
    meta = result.metadata
    table = Table(
        title=f"positives / GT (GT with 0 positives) -- {meta['config_name']}, {_dataset_label(meta['dataset'])}, "
              f"{meta['num_frames_assigned']} frame(s) x {meta['replays']} replay(s), seed {meta['seed']}",
        title_justify="left",
    )
    table.add_column("class")
    for b in bands:
        table.add_column(b, justify="right")
    table.add_column("neg", justify="right")
    table.add_column("ignore", justify="right")
    by = summary.set_index(["class", "band"])
    for c in class_names:
        cells = []
        for b in bands:
            row = by.loc[(c, b)]  # noqa: PD011
            gt, pos, zero = int(row.num_gt), int(row.num_pos), int(row.num_gt_zero_pos)
            text = f"{pos}/{gt}" if gt else "-"
            if zero:
                text += f" [bold red]({zero})[/]"
            cells.append(text)
        allrow = by.loc[(c, "all")]
        name = f"[bold red]{c}[/]" if allrow.num_gt_zero_pos else c
        if allrow.num_gt == 0:
            name = f"[yellow]{c} (no GT)[/]"
        table.add_row(name, *cells, f"{int(allrow.num_neg):,}", f"{int(allrow.num_ignore):,}")
    console.print(table)
    all_rows = summary[summary.band == "all"]
    no_gt = all_rows.loc[all_rows.num_gt == 0, "class"].tolist()
    if no_gt:
        console.print(f"[yellow]class(es) with no GT in this data: {', '.join(no_gt)}[/]")
    zero_total = int(summary.loc[summary.band == "all", "num_gt_zero_pos"].sum())
    if zero_total:
        console.print(f"[bold red]{zero_total} GT object(s) get no positive anchor[/] "
                      "(see objects.parquet, column zero_pos_reason)")
    if meta.get("num_frames_skipped_empty"):
        console.print(f"[yellow]{meta['num_frames_skipped_empty']} frame(s) had no GT after filtering and were "
                      "skipped (training resamples them)[/]")
    for p in result.written:
        console.print(f"wrote {p}")



def _dataset_label(dataset: dict) -> str:
    if dataset.get("kind") == "nuscenes":
        return f"nuScenes {dataset['version']}:{dataset['split']}"
    return f"{dataset.get('kind')} {dataset.get('dataroot')}"
