"""The NumPyro backend: NUTS runs, hand-written programs, and :class:`NumPyroBackend` (see
:mod:`crossppl.backends.numpyro`)."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
from crossppl.models.distributions import DISTRIBUTIONS
from crossppl.models.ir import (
    Model,
)

from crossppl.config import FitConfig, cache_dir
from crossppl.errors import EngineError, NotYetTranslated
from crossppl.progress import report

from ..base import Backend, Declarations, Draws, UserProgram, model_data
from ..pyexec import load_module
from ..userprog import (
    call_entry,
    check_shapes,
    entry_arguments,
    entry_function,
    load_program,
    program_points,
    spec_posterior,
    spec_terms,
    spec_variables,
    user_failure,
)
from .generator import GENERATED_FLAG, GENERATED_STREAM, NumPyroGenerator

__all__ = [
    "EXTRA_FIELDS",
    "NumPyroBackend",
    "choose_chain_method",
    "configure_compilation_cache",
    "request_cpu_devices",
]

# -- running ------------------------------------------------------------------------------------

#: NumPyro's per-draw statistics collected, and the ArviZ names they are stored under.
EXTRA_FIELDS: dict[str, str] = {
    "potential_energy": "lp",
    "diverging": "diverging",
    "adapt_state.step_size": "step_size",
    "num_steps": "n_steps",
    "accept_prob": "acceptance_rate",
    "energy": "energy",
}

_JAX_CONFIGURED = False

#: The function of a hand-written NumPyro program used when its UserProgram names none.
USER_ENTRY = "model"


def configure_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at ``cache_dir("jax")``, unless the user has.

    A user's own ``jax_compilation_cache_dir`` (config or ``$JAX_COMPILATION_CACHE_DIR``) is left
    alone, and so are the thresholds when the user set them (``$JAX_PERSISTENT_CACHE_MIN_*``).
    Ours cache every program, however small and quick to compile: a fit also compiles ~100 tiny
    programs (initialization runs op by op), and reading them back beats compiling them again.
    Returns the folder in use, or None when JAX has none.
    """
    import jax

    global _JAX_CONFIGURED
    current = jax.config.jax_compilation_cache_dir
    if _JAX_CONFIGURED or current or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(current) if current else None
    _JAX_CONFIGURED = True
    folder = cache_dir("jax")
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES" not in os.environ:
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return folder


def request_cpu_devices(chains: int) -> None:
    """Ask JAX for one CPU device per chain (at least 4, up to the cores), for parallel chains.

    Only possible before JAX starts its backends, and only done when the user has not chosen
    (``jax_num_cpu_devices``, ``$JAX_NUM_CPU_DEVICES`` or ``--xla_force_host_platform_device_count``
    in ``$XLA_FLAGS``). Afterwards the device count is fixed and this does nothing.
    """
    import jax

    try:
        current = jax.config.jax_num_cpu_devices
    except AttributeError:  # an older JAX without the option: chains run vectorized
        return
    if (
        current != -1
        or "JAX_NUM_CPU_DEVICES" in os.environ
        or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    ):
        return
    wanted = max(chains, 4, min(os.cpu_count() or 1, 32))
    with contextlib.suppress(RuntimeError):  # raised once JAX has started: keep what it has
        jax.config.update("jax_num_cpu_devices", wanted)


def choose_chain_method(chains: int) -> str:
    """How NumPyro runs ``chains`` chains in this process.

    ``"parallel"`` (one chain per device, pmap) when JAX has a device per chain (see
    :func:`request_cpu_devices`); else ``"vectorized"`` (all chains in one vmapped program).
    Measured for Rats on 2 (busy) cores, 4 chains x (1000 + 3000), warm cache, in CPU seconds:
    parallel 6.2, vectorized 11.3, sequential 16.4. One chain runs "sequential".
    """
    import jax

    if chains == 1:
        return "sequential"
    if jax.local_device_count() >= chains:
        return "parallel"
    return "vectorized"


@contextlib.contextmanager
def _numpyro_env(chains: int = 4):
    """Devices, the compilation cache, and double precision for our own calls only."""
    import jax

    request_cpu_devices(chains)
    configure_compilation_cache()
    if callable(getattr(jax, "enable_x64", None)):
        x64 = jax.enable_x64(True)
    else:  # JAX before the config context managers
        from jax.experimental import enable_x64

        x64 = enable_x64()
    with x64:
        yield


def _dtype(decl) -> type:
    """``int64`` for a quantity drawn from a discrete distribution, else ``float64``."""
    dist_ = getattr(decl, "dist", None)
    discrete = dist_ is not None and DISTRIBUTIONS[dist_.name].support.discrete
    return np.int64 if discrete else np.float64


class NumPyroBackend(Backend):
    """NumPyro: the generated module's ``model`` fitted with ``numpyro.infer.NUTS``."""

    name: ClassVar[str] = "numpyro"
    engines: ClassVar[tuple[str, ...]] = ("numpyro",)
    packages: ClassVar[tuple[str, ...]] = ("numpyro", "jax", "jaxlib")
    program_entry: ClassVar[str | None] = USER_ENTRY
    order: ClassVar[float] = 30
    engine_packages: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "numpyro": ("numpyro", "jax")}

    def emit(self, model: Model) -> str:
        return NumPyroGenerator(model).module()

    def _load(self, model: Model, program: str):
        module = load_module(program, model.name)
        if not callable(getattr(module, "model", None)):
            raise EngineError(self.name, "numpyro", "the program defines no model() function")
        return module.model

    def declarations(self, model: Model, program: str) -> Declarations:
        """The sites of one run of ``program``'s ``model`` on the spec's data (latent values
        where NUTS starts: uniform on (-2, 2) unconstrained, seed 0)."""
        from numpyro import handlers
        from numpyro.infer import init_to_uniform

        fn = self._load(model, program)
        with _numpyro_env():
            start = handlers.substitute(handlers.seed(fn, rng_seed=0),
                                        substitute_fn=init_to_uniform(radius=2))
            trace = handlers.trace(start).get_trace(**model_data(model))
        sample = {k: s for k, s in trace.items() if s["type"] == "sample"}
        return Declarations(
            {k: tuple(np.shape(s["value"])) for k, s in sample.items() if not s["is_observed"]},
            frozenset(k for k, s in trace.items() if s["type"] == "deterministic"), None,
            frozenset(k for k, s in sample.items() if s["is_observed"]))

    def _load_user(self, model: Model, program: UserProgram):
        """A hand-written program's entry (default ``model``) and the arguments it gets."""
        module = load_program(program)
        fn = entry_function(program, module, USER_ENTRY)
        args, kwargs = entry_arguments(fn, model, program, USER_ENTRY)
        return fn, args, kwargs, list(inspect.signature(fn).parameters)

    def _user_sites(self, program: UserProgram, fn, args: tuple, kwargs: dict) -> dict:
        """Run the user's model once (latent values as NUTS starts from them: uniform on
        (-2, 2) unconstrained, seed 0) and return its sites: name -> ``(kind, shape)``, kind
        ``latent``, ``observed`` or ``deterministic``. Call inside :func:`_numpyro_env`. An
        exception is the user's :class:`ProgramError`."""
        from numpyro import handlers
        from numpyro.infer import init_to_uniform

        def run(*a, **k):
            seeded = handlers.seed(fn, rng_seed=0)
            start = handlers.substitute(seeded, substitute_fn=init_to_uniform(radius=2))
            return handlers.trace(start).get_trace(*a, **k)

        trace = call_entry(program, run, args, kwargs, USER_ENTRY)
        sites = {}
        for name, site in trace.items():
            if site["type"] == "sample":
                kind = "observed" if site.get("is_observed") else "latent"
            elif site["type"] == "deterministic":
                kind = "deterministic"
            else:
                continue
            sites[name] = (kind, tuple(np.shape(site["value"])))
        return sites

    def sample(self, model: Model, program: str, config: FitConfig, engine: str) -> Draws:
        """Run ``program``'s ``model`` with NUTS under ``config``, then draw the generated
        quantities (if any) once per posterior draw, given that draw.

        JAX traces and compiles inside ``MCMC.run``, so ``build_seconds`` is loading the module
        and setting up the kernel, and ``sampling_seconds`` is the whole run, compilation
        included (a fraction of it when the compilation cache is warm), until the draws are
        back in host memory, plus drawing the generated quantities. Those are drawn by
        ``Predictive`` on the posterior draws of the parameters (``model(...,
        generated_quantities=True)``, vectorized over draws) with a key apart from the chains'
        (:data:`GENERATED_STREAM`): NUTS runs exactly as for a spec without them.
        """
        engine = self.check_engine(engine)
        start = time.perf_counter()
        fn = self._load(model, program)
        data = model_data(model)
        draws = self._run(fn, (), data, config, engine, start)
        posterior = {}
        for stmt in model.statements:
            if stmt.name not in draws.posterior:
                raise EngineError(self.name, engine, f"no draws of {stmt.name!r}")
            posterior[stmt.name] = np.asarray(draws.posterior[stmt.name], dtype=np.float64)
        if model.generated:
            began = time.perf_counter()
            params = {p.name: posterior[p.name] for p in model.parameters}
            generated = self._forward(
                fn, {**data, GENERATED_FLAG: True}, model.generated, config.seed,
                stream=GENERATED_STREAM, posterior_samples=params, batch_ndims=2,
            )
            posterior.update(generated)
            draws.sampling_seconds += time.perf_counter() - began
        draws.posterior = posterior
        return draws

    def prior_predictive(self, model: Model, draws: int, seed: int) -> dict[str, np.ndarray]:
        """Run the emitted ``model`` forward ``draws`` times with ``Predictive(model,
        num_samples=draws)`` (vectorized, key ``PRNGKey(seed)``), the observed data left out so
        that their likelihoods draw replicated data, generated quantities included.

        Distribution validation is off for the run: values are returned as JAX computes them
        (e.g. a Gamma(0.001, 0.001) draw that underflows to 0 gives a scale of ``inf``).
        Integer-valued quantities (discrete distributions) are ``int64``, the rest ``float64``.
        """
        fn = self._load(model, self.emit(model))
        optional = {name for name, par in inspect.signature(fn).parameters.items()
                    if par.default is None}
        tied = [o.name for o in model.observed if o.name not in optional]
        if tied:
            raise NotYetTranslated(
                self.name,
                f"prior predictive draws of observed data that an expression also uses "
                f"({', '.join(tied)})",
            )
        kwargs = {k: v for k, v in model_data(model).items() if k not in model.observed_names}
        if model.generated:
            kwargs[GENERATED_FLAG] = True
        return self._forward(fn, kwargs, (*model.recorded, *model.observed), seed,
                             num_samples=draws)

    def _forward(self, fn, kwargs: Mapping, recorded, seed: int, stream: int | None = None,
                 **options) -> dict[str, np.ndarray]:
        """``Predictive(fn, return_sites=<names of recorded>, parallel=True, **options)`` run
        on ``fn(**kwargs)`` with the key ``PRNGKey(seed)`` (folded in with ``stream`` if given),
        distribution validation off; returns each of ``recorded`` (declarations) as numpy,
        ``int64`` where its distribution is discrete, else ``float64``."""
        import jax
        from numpyro import validation_enabled
        from numpyro.infer import Predictive

        names = [r.name for r in recorded]
        with _numpyro_env(), validation_enabled(False):
            key = jax.random.PRNGKey(seed)
            if stream is not None:
                key = jax.random.fold_in(key, stream)
            predictive = Predictive(fn, return_sites=names, parallel=True, **options)
            try:
                out = jax.device_get(predictive(key, **kwargs))
            except (ValueError, RuntimeError, TypeError, FloatingPointError) as exc:
                raise EngineError(self.name, "numpyro",
                                  f"drawing {', '.join(names)} failed: {exc}") from exc
        missing = [n for n in names if n not in out]
        if missing:
            raise EngineError(self.name, "numpyro", f"no draws of {missing}")
        return {r.name: np.asarray(out[r.name], dtype=_dtype(r)) for r in recorded}

    def sample_user(
        self, model: Model, program: UserProgram, config: FitConfig, engine: str
    ) -> Draws:
        """Fit a hand-written NumPyro program: its entry (default ``model``) IS the model
        function, called with the spec's data by name (observed arguments receive the data), and
        run exactly as a generated program is (:meth:`sample`). Draws are keyed by the spec's
        names and shaped as the spec's dims (size-1 axes squeezed); other sites are dropped."""
        engine = self.check_engine(engine)
        start = time.perf_counter()
        fn, args, kwargs, params = self._load_user(model, program)
        with _numpyro_env(config.chains):
            sites = self._user_sites(program, fn, args, kwargs)
        names = spec_variables(
            model,
            program,
            [n for n, (kind, _) in sites.items() if kind != "observed"],
            parameters=[*params, *(n for n, (kind, _) in sites.items() if kind == "observed")],
            default=USER_ENTRY,
        )
        check_shapes(model, program, names, {n: shape for n, (_, shape) in sites.items()})
        draws = self._run(fn, args, kwargs, config, engine, start)
        draws.posterior = spec_posterior(model, program, draws.posterior, names,
                                         (config.chains, config.draws))
        return draws

    def _run(self, fn, args: tuple, kwargs: Mapping, config: FitConfig, engine: str,
             start: float) -> Draws:
        """NUTS on the model function ``fn(*args, **kwargs)`` under ``config``; the posterior
        holds every latent and deterministic site under the program's own names."""
        import jax
        from numpyro.infer import MCMC, NUTS, init_to_uniform

        # Everything JAX touches (kernel, keys, data) is made inside the x64 context.
        with _numpyro_env(config.chains):
            options = {}
            if config.init == "uniform":
                options["init_strategy"] = init_to_uniform(radius=2)
            kernel = NUTS(
                fn,
                target_accept_prob=config.target_accept,
                max_tree_depth=config.max_treedepth,
                **options,
            )
            method = choose_chain_method(config.chains)
            mcmc = MCMC(
                kernel,
                num_warmup=config.warmup,
                num_samples=config.draws,
                num_chains=config.chains,
                chain_method=method,
                progress_bar=False,
            )
            built = time.perf_counter()
            # NumPyro tells no progress without its own bar (see above): the stage only
            shown = config.show_progress and not report("sampling")
            if shown:
                sys.stderr.write(f"NumPyro: sampling {config.chains} chains x ({config.warmup} "
                                 f"warmup + {config.draws} draws)...\n")
                sys.stderr.flush()
            try:
                mcmc.run(jax.random.PRNGKey(config.seed), *args,
                         extra_fields=tuple(EXTRA_FIELDS), **kwargs)
            except (ValueError, RuntimeError, TypeError, FloatingPointError) as exc:
                raise EngineError(self.name, engine, f"sampling failed: {exc}") from exc
            samples = jax.device_get(mcmc.get_samples(group_by_chain=True))
            fields = jax.device_get(mcmc.get_extra_fields(group_by_chain=True))
        done = time.perf_counter()
        if shown:
            sys.stderr.write(f"NumPyro: sampling done in {done - built:.1f} s\n")
            sys.stderr.flush()
        stats = {EXTRA_FIELDS[k]: np.asarray(v) for k, v in fields.items() if k in EXTRA_FIELDS}
        stats["lp"] = -stats["lp"].astype(np.float64)
        stats["diverging"] = stats["diverging"].astype(bool)
        steps = stats["n_steps"].astype(np.int64)
        stats["n_steps"] = steps
        stats["tree_depth"] = np.floor(np.log2(np.maximum(steps, 1))).astype(np.int64) + 1
        return Draws(
            posterior={k: np.asarray(v) for k, v in samples.items()},
            sample_stats=stats,
            engine=engine,
            build_seconds=built - start,
            sampling_seconds=done - built,
            extra_attrs={"numpyro_chain_method": method, "jax_enable_x64": "true"},
        )

    # -- log density ------------------------------------------------------------------------
    def log_density(
        self, model: Model, program: str, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        return self._generated_terms(model, program, points)[0]

    def log_density_user(
        self, model: Model, program: UserProgram, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """:meth:`log_density` of a hand-written program (every sample site's log probability,
        constrained space, no Jacobian); ``points`` are keyed by the spec's names (mapped to the
        program's through :attr:`UserProgram.names`)."""
        return self._user_terms(model, program, points)[0]

    def log_density_terms(
        self, model: Model, program: str | UserProgram, points: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Per-site log probabilities (spec name -> ``(n,)``, each summed over the site's
        elements and scaled as NumPyro scales them) of a generated program (``program`` as
        :meth:`emit` wrote it) or a hand-written one."""
        if isinstance(program, UserProgram):
            return spec_terms(program, self._user_terms(model, program, points)[1])
        return spec_terms(None, self._generated_terms(model, program, points)[1])

    def _generated_terms(self, model: Model, program: str, points: Mapping[str, np.ndarray]):
        fn = self._load(model, program)
        names = [p.name for p in model.parameters]
        missing = [n for n in names if n not in points]
        if missing:
            raise ValueError(f"points lack values of {missing}")
        values = {n: np.asarray(points[n], dtype=np.float64) for n in names}
        return self._site_log_probs(fn, (), model_data(model), values)

    def _user_terms(self, model: Model, program: UserProgram,
                    points: Mapping[str, np.ndarray]):
        fn, args, kwargs, _ = self._load_user(model, program)
        with _numpyro_env():
            sites = self._user_sites(program, fn, args, kwargs)
        shapes = {n: shape for n, (kind, shape) in sites.items() if kind == "latent"}
        _, values = program_points(model, program, points, shapes)
        try:
            return self._site_log_probs(fn, args, kwargs, values)
        except Exception as exc:
            raise user_failure(program, exc, "evaluating its log density at the points",
                               USER_ENTRY) or EngineError(
                self.name, "numpyro", f"evaluating the log density failed: {exc}"
            ) from exc

    def _site_log_probs(self, fn, args: tuple, kwargs: Mapping,
                        values: Mapping[str, np.ndarray]):
        """The joint log density ``(n,)`` and each sample site's term (name -> ``(n,)``) of
        ``fn(*args, **kwargs)`` with its latent sites set to ``values`` (name -> ``(n, ...)``)."""
        import jax
        from numpyro.infer.util import compute_log_probs

        with _numpyro_env():
            params = {n: jax.numpy.asarray(v) for n, v in values.items()}

            def one(point):
                terms = compute_log_probs(fn, args, dict(kwargs), point)[0]
                # the sum in the trace's order, as numpyro.infer.util.log_density takes it
                return sum(terms.values(), start=0.0), terms

            total, terms = jax.device_get(jax.jit(jax.vmap(one))(params))
        return (np.asarray(total, dtype=np.float64),
                {n: np.asarray(v, dtype=np.float64) for n, v in terms.items()})
