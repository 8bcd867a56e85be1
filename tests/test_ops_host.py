"""`assignaudit.ops.host.to_host`: the packed one-buffer copy (the CUDA path, forced here on the CPU) gives the same
dtypes, shapes and bits as one ``.numpy()`` per tensor."""

import numpy as np
import torch

from assignaudit.ops.host import to_host


def test_packed_copy_equals_per_tensor_numpy():
    g = torch.Generator().manual_seed(0)
    ts = (torch.randint(-5, 5, (7,), generator=g), torch.rand(3, 4, generator=g),
          torch.rand(5, generator=g) > 0.5, torch.zeros(0, dtype=torch.int64), torch.rand(2, 3, generator=g).double(),
          torch.tensor([float("nan"), -0.0, float("inf")]), torch.arange(6).view(2, 3)[:, 1:])  # last: not contiguous
    packed, plain = to_host(*ts, pack=True), to_host(*ts, pack=False)
    assert len(packed) == len(ts)
    for p, q, t in zip(packed, plain, ts):
        assert p.dtype == q.dtype and p.shape == q.shape == tuple(t.shape)
        assert p.tobytes() == q.tobytes()
    assert to_host() == ()
    assert np.signbit(packed[5][1])  # -0.0 kept bit for bit
