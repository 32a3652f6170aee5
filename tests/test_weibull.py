"""Weibull end to end on every backend: the programs, the log density against scipy, and draws
(the row-by-row conformance of every distribution is in test_conformance_distributions.py)."""

from __future__ import annotations

import numpy as np
import pytest
from crossppl.backends import get_backend
from crossppl.models import load_spec
from crossppl.models.reference_densities import log_density, reference
from scipy import stats

from .conftest import BACKEND_PARAMS, FIXTURES

#: How each backend writes the likelihood ``t ~ weibull(alpha, sigma)``.
LIKELIHOOD = {
    "stan": "t ~ weibull(alpha, sigma);",
    "pymc": 'pm.Weibull("t", alpha=alpha, beta=sigma, observed=data["t"], dims="unit")',
    "numpyro": 'numpyro.sample("t", dist.Weibull(sigma, alpha), obs=t)',
    "jags": "t[i] ~ dweib(alpha, pow(sigma, -alpha))",
}


@pytest.fixture(scope="module")
def model():
    return load_spec(FIXTURES / "specs" / "weibull.toml")


def test_every_backend_writes_weibull():
    assert set(LIKELIHOOD) >= {getattr(p, "values", (p,))[0] for p in BACKEND_PARAMS}


@pytest.mark.parametrize("backend_name", BACKEND_PARAMS)
def test_log_density_matches_scipy(backend_name, model):
    backend = get_backend(backend_name)
    program = backend.emit(model)
    assert LIKELIHOOD[backend_name] in program, program
    rng = np.random.default_rng(3)
    points = {"alpha": rng.uniform(0.8, 3.0, 6), "sigma": rng.uniform(0.5, 4.0, 6)}
    got = backend.log_density(model, program, points)
    t = model.datum("t").value
    want = (stats.gamma(2, scale=1).logpdf(points["alpha"])
            + stats.lognorm(1, scale=np.exp(0.5)).logpdf(points["sigma"])
            + np.array([log_density("weibull", "sigma", t, {"alpha": a, "sigma": s}).sum()
                        for a, s in zip(points["alpha"], points["sigma"], strict=True)]))
    np.testing.assert_allclose(got - got[0], want - want[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend_name", BACKEND_PARAMS)
def test_prior_predictive_draws_are_weibull_given_the_prior(backend_name, model):
    """The replicated data of a prior draw are Weibull given that draw's alpha and sigma: their
    probability integral transforms are uniform."""
    draws = get_backend(backend_name).prior_predictive(model, 1000, seed=5)
    alpha, sigma, t = draws["alpha"][:, None], draws["sigma"][:, None], draws["t"]
    assert t.shape == (1000, 8) and (t > 0).all()
    u = reference("weibull", "sigma", {"alpha": alpha, "sigma": sigma}).cdf(t)
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
