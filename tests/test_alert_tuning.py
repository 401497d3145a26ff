"""Platt scaling for the alert evidence (stream.alert_tuning.platt): the penalised maximum-likelihood fit, also on
the over-confident scores of a strong model, where half the windows sit at the log-odds clip."""

import numpy as np
import pytest
from scipy.optimize import minimize

from stream.alert_tuning import _penalised_log_loss, platt

L2 = 1e-3


def _optimum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return minimize(lambda v: _penalised_log_loss(v[0], v[1], x, y, L2), np.zeros(2), method="Nelder-Mead",
                    options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000}).x


@pytest.mark.parametrize("seed", range(5))
def test_over_confident_scores_get_the_maximum_likelihood_fit(seed):
    # Negatives mostly at the clip, positives spread: a full Newton step from (1, 0) overshoots here and diverged
    # (a = 2e5 on seed 0; 1.5e6 on the accurate profile's dev calls).
    rng = np.random.default_rng(seed)
    y = (rng.random(2000) < 0.17).astype(float)
    x = np.clip(np.where(y == 1, rng.normal(0, 5, y.size), rng.normal(-9, 3, y.size)), -9.21, 9.21)
    a, b = platt(x, y, L2)
    np.testing.assert_allclose([a, b], _optimum(x, y), atol=1e-3)
    assert 0 < a < 5


def test_well_behaved_scores_are_unchanged_and_one_class_is_refused():
    rng = np.random.default_rng(7)
    x = rng.normal(0, 2, 1000)
    y = (rng.random(1000) < 1 / (1 + np.exp(-(1.5 * x - 0.5)))).astype(float)
    a, b = platt(x, y, L2)
    np.testing.assert_allclose([a, b], _optimum(x, y), atol=1e-4)
    assert abs(a - 1.5) < 0.3 and abs(b + 0.5) < 0.3
    with pytest.raises(ValueError, match="both classes"):
        platt(x, np.zeros_like(x))
