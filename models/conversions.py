"""The conversion table: how one distribution argument is computed from others, as IR.

A parameter name means the same quantity in every row of the distribution table (``sigma`` a
scale, ``tau = sigma^-2`` its precision, ``rate = 1 / scale``, ``p`` a probability and
``logit_p`` its log-odds, ``rate = exp(log_rate)``), so one conversion serves every row that has
those names; a conversion that holds in some rows only names them (``rows``).

Each backend's table lists only the parameterizations it writes natively; :func:`to_native`
rewrites a distribution into one of them through this table, and :func:`derive` computes an
argument a backend's rule names but the parameterization lacks (JAGS writes ``cauchy(mu,
sigma)`` as ``dt(mu, tau, 1)``). Rewrites use the spec's functions and a few helpers
(:data:`HELPERS`: ``inv``, ``inv_sqrt``, ``inv_square``) that a backend writes natively or has
lowered to spec functions by :func:`lower`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from .distributions import DISTRIBUTIONS
from .ir import Binary, Call, Const, Dist, Expr, Unary

__all__ = ["CONVERSIONS", "HELPERS", "Conversion", "Helper", "derive", "lower", "lower_dist",
           "to_native"]


@dataclass(frozen=True, slots=True)
class Helper:
    """A function conversions write that is not a spec function: its value (to fold constant
    arguments) and its expansion into spec functions (for a backend that lacks it)."""

    value: Callable[[float], float]
    expand: Callable[[Expr], Expr]


def _binary(op: str, left: Expr, right: Expr) -> Binary:
    dims = tuple(dict.fromkeys((*left.dims, *right.dims)))
    return Binary(op, left, right, dims)


HELPERS: dict[str, Helper] = {
    "inv": Helper(lambda v: 1 / v, lambda e: _binary("div", Const(1), e)),
    "inv_sqrt": Helper(lambda v: 1 / math.sqrt(v),
                       lambda e: _binary("div", Const(1), Call("sqrt", (e,), e.dims))),
    "inv_square": Helper(lambda v: v**-2, lambda e: _binary("pow", e, Const(-2))),
}


def _call(func: str) -> Callable[[Expr], Expr]:
    return lambda e: Call(func, (e,), e.dims)


@dataclass(frozen=True, slots=True)
class Conversion:
    """The argument ``target`` computed from the arguments ``sources`` by ``build``; in every row
    of the distribution table, or only in ``rows``."""

    target: str
    sources: tuple[str, ...]
    build: Callable[..., Expr]
    rows: tuple[str, ...] | None = None

    def applies(self, row: str) -> bool:
        """Whether this conversion holds in the row called ``row``."""
        return self.rows is None or row in self.rows


#: Every rewrite between parameterizations; the first that applies wins.
CONVERSIONS: tuple[Conversion, ...] = (
    Conversion("sigma", ("tau",), _call("inv_sqrt")),  # precision -> scale
    Conversion("tau", ("sigma",), _call("inv_square")),  # scale -> precision
    Conversion("rate", ("scale",), _call("inv")),
    Conversion("scale", ("rate",), _call("inv")),
    Conversion("p", ("logit_p",), _call("inv_logit")),
    Conversion("logit_p", ("p",), _call("logit")),
    Conversion("rate", ("log_rate",), _call("exp")),
    Conversion("log_rate", ("rate",), _call("log")),
    # BUGS's Weibull: density v lambda x^(v-1) exp(-lambda x^v), so lambda = sigma^-alpha
    Conversion("lambda", ("alpha", "sigma"),
               lambda alpha, sigma: _binary("pow", sigma, Unary("neg", alpha, alpha.dims)),
               rows=("weibull",)),
)


def derive(row: str, name: str, args: Mapping[str, Expr]) -> Expr | None:
    """The argument ``name`` of a distribution of row ``row`` with arguments ``args``: the
    argument itself, or one conversion of them; None when there is none."""
    if name in args:
        return args[name]
    for conv in CONVERSIONS:
        if conv.target == name and conv.applies(row) and all(s in args for s in conv.sources):
            return conv.build(*(args[s] for s in conv.sources))
    return None


def to_native(dist: Dist, native: Collection[tuple[str, str]]) -> Dist | None:
    """``dist`` rewritten into a parameterization of its row that is in ``native`` (``dist``
    itself when its own is), trying the row's parameterizations in order; None if none is
    reachable."""
    if (dist.name, dist.parameterization) in native:
        return dist
    row = DISTRIBUTIONS.get(dist.name)
    if row is None:
        return None
    given = dict(dist.args)
    for par in row.parameterizations:
        if (row.name, par.key) not in native:
            continue
        args = {p: derive(row.name, p, given) for p in par.params}
        if all(a is not None for a in args.values()):
            return Dist(row.name, par.key, tuple((p, args[p]) for p in par.params), dist.dims)
    return None


def lower(node: Expr, keep: Iterable[str] = (),
          fold: Callable[[float], Expr | None] | None = None) -> Expr:
    """``node`` with every :data:`HELPERS` call not in ``keep`` expanded into spec functions.

    ``fold`` maps a helper's value at constant arguments to a literal (or None to keep the
    call): a backend passes one to write ``inv(4)`` as ``0.25`` where that is exact.
    """
    keep = frozenset(keep)

    def visit(e: Expr) -> Expr:
        if isinstance(e, Call):
            args = tuple(visit(a) for a in e.args)
            helper = HELPERS.get(e.func)
            if helper is not None:
                if fold is not None and all(isinstance(a, Const) for a in args):
                    try:
                        value = helper.value(*(float(a.value) for a in args))
                    except (ArithmeticError, ValueError):
                        value = None
                    folded = fold(value) if value is not None else None
                    if folded is not None:
                        return folded
                if e.func not in keep:
                    return visit(helper.expand(*args))
            return Call(e.func, args, e.dims)
        if isinstance(e, Binary):
            return Binary(e.op, visit(e.left), visit(e.right), e.dims)
        if isinstance(e, Unary):
            return Unary(e.op, visit(e.operand), e.dims)
        return e

    return visit(node)


def lower_dist(dist: Dist, keep: Iterable[str] = (),
               fold: Callable[[float], Expr | None] | None = None) -> Dist:
    """:func:`lower` applied to every argument of ``dist``."""
    return Dist(dist.name, dist.parameterization,
                tuple((n, lower(a, keep, fold)) for n, a in dist.args), dist.dims)

