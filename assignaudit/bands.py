"""Range bands by BEV distance from the LiDAR origin (not an upstream concept; recorded in report metadata)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Sequence

import numpy as np

from assignaudit.errors import ConfigError

DEFAULT_BAND_EDGES_M: Final = (0.0, 20.0, 30.0, 40.0, 50.0)
ALL_BANDS: Final = "all"


@dataclass(frozen=True)
class Bands:
    """Half-open bands ``[e_i, e_{i+1})``; the last band is open-ended (``50+``)."""

    edges_m: tuple[float, ...] = DEFAULT_BAND_EDGES_M

    def __post_init__(self) -> None:
        e = self.edges_m
        if len(e) < 1 or any(not np.isfinite(x) for x in e) or any(b <= a for a, b in zip(e, e[1:])):
            raise ConfigError(f"band edges must be finite and strictly increasing, got {list(e)}")
        if e[0] != 0:
            raise ConfigError(f"band edges must start at 0, got {list(e)}")

    @classmethod
    def parse(cls, text: str | Sequence[float] | None) -> "Bands":
        """``"0,20,30,40,50"`` -> Bands."""
        if text is None:
            return cls()
        if isinstance(text, str):
            try:
                edges = tuple(float(x) for x in text.split(",") if x.strip() != "")
            except ValueError:
                raise ConfigError(f"--bands expects comma-separated metres like 0,20,30,40,50, got {text!r}") from None
        else:
            edges = tuple(float(x) for x in text)
        return cls(edges)

    @property
    def names(self) -> list[str]:
        e = self.edges_m
        fmt = lambda v: f"{v:g}"  # noqa: E731
        return [f"{fmt(a)}-{fmt(b)}" for a, b in zip(e, e[1:])] + [f"{fmt(e[-1])}+"]

    @property
    def lows(self) -> list[float]:
        return list(self.edges_m)

    @property
    def highs(self) -> list[float]:
        return list(self.edges_m[1:]) + [float("inf")]

    def __len__(self) -> int:
        return len(self.edges_m)

    def index(self, dist_m: np.ndarray) -> np.ndarray:
        """int64 band index for each distance (``searchsorted`` on the edges; distances are >= 0)."""
        idx = np.searchsorted(np.asarray(self.edges_m), np.asarray(dist_m, dtype=np.float64), side="right") - 1
        return np.clip(idx, 0, len(self.edges_m) - 1)
