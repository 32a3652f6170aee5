"""Hand-written PyMC and NumPyro programs held against the spec (``UserProgram``).

The fixtures ``tests/fixtures/ports/rats_{pymc,numpyro}.py`` are correct ports of Rats with
names and shapes of their own (``sigma_y``, ``tau_y``, alpha of shape (30, 1)). Each is fitted
briefly; the log densities of the ports are compared with the generated programs' at draws of a
fit, and a WRONG port (the likelihood's precision passed as its standard deviation) must differ
in the likelihood term ``y`` only. The file takes about a minute on 2 cores (one nutpie compile,
one NumPyro compile, three PyTensor log-density compiles).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from crossppl.backends import get_backend
from crossppl.backends.base import UserProgram
from crossppl.backends.userprog import (
    ProgramError,
    entry_arguments,
    fit_shape,
    program_points,
    spec_terms,
    spec_variables,
)
from crossppl.models import load_spec

import crossppl
from crossppl.errors import EngineError, UserInputError

PORTS = Path(__file__).parent / "fixtures" / "ports"
PYMC_PORT = UserProgram("pymc", PORTS / "rats_pymc.py", names=(("sigma_y", "sigma"),))
NUMPYRO_PORT = UserProgram("numpyro", PORTS / "rats_numpyro.py", names=(("tau_y", "tau"),))
FIT = {"chains": 2, "warmup": 300, "draws": 300, "progress": False}
PRIORS = ("mu_alpha", "tau_alpha", "mu_beta", "tau_beta", "tau", "alpha", "beta")


@pytest.fixture(scope="module")
def rats():
    return load_spec("rats")


@pytest.fixture(scope="module")
def numpyro_fit(rats):
    return crossppl.fit_program(rats, NUMPYRO_PORT, **FIT)


@pytest.fixture(scope="module")
def pymc_fit(rats):
    return crossppl.fit_program(rats, PYMC_PORT, **FIT)


@pytest.fixture(scope="module")
def points(numpyro_fit, rats):
    """Six posterior draws of every parameter, keyed by the spec's names."""
    flat = numpyro_fit["posterior"].to_dataset().stack(sample=("chain", "draw"))
    pick = np.linspace(0, flat.sizes["sample"] - 1, 6).astype(int)
    return {p.name: np.moveaxis(flat[p.name].isel(sample=pick).values, -1, 0)
            for p in rats.parameters}


def constant(a, b, tol=1e-6) -> bool:
    """Whether ``a - b`` is the same at every point."""
    diff = np.asarray(a) - np.asarray(b)
    return bool(np.all(np.isfinite(diff)) and np.ptp(diff) <= tol * max(1.0, np.abs(a).max()))


def wrong_port(tmp_path, port: UserProgram, old: str, new: str) -> UserProgram:
    """A copy of ``port`` whose likelihood takes the precision as its standard deviation."""
    text = Path(port.path).read_text()
    assert old in text
    path = tmp_path / f"wrong_{Path(port.path).name}"
    path.write_text(text.replace(old, new))
    return UserProgram(port.backend, path, port.entry, port.names)


def write(tmp_path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# -- fitting hand-written programs -----------------------------------------------------------------
def _check_fit(idata, rats, program_name: str):
    post = idata.posterior
    assert set(post.data_vars) == {s.name for s in rats.statements}
    assert program_name not in post.data_vars
    assert post["alpha"].dims == ("chain", "draw", "rat")
    assert post.sizes == {"chain": 2, "draw": 300, "rat": 30}
    np.testing.assert_allclose(post["sigma"], 1 / np.sqrt(post["tau"]), rtol=1e-10)
    assert abs(float(post["mu_beta"].mean()) - 6.19) < 0.3  # BUGS: 6.186 (sd 0.11)


@pytest.mark.slow
def test_numpyro_port_fits_under_the_spec_names_and_shapes(numpyro_fit, rats):
    _check_fit(numpyro_fit, rats, "tau_y")  # tau_y comes back as tau; alpha (30, 1) as (30,)
    assert numpyro_fit.attrs["backend"] == "numpyro"
    assert numpyro_fit.attrs["program_file"] == str(NUMPYRO_PORT.path)


@pytest.mark.slow
def test_pymc_port_fits_under_the_spec_names(pymc_fit, rats):
    _check_fit(pymc_fit, rats, "sigma_y")  # sigma_y comes back as sigma
    assert pymc_fit.attrs["backend"] == "pymc"


# -- log densities ---------------------------------------------------------------------------------
@pytest.mark.parametrize("port", [NUMPYRO_PORT, PYMC_PORT], ids=["numpyro", "pymc"])
def test_a_correct_port_has_the_generated_density_and_terms(port, rats, points):
    backend = get_backend(port.backend)
    generated = backend.emit(rats)
    user = backend.log_density_user(rats, port, points)
    assert user.shape == (6,) and np.all(np.isfinite(user))
    assert constant(user, backend.log_density(rats, generated, points))
    terms = backend.log_density_terms(rats, port, points)
    reference = backend.log_density_terms(rats, generated, points)
    assert set(terms) == set(reference) == {*PRIORS, "y"}  # tau_y's term comes back as tau
    for name in reference:
        assert terms[name].shape == (6,)
        assert constant(terms[name], reference[name]), name
    np.testing.assert_allclose(sum(terms.values()), user, rtol=1e-12)


@pytest.mark.parametrize(
    ("port", "old", "new"),
    [
        (NUMPYRO_PORT, "Normal(alpha + beta * x, sigma)", "Normal(alpha + beta * x, tau_y)"),
        (PYMC_PORT, 'pm.Normal("y", mu, sigma=sigma_y,', 'pm.Normal("y", mu, sigma=tau,'),
    ],
    ids=["numpyro", "pymc"],
)
def test_a_wrong_likelihood_shows_in_the_term_of_y_only(port, old, new, tmp_path, rats, points):
    backend = get_backend(port.backend)
    wrong = wrong_port(tmp_path, port, old, new)
    generated = backend.emit(rats)
    assert not constant(backend.log_density_user(rats, wrong, points),
                        backend.log_density(rats, generated, points))
    terms = backend.log_density_terms(rats, wrong, points)
    reference = backend.log_density_terms(rats, generated, points)
    culprits = [n for n in reference if not constant(terms[n], reference[n])]
    assert culprits == ["y"]


def test_ports_of_two_languages_agree_term_by_term(rats, points):
    numpyro_terms = get_backend("numpyro").log_density_terms(rats, NUMPYRO_PORT, points)
    pymc_terms = get_backend("pymc").log_density_terms(rats, PYMC_PORT, points)
    for name in (*PRIORS, "y"):
        assert constant(numpyro_terms[name], pymc_terms[name]), name


def test_the_emitted_numpyro_module_runs_as_a_hand_written_program(tmp_path, rats, points):
    backend = get_backend("numpyro")
    program = backend.emit(rats)
    path = tmp_path / "emitted_rats.py"
    path.write_text(program)
    user = UserProgram("numpyro", path)  # model(N_rat, N_week, x, y=None)
    np.testing.assert_allclose(backend.log_density_user(rats, user, points),
                               backend.log_density(rats, program, points), rtol=1e-12)


# -- passing the spec's data by name ---------------------------------------------------------------
def test_entry_parameters_receive_data_dim_sizes_and_coords_by_name(rats):
    program = UserProgram("numpyro", PORTS / "rats_numpyro.py", names=(("weights", "y"),))

    def entry(x, weights, N_rat, coords, data, scale=2.0, /, **rest):
        pass

    def keywords(x, *, weights=None, N_week=0, other=3, **rest):
        pass

    args, kwargs = entry_arguments(entry, rats, program, "model")
    x, weights, n_rat, coords, data, scale = args
    np.testing.assert_array_equal(x, rats.datum("x").value)
    np.testing.assert_array_equal(weights, rats.datum("y").value)  # mapped by names
    assert n_rat == 30 and scale == 2.0
    assert coords["week"] == [8, 15, 22, 29, 36] and set(data) == {"x", "y", "N_rat", "N_week"}
    assert set(kwargs) == {"N_week"}  # **rest: what was not passed already (y went to weights)
    args, kwargs = entry_arguments(keywords, rats, program, "model")
    assert args == () and set(kwargs) == {"x", "weights", "N_week", "N_rat"}
    assert kwargs["N_week"] == 5  # defaults do not hide the spec's values


def test_an_unknown_required_parameter_names_the_file_function_and_the_data(tmp_path, rats):
    path = write(tmp_path, "port.py", """
        def build_model(x, weights):
            pass
    """)
    with pytest.raises(ProgramError) as info:
        crossppl.fit_program(rats, UserProgram("pymc", path), **FIT)
    message = str(info.value)
    for part in (str(path), "build_model()", "'weights'", "x, y", "N_rat", "names="):
        assert part in message, message


# -- shapes and names ------------------------------------------------------------------------------
def test_shapes_differing_by_size_one_axes_are_squeezed_and_others_are_errors():
    program = UserProgram("pymc", Path("port.py"))
    arr = np.zeros((2, 3, 30, 1))
    assert fit_shape(program, arr, (2, 3), (30,), "alpha", "alpha").shape == (2, 3, 30)
    assert fit_shape(program, np.zeros((2, 3)), (2, 3), (1,), "s", "s").shape == (2, 3, 1)
    with pytest.raises(ProgramError, match=r"'m' \(the spec's 'mu'\) has shape \(5, 30\) in the "
                                           r"program but \(30, 5\) in the spec"):
        fit_shape(program, np.zeros((2, 3, 5, 30)), (2, 3), (30, 5), "m", "mu")


def test_a_numpyro_variable_of_another_shape_fails_before_sampling(tmp_path, rats):
    path = write(tmp_path, "port.py", """
        import numpyro
        import numpyro.distributions as dist

        def model(x, y=None):
            alpha = numpyro.sample("alpha", dist.Normal(0, 1).expand([5, 30]).to_event(2))
            numpyro.sample("y", dist.Normal(alpha.T, 1).to_event(2), obs=y)
    """)
    with pytest.raises(ProgramError, match=r"'alpha' has shape \(5, 30\) in the program"):
        crossppl.fit_program(rats, UserProgram("numpyro", path), **FIT)


def test_points_are_mapped_to_program_names_and_shapes(rats, points):
    n, arrays = program_points(rats, NUMPYRO_PORT, points, {"tau_y": (), "alpha": (30, 1)})
    assert n == 6 and arrays["alpha"].shape == (6, 30, 1)
    np.testing.assert_array_equal(arrays["tau_y"], points["tau"])
    with pytest.raises(ProgramError, match="'z_alpha' gets no value"):
        program_points(rats, NUMPYRO_PORT, points, {"z_alpha": (30,)})
    with pytest.raises(ProgramError, match="has shape \\(29,\\) in the program"):
        program_points(rats, NUMPYRO_PORT, points, {"alpha": (29,)})
    terms = spec_terms(UserProgram("pymc", Path("p.py"), names=(("y1", "y"), ("y2", "y"))),
                       {"y1": np.ones(2), "y2": np.ones(2), "tau": np.zeros(2)})
    assert set(terms) == {"y", "tau"} and list(terms["y"]) == [2.0, 2.0]


def test_names_that_match_nothing_are_errors(rats):
    typo = UserProgram("pymc", Path("port.py"), names=(("sigma_Y", "sigma"),))
    with pytest.raises(ProgramError, match="names maps 'sigma_Y'"):
        spec_variables(rats, typo, ["tau", "sigma_y"])
    with pytest.raises(ProgramError, match="none of the program's variables"):
        spec_variables(rats, UserProgram("pymc", Path("port.py")), ["a", "b"])
    twice = UserProgram("pymc", Path("port.py"), names=(("s", "sigma"),))
    with pytest.raises(ProgramError, match="both 'sigma' and 's'"):
        spec_variables(rats, twice, ["sigma", "s"])


# -- the user's mistakes are clear errors ----------------------------------------------------------
@pytest.mark.parametrize("backend", ["pymc", "numpyro"])
def test_a_missing_file_is_a_user_error(backend, tmp_path, rats):
    path = tmp_path / "nope.py"
    with pytest.raises(UserInputError, match="does not exist"):
        crossppl.fit_program(rats, UserProgram(backend, path), **FIT)
    with pytest.raises(ProgramError, match=re.escape(str(path))):
        get_backend(backend).log_density_user(rats, UserProgram(backend, path), {})


@pytest.mark.parametrize("backend", ["pymc", "numpyro"])
def test_a_missing_entry_names_the_functions_there_are(backend, tmp_path, rats):
    path = write(tmp_path, "port.py", """
        def my_model(x, y):
            pass
    """)
    with pytest.raises(ProgramError, match=r"'fit_me' is not defined.*it defines my_model"):
        crossppl.fit_program(rats, UserProgram(backend, path, entry="fit_me"), **FIT)


@pytest.mark.parametrize("backend", ["pymc", "numpyro"])
def test_a_syntax_error_names_the_line(backend, tmp_path, rats):
    path = write(tmp_path, "port.py", """
        def build_model(x, y):
            return (x
        def model(x, y):
            pass
    """)
    where = re.escape(str(path))
    with pytest.raises(ProgramError, match=rf"{where}:\d+: the program has a syntax error"):
        crossppl.fit_program(rats, UserProgram(backend, path), **FIT)


def test_an_import_error_is_a_user_error(tmp_path, rats):
    path = write(tmp_path, "port.py", """
        import not_a_package_crossppl_knows
    """)
    with pytest.raises(ProgramError, match="importing the program failed: ModuleNotFoundError"):
        crossppl.fit_program(rats, UserProgram("numpyro", path), **FIT)


@pytest.mark.parametrize(("backend", "entry"), [("pymc", "build_model"), ("numpyro", "model")])
def test_an_entry_that_raises_names_the_line_and_the_exception(backend, entry, tmp_path, rats):
    path = write(tmp_path, "port.py", f"""
        def {entry}(x, y):
            n_rat, n_week = x.shape
    """)
    with pytest.raises(ProgramError) as info:
        crossppl.fit_program(rats, UserProgram(backend, path), **FIT)
    message = str(info.value)
    assert message.startswith(f"{path}:3: {entry}(): calling it with the spec's data (x, y)")
    assert "ValueError: not enough values to unpack" in message


def test_a_pymc_entry_must_return_the_model(tmp_path, rats):
    path = write(tmp_path, "port.py", """
        import pymc as pm

        def build_model(x, y):
            with pm.Model():
                pm.Normal("mu_alpha", 0, 1)
    """)
    with pytest.raises(ProgramError, match=r"returned NoneType, not a pm\.Model.*return model"):
        crossppl.fit_program(rats, UserProgram("pymc", path), **FIT)


def test_an_engine_limit_stays_an_engine_error(rats):
    with pytest.raises(EngineError, match="at least 1 warmup"):
        crossppl.fit_program(rats, PYMC_PORT, engine="nutpie", chains=1, warmup=0, draws=10,
                             progress=False)


def test_a_hand_written_program_runs_with_its_own_seed(monkeypatch, rats):
    """A port doing what the generated program does, in the same order, would reproduce its
    draws exactly with the same seed: compare gives each hand-written program its own."""
    import crossppl.runner
    from crossppl.comparison import compare, program_seed
    from crossppl.runner import FitOutcome

    seeds = {}

    def fake_run_fits(jobs, **_):
        seeds.update({job.name: job.kwargs["config"].seed for job in jobs})
        return {job.name: FitOutcome(job.name, error="not run") for job in jobs}

    monkeypatch.setattr(crossppl.runner, "run_fits", fake_run_fits)
    port = str(PORTS / "rats_numpyro.py") + ":model"
    result = compare(rats, backends=["numpyro"], programs=[f"numpyro={port}"], seed=5)
    assert result.verdict.kind == "inconclusive"
    assert seeds == {"numpyro": 5, "rats_numpyro": program_seed(5, 0)}
    assert len({program_seed(5, i) for i in range(3)} | {5}) == 4
