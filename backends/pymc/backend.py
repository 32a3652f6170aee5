"""The PyMC backend: nutpie and pm.sample engines, hand-written programs, and
:class:`PyMCBackend` (see :mod:`crossppl.backends.pymc`)."""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import hashlib
import importlib.util
import inspect
import logging
import os
import sys
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from crossppl.models.ir import (
    Model,
)

from crossppl.config import FitConfig, cache_dir
from crossppl.errors import EngineError
from crossppl.progress import report, reporting

from ..base import Backend, Declarations, Draws, UserProgram, model_data
from ..pyexec import load_module
from ..userprog import (
    ProgramError,
    call_entry,
    entry_arguments,
    entry_function,
    load_program,
    program_points,
    spec_posterior,
    spec_terms,
    spec_variables,
    user_key,
)
from .generator import PyMCGenerator

__all__ = ["PyMCBackend"]




# -- PyTensor's compile cache ---------------------------------------------------------------------
def _user_chose_compiledir() -> bool:
    """Whether the user set PyTensor's (base_)compiledir in PYTENSOR_FLAGS or a .pytensorrc."""
    if "compiledir" in os.environ.get("PYTENSOR_FLAGS", ""):
        return True
    default_rc = os.pathsep.join(["~/.pytensorrc", "~/.pytensorrc.txt"])
    for name in os.environ.get("PYTENSORRC", default_rc).split(os.pathsep):
        path = Path(name).expanduser()
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.Error:
            return True  # unreadable: leave PyTensor's configuration entirely to the user
        if any("compiledir" in key for s in parser.sections() for key in parser[s]):
            return True
    return False


def _configure_pytensor() -> None:
    """Point PyTensor's compile cache (C and Numba) at crossppl's cache dir.

    PyTensor reads ``PYTENSOR_FLAGS`` once, when first imported, so this does nothing if it is
    already imported, and nothing if the user chose a compile dir. The variable stays set so
    that PyMC's worker processes use the same cache.
    """
    if "pytensor" in sys.modules or _user_chose_compiledir():
        return
    try:
        path = str(cache_dir("pytensor"))
    except OSError:
        return  # no writable cache dir: PyTensor's default
    if "," in path or "=" in path:
        return  # cannot be written in PYTENSOR_FLAGS
    flags = os.environ.get("PYTENSOR_FLAGS", "").strip().strip(",")
    os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={path}") if f)


_configure_pytensor()


# -- the backend -----------------------------------------------------------------------------------
#: sample_stats names: nutpie's -> ArviZ's.
_NUTPIE_STATS = {
    "logp": "lp",
    "diverging": "diverging",
    "step_size": "step_size",
    "depth": "tree_depth",
    "n_steps": "n_steps",
    "mean_tree_accept": "acceptance_rate",
    "energy": "energy",
    "energy_error": "energy_error",
    "maxdepth_reached": "reached_max_treedepth",
}
#: sample_stats names: PyMC's NUTS (raw MultiTrace names) -> ArviZ's.
_PYMC_STATS = {
    "model_logp": "lp",
    "diverging": "diverging",
    "step_size": "step_size",
    "depth": "tree_depth",
    "tree_size": "n_steps",
    "mean_tree_accept": "acceptance_rate",
    "energy": "energy",
    "energy_error": "energy_error",
    "reached_max_treedepth": "reached_max_treedepth",
}
_INTEGER_STATS = ("tree_depth", "n_steps")

#: Compiled nutpie models by program and data, so a second fit in one process skips the ~10 s
#: Numba compile (only the sampler settings and the initial-point function change per fit).
_NUTPIE_CACHE: OrderedDict[str, Any] = OrderedDict()
#: Compiled log density functions (constrained space, no Jacobian) by program and data.
_LOGP_CACHE: OrderedDict[str, Any] = OrderedDict()
_CACHE_SIZE = 8


def _cached(cache: OrderedDict[str, Any], key: str, make: Callable[[], Any]) -> Any:
    """``cache[key]``, made with ``make()`` when missing; least recently used entries go."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = make()
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


#: The function of a hand-written PyMC program called when its UserProgram names none.
USER_ENTRY = "build_model"

_NOISY_LOGGERS = ("pymc", "pytensor", "numba", "nutpie")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence PyMC/PyTensor/Numba/nutpie chatter that is not actionable.

    Information and warnings (progress messages, "could not link to BLAS", overflow warnings
    while NUTS explores the tails of Gamma(0.001, 0.001) priors, divergence counts that the
    sample_stats already hold) are dropped; exceptions still propagate.
    """
    loggers = [logging.getLogger(n) for n in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _data_key(program: str, data: Mapping[str, np.ndarray], coords: Mapping) -> str:
    h = hashlib.sha256(program.encode())
    for name in sorted(data):
        arr = np.ascontiguousarray(data[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}".encode())
        h.update(arr.tobytes())
    h.update(repr(sorted((k, list(v)) for k, v in coords.items())).encode())
    return h.hexdigest()


def _nutpie_progress(chains: list[Any]) -> None:
    """nutpie's ``progress_callback``: its chains' draws so far, warmup included, reported
    (:func:`crossppl.progress.report`)."""
    report("sampling", sum(int(c.finished_draws) for c in chains),
           sum(int(c.total_draws) for c in chains))


def _draw_counter(config: FitConfig) -> Callable[..., None]:
    """A ``pm.sample`` callback reporting the draws of all chains so far, warmup included
    (:func:`crossppl.progress.report`)."""
    total = config.chains * (config.warmup + config.draws)
    count = [0]

    def callback(trace: Any = None, draw: Any = None) -> None:
        count[0] += 1
        report("sampling", count[0], total)

    return callback


class PyMCBackend(Backend):
    """Writes the model as a PyMC module and fits it with nutpie or PyMC's NUTS.

    Sampler settings (:class:`~crossppl.config.FitConfig`) map as follows:

    ============== ============================== ==========================================
    FitConfig      nutpie (``nutpie.sample``)     PyMC (``pm.sample``)
    ============== ============================== ==========================================
    chains         chains (cores = min(chains, CPUs), both engines)
    warmup         tune                           tune
    draws          draws                          draws
    seed           seed                           random_seed
    target_accept  target_accept                  target_accept
    max_treedepth  maxdepth                       max_treedepth
    init="uniform" every unconstrained coordinate U(-2, 2) (Stan's default): nutpie's
                   initial-point function is replaced; for pm.sample the per-chain points
                   are mapped to constrained ``initvals`` with ``init="adapt_diag"`` (no
                   further jitter). A point with a non-finite density is redrawn.
    init="engine"  nutpie's default                PyMC's default (``jitter+adapt_diag``)
    progress       progress_bar                   progressbar
    seed           [generated] quantities: ``pm.sample_posterior_predictive(random_seed=seed)``
    ============== ============================== ==========================================
    """

    name: ClassVar[str] = "pymc"
    engines: ClassVar[tuple[str, ...]] = ("nutpie", "pymc")
    packages: ClassVar[tuple[str, ...]] = ("pymc", "pytensor", "nutpie")
    program_entry: ClassVar[str | None] = USER_ENTRY
    order: ClassVar[float] = 20
    engine_packages: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "nutpie": ("pymc", "nutpie"), "pymc": ("pymc",)}

    def default_engine(self) -> str:
        """nutpie when it is importable, else PyMC's own NUTS."""
        return "nutpie" if importlib.util.find_spec("nutpie") is not None else "pymc"

    def emit(self, model: Model) -> str:
        return PyMCGenerator(model).module()

    # -- building ---------------------------------------------------------------------------------
    def build(self, model: Model, program: str, generated: bool = False) -> Any:
        """Execute ``program`` and return its ``build_model`` applied to the model's data;
        ``generated=True`` adds the posterior-predictive quantities (specs with [generated])."""
        with _quiet():
            module = load_module(program, f"{model.name}_pymc")
            if generated:
                return module.build_model(model_data(model), model.coords, generated=True)
            return module.build_model(model_data(model), model.coords)

    def declarations(self, model: Model, program: str) -> Declarations:
        """The built ``pm.Model``'s free random variables (shapes at its initial point),
        deterministics and observed random variables (generated quantities are drawn by a
        model of their own after the fit)."""
        pm_model = self.build(model, program)
        start = pm_model.initial_point()
        params = {rv.name: tuple(start[pm_model.rvs_to_values[rv].name].shape)
                  for rv in pm_model.free_RVs}
        return Declarations(params, frozenset(d.name for d in pm_model.deterministics), None,
                            frozenset(rv.name for rv in pm_model.observed_RVs))

    def build_user(self, model: Model, program: UserProgram) -> tuple[Any, list[str]]:
        """Import a hand-written program and call its entry (default ``build_model``) with the
        spec's data by name (see :mod:`~.userprog`); returns the ``pm.Model`` it built and the
        entry's parameter names. The user's mistakes are :class:`~.userprog.ProgramError`."""
        import pymc as pm

        with _quiet():
            module = load_program(program)
            fn = entry_function(program, module, USER_ENTRY)
            args, kwargs = entry_arguments(fn, model, program, USER_ENTRY)
            result = call_entry(program, fn, args, kwargs, USER_ENTRY)
        if not isinstance(result, pm.Model):
            raise ProgramError(
                f"it returned {type(result).__name__}, not a pm.Model; build the model in "
                "`with pm.Model() as model:` and end the function with `return model`",
                file=str(program.path), entry=f"{program.entry or USER_ENTRY}()",
            )
        return result, list(inspect.signature(fn).parameters)

    # -- sampling ---------------------------------------------------------------------------------
    def _check_sampler(self, engine: str) -> str:
        engine = self.check_engine(engine)
        if engine == "nutpie" and importlib.util.find_spec("nutpie") is None:
            raise EngineError(
                self.name, engine, "nutpie is not installed; pip install nutpie, or use "
                "engine='pymc'"
            )
        return engine

    def sample(self, model: Model, program: str, config: FitConfig, engine: str) -> Draws:
        engine = self._check_sampler(engine)
        start = time.perf_counter()
        try:
            pm_model = self.build(model, program)
        except Exception as exc:
            raise EngineError(self.name, engine, f"building the model failed: {exc}") from exc
        key = _data_key(program, model_data(model), model.coords)
        draws = self._run(pm_model, key, self._names(model), config, engine, start)
        if model.generated:
            draws.posterior.update(
                self._draw_generated(model, program, draws.posterior, config.seed, engine)
            )
        return draws

    def _draw_generated(
        self, model: Model, program: str, posterior: Mapping[str, np.ndarray], seed: int,
        engine: str,
    ) -> dict[str, np.ndarray]:
        """The [generated] quantities drawn once for every posterior draw (spec name ->
        ``(chain, draw, *dims)``): ``pm.sample_posterior_predictive`` on the model built with
        ``generated=True``, given the NUTS draws of the parameters and derived quantities."""
        import pymc as pm
        import xarray as xr

        try:
            pm_model = self.build(model, program, generated=True)
        except Exception as exc:
            raise EngineError(
                self.name, engine, f"building the model with its generated quantities failed: "
                f"{exc}"
            ) from exc
        # with the model's coords: PyMC redraws a variable whose dims' coords differ
        trace = xr.Dataset(
            {s.name: (("chain", "draw", *s.dims), posterior[s.name]) for s in model.statements},
            coords=model.coords,
        )
        names = [g.name for g in model.generated]
        try:
            with _quiet(), np.errstate(all="ignore"):
                drawn = pm.sample_posterior_predictive(
                    trace, model=pm_model, var_names=names, random_seed=seed,
                    progressbar=False, return_inferencedata=False,
                )
        except Exception as exc:
            raise EngineError(
                self.name, engine,
                f"drawing the generated quantities failed: {type(exc).__name__}: {exc}",
            ) from exc
        return {name: np.asarray(drawn[name]) for name in names}

    def prior_predictive(self, model: Model, draws: int, seed: int) -> dict[str, np.ndarray]:
        """Forward draws of the model with its generated quantities
        (``pm.sample_prior_predictive``): parameters, derived and generated quantities and
        replicated observed data, spec name -> ``(draws, *dims)``, silently.

        Non-finite values (e.g. from a Gamma(0.001, 0.001) precision that underflowed to 0)
        come back as drawn. Where a discrete distribution refuses some draw's parameters
        (NumPy cannot draw a Binomial with p = nan, nor a Poisson of rate inf), the draws are
        made one at a time and each refused draw is NaN in every variable, as Stan writes it;
        integer-valued variables are then ``float64``. NumPy 2.x no longer refuses some of
        them (a Poisson of rate NaN comes back as 0 or the smallest int64): see
        :func:`_refused_as_nan`.
        """
        import pymc as pm

        program = self.emit(model)
        try:
            pm_model = self.build(model, program, generated=bool(model.generated))
        except Exception as exc:
            raise EngineError(self.name, "pymc", f"building the model failed: {exc}") from exc
        names = [*(s.name for s in model.recorded), *model.observed_names]
        try:
            with _quiet(), np.errstate(all="ignore"):
                try:
                    drawn = pm.sample_prior_predictive(
                        draws=draws, model=pm_model, var_names=names, random_seed=seed,
                        return_inferencedata=False,
                    )
                except ValueError:
                    drawn = _forward_draws(pm_model, names, draws, seed)
        except Exception as exc:
            raise EngineError(
                self.name, "pymc",
                f"prior predictive draws failed: {type(exc).__name__}: {exc}",
            ) from exc
        return _refused_as_nan({name: np.asarray(drawn[name]) for name in names})

    def sample_user(
        self, model: Model, program: UserProgram, config: FitConfig, engine: str
    ) -> Draws:
        """Fit a hand-written PyMC program: its entry (default ``build_model``) is called with
        the spec's data by name and returns a ``pm.Model``, which is sampled exactly as a
        generated program is (:meth:`sample`). Draws are keyed by the spec's names and shaped
        as the spec's dims (size-1 axes squeezed); the program's other variables are dropped.
        """
        engine = self._check_sampler(engine)
        start = time.perf_counter()
        pm_model, params = self.build_user(model, program)
        names = spec_variables(
            model,
            program,
            [v.name for v in (*pm_model.free_RVs, *pm_model.deterministics)],
            parameters=[*params, *(v.name for v in (*pm_model.observed_RVs,
                                                     *pm_model.potentials))],
            default=USER_ENTRY,
        )
        key = _data_key(f"{user_key(program)}\0{sorted(names.items())}", model_data(model),
                        model.coords)
        draws = self._run(pm_model, key, list(names), config, engine, start)
        draws.posterior = spec_posterior(model, program, draws.posterior, names,
                                         (config.chains, config.draws))
        return draws

    def _run(self, pm_model: Any, key: str, names: list[str], config: FitConfig, engine: str,
             start: float) -> Draws:
        """Sample ``pm_model`` with ``engine``, keeping the variables ``names``; ``key``
        identifies the model and data in the compile cache."""
        run = self._sample_nutpie if engine == "nutpie" else self._sample_pymc
        try:
            with _quiet():
                return run(pm_model, key, names, config, start)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(
                self.name, engine, f"sampling failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _names(self, model: Model) -> list[str]:
        return [s.name for s in model.statements]

    def _sample_nutpie(
        self, pm_model: Any, key: str, names: list[str], config: FitConfig, start: float
    ) -> Draws:
        import nutpie

        if config.warmup < 1:
            raise EngineError(
                self.name, "nutpie", "nutpie needs at least 1 warmup iteration; "
                "set warmup >= 1 or use engine='pymc'"
            )
        compiled = _cached(
            _NUTPIE_CACHE, key, lambda: nutpie.compile_pymc_model(pm_model, var_names=names)
        )
        if config.init == "uniform":
            compiled = dataclasses.replace(
                compiled, initial_point_func=_uniform_flat(compiled.n_dim, config.seed)
            )
        built = time.perf_counter()
        idata = nutpie.sample(
            compiled,
            draws=config.draws,
            tune=config.warmup,
            chains=config.chains,
            cores=_cores(config.chains),
            seed=config.seed,
            save_warmup=False,
            progress_bar=config.show_progress,
            target_accept=float(config.target_accept),
            maxdepth=config.max_treedepth,
            **({"progress_callback": _nutpie_progress} if reporting() else {}),
        )
        done = time.perf_counter()
        if idata.posterior.sizes["draw"] < config.draws:
            # nutpie returns what it has on Ctrl-C; pass the interrupt on instead
            raise KeyboardInterrupt("nutpie sampling was interrupted")
        posterior = {n: np.asarray(idata.posterior[n].values) for n in names}
        raw = idata.sample_stats
        stats = {ours: np.asarray(raw[theirs].values) for theirs, ours in _NUTPIE_STATS.items()
                 if theirs in raw}
        return Draws(posterior, _clean_stats(stats), "nutpie", built - start, done - built)

    def _sample_pymc(
        self, pm_model: Any, key: str, names: list[str], config: FitConfig, start: float
    ) -> Draws:
        import pymc as pm

        kwargs: dict[str, Any] = {"init": "auto"}
        if config.init == "uniform":
            kwargs = {
                "init": "adapt_diag",
                "initvals": _uniform_initvals(pm_model, config.chains, config.seed),
            }
        built = time.perf_counter()
        with pm_model:
            trace = pm.sample(
                draws=config.draws,
                tune=config.warmup,
                chains=config.chains,
                cores=_cores(config.chains),
                random_seed=config.seed,
                target_accept=float(config.target_accept),
                max_treedepth=config.max_treedepth,
                progressbar=config.show_progress,
                quiet=not config.show_progress,
                compute_convergence_checks=False,
                return_inferencedata=False,
                callback=_draw_counter(config) if reporting() else None,
                **kwargs,
            )
        done = time.perf_counter()
        if len(trace) < config.draws or trace.nchains < config.chains:
            # pm.sample returns what it has on Ctrl-C; pass the interrupt on instead
            raise KeyboardInterrupt("PyMC sampling was interrupted")
        posterior = {n: np.stack(trace.get_values(n, combine=False)) for n in names}
        stats = {
            ours: np.stack(trace.get_sampler_stats(theirs, combine=False))
            for theirs, ours in _PYMC_STATS.items()
            if theirs in trace.stat_names
        }
        return Draws(posterior, _clean_stats(stats), "pymc", built - start, done - built)

    # -- log density -------------------------------------------------------------------------------
    def log_density(
        self, model: Model, program: str, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        terms, names = self._generated_terms(model, program, points)
        return _total(terms, names)

    def log_density_user(
        self, model: Model, program: UserProgram, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """:meth:`log_density` of a hand-written program: every prior, likelihood and
        ``pm.Potential`` term, in constrained space without Jacobians; ``points`` are keyed by
        the spec's names (mapped to the program's through :attr:`UserProgram.names`)."""
        terms, names = self._user_terms(model, program, points)
        return _total(terms, names)

    def log_density_terms(
        self, model: Model, program: str | UserProgram, points: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Per-variable terms (spec name -> ``(n,)``, each summed over its elements) of a
        generated program (``program`` as :meth:`emit` wrote it) or a hand-written one. A
        ``pm.Potential`` appears under its own (mapped) name."""
        if isinstance(program, UserProgram):
            terms, _ = self._user_terms(model, program, points)
            return spec_terms(program, terms)
        terms, _ = self._generated_terms(model, program, points)
        return spec_terms(None, terms)

    def _generated_terms(
        self, model: Model, program: str, points: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        missing = [p.name for p in model.parameters if p.name not in points]
        if missing:
            raise ValueError(f"points lack values of the parameter(s) {', '.join(missing)}")
        arrays = {p.name: np.asarray(points[p.name], dtype=float) for p in model.parameters}
        sizes = {a.shape[0] if a.ndim else -1 for a in arrays.values()}
        if len(sizes) != 1 or -1 in sizes:
            raise ValueError("every parameter needs an array of shape (n, *dims) with one n")
        n = sizes.pop()
        for p in model.parameters:
            expected = (n, *(model.dim(d).size for d in p.dims))
            if arrays[p.name].shape != expected:
                raise ValueError(
                    f"{p.name} has shape {arrays[p.name].shape}, expected {expected}"
                )
        logp = self._compiled_logp(
            _data_key(program, model_data(model), model.coords),
            lambda: self.build(model, program),
        )
        return logp.evaluate(arrays, n), logp.names

    def _user_terms(
        self, model: Model, program: UserProgram, points: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        logp = self._compiled_logp(
            _data_key(user_key(program), model_data(model), model.coords),
            lambda: self.build_user(model, program)[0],
        )
        n, arrays = program_points(model, program, points, logp.shapes)
        return logp.evaluate(arrays, n), logp.names

    def _compiled_logp(self, key: str, make_model: Callable[[], Any]) -> _LogpTerms:
        """The compiled terms of the model ``make_model`` builds (cached under ``key``)."""

        def compile_logp() -> _LogpTerms:
            from pymc.model.transform.conditioning import remove_value_transforms
            from pytensor.compile.mode import Mode

            plain = remove_value_transforms(make_model())
            # The Python linker with the usual rewrites (numerical stabilization included):
            # ~1-3 s against ~40 s for C code on a cold cache, and a few ms per point. One
            # output per term, summed by NumPy: the Python linker cannot evaluate an
            # elementwise op of more than 32 inputs (the fused sum of every term).
            mode = Mode(linker="py", optimizer="fast_run").excluding("fusion")
            with _quiet():
                outputs = plain.logp(jacobian=False, sum=False)
                fn = plain.compile_fn(outputs, mode=mode)
                shapes = {k: tuple(int(s) for s in v) for k, v in plain.eval_rv_shapes().items()}
            names = [v.name for v in (*plain.free_RVs, *plain.observed_RVs, *plain.potentials)]
            return _LogpTerms(plain, mode, outputs, fn, names, shapes)

        try:
            return _cached(_LOGP_CACHE, key, compile_logp)
        except ProgramError:
            raise
        except Exception as exc:
            raise EngineError(
                self.name, "pymc", f"compiling the log density failed: {exc}"
            ) from exc


@dataclasses.dataclass
class _LogpTerms:
    """A model's log density terms (constrained space, no Jacobian) compiled: one output per
    free variable, observed variable and potential (``names``); ``shapes`` of the free ones."""

    plain: Any
    mode: Any
    outputs: list
    fn: Callable[[dict], list]
    names: list[str]
    shapes: dict[str, tuple[int, ...]]
    singles: dict[int, Callable[[dict], Any]] = dataclasses.field(default_factory=dict)

    def evaluate(self, arrays: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Each term (summed over its elements) at the ``n`` points ``arrays`` (value name ->
        ``(n, *shape)``). A term whose distribution gets a parameter out of its domain is
        ``-inf``."""
        from pymc.logprob.utils import ParameterValueError

        out = {name: np.empty(n) for name in self.names}
        with _quiet():
            for i in range(n):
                point = {name: a[i] for name, a in arrays.items()}
                try:
                    values = self.fn(point)
                except ParameterValueError:
                    values = [self._single(j, point) for j in range(len(self.names))]
                for name, value in zip(self.names, values, strict=True):
                    out[name][i] = np.sum(value)
        return out

    def _single(self, j: int, point: dict) -> float:
        """Term ``j`` alone, so that one term out of its domain leaves the others finite."""
        from pymc.logprob.utils import ParameterValueError

        if j not in self.singles:
            self.singles[j] = self.plain.compile_fn(self.outputs[j], mode=self.mode)
        try:
            return float(np.sum(self.singles[j](point)))
        except ParameterValueError:
            return -np.inf


def _forward_draws(pm_model: Any, names: list[str], draws: int, seed: int) -> dict[str, np.ndarray]:
    """``draws`` prior predictive draws of the variables ``names``, one at a time, as
    ``pm.sample_prior_predictive`` makes them; a draw that a distribution refuses (a
    ``ValueError`` such as "p < 0, p > 1 or p contains NaNs") is NaN in every variable. All
    draws refused: that error is raised."""
    from pymc.sampling.forward import compile_forward_sampling_function

    fn, _ = compile_forward_sampling_function(
        [pm_model[name] for name in names], vars_in_trace=[], basic_rvs=pm_model.basic_RVs,
        random_seed=seed, allow_input_downcast=True, accept_inplace=True,
    )
    rows: list[list[np.ndarray] | None] = []
    error: ValueError | None = None
    for _ in range(draws):
        try:
            rows.append([np.array(value) for value in fn()])
        except ValueError as exc:
            rows.append(None)
            error = exc
    drawn = [row for row in rows if row is not None]
    if not drawn and error is not None:
        raise error
    out = {}
    for j, name in enumerate(names):
        first = drawn[0][j]
        arr = np.full((draws, *first.shape), np.nan)
        for i, row in enumerate(rows):
            if row is not None:
                arr[i] = row[j]
        out[name] = arr if len(drawn) < draws else arr.astype(first.dtype)
    return out


def _refused_as_nan(drawn: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Where a model has counts, a draw NumPy could not really make is NaN in every variable,
    as a refused draw is (and as Stan writes it): NumPy 2.x draws a Poisson of rate NaN as 0 or
    as the smallest int64 instead of refusing it. Such a draw is one with a negative count, or
    with a NaN in any variable (the NaN fed the count's parameters or came from the same
    overflow)."""
    counts = [a for a in drawn.values() if np.issubdtype(a.dtype, np.integer) and a.ndim]
    if not counts:
        return drawn
    refused = np.zeros(len(counts[0]), dtype=bool)
    for arr in drawn.values():
        flat = arr.reshape(len(arr), -1)
        if np.issubdtype(arr.dtype, np.integer):
            refused |= (flat < 0).any(axis=1)
        else:
            refused |= np.isnan(flat).any(axis=1)
    if not refused.any():
        return drawn
    return {
        name: np.where(refused.reshape(-1, *[1] * (arr.ndim - 1)), np.nan, arr.astype(float))
        for name, arr in drawn.items()
    }


def _total(terms: Mapping[str, np.ndarray], names: list[str]) -> np.ndarray:
    """The sum of ``terms`` in the order ``names`` (the order PyMC's own sum takes)."""
    return np.asarray(sum(terms[name] for name in names), dtype=np.float64)


def _cores(chains: int) -> int:
    return max(1, min(chains, os.cpu_count() or 1))


def _clean_stats(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for name in _INTEGER_STATS:
        if name in stats:
            stats[name] = stats[name].astype(np.int64)
    for name in ("diverging", "reached_max_treedepth"):
        if name in stats:
            stats[name] = stats[name].astype(bool)
    return stats


def _uniform_flat(n_dim: int, seed: int) -> Callable[[Any], np.ndarray]:
    """nutpie initial-point function: U(-2, 2) on every unconstrained coordinate."""

    def initial_point(chain_seed: Any = None) -> np.ndarray:
        rng = np.random.default_rng([seed, int(chain_seed or 0)])
        return rng.uniform(-2.0, 2.0, size=n_dim)

    return initial_point


def _uniform_initvals(pm_model: Any, chains: int, seed: int, tries: int = 100) -> list[dict]:
    """Per-chain ``initvals`` for pm.sample: U(-2, 2) on the unconstrained space, as values.

    Each chain's point is drawn on the value (transformed) variables and mapped back to the
    constrained space (pm.sample takes constrained initvals and transforms them again); a point
    whose log density is not finite is redrawn, at most ``tries`` times (as Stan does).
    """
    import pytensor
    from pytensor.compile.mode import Mode

    mode = Mode(linker="py", optimizer="fast_compile")  # a few evaluations: compile nothing
    value_vars = pm_model.value_vars
    constrained = pytensor.function(
        value_vars, pm_model.replace_rvs_by_values(pm_model.free_RVs), mode=mode,
        on_unused_input="ignore",
    )
    logp = pm_model.compile_logp(mode=mode)
    shapes = {k: np.shape(v) for k, v in pm_model.initial_point().items()}
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(chains):
        for _ in range(tries):
            point = {v.name: rng.uniform(-2.0, 2.0, size=shapes[v.name]) for v in value_vars}
            if np.isfinite(logp(point)):
                break
        values = constrained(*(point[v.name] for v in value_vars))
        out.append({rv.name: np.asarray(v) for rv, v in zip(pm_model.free_RVs, values,
                                                             strict=True)})
    return out
