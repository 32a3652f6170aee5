"""The Stan backend: data, hand-written programs, and :class:`StanBackend` (see
:mod:`crossppl.backends.stan`)."""

from __future__ import annotations

import importlib.metadata
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from crossppl.models.distributions import DISTRIBUTIONS
from crossppl.models.ir import (
    Model,
)

from crossppl.config import FitConfig
from crossppl.errors import EngineError, NotYetTranslated

from ..base import Backend, Declarations, Draws, UserProgram, model_data
from ..userprog import (
    ProgramError,
    check_shapes,
    program_points,
    spec_posterior,
    spec_terms,
    spec_variables,
)
from . import engines as stan_engines  # attributes looked up at call time: tests replace them
from . import terms as stan_terms
from .generator import TERMS_RTOL, StanGenerator

__all__ = ["StanBackend", "prior_data", "stan_data", "user_data"]


def _httpstan_at_most(version: str) -> bool:
    """Whether the installed httpstan is ``version`` or older (its major.minor)."""
    try:
        installed = importlib.metadata.version("httpstan").split(".")[:2]
    except importlib.metadata.PackageNotFoundError:
        return False
    return tuple(map(int, installed)) <= tuple(map(int, version.split(".")))


def stan_data(model: Model) -> dict[str, Any]:
    """The data of ``model`` as the generated program reads it, JSON-ready.

    Dim sizes ``N_<dim>`` and every data variable; index data is 1-based, as Stan indexes.
    """
    kinds = {d.name: d.kind for d in model.data}
    out: dict[str, Any] = {}
    for name, value in model_data(model).items():
        arr = np.asarray(value)
        if kinds.get(name) == "index":
            arr = arr + 1
        out[name] = arr.tolist()
    return out


def prior_data(model: Model) -> dict[str, Any]:
    """The data of :meth:`StanBackend.emit_prior`'s program: :func:`stan_data` without the
    observed variables, which that program draws."""
    observed = set(model.observed_names)
    return {k: v for k, v in stan_data(model).items() if k not in observed}


def _as_int(values: np.ndarray) -> np.ndarray:
    """Draws of a discrete variable as int64, unless some are not finite (failed draws)."""
    values = np.asarray(values)
    return values.astype(np.int64) if np.isfinite(values).all() else values


def _program_error(program: UserProgram, message: str, line: int | None = None) -> ProgramError:
    return ProgramError(message, file=str(program.path), line=line)


def _program_info(program: UserProgram) -> dict[str, Any]:
    """stanc's ``--info`` on the user's file; a file stanc rejects is a :class:`ProgramError`
    quoting stanc."""
    path = Path(program.path)
    if not path.is_file():
        raise _program_error(program, "the Stan program file does not exist; check the path")
    if path.suffix != ".stan":
        raise _program_error(program, f"a Stan program must be a .stan file, found "
                                      f"{path.suffix or 'no suffix'!r}")
    try:
        info = stan_engines.stanc_info(path)
    except stan_engines.StancError as exc:
        raise _program_error(program, f"stanc rejected the program:\n{exc.text}",
                             exc.line) from None
    if info.get("included_files"):
        raise _program_error(
            program, f"it #includes {', '.join(info['included_files'])}, which crossppl cannot "
            "compile (httpstan builds a program's text alone); inline the included code",
        )
    return info


def user_data(model: Model, program: UserProgram, info: Mapping[str, Any] | None = None
              ) -> dict[str, Any]:
    """The data a hand-written program's data block reads, from the spec BY NAME (see the
    module docstring): program name -> JSON-ready value of :func:`stan_data`."""
    info = _program_info(program) if info is None else info
    available = stan_data(model)
    decls = {d.name: d for d in model.data}
    out: dict[str, Any] = {}
    for name, typ in info["inputs"].items():
        source = name if name in available else program.rename(name)
        mapped = f" (mapped to {source!r})" if source != name else ""
        if source not in available:
            data = ", ".join(d.name for d in model.data) or "none"
            sizes = ", ".join(f"N_{d.name}" for d in model.dims) or "none"
            raise _program_error(
                program,
                f"its data block declares {name!r}{mapped}, which the spec does not provide; "
                f"the spec's data are {data} and its dim sizes {sizes}. Name the program's data "
                f"as the spec does, or map it with names=(({name!r}, <spec data name>),)",
            )
        decl = decls.get(source)
        dims = decl.dims if decl is not None else ()
        rank = int(typ.get("dimensions", 0))
        if rank != len(dims):
            shape = f"dims ({', '.join(dims)})" if dims else "no dims (a scalar)"
            raise _program_error(
                program,
                f"its data {name!r}{mapped} has {rank} dimension(s), but the spec's {source!r} "
                f"has {shape}; declare it with the spec's dims in the spec's order",
            )
        is_int = decl is None or decl.kind != "real"
        if typ.get("type") == "int" and not is_int:
            raise _program_error(
                program,
                f"its data {name!r}{mapped} is declared int, but the spec's {source!r} is real; "
                "declare it real (a vector, matrix or array of reals)",
            )
        out[name] = available[source]
    return out


def _program_label(program: UserProgram) -> str:
    return f"the Stan program {program.path}"


class StanBackend(Backend):
    """Stan: the generated program fitted with CmdStanPy (when CmdStan is installed) or PyStan.

    Hand-written programs (:meth:`sample_user`, :meth:`log_density_user`,
    :meth:`log_density_terms`) follow the conventions of the module docstring.
    """
    name: ClassVar[str] = "stan"
    engines: ClassVar[tuple[str, ...]] = ("cmdstanpy", "pystan")
    packages: ClassVar[tuple[str, ...]] = ("pystan", "httpstan", "cmdstanpy")
    order: ClassVar[float] = 10
    engine_packages: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "cmdstanpy": ("cmdstanpy",), "pystan": ("pystan", "httpstan")}
    costly_terms: ClassVar[bool] = True

    def default_engine(self) -> str:
        """``"cmdstanpy"`` when a CmdStan installation is found, else ``"pystan"``."""
        return "cmdstanpy" if stan_engines.cmdstan_available() else "pystan"

    def engine_problem(self, engine: str) -> str | None:
        """Besides the packages: CmdStan itself for CmdStanPy; for PyStan, that httpstan's
        builds load on this Python."""
        problem = super().engine_problem(engine)
        if problem is not None:
            return problem
        if engine == "cmdstanpy" and not stan_engines.cmdstan_available():
            return ("CmdStan is not installed: run cmdstanpy.install_cmdstan() (needs "
                    "internet) or point the CMDSTAN environment variable at a CmdStan")
        if engine == "pystan" and sys.version_info >= (3, 13) and _httpstan_at_most("4.17"):
            return (f"httpstan {importlib.metadata.version('httpstan')}'s models do not load on "
                    f"Python {sys.version_info[0]}.{sys.version_info[1]} (its stan_services.o "
                    "is built for CPython 3.10); use Python 3.12 or CmdStanPy")
        return None

    def emit(self, model: Model) -> str:
        return StanGenerator(model).program()

    def declarations(self, model: Model, program: str) -> Declarations:
        """stanc's report on ``program`` (its ``--info``): parameters with their number of
        dimensions (sizes are data), transformed parameters and generated quantities."""
        with tempfile.TemporaryDirectory(prefix="crossppl-stanc-") as tmp:
            path = Path(tmp) / f"{model.name}.stan"
            path.write_text(program, encoding="utf-8")
            info = stan_engines.stanc_info(path)
        params = {n: (None,) * v["dimensions"] for n, v in info["parameters"].items()}
        return Declarations(params, frozenset(info["transformed parameters"]),
                            frozenset(info["generated quantities"]), None)

    def emit_prior(self, model: Model) -> str:
        """The prior predictive program of ``model`` (see :meth:`StanGenerator.prior_program`);
        its data are :func:`prior_data`."""
        return StanGenerator(model).prior_program()

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, model: Model, program: str, config: FitConfig, engine: str) -> Draws:
        """Fit with NUTS; generated quantities come from the program's ``generated quantities``
        block, discrete ones as int64 (float, NaN where Stan could not draw one)."""
        names = {s.name: s.name for s in model.recorded}
        draws = self._sample(model, program, stan_data(model), config, engine, names=names,
                             stem=model.name)
        for gen in model.generated:
            if DISTRIBUTIONS[gen.dist.name].support.discrete and gen.name in draws.posterior:
                draws.posterior[gen.name] = _as_int(draws.posterior[gen.name])
        return draws

    # -- prior predictive -----------------------------------------------------------------------
    def prior_predictive(self, model: Model, draws: int, seed: int) -> dict[str, np.ndarray]:
        """Forward simulation by :meth:`emit_prior`'s program with Stan's ``fixed_param``
        sampler (one chain of ``draws``), by CmdStanPy when CmdStan is installed, else PyStan.

        A draw Stan cannot compute (a Gamma(0.001, 0.001) precision that underflows to 0 makes
        ``normal_rng``'s scale infinite, which throws) is NaN in every variable, as Stan writes
        it; Stan's messages about such draws are counted and logged at INFO level on the
        ``crossppl.stan`` logger, never printed. Discrete variables are int64 when no draw failed.
        """
        program = self.emit_prior(model)
        values, messages = stan_engines.get_engine(self.default_engine()).fixed_param(
            program, prior_data(model), draws, seed, stem=f"{model.name}_prior",
            label="the prior predictive program")
        if messages.sampling:
            stan_engines.log.info(
                "Stan could not compute %d of %d prior predictive draws (NaN); e.g. %s",
                messages.sampling, draws, next(iter(messages.reasons), "?"))
        out = {}
        decls = {d.name: d for d in (*model.recorded, *model.observed)}
        for name, decl in decls.items():
            shape = (draws, *(model.dim(d).size for d in decl.dims))
            arr = np.asarray(values[name]).reshape(shape)
            dist = getattr(decl, "dist", None)
            if dist is not None and DISTRIBUTIONS[dist.name].support.discrete:
                arr = _as_int(arr)
            out[name] = arr
        return out

    def sample_user(
        self, model: Model, program: UserProgram, config: FitConfig, engine: str
    ) -> Draws:
        """Fit a hand-written Stan program with the spec's data by name and the same engine
        code and settings as :meth:`sample`. Draws are keyed by the spec's names, shaped as the
        spec's dims; the program's other variables are dropped."""
        engine = self.check_engine(engine)
        info = _program_info(program)
        data = user_data(model, program, info)
        variables = [name for block in ("parameters", "transformed parameters",
                                        "generated quantities")
                     for name in info.get(block, {})]
        names = spec_variables(model, program, variables, parameters=list(info["inputs"]))
        return self._sample(model, program.source(), data, config, engine, names=names,
                            stem=Path(program.path).stem, user=program)

    def _sample(self, model: Model, program: str, data: Mapping[str, Any], config: FitConfig,
                engine: str, *, names: Mapping[str, str], stem: str,
                user: UserProgram | None = None) -> Draws:
        """The one fitting path of generated and hand-written programs: the engine fits
        ``program`` and its draws (program names) are renamed by ``names`` (program -> spec)."""
        engine = self.check_engine(engine)
        label, check = "the program", None
        if user is not None:
            label = _program_label(user)

            def check(shapes: dict[str, tuple[int, ...]]) -> None:
                check_shapes(model, user, names, shapes)

        draws = stan_engines.get_engine(engine).sample(program, data, config, stem=stem,
                                                       label=label, check=check)
        if user is None:
            draws.posterior = {spec: draws.posterior[name] for name, spec in names.items()
                               if name in draws.posterior}
        else:
            draws.posterior = spec_posterior(model, user, draws.posterior, names,
                                             (config.chains, config.draws))
        return draws

    # -- log density ----------------------------------------------------------------------------
    def log_density(
        self, model: Model, program: str, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Joint log density without Jacobians, by PyStan's ``log_prob`` (any engine's program
        is the same Stan program, and PyStan needs no CmdStan installation)."""
        arrays = {p.name: points[p.name] for p in model.parameters}
        return stan_engines.get_engine("pystan").log_density(program, stan_data(model), arrays)

    def log_density_user(
        self, model: Model, program: UserProgram, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """:meth:`log_density` of a hand-written program at ``points`` (spec names, spec dims),
        passed to the program's parameters through :attr:`UserProgram.names`.

        Only a program whose parameters are exactly the spec's (after ``names``) has a log
        density on the same footing as the spec's; any other (extra parameters, such as the
        raw variables of a non-centred variant, or a spec parameter that the program does not
        sample) is an :class:`EngineError` saying so.
        """
        engine = stan_engines.PyStanEngine()
        source, data, arrays, built, label = self._user_points(engine, model, program, points)
        return engine.log_density(source, data, arrays, built=built, label=label)

    def _user_points(self, engine, model: Model, program: UserProgram,
                     points: Mapping[str, np.ndarray]):
        """A hand-written program's text, data, ``points`` as its parameters' values (program
        names, program shapes), its build and label; see :meth:`log_density_user`."""
        info = _program_info(program)
        data = user_data(model, program, info)
        spec_params = [p.name for p in model.parameters]
        params = list(info["parameters"])
        renamed = {name: program.rename(name) for name in params}
        extra = [n for n in params if renamed[n] not in spec_params]
        absent = [s for s in spec_params if s not in renamed.values()]
        if extra or absent:
            why = []
            if extra:
                why.append(f"it samples {', '.join(map(repr, extra))}, which the spec does not "
                           "have as parameters")
            if absent:
                why.append(f"it does not sample the spec's {', '.join(map(repr, absent))}")
            raise EngineError(
                self.name, "pystan",
                f"the log density of {program.path} cannot be evaluated on the same footing as "
                f"the spec's: {'; '.join(why)}. Its density is over other coordinates, so it is "
                "not compared (map parameters named otherwise with names=...)",
            )
        source = program.source()
        label = _program_label(program)
        built = engine.build(source, data, label=label)
        shapes = {p["name"]: tuple(p["dims"]) for p in built.params if p["name"] in renamed}
        _, arrays = program_points(model, program, points, shapes)
        return source, data, arrays, built, label

    def log_density_terms(
        self, model: Model, program: str | UserProgram, points: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Per-variable terms (spec name -> ``(n,)``) of a generated program (``program`` as
        :meth:`emit` wrote it) or a hand-written one, by its terms program
        (:mod:`crossppl.backends.stan.terms`: the model block's statements, each adding its
        fully normalized density to its variable's term, run as generated quantities at each
        point): the prior of each parameter, the likelihood of each observed variable, and
        ``target`` for ``target +=`` statements that are not one variable's density. Like
        PyMC's and NumPyro's: constrained values, no Jacobian, constants kept.

        The terms are checked to add up to :meth:`log_density` up to a constant at every point;
        a model block the terms program cannot copy (truncation, ``target()``, ``_lp``
        functions) raises :class:`~crossppl.errors.NotYetTranslated`. The terms program is a
        second Stan program: built once (about as long as the program itself), then cached.
        """
        engine = stan_engines.PyStanEngine()
        if isinstance(program, UserProgram):
            info = _program_info(program)
            source = program.source()
            names = {*info["inputs"], *info["parameters"], *info["transformed parameters"]}
        else:
            source = program
            names = {*stan_data(model), *(s.name for s in model.statements)}
        # the terms program first: what it cannot copy is refused before anything is built
        terms = stan_terms.terms_program(source, names)
        if terms is None:
            return {}
        try:
            stan_engines.stanc(terms.text)
        except EngineError as exc:
            lines = str(exc).splitlines()
            rules = [i for i, line in enumerate(lines) if set(line.strip()) == {"-"}]
            after = [line.strip() for line in lines[rules[-1] + 1:] if line.strip()] if rules \
                else []
            why = " ".join(after[:2]) or stan_engines._last_lines(str(exc), 2).replace("\n", " ")
            raise NotYetTranslated(
                self.name, f"per-variable terms of this model block (its terms program does "
                f"not compile: {why})") from None
        if isinstance(program, UserProgram):
            source, data, arrays, built, label = self._user_points(engine, model, program,
                                                                   points)
            rename: UserProgram | None = program
        else:
            data, built, label, rename = stan_data(model), None, "the program", None
            arrays = {p.name: points[p.name] for p in model.parameters}
        logp, values = engine.log_density_terms(source, terms.text, len(terms.names), data,
                                                arrays, built=built, label=label)
        total = values.sum(axis=1)
        spread = _difference_spread(total, logp)
        scale = float(np.median(np.abs(np.concatenate([total, logp]))))
        if not spread <= TERMS_RTOL * max(1.0, scale):
            raise NotYetTranslated(
                self.name, "per-variable terms of this model block",
                f"its terms add up to its log density only up to a non-constant amount "
                f"(spread {spread:.3g}); the density is compared as a whole",
            )
        return spec_terms(rename, {name: values[:, k] for k, name in enumerate(terms.names)})


def _difference_spread(a: np.ndarray, b: np.ndarray) -> float:
    """Largest deviation of ``a - b`` from its median; inf where one side only is non-finite.

    The measure of :func:`crossppl.compare.density.constant_difference`, which sits above the
    backends (tests/test_stan_terms.py checks that the two agree).
    """
    finite = np.isfinite(a) & np.isfinite(b)
    if (np.isfinite(a) != np.isfinite(b)).any():
        return float("inf")
    diff = a[finite] - b[finite]
    return float(np.max(np.abs(diff - np.median(diff)))) if diff.size else 0.0
