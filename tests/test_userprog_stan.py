"""Hand-written Stan programs held against the spec (``UserProgram(backend="stan", ...)``).

Two programs are compiled (about 40-90 s each the first time, then cached by httpstan): the
correct port tests/fixtures/ports/rats.stan, which uses its own names for the sizes, the
observation precision and sigma (mapped with ``names``), and rats_wrong_tau.stan, which gives the
likelihood a precision where Stan's normal takes a standard deviation. Every other test stops at
stanc's ``--info`` (no C++) or runs against a stand-in engine.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from crossppl.backends.base import Draws, UserProgram
from crossppl.backends.stan import StanBackend, engines, stan_data, user_data
from crossppl.backends.userprog import ProgramError
from crossppl.compare.density import constant_difference

import crossppl
from crossppl.config import FitConfig
from crossppl.errors import EngineError, UserInputError

PORTS = Path(__file__).parent / "fixtures" / "ports"
RATS_PORT = PORTS / "rats.stan"
WRONG_TAU = PORTS / "rats_wrong_tau.stan"
#: The correct port's own names -> the spec's.
RATS_NAMES = (("N", "N_rat"), ("T", "N_week"), ("tau_c", "tau"), ("sigma_y", "sigma"))
SPEC_VARIABLES = {"mu_alpha", "tau_alpha", "mu_beta", "tau_beta", "tau", "alpha", "beta",
                  "sigma"}


@pytest.fixture(scope="module")
def backend() -> StanBackend:
    return StanBackend()


@pytest.fixture(scope="module")
def port() -> UserProgram:
    return UserProgram("stan", RATS_PORT, names=RATS_NAMES)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- data by name, checked before compiling --------------------------------------------------------
def test_data_are_passed_by_the_spec_names_through_names(rats, port):
    data = user_data(rats, port)
    spec = stan_data(rats)
    assert set(data) == {"N", "T", "x", "y"}
    assert data["N"] == 30 and data["T"] == 5
    assert data["x"] == spec["x"] and data["y"] == spec["y"]


def test_index_data_are_one_based(tmp_path):
    from crossppl.models import parse_spec

    model = parse_spec("""
        [model]
        name = "groups"
        [dims]
        g = 3
        obs = 4
        [data]
        grp = { dims = ["obs"], type = "index", indexes = "g", value = [1, 3, 2, 3] }
        yv = { dims = ["obs"], value = [0.1, 0.2, 0.3, 0.4] }
        [parameters]
        "z[g]" = "normal(0, 1)"
        [observed]
        yv = "normal(z[grp], 1)"
    """)
    path = write(tmp_path, "groups.stan", """
        data { int<lower=1> N_g; int<lower=1> N_obs;
               array[N_obs] int<lower=1, upper=N_g> grp; vector[N_obs] yv; }
        parameters { vector[N_g] z; }
        model { z ~ normal(0, 1); yv ~ normal(z[grp], 1); }
    """)
    data = user_data(model, UserProgram("stan", path))
    assert data["grp"] == [1, 3, 2, 3] == (model.datum("grp").value + 1).tolist()
    assert data["N_g"] == 3


def test_a_data_variable_the_spec_lacks_is_a_clear_error(backend, rats):
    # the port's N and T without the names that map them
    program = UserProgram("stan", RATS_PORT, names=(("tau_c", "tau"),))
    with pytest.raises(ProgramError) as info:
        backend.sample_user(rats, program, FitConfig(chains=1, draws=10, progress=False),
                            "pystan")
    message = str(info.value)
    assert isinstance(info.value, UserInputError)
    assert str(RATS_PORT) in message
    assert "'N'" in message and "x, y" in message and "N_rat, N_week" in message
    assert "names=" in message


def test_data_of_the_wrong_rank_or_type_are_clear_errors(tmp_path, rats):
    path = write(tmp_path, "flat_y.stan", """
        data { int N_rat; int N_week; vector[N_week] x; vector[N_rat] y; }
        parameters { real mu_alpha; }
        model { mu_alpha ~ normal(0, 1); }
    """)
    with pytest.raises(ProgramError, match=r"data 'y' has 1 dimension.*spec's 'y' has dims "
                                           r"\(rat, week\)"):
        user_data(rats, UserProgram("stan", path))
    path = write(tmp_path, "int_x.stan", """
        data { int N_week; array[N_week] int x; }
        parameters { real mu_alpha; }
        model { mu_alpha ~ normal(0, 1); }
    """)
    with pytest.raises(ProgramError, match="'x' is declared int, but the spec's 'x' is real"):
        user_data(rats, UserProgram("stan", path))


def test_a_syntax_error_names_the_file_and_quotes_stanc(tmp_path, backend, rats):
    path = write(tmp_path, "typo.stan", "data {\n  vector[5] x;\n}\nparameters {\n"
                 "  real mu_alpha\n}\nmodel {\n  mu_alpha ~ normal(0, 1);\n}\n")
    program = UserProgram("stan", path)
    with pytest.raises(ProgramError) as info:
        backend.sample_user(rats, program, FitConfig(chains=1, draws=10, progress=False),
                            "pystan")
    message = str(info.value)
    assert message.startswith(f"{path}:6: stanc rejected the program")
    assert "Syntax error" in message
    # stanc's wording: '";" expected after ...' (httpstan 4.13) or 'Expected ";" after ...' (4.17)
    assert re.search(r'(";" expected|Expected ";") after variable declaration', message)
    assert info.value.line == 6
    with pytest.raises(ProgramError, match="stanc rejected"):
        backend.log_density_user(rats, program, {"mu_alpha": np.zeros(1)})


def test_missing_files_and_other_suffixes_are_clear_errors(tmp_path, backend, rats):
    config = FitConfig(chains=1, draws=10, progress=False)
    with pytest.raises(ProgramError, match="does not exist"):
        backend.sample_user(rats, UserProgram("stan", tmp_path / "nope.stan"), config, "pystan")
    path = write(tmp_path, "rats.py", "")
    with pytest.raises(ProgramError, match=r"must be a \.stan file"):
        backend.sample_user(rats, UserProgram("stan", path), config, "pystan")


def test_names_mapping_what_the_program_lacks_is_an_error(backend, rats):
    program = UserProgram("stan", RATS_PORT, names=(*RATS_NAMES, ("sigma_c", "sigma")))
    with pytest.raises(ProgramError, match="names maps 'sigma_c'"):
        backend.sample_user(rats, program, FitConfig(chains=1, draws=10, progress=False),
                            "pystan")


# -- one fitting path, against a stand-in engine ---------------------------------------------------
class FakeEngine:
    """Records what it was asked to fit and returns draws of the given shapes."""

    name = "pystan"

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        self.shapes = shapes
        self.calls: list[dict] = []

    def sample(self, program, data, config, *, stem, label, check=None):
        self.calls.append({"program": program, "data": data, "config": config, "stem": stem,
                           "label": label, "check": check})
        rng = np.random.default_rng(0)
        posterior = {name: rng.normal(size=(config.chains, config.draws, *shape))
                     for name, shape in self.shapes.items()}
        stats = {"lp": np.zeros((config.chains, config.draws)),
                 "diverging": np.zeros((config.chains, config.draws), bool),
                 "step_size": np.ones((config.chains, config.draws))}
        return Draws(posterior, stats, engine=self.name)


PORT_SHAPES = {"mu_alpha": (), "mu_beta": (), "tau_alpha": (), "tau_beta": (), "tau_c": (),
               "alpha": (30,), "beta": (30,), "sigma_y": (), "extra_gq": (2,)}


def test_generated_and_hand_written_programs_share_the_engine_call(backend, rats, port,
                                                                   monkeypatch):
    fake = FakeEngine(PORT_SHAPES)
    monkeypatch.setattr(engines, "get_engine", lambda name: fake)
    config = FitConfig(chains=2, warmup=5, draws=7, seed=3, progress=False)
    draws = backend.sample_user(rats, port, config, "pystan")
    assert set(draws.posterior) == SPEC_VARIABLES  # spec names; extra_gq dropped
    assert draws.posterior["alpha"].shape == (2, 7, 30)
    assert draws.posterior["sigma"].shape == (2, 7)
    call = fake.calls[-1]
    assert call["program"] == RATS_PORT.read_text()
    assert call["config"] is config
    assert set(call["data"]) == {"N", "T", "x", "y"}
    assert call["stem"] == "rats" and str(RATS_PORT) in call["label"]

    fake.shapes = {s.name: tuple(rats.dim(d).size for d in s.dims) for s in rats.statements}
    program = backend.emit(rats)
    generated = backend.sample(rats, program, config, "pystan")
    assert set(generated.posterior) == SPEC_VARIABLES
    assert fake.calls[-1]["config"] is config and fake.calls[-1]["data"] == stan_data(rats)


def test_draws_of_a_shape_the_spec_does_not_have_are_a_clear_error(backend, rats, port,
                                                                    monkeypatch):
    fake = FakeEngine({**PORT_SHAPES, "alpha": (30, 5)})
    monkeypatch.setattr(engines, "get_engine", lambda name: fake)
    with pytest.raises(ProgramError, match=r"'alpha'.*\(30, 5\).*\(30,\)"):
        backend.sample_user(rats, port, FitConfig(chains=1, draws=3, progress=False), "pystan")
    # PyStan's engine checks the built program's dims before sampling
    check = fake.calls[-1]["check"]
    with pytest.raises(ProgramError, match=r"'beta'.*\(5, 30\).*\(30,\)"):
        check({"beta": (5, 30), "mu_alpha": ()})
    check({"beta": (30,), "unrelated": (7, 7)})
    fake.shapes = {**PORT_SHAPES, "alpha": (30, 1)}  # a size-1 axis is squeezed
    draws = backend.sample_user(rats, port, FitConfig(chains=1, draws=3, progress=False),
                                "pystan")
    assert draws.posterior["alpha"].shape == (1, 3, 30)


def test_log_density_of_other_coordinates_is_refused(tmp_path, backend, rats, port):
    # without ("tau_c", "tau"): the program's tau_c is not the spec's tau
    program = UserProgram("stan", RATS_PORT, names=(("N", "N_rat"), ("T", "N_week")))
    with pytest.raises(EngineError, match=r"same footing.*samples 'tau_c'.*does not sample "
                                          r"the spec's 'tau'"):
        backend.log_density_user(rats, program, {})
    text = RATS_PORT.read_text().replace("  vector[N] alpha;\n",
                                         "  vector[N] alpha_raw;\n")
    text = text.replace("alpha ~ normal(mu_alpha, 1 / sqrt(tau_alpha));",
                        "alpha_raw ~ std_normal();")
    text = text.replace("model {\n", "transformed parameters {\n  vector[N] alpha = mu_alpha + "
                        "alpha_raw / sqrt(tau_alpha);\n}\nmodel {\n")
    noncentred = UserProgram("stan", write(tmp_path, "rats_nc.stan", text), names=RATS_NAMES)
    with pytest.raises(EngineError, match=r"samples 'alpha_raw'.*does not sample the spec's "
                                          r"'alpha'"):
        backend.log_density_user(rats, noncentred, {})


def test_log_density_terms_come_back_under_the_spec_names(backend, rats, port, monkeypatch):
    """The terms of the port's variables (tau_c, its y) are keyed by the spec's names, as its
    draws are; the engine is a stand-in here (tests/test_stan_terms.py compiles them)."""
    shapes = {"mu_alpha": [], "mu_beta": [], "tau_alpha": [], "tau_beta": [], "tau_c": [],
              "alpha": [30], "beta": [30]}
    built = engines._Built("models/fake", [{"name": k, "dims": v} for k, v in shapes.items()],
                           0.0, True, "")
    asked = {}

    def log_density_terms(self, program, terms, n_terms, data, points, *, built, label):
        asked.update(points=points, n_terms=n_terms)
        values = np.arange(6 * n_terms, dtype=float).reshape(6, n_terms)
        return values.sum(axis=1) + 3.0, values

    monkeypatch.setattr(engines.PyStanEngine, "build", lambda self, *a, **k: built)
    monkeypatch.setattr(engines.PyStanEngine, "log_density_terms", log_density_terms)
    points = {p.name: np.ones((6, *(rats.dim(d).size for d in p.dims))) for p in rats.parameters}
    terms = backend.log_density_terms(rats, port, points)
    assert set(terms) == {"mu_alpha", "mu_beta", "tau_alpha", "tau_beta", "tau", "alpha",
                          "beta", "y"}
    assert asked["n_terms"] == 8 and "tau_c" in asked["points"] and "tau" not in asked["points"]
    assert all(v.shape == (6,) for v in terms.values())


# -- compiled and fitted ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def port_fit(port):
    return crossppl.fit_program("rats", port, engine="pystan", chains=2, warmup=300,
                                draws=300, progress=False)


@pytest.mark.pystan
@pytest.mark.slow
def test_fit_program_returns_spec_names_dims_and_attrs(port_fit):
    post = port_fit.posterior
    assert set(post.data_vars) == SPEC_VARIABLES
    assert post["alpha"].dims == ("chain", "draw", "rat")
    assert post["alpha"].shape == (2, 300, 30)
    assert post["sigma"].dims == ("chain", "draw")
    np.testing.assert_allclose(post["sigma"], 1 / np.sqrt(post["tau"]), rtol=1e-6)
    assert 100 < float(post["mu_alpha"].mean()) < 115  # BUGS: 106.6
    assert 5 < float(post["sigma"].mean()) < 7.5       # BUGS: 6.09
    assert port_fit.attrs["engine"] == "pystan"
    assert port_fit.attrs["program_file"] == str(RATS_PORT)
    assert port_fit.sample_stats["diverging"].shape == (2, 300)


def fit_points(idata, rats, n: int = 12) -> dict[str, np.ndarray]:
    flat = idata["posterior"].to_dataset().stack(sample=("chain", "draw"))
    pick = np.linspace(0, flat.sizes["sample"] - 1, n).astype(int)
    return {p.name: np.moveaxis(flat[p.name].isel(sample=pick).values, -1, 0)
            for p in rats.parameters}


@pytest.mark.pystan
@pytest.mark.slow
def test_log_density_tells_the_correct_port_from_the_wrong_one(backend, rats, port, port_fit):
    points = fit_points(port_fit, rats)
    generated = backend.log_density(rats, backend.emit(rats), points)
    correct = backend.log_density_user(rats, port, points)
    spread, constant = constant_difference(correct, generated)
    assert constant, spread
    assert spread < 1e-6
    wrong = backend.log_density_user(rats, UserProgram("stan", WRONG_TAU), points)
    spread, constant = constant_difference(wrong, generated)
    assert not constant
    assert spread > 1.0
