"""Compare JSON documents: structure, keys, strings and ints exactly; floats to a stated tolerance."""

from __future__ import annotations

import pytest


def assert_same_json(got, want, path="$", rel=1e-12, abs_=1e-12):
    """Structure, keys, strings and ints exactly; floats to a stated tolerance.

    The generator's 3x3 rotation products go through the CPU's BLAS kernel, whose last-digit rounding differs between
    kernels (OPENBLAS_CORETYPE); a byte-for-byte comparison would test the BLAS build, not the generator."""
    if isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want, rel=rel, abs=abs_), path
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), path
        for k in want:
            assert_same_json(got[k], want[k], f"{path}.{k}", rel, abs_)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_json(g, w, f"{path}[{i}]", rel, abs_)
    else:
        assert got == want, path
