"""crossppl: one Bayesian model spec, written for Stan, PyMC and NumPyro, fitted and compared."""

import warnings as _warnings

# ArviZ 0.2x announces its 1.0 refactor once a day on import (a FutureWarning about ArviZ itself,
# not about anything crossppl or its user does): noise in crossppl's output.
_warnings.filterwarnings("ignore", message="\nArviZ is undergoing a major refactor",
                         category=FutureWarning)

from crossppl.errors import (  # noqa: E402  (after the warnings filter)
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
    "load_spec",
    "prior_predictive",
]


def __getattr__(name: str):
    # Keep `import crossppl` light: the API (and the PPLs behind it) load on first use.
    if name in ("emit", "fit", "fit_program", "list_models", "load_spec", "prior_predictive"):
        from crossppl import api

        return getattr(api, name)
    if name in ("compare", "testing"):
        import importlib

        return importlib.import_module(f"crossppl.{name}")
    raise AttributeError(f"module 'crossppl' has no attribute {name!r}")
