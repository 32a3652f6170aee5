"""What every backend shares: the generator base class, the backend interface, and the one
converter from an engine's raw draws to the canonical ArviZ result (an ``xarray.DataTree``)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from crossppl.models.conversions import derive, lower, lower_dist, to_native
from crossppl.models.ir import Const, Dist, Expr, Model
from crossppl.models.spec import path_text

from crossppl.config import FitConfig
from crossppl.errors import ConfigError, EngineError, NotYetTranslated

__all__ = [
    "Backend",
    "Declarations",
    "Draws",
    "Generator",
    "UserProgram",
    "model_data",
    "prior_to_inference_data",
    "program_hash",
    "to_inference_data",
    "versions",
]

#: Names of sample_stats every NUTS engine must provide, in ArviZ's conventions (a backend's
#: :attr:`Backend.required_stats`).
REQUIRED_STATS = ("diverging", "lp", "step_size")
#: FitConfig settings that only NUTS reads (recorded as not applied for other algorithms).
NUTS_SETTINGS = ("target_accept", "max_treedepth")


class Generator:
    """Base class of IR -> program generators.

    A subclass writes expressions with methods named ``expr_<IR node class>`` and distributions
    with its ``DIST_RULES`` table keyed by ``(row name, parameterization key)``. A node or row
    without a rule raises :class:`NotYetTranslated`, so nothing is ever dropped silently.
    """

    backend: ClassVar[str] = "?"
    DIST_RULES: ClassVar[Mapping[tuple[str, str], Any]] = {}

    def __init__(self, model: Model) -> None:
        self.model = model

    def expr(self, node: Any, target: tuple[str, ...]) -> str:
        """Write ``node`` laid out to broadcast against dims ``target``."""
        method = getattr(self, f"expr_{type(node).__name__}", None)
        if method is None:
            raise NotYetTranslated(self.backend, f"the IR node {type(node).__name__}")
        return method(node, target)

    #: Helpers of the conversion table (:data:`crossppl.models.conversions.HELPERS`) this
    #: backend writes itself; the others are expanded into spec functions.
    HELPERS: ClassVar[frozenset[str]] = frozenset()

    def fold(self, value: float) -> Expr | None:
        """A literal for a helper's value at constant arguments, or None to write the call
        (the default: no folding)."""
        return None

    def native(self, dist: Dist, rules: Mapping[tuple[str, str], Any] | None = None,
               what: str | None = None) -> tuple[Dist, Any]:
        """``dist`` in a parameterization this backend writes natively (rewritten through the
        conversion table where needed) and its rule from ``rules`` (default
        :attr:`DIST_RULES`); raises NotYetTranslated when none is reachable."""
        rules = self.DIST_RULES if rules is None else rules
        converted = to_native(dist, rules)
        if converted is None:
            raise NotYetTranslated(
                self.backend,
                what or f"the distribution {dist.name} with parameterization "
                        f"{dist.parameterization!r}",
            )
        rule = rules[converted.name, converted.parameterization]
        return lower_dist(converted, self.HELPERS, self.fold), rule

    def dist_rule(self, dist: Dist) -> Any:
        """The rule that writes ``dist`` (in a native parameterization); raises if none."""
        return self.native(dist)[1]

    def rule_arg(self, dist: Dist, name: str) -> Expr:
        """The argument a rule names: a numeric literal (``"0"``), an argument of ``dist``, or
        one derived from them through the conversion table (``"tau"`` of a Cauchy's scale)."""
        if re.fullmatch(r"-?\d+(\.\d*)?", name):
            return Const(float(name) if "." in name else int(name))
        node = derive(dist.name, name, dict(dist.args))
        if node is None:
            raise NotYetTranslated(
                self.backend, f"the argument {name} of the distribution {dist.name} with "
                              f"parameterization {dist.parameterization!r}")
        return lower(node, self.HELPERS, self.fold)


@dataclass(frozen=True)
class UserProgram:
    """A hand-written program to hold against the spec (a paper's Stan file, a user's port).

    Parameters
    ----------
    backend
        The PPL it is written in (``stan``, ``pymc``, ``numpyro``).
    path
        A ``.stan`` file, or a ``.py`` file holding ``entry``.
    entry
        For Python files: the function that builds the PyMC model or IS the NumPyro model.
        It is called with the spec's data BY NAME: each of its parameters named like a spec
        data variable (or ``N_<dim>``, or ``coords``) receives that value; for Stan, the data
        block's variables are filled the same way (index data 1-based).
    names
        Program name -> spec name, for variables whose names differ from the spec's. Variables
        neither in the spec nor in ``names`` are left out of the comparison.
    label
        Name of this program in reports (default: the file's stem).
    """

    backend: str
    path: Path
    entry: str | None = None
    names: tuple[tuple[str, str], ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        """The label used in reports."""
        return self.label or Path(self.path).stem

    def rename(self, program_name: str) -> str:
        """The spec's name of ``program_name``."""
        return dict(self.names).get(program_name, program_name)

    def source(self) -> str:
        """The program's text."""
        return Path(self.path).read_text()


@dataclass
class Draws:
    """An engine's raw output, before conversion to the canonical DataTree.

    ``posterior`` maps every parameter, derived and generated quantity to an array of shape
    ``(chain, draw, *dim sizes)`` (dims in the model's order); ``sample_stats`` maps ArviZ's
    names (``lp``, ``diverging``, ``step_size``, ``tree_depth``, ``n_steps``, ...) to
    ``(chain, draw)`` arrays.
    """

    posterior: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    engine: str
    build_seconds: float = 0.0
    sampling_seconds: float = 0.0
    extra_attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Declarations:
    """What a program declares, read from the program by its own PPL (not from the spec).

    ``parameters`` maps every sampled, unobserved variable to its shape, ``None`` for a size the
    program leaves to its data (Stan declares ``vector[N]``); ``derived`` holds the variables it
    computes from the parameters; ``generated`` those it draws or computes after the fit (Stan's
    ``generated quantities``), or None where the program does not hold them apart from
    ``derived`` (or draws them elsewhere); ``observed`` the variables it conditions on, or None
    where the language does not tell observed data from other data (Stan, BUGS).
    """

    parameters: Mapping[str, tuple[int | None, ...]]
    derived: frozenset[str]
    generated: frozenset[str] | None
    observed: frozenset[str] | None


class Backend(ABC):
    """A PPL: writes a model as a program in its language and fits that program."""

    #: Short name used on the command line (``stan``, ``pymc``, ``numpyro``).
    name: ClassVar[str]
    #: Engines that can run this backend's program, in order of preference.
    engines: ClassVar[tuple[str, ...]]
    #: Distribution packages whose versions are recorded in the output.
    packages: ClassVar[tuple[str, ...]]
    #: The function a hand-written program of this PPL names (``PATH:ENTRY``; this name when
    #: left out), or None when a program is a whole file (Stan).
    program_entry: ClassVar[str | None] = None
    #: Place in the default list of backends (``--backends`` left out), lowest first.
    order: ClassVar[float] = 100
    #: Engine -> the distribution packages it needs (see :meth:`engine_problem`).
    engine_packages: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: Whether :meth:`log_density_terms` costs much more than :meth:`log_density` (Stan builds
    #: a second program); ``compare`` then asks a generated program's terms only when needed.
    costly_terms: ClassVar[bool] = False
    #: The sampling algorithm, as reports name it (``"NUTS"``, ``"Gibbs (JAGS)"``).
    algorithm: ClassVar[str] = "NUTS"
    #: Whether the NUTS-only settings (:data:`NUTS_SETTINGS`) apply to this backend's fits.
    nuts_settings: ClassVar[bool] = True
    #: sample_stats every fit of this backend provides (a Gibbs sampler has no divergences,
    #: step size or energy; the diagnostics gate checks what a fit has).
    required_stats: ClassVar[tuple[str, ...]] = REQUIRED_STATS

    @abstractmethod
    def emit(self, model: Model) -> str:
        """Return the program (Stan text or a runnable Python module) for ``model``."""

    @abstractmethod
    def sample(self, model: Model, program: str, config: FitConfig, engine: str) -> Draws:
        """Fit ``program`` (exactly as :meth:`emit` returned it) with NUTS under ``config``."""

    @abstractmethod
    def log_density(
        self, model: Model, program: str, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Joint log density of ``program`` at ``n`` points, for checks without sampling.

        ``points`` maps every parameter to an array of shape ``(n, *dim sizes)`` of constrained
        values. Returns shape ``(n,)``: the sum of every prior and likelihood term in constrained
        space, WITHOUT the Jacobian of any transform. Normalizing constants may be dropped (Stan's
        ``~`` drops them), so compare differences between points, not values.
        """

    def declarations(self, model: Model, program: str) -> Declarations:
        """What ``program`` (as :meth:`emit` wrote it for ``model``) declares, as its PPL
        reads it (a compiler's report, a built model, a trace): for checks of the emitted
        program's names and shapes against the spec's."""
        raise NotYetTranslated(self.name, "reading a program's declarations")

    def sample_user(
        self, model: Model, program: UserProgram, config: FitConfig, engine: str
    ) -> Draws:
        """Fit a hand-written program; ``posterior`` keys are the SPEC's names (see
        :attr:`UserProgram.names`), holding only the variables the spec also has."""
        raise NotYetTranslated(self.name, "hand-written programs")

    def log_density_user(
        self, model: Model, program: UserProgram, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """:meth:`log_density` of a hand-written program; ``points`` use the spec's names."""
        raise NotYetTranslated(self.name, "log densities of hand-written programs")

    def log_density_terms(
        self, model: Model, program: str | UserProgram, points: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        """Per-variable terms of :meth:`log_density` (spec names -> ``(n,)``: the log density
        of each parameter's prior and each observed variable's likelihood, constrained values,
        no Jacobian; terms that are not one variable's under names of their own), adding up to
        :meth:`log_density` up to a constant; or None where the engine does not expose them."""
        return None

    def prior_predictive(self, model: Model, draws: int, seed: int) -> dict[str, np.ndarray]:
        """Draws from the prior predictive distribution, by forward simulation (no MCMC).

        Returns every parameter, derived and generated quantity and every observed variable
        (replicated data drawn from its likelihood) as an array of shape
        ``(draws, *dim sizes)``, dims in the model's order. Where the engine cannot evaluate a
        draw (e.g. a Gamma(0.001, 0.001) precision that underflows to 0 makes a scale infinite),
        values may be non-finite; they are returned as the engine gives them.
        """
        raise NotYetTranslated(self.name, "prior predictive draws")

    def default_engine(self) -> str:
        """The engine used when none is asked for."""
        return self.engines[0]

    def engine_problem(self, engine: str) -> str | None:
        """Why ``engine`` cannot run on this machine, or None when it can.

        Checks that the distribution packages of :attr:`engine_packages` are installed; a
        backend adds its own checks (a compiler, a binary, a known incompatibility).
        """
        missing = [p for p in self.engine_packages.get(engine, ()) if _version(p) is None]
        if missing:
            return (f"needs {', '.join(missing)}, not installed: "
                    f"pip install 'crossppl[{self.name}]'")
        return None

    def engine_versions(self, engine: str) -> dict[str, str]:
        """Installed versions of the packages ``engine`` needs."""
        return {p: v for p in self.engine_packages.get(engine, ()) if (v := _version(p))}

    def check_engine(self, engine: str | None) -> str:
        """Validate an engine name, or choose the default."""
        if engine is None:
            return self.default_engine()
        if engine not in self.engines:
            raise ConfigError(
                f"the {self.name} backend has no engine {engine!r}; "
                f"choose one of {', '.join(self.engines)}",
                entry="engine",
            )
        return engine


@contextlib.contextmanager
def quiet_arviz():
    """Silence ArviZ's log lines and convention warnings (e.g. for a 1-chain fit) in the block."""
    import warnings

    logger = logging.getLogger("arviz_base")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"arviz_(base|stats)(\.|$)")
            yield
    finally:
        logger.setLevel(level)


def _datatree(groups: Mapping[str, Mapping[str, np.ndarray]], *, coords, dims,
              attrs: Mapping[str, Any]):
    """ArviZ's ``from_dict`` with ``attrs`` on the root and on every group."""
    from arviz_base import from_dict

    with quiet_arviz():
        tree = from_dict(dict(groups), coords=coords, dims=dims)
    tree.attrs.update(attrs)
    for child in tree.children.values():
        child.attrs.update(attrs)
    return tree


def program_hash(program: str) -> str:
    """SHA-256 of a program's text (first 16 hex digits)."""
    return hashlib.sha256(program.encode()).hexdigest()[:16]


def _version(package: str) -> str | None:
    """The installed version of the distribution ``package``, or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``packages`` (``"missing"`` for those not installed), keyed by the
    distribution name with ``-`` as ``_`` (``arviz_base``)."""
    out = {}
    for pkg in ("crossppl", "arviz-base", "arviz-stats", "numpy", *packages):
        try:
            out[pkg.replace("-", "_")] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg.replace("-", "_")] = "missing"
    return out


def model_data(model: Model) -> dict[str, np.ndarray]:
    """The model's data arrays by name (index data 0-based) plus ``N_<dim>`` sizes."""
    out: dict[str, np.ndarray] = {f"N_{d.name}": np.int64(d.size) for d in model.dims}
    for d in model.data:
        out[d.name] = d.value
    return out


def to_inference_data(
    model: Model,
    draws: Draws,
    *,
    backend: Backend,
    program: str,
    config: FitConfig,
    partial: bool = False,
):
    """Convert an engine's :class:`Draws` into the canonical ArviZ result, an
    ``xarray.DataTree`` with groups ``posterior``, ``sample_stats`` and ``observed_data``.

    Every backend goes through this one function, so names, dims, coords, groups and attrs are
    the same whatever the engine. A draw array of the wrong shape is an :class:`EngineError`.
    ``partial`` (hand-written programs) allows variables of the spec to be missing.
    """
    coords = model.coords
    dims: dict[str, list[str]] = {}
    posterior = {}
    for stmt in model.recorded:
        if stmt.name not in draws.posterior:
            if partial:
                continue
            raise EngineError(backend.name, draws.engine, f"no draws returned for {stmt.name!r}")
        arr = np.asarray(draws.posterior[stmt.name])
        expected = (config.chains, config.draws, *(model.dim(d).size for d in stmt.dims))
        if arr.shape != expected:
            raise EngineError(
                backend.name,
                draws.engine,
                f"draws of {stmt.name!r} have shape {arr.shape}, expected {expected}",
            )
        posterior[stmt.name] = arr
        dims[stmt.name] = list(stmt.dims)
    missing = [s for s in backend.required_stats if s not in draws.sample_stats]
    if missing:
        raise EngineError(backend.name, draws.engine, f"sample stats missing: {missing}")
    stats = {k: np.asarray(v) for k, v in draws.sample_stats.items()}
    if "diverging" in stats:
        stats["diverging"] = stats["diverging"].astype(bool)
    observed = {}
    for obs in model.observed:
        observed[obs.name] = model.datum(obs.name).value
        dims[obs.name] = list(obs.dims)
    attrs: dict[str, Any] = {
        "model": model.name,
        "spec": path_text(model.path),
        "backend": backend.name,
        "engine": draws.engine,
        "program_sha256": program_hash(program),
        "build_seconds": round(draws.build_seconds, 3),
        "sampling_seconds": round(draws.sampling_seconds, 3),
        "algorithm": backend.algorithm,
        **({} if backend.nuts_settings else {"settings_not_applied": " ".join(NUTS_SETTINGS)}),
        **{f"config_{k}": v for k, v in config.as_attrs().items()},
        **{f"version_{k}": v for k, v in versions(backend.packages).items()},
        **draws.extra_attrs,
    }
    return _datatree({"posterior": posterior, "sample_stats": stats, "observed_data": observed},
                     coords=coords, dims=dims, attrs=attrs)


def prior_to_inference_data(
    model: Model, arrays: Mapping[str, np.ndarray], *, backend: Backend, seed: int
):
    """Prior predictive draws (from :meth:`Backend.prior_predictive`) as an ``xarray.DataTree``.

    ``prior`` holds parameters, derived and generated quantities, ``prior_predictive`` the
    replicated observed data, ``observed_data`` the data; one chain, the spec's dims and coords.
    """
    dims: dict[str, list[str]] = {}
    groups: dict[str, dict[str, np.ndarray]] = {"prior": {}, "prior_predictive": {}}
    decls = [("prior", d) for d in model.recorded] + [("prior_predictive", o)
                                                       for o in model.observed]
    for group, decl in decls:
        if decl.name not in arrays:
            raise EngineError(backend.name, backend.default_engine(),
                              f"no prior draws returned for {decl.name!r}")
        arr = np.asarray(arrays[decl.name])
        expected = (*(model.dim(d).size for d in decl.dims),)
        if arr.shape[1:] != expected:
            raise EngineError(backend.name, backend.default_engine(),
                              f"prior draws of {decl.name!r} have shape {arr.shape}, "
                              f"expected (draws, {', '.join(map(str, expected))})")
        groups[group][decl.name] = arr[np.newaxis]
        dims[decl.name] = list(decl.dims)
    attrs = {"model": model.name, "spec": path_text(model.path), "backend": backend.name,
             "seed": seed, **{f"version_{k}": v for k, v in versions(backend.packages).items()}}
    observed = {o.name: model.datum(o.name).value for o in model.observed}
    return _datatree({**groups, "observed_data": observed}, coords=model.coords, dims=dims,
                     attrs=attrs)
