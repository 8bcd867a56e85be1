"""Device-to-host copies of a frame's result tensors in one transfer.

On CUDA every ``.cpu()`` of a small tensor is a synchronisation; the assigners hand back a dozen small arrays per
frame, so `to_host` packs them into one byte buffer (each tensor viewed as bytes, concatenated on the device), copies
that once and cuts it back into numpy arrays of the original dtypes and shapes: one sync instead of one per array,
same bits. On the CPU it is ``t.numpy()`` per tensor (no copy), so CPU results are unchanged.
"""

from __future__ import annotations

import numpy as np
import torch


def to_host(*tensors: torch.Tensor, pack: bool | None = None) -> tuple[np.ndarray, ...]:
    """numpy arrays of ``tensors`` (same dtypes and shapes). ``pack``: force (True) or skip (False) the one-buffer
    copy; None packs exactly when some tensor is off the CPU."""
    if pack is None:
        pack = any(t.device.type != "cpu" for t in tensors)
    if not pack:
        return tuple(t.detach().cpu().numpy() for t in tensors)
    parts = [t.detach().contiguous().reshape(-1).view(torch.uint8) for t in tensors]
    buf = torch.cat(parts).cpu().numpy() if parts else np.zeros(0, np.uint8)
    out, off = [], 0
    for t, p in zip(tensors, parts):
        n = p.numel()
        dtype = torch.empty(0, dtype=t.dtype).numpy().dtype
        out.append(buf[off:off + n].copy().view(dtype).reshape(tuple(t.shape)))
        off += n
    return tuple(out)
