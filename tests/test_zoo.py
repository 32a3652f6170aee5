"""Conformance of the zoo of classic models: every bundled spec on every backend.

For each bundled model (``zoo_model``) and each backend (``backend_name``):

* the spec is the one in the zoo's table (``ZOO``: parameters, derived quantities and observed
  data by name and dims; derived quantities computed as the zoo defines them);
* the emitted program builds: Stan through stanc (no C++), PyMC by building the ``pm.Model``,
  NumPyro by tracing the model; each declares the spec's variables with the spec's shapes;
* its log density (constrained space, no Jacobian) at a few fixed points agrees, up to a constant
  offset, with the other backends' and with a hand-written scipy density of the model as the zoo
  writes it (BUGS Examples Vol. I; Gelman et al., BDA), which also checks the spec's priors.
  Stan's log density needs the C++ build of each program (40-90 s each on a cold cache, once per
  program: httpstan caches builds).

A model x backend pair that cannot work yet is listed in ``KNOWN_FAILURES`` and runs as a strict
xfail with the exception it raises, never a skip: when it starts to work, its tests XPASS and fail
until the entry is removed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pytest
from crossppl.backends import get_backend
from crossppl.models import DISTRIBUTIONS, bundled_specs, load_spec, parse_spec
from crossppl.models.ir import Binary, Call, Const, Expr, Model, ParamDecl, Role, Unary, Var
from scipy import special, stats

from .conftest import BACKEND_PARAMS, BACKENDS, RUNNABLE

#: Points per model at which log densities are compared (the first is the base point).
N_POINTS = 5
#: Relative tolerance of the log-density differences between points.
RTOL = 1e-6
#: Prior predictive draws per model and backend, and the family-wise alpha of their tests.
PRIOR_DRAWS = 2000
PRIOR_ALPHA = 0.01
MODELS = tuple(bundled_specs())


# -- the zoo, as ../shared/reference/zoo.md writes each model ------------------------------------
def _sd(tau):
    return 1 / np.sqrt(tau)


def _vague_gamma(tau):
    """Gamma(0.001, 0.001), shape and RATE."""
    return stats.gamma(0.001, scale=1 / 0.001).logpdf(tau)


def _seeds(p, d):
    lin = p["a0"] + p["a1"] * d["x1"] + p["a2"] * d["x2"] + p["a12"] * d["x1"] * d["x2"] + p["b"]
    return (sum(stats.norm(0, _sd(1e-6)).logpdf(p[a]) for a in ("a0", "a1", "a2", "a12"))
            + _vague_gamma(p["tau"]) + stats.norm(0, _sd(p["tau"])).logpdf(p["b"]).sum()
            + stats.binom(d["n"], special.expit(lin)).logpmf(d["r"]).sum())


def _surgical(p, d):
    return (stats.norm(0, _sd(1e-6)).logpdf(p["mu"]) + _vague_gamma(p["tau"])
            + stats.norm(p["mu"], _sd(p["tau"])).logpdf(p["b"]).sum()
            + stats.binom(d["n"], special.expit(p["b"])).logpmf(d["r"]).sum())


def _pump(p, d):
    return (stats.expon(scale=1.0).logpdf(p["alpha"])
            + stats.gamma(0.1, scale=1 / 1.0).logpdf(p["beta"])
            + stats.gamma(p["alpha"], scale=1 / p["beta"]).logpdf(p["theta"]).sum()
            + stats.poisson(p["theta"] * d["t"]).logpmf(d["x"]).sum())


def _blocker(p, d):
    return (stats.norm(0, _sd(1e-6)).logpdf(p["d"]) + _vague_gamma(p["tau"])
            + stats.norm(0, _sd(1e-5)).logpdf(p["mu"]).sum()
            + stats.norm(p["d"], _sd(p["tau"])).logpdf(p["delta"]).sum()
            + stats.binom(d["nc"], special.expit(p["mu"])).logpmf(d["rc"]).sum()
            + stats.binom(d["nt"], special.expit(p["mu"] + p["delta"])).logpmf(d["rt"]).sum())


def _dyes(p, d):
    return (stats.norm(0, _sd(1e-10)).logpdf(p["theta"])
            + _vague_gamma(p["tau_within"]) + _vague_gamma(p["tau_between"])
            + stats.norm(p["theta"], _sd(p["tau_between"])).logpdf(p["mu"]).sum()
            + stats.norm(p["mu"][:, None], _sd(p["tau_within"])).logpdf(d["y"]).sum())


def _eight_schools(p, d):
    theta = p["mu"] + p["tau"] * p["eta"]
    return (stats.norm(0, 5).logpdf(p["mu"]) + stats.halfcauchy(scale=5).logpdf(p["tau"])
            + stats.norm(0, 1).logpdf(p["eta"]).sum()
            + stats.norm(theta, d["sigma"]).logpdf(d["y"]).sum())


def _eight_schools_centered(p, d):
    return (stats.norm(0, 5).logpdf(p["mu"]) + stats.halfcauchy(scale=5).logpdf(p["tau"])
            + stats.norm(p["mu"], p["tau"]).logpdf(p["theta"]).sum()
            + stats.norm(p["theta"], d["sigma"]).logpdf(d["y"]).sum())


def _rats(p, d):
    mean = p["alpha"][:, None] + p["beta"][:, None] * d["x"][None, :]
    return (stats.norm(0, _sd(1e-6)).logpdf(p["mu_alpha"])
            + stats.norm(0, _sd(1e-6)).logpdf(p["mu_beta"])
            + sum(_vague_gamma(p[t]) for t in ("tau_alpha", "tau_beta", "tau"))
            + stats.norm(p["mu_alpha"], _sd(p["tau_alpha"])).logpdf(p["alpha"]).sum()
            + stats.norm(p["mu_beta"], _sd(p["tau_beta"])).logpdf(p["beta"]).sum()
            + stats.norm(mean, _sd(p["tau"])).logpdf(d["y"]).sum())


def _noncentred(log_density, raw, out, loc=lambda p: 0.0):
    """The log density of a spec that writes ``out = loc + sigma * raw``, ``raw ~ N(0, 1)``:
    the zoo's centred density at ``out``, plus the change of variables' log |d out / d raw|."""
    def density(p, d):
        sd = _sd(p["tau"])
        centred = {**p, out: loc(p) + sd * p[raw]}
        return log_density(centred, d) + np.size(p[raw]) * np.log(sd)

    return density


def _inv_sqrt(name):
    return lambda p: 1 / np.sqrt(p[name])


# -- the zoo's prior predictive, simulated with numpy (draws first, then the model's dims) -------
def _gamma(rng, shape, rate, size):
    return rng.gamma(shape, 1 / np.asarray(rate), size=size)


def _normal(rng, loc, sd, size):
    with np.errstate(invalid="ignore", over="ignore"):
        return loc + sd * rng.standard_normal(size)


def _binomial(rng, n, p):
    """Binomial draws where p is a probability; nan where it is not (an upstream inf)."""
    p = np.broadcast_to(p, np.broadcast_shapes(np.shape(n), np.shape(p)))
    ok = np.isfinite(p)
    return np.where(ok, rng.binomial(n, np.where(ok, p, 0.5)), np.nan)


def _poisson(rng, rate):
    """Poisson draws; rates beyond 2^40 (numpy refuses ~1e19) stand in as their own value."""
    ok = np.isfinite(rate) & (rate < 2.0**40)
    return np.where(ok, rng.poisson(np.where(ok, rate, 1.0)), rate)


def _shift_scale(loc, scale, raw):
    """A non-centred draw ``loc + scale * raw`` (inf where the scale is)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return loc + scale * raw


def _vague(rng, n):
    return _gamma(rng, 0.001, 0.001, n)


def _sim_seeds(rng, n, d):
    p = {a: _normal(rng, 0, _sd(1e-6), n) for a in ("a0", "a1", "a2", "a12")}
    p["tau"] = _vague(rng, n)
    with np.errstate(divide="ignore"):
        p["sigma"] = 1 / np.sqrt(p["tau"])
    p["b_raw"] = rng.standard_normal((n, d["r"].size))
    p["b"] = _shift_scale(0.0, p["sigma"][:, None], p["b_raw"])
    lin = (p["a0"][:, None] + p["a1"][:, None] * d["x1"] + p["a2"][:, None] * d["x2"]
           + p["a12"][:, None] * d["x1"] * d["x2"] + p["b"])
    p["r"] = _binomial(rng, d["n"], special.expit(lin))
    return p


def _sim_surgical(rng, n, d):
    p = {"mu": _normal(rng, 0, _sd(1e-6), n), "tau": _vague(rng, n)}
    with np.errstate(divide="ignore"):
        p["sigma"] = 1 / np.sqrt(p["tau"])
    p["pop_mean"] = special.expit(p["mu"])
    p["b_raw"] = rng.standard_normal((n, d["r"].size))
    p["b"] = _shift_scale(p["mu"][:, None], p["sigma"][:, None], p["b_raw"])
    p["r"] = _binomial(rng, d["n"], special.expit(p["b"]))
    return p


def _sim_pump(rng, n, d):
    p = {"alpha": rng.exponential(1.0, n), "beta": _gamma(rng, 0.1, 1.0, n)}
    with np.errstate(divide="ignore", invalid="ignore"):
        p["theta"] = rng.gamma(p["alpha"][:, None], 1 / p["beta"][:, None], (n, d["t"].size))
    p["x"] = _poisson(rng, p["theta"] * d["t"])
    return p


def _sim_blocker(rng, n, d):
    p = {"d": _normal(rng, 0, _sd(1e-6), n), "tau": _vague(rng, n)}
    with np.errstate(divide="ignore"):
        p["sigma"] = 1 / np.sqrt(p["tau"])
    size = (n, d["rc"].size)
    p["mu"] = _normal(rng, 0, _sd(1e-5), size)
    p["delta_raw"] = rng.standard_normal(size)
    p["delta"] = _shift_scale(p["d"][:, None], p["sigma"][:, None], p["delta_raw"])
    p["rc"] = _binomial(rng, d["nc"], special.expit(p["mu"]))
    p["rt"] = _binomial(rng, d["nt"], special.expit(p["mu"] + p["delta"]))
    p["delta_new"] = _normal(rng, p["d"], p["sigma"], n)
    return p


def _sim_dyes(rng, n, d):
    p = {"theta": _normal(rng, 0, _sd(1e-10), n), "tau_within": _vague(rng, n),
         "tau_between": _vague(rng, n)}
    with np.errstate(divide="ignore", over="ignore"):
        p["sigma2_within"] = 1 / p["tau_within"]
        p["sigma2_between"] = 1 / p["tau_between"]
    batches, samples = d["y"].shape
    p["mu"] = _normal(rng, p["theta"][:, None], np.sqrt(p["sigma2_between"])[:, None],
                      (n, batches))
    p["y"] = _normal(rng, p["mu"][:, :, None], np.sqrt(p["sigma2_within"])[:, None, None],
                     (n, batches, samples))
    return p


def _sim_eight_schools(rng, n, d):
    p = {"mu": rng.normal(0, 5, n), "tau": np.abs(5 * rng.standard_cauchy(n)),
         "eta": rng.normal(0, 1, (n, d["y"].size))}
    p["theta"] = p["mu"][:, None] + p["tau"][:, None] * p["eta"]
    p["y"] = rng.normal(p["theta"], d["sigma"])
    return p


def _sim_eight_schools_centered(rng, n, d):
    p = {"mu": rng.normal(0, 5, n), "tau": np.abs(5 * rng.standard_cauchy(n))}
    p["theta"] = rng.normal(p["mu"][:, None], p["tau"][:, None], (n, d["y"].size))
    p["y"] = rng.normal(p["theta"], d["sigma"])
    return p


def _sim_rats(rng, n, d):
    p = {"mu_alpha": _normal(rng, 0, _sd(1e-6), n), "tau_alpha": _vague(rng, n),
         "mu_beta": _normal(rng, 0, _sd(1e-6), n), "tau_beta": _vague(rng, n),
         "tau": _vague(rng, n)}
    with np.errstate(divide="ignore"):
        p["sigma"] = 1 / np.sqrt(p["tau"])
        sd_alpha, sd_beta = 1 / np.sqrt(p["tau_alpha"]), 1 / np.sqrt(p["tau_beta"])
    rats, weeks = d["y"].shape
    p["alpha"] = _normal(rng, p["mu_alpha"][:, None], sd_alpha[:, None], (n, rats))
    p["beta"] = _normal(rng, p["mu_beta"][:, None], sd_beta[:, None], (n, rats))
    with np.errstate(invalid="ignore", over="ignore"):
        mean = p["alpha"][:, :, None] + p["beta"][:, :, None] * d["x"]
    p["y"] = _normal(rng, mean, p["sigma"][:, None, None], (n, rats, weeks))
    return p


@dataclass(frozen=True)
class Zoo:
    """A model as the zoo defines it: names -> dims, derived formulas, its log density, and a
    forward simulation of its prior predictive (``simulate(rng, draws, data)``)."""

    parameters: Mapping[str, tuple[str, ...]]
    derived: Mapping[str, Callable[[Mapping], np.ndarray]]
    observed: Mapping[str, tuple[str, ...]]
    log_density: Callable[[Mapping, Mapping], float]
    simulate: Callable[[np.random.Generator, int, Mapping], dict[str, np.ndarray]]
    generated: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


ZOO: dict[str, Zoo] = {
    "seeds": Zoo(
        {"a0": (), "a1": (), "a2": (), "a12": (), "tau": (), "b_raw": ("plate",)},
        {"sigma": _inv_sqrt("tau"), "b": lambda p: p["b_raw"] / np.sqrt(p["tau"])},
        {"r": ("plate",)}, _noncentred(_seeds, "b_raw", "b"), _sim_seeds),
    "surgical": Zoo(
        {"mu": (), "tau": (), "b_raw": ("hospital",)},
        {"pop_mean": lambda p: special.expit(p["mu"]), "sigma": _inv_sqrt("tau"),
         "b": lambda p: p["mu"] + p["b_raw"] / np.sqrt(p["tau"])},
        {"r": ("hospital",)}, _noncentred(_surgical, "b_raw", "b", lambda p: p["mu"]),
        _sim_surgical),
    "pump": Zoo({"alpha": (), "beta": (), "theta": ("pump",)}, {}, {"x": ("pump",)}, _pump,
                _sim_pump),
    "blocker": Zoo(
        {"d": (), "tau": (), "mu": ("trial",), "delta_raw": ("trial",)},
        {"sigma": _inv_sqrt("tau"), "delta": lambda p: p["d"] + p["delta_raw"] / np.sqrt(p["tau"])},
        {"rc": ("trial",), "rt": ("trial",)},
        _noncentred(_blocker, "delta_raw", "delta", lambda p: p["d"]), _sim_blocker,
        {"delta_new": ()}),
    "dyes": Zoo(
        {"theta": (), "tau_within": (), "tau_between": (), "mu": ("batch",)},
        {"sigma2_within": lambda p: 1 / p["tau_within"],
         "sigma2_between": lambda p: 1 / p["tau_between"]},
        {"y": ("batch", "sample")}, _dyes, _sim_dyes),
    "eight_schools": Zoo(
        {"mu": (), "tau": (), "eta": ("school",)},
        {"theta": lambda p: p["mu"] + p["tau"] * p["eta"]}, {"y": ("school",)}, _eight_schools,
        _sim_eight_schools),
    "eight_schools_centered": Zoo(
        {"mu": (), "tau": (), "theta": ("school",)}, {}, {"y": ("school",)},
        _eight_schools_centered, _sim_eight_schools_centered),
    "rats": Zoo(
        {"mu_alpha": (), "tau_alpha": (), "mu_beta": (), "tau_beta": (), "tau": (),
         "alpha": ("rat",), "beta": ("rat",)},
        {"sigma": _inv_sqrt("tau")}, {"y": ("rat", "week")}, _rats, _sim_rats),
}


# -- pairs that cannot work yet --------------------------------------------------------------------
@dataclass(frozen=True)
class Known:
    """A model x backend pair that fails today: which checks, with what, and why."""

    raises: type[BaseException]
    reason: str
    checks: tuple[str, ...] = ("build", "density", "reference", "prior")


#: (model, backend) -> the failure its tests expect (strict xfail). Empty: every pair works.
KNOWN_FAILURES: dict[tuple[str, str], Known] = {}


def _expect(request, check: str, model: str, backend: str | None = None) -> None:
    """Mark this test a strict xfail if (model, backend) is a known failure of ``check``."""
    known = KNOWN_FAILURES.get((model, backend))
    if known is not None and check in known.checks:
        request.applymarker(pytest.mark.xfail(strict=True, raises=known.raises,
                                              reason=known.reason))


# -- fixtures and module-level caches (each program is built once per module) --------------------
@cache
def _model(name: str) -> Model:
    return load_spec(name)


_PROGRAMS: dict[tuple[str, str], str | BaseException] = {}
_DENSITIES: dict[tuple[str, str], np.ndarray | BaseException] = {}


def _cached(cache: dict, key: tuple[str, str], make: Callable[[], object]):
    """``make()`` once per key; an exception is cached too, and raised again on every use."""
    if key not in cache:
        try:
            cache[key] = make()
        except Exception as exc:
            cache[key] = exc
    value = cache[key]
    if isinstance(value, BaseException):
        raise value
    return value


def _program(name: str, backend: str) -> str:
    return _cached(_PROGRAMS, (name, backend),
                   lambda: get_backend(backend).emit(_model(name)))


@cache
def _points(name: str) -> dict[str, np.ndarray]:
    """N_POINTS fixed points of model ``name`` (seeded by its name)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return constrained_points(_model(name), N_POINTS, rng)


def _log_density(name: str, backend: str) -> np.ndarray:
    def compute():
        impl = get_backend(backend)
        logp = np.asarray(impl.log_density(_model(name), _program(name, backend), _points(name)))
        assert logp.shape == (N_POINTS,), f"{backend}: log density of shape {logp.shape}"
        assert np.all(np.isfinite(logp)), f"{backend}: non-finite log density {logp}"
        return logp

    return _cached(_DENSITIES, (name, backend), compute)


@cache
def _reference(name: str) -> np.ndarray:
    """The zoo's scipy log density of model ``name`` at its points."""
    model = _model(name)
    data = {d.name: d.value for d in model.data}
    points = _points(name)
    return np.array([
        ZOO[name].log_density({k: v[i] for k, v in points.items()}, data)
        for i in range(N_POINTS)
    ])


# -- points in constrained space, from the IR --------------------------------------------------
class BoundDependsOnParameter(NotImplementedError):
    """An interval parameter whose bounds depend on another parameter: no fixed box of points."""


def evaluate(model: Model, expr: Expr, dims: tuple[str, ...],
             values: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """``expr`` with numpy, laid out along ``dims`` (size-1 axes where it does not vary).

    Data come from the model; parameters and derived quantities from ``values`` (one point,
    each laid out along its own dims). Without ``values``, a parameter or derived quantity
    raises :class:`BoundDependsOnParameter`.
    """
    if isinstance(expr, Const):
        return np.asarray(float(expr.value))
    if isinstance(expr, Var):
        if expr.role is Role.DATA:
            value = model.datum(expr.name).value
        elif values is None:
            raise BoundDependsOnParameter(expr.name)
        else:
            value = values[expr.name]
        return _align(model, np.asarray(value, dtype=float), expr.dims, dims)
    if isinstance(expr, Unary):
        return -evaluate(model, expr.operand, dims, values)
    if isinstance(expr, Binary):
        a = evaluate(model, expr.left, dims, values)
        b = evaluate(model, expr.right, dims, values)
        ops = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
               "pow": np.power}
        return ops[expr.op](a, b)
    if isinstance(expr, Call):
        args = [evaluate(model, a, dims, values) for a in expr.args]
        funcs = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "inv_logit": special.expit,
                 "logit": special.logit, "pow": np.power, "abs": np.abs}
        return funcs[expr.func](*args)
    raise NotImplementedError(f"evaluate: {type(expr).__name__} nodes")


def _align(model: Model, value: np.ndarray, src: tuple[str, ...],
           dst: tuple[str, ...]) -> np.ndarray:
    """``value`` (dims ``src``, a subset of ``dst``) transposed and reshaped to broadcast
    along ``dst``."""
    order = sorted(range(len(src)), key=lambda i: dst.index(src[i]))
    value = np.transpose(value, order)
    present = {src[i] for i in order}
    return value.reshape([model.dim(d).size if d in present else 1 for d in dst])


def constrained_points(model: Model, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` points in constrained space: each parameter ``(n, *dims)``, from u ~ U(-2, 2) on
    the unconstrained scale of its support (real: u; positive: exp(u); unit: inv_logit(u);
    interval: lower + (upper - lower) * inv_logit(u), the bounds constants or data).

    Raises :class:`BoundDependsOnParameter` for an interval whose bounds use a parameter.
    """
    points = {}
    for param in model.parameters:
        shape = (n, *(model.dim(d).size for d in param.dims))
        u = rng.uniform(-2, 2, size=shape)
        support = DISTRIBUTIONS[param.dist.name].support
        if support.kind == "real":
            value = u
        elif support.kind == "positive":
            value = np.exp(u)
        elif support.kind == "unit":
            value = special.expit(u)
        elif support.kind == "interval":
            lower, upper = (_bound(model, param, arg) for arg in (support.lower, support.upper))
            value = lower + (upper - lower) * special.expit(u)
        else:
            raise NotImplementedError(f"{param.name}: support {support.kind!r}")
        points[param.name] = value
    return points


def _bound(model: Model, param: ParamDecl, arg: str) -> np.ndarray:
    try:
        return evaluate(model, param.dist.arg(arg), param.dims)
    except BoundDependsOnParameter as exc:
        raise BoundDependsOnParameter(
            f"{model.name}: the {arg} bound of {param.name} depends on the parameter {exc}; "
            "the points need a bound that is a constant or data"
        ) from None


# -- the specs are the zoo's -----------------------------------------------------------------------
def test_every_bundled_model_is_in_the_zoo_table():
    assert set(MODELS) == set(ZOO)


def test_spec_declares_the_zoo_s_variables(zoo_model):
    model, zoo = _model(zoo_model), ZOO[zoo_model]
    assert model.name == zoo_model
    assert model.description and "\n" not in model.description
    assert model.source
    assert {p.name: p.dims for p in model.parameters} == dict(zoo.parameters)
    assert {d.name for d in model.derived} == set(zoo.derived)
    assert {o.name: o.dims for o in model.observed} == dict(zoo.observed)
    assert {g.name: g.dims for g in model.generated} == dict(zoo.generated)


def test_derived_quantities_are_the_zoo_s(zoo_model):
    model, zoo = _model(zoo_model), ZOO[zoo_model]
    points = _points(zoo_model)
    for i in range(N_POINTS):
        values = {k: v[i] for k, v in points.items()}
        for derived in model.derived:
            values[derived.name] = evaluate(model, derived.expr, derived.dims, values)
            np.testing.assert_allclose(values[derived.name], zoo.derived[derived.name](values),
                                       rtol=1e-12, err_msg=f"{zoo_model}: {derived.name}")


def test_points_lie_in_each_support(zoo_model):
    model = _model(zoo_model)
    points = _points(zoo_model)
    for param in model.parameters:
        value = points[param.name]
        assert value.shape == (N_POINTS, *(model.dim(d).size for d in param.dims))
        kind = DISTRIBUTIONS[param.dist.name].support.kind
        assert np.all(np.isfinite(value))
        if kind == "positive":
            assert np.all(value > 0)
        elif kind == "unit":
            assert np.all((value > 0) & (value < 1))


INTERVALS = """
[model]
name = "intervals"
[dims]
g = 3
[data]
hi = { dims = ["g"], value = [1.0, 5.0, 50.0] }
[parameters]
s = "uniform(-1, 2 * 1.5)"
"w[g]" = "uniform(-hi, hi)"
[observed]
"hi[g]" = "normal(w, s)"
"""


def test_interval_points_use_constant_and_data_bounds():
    model = parse_spec(INTERVALS)
    points = constrained_points(model, 200, np.random.default_rng(0))
    assert np.all((points["s"] > -1) & (points["s"] < 3))
    hi = np.array([1.0, 5.0, 50.0])
    assert np.all(np.abs(points["w"]) < hi)
    assert np.all(np.abs(points["w"]).max(axis=0) > 0.5 * hi)  # the box scales with the data


def test_interval_bounds_that_depend_on_a_parameter_are_reported():
    model = parse_spec(INTERVALS.replace('"uniform(-hi, hi)"', '"uniform(-hi, s)"'))
    with pytest.raises(BoundDependsOnParameter, match="upper bound of w depends on the "
                                                      "parameter s"):
        constrained_points(model, 2, np.random.default_rng(0))


def test_zoo_reference_densities_differ_between_points(zoo_model):
    """The points are far enough apart that agreeing differences mean something."""
    ref = _reference(zoo_model)
    assert np.all(np.isfinite(ref))
    assert np.min(np.abs(ref[1:] - ref[0])) > 1e-3


# -- every backend: builds, and has the zoo's log density ------------------------------------------
@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.slow
def test_program_builds(request, zoo_model, backend_name):
    """The emitted program, as its own PPL reads it (Backend.declarations), declares the
    spec's parameters with their shapes, its derived (and, where it holds them apart, generated)
    quantities, and (where the language tells) its observed variables."""
    _expect(request, "build", zoo_model, backend_name)
    model = _model(zoo_model)
    program = _program(zoo_model, backend_name)
    declared = get_backend(backend_name).declarations(model, program)
    params = {p.name: tuple(model.dim(d).size for d in p.dims) for p in model.parameters}
    assert set(declared.parameters) == set(params)
    for name, shape in declared.parameters.items():
        assert len(shape) == len(params[name]), name
        assert all(got in (None, want) for got, want in zip(shape, params[name], strict=True)), (
            f"{name}: declared {shape}, the spec's {params[name]}")
    derived = {d.name for d in model.derived}
    generated = {g.name for g in model.generated}
    if declared.generated is None:
        assert declared.derived == derived
    else:
        assert declared.derived | declared.generated == derived | generated
    if declared.observed is not None:
        assert declared.observed == set(model.observed_names)


def _differences(logp: np.ndarray) -> np.ndarray:
    return logp[1:] - logp[0]


@pytest.mark.parametrize("backend_name", BACKEND_PARAMS)
@pytest.mark.slow
def test_log_density_matches_the_zoo_s(request, zoo_model, backend_name):
    """Up to a constant, the backend's log density is the zoo's (scipy, from zoo.md)."""
    _expect(request, "reference", zoo_model, backend_name)
    got = _differences(_log_density(zoo_model, backend_name))
    want = _differences(_reference(zoo_model))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0,
                               err_msg=f"{zoo_model} on {backend_name} vs the zoo's density")


@pytest.mark.parametrize("backend_name", BACKEND_PARAMS)
def test_log_density_agrees_across_backends(request, zoo_model, backend_name):
    """Up to a constant, the backend's log density is every other working backend's."""
    _expect(request, "density", zoo_model, backend_name)
    got = _differences(_log_density(zoo_model, backend_name))
    others = [b for b in RUNNABLE if b != backend_name and (zoo_model, b) not in KNOWN_FAILURES]
    assert others, f"{zoo_model}: no other backend to compare {backend_name} with"
    for other in others:
        want = _differences(_log_density(zoo_model, other))
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=0,
                                   err_msg=f"{zoo_model}: {backend_name} vs {other}")

