"""Deliberately wrong NumPyro ports of Rats are caught by the log-density check, without sampling.

``tests/fixtures/ports/wrong/*.py`` are copies of the correct port
``tests/fixtures/ports/rats_numpyro_ok.py`` with ONE realistic translation bug each (named in
the first line of each docstring). The log density of every port
(``NumPyroBackend.log_density_user``) is compared with the generated program's at 20 points
built by hand around the posterior (every parameter varies from point to point):
``crossppl.compare.density.check_density`` must find a non-constant difference for every port
whose bug is in the density, name the term that differs, and find none for the correct port.
``sigma_without_sqrt`` (a wrong derived quantity) leaves the density exactly right: only the
agreement tests of a sampled comparison can catch it (``bench/calibration.py`` measures that).
A NumPyro and a PyMC port with a small slip (``tests/fixtures/ports/rats_*_slip.py``) must be
caught by the per-variable rule of the density check, under the whole density's tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from crossppl.backends.base import UserProgram
from crossppl.backends.numpyro import NumPyroBackend
from crossppl.compare.density import check_density

PORTS = Path(__file__).parent / "fixtures" / "ports"
OK = PORTS / "rats_numpyro_ok.py"
WRONG = PORTS / "wrong"

#: Wrong port -> the spec terms (prior of a parameter, or likelihood "y") whose density differs.
CULPRITS = {
    "mu_alpha_sd_for_precision": {"mu_alpha"},
    "mu_beta_sd_for_precision": {"mu_beta"},
    "alpha_sd_for_precision": {"alpha"},
    "beta_sd_for_precision": {"beta"},
    "y_sd_for_precision": {"y"},
    "gamma_scale_tau_beta": {"tau_beta"},
    "gamma_scale_tau": {"tau"},
    "tau_beta_no_prior": {"tau_beta"},
    "tau_no_prior": {"tau"},
    "x_reversed": {"y"},
    "y_reshaped_not_transposed": {"y"},
}
#: Wrong ports whose joint density is right (the bug is in a derived quantity).
DENSITY_BLIND = {"sigma_without_sqrt"}


def program(path: Path) -> UserProgram:
    return UserProgram(backend="numpyro", path=path, entry="model", label=path.stem)


@pytest.fixture(scope="module")
def backend() -> NumPyroBackend:
    return NumPyroBackend()


@pytest.fixture(scope="module")
def points() -> dict[str, np.ndarray]:
    """20 points near the posterior (BUGS' Rats estimates), every parameter varying."""
    rng = np.random.default_rng(20240611)
    n, rats = 20, 30
    mu_alpha = rng.normal(106.6, 2.3, n)
    mu_beta = rng.normal(6.19, 0.11, n)
    tau_alpha = 0.0101 * np.exp(rng.normal(0, 0.3, n))
    tau_beta = 4.3 * np.exp(rng.normal(0, 0.3, n))
    return {
        "mu_alpha": mu_alpha,
        "tau_alpha": tau_alpha,
        "mu_beta": mu_beta,
        "tau_beta": tau_beta,
        "tau": 0.027 * np.exp(rng.normal(0, 0.15, n)),
        "alpha": mu_alpha[:, None] + rng.normal(0, 1, (n, rats)) / np.sqrt(tau_alpha)[:, None],
        "beta": mu_beta[:, None] + rng.normal(0, 1, (n, rats)) / np.sqrt(tau_beta)[:, None],
    }


@pytest.fixture(scope="module")
def generated(backend, rats, points) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The generated program's log density and its per-variable terms at the points."""
    program_text = backend.emit(rats)
    return (backend.log_density(rats, program_text, points),
            backend.log_density_terms(rats, program_text, points))


def density_check(backend, rats, points, generated, path: Path):
    port = program(path)
    logp = backend.log_density_user(rats, port, points)
    assert logp.shape == (20,)
    terms = backend.log_density_terms(rats, port, points)
    return check_density({"generated": generated[0], "port": logp},
                         {"generated": generated[1], "port": terms})


def test_every_wrong_port_is_listed_and_states_its_bug():
    files = {p.stem: p for p in WRONG.glob("*.py")}
    assert set(files) == set(CULPRITS) | DENSITY_BLIND
    for path in files.values():
        first = path.read_text().split("\n", 1)[0]
        assert first.startswith('"""WRONG Rats port. Bug: '), path.name


def test_the_correct_port_differs_by_a_constant(backend, rats, points, generated):
    check = density_check(backend, rats, points, generated, OK)
    assert check.ok, check.pairs
    assert check.culprits("generated vs port") == []


@pytest.mark.parametrize("name", sorted(CULPRITS))
def test_a_wrong_port_is_flagged_in_the_right_term(name, backend, rats, points, generated):
    check = density_check(backend, rats, points, generated, WRONG / f"{name}.py")
    assert not check.ok, f"{name}: log densities differ by a constant {check.pairs}"
    assert set(check.culprits("generated vs port")) == CULPRITS[name]


@pytest.mark.parametrize("name", sorted(DENSITY_BLIND))
def test_a_wrong_derived_quantity_is_invisible_to_the_density(name, backend, rats, points,
                                                             generated):
    check = density_check(backend, rats, points, generated, WRONG / f"{name}.py")
    assert check.ok, check.pairs


#: Ports with a SMALL slip (mu_beta's prior precision 1e-4 for the spec's 1e-6), one per
#: language (the Stan one is tests/test_stan_terms.py's): kept out of ``wrong/``, whose ports
#: bench/calibration.py samples, since no sampled test can see a slip this small.
SLIPS = {
    "numpyro": UserProgram("numpyro", PORTS / "rats_numpyro_slip.py", "model"),
    "pymc": UserProgram("pymc", PORTS / "rats_pymc_slip.py", "build_model",
                        (("sigma_y", "sigma"),)),
}


@pytest.mark.parametrize("language", sorted(SLIPS))
def test_a_small_prior_slip_is_caught_by_its_term_alone(language, rats, points):
    """At these points the slip moves the log density by ~1.3e-4 nats across the points, under
    the whole density's tolerance (~1.7e-4, it grows with the whole density's magnitude): only
    the per-variable rule sees it, ~80x over the tolerance of mu_beta's term."""
    from crossppl.backends import get_backend

    backend = get_backend(language)
    program_text = backend.emit(rats)
    slip = SLIPS[language]
    check = check_density(
        {"generated": backend.log_density(rats, program_text, points),
         "slip": backend.log_density_user(rats, slip, points)},
        {"generated": backend.log_density_terms(rats, program_text, points),
         "slip": backend.log_density_terms(rats, slip, points)},
    )
    row = check.pairs.iloc[0]
    assert row["density_constant"], row  # the whole-density rule alone would pass it
    assert not row["constant"] and not check.ok
    assert check.culprits("generated vs slip") == ["mu_beta"]
    term = check.terms.set_index("variable").loc["mu_beta"]
    assert term["spread"] > 30 * term["tolerance"]
