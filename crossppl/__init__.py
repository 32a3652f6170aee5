"""crossppl: one Bayesian model spec, written for Stan, PyMC and NumPyro, fitted and compared."""

import types

import crossppl.compare as _compare_package  # light: the package's __init__ imports nothing
from crossppl.errors import (
    ConfigError,
    CrossPPLError,
    DataError,
    EngineError,
    NotYetTranslated,
    SpecError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CrossPPLError",
    "DataError",
    "EngineError",
    "NotYetTranslated",
    "SpecError",
    "__version__",
    "compare",
    "emit",
    "fit",
    "fit_program",
    "list_models",
    "load_netcdf",
    "load_spec",
    "prior_predictive",
]


class _CallableModule(types.ModuleType):
    """Lets ``crossppl.compare(...)`` run :func:`crossppl.comparison.compare` while
    ``crossppl.compare`` stays the package of the statistics."""

    def __call__(self, *args, **kwargs):
        """Fit and compare; see :func:`crossppl.comparison.compare`."""
        from crossppl.comparison import compare  # lazy: the API loads on first use

        return compare(*args, **kwargs)


_compare_package.__class__ = _CallableModule
compare = _compare_package


def __getattr__(name: str):
    # Keep `import crossppl` light: the API (and the PPLs behind it) load on first use.
    if name in ("emit", "fit", "fit_program", "list_models", "load_spec", "prior_predictive"):
        from crossppl import api

        return getattr(api, name)
    if name == "load_netcdf":
        from crossppl.datatree import load_netcdf

        return load_netcdf
    if name == "testing":
        import importlib

        return importlib.import_module(f"crossppl.{name}")
    raise AttributeError(f"module 'crossppl' has no attribute {name!r}")
