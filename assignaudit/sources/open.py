"""Pick and open the dataset source from the CLI's ``--dataroot/--version/--split/--boxes`` options.

Defaults, in order:

* ``--boxes FILE`` -> `TableSource` (cannot be combined with the nuScenes options).
* no ``--dataroot`` -> the bundled fixture: `FIXTURE_DATAROOT`, version `FIXTURE_VERSION` (``v1.0-mini``),
  split `FIXTURE_SPLIT` (``fixture_all``, all four fixture scenes). ``--version``/``--split`` still apply.
* ``--dataroot`` without ``--version`` -> the one version directory under it; ambiguous (several) or none is an
  error asking for ``--version``.
* ``--dataroot`` without ``--split`` -> ``val`` for ``*trainval``, ``mini_val`` for ``*mini``, ``test`` for
  ``*test`` (the devkit's evaluation splits for that version); other versions need ``--split``.
"""

from __future__ import annotations

from pathlib import Path

from assignaudit.errors import DataError
from assignaudit.sources.base import BoxSource

FIXTURE_DATAROOT: Path = Path(__file__).resolve().parents[1] / "data" / "nuscenes"
FIXTURE_VERSION = "v1.0-mini"
FIXTURE_SPLIT = "fixture_all"

_DEFAULT_SPLIT_BY_SUFFIX = (("trainval", "val"), ("mini", "mini_val"), ("test", "test"))


def default_split(version: str) -> str:
    """The evaluation split used when ``--split`` is not given for ``version``; `DataError` if there is none."""
    for suffix, split in _DEFAULT_SPLIT_BY_SUFFIX:
        if version.endswith(suffix):
            return split
    raise DataError(f"no default split for version {version!r}: pass --split")


def open_source(
    dataroot: str | Path | None = None,
    version: str | None = None,
    split: str | None = None,
    boxes: str | Path | None = None,
    *,
    verbose: bool = False,
) -> BoxSource:
    """Open the source the options describe (see the module docstring for the defaults)."""
    if boxes is not None:
        if dataroot is not None or version is not None or split is not None:
            raise DataError("--boxes cannot be combined with --dataroot/--version/--split")
        from assignaudit.sources.table import TableSource

        return TableSource(boxes)

    from assignaudit.sources.nuscenes import NuScenesSource, available_versions

    if dataroot is None:
        return NuScenesSource(FIXTURE_DATAROOT, version or FIXTURE_VERSION, split or FIXTURE_SPLIT, verbose=verbose)

    root = Path(dataroot)
    if not root.is_dir():
        raise DataError(f"nuScenes dataroot not found: {root}")
    if version is None:
        found = available_versions(root)
        if len(found) != 1:
            raise DataError(
                f"pass --version: {root} has "
                + (f"several versions ({', '.join(found)})" if found else "no version directory with sample.json")
            )
        version = found[0]
    return NuScenesSource(root, version, split or default_split(version), verbose=verbose)
