"""Per-variable log-density terms of Stan programs (``StanBackend.log_density_terms``), by the
terms programs of :mod:`crossppl.backends.stan.terms`.

The rewrite is tested with stanc alone (no C++). Three terms programs and one port are compiled
(about 40-65 s each the first time on 2 cores, then cached by httpstan): the terms programs of
the generated Rats program, of the correct port ``tests/fixtures/ports/rats.stan`` and of
``rats_slip.stan`` (mu_beta's prior precision 1e-4 for the spec's 1e-6: a slip that moves the
log density by ~1e-4 nats across the points, under the whole-density tolerance), and that port
(the generated program and rats.stan are built by other test files too).
The compare-level tests replace the engines where they only check what compare asks for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from crossppl.backends import get_backend
from crossppl.backends import stan as stan_module
from crossppl.backends.base import UserProgram
from crossppl.backends.stan import StanBackend
from crossppl.backends.stan.engines import stanc
from crossppl.backends.stan.terms import CATCH_ALL, canonical, terms_program
from crossppl.compare.density import check_density, constant_difference
from crossppl.compare.verdict import Source, decide

from crossppl.errors import EngineError, NotYetTranslated

PORTS = Path(__file__).parent / "fixtures" / "ports"
NAMES = (("N", "N_rat"), ("T", "N_week"), ("tau_c", "tau"), ("sigma_y", "sigma"))
PORT = UserProgram("stan", PORTS / "rats.stan", names=NAMES)
SLIP = UserProgram("stan", PORTS / "rats_slip.stan", names=NAMES)
SPEC_TERMS = {"mu_alpha", "tau_alpha", "mu_beta", "tau_beta", "tau", "alpha", "beta", "y"}


def rewrite(model: str, data: str = "int N; vector[N] y; array[N] int k; matrix[N, 2] Y;",
            params: str = "real mu; real<lower=0> s; vector<lower=0>[N] v;",
            functions: str = ""):
    """The terms program of a small program with ``model`` as its model block; it must pass
    stanc."""
    head = f"functions {{\n{functions}\n}}\n" if functions else ""
    program = f"{head}data {{ {data} }}\nparameters {{ {params} }}\nmodel {{\n{model}\n}}\n"
    found = terms_program(program, {"N", "y", "k", "Y", "mu", "s", "v"})
    assert found is not None
    stanc(found.text)
    return found


# -- the rewrite (stanc only) ----------------------------------------------------------------------
def test_the_generated_rats_program_has_one_term_per_spec_variable(rats):
    program = StanBackend().emit(rats)
    found = terms_program(program, {"y", "x", "N_rat", "N_week",
                                    *(s.name for s in rats.statements)})
    assert found.names == ("mu_alpha", "tau_alpha", "mu_beta", "tau_beta", "tau", "alpha",
                           "beta", "y")
    assert "crossppl_terms[8] += normal_lpdf(to_vector(y) | " in found.text
    assert "crossppl_terms[3] += normal_lpdf(mu_beta | 0, 1000);" in found.text
    stanc(found.text)


def _spec_models():
    from crossppl.models import bundled_specs, load_spec, parse_spec

    from .test_conformance_distributions import _spec_text

    models = {name: load_spec(name) for name in bundled_specs()}
    models["every distribution"] = parse_spec(_spec_text(), file="conformance.toml")
    return models


@pytest.mark.parametrize("model", list(_spec_models().values()), ids=list(_spec_models()))
def test_every_generated_program_has_the_terms_of_its_spec(model):
    """Every bundled model and every row of the distribution table (discrete ones as _lpmf):
    one term per parameter and observed variable, named as in the spec."""
    program = StanBackend().emit(model)
    names = {*stan_module.stan_data(model), *(s.name for s in model.statements)}
    found = terms_program(program, names)
    assert set(found.names) == {*(p.name for p in model.parameters), *model.observed_names}
    stanc(found.text)


@pytest.mark.parametrize(
    ("model", "names", "wanted"),
    [
        ("for (n in 1:N) y[n] ~ normal(mu, s);", ("y",), "normal_lpdf(y[n] | mu, s)"),
        ("to_vector(Y) ~ normal(mu, s);", ("Y",), "normal_lpdf(to_vector(Y) | mu, s)"),
        ("col(Y, 2)' ~ normal(mu, s);", ("Y",), "normal_lpdf(col(Y, 2)' | mu, s)"),
        ("s ~ std_normal();", ("s",), "std_normal_lpdf(s)"),
        ("k ~ poisson(s);", ("k",), "poisson_lpmf(k | s)"),
        ("target += normal_lupdf(y | mu, s);", ("y",), "crossppl_total(normal_lpdf(y | mu, s))"),
        ("target += -0.5 * square(mu);", (CATCH_ALL,), "crossppl_total(-0.5 * square(mu))"),
        ("target += log(v);", (CATCH_ALL,), "crossppl_total(log(v))"),
        ("log(s) ~ normal(0, 1);", (CATCH_ALL,), "normal_lpdf(log(s) | 0, 1)"),
        ("real z = mu / s; z ~ normal(0, 1);", (CATCH_ALL,), "real z = mu / s;"),
        ("if (N > 2) { mu ~ normal(0, 1); } else { mu ~ cauchy(0, 1); } s ~ exponential(1);",
         ("mu", "s"), "cauchy_lpdf(mu | 0, 1)"),
        ('print("a ~ b; {"); mu ~ normal(0, 1); // a comment ~ ;', ("mu",),
         "normal_lpdf(mu | 0, 1)"),
    ],
)
def test_each_statement_adds_to_the_term_of_its_variable(model, names, wanted):
    found = rewrite(model)
    assert found.names == names
    assert wanted in found.text
    assert "print" not in found.text and "comment" not in found.text


def test_user_defined_densities_and_unnormalized_calls():
    functions = ("real foo_lpdf(real x, real m) { return normal_lupdf(x | m, 1); }\n"
                 "real bar_lpmf(array[] int n, real r) { return poisson_lupmf(n | r); }")
    found = rewrite("mu ~ foo(0); k ~ bar(s); target += foo_lupdf(s | 1);",
                    functions=functions)
    assert found.names == ("mu", "k", "s")
    assert "foo_lpdf(mu | 0)" in found.text and "bar_lpmf(k | s)" in found.text
    assert "foo_lpdf(s | 1)" in found.text and "lupdf(s" not in found.text


def test_a_name_the_program_uses_is_not_taken():
    found = rewrite("real crossppl_terms = 1; mu ~ normal(0, crossppl_terms);")
    assert found.output == "crossppl_terms_2"


def test_no_density_statement_is_no_terms_program():
    assert terms_program("parameters { real mu; }\nmodel {\n}\n", {"mu"}) is None


@pytest.mark.parametrize(
    ("model", "functions", "message"),
    [
        ("s ~ normal(0, 1) T[0, ];", "", "truncated sampling statement"),
        ("mu ~ normal(0, 1); real lp = target();", "", r"reads target\(\)"),
        ("add_lp(mu);", "void add_lp(real m) { target += -m; }", r"_lp function add_lp\(\)"),
    ],
    ids=["truncation", "target()", "_lp"],
)
def test_what_generated_quantities_cannot_compute_is_refused(model, functions, message):
    with pytest.raises(NotYetTranslated, match=message):
        rewrite(model, functions=functions)


def test_canonical_form_is_one_statement_a_line_without_comments():
    text = canonical("parameters { real mu; }\nmodel {\n  // note\n  for (i in 1:3) mu ~ "
                     "normal(0,\n 1);\n}\n")
    assert "  for (i in 1 : 3) {\n    mu ~ normal(0, 1);\n  }" in text
    assert "note" not in text


def test_terms_of_other_coordinates_are_refused_as_the_density_is(rats):
    program = UserProgram("stan", PORTS / "rats.stan", names=(("N", "N_rat"), ("T", "N_week")))
    with pytest.raises(EngineError, match=r"same footing.*samples 'tau_c'"):
        StanBackend().log_density_terms(rats, program, {})


# -- compiled: terms at points ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def points() -> dict[str, np.ndarray]:
    """20 points near the posterior (BUGS' Rats estimates), every parameter varying (as in
    tests/test_wrong_ports.py)."""
    rng = np.random.default_rng(20240611)
    n, rats = 20, 30
    mu_alpha = rng.normal(106.6, 2.3, n)
    mu_beta = rng.normal(6.19, 0.11, n)
    tau_alpha = 0.0101 * np.exp(rng.normal(0, 0.3, n))
    tau_beta = 4.3 * np.exp(rng.normal(0, 0.3, n))
    return {
        "mu_alpha": mu_alpha, "tau_alpha": tau_alpha, "mu_beta": mu_beta,
        "tau_beta": tau_beta, "tau": 0.027 * np.exp(rng.normal(0, 0.15, n)),
        "alpha": mu_alpha[:, None] + rng.normal(0, 1, (n, rats)) / np.sqrt(tau_alpha)[:, None],
        "beta": mu_beta[:, None] + rng.normal(0, 1, (n, rats)) / np.sqrt(tau_beta)[:, None],
    }


@pytest.fixture(scope="module")
def stan():
    return StanBackend()


@pytest.fixture(scope="module")
def generated(stan, rats, points):
    program = stan.emit(rats)
    return (stan.log_density(rats, program, points),
            stan.log_density_terms(rats, program, points))


@pytest.mark.pystan
@pytest.mark.slow
def test_generated_stan_terms_are_numpyros_terms(rats, points, generated):
    numpyro = get_backend("numpyro")
    reference = numpyro.log_density_terms(rats, numpyro.emit(rats), points)
    logp, terms = generated
    assert set(terms) == set(reference) == SPEC_TERMS
    for name in SPEC_TERMS:
        assert terms[name].shape == (20,)
        # both fully normalized: equal, not only up to a constant
        np.testing.assert_allclose(terms[name], reference[name], rtol=1e-10, err_msg=name)
    assert constant_difference(sum(terms.values()), logp)[1]


@pytest.mark.pystan
@pytest.mark.slow
def test_a_correct_port_agrees_term_by_term(stan, rats, points, generated):
    logp = stan.log_density_user(rats, PORT, points)
    terms = stan.log_density_terms(rats, PORT, points)
    assert set(terms) == SPEC_TERMS  # tau_c's term comes back as tau
    check = check_density({"stan": generated[0], "port": logp},
                          {"stan": generated[1], "port": terms})
    assert check.ok, check.pairs
    assert check.culprits("stan vs port") == []
    assert check.terms["spread"].max() < 1e-9


@pytest.mark.pystan
@pytest.mark.slow
def test_a_small_prior_slip_in_a_stan_port_is_blamed_on_its_variable(stan, rats, points,
                                                                    generated):
    logp = stan.log_density_user(rats, SLIP, points)
    terms = stan.log_density_terms(rats, SLIP, points)
    check = check_density({"stan": generated[0], "slip": logp},
                          {"stan": generated[1], "slip": terms})
    row = check.pairs.set_index("pair").loc["stan vs slip"]
    assert row["density_constant"]  # at these points the whole density does not see it
    assert not row["terms_constant"] and not check.ok
    assert check.culprits("stan vs slip") == ["mu_beta"]
    term = check.terms.set_index("variable").loc["mu_beta"]
    assert term["spread"] > 30 * term["tolerance"]
    verdict = decide([Source("stan", "generated"), Source("slip", "program")],
                     _no_tests(), check)
    assert verdict.kind == "mismatch" and "terms of mu_beta differ" in verdict.reasons[0]


@pytest.mark.pystan
@pytest.mark.slow
def test_terms_that_do_not_add_up_to_the_density_are_an_error(stan, rats, points, generated,
                                                              monkeypatch):
    """A terms program that is not the program's own (here: the slip port's for the correct
    port) is caught by the check that the terms add up to the log density."""
    from crossppl.backends.stan import terms as stan_terms

    slip = SLIP.path.read_text()
    monkeypatch.setattr(stan_terms, "terms_program",
                        lambda text, names, _real=stan_terms.terms_program: _real(slip, names))
    with pytest.raises(NotYetTranslated, match=r"add up to its log density only up to a "
                                               r"non-constant amount"):
        stan.log_density_terms(rats, PORT, points)


def _no_tests():
    from crossppl.compare.agreement import pairwise_tests

    return pairwise_tests({})


# -- compare: when Stan's terms are located --------------------------------------------------------
def _sources(rats, points, names):
    from arviz_base import from_dict

    posterior = {k: v[np.newaxis] for k, v in points.items()}
    dims = {p.name: list(p.dims) for p in rats.parameters}
    idata = from_dict({"posterior": posterior}, dims=dims, coords=rats.coords)
    return {name: Source(name, kind, idata=idata) for name, kind in names.items()}


@pytest.fixture
def recorded(monkeypatch, rats, points):
    """Stan's log densities stand in (NumPyro's, plus ``shift`` * mu_beta), and the calls of
    its log_density_terms are recorded."""
    numpyro = get_backend("numpyro")
    logp = numpyro.log_density(rats, numpyro.emit(rats), points)
    state = {"shift": 0.0, "calls": [], "raise": None}

    def log_density(self, model, program, pts):
        return logp + state["shift"] * pts["mu_beta"]

    def log_density_terms(self, model, program, pts):
        state["calls"].append(program)
        if state["raise"]:
            raise state["raise"]
        return None

    monkeypatch.setattr(stan_module.StanBackend, "log_density", log_density)
    monkeypatch.setattr(stan_module.StanBackend, "log_density_user", log_density)
    monkeypatch.setattr(stan_module.StanBackend, "log_density_terms", log_density_terms)
    return state


def test_generated_stan_terms_are_located_only_when_needed(rats, points, recorded):
    from crossppl.comparison import _density_check

    sources = _sources(rats, points, {"stan": "generated", "numpyro": "generated"})
    check, notes = _density_check(rats, sources, {})
    assert check.ok and notes == [] and recorded["calls"] == []  # no second Stan build
    recorded["shift"] = 1.0
    check, notes = _density_check(rats, sources, {})
    assert not check.ok and len(recorded["calls"]) == 1  # to name the culprits
    recorded.update(shift=0.0, calls=[])
    sources = _sources(rats, points, {"stan": "generated", "numpyro": "generated",
                                      "port": "program"})
    check, notes = _density_check(rats, sources, {"port": SLIP})
    assert check.ok and len(recorded["calls"]) == 2  # a port: its terms and the generated's
    assert SLIP in recorded["calls"]


def test_terms_not_located_are_a_note_and_the_density_is_still_compared(rats, points,
                                                                       recorded):
    from crossppl.comparison import _density_check

    recorded["raise"] = NotYetTranslated("stan", "per-variable terms of a truncated sampling "
                                         "statement")
    sources = _sources(rats, points, {"numpyro": "generated", "port": "program"})
    check, notes = _density_check(rats, sources, {"port": SLIP})
    assert check is not None and list(check.pairs["pair"]) == ["numpyro vs port"]
    assert notes == ["terms of port not located: the stan backend cannot yet translate "
                     "per-variable terms of a truncated sampling statement"]


@pytest.mark.pystan(raises=AssertionError)  # a note, then the assertion
@pytest.mark.slow
def test_a_stan_port_with_a_slip_is_blamed_in_compare(rats, points):
    """Compare's density check, end to end on the engines (no sampling): the slip port is held
    against the generated NumPyro and Stan programs, and blamed on mu_beta in both pairs."""
    from crossppl.comparison import _density_check

    sources = _sources(rats, points, {"stan": "generated", "numpyro": "generated",
                                      "slip": "program"})
    check, notes = _density_check(rats, sources, {"slip": SLIP})
    assert notes == []
    assert check.culprits("stan vs slip") == ["mu_beta"]
    assert check.culprits("numpyro vs slip") == ["mu_beta"]
    assert check.pairs.set_index("pair").loc["stan vs numpyro", "constant"]
    verdict = decide(list(sources.values()), _no_tests(), check)
    assert verdict.kind == "mismatch"
    assert all("terms of mu_beta differ" in r for r in verdict.reasons)


def test_a_terms_program_stanc_rejects_is_not_yet_translated(stan, rats, tmp_path):
    """``target +=`` of a container the terms program has no sum for: a clear refusal before
    anything is built."""
    text = SLIP.path.read_text().replace("  tau_c ~ gamma(0.001, 0.001);\n",
                                         "  tau_c ~ gamma(0.001, 0.001);\n"
                                         "  target += {{{0.0}}};\n")
    path = tmp_path / "rats_odd.stan"
    path.write_text(text)
    program = UserProgram("stan", path, names=NAMES)
    with pytest.raises(NotYetTranslated, match=r"terms program does not compile: Ill-typed "
                                               r"arguments supplied to function"):
        stan.log_density_terms(rats, program, {})


def test_the_stan_backend_s_spread_is_compare_s():
    """The Stan backend measures its terms' sum against its density as the comparison does
    (it cannot import crossppl.compare, a layer above it)."""
    from crossppl.backends.stan.backend import _difference_spread

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=20), rng.normal(size=20)
    cases = [(a, b), (a, a + 2.0), (np.r_[a, -np.inf], np.r_[b, -np.inf]),
             (np.r_[a, -np.inf], np.r_[b, 0.0]), (np.array([-np.inf]), np.array([-np.inf]))]
    for x, y in cases:
        assert _difference_spread(x, y) == constant_difference(x, y)[0]
