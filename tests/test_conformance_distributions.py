"""Conformance: every distribution row, in every parameterization, on every backend, has the
log density scipy.stats gives it.

One spec holds every row: for a continuous row a value ``v_<row>_<key>`` with that distribution,
for a discrete row observed data; every argument is itself a parameter with a uniform prior, so
both the value and the arguments vary. Each backend compiles that one program once. For each row
we move only that row's variables away from a base point and compare the change in the backend's
log density with the change scipy computes: a constant offset (Stan's ``~`` drops normalizing
constants) cancels, a wrong parameterization (sd for precision, rate for scale) does not.
"""

from __future__ import annotations

import numpy as np
import pytest
from crossppl.backends import get_backend
from crossppl.models import DISTRIBUTIONS, parse_spec
from scipy import special, stats

from .conftest import BACKEND_PARAMS

#: Range of the uniform prior (and of the test points) of each argument, by parameter name.
ARG_RANGE = {
    "mu": (-2.0, 2.0), "sigma": (0.5, 3.0), "tau": (0.2, 4.0), "nu": (2.0, 10.0),
    "rate": (0.5, 3.0), "scale": (0.5, 3.0), "shape": (1.0, 5.0), "alpha": (1.0, 5.0),
    "beta": (1.0, 5.0), "lower": (-3.0, -1.0), "upper": (1.0, 3.0), "p": (0.1, 0.9),
    "logit_p": (-2.0, 2.0), "log_rate": (-1.0, 2.0),
}
#: Range of test values by support kind.
VALUE_RANGE = {"real": (-3.0, 3.0), "positive": (0.1, 5.0), "unit": (0.05, 0.95),
               "interval": (-0.9, 0.9)}
#: Observed data of the discrete rows (n = 10 trials for binomial).
OBSERVED = {"binary": [0, 1, 1, 0], "bounded_count": [3, 7, 10, 0], "count": [0, 2, 5, 1]}
N_TRIALS = 10


def _sd(a):
    return 1 / np.sqrt(a["tau"]) if "tau" in a else a["sigma"]


#: scipy's log density of each (row, parameterization) given the arguments ``a``.
SCIPY = {
    ("normal", "sigma"): lambda v, a: stats.norm(a["mu"], a["sigma"]).logpdf(v),
    ("normal", "tau"): lambda v, a: stats.norm(a["mu"], _sd(a)).logpdf(v),
    ("half_normal", "sigma"): lambda v, a: stats.halfnorm(scale=a["sigma"]).logpdf(v),
    ("half_normal", "tau"): lambda v, a: stats.halfnorm(scale=_sd(a)).logpdf(v),
    ("student_t", "sigma"): lambda v, a: stats.t(a["nu"], a["mu"], a["sigma"]).logpdf(v),
    ("student_t", "tau"): lambda v, a: stats.t(a["nu"], a["mu"], _sd(a)).logpdf(v),
    ("cauchy", "sigma"): lambda v, a: stats.cauchy(a["mu"], a["sigma"]).logpdf(v),
    ("half_cauchy", "sigma"): lambda v, a: stats.halfcauchy(scale=a["sigma"]).logpdf(v),
    ("lognormal", "sigma"): lambda v, a: stats.lognorm(a["sigma"], scale=np.exp(a["mu"])).logpdf(v),
    ("lognormal", "tau"): lambda v, a: stats.lognorm(_sd(a), scale=np.exp(a["mu"])).logpdf(v),
    ("exponential", "rate"): lambda v, a: stats.expon(scale=1 / a["rate"]).logpdf(v),
    ("exponential", "scale"): lambda v, a: stats.expon(scale=a["scale"]).logpdf(v),
    ("gamma", "rate"): lambda v, a: stats.gamma(a["shape"], scale=1 / a["rate"]).logpdf(v),
    ("gamma", "scale"): lambda v, a: stats.gamma(a["shape"], scale=a["scale"]).logpdf(v),
    ("inverse_gamma", "scale"): lambda v, a: stats.invgamma(a["shape"], scale=a["scale"]).logpdf(v),
    ("beta", "default"): lambda v, a: stats.beta(a["alpha"], a["beta"]).logpdf(v),
    ("uniform", "default"): lambda v, a: stats.uniform(a["lower"], a["upper"] - a["lower"]).logpdf(v),
    ("bernoulli", "p"): lambda k, a: stats.bernoulli(a["p"]).logpmf(k).sum(),
    ("bernoulli", "logit_p"): lambda k, a: stats.bernoulli(special.expit(a["logit_p"])).logpmf(k).sum(),
    ("binomial", "p"): lambda k, a: stats.binom(N_TRIALS, a["p"]).logpmf(k).sum(),
    ("binomial", "logit_p"): lambda k, a: stats.binom(N_TRIALS, special.expit(a["logit_p"])).logpmf(k).sum(),
    ("poisson", "rate"): lambda k, a: stats.poisson(a["rate"]).logpmf(k).sum(),
    ("poisson", "log_rate"): lambda k, a: stats.poisson(np.exp(a["log_rate"])).logpmf(k).sum(),
}

ROWS = [(row.name, par.key) for row in DISTRIBUTIONS.values() for par in row.parameterizations]
N_POINTS = 4


def test_every_row_of_the_table_has_a_scipy_reference():
    assert sorted(ROWS) == sorted(SCIPY)


def _args(row: str, key: str) -> dict[str, str]:
    """Argument -> parameter name; the binomial's n is the literal N_TRIALS."""
    par = DISTRIBUTIONS[row].parameterization(key)
    return {p: f"{row}_{key}_{p}" for p in par.params if p != "n"}


def _spec_text() -> str:
    params, data, observed = [], [], []
    for row, key in ROWS:
        names = _args(row, key)
        for p, name in names.items():
            lo, hi = ARG_RANGE[p]
            params.append(f'{name} = "uniform({lo}, {hi})"')
        call = ", ".join([*(["n=" + str(N_TRIALS)] if row == "binomial" else []),
                          *(f"{p}={n}" for p, n in names.items())])
        support = DISTRIBUTIONS[row].support
        if support.discrete:
            values = OBSERVED[support.kind]
            data.append(f'k_{row}_{key} = {{ dims = ["obs"], type = "int", value = {values} }}')
            observed.append(f'"k_{row}_{key}[obs]" = "{row}({call})"')
        else:
            params.append(f'v_{row}_{key} = "{row}({call})"')
    return "\n".join([
        '[model]\nname = "conformance"\n\n[dims]\nobs = 4\n\n[data]', *data,
        "\n[parameters]", *params, "\n[observed]", *observed, "",
    ])


@pytest.fixture(scope="module")
def model():
    return parse_spec(_spec_text(), file="conformance.toml")


def _points(model, rng):
    """A base point, then N_POINTS points per row moving only that row's variables."""
    base = {}
    for p in model.parameters:
        if p.name.startswith("v_"):
            lo, hi = VALUE_RANGE[DISTRIBUTIONS[p.dist.name].support.kind]
        else:
            lo, hi = ARG_RANGE[_arg_name(p.name)]
        base[p.name] = (lo, hi, (lo + hi) / 2)
    rows = []
    for row, key in ROWS:
        own = [*(_args(row, key).values()), f"v_{row}_{key}"]
        for _ in range(N_POINTS):
            point = {name: mid for name, (_, _, mid) in base.items()}
            for name in own:
                if name in base:
                    lo, hi, _ = base[name]
                    point[name] = rng.uniform(lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo))
            rows.append(point)
    points = [{name: mid for name, (_, _, mid) in base.items()}, *rows]
    return {name: np.array([pt[name] for pt in points]) for name in base}


def _arg_name(name: str) -> str:
    for p in sorted(ARG_RANGE, key=len, reverse=True):
        if name.endswith("_" + p):
            return p
    raise AssertionError(name)


def _reference(row: str, key: str, points, i: int) -> float:
    args = {p: points[n][i] for p, n in _args(row, key).items()}
    support = DISTRIBUTIONS[row].support
    value = np.array(OBSERVED[support.kind]) if support.discrete else points[f"v_{row}_{key}"][i]
    return float(SCIPY[(row, key)](value, args))


_CACHE: dict[str, tuple[dict, np.ndarray]] = {}


def _log_density(backend_name: str, model):
    if backend_name not in _CACHE:
        backend = get_backend(backend_name)
        points = _points(model, np.random.default_rng(7))
        _CACHE[backend_name] = (points, backend.log_density(model, backend.emit(model), points))
    return _CACHE[backend_name]


@pytest.mark.parametrize("backend_name", BACKEND_PARAMS)
@pytest.mark.parametrize(("row", "key"), ROWS, ids=[f"{r}-{k}" for r, k in ROWS])
def test_log_density_matches_scipy(backend_name, row, key, model):
    points, logp = _log_density(backend_name, model)
    assert logp.shape == (1 + N_POINTS * len(ROWS),)
    start = 1 + ROWS.index((row, key)) * N_POINTS
    idx = range(start, start + N_POINTS)
    got = np.array([logp[i] - logp[0] for i in idx])
    want = np.array([_reference(row, key, points, i) - _reference(row, key, points, 0)
                     for i in idx])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5,
                               err_msg=f"{backend_name}: {row}({key}) log density")


# -- and draws from it, as a generated quantity -------------------------------------------------
#: One generated quantity per (row, parameterization), with constant arguments, and the scipy
#: distribution it must have.
GENERATED = {
    "normal(1, 2)": stats.norm(1, 2),
    "normal(1, tau=4)": stats.norm(1, 0.5),
    "half_normal(2)": stats.halfnorm(scale=2),
    "half_normal(tau=4)": stats.halfnorm(scale=0.5),
    "student_t(3, 1, 2)": stats.t(3, 1, 2),
    "student_t(3, 1, tau=4)": stats.t(3, 1, 0.5),
    "cauchy(1, 2)": stats.cauchy(1, 2),
    "half_cauchy(2)": stats.halfcauchy(scale=2),
    "lognormal(0.5, 0.7)": stats.lognorm(0.7, scale=np.exp(0.5)),
    "lognormal(0.5, tau=4)": stats.lognorm(0.5, scale=np.exp(0.5)),
    "exponential(2)": stats.expon(scale=0.5),
    "exponential(scale=2)": stats.expon(scale=2),
    "gamma(2, 3)": stats.gamma(2, scale=1 / 3),
    "gamma(2, scale=3)": stats.gamma(2, scale=3),
    "inverse_gamma(3, 2)": stats.invgamma(3, scale=2),
    "beta(2, 3)": stats.beta(2, 3),
    "uniform(-1, 2)": stats.uniform(-1, 3),
    "bernoulli(0.3)": stats.bernoulli(0.3),
    "bernoulli(logit_p=0.5)": stats.bernoulli(special.expit(0.5)),
    "binomial(7, 0.3)": stats.binom(7, 0.3),
    "binomial(7, logit_p=0.5)": stats.binom(7, special.expit(0.5)),
    "poisson(3)": stats.poisson(3),
    "poisson(log_rate=1.2)": stats.poisson(np.exp(1.2)),
}
GENERATED_DRAWS = 4000


@pytest.fixture(scope="module")
def generated_model():
    rows = "\n".join(f'g{i} = "{text}"' for i, text in enumerate(GENERATED))
    return parse_spec('[model]\nname = "generated_rows"\n[data]\ny = { value = 0.5 }\n'
                      '[parameters]\na = "normal(0, 1)"\n[observed]\ny = "normal(a, 1)"\n'
                      f"[generated]\n{rows}\n", file="generated_rows.toml")


def test_every_row_is_drawn_as_a_generated_quantity(generated_model):
    assert sorted((g.dist.name, g.dist.parameterization) for g in generated_model.generated) \
        == sorted(ROWS)


@pytest.mark.parametrize("backend_name", BACKEND_PARAMS)
def test_generated_draws_follow_scipy(backend_name, generated_model):
    """Each row's ``_rng`` / forward draw has scipy's distribution (two-sample KS against scipy's
    own draws, Bonferroni at 0.1%): a precision read as an sd, or a rate as a scale, fails."""
    got = get_backend(backend_name).prior_predictive(generated_model, GENERATED_DRAWS, seed=21)
    threshold = 1e-3 / len(GENERATED)
    for i, (text, dist) in enumerate(GENERATED.items()):
        values = got[f"g{i}"]
        assert values.shape == (GENERATED_DRAWS,), text
        discrete = DISTRIBUTIONS[generated_model.generated[i].dist.name].support.discrete
        assert np.issubdtype(values.dtype, np.integer if discrete else np.floating), text
        want = dist.rvs(GENERATED_DRAWS, random_state=np.random.default_rng(i))
        pvalue = stats.ks_2samp(values, want, method="asymp").pvalue
        assert pvalue > threshold, (text, pvalue)
