"""The JAGS backend class: emit, Gibbs fits, forward draws and log densities (see the package)."""


from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from crossppl.models.distributions import DISTRIBUTIONS
from crossppl.models.ir import Const, Model, ParamDecl

from crossppl.config import FitConfig
from crossppl.errors import EngineError

from ..base import Backend, Declarations, Draws
from .engine import (
    GIBBS_MULTIPLIER,
    MAX_ADAPT,
    JagsRun,
    chain_rngs,
    compiled,
    forward,
    log,
    run,
)
from .generator import JagsGenerator, density_name, jags_data

__all__ = ["JagsBackend", "initial_values", "plan"]

#: Radius of the uniform initial values on the unconstrained scale (Stan's default).
INIT_RADIUS = 2.0


def plan(config: FitConfig) -> JagsRun:
    """The JAGS run of ``config`` (see :mod:`.engine`): adaptation ``min(warmup, MAX_ADAPT)``,
    burn-in ``GIBBS_MULTIPLIER * warmup``, ``GIBBS_MULTIPLIER * draws`` iterations thinned by
    ``GIBBS_MULTIPLIER``."""
    return JagsRun(chains=config.chains, adapt=min(config.warmup, MAX_ADAPT),
                   burn_in=GIBBS_MULTIPLIER * config.warmup,
                   iterations=GIBBS_MULTIPLIER * config.draws, thin=GIBBS_MULTIPLIER)


def _sizes(model: Model, dims: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(model.dim(d).size for d in dims)


def _uniform_init(model: Model, param: ParamDecl, rng: np.random.Generator) -> Any:
    """A value of ``param`` whose unconstrained value is uniform on (-2, 2), or None where its
    support's bounds are not constants."""
    support = DISTRIBUTIONS[param.dist.name].support
    u = rng.uniform(-INIT_RADIUS, INIT_RADIUS, size=_sizes(model, param.dims))
    if support.kind == "real":
        value = u
    elif support.kind == "positive":
        value = np.exp(u)
    elif support.kind == "unit":
        value = 1 / (1 + np.exp(-u))
    elif support.kind == "interval":
        lower, upper = (param.dist.arg(a or "") for a in (support.lower, support.upper))
        if not (isinstance(lower, Const) and isinstance(upper, Const)):
            return None
        value = lower.value + (upper.value - lower.value) / (1 + np.exp(-u))
    else:
        return None
    return value if param.dims else float(value)


def initial_values(model: Model, config: FitConfig) -> list[dict[str, Any]]:
    """Each chain's JAGS inits: its RNG (:func:`.engine.chain_rngs`) and, for ``init="uniform"``,
    every parameter's initial value, drawn as Stan draws them (see :mod:`.engine`)."""
    inits = chain_rngs(config.seed, config.chains)
    if config.init != "uniform":
        return inits
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x1A65]))
    for chain in inits:
        for param in model.parameters:
            value = _uniform_init(model, param, rng)
            if value is not None:
                chain[param.name] = value
    return inits


def _shaped(model: Model, decl, values: np.ndarray, lead: tuple[int, ...]) -> np.ndarray:
    """JAGS's draws of ``decl`` (``(*lead, *jags dims)``) shaped ``(*lead, *spec dims)``, int64
    where its distribution is discrete and every value is finite (and fits an int64)."""
    arr = np.asarray(values).reshape(*lead, *_sizes(model, decl.dims))
    dist = getattr(decl, "dist", None)
    if (dist is not None and DISTRIBUTIONS[dist.name].support.discrete
            and np.isfinite(arr).all() and (np.abs(arr) < 2.0**62).all()):
        arr = arr.astype(np.int64)
    return arr


class JagsBackend(Backend):
    """JAGS through PyJAGS; see the package docstring."""

    name: ClassVar[str] = "jags"
    engines: ClassVar[tuple[str, ...]] = ("pyjags",)
    packages: ClassVar[tuple[str, ...]] = ("pyjags",)
    algorithm: ClassVar[str] = "Gibbs (JAGS)"
    nuts_settings: ClassVar[bool] = False
    required_stats: ClassVar[tuple[str, ...]] = ()
    order: ClassVar[float] = 40
    engine_packages: ClassVar[Mapping[str, tuple[str, ...]]] = {"pyjags": ("pyjags",)}

    def engine_problem(self, engine: str) -> str | None:
        """Besides the package: that PyJAGS loads its JAGS library (bundled in its wheels; a
        PyJAGS built from source links the system's, e.g. Debian's ``jags``: ``make jags``)."""
        problem = super().engine_problem(engine)
        if problem is not None:
            return problem
        try:
            import pyjags  # noqa: F401
        except ImportError as exc:
            return (f"PyJAGS is installed but does not load ({exc}); install JAGS 4.x (Debian: "
                    "`make jags`, or apt-get install jags) and reinstall pyjags")
        return None

    def emit(self, model: Model) -> str:
        return JagsGenerator(model).program()

    def declarations(self, model: Model, program: str) -> Declarations:
        """The compiled program's unobserved stochastic nodes (JAGS's parameters, with the
        shapes of their initial values; JAGS holds a scalar as one value of dim 1, read as a
        scalar) and its logical nodes (every other variable that is not data). BUGS does not
        tell observed data from covariates: ``observed`` is None. A generated quantity is a
        stochastic node without observed descendants, which JAGS cannot tell from a parameter:
        those the spec names as generated are reported as ``generated``."""
        model_ = compiled(program, jags_data(model, program), chain_rngs(0, 1),
                          label="the program")
        state = model_.parameters[0]
        params = {k: (() if np.shape(v) == (1,) else tuple(np.shape(v)))
                  for k, v in state.items() if not k.startswith(".")}
        data = set(model_.data)
        derived = frozenset(v for v in model_.variables if v not in params and v not in data)
        names = {g.name for g in model.generated}
        generated = frozenset(n for n in (*params, *derived) if n in names)
        params = {k: v for k, v in params.items() if k not in generated}
        return Declarations(params, derived - generated, generated, None)

    def sample(self, model: Model, program: str, config: FitConfig, engine: str) -> Draws:
        """Gibbs sampling of ``program`` by JAGS under ``config`` (mapped as :mod:`.engine`
        says). ``sample_stats`` is empty: JAGS has no sampler statistics in ArviZ's sense."""
        engine = self.check_engine(engine)
        how = plan(config)
        monitors = [s.name for s in model.recorded]
        samples, build, sampling = run(program, jags_data(model, program), monitors, how,
                                       initial_values(model, config),
                                       progress=config.show_progress)
        lead = (config.chains, config.draws)
        posterior = {s.name: _shaped(model, s, samples[s.name], lead) for s in model.recorded}
        attrs = {"jags_adapt": how.adapt, "jags_burn_in": how.burn_in, "jags_thin": how.thin}
        return Draws(posterior, {}, engine, build_seconds=build, sampling_seconds=sampling,
                     extra_attrs=attrs)

    def prior_predictive(self, model: Model, draws: int, seed: int) -> dict[str, np.ndarray]:
        """The emitted program run with the observed data left out of its data: JAGS then
        assigns no sampler (no node has observed descendants) and forward-samples every node
        from its distribution given its parents, each iteration, so ``draws`` iterations of one
        chain, without adaptation or burn-in, are independent exact draws. That JAGS assigned no
        sampler is checked; values JAGS cannot compute (a Gamma(0.001, 0.001) precision that
        underflows to 0) are NaN in every variable (:func:`.engine.forward`), as Stan writes
        them; their number is logged at INFO level on the ``crossppl.jags`` logger."""
        program = self.emit(model)
        decls = (*model.recorded, *model.observed)
        samples, failed, reason = forward(
            program, jags_data(model, program, observed=False), [d.name for d in decls], draws,
            chain_rngs(seed, 1)[0], label="the prior predictive program")
        if failed:
            log.info("JAGS could not compute %d of %d prior predictive draws (NaN); e.g. %s",
                     failed, draws, reason)
        return {d.name: _shaped(model, d, samples[d.name], (draws,)) for d in decls}

    # -- log density ----------------------------------------------------------------------------
    def log_density(
        self, model: Model, program: str, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Joint log density at ``points`` (constrained values, no Jacobian), by JAGS's
        ``logdensity`` functions in :meth:`JagsGenerator.density_program` (see the package
        docstring): the sum of :meth:`log_density_terms`."""
        terms = self.log_density_terms(model, program, points)
        return np.sum(list(terms.values()), axis=0)

    def log_density_terms(
        self, model: Model, program, points: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Per-variable terms (spec name -> ``(n,)``): each parameter's prior and each observed
        variable's likelihood, by the density program, one JAGS compile per point. ``program``
        must be what :meth:`emit` wrote: the density program is written from the model too."""
        if not isinstance(program, str) or program != self.emit(model):
            raise EngineError(self.name, "pyjags", "log densities are evaluated for the "
                              "program emit() writes only (hand-written JAGS programs are not "
                              "supported)")
        density = JagsGenerator(model).density_program()
        base = jags_data(model, density)
        names = [d.name for d in (*model.parameters, *model.observed)]
        n = len(next(iter(points.values()))) if points else 0
        out = {name: np.empty(n) for name in names}
        for k in range(n):
            data = dict(base)
            for p in model.parameters:
                data[p.name] = np.asarray(points[p.name][k], dtype=float)
            values, _, _ = run(density, data, [density_name(x) for x in names],
                               JagsRun(chains=1, adapt=0, burn_in=0, iterations=1),
                               chain_rngs(0, 1), label="the density program")
            for name in names:
                out[name][k] = float(values[density_name(name)].reshape(-1)[0])
        return out
