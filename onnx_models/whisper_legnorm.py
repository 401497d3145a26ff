"""Per-speaker (per call leg) normalisation of pooled encoder features: offline over all of a speaker's windows,
or causal with running statistics and a warm-up prior, which is what a live call allows.

Causal rule: a leg's window is normalised with the mean and variance of the n windows the leg had before it,
pooled with ``prior_windows`` (k) pseudo-windows of the training set's global statistics:

    mean_n = (k * mean_g + sum_{i<=n} x_i) / (k + n)
    var_n  = (k * (var_g + mean_g^2) + sum_{i<=n} x_i^2) / (k + n) - mean_n^2

so a leg's first window is normalised with the global statistics, and the leg's own take over smoothly (at n = k
they weigh half). The current window is left out so that one model call per window suffices: the model returns
the window's pooled features beside its scores, and the worker adds them to the leg's state (n, sum x, sum x^2)
afterwards.
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


def running_zscore(x: np.ndarray, prior: GlobalStats, prior_windows: float = DEFAULT_PRIOR_WINDOWS,
                   freeze_after: int | None = None, center: bool = True) -> np.ndarray:
    """One leg's rows (in arrival order) z-scored causally by the rule in the module docstring. Variants (for
    `whisper_legs`): ``freeze_after`` n stops updating the statistics after the leg's first n windows (a call's
    opening sets them); ``center=False`` divides by the leg's standard deviation but subtracts the global mean, so
    a sustained shift of the leg's mean is kept."""
    xs = x.astype(np.float64)
    n = np.arange(len(xs))                                           # windows before this one
    if freeze_after is not None:
        n = np.minimum(n, freeze_after)
    k = float(prior_windows)
    zero = np.zeros((1, xs.shape[1]))
    sum1 = np.concatenate([zero, np.cumsum(xs, 0)])[n]
    sum2 = np.concatenate([zero, np.cumsum(xs ** 2, 0)])[n]
    n = n[:, None]
    mean = (k * prior.mean + sum1) / (k + n)
    ex2 = (k * (prior.var + prior.mean ** 2) + sum2) / (k + n)
    var = np.maximum(ex2 - mean ** 2, VAR_FLOOR)
    return ((xs - (mean if center else prior.mean)) / np.sqrt(var)).astype(np.float32)


def causal_zscore(x: np.ndarray, groups: np.ndarray, order: np.ndarray, prior: GlobalStats,
                  prior_windows: float = DEFAULT_PRIOR_WINDOWS, **variant) -> np.ndarray:
    """`running_zscore` per group, the rows of each group taken in increasing ``order`` (their arrival)."""
    out = np.empty(x.shape, np.float32)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        rows = rows[np.argsort(order[rows], kind="stable")]
        out[rows] = running_zscore(x[rows], prior, prior_windows, **variant)
    return out


class LegState:
    """What a worker keeps per call leg for the causal rule: the count, sum and sum of squares of the pooled
    features of the leg's windows so far. ``stats()`` is the [2, dim] (mean, variance) to normalise the next window
    with (the accurate profile's ``leg_stats`` input); ``add(x)`` after that window is scored."""

    def __init__(self, prior: GlobalStats, prior_windows: float = DEFAULT_PRIOR_WINDOWS):
        self.prior, self.k = prior, float(prior_windows)
        self.n = 0
        self.sum = np.zeros_like(prior.mean, dtype=np.float64)
        self.sum_sq = np.zeros_like(prior.mean, dtype=np.float64)

    def stats(self) -> np.ndarray:
        mean = (self.k * self.prior.mean + self.sum) / (self.k + self.n)
        ex2 = (self.k * (self.prior.var + self.prior.mean ** 2) + self.sum_sq) / (self.k + self.n)
        return np.stack([mean, np.maximum(ex2 - mean ** 2, VAR_FLOOR)]).astype(np.float32)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        self.n += 1
        self.sum += x
        self.sum_sq += x ** 2
