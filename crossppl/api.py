"""The public Python API: load a spec, emit a program, fit it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
    from crossppl.backends import get_backend

    model = load_spec(spec)
    return get_backend(backend).emit(model)


def fit(
    spec: str | Path | Model,
    backend: str,
    *,
    engine: str | None = None,
    output: str | Path | None = None,
    chains: int | None = None,
    warmup: int | None = None,
    draws: int | None = None,
    seed: int | None = None,
    target_accept: float | None = None,
    max_treedepth: int | None = None,
    init: str | None = None,
    progress: bool | None = None,
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
    chains, warmup, draws, seed, target_accept, max_treedepth, init, progress
        Sampler settings, the same for every backend; see :class:`crossppl.config.FitConfig`.
        None (the default) takes the spec's ``[fit]`` value if it has one, else FitConfig's
        default (4 chains x (1000 + 1000), seed 1, target_accept 0.8, max_treedepth 10).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (parameters and derived quantities), ``sample_stats`` and
        ``observed_data``, with the spec's names, dims and coords; ``attrs`` record the
        backend, engine, library versions, seed and the program's hash.
    """
    from crossppl.backends import get_backend, to_inference_data

    model = load_spec(spec)
    config = FitConfig.resolve(
        model.fit,
        chains=chains,
        warmup=warmup,
        draws=draws,
        seed=seed,
        target_accept=target_accept,
        max_treedepth=max_treedepth,
        init=init,
        progress=progress,
    )
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
    from crossppl.backends import get_backend
    from crossppl.backends.base import prior_to_inference_data

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
    **settings,
):
    """Fit a hand-written program (:class:`crossppl.backends.base.UserProgram`) with the spec's
    data and the same sampler settings as :func:`fit`; names are mapped to the spec's."""
    from crossppl.backends import get_backend, to_inference_data

    model = load_spec(spec)
    config = FitConfig.resolve(model.fit, **settings)
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
