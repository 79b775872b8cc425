"""Small random-draw helpers shared by the simulator's modules (one definition, identical draws)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def choice_by_weights(rng: np.random.Generator, weights: Mapping[str, float], size: int) -> np.ndarray:
    """`size` keys drawn with probabilities proportional to their weights (object array)."""
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=size, p=p / p.sum())]


def pick_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of an (n, k) matrix of unnormalised weights: column indices."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), probs.shape[1] - 1)


def lag_days(rng: np.random.Generator, n: int, lag: tuple[int, int]) -> np.ndarray:
    """Uniform integer day lags in [lag[0], lag[1]] as timedelta64[D]."""
    return rng.integers(lag[0], lag[1] + 1, n).astype("timedelta64[D]")


def lognormal(rng: np.random.Generator, median: float, logsd: float, size: int) -> np.ndarray:
    """LN(median, log-sd) of simulation.md §7.0."""
    return median * np.exp(logsd * rng.standard_normal(size))
