"""One module per PPL: IR -> program text, and a runner returning canonical InferenceData."""

from __future__ import annotations

import importlib

from crossppl.errors import ConfigError, EngineError

from .base import Backend, Draws, Generator, to_inference_data

__all__ = ["BACKENDS", "Backend", "Draws", "Generator", "get_backend", "to_inference_data"]

#: Backend name -> "module:class", imported on first use (each pulls in a heavy PPL).
BACKENDS: dict[str, str] = {
    "stan": "crossppl.backends.stan:StanBackend",
    "pymc": "crossppl.backends.pymc:PyMCBackend",
    "numpyro": "crossppl.backends.numpyro:NumPyroBackend",
}


def get_backend(name: str) -> Backend:
    """Return the backend called ``name``."""
    if name not in BACKENDS:
        raise ConfigError(
            f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}", entry="backend"
        )
    module, cls = BACKENDS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "crossppl":
            raise
        raise EngineError(
            name,
            "-",
            f"needs the package {exc.name!r}, which is not installed; "
            f"install it with: pip install 'crossppl[{name}]'",
        ) from None
    return getattr(mod, cls)()
