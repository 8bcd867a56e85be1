"""The typer application and what every command shares: error handling and option aliases.

Exit codes (stable; CI depends on them): 0 ok, 1 gate violated, 2 usage/config/input error (also a report that cannot
be written), 3 unexpected internal error (a bug: one ``error: internal error ...`` line; the traceback with
``--debug`` or ``ASSIGNAUDIT_DEBUG=1``), 130 SIGINT (Ctrl-C), 143 SIGTERM. Usage errors of the argument parser are
one ``error:`` line with a ``--help`` hint, like every other error.
Domain code raises `assignaudit.errors.AssignAuditError`; only this layer turns it into an exit code.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Optional, TypeVar

import typer
from typer import _click as click
from typer.core import TyperGroup

from assignaudit import __version__
from assignaudit.errors import AssignAuditError

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
DEBUG_ENV = "ASSIGNAUDIT_DEBUG"


class Interrupted(BaseException):
    """SIGTERM (or SIGINT) received: unwinds like KeyboardInterrupt, so staging folders and temp files are removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


def _usage_line(err: "click.ClickException") -> str:
    ctx = getattr(err, "ctx", None)
    message = " ".join(err.format_message().split())
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else " (see --help)"
    return f"error: {message}{hint}"


class _OneLineErrors(TyperGroup):
    """Parser errors (a bad value, an unknown flag, a missing argument) as one ``error:`` line, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                              **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            typer.echo(err.format_message())
            rv = EXIT_USAGE
        except click.ClickException as err:
            typer.echo(_usage_line(err), err=True)
            rv = err.exit_code
        except typer.Abort:
            typer.echo("interrupted: no report written", err=True)
            rv = EXIT_SIGINT
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


app = typer.Typer(
    name="assignaudit",
    cls=_OneLineErrors,
    help="Audit how 3D detectors turn ground truth into training targets (positives, negatives, ignores).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: option names never cut at 80 columns, no metavar on flags
)

F = TypeVar("F", bound=Callable)


def fail(message: str, code: int = EXIT_USAGE) -> "typer.Exit":
    """Print ``error: message`` as one line on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _interrupted(code: int, committed_before: int) -> "typer.Exit":
    from assignaudit.report_set import committed

    if len(committed) > committed_before:
        typer.echo(f"interrupted: the report in {committed[-1]} was complete before the signal", err=True)
    else:
        typer.echo("interrupted: no report written", err=True)
    return typer.Exit(code)


def cli_errors(func: F) -> F:
    """Turn user-input errors into one stderr line and exit code 2 (never a traceback), SIGINT / SIGTERM into one
    line and 130 / 143 (the report set being written is dropped), anything unexpected into one line and 3."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from assignaudit.report_set import committed

        before = len(committed)
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_interrupted) if main_thread else None
        try:
            return func(*args, **kwargs)
        except AssignAuditError as err:
            raise fail(str(err).splitlines()[0] if str(err) else err.__class__.__name__, err.exit_code) from None
        except KeyboardInterrupt:
            raise _interrupted(EXIT_SIGINT, before) from None
        except Interrupted as err:
            raise _interrupted(EXIT_SIGINT if err.signum == signal.SIGINT else EXIT_SIGTERM, before) from None
        except (typer.Exit, click.ClickException, typer.Abort, BrokenPipeError):
            raise  # (a closed stdout, e.g. `| head`, is handled by typer: exit 1, no message)
        except Exception as err:
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            text = str(err).splitlines()[0] if str(err) else ""
            raise fail(f"internal error ({err.__class__.__name__}{': ' + text if text else ''}); this is a bug: "
                       f"rerun with --debug (or {DEBUG_ENV}=1) for the traceback and report it",
                       EXIT_INTERNAL) from None
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"assignaudit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Show the full traceback of an unexpected error (or set {DEBUG_ENV}=1).")
    ] = False,
) -> None:
    """assignaudit: count positives/negatives/ignores per class and range band before you train."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


# ---- option aliases shared by the commands (defined once) ------------------------------------------------------------
DatarootOpt = Annotated[
    Optional[Path],
    typer.Option("--dataroot", help="nuScenes dataroot (default: the bundled fixture).", show_default=False),
]
VersionOpt = Annotated[
    Optional[str], typer.Option("--version", "--nusc-version", help="nuScenes version, e.g. v1.0-mini.")
]
SplitOpt = Annotated[
    Optional[str],
    typer.Option("--split", "--eval_set", "--eval-set",
                 help="Devkit split (train, val, mini_train, ...) or a name from splits.json."),
]
BoxesOpt = Annotated[
    Optional[Path],
    typer.Option("--boxes", help="A generic Parquet/CSV box table instead of nuScenes."),
]
InfosOpt = Annotated[
    Optional[list[Path]],
    typer.Option("--infos", help="A framework info file (OpenPCDet *_infos_*.pkl or mmdetection3d >= 1.1 v2 infos); "
                                 "repeat for several.", show_default=False, metavar="<path>"),
]
InfosFormatOpt = Annotated[
    Optional[str],
    typer.Option("--infos-format", help="Force the info-file format instead of detecting it from the content "
                                        "(e.g. pcdet-kitti, pcdet-waymo, mmdet3d).", show_default=False),
]
DataPathOpt = Annotated[
    Optional[Path],
    typer.Option("--data-path", help="The framework's data directory (DATA_PATH / data_root): the train infos named "
                                     "by --config are read from it.", show_default=False),
]
KittiRootOpt = Annotated[
    Optional[Path],
    typer.Option("--kitti-root", help="Raw KITTI object dataset (training/label_2, training/calib, ImageSets).",
                 show_default=False),
]
Av2RootOpt = Annotated[
    Optional[Path],
    typer.Option("--av2-root", help="Argoverse 2 sensor dataset root (<split>/<log>/annotations.feather).",
                 show_default=False),
]


@dataclass(frozen=True)
class SourceArgs:
    """The dataset-source options of a command, passed on to `assignaudit.sources.open.open_source`."""

    dataroot: Optional[Path] = None
    version: Optional[str] = None
    split: Optional[str] = None
    boxes: Optional[Path] = None
    infos: tuple[Path, ...] = ()
    infos_format: Optional[str] = None
    data_path: Optional[Path] = None
    kitti_root: Optional[Path] = None
    av2_root: Optional[Path] = None
    cache: bool = True
    """``--no-cache`` sets it False: the frame cache (`assignaudit.sources.cache`) is neither read nor written."""
    cache_dir: Optional[Path] = None

    def open(self, config=None):
        from assignaudit.sources.cache import open_cached_source

        return open_cached_source(cache=self.cache, cache_dir=self.cache_dir, dataroot=self.dataroot,
                                  version=self.version, split=self.split, boxes=self.boxes, infos=self.infos,
                                  infos_format=self.infos_format, data_path=self.data_path,
                                  kitti_root=self.kitti_root, av2_root=self.av2_root, config=config)


NoCacheOpt = Annotated[bool, typer.Option(
    "--no-cache", help="Neither read nor write the frame cache (docs/scale.md); the dataset is parsed from scratch.")]
CacheDirOpt = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="Frame cache directory (default $ASSIGNAUDIT_CACHE_DIR, else ~/.cache/assignaudit).",
    show_default=False)]

BandsOpt = Annotated[
    Optional[str], typer.Option("--bands", help="BEV range band edges in metres, e.g. 0,20,30,40,50.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of a table.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
OutOpt = Annotated[Path, typer.Option("--out", "--output-dir", help="Report directory.")]


SET_HELP = "Override a config key: --set KEY VALUE (repeatable; OpenPCDet dotted keys, e.g. MODEL.DENSE_HEAD...)."
CFG_OPTIONS_HELP = ("mmdetection3d .py configs: --cfg-options KEY=VALUE [KEY=VALUE ...] (mmengine DictAction syntax, "
                    "e.g. --cfg-options model.pts_bbox_head.anchor_generator.rotations=[0] "
                    "model.train_cfg.pts.assigner.pos_iou_thr=0.5).")
CFG_OPTIONS_FLAGS = ("--cfg-options", "--cfg_options")
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


@dataclass(frozen=True)
class ConfigArgs:
    """The config-related raw tokens of a command: positionals, ``--set`` pairs and ``--cfg-options`` strings."""

    positionals: list[str]
    sets: list[tuple[str, str]]
    cfg_options: list[str]


def split_config_args(tokens: list[str]) -> ConfigArgs:
    """Split raw tokens into positionals, ``--set KEY VALUE`` pairs and ``--cfg-options KEY=VALUE ...`` strings.

    typer cannot declare OpenPCDet's two-value ``--set`` nor mmdet3d's ``--cfg-options`` (argparse ``nargs='+'``), so
    commands take the raw tokens. ``--set KEY=VALUE`` is accepted too (keys never contain '='). ``--cfg-options``
    (or ``--cfg_options``) takes every following ``KEY=VALUE`` token, as mmdet3d's tools do; the first token without
    '=' (or starting with '-') ends it, so a positional may follow. ``--cfg-options=KEY=VALUE`` is one option. Any
    other option is a usage error.
    """
    from assignaudit.errors import ConfigError

    out = ConfigArgs([], [], [])
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--set":
            if i + 1 < len(tokens) and "=" in tokens[i + 1]:
                key, value = tokens[i + 1].split("=", 1)
                out.sets.append((key, value))
                i += 2
                continue
            if i + 2 >= len(tokens):
                raise ConfigError("--set needs a KEY and a VALUE, e.g. --set anchors.0.matched_threshold 0.7")
            out.sets.append((tokens[i + 1], tokens[i + 2]))
            i += 3
            continue
        flag, eq, inline = tok.partition("=")
        if flag in CFG_OPTIONS_FLAGS:
            if eq:
                out.cfg_options.append(inline)
                i += 1
                continue
            j = i + 1
            while j < len(tokens) and "=" in tokens[j] and not tokens[j].startswith("-"):
                out.cfg_options.append(tokens[j])
                j += 1
            if j == i + 1:
                raise ConfigError(f"{flag} needs KEY=VALUE arguments, e.g. {flag} model.train_cfg.pts.assigner."
                                  "pos_iou_thr=0.5")
            i = j
            continue
        if tok.startswith("-") and len(tok) > 1:
            raise ConfigError(f"unknown option {tok!r} (see --help)")
        out.positionals.append(tok)
        i += 1
    return out


def split_set_overrides(tokens: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Positionals and ``--set KEY VALUE`` pairs (OpenPCDet's spelling, which typer cannot declare), for commands that
    do not take ``--cfg-options`` (use `split_config_args` for those)."""
    from assignaudit.errors import ConfigError

    args = split_config_args(tokens)
    if args.cfg_options:
        raise ConfigError("--cfg-options is not supported by this command")
    return args.positionals, args.sets


def parse_set_overrides(extra_args: list[str]) -> list[tuple[str, str]]:
    """The ``--set`` pairs of a command that takes no positional argument."""
    from assignaudit.errors import ConfigError

    positionals, pairs = split_set_overrides(extra_args)
    if positionals:
        raise ConfigError(f"unexpected argument {positionals[0]!r} (see --help)")
    return pairs


def parse_config_overrides(extra_args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``(--set pairs, --cfg-options strings)`` of a command that takes no positional argument; pass them on as
    ``load_config(config, pairs, cfg_options=options)``."""
    from assignaudit.errors import ConfigError

    args = split_config_args(extra_args)
    if args.positionals:
        raise ConfigError(f"unexpected argument {args.positionals[0]!r} (see --help)")
    return args.sets, args.cfg_options


def main() -> None:
    """Console-script entry point."""
    from assignaudit.cli import app as _registered  # noqa: F401  (imports register the commands)

    try:
        app()
    except AssignAuditError as err:  # raised outside a decorated command (e.g. in a callback)
        typer.echo(f"error: {err}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        typer.echo("interrupted: no report written", err=True)
        sys.exit(EXIT_SIGINT)
    except Interrupted as err:
        typer.echo("interrupted: no report written", err=True)
        sys.exit(EXIT_SIGINT if err.signum == signal.SIGINT else EXIT_SIGTERM)
