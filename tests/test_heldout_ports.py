"""Held-out-style wrong ports of five models, in every PPL, are caught by the log-density check.

``tests/fixtures/ports/heldout/`` holds ports written the way an outside user writes them (own
names and layout; Stan, PyMC and NumPyro) of pump, seeds, surgical, blocker and eight_schools:
each wrong port has ONE realistic translation bug, stated in its first line, and each model has
one correct port (``*_ok``), the control. ``ports.toml`` says how crossppl calls each.

Without sampling: every port's log density and per-variable terms are compared with the
generated NumPyro program's at 20 points built by hand near the model's posterior (every
parameter varies from point to point). ``check_density`` must flag every wrong port whose bug
is in the density, naming the variable(s) whose terms differ, and pass the controls.
``bench/heldout_power.py`` measures what a sampled ``compare`` makes of the same ports.

Stan ports build two programs each (the port and its terms program: about a minute each on
2 cores the first time, then cached), hence the ``pystan`` marker.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from crossppl.backends import get_backend
from crossppl.backends.base import UserProgram
from crossppl.compare.density import check_density
from crossppl.models import load_spec

HELDOUT = Path(__file__).parent / "fixtures" / "ports" / "heldout"
MANIFEST = tomllib.loads((HELDOUT / "ports.toml").read_text(encoding="utf-8"))

#: Wrong port -> the spec terms (a parameter's prior, an observed variable's likelihood) whose
#: density differs from the spec's.
CULPRITS = {
    "pump_gamma_scale": {"theta"},
    "pump_no_exposure": {"x"},
    "pump_beta_prior_swapped": {"beta"},
    "seeds_x1_x2_swapped": {"r"},
    "seeds_probit": {"r"},
    "seeds_sigma_no_sqrt": {"r"},  # b = sigma * b_raw is derived: the likelihood changes
    "surgical_last_hospital_dropped": {"r"},
    "surgical_tau_flat": {"tau"},
    "blocker_arms_swapped": {"rc", "rt"},
    "blocker_delta_raw_scaled_twice": {"delta_raw"},
    # A slip: sd 1e5 for sqrt(1e5). At these points mu's terms differ by 2.3x their tolerance;
    # at 50 sets of 20 posterior draws (5 NumPyro fits) by 1.4-4.2x, flagged every time.
    "blocker_mu_variance_for_sd": {"mu"},
    "eight_schools_halfcauchy_25": {"tau"},
    "eight_schools_se_as_variance": {"y"},
}
#: Wrong ports whose bug leaves the log density right at every point of the spec's support, so
#: that only the agreement tests of a sampled comparison can catch them (bench/heldout_power.py):
#: ``surgical_pop_mean_odds`` (a wrong derived quantity, pop_mean = exp(mu)) and
#: ``eight_schools_tau_unbounded`` (tau without ``<lower=0>``: where tau > 0, as at every draw of
#: the spec, its full Cauchy differs from the half-Cauchy by the constant log 2; the bug is the
#: mirror image at tau < 0, which only the port's own draws visit).
DENSITY_BLIND = {"surgical_pop_mean_odds", "eight_schools_tau_unbounded"}


def first_line(path: Path) -> tuple[str, str, str | None]:
    """(WRONG or CORRECT, model, bug) from a port's first line."""
    line = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.match(r"^(?://|\"\"\")\s*(WRONG|CORRECT) (\w+) port\b(?:.*?Bug: (.*))?", line)
    assert match, f"{path.name}: first line {line!r}"
    return match.groups()


PORT_FILES = {p.stem: p for p in sorted(HELDOUT.iterdir()) if p.suffix in (".stan", ".py")}
CONTROLS = sorted(s for s, p in PORT_FILES.items() if first_line(p)[0] == "CORRECT")


def program(stem: str) -> UserProgram:
    path = PORT_FILES[stem]
    meta = MANIFEST[path.name]
    return UserProgram(meta["backend"], path, meta.get("entry"),
                       tuple(meta.get("names", {}).items()), label=stem)


def params(stems) -> list:
    """``stems`` as parameters, the Stan ports marked ``pystan``."""
    return [pytest.param(s, marks=pytest.mark.pystan) if PORT_FILES[s].suffix == ".stan" else s
            for s in sorted(stems)]


def _lognormal(rng, median: float, log_sd: float, shape) -> np.ndarray:
    return median * np.exp(rng.normal(0.0, log_sd, shape))


def points(model: str, n: int = 20) -> dict[str, np.ndarray]:
    """``n`` points near the model's posterior (rounded means and sds of a NumPyro fit of the
    spec); every parameter varies, positive ones log-normally."""
    rng = np.random.default_rng(20261203)
    if model == "pump":
        mean = np.array([0.06, 0.10, 0.089, 0.116, 0.60, 0.61, 0.88, 0.87, 1.59, 1.99])
        sd = np.array([0.025, 0.077, 0.037, 0.03, 0.33, 0.14, 0.70, 0.70, 0.76, 0.43])
        log_sd = np.sqrt(np.log1p((sd / mean) ** 2))
        return {"alpha": _lognormal(rng, 0.66, 0.38, n), "beta": _lognormal(rng, 0.8, 0.55, n),
                "theta": mean / np.sqrt(1 + (sd / mean) ** 2)
                * np.exp(rng.normal(0.0, 1.0, (n, 10)) * log_sd)}
    if model == "seeds":
        return {"a0": rng.normal(-0.55, 0.2, n), "a1": rng.normal(0.09, 0.3, n),
                "a2": rng.normal(1.36, 0.28, n), "a12": rng.normal(-0.83, 0.43, n),
                "tau": _lognormal(rng, 1 / 0.27**2, 1.0, n),
                "b_raw": rng.normal(0.0, 0.9, (n, 21))}
    if model == "surgical":
        return {"mu": rng.normal(-2.55, 0.15, n), "tau": _lognormal(rng, 1 / 0.38**2, 0.8, n),
                "b_raw": rng.normal(0.0, 0.8, (n, 12))}
    if model == "blocker":
        mean = np.array([-2.44, -2.19, -2.14, -2.40, -2.41, -2.22, -1.72, -2.11, -1.96, -2.25,
                         -2.31, -1.46, -3.00, -2.73, -1.35, -1.49, -1.99, -2.96, -3.44, -1.49,
                         -2.14, -2.92])
        sd = np.array([0.44, 0.24, 0.27, 0.08, 0.15, 0.35, 0.08, 0.12, 0.15, 0.07, 0.12, 0.13,
                       0.23, 0.13, 0.16, 0.14, 0.19, 0.28, 0.36, 0.14, 0.14, 0.15])
        return {"d": rng.normal(-0.25, 0.06, n), "tau": _lognormal(rng, 100.0, 1.2, n),
                "mu": mean + sd * rng.normal(0.0, 1.0, (n, 22)),
                "delta_raw": rng.normal(0.0, 0.95, (n, 22))}
    if model == "eight_schools":
        return {"mu": rng.normal(4.4, 3.2, n), "tau": _lognormal(rng, 2.7, 0.8, n),
                "eta": rng.normal(0.0, 0.95, (n, 8))}
    raise KeyError(model)


_GENERATED: dict[str, tuple] = {}


def density_check(stem: str):
    """``check_density`` of the port ``stem`` against the generated NumPyro program."""
    model = first_line(PORT_FILES[stem])[1]
    spec = load_spec(model)
    at = points(model)
    if model not in _GENERATED:
        numpyro = get_backend("numpyro")
        text = numpyro.emit(spec)
        _GENERATED[model] = (numpyro.log_density(spec, text, at),
                             numpyro.log_density_terms(spec, text, at))
    port = program(stem)
    backend = get_backend(port.backend)
    logp = backend.log_density_user(spec, port, at)
    assert logp.shape == (20,)
    terms = backend.log_density_terms(spec, port, at)
    assert terms, f"{stem}: no per-variable terms"
    generated = _GENERATED[model]
    return check_density({"generated": generated[0], "port": logp},
                         {"generated": generated[1], "port": terms})


def test_every_port_is_listed_and_states_its_bug():
    assert {p.name for p in PORT_FILES.values()} == set(MANIFEST)
    wrong = {s for s in PORT_FILES if s not in CONTROLS}
    assert wrong == set(CULPRITS) | DENSITY_BLIND
    assert not set(CULPRITS) & DENSITY_BLIND
    models = {s: first_line(p)[1] for s, p in PORT_FILES.items()}
    for stem in wrong:
        kind, model, bug = first_line(PORT_FILES[stem])
        assert kind == "WRONG" and bug, stem
        assert stem.startswith(f"{model}_"), stem
        load_spec(model)  # a bundled spec
    assert sorted(models[s] for s in CONTROLS) == sorted(set(models.values()))
    per_model = {m: sum(models[s] == m for s in wrong) for m in set(models.values())}
    per_ppl = {b: sum(MANIFEST[PORT_FILES[s].name]["backend"] == b for s in wrong)
               for b in ("stan", "pymc", "numpyro")}
    assert min(per_model.values()) >= 2, per_model
    assert min(per_ppl.values()) >= 4, per_ppl


@pytest.mark.parametrize("stem", params(CONTROLS))
@pytest.mark.slow
def test_a_correct_port_differs_by_a_constant(stem):
    check = density_check(stem)
    assert check.ok, check.pairs
    assert check.culprits("generated vs port") == []


@pytest.mark.parametrize("stem", params(CULPRITS))
@pytest.mark.slow
def test_a_wrong_port_is_flagged_in_the_right_term(stem):
    check = density_check(stem)
    assert not check.ok, f"{stem}: log densities differ by a constant {check.pairs}"
    assert set(check.culprits("generated vs port")) == CULPRITS[stem]


@pytest.mark.parametrize("stem", params(DENSITY_BLIND))
@pytest.mark.slow
def test_a_density_blind_bug_is_invisible_to_the_density(stem):
    check = density_check(stem)
    assert check.ok, check.pairs
