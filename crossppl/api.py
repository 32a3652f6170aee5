"""The public Python API: load a spec, emit a program, fit it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from crossppl.backends import get_backend, to_inference_data
from crossppl.backends.base import prior_to_inference_data
from crossppl.config import FitConfig
from crossppl.models import Model, bundled_specs
from crossppl.models import load_spec as _load_spec
from crossppl.models.spec import path_text
from crossppl.progress import report

__all__ = ["emit", "fit", "fit_program", "list_models", "load_spec", "prior_predictive",
           "save_netcdf"]


def load_spec(spec: str | Path | Model) -> Model:
    """Load a spec: a bundled model's name, a path to a TOML spec, or an already loaded model."""
    if isinstance(spec, Model):
        return spec
    return _load_spec(spec)


def list_models() -> dict[str, str]:
    """Bundled models: name -> one-line description."""
    return {name: load_spec(path).description for name, path in bundled_specs().items()}


def emit(spec: str | Path | Model, backend: str) -> str:
    """Return the program that ``backend`` (a registered backend's name: ``crossppl backends``
    lists them) runs for ``spec``: program text in the PPL's language, or a runnable Python
    module for a Python PPL."""
    model = load_spec(spec)
    return get_backend(backend).emit(model)


def fit(
    spec: str | Path | Model,
    backend: str,
    *,
    engine: str | None = None,
    output: str | Path | None = None,
    config: FitConfig | None = None,
    **overrides,
):
    """Fit ``spec`` with ``backend``'s generated program and return ArviZ InferenceData.

    Parameters
    ----------
    spec
        A bundled model's name, a path to a TOML spec, or a loaded model.
    backend
        A registered backend's name (``crossppl backends`` lists them with their engines).
    engine
        The engine that runs the program, one of the backend's ``engines``; default: the
        backend's :meth:`~crossppl.backends.base.Backend.default_engine`.
    output
        If given, the InferenceData is also written there as NetCDF (atomically: a failed or
        interrupted fit leaves no file).
    config
        The sampler settings, the same for every backend (:class:`crossppl.config.FitConfig`),
        used as they are. None: the spec's ``[fit]`` values, else FitConfig's defaults (4
        chains x (1000 + 1000), seed 1, target_accept 0.8, max_treedepth 10).
    **overrides
        FitConfig's settings by name (``chains=2``, ``seed=3``, ``progress=False``, ...), over
        ``config`` or the spec's ``[fit]``; None leaves a setting as it is.

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (parameters and derived quantities), ``sample_stats`` and
        ``observed_data``, with the spec's names, dims and coords; ``attrs`` record the
        backend, engine, library versions, seed and the program's hash.
    """
    model = load_spec(spec)
    config = FitConfig.resolve(model.fit, config, **overrides)
    impl = get_backend(backend)
    chosen = impl.check_engine(engine)
    program = impl.emit(model)
    report("building the program")
    raw = impl.sample(model, program, config, chosen)
    report("collecting the draws")
    idata = to_inference_data(model, raw, backend=impl, program=program, config=config)
    if output is not None:
        save_netcdf(idata, output)
    return idata


def prior_predictive(
    spec: str | Path | Model,
    backend: str,
    *,
    draws: int = 1000,
    seed: int = 1,
    output: str | Path | None = None,
):
    """Simulate ``spec`` forward from its priors with ``backend``'s program (no MCMC).

    Returns
    -------
    arviz.InferenceData
        ``prior`` (parameters, derived and generated quantities), ``prior_predictive``
        (replicated observed data) and ``observed_data``, one chain of ``draws`` draws. Vague
        priors give non-finite values in some draws (e.g. a Gamma(0.001, 0.001) precision that
        underflows to 0); they are kept as the engine returns them.
    """
    FitConfig(draws=draws, seed=seed)  # validates both (same rules as a fit), before any work
    model = load_spec(spec)
    impl = get_backend(backend)
    arrays = impl.prior_predictive(model, draws, seed)
    idata = prior_to_inference_data(model, arrays, backend=impl, seed=seed)
    if output is not None:
        save_netcdf(idata, output)
    return idata


def fit_program(
    spec: str | Path | Model,
    program,
    *,
    engine: str | None = None,
    output: str | Path | None = None,
    config: FitConfig | None = None,
    **overrides,
):
    """Fit a hand-written program (:class:`crossppl.backends.base.UserProgram`) with the spec's
    data and the sampler settings of :func:`fit` (``config`` and ``overrides`` as there); names
    are mapped to the spec's."""
    model = load_spec(spec)
    config = FitConfig.resolve(model.fit, config, **overrides)
    impl = get_backend(program.backend)
    chosen = impl.check_engine(engine)
    report("building the program")
    raw = impl.sample_user(model, program, config, chosen)
    report("collecting the draws")
    raw.extra_attrs.setdefault("program_file", path_text(program.path))
    idata = to_inference_data(
        model, raw, backend=impl, program=program.source(), config=config, partial=True
    )
    if output is not None:
        save_netcdf(idata, output)
    return idata


def save_netcdf(idata, path: str | Path) -> Path:
    """Write ``idata`` to ``path`` atomically: a temporary file renamed into place, with the
    mode a newly created file gets (0o666 less the process's umask), as ``open`` would give."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
