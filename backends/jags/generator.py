"""IR -> a model in the BUGS language, as JAGS reads it.

The generator writes what a BUGS programmer would write by hand (compare the classic "Rats"
program of the BUGS Examples, Vol. I):

* Every statement over dims is written inside ``for`` loops, one per dim, outermost first, with
  the loop indexes ``i``, ``j``, ``k``, ... (letters a model's own names do not use); consecutive
  statements over the same dims share one loop nest. Dim sizes are data ``N_<dim>``.
* Every leaf of an expression is indexed by name: inside loops over ``(rat, week)`` the spec's
  ``alpha + beta * x`` is ``alpha[i] + beta[i] * x[j]``; a ``(week, rat)`` quantity would be
  ``z[j, i]``. Index data (``base[index]``) are passed 1-based and written ``base[index[i]]``.
* Distributions come from :data:`DIST_RULES`, in BUGS's parameterizations: precisions for
  normal, lognormal and Student t (``dnorm(mu, tau)``; a spec's ``sigma`` is rewritten through
  :mod:`crossppl.models.conversions` to ``pow(sigma, -2)``, folded where ``sigma`` is a constant
  with a short exact precision),
  ``dgamma(shape, rate)``, ``dbin(p, n)`` (probability first), half distributions as truncated
  ones (``dnorm(0, tau) T(0,)``), log-odds and log-rates through ``ilogit`` and ``exp``.
* Parameters, observed variables and the spec's ``[generated]`` quantities are stochastic nodes
  (``~``); derived quantities are logical nodes (``<-``). JAGS forward-samples every unobserved
  stochastic node without observed descendants, from its distribution given its parents, each
  iteration: so ``[generated]`` quantities are drawn afresh for every posterior draw (Stan's
  generated quantities), and with the observed data left out of the data the same program draws
  from the prior predictive distribution exactly (no Markov chain: JAGS assigns no sampler).
* :meth:`JagsGenerator.density_program` writes a companion program for log densities at given
  points: the parameters are data, each ``x ~ dfoo(args)`` becomes a logical node
  ``logdensity.foo(x, args)`` (JAGS >= 4) with the same arguments, summed per variable.

Anything without a rule raises :class:`~crossppl.errors.NotYetTranslated`; nothing is dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from crossppl.models.distributions import DISTRIBUTIONS
from crossppl.models.ir import (
    Binary,
    Call,
    Const,
    DerivedDecl,
    Dist,
    Index,
    Model,
    ParamDecl,
    Unary,
    Var,
)
from crossppl.models.spec import path_text

from crossppl.errors import NotYetTranslated

from ..base import Generator, model_data
from ..code import ATOM, Code, paren

__all__ = ["DIST_RULES", "JagsDist", "JagsGenerator", "density_name", "jags_data"]

# How tightly the outermost operator of a piece of BUGS code binds (higher binds tighter).
ADD, MUL, UNARY = 1, 2, 3


@dataclass(frozen=True, slots=True)
class JagsDist:
    """How JAGS writes one native (row, parameterization) of the distribution table.

    ``args`` are JAGS's arguments in order: each names an argument of the row, one derived from
    them through :mod:`crossppl.models.conversions` (``"tau"`` of a scale ``sigma`` is written
    ``pow(sigma, -2)``), or is a literal (``"0"``); ``truncation`` follows the call (``"T(0,)"``
    folds a distribution at 0).
    """

    function: str
    args: tuple[str, ...]
    truncation: str = ""

    def __init__(self, function: str, *args: str, truncation: str = "") -> None:
        object.__setattr__(self, "function", function)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "truncation", truncation)

    @property
    def logdensity(self) -> str:
        """JAGS's log-density function of this distribution (``dnorm`` -> ``logdensity.norm``).
        A truncation ``T(0,)`` at the centre of a symmetric distribution changes the density by
        the constant log 2 only, which comparisons up to a constant ignore."""
        return f"logdensity.{self.function[1:]}"


#: (row name, parameterization key) -> how JAGS writes it, for BUGS's native parameterizations
#: (precisions, rates, probabilities); the others are rewritten through the conversion table.
#: ``inverse_gamma`` has no JAGS distribution (it is ``1 / dgamma``, a logical node, which
#: cannot carry the spec's name as a parameter), so it raises NotYetTranslated.
DIST_RULES: dict[tuple[str, str], JagsDist] = {
    ("normal", "tau"): JagsDist("dnorm", "mu", "tau"),
    ("half_normal", "tau"): JagsDist("dnorm", "0", "tau", truncation="T(0,)"),
    ("student_t", "tau"): JagsDist("dt", "mu", "tau", "nu"),
    ("cauchy", "sigma"): JagsDist("dt", "mu", "tau", "1"),
    ("half_cauchy", "sigma"): JagsDist("dt", "0", "tau", "1", truncation="T(0,)"),
    ("lognormal", "tau"): JagsDist("dlnorm", "mu", "tau"),
    ("exponential", "rate"): JagsDist("dexp", "rate"),
    ("gamma", "rate"): JagsDist("dgamma", "shape", "rate"),
    ("weibull", "sigma"): JagsDist("dweib", "alpha", "lambda"),  # lambda = sigma^-alpha
    ("beta", "default"): JagsDist("dbeta", "alpha", "beta"),
    ("uniform", "default"): JagsDist("dunif", "lower", "upper"),
    ("bernoulli", "p"): JagsDist("dbern", "p"),
    ("binomial", "p"): JagsDist("dbin", "p", "n"),
    ("poisson", "rate"): JagsDist("dpois", "rate"),
}

# Spec functions -> JAGS's (elementwise on scalars; every use is inside the loops).
_FUNCTIONS = {"exp": "exp", "log": "log", "sqrt": "sqrt", "inv_logit": "ilogit",
              "logit": "logit", "abs": "abs"}

# Binary operators: (BUGS operator, strength). ``pow`` is written as the function ``pow``.
_BINARY: dict[str, tuple[str, int]] = {"add": ("+", ADD), "sub": ("-", ADD),
                                       "mul": ("*", MUL), "div": ("/", MUL)}

#: Loop index names, in the order nested loops take them.
_INDEX_NAMES = ("i", "j", "k", "l", "m", "n", "p", "q", "r", "s", "t", "u", "v", "w")

#: Prefix of the per-variable log-density nodes of :meth:`JagsGenerator.density_program`
#: (a dot: no spec name has one).
DENSITY_PREFIX = "lp."


def density_name(name: str) -> str:
    """The node of :meth:`JagsGenerator.density_program` holding ``name``'s summed log density."""
    return f"{DENSITY_PREFIX}{name}"


def _literal(value: float | int) -> Code:
    """A numeric literal as BUGS writes it (``1.0E-6``, ``0.001``, ``-2``)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        text = str(int(value))
    else:
        text = repr(float(value))
        if "e" in text:
            mantissa, exponent = text.split("e")
            if "." not in mantissa:
                mantissa += ".0"
            text = f"{mantissa}E{int(exponent)}"
    return Code(text, UNARY if text.startswith("-") else ATOM)


def _nice(value: float) -> str | None:
    """``value`` written with at most 6 significant digits, if that is exact; else None."""
    if not math.isfinite(value):
        return None
    text = f"{value:.6g}"
    return text if float(text) == value else None


class JagsGenerator(Generator):
    """Writes a :class:`~crossppl.models.ir.Model` as a JAGS program; see the module docstring."""

    backend: ClassVar[str] = "jags"
    DIST_RULES: ClassVar[Mapping[tuple[str, str], JagsDist]] = DIST_RULES

    def fold(self, value: float) -> Const | None:
        """A constant argument's precision or rate, where short and exact (``dnorm(0, 0.04)``
        for a standard deviation of 5)."""
        nice = _nice(value)
        return Const(float(nice)) if nice is not None else None

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        taken = {d.name for d in model.data} | {s.name for s in model.recorded}
        taken |= {f"N_{d.name}" for d in model.dims}
        self.index_names = tuple(n for n in _INDEX_NAMES if n not in taken)
        depth = max((len(s.dims) for s in (*model.recorded, *model.observed)), default=0)
        if depth > len(self.index_names):
            raise NotYetTranslated(self.backend, f"a statement over {depth} dims",
                                   "the JAGS backend runs out of loop index names")
        #: dim -> loop index, for the statement being written.
        self.loop: dict[str, str] = {}

    # -- programs -------------------------------------------------------------------------------
    def program(self) -> str:
        """The whole JAGS program: priors and derived quantities in definition order, the
        likelihood, then the generated quantities."""
        model = self.model
        stmts: list[tuple[tuple[str, ...], str]] = []
        for stmt in model.statements:
            if isinstance(stmt, ParamDecl):
                self.check_parameter(stmt)
                stmts.append((stmt.dims, self.stochastic(stmt.name, stmt.dims, stmt.dist)))
            else:
                stmts.append((stmt.dims, self.logical(stmt)))
        likelihood = [(o.dims, self.stochastic(o.name, o.dims, o.dist)) for o in model.observed]
        generated = [(g.dims, self.stochastic(g.name, g.dims, g.dist)) for g in model.generated]
        return self.render(self.header(), [stmts, likelihood, generated])

    def density_program(self) -> str:
        """The program that evaluates :meth:`program`'s log density at a point given as data:
        derived quantities as in :meth:`program`, and for each parameter and observed variable
        ``x`` a node ``lp.x`` holding the sum of ``logdensity.<dist>(x[...], args)``
        over its elements, the arguments written exactly as :meth:`program` writes them."""
        model = self.model
        stmts = [(s.dims, self.logical(s)) for s in model.derived]
        terms: list[tuple[tuple[str, ...], str]] = []
        sums: list[tuple[tuple[str, ...], str]] = []
        for decl in (*model.parameters, *model.observed):
            dist, rule = self.native(decl.dist)
            self.enter(decl.dims)
            call = self.dist_args(dist, rule)
            target = self.ref(decl.name, decl.dims)
            node = density_name(decl.name)
            if decl.dims:
                element = f"{node}.each"
                terms.append((decl.dims, f"{self.ref(element, decl.dims)} <- "
                                         f"{rule.logdensity}({target}, {call})"))
                sums.append(((), f"{node} <- sum({element}{self.all_of(decl.dims)})"))
            else:
                terms.append(((), f"{node} <- {rule.logdensity}({target}, {call})"))
        header = [*self.header(), "# Log density at a point given as data (crossppl's density "
                  "check): logdensity.<d> of each stochastic node, summed per variable."]
        return self.render(header, [stmts, terms, sums])

    @staticmethod
    def all_of(dims: tuple[str, ...]) -> str:
        """``[,]``-style index of every element of a quantity over ``dims``."""
        return "[" + ",".join("" for _ in dims) + "]"

    def header(self) -> list[str]:
        """A short comment naming the model, its source and crossppl."""
        model = self.model

        def one_line(text: str) -> str:
            return " ".join(text.split())

        lines = [f"# {model.name}" + (f": {one_line(model.description)}" if model.description
                                      else "")]
        if model.source:
            lines.append(f"# Source: {one_line(model.source)}")
        spec = path_text(Path(model.path).name) if model.path else "a spec"
        lines.append(f"# Generated by crossppl from {spec}; edit the spec, not this program.")
        return lines

    def render(self, header: list[str],
               groups: list[list[tuple[tuple[str, ...], str]]]) -> str:
        """``header`` and ``model { ... }`` holding ``groups`` of (dims, statement), a blank line
        between groups; consecutive statements over the same dims share one loop nest."""
        out = [*header, "model {"]
        first = True
        for group in groups:
            if not group:
                continue
            if not first:
                out.append("")
            first = False
            k = 0
            while k < len(group):
                dims = group[k][0]
                run = [group[k][1]]
                k += 1
                while dims and k < len(group) and group[k][0] == dims:
                    run.append(group[k][1])
                    k += 1
                out.extend(self.loops(dims, run))
        out.append("}")
        return "\n".join(out) + "\n"

    def loops(self, dims: tuple[str, ...], body: list[str]) -> list[str]:
        """``body`` inside one ``for`` loop per dim (two-space indents, inside ``model``)."""
        lines = []
        pad = "  "
        for depth, dim in enumerate(dims):
            lines.append(f"{pad}for ({self.index_names[depth]} in 1:N_{dim}) {{")
            pad += "  "
        lines.extend(f"{pad}{line}" for line in body)
        for _ in dims:
            pad = pad[:-2]
            lines.append(f"{pad}}}")
        return lines

    # -- statements -----------------------------------------------------------------------------
    def enter(self, dims: tuple[str, ...]) -> None:
        """Start writing a statement over ``dims``: each dim's loop index by nesting depth."""
        self.loop = {d: self.index_names[n] for n, d in enumerate(dims)}

    def ref(self, name: str, dims: tuple[str, ...]) -> str:
        """``name`` indexed by the current loops over ``dims``."""
        if not dims:
            return name
        return f"{name}[{', '.join(self.loop[d] for d in dims)}]"

    def check_parameter(self, param: ParamDecl) -> None:
        support = DISTRIBUTIONS[param.dist.name].support
        if support.discrete:
            raise NotYetTranslated(
                self.backend, f"a parameter with {support.kind} support ({param.name})")

    def stochastic(self, name: str, dims: tuple[str, ...], dist: Dist) -> str:
        """``name[...] ~ dfoo(...)`` inside loops over ``dims``."""
        dist, rule = self.native(dist)
        self.enter(dims)
        call = f"{rule.function}({self.dist_args(dist, rule)})"
        if rule.truncation:
            call += f" {rule.truncation}"
        return f"{self.ref(name, dims)} ~ {call}"

    def logical(self, derived: DerivedDecl) -> str:
        """``name[...] <- expr`` inside loops over the derived quantity's dims."""
        self.enter(derived.dims)
        return f"{self.ref(derived.name, derived.dims)} <- {self.expr(derived.expr, derived.dims)}"

    def dist_args(self, dist: Dist, rule: JagsDist) -> str:
        """The arguments of ``rule``'s call for ``dist`` (in ``rule``'s parameterization), at the
        current loop indexes."""
        return ", ".join(self.expr(self.rule_arg(dist, name), tuple(self.loop))
                         for name in rule.args)

    # -- expressions ----------------------------------------------------------------------------
    def expr(self, node: Any, target: tuple[str, ...]) -> Code:
        """Write ``node`` at the current loop indexes (its dims are a subset of ``target``)."""
        missing = [d for d in getattr(node, "dims", ()) if d not in self.loop]
        if missing:
            raise NotYetTranslated(self.backend, f"an expression over {node.dims} inside "
                                                 f"{target}")
        return super().expr(node, target)

    def expr_Const(self, node: Const, target: tuple[str, ...]) -> Code:
        return _literal(node.value)

    def expr_Var(self, node: Var, target: tuple[str, ...]) -> Code:
        return Code(self.ref(node.name, node.dims))

    def expr_Index(self, node: Index, target: tuple[str, ...]) -> Code:
        index = self.ref(node.index.name, node.index.dims)
        rest = [self.loop[d] for d in node.base.dims[1:]]
        return Code(f"{node.base.name}[{', '.join([index, *rest])}]")

    def expr_Unary(self, node: Unary, target: tuple[str, ...]) -> Code:
        if node.op != "neg":
            raise NotYetTranslated(self.backend, f"the unary operator {node.op!r}")
        operand = self.expr(node.operand, target)
        return Code(f"-{paren(operand, UNARY + 1)}", UNARY)

    def expr_Binary(self, node: Binary, target: tuple[str, ...]) -> Code:
        left, right = self.expr(node.left, target), self.expr(node.right, target)
        if node.op == "pow":
            return Code(f"pow({left}, {right})")
        if node.op not in _BINARY:
            raise NotYetTranslated(self.backend, f"the binary operator {node.op!r}")
        symbol, strength = _BINARY[node.op]
        return Code(f"{paren(left, strength)} {symbol} {paren(right, strength + 1)}", strength)

    def expr_Call(self, node: Call, target: tuple[str, ...]) -> Code:
        args = [self.expr(a, target) for a in node.args]
        if node.func == "pow":
            return Code(f"pow({args[0]}, {args[1]})")
        if node.func not in _FUNCTIONS:
            raise NotYetTranslated(self.backend, f"the function {node.func}()")
        return Code(f"{_FUNCTIONS[node.func]}({', '.join(args)})")


def jags_data(model: Model, program: str, *, observed: bool = True) -> dict[str, np.ndarray]:
    """The data of ``model`` as ``program`` reads them: dim sizes ``N_<dim>`` and data arrays
    (index data 1-based), only those ``program`` uses (JAGS refuses unused data); without the
    observed variables when ``observed`` is False (prior predictive draws)."""
    used = set(re.findall(r"[A-Za-z][\w.]*", program))
    kinds = {d.name: d.kind for d in model.data}
    skip = set() if observed else set(model.observed_names)
    out: dict[str, np.ndarray] = {}
    for name, value in model_data(model).items():
        if name not in used or name in skip:
            continue
        arr = np.asarray(value, dtype=float)
        if kinds.get(name) == "index":
            arr = arr + 1
        out[name] = arr
    return out
