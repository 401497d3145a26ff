"""Per-speaker (per call leg) normalisation of pooled encoder features: offline over all of a speaker's windows,
or causal with running statistics and a warm-up prior, which is what a live call allows.

Causal rule: after a leg's n-th scored window (that window included), the leg's mean and variance are those of its
n windows so far pooled with ``prior_windows`` pseudo-windows drawn from the training set's global statistics:

    mean_n = (k * mean_g + sum x_i) / (k + n)
    var_n  = (k * (var_g + mean_g^2) + sum x_i^2) / (k + n) - mean_n^2

so the first windows are normalised almost as with the global statistics, and the leg's own statistics take over
smoothly (at n = k they weigh half). This is the state a worker would keep per leg: n, sum x, sum x^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_PRIOR_WINDOWS = 10      # ~10 s of speech at the workers' 1 s hop before the leg's own statistics weigh half
VAR_FLOOR = 1e-6


@dataclass(frozen=True)
class GlobalStats:
    mean: np.ndarray
    var: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> GlobalStats:
        x = x.astype(np.float64)
        return cls(x.mean(0), x.var(0))


def speaker_zscore(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row z-scored with the mean and standard deviation of all rows of its group (offline: uses the
    speaker's future windows too)."""
    out = np.empty(x.shape, np.float32)
    for g in np.unique(groups):
        rows = groups == g
        xs = x[rows].astype(np.float64)
        out[rows] = (xs - xs.mean(0)) / np.sqrt(xs.var(0) + VAR_FLOOR)
    return out


def running_zscore(x: np.ndarray, prior: GlobalStats, prior_windows: float = DEFAULT_PRIOR_WINDOWS) -> np.ndarray:
    """One leg's rows (in arrival order) z-scored causally by the rule in the module docstring."""
    xs = x.astype(np.float64)
    n = np.arange(1, len(xs) + 1)[:, None]
    k = float(prior_windows)
    mean = (k * prior.mean + np.cumsum(xs, 0)) / (k + n)
    ex2 = (k * (prior.var + prior.mean ** 2) + np.cumsum(xs ** 2, 0)) / (k + n)
    var = np.maximum(ex2 - mean ** 2, VAR_FLOOR)
    return ((xs - mean) / np.sqrt(var)).astype(np.float32)


def causal_zscore(x: np.ndarray, groups: np.ndarray, order: np.ndarray, prior: GlobalStats,
                  prior_windows: float = DEFAULT_PRIOR_WINDOWS) -> np.ndarray:
    """`running_zscore` per group, the rows of each group taken in increasing ``order`` (their arrival)."""
    out = np.empty(x.shape, np.float32)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        rows = rows[np.argsort(order[rows], kind="stable")]
        out[rows] = running_zscore(x[rows], prior, prior_windows)
    return out
