"""Prior predictive simulation from the user's side: crossppl.prior_predictive, compare_prior and
``crossppl prior`` (the statistics are tested in test_compare_prior.py, every zoo model in
test_zoo.py)."""

from __future__ import annotations

import numpy as np
import pytest
from crossppl.backends import get_backend
from crossppl.backends.base import prior_to_inference_data

import crossppl
from crossppl.cli import main
from crossppl.errors import ConfigError
from crossppl.prior import compare_prior
from crossppl.runner import FitOutcome

from .conftest import FIXTURES

PREDICTIVE = FIXTURES / "specs" / "predictive.toml"


@pytest.mark.slow
def test_prior_predictive_returns_inference_data_with_the_spec_s_names(tmp_path):
    out = tmp_path / "prior.nc"
    idata = crossppl.prior_predictive(PREDICTIVE, "numpyro", draws=300, seed=3, output=out)
    assert set(idata.children) == {"prior", "prior_predictive", "observed_data"}
    assert set(idata.prior.data_vars) == {"mu", "sigma", "b", "p", "b_new", "r_rep", "y_new",
                                          "count_new", "flip"}
    assert set(idata.prior_predictive.data_vars) == {"r", "y"}
    assert idata.prior["b"].dims == ("chain", "draw", "group")
    assert list(idata.prior["b"].coords["group"].values) == ["a", "b", "c"]
    assert idata.prior_predictive["y"].shape == (1, 300, 3, 4)
    assert idata.prior.attrs["backend"] == "numpyro" and idata.prior.attrs["seed"] == 3
    assert out.is_file()
    again = crossppl.prior_predictive(PREDICTIVE, "numpyro", draws=300, seed=3)
    np.testing.assert_array_equal(again.prior["b"].values, idata.prior["b"].values)


@pytest.mark.parametrize("draws", [0, -1, 2.5, True])
def test_prior_predictive_checks_draws(draws):
    with pytest.raises(ConfigError, match=f"draws must be an integer >= 1, found {draws!r}"):
        crossppl.prior_predictive(PREDICTIVE, "numpyro", draws=draws)


@pytest.mark.slow
def test_compare_prior_matches_two_backends():
    result = compare_prior(PREDICTIVE, backends=["numpyro", "pymc"], draws=1000)
    assert result.verdict == "match", str(result)
    assert result.agreement.ok and not result.errors
    assert set(result.seconds) == {"numpyro", "pymc"}
    assert "predictive: prior predictive MATCH" in str(result)


def _fake_outcomes(model, wrong: bool):
    """Outcomes as run_fits returns them: numpyro's draws, and a copy with sigma's draws used
    as if they were precisions (1 / sigma^2 for sigma) when ``wrong``."""
    arrays = get_backend("numpyro").prior_predictive(model, 1000, 5)
    other = get_backend("numpyro").prior_predictive(model, 1000, 6)
    if wrong:
        other["sigma"] = 1 / other["sigma"] ** 2
    backend = get_backend("numpyro")
    return {
        "a": FitOutcome("a", prior_to_inference_data(model, arrays, backend=backend, seed=5)),
        "b": FitOutcome("b", prior_to_inference_data(model, other, backend=backend, seed=6)),
        "c": FitOutcome("c", None, error="EngineError: the engine failed"),
    }


@pytest.mark.parametrize(("wrong", "verdict"), [(False, "inconclusive"), (True, "mismatch")])
@pytest.mark.slow
def test_compare_prior_verdicts(monkeypatch, wrong, verdict):
    """A failed backend makes agreement inconclusive, but a disagreement is a mismatch."""
    import crossppl.backends

    import crossppl.runner

    model = crossppl.load_spec(PREDICTIVE)
    outcomes = _fake_outcomes(model, wrong)
    monkeypatch.setattr(crossppl.runner, "run_fits", lambda jobs, **kw: outcomes)
    monkeypatch.setattr(crossppl.backends, "get_backend", lambda name: None)
    result = compare_prior(model, backends=["a", "b", "c"])
    assert result.verdict == verdict, str(result)
    assert result.errors == {"c": "EngineError: the engine failed"}
    if wrong:
        assert any(p.startswith("sigma: ks differs between a and b") for p in
                   result.agreement.problems)


@pytest.mark.slow
def test_cli_prior_prints_the_verdict_and_exits_0(capsys):
    assert main(["prior", str(PREDICTIVE), "--backends", "numpyro,pymc", "--draws", "500"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("predictive: prior predictive MATCH (numpyro ")
    assert "usable draws: numpyro 100%, pymc 100%" in out


@pytest.mark.parametrize(("args", "text"), [
    (["--draws", "0"], "draws must be an integer >= 1, found 0"),
    (["--seed", "-3"], "seed must be an integer in [0, 2**31), found -3"),
    (["--alpha", "2"], "--alpha: must be strictly between 0 and 1"),
])
def test_cli_prior_checks_its_options_before_any_backend_runs(capsys, args, text):
    assert main(["prior", "pump", *args]) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err


def test_cli_prior_needs_a_spec_or_all(capsys):
    assert main(["prior"]) == 2
    assert "give a SPEC or --all" in capsys.readouterr().err
