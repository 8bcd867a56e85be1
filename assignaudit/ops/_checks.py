"""Input validation shared by the ops: one clear line naming the offending argument (DataError)."""

from __future__ import annotations

import torch

from assignaudit.errors import DataError


def check_boxes(name: str, boxes: torch.Tensor, min_cols: int = 7) -> None:
    """Raise `DataError` unless ``boxes`` is a floating ``Tensor[N, >= min_cols]``."""
    if not isinstance(boxes, torch.Tensor):
        raise DataError(f"{name}: expected a torch.Tensor of boxes, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] < min_cols:
        raise DataError(
            f"{name}: expected boxes of shape [N, {min_cols}+] (x, y, z, dx, dy, dz, yaw, ...), "
            f"got {list(boxes.shape)}"
        )
    if not boxes.is_floating_point():
        raise DataError(f"{name}: expected a floating-point tensor, got {boxes.dtype}")


def check_pair(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor, min_cols: int = 7,
               aligned: bool = False) -> None:
    """Check both box tensors; with ``aligned`` also require equal row counts. Dtype and device must match."""
    check_boxes(name_a, a, min_cols)
    check_boxes(name_b, b, min_cols)
    if a.dtype != b.dtype:
        raise DataError(f"{name_a} and {name_b} have different dtypes ({a.dtype} vs {b.dtype}); convert one first")
    if a.device != b.device:
        raise DataError(f"{name_a} and {name_b} are on different devices ({a.device} vs {b.device})")
    if aligned and a.shape[0] != b.shape[0]:
        raise DataError(
            f"{name_a} and {name_b} must have the same number of rows for an aligned op, "
            f"got {a.shape[0]} and {b.shape[0]}"
        )


def check_scores(name: str, scores: torch.Tensor, n: int) -> None:
    """Raise `DataError` unless ``scores`` is a ``Tensor[n]``."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 1 or scores.shape[0] != n:
        shape = list(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise DataError(f"{name}: expected a tensor of shape [{n}] (one per box), got {shape}")
