"""`assignaudit count`: positives, negatives and ignores per class and range band, after augmentation replay, for
anchor, CenterHead (heatmap) and query heads; `--compare-config B` puts two configs side by side."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assignaudit.cli.app import (
    EXTRA_ARGS, SET_HELP, Av2RootOpt, BandsOpt, BoxesOpt, DatarootOpt, DataPathOpt, InfosFormatOpt, InfosOpt,
    CacheDirOpt, NoCacheOpt,
    JsonOpt, KittiRootOpt, OutOpt, QuietOpt, SourceArgs, SplitOpt, VersionOpt, app, CFG_OPTIONS_HELP, cli_errors,
    parse_config_overrides,
)

ConfigOpt = Annotated[
    Optional[str],
    typer.Option("--config", "--cfg_file", "--cfg-file",
                 help="Preset name or config file (our YAML, an OpenPCDet model YAML or an mmdetection3d .py config). "
                      "Default: pcdet-nuscenes-pointpillars-multihead."),
]
_META_KEYS = ("config_name", "config_sha256", "head", "framework", "dataset", "seed", "replays", "augment", "device",
              "num_frames_assigned", "num_frames_skipped_empty", "query_dump", "positives")


@app.command("count", context_settings=EXTRA_ARGS,
             help="Count training targets (anchors, heatmap cells or queries) per class and range band. "
                  f"{SET_HELP} {CFG_OPTIONS_HELP}")
@cli_errors
def count_cmd(
    ctx: typer.Context,
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
    no_cache: NoCacheOpt = False,
    cache_dir: CacheDirOpt = None,
    db_infos: Annotated[Optional[list[Path]], typer.Option(
        "--db-infos", help="gt_sampling database info file(s) (OpenPCDet *_dbinfos_*.pkl / mmdet3d dbinfos) to draw "
                           "pasted objects from, instead of the config's DB_INFO_PATH / db_sampler.info_path or the "
                           "database rebuilt from the annotations.", show_default=False, metavar="<path>")] = None,
    class_map: Annotated[Optional[str], typer.Option(
        "--class-map", help="Map dataset class names to config class names, e.g. Car=car,Pedestrian=pedestrian "
                            "(applied before the config's class filter).", show_default=False)] = None,
    bands: BandsOpt = None,
    out: OutOpt = Path("assignaudit-out"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the augmentation replay.")] = 0,
    replays: Annotated[int, typer.Option("--replays", help="Augmented replays per frame.")] = 1,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Skip the random augmentation (filters still apply).")] = False,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda (auto = CUDA when available).")] = "auto",
    threads: Annotated[int, typer.Option(
        "--threads", help="torch intra-op threads per process (1 is fastest for count's many small ops).")] = 1,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", help="Stop after this many frames.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", help="Processes counting shards of frames (default: the number of cores); the reports are "
                          "byte-identical whatever the number (docs/scale.md).", show_default=False)] = None,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", help="Count the shards as Ray tasks: auto (the running cluster), local (start one here) or the "
                      "cluster ADDRESS; needs the [ray] extra.", show_default=False)] = None,
    only_summary: Annotated[bool, typer.Option("--only-summary", help="Write only summary.parquet (for baselines).")] = False,
    queries: Annotated[Optional[Path], typer.Option(
        "--queries", help="Query-head dump (.npz / .parquet, docs/query-dumps.md) to replay the Hungarian match; "
                          "frames are then counted without augmentation.")] = None,
    compare_config: Annotated[Optional[str], typer.Option(
        "--compare-config", help="A second config (preset or file) counted over the same frames; writes "
                                 "compare.parquet.")] = None,
    compare_pipeline: Annotated[Optional[str], typer.Option(
        "--compare-pipeline", help="With --compare-config. a: both configs see the frames replayed once through "
                                   "--config's augmentation (default); own: each replays its own augmentation with "
                                   "the same seed.")] = None,
    quality: Annotated[bool, typer.Option(
        "--quality", help="Regression view of every positive (IoU, residuals, L_IoU / L_EIoU / Focal-EIoU, "
                          "low-quality share; docs/count-families.md): summary columns and quality.parquet.")] = False,
    quality_gamma: Annotated[float, typer.Option("--quality-gamma", help="Focal-EIoU gamma (weight IoU^gamma).")] = 0.5,
    quality_low_iou: Annotated[float, typer.Option(
        "--quality-low-iou", help="Positives with BEV IoU below this are low quality.")] = 0.5,
    paa: Annotated[bool, typer.Option(
        "--paa", help="Anchor heads: PAA re-assignment (initial MaxIoU at 0.1, per-GT GMM over per-anchor scores; "
                      "docs/count-families.md).")] = False,
    paa_scores: Annotated[Optional[Path], typer.Option(
        "--paa-scores", help="With --paa: .npz of per-anchor losses (sample_token [N], anchor_loss [N, A]); "
                             "without it the IoU proxy 1 - IoU is used and the report says so.")] = None,
    paa_topk: Annotated[int, typer.Option("--paa-topk", help="With --paa: candidates per GT and level.")] = 9,
    paa_separation: Annotated[str, typer.Option(
        "--paa-separation", help="With --paa: mmdet (upstream scheme) | component (the lower-mean component).")] =
        "mmdet",
    prompts: Annotated[Optional[str], typer.Option(
        "--prompts", help="Query heads: point-prompted queries (centre | jitter); reports how often a plain "
                          "Hungarian match agrees with the prompt pairing (prompts.parquet).")] = None,
    prompt_jitter: Annotated[float, typer.Option(
        "--prompt-jitter", help="With --prompts jitter: fraction of the half size the point may move.")] = 1.0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    from assignaudit.bands import Bands
    from assignaudit.count import CountOptions, set_torch_threads
    from assignaudit.quality import QualityOptions

    q_opts = QualityOptions(gamma=quality_gamma, low_iou=quality_low_iou) if quality else None
    paa_opts = None
    prompt_opts = None
    if prompts is not None:
        from assignaudit.assign.prompt import PromptOptions

        prompt_opts = PromptOptions(mode=prompts, jitter=prompt_jitter, seed=seed)
    if paa_scores is not None and not paa:
        from assignaudit.errors import ConfigError

        raise ConfigError("--paa-scores only applies with --paa")
    if paa:
        from assignaudit.assign.paa import PaaOptions, load_paa_scores

        paa_opts = PaaOptions(topk=paa_topk, separation=paa_separation,
                              scores=load_paa_scores(paa_scores) if paa_scores is not None else None)
    if quality and compare_config is not None:
        from assignaudit.errors import ConfigError

        raise ConfigError("--quality cannot be combined with --compare-config (run count --quality on each config)")

    from assignaudit.config import load_config

    set_torch_threads(threads)  # before any torch work (docs/performance.md)

    overrides, cfg_options = parse_config_overrides(list(ctx.args))
    _check_compare_flags(compare_config, compare_pipeline, queries)
    from assignaudit.report_set import check_out_dir, locked

    check_out_dir(out)  # before any config or frame is read; the lock refuses a second run into the same --out
    ctx.with_resource(locked(out))
    cfg = load_config(config, overrides, cfg_options=cfg_options)
    if class_map is not None:
        from assignaudit.config.overrides import apply_class_map

        cfg = apply_class_map(cfg, class_map)
    if not (quiet or as_json):
        print("loading the dataset ...", file=sys.stderr, flush=True)
        if not sys.stderr.isatty():  # a CI log: a line every HEARTBEAT_S until the first counted frame
            _HEARTBEAT.start("loading the dataset")
            ctx.call_on_close(_HEARTBEAT.stop)
    source = SourceArgs(dataroot, version, split, boxes, tuple(infos or ()), infos_format, data_path, kitti_root,
                        av2_root, not no_cache, cache_dir).open(cfg)
    if not (quiet or as_json):
        from assignaudit.augment.database import gt_sampling_op

        frames = len(source) if max_frames is None else min(max_frames, len(source))
        first = "a gt_sampling database pass, then " if not no_augment and gt_sampling_op(cfg) is not None else ""
        print(f"loaded {len(source)} frame(s); counting {first}{frames} frame(s) x {replays} replay(s)",
              file=sys.stderr, flush=True)
        _HEARTBEAT.phase = "building the gt_sampling database" if first else "preparing"
    options = CountOptions(seed=seed, replays=replays, augment=not no_augment, bands=Bands.parse(bands),
                           device=device, max_frames=max_frames, db_infos=tuple(db_infos or ()),
                           workers=workers, ray=ray, quality=q_opts, paa=paa_opts, prompts=prompt_opts)
    if compare_config is not None:
        from assignaudit.compare_configs import run_compare

        cfg_b = load_config(compare_config)
        if class_map is not None:
            cfg_b = apply_class_map(cfg_b, class_map)
        from assignaudit.report_set import ReportSetWriter

        with ReportSetWriter(out, "compare") as report_set:
            result = _with_progress(quiet or as_json, lambda cb: run_compare(
                cfg, cfg_b, source, options, report_set.dir, pipeline=compare_pipeline or "a", on_progress=cb))
        result.written[:] = [report_set.final(p) for p in result.written]
        if as_json:
            payload = {"meta": {k: result.metadata.get(k) for k in ("config_a", "config_b", "pipeline", "dataset",
                                                                      "seed", "replays", "augment", "device",
                                                                      "num_frames_assigned")},
                       "compare": json.loads(result.table.to_json(orient="records")),
                       "written": [str(p) for p in result.written]}
            typer.echo(json.dumps(payload, indent=2))
            return
        _render_compare(result)
        return

    from assignaudit.count import run_count

    result = _with_progress(quiet or as_json, lambda cb: run_count(
        cfg, source, options, out, only_summary=only_summary, query_dump=queries, on_progress=cb))
    if as_json:
        payload = {"meta": {k: result.metadata.get(k) for k in _META_KEYS},
                   "counting": result.metadata.get("counting"),
                   "summary": json.loads(result.summary.to_json(orient="records")),
                   "written": [str(p) for p in result.written]}
        if "layers.parquet" in result.extra:
            payload["layers"] = json.loads(result.extra["layers.parquet"].to_json(orient="records"))
        if result.metadata.get("quality") is not None:
            payload["quality"] = result.metadata["quality"]
        typer.echo(json.dumps(payload, indent=2))
        return
    _render(result, cfg.class_names)


def _check_compare_flags(compare_config: Optional[str], compare_pipeline: Optional[str],
                         queries: Optional[Path]) -> None:
    """Flag combinations, checked before any config is read or frame counted (a bad value must not cost a run)."""
    from assignaudit.errors import ConfigError

    if compare_pipeline is not None:
        from assignaudit.compare_configs import PIPELINES

        if compare_pipeline not in PIPELINES:
            raise ConfigError(f"--compare-pipeline must be one of {', '.join(PIPELINES)}, got {compare_pipeline!r}")
        if compare_config is None:
            raise ConfigError("--compare-pipeline only applies with --compare-config B")
    if compare_config is not None and queries is not None:
        raise ConfigError("--queries cannot be combined with --compare-config (query heads are compared without a "
                          "dump)")


PROGRESS_EVERY = 100
"""Without a terminal (a CI log), one progress line per this many (frame, replay) steps, and at the end."""


HEARTBEAT_S = 30.0
"""Without a terminal, while the dataset and the gt_sampling database load (no frame counted yet): a line this often."""


class _Heartbeat:
    """A daemon thread printing ``<phase> ... (N s)`` every `HEARTBEAT_S` until stopped."""

    def __init__(self) -> None:
        self.phase = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, phase: str) -> None:
        self.phase = phase
        self._stop.clear()
        t0 = time.monotonic()

        def beat() -> None:
            while not self._stop.wait(HEARTBEAT_S):
                print(f"{self.phase} ... ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)

        self._thread = threading.Thread(target=beat, name="assignaudit-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


_HEARTBEAT = _Heartbeat()


def _log_progress(done: int, total: int) -> None:
    _HEARTBEAT.stop()  # counting has started (a no-op after the first call)
    if done % PROGRESS_EVERY == 0 or done == total:
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        print(f"counting: {done}/{total} frame replay(s){pct}", file=sys.stderr, flush=True)


def _with_progress(silent: bool, run):
    """``run(on_progress)`` with a rich progress bar on an interactive stderr, a line per `PROGRESS_EVERY` steps
    otherwise (a CI log is not silent until the end)."""
    if silent:
        return run(None)
    if not sys.stderr.isatty():
        return run(_log_progress)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("counting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("count", total=None)
        return run(lambda done, total: progress.update(task, completed=done, total=total))


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=200)


# Extra per-family columns of the terminal table: (title, summary column, format).
_FAMILY_COLUMNS = {
    "anchor": (("neg", "num_neg", "{:,.0f}"), ("ignore", "num_ignore", "{:,.0f}")),
    "center": (("neg cells", "num_neg", "{:,.0f}"), ("0<hm<1", "num_neg_reduced", "{:,.0f}"),
               ("collision", "num_gt_collision", "{:.0f}"), ("truncated", "num_gt_truncated", "{:.0f}"),
               ("clamped", "num_gt_clamped", "{:.0f}"), ("out of map", "num_gt_out_of_map", "{:.0f}"),
               ("radius p50", "radius_p50", "{:.0f}")),
    "query": (("unmatched q", "num_neg", "{:,.0f}"), ("useless", "num_gt_useless", "{:.0f}"),
              ("IoU p50", "iou_pos_p50", "{:.2f}")),
}
# With --quality (band `all`): the low-quality share of L_EIoU / Focal-EIoU and the median positive BEV IoU.
_QUALITY_COLUMNS = (("low-q share", "low_quality_share", "{:.1%}"), ("low-q focal", "low_quality_share_focal",
                                                                     "{:.1%}"),
                    ("pos IoU p50", "iou_bev_p50", "{:.2f}"))
_FAMILY_COLUMNS["fcos"] = (("neg points", "num_neg", "{:,.0f}"),)
_UNIT = {"anchor": "anchors", "center": "heatmap cells", "query": "queries", "fcos": "points"}


def _render(result, class_names) -> None:
    console = _console()
    summary = result.summary
    bands = [b for b in summary["band"].unique() if b != "all"] + ["all"]
    meta = result.metadata
    head = meta.get("head", "anchor")
    extra = _FAMILY_COLUMNS.get(head, _FAMILY_COLUMNS["anchor"])
    table = Table(
        title=escape(f"positive {_UNIT.get(head, 'targets')} / GT (GT with 0 positives) -- {meta['config_name']} "
                     f"[{head}, {meta.get('framework')}], {_dataset_label(meta['dataset'])}, "
                     f"{meta['num_frames_assigned']} frame(s) x {meta['replays']} replay(s), seed {meta['seed']}"),
        title_justify="left",
        caption=escape(f"{', '.join(t for t, _, _ in extra)}: band 'all' (every range)"),
        caption_justify="left",
    )
    table.add_column("class")
    for b in bands:
        table.add_column(b, justify="right")
    extra = _FAMILY_COLUMNS.get(head, _FAMILY_COLUMNS["anchor"])
    if meta.get("quality") is not None:
        extra = extra + _QUALITY_COLUMNS
    for title, _, _ in extra:
        table.add_column(title, justify="right")
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
        table.add_row(name, *cells, *(_fmt(fmt, allrow[col]) for _, col, fmt in extra))
    console.print(table)
    all_rows = summary[summary.band == "all"]
    no_gt = all_rows.loc[all_rows.num_gt == 0, "class"].tolist()
    if no_gt:
        console.print(f"[yellow]class(es) with no GT in this data: {', '.join(no_gt)}[/]")
    zero_total = int(summary.loc[summary.band == "all", "num_gt_zero_pos"].sum())
    if zero_total:
        console.print(f"[bold red]{zero_total} GT object(s) get no positive[/] "
                      "(see objects.parquet, column zero_pos_reason)")
    if head == "query" and meta.get("query_dump") is None:
        console.print("[yellow]no query dump: positives are K per frame (every GT matched once), negatives "
                      "Q - K in band 'all'; pass --queries DUMP to replay the match[/]")
    if meta.get("augment_note"):
        console.print(f"[yellow]{meta['augment_note']}[/]")
    if meta.get("prompts") is not None and "prompts.parquet" in result.extra:
        pr = result.extra["prompts.parquet"]
        pa_ = pr[(pr.band == "all") & (pr.num_gt > 0)]
        rates = ", ".join(f"{r['class']} {r.agreement_rate:.0%}" for _, r in pa_.iterrows())
        console.print(f"prompt agreement ({meta['prompts']['mode']}; {meta['prompts']['source']}): {rates}")
    if meta.get("paa") is not None:
        pm = meta["paa"]
        console.print(f"PAA: score = {pm['score']}; {pm['num_gt_fitted']} GT fitted, "
                      f"{pm['num_gt_too_few_candidates']} with < 2 candidates (all their positives dropped), "
                      f"{pm['num_positives_demoted']} initial positives made negative")
    if meta.get("quality") is not None:
        q = meta["quality"]
        console.print(f"quality: low-q = share of L_EIoU (and of Focal-EIoU, gamma {q['gamma']}) from positives with "
                      f"BEV IoU < {q['low_iou']}; reference box: {q['reference_box']} (quality.parquet)")
    for w in meta.get("heatmap_warnings") or ():
        console.print(f"[yellow]warning: {w}[/]")
    if meta.get("num_frames_skipped_empty"):
        console.print(f"[yellow]{meta['num_frames_skipped_empty']} frame(s) had no GT after filtering and were "
                      "skipped (training resamples them)[/]")
    for p in result.written:
        console.print(f"wrote {p}")


def _fmt(fmt: str, value) -> str:
    v = float(value)
    return "-" if math.isnan(v) else fmt.format(v)


def _render_compare(result) -> None:
    console = _console()
    meta = result.metadata
    a, b = meta["config_a"], meta["config_b"]
    t = result.table[result.table.band == "all"]
    table = Table(
        title=escape(f"A = {a['name']} [{a['head']}, {a['framework']}]  vs  B = {b['name']} [{b['head']}, "
                     f"{b['framework']}] -- {_dataset_label(meta['dataset'])}, seed {meta['seed']}, pipeline "
                     f"{meta['pipeline']} (B - A)"),
        title_justify="left",
    )
    table.add_column("class")
    cols = (("GT", "num_gt", "{:,.0f}"), ("positives", "num_pos", "{:,.0f}"), ("pos/GT", "pos_per_gt", "{:.2f}"),
            ("GT with 0 pos", "num_gt_zero_pos", "{:,.0f}"), ("negatives", "num_neg", "{:,.0f}"),
            ("ignored", "num_ignore", "{:,.0f}"))
    for title, _, _ in cols:
        table.add_column(f"{title}\nA -> B (B-A)", justify="right")
    for _, row in t.iterrows():
        cells = []
        for _, m, fmt in cols:
            va, vb, vd = _fmt(fmt, row[f"{m}_a"]), _fmt(fmt, row[f"{m}_b"]), row[f"{m}_diff"]
            if m == "num_gt_zero_pos":
                va, vb = va + _pct(row["frac_gt_zero_pos_a"]), vb + _pct(row["frac_gt_zero_pos_b"])
            d = float(vd)
            if math.isnan(d):
                cells.append(f"{va} -> {vb}")
            elif d == 0:
                cells.append(f"{va} -> {vb} [dim](0)[/]")
            else:
                style = "bold red" if (m in ("num_pos", "pos_per_gt") and d < 0) or \
                    (m == "num_gt_zero_pos" and d > 0) else "bold"
                cells.append(f"{va} -> {vb} [{style}]({_fmt('{:+,.2f}' if m == 'pos_per_gt' else '{:+,.0f}', d)})[/]")
        table.add_row(str(row["class"]), *cells)
    console.print(table)
    console.print(f"pipeline: {meta['pipeline_note']}")
    console.print(f"A sha256 {a['sha256'][:12]}, B sha256 {b['sha256'][:12]}")
    for p in result.written:
        console.print(f"wrote {p}")


def _pct(frac) -> str:
    f = float(frac)
    return "" if math.isnan(f) else f" ({100 * f:.0f}%)"


def _dataset_label(dataset: dict) -> str:
    if dataset.get("kind") == "nuscenes":
        return f"nuScenes {dataset['version']}:{dataset['split']}"
    return f"{dataset.get('kind')} {dataset.get('dataroot')}"
