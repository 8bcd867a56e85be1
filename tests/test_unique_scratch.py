"""The scratch-array unique used for many candidate pairs equals ``torch.unique(return_inverse=True)`` exactly, on
both of its paths (numpy on the CPU; the torch path that runs on other devices, exercised here on CPU tensors), and
leaves its scratch clean for the next frame."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from assignaudit.assign.assigner import unique_scratch, unique_with_scratch


def _torch_scratch(n: int) -> torch.Tensor:
    return torch.full((n,), -1, dtype=torch.int64)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 500), st.lists(st.integers(0, 10**6), min_size=0, max_size=300))
def test_both_paths_equal_torch_unique(n: int, raw: list[int]) -> None:
    cand = torch.tensor([v % n for v in raw], dtype=torch.int64)
    want_u, want_i = torch.unique(cand, return_inverse=True)
    for scratch in (unique_scratch(n, torch.device("cpu")), _torch_scratch(n)):
        for _ in range(2):  # a second frame on the same scratch sees a clean scratch
            u, i = unique_with_scratch(cand, scratch)
            assert u.dtype == i.dtype == torch.int64
            assert torch.equal(u, want_u) and torch.equal(i, want_i)
            assert torch.equal(u[i], cand)
        if isinstance(scratch, tuple):
            assert not scratch[0].any()
        else:
            assert bool((scratch == -1).all())


def test_cpu_scratch_is_numpy_and_other_devices_torch() -> None:
    seen, slot = unique_scratch(7, torch.device("cpu"))
    assert seen.dtype == np.bool_ and slot.dtype == np.int64 and seen.shape == slot.shape == (7,)
