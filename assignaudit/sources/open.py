"""Pick and open the dataset source from the CLI's source options.

Each kind of dataset is one module of `assignaudit.sources` (``nuscenes``, ``table``, ``infos`` for the
frameworks' info files, ``kitti``, ``av2``); this module only picks one. Defaults, in order:

* ``--boxes FILE`` -> `TableSource` (cannot be combined with the nuScenes options).
* ``--infos FILE...`` / ``--data-path DIR`` -> `assignaudit.sources.infos.open_infos`.
* ``--kitti-root DIR`` -> `assignaudit.sources.kitti.KittiSource`; ``--av2-root DIR`` ->
  `assignaudit.sources.av2.AV2Source` (split default ``train``).
* no ``--dataroot`` -> the bundled fixture: `FIXTURE_DATAROOT`, version `FIXTURE_VERSION` (``v1.0-mini``),
  split `FIXTURE_SPLIT` (``fixture_all``, all four fixture scenes). ``--version``/``--split`` still apply.
* ``--dataroot`` without ``--version`` -> the one version directory under it; ambiguous (several) or none is an
  error asking for ``--version``.
* ``--dataroot`` without ``--split`` -> ``val`` for ``*trainval``, ``mini_val`` for ``*mini``, ``test`` for
  ``*test`` (the devkit's evaluation splits for that version); other versions need ``--split``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from assignaudit.errors import DataError
from assignaudit.sources.base import BoxSource

if TYPE_CHECKING:
    from assignaudit.config.model import DetectorConfig

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


SOURCE_KINDS = ("nuscenes", "table", "infos", "kitti", "av2")


def open_source(
    dataroot: str | Path | None = None,
    version: str | None = None,
    split: str | None = None,
    boxes: str | Path | None = None,
    *,
    infos: Sequence[str | Path] = (),
    infos_format: str | None = None,
    data_path: str | Path | None = None,
    kitti_root: str | Path | None = None,
    av2_root: str | Path | None = None,
    config: "DetectorConfig | None" = None,
    verbose: bool = False,
) -> BoxSource:
    """Open the source the options describe (see the module docstring for the defaults).

    One source per run: ``--boxes``, ``--infos``/``--data-path`` (framework info files; ``config`` says which file
    is the train split when only ``--data-path`` is given), ``--kitti-root``, ``--av2-root``, or nuScenes
    (``--dataroot``, default the bundled fixture). ``--version`` is nuScenes-only; ``--split`` applies to every
    source that has splits.
    """
    infos = tuple(Path(p) for p in infos)
    chosen = [flag for flag, given in (("--boxes", boxes is not None), ("--infos/--data-path", bool(infos) or
                                                                          data_path is not None),
                                       ("--kitti-root", kitti_root is not None), ("--av2-root", av2_root is not None),
                                       ("--dataroot", dataroot is not None)) if given]
    if len(chosen) > 1:
        raise DataError(f"{chosen[0]} cannot be combined with {chosen[1]} (give one dataset source)")
    if infos_format is not None and not (infos or data_path is not None):
        raise DataError("--infos-format applies only with --infos or --data-path")
    if chosen and chosen[0] != "--dataroot" and version is not None:
        raise DataError(f"--version is for nuScenes (--dataroot); it does not apply with {chosen[0]}")
    if boxes is not None:
        if split is not None:
            raise DataError("--boxes cannot be combined with --split (a box table has no splits)")
        from assignaudit.sources.table import TableSource

        return TableSource(boxes)
    if infos or data_path is not None:
        from assignaudit.sources.infos import open_infos

        return open_infos(infos, infos_format=infos_format, data_path=data_path, split=split, config=config)
    if kitti_root is not None:
        from assignaudit.sources.kitti import KittiSource

        return KittiSource(kitti_root, split or "train")
    if av2_root is not None:
        from assignaudit.sources.av2 import AV2Source

        return AV2Source(av2_root, split or "train")

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
