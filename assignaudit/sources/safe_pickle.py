"""Load the frameworks' pickles (info, dbinfos and result files) without running code from them.

A pickle names the callables that rebuild its objects (``GLOBAL module name`` opcodes) and the loader calls them:
a file that names ``os.system`` runs a shell command at load time. OpenPCDet's and mmdetection3d's ``create_data``
and ``test`` scripts write plain containers, so `safe_load` resolves only the globals such files are made of and
refuses every other one with a `DataError` (one line, exit 2) before anything is called.

Admitted (``module``, ``name``) globals:

* builtins that build plain values: ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``, ``bytearray``,
  ``slice``, ``range``, ``complex``, ``int``, ``float``, ``bool``, ``str``, ``bytes``, ``object`` (the latter
  only as ``copyreg._reconstructor``'s base) and ``collections.OrderedDict`` / ``defaultdict``;
* ``_codecs.encode``: protocol-2 pickles store ``bytes`` (numpy's array buffers) through it;
* ``copyreg._reconstructor`` applied to admitted classes only;
* numpy: ``ndarray``, ``dtype``, ``core.multiarray._reconstruct``, ``core.multiarray.scalar``,
  ``core.numeric._frombuffer`` (and the same under numpy 2's ``numpy._core``), so arrays, dtypes and numpy
  scalars (``np.float32(1.0)`` in a KITTI info) load;
* ``pathlib.PosixPath`` / ``PurePosixPath`` / ``WindowsPath`` / ``PureWindowsPath`` (some converters store paths).

What the real files contain (checked against the writers: OpenPCDet ``kitti_dataset.py::get_infos``,
``waymo_utils.py::process_single_sequence``, ``nuscenes_utils.py::fill_trainval_infos``, mmdet3d
``tools/dataset_converters/update_infos_to_v2.py``): dicts, lists, str, int, float, numpy arrays and numpy scalars,
nothing else. Anything outside the list, however harmless, is refused rather than guessed at: a user with such a
file can convert it to plain containers first.
"""

from __future__ import annotations

import collections
import copyreg
import io
import pathlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from assignaudit.errors import DataError

_BUILTINS = {
    "dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "bytearray": bytearray,
    "slice": slice, "range": range, "complex": complex, "int": int, "float": float, "bool": bool, "str": str,
    "bytes": bytes, "object": object,
}


def _numpy_globals() -> dict[tuple[str, str], Any]:
    from numpy.core import multiarray, numeric

    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for prefix in ("numpy.core", "numpy._core"):  # numpy 2 writes numpy._core.*; numpy 1.26 can read both
        table[(f"{prefix}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{prefix}.multiarray", "scalar")] = multiarray.scalar
        table[(f"{prefix}.numeric", "_frombuffer")] = numeric._frombuffer
    # dtype classes pickled by numpy >= 1.25 (``numpy.dtypes.Float32DType``) reconstruct through np.dtype.
    for name in dir(getattr(np, "dtypes", None) or ()):
        if name.endswith("DType"):
            table[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return table


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import _codecs

    table: dict[tuple[str, str], Any] = {("builtins", k): v for k, v in _BUILTINS.items()}
    table.update({("__builtin__", k): v for k, v in _BUILTINS.items()})  # protocol-2 pickles written by Python 2
    table.update({
        ("_codecs", "encode"): _codecs.encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("copyreg", "_reconstructor"): _safe_reconstructor,
        ("copy_reg", "_reconstructor"): _safe_reconstructor,
    })
    for cls in ("PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath", "Path"):
        table[("pathlib", cls)] = getattr(pathlib, cls)
    table.update(_numpy_globals())
    return table


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` restricted to the admitted classes (it calls ``base.__new__(cls)``)."""
    admitted = set(_ALLOWED.values())
    if cls not in admitted or base not in admitted:
        raise pickle.UnpicklingError(f"copyreg._reconstructor of {getattr(cls, '__name__', cls)!r} is not allowed")
    return copyreg._reconstructor(cls, base, state)


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(module, name) from None


class _Refused(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


def safe_loads(data: bytes, what: str = "pickle") -> Any:
    """`safe_load` on bytes; ``what`` names the data in error messages."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _Refused as err:
        raise DataError(f"{what}: refused to load: it references {err.module}.{err.name}, which an info, dbinfos "
                        "or result file never contains (pickles can run code; only plain containers, numpy "
                        "arrays and scalars are admitted)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, UnicodeDecodeError, OverflowError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, EOFError) or "truncated" in detail or "ran out of input" in detail.lower():
            detail = "the file is truncated"
        raise DataError(f"{what}: not a readable pickle ({detail})") from None


def safe_load(path: str | Path) -> Any:
    """Load the pickle at ``path`` through the restricted unpickler (module docstring).

    `DataError` (one line) if the file is missing, truncated, not a pickle, or references anything outside the
    admitted globals; in that case nothing from the file has been called.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pickle file not found: {path}" if not path.is_dir() else f"{path} is a directory, "
                        "expected a .pkl file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    # latin1: numpy arrays pickled under Python 2 (old KITTI infos) decode their byte buffers that way.
    return safe_loads(data, str(path))
