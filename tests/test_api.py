"""The Python API and the pieces every backend shares (config, converter, atomic output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from crossppl.backends import get_backend
from crossppl.backends.base import Draws, model_data, program_hash, to_inference_data

import crossppl
from crossppl.api import save_netcdf
from crossppl.config import FitConfig
from crossppl.errors import ConfigError, EngineError


def test_public_api_is_small_and_importable():
    assert set(crossppl.__all__) >= {"load_spec", "emit", "fit", "list_models", "SpecError"}
    for name in crossppl.__all__:
        assert getattr(crossppl, name) is not None


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("chains", 0, "chains must be an integer >= 1, found 0"),
        ("draws", 2.5, "draws must be an integer >= 1, found 2.5"),
        ("seed", -1, "seed must be an integer in [0, 2**31), found -1"),
        ("target_accept", 1.0, "target_accept must be strictly between 0 and 1, found 1.0"),
        ("init", "zeros", "init must be one of uniform, engine, found 'zeros'"),
    ],
)
def test_config_errors_name_the_argument_the_value_and_the_fix(field, value, text):
    with pytest.raises(ConfigError) as info:
        FitConfig(**{field: value})
    assert text in str(info.value)


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ConfigError,
                       match="unknown backend 'nope'; choose one of stan, pymc, numpyro, jags"):
        get_backend("nope")


def test_model_data_gives_sizes_and_zero_based_arrays(rats):
    data = model_data(rats)
    assert data["N_rat"] == 30 and data["N_week"] == 5
    assert data["y"].shape == (30, 5)
    np.testing.assert_array_equal(data["x"], [8, 15, 22, 29, 36])


def _fake_draws(rats, chains=2, draws=5, shape_bug=False):
    rng = np.random.default_rng(0)
    post = {}
    for s in rats.statements:
        shape = (chains, draws, *(rats.dim(d).size for d in s.dims))
        if shape_bug and s.name == "alpha":
            shape = (*shape[:-1], 29)
        post[s.name] = rng.normal(size=shape)
    stats = {
        "lp": rng.normal(size=(chains, draws)),
        "diverging": np.zeros((chains, draws), int),
        "step_size": np.ones((chains, draws)),
    }
    return Draws(post, stats, engine="fake")


def test_converter_gives_canonical_names_dims_coords_and_attrs(rats):
    backend = get_backend("numpyro")
    config = FitConfig(chains=2, draws=5)
    idata = to_inference_data(
        rats, _fake_draws(rats), backend=backend, program="prog", config=config
    )
    assert isinstance(idata, xr.DataTree)
    assert set(idata.children) == {"posterior", "sample_stats", "observed_data"}
    assert idata.posterior["alpha"].dims == ("chain", "draw", "rat")
    assert list(idata.observed_data["week"].values) == [8, 15, 22, 29, 36]
    assert list(idata.posterior["rat"].values) == list(range(30))
    assert idata.observed_data["y"].dims == ("rat", "week")
    assert idata.sample_stats["diverging"].dtype == bool
    attrs = idata.posterior.attrs
    assert attrs["backend"] == "numpyro" and attrs["engine"] == "fake"
    assert attrs["program_sha256"] == program_hash("prog")
    assert attrs["config_seed"] == 1 and "version_arviz_base" in attrs


def test_converter_rejects_draws_of_the_wrong_shape(rats):
    with pytest.raises(EngineError, match=r"draws of 'alpha' have shape \(2, 5, 29\)"):
        to_inference_data(
            rats,
            _fake_draws(rats, shape_bug=True),
            backend=get_backend("numpyro"),
            program="p",
            config=FitConfig(chains=2, draws=5),
        )


def test_save_netcdf_is_atomic(rats, tmp_path):
    idata = to_inference_data(
        rats, _fake_draws(rats), backend=get_backend("numpyro"), program="p",
        config=FitConfig(chains=2, draws=5),
    )
    target = tmp_path / "deep" / "fit.nc"
    save_netcdf(idata, target)
    assert target.is_file()

    class Boom(Exception):
        pass

    class Broken:
        def to_netcdf(self, path):
            with open(path, "wb") as fh:
                fh.write(b"partial")
            raise Boom

    with pytest.raises(Boom):
        save_netcdf(Broken(), tmp_path / "broken.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]


def test_failed_fit_leaves_no_output_file(rats, tmp_path, monkeypatch):
    backend_cls = type(get_backend("numpyro"))

    def explode(self, *args, **kwargs):
        raise EngineError("numpyro", "numpyro", "sampler crashed")

    monkeypatch.setattr(backend_cls, "sample", explode)
    out = tmp_path / "fit.nc"
    with pytest.raises(EngineError, match="sampler crashed"):
        crossppl.fit(rats, "numpyro", output=out, chains=1, warmup=10, draws=10)
    assert not out.exists() and list(tmp_path.iterdir()) == []


# -- ArviZ 1.x: the result is an xarray.DataTree; older files and objects still work ---------------
PREVIOUS = Path(__file__).parent / "fixtures" / "previous"


def test_a_file_written_by_the_previous_version_loads_as_a_datatree():
    """``rats-numpyro-0.1.0-arviz0.nc`` was written by crossppl 0.1.0 on ArviZ 0.23 / Python
    3.11 (``crossppl fit rats --backend numpyro --chains 2 --warmup 200 --draws 100``)."""
    idata = crossppl.load_netcdf(PREVIOUS / "rats-numpyro-0.1.0-arviz0.nc")
    assert isinstance(idata, xr.DataTree)
    assert {"posterior", "sample_stats", "observed_data"} <= set(idata.children)
    assert idata.posterior["alpha"].dims == ("chain", "draw", "rat")
    assert idata.posterior.attrs["backend"] == "numpyro"


def test_a_file_written_by_the_previous_version_is_a_reference(tmp_path):
    from crossppl.compare.reference import load_reference

    table = load_reference(PREVIOUS / "rats-numpyro-0.1.0-arviz0.nc")
    assert {"mu_alpha", "alpha[0]", "sigma"} <= set(table.index)
    assert 95 < table.loc["mu_alpha", "mean"] < 120
    assert (table["mcse_q05"] > 0).all()


class _InferenceDataLike:
    """What ArviZ 0.x's InferenceData offers: ``groups()`` and a Dataset per group."""

    def __init__(self, tree: xr.DataTree) -> None:
        self._tree = tree
        for name in tree.children:
            setattr(self, name, tree[name].to_dataset())

    def groups(self) -> list[str]:
        return list(self._tree.children)


def test_assert_posteriors_match_takes_datatrees_and_inference_data_alike():
    from crossppl.testing import assert_posteriors_match

    rng = np.random.default_rng(3)

    def tree(shift: float = 0.0) -> xr.DataTree:
        from arviz_base import from_dict

        return from_dict({"posterior": {"a": shift + rng.normal(size=(4, 1000))},
                          "sample_stats": {"diverging": np.zeros((4, 1000), bool)}})

    assert_posteriors_match(tree(), _InferenceDataLike(tree()))
    with pytest.raises(AssertionError, match="rejected"):
        assert_posteriors_match(tree(), _InferenceDataLike(tree(shift=1.0)))
    with pytest.raises(TypeError, match=r"expected an xarray\.DataTree"):
        assert_posteriors_match(tree(), object())


def test_compare_takes_draws_in_memory_as_the_reference():
    idata = crossppl.load_netcdf(PREVIOUS / "rats-numpyro-0.1.0-arviz0.nc")
    result = crossppl.compare("rats", backends=[], reference=idata)
    assert "reference" in result.sources
    assert result.sources["reference"].summary.loc["mu_alpha", "mean"] > 95


def test_resolve_takes_a_config_and_overrides_over_the_spec_s_recommendations():
    recommended = (("target_accept", 0.95), ("draws", 2000))
    assert FitConfig.resolve(recommended, chains=2) == FitConfig(
        chains=2, target_accept=0.95, draws=2000)
    given = FitConfig(chains=3, draws=10)  # a whole config is used as it is
    assert FitConfig.resolve(recommended, given) == given
    assert FitConfig.resolve(recommended, given, seed=5, draws=None) == FitConfig(
        chains=3, draws=10, seed=5)


@pytest.mark.parametrize(("config", "overrides", "text"), [
    (None, {"chain": 2}, "unknown sampler setting 'chain' (found chain=2); did you mean "
     "chains=2? the settings are chains, warmup, draws, seed"),
    (None, {"draws": 0}, "draws must be an integer >= 1, found 0; give e.g. draws=1000, or "
     "leave it out for the default"),
    (None, {"init": "zeros"}, "init must be one of uniform, engine, found 'zeros'; or leave"),
    ({"chains": 2}, {}, "config must be a FitConfig or None, found dict; give "
     "config=FitConfig(...)"),
])
def test_bad_settings_name_the_argument_the_value_and_the_fix(config, overrides, text):
    with pytest.raises(ConfigError) as info:
        FitConfig.resolve((), config, **overrides)
    assert text in str(info.value)


def test_fit_refuses_an_unknown_setting_before_any_work():
    with pytest.raises(ConfigError, match="unknown sampler setting 'chian'"):
        crossppl.fit("rats", "numpyro", chian=2)


def test_the_settings_a_spec_and_the_command_line_take_are_fitconfig_s_fields():
    from crossppl.models.spec import FIT_FIELDS

    from crossppl.cli import _parser

    assert FIT_FIELDS == ("chains", "warmup", "draws", "target_accept", "max_treedepth", "init")
    assert FitConfig.names() == (*FIT_FIELDS[:3], "seed", *FIT_FIELDS[3:], "progress")
    args = _parser().parse_args(["fit", "rats", "-b", "stan", "--target-accept", "0.9",
                                 "--no-progress", "--init", "engine"])
    assert (args.target_accept, args.progress, args.init, args.chains) == (
        0.9, False, "engine", None)
