"""Prior predictive draws of every backend against one independent numpy simulation (one
backend-parametrized suite; the fixture spec tests/fixtures/specs/predictive.toml holds every kind
of generated quantity). The zoo's models get the same check in test_zoo.py.

Margins that depend on how variables are drawn from one another (y given b, y_new given b_new,
b given mu) are tested too, so a generated quantity drawn from the wrong parent is caught, not
only a wrong marginal.
"""

from __future__ import annotations

import numpy as np
import pytest
from crossppl.backends import get_backend
from crossppl.compare.prior import prior_agreement
from scipy.special import expit

DRAWS = 2000
DISCRETE = ("r", "r_rep", "count_new", "flip")


def simulate(model, n_draws: int, seed: int) -> dict[str, np.ndarray]:
    """predictive.toml's prior predictive distribution, by numpy, independently of any backend."""
    rng = np.random.default_rng(seed)
    n, x = model.datum("n").value, model.datum("x").value
    mu = rng.normal(0, 1, n_draws)
    sigma = np.abs(rng.normal(0, 1, n_draws))
    b = rng.normal(mu[:, None], sigma[:, None], (n_draws, 3))
    p = expit(b)
    b_new = rng.normal(mu, sigma)
    return {
        "mu": mu, "sigma": sigma, "b": b, "p": p,
        "r": rng.binomial(n, p),
        "y": rng.normal(b[:, :, None] + x, sigma[:, None, None], (n_draws, 3, 4)),
        "b_new": b_new,
        "r_rep": rng.binomial(n, p),
        "y_new": rng.normal(b_new[:, None] + x, 1 / np.sqrt(1 / sigma[:, None] ** 2),
                            (n_draws, 4)),
        "count_new": rng.poisson(np.exp(b_new)),
        "flip": rng.binomial(1, p),
    }


def with_joint_margins(q: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """``q`` plus standardized residuals of each variable given the ones it is drawn from."""
    return {
        **q,
        "y|b": (q["y"] - q["b"][:, :, None] - x) / q["sigma"][:, None, None],
        "y_new|b_new": (q["y_new"] - q["b_new"][:, None] - x) / q["sigma"][:, None],
        "b|mu": (q["b"] - q["mu"][:, None]) / q["sigma"][:, None],
        "b_new|mu": (q["b_new"] - q["mu"]) / q["sigma"],
        "r-r_rep": q["r"] - q["r_rep"],
    }


_DRAWN: dict[str, dict[str, np.ndarray]] = {}


@pytest.fixture
def drawn(backend_name, predictive) -> dict[str, np.ndarray]:
    """The backend's prior predictive draws of the fixture spec (once per backend)."""
    if backend_name not in _DRAWN:
        _DRAWN[backend_name] = get_backend(backend_name).prior_predictive(predictive, DRAWS, 11)
    return _DRAWN[backend_name]


@pytest.mark.slow
def test_names_shapes_and_dtypes(drawn, predictive):
    decls = (*predictive.recorded, *predictive.observed)
    assert set(drawn) == {d.name for d in decls}
    for decl in decls:
        values = drawn[decl.name]
        assert values.shape == (DRAWS, *(predictive.dim(d).size for d in decl.dims)), decl.name
        assert np.isfinite(values).all(), decl.name
        kind = np.integer if decl.name in DISCRETE else np.floating
        assert np.issubdtype(values.dtype, kind), (decl.name, values.dtype)
    np.testing.assert_allclose(drawn["p"], expit(drawn["b"]), rtol=1e-6)
    n = predictive.datum("n").value
    assert np.all((drawn["r_rep"] >= 0) & (drawn["r_rep"] <= n))
    assert set(np.unique(drawn["flip"])) <= {0, 1}


def test_draws_match_an_independent_simulation(drawn, predictive, backend_name):
    x = predictive.datum("x").value
    want = with_joint_margins(simulate(predictive, 4000, 12), x)
    got = with_joint_margins(drawn, x)
    result = prior_agreement({"numpy": want, backend_name: got}, counts=DISCRETE, alpha=0.001)
    assert result.ok, "\n".join(result.problems)
    assert result.usable[backend_name] == 1.0


def test_the_check_has_power_against_a_precision_read_as_an_sd(drawn, predictive, backend_name):
    """The same draws with y_new's scale taken as its precision (sd 1 / sigma^2) fail."""
    x = predictive.datum("x").value
    wrong = dict(drawn)
    z = (drawn["y_new"] - drawn["b_new"][:, None] - x) / drawn["sigma"][:, None]
    wrong["y_new"] = drawn["b_new"][:, None] + x + z / drawn["sigma"][:, None] ** 2
    result = prior_agreement({"numpy": simulate(predictive, 4000, 12), backend_name: wrong},
                             counts=DISCRETE, alpha=0.001)
    assert not result.ok
    assert set(result.tests.loc[result.tests["reject"], "variable"]) == {"y_new"}
