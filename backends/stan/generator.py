"""The Stan generator: IR -> a readable, vectorized Stan program (see
:mod:`crossppl.backends.stan`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from crossppl.models.distributions import DISTRIBUTIONS
from crossppl.models.ir import (
    Binary,
    Call,
    Const,
    DataDecl,
    DerivedDecl,
    Dist,
    Expr,
    Index,
    Model,
    ObservedDecl,
    ParamDecl,
    Unary,
    Var,
    walk,
)
from crossppl.models.spec import path_text

from crossppl.errors import NotYetTranslated

from ..base import Generator
from ..code import ATOM, Code, paren

__all__ = ["DIST_RULES", "Code", "StanDist", "StanGenerator"]

# How tightly the outermost operator of a piece of Stan code binds (Stan's precedence table,
# higher binds tighter): + -, then * /, then .* ./, then unary -, then ^ .^, then postfix '.
ADD, MUL, ELTWISE, UNARY, POW, POSTFIX = 1, 2, 4, 5, 6, 7


@dataclass(frozen=True, slots=True)
class StanDist:
    """How Stan writes one native (row, parameterization) of the distribution table.

    ``args`` are Stan's arguments in order: each names an argument of the row, one derived from
    them through :mod:`crossppl.models.conversions`, or is a literal (``"0"``). ``rng`` is the
    vectorized ``_rng`` function that draws from it (generated quantities, prior predictive
    programs; None: drawn through another parameterization of the row) and ``outer`` a function
    applied to the draws (``abs`` folds a half-normal).
    """

    function: str
    args: tuple[str, ...]
    rng: str | None
    outer: str | None

    def __init__(self, function: str, *args: str, rng: str | None = None,
                 outer: str | None = None) -> None:
        object.__setattr__(self, "function", function)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "rng", rng)
        object.__setattr__(self, "outer", outer)


def _rule(function: str, *args: str, outer: str | None = None) -> StanDist:
    """A rule whose ``_rng`` function is ``function_rng``."""
    return StanDist(function, *args, rng=f"{function}_rng", outer=outer)


#: (row name, parameterization key) -> how Stan writes it, for the parameterizations Stan takes
#: natively; the others (precisions, scales of the exponential and gamma) are rewritten through
#: the conversion table (``normal(mu, inv_sqrt(tau))``). Stan has no ``binomial_logit_rng``:
#: log-odds are drawn as ``binomial_rng(n, inv_logit(logit_p))``.
DIST_RULES: dict[tuple[str, str], StanDist] = {
    ("normal", "sigma"): _rule("normal", "mu", "sigma"),
    ("half_normal", "sigma"): StanDist("normal", "0", "sigma", rng="normal_rng", outer="abs"),
    ("student_t", "sigma"): _rule("student_t", "nu", "mu", "sigma"),
    ("cauchy", "sigma"): _rule("cauchy", "mu", "sigma"),
    ("half_cauchy", "sigma"): StanDist("cauchy", "0", "sigma", rng="cauchy_rng", outer="abs"),
    ("lognormal", "sigma"): _rule("lognormal", "mu", "sigma"),
    ("exponential", "rate"): _rule("exponential", "rate"),
    ("gamma", "rate"): _rule("gamma", "shape", "rate"),
    ("inverse_gamma", "scale"): _rule("inv_gamma", "shape", "scale"),
    ("weibull", "sigma"): _rule("weibull", "alpha", "sigma"),
    ("beta", "default"): _rule("beta", "alpha", "beta"),
    ("uniform", "default"): _rule("uniform", "lower", "upper"),
    ("bernoulli", "p"): _rule("bernoulli", "p"),
    ("bernoulli", "logit_p"): _rule("bernoulli_logit", "logit_p"),
    ("binomial", "p"): _rule("binomial", "n", "p"),
    ("binomial", "logit_p"): StanDist("binomial_logit", "n", "logit_p"),
    ("poisson", "rate"): _rule("poisson", "rate"),
    ("poisson", "log_rate"): _rule("poisson_log", "log_rate"),
}

# Binary operators: (operator between scalars, elementwise operator, strength of each).
_BINARY: dict[str, tuple[str, str, int, int]] = {
    "add": ("+", "+", ADD, ADD),
    "sub": ("-", "-", ADD, ADD),
    "mul": ("*", ".*", MUL, ELTWISE),
    "div": ("/", "./", MUL, ELTWISE),
    "pow": ("^", ".^", POW, POW),
}

# Spec functions that Stan writes with the same name, vectorized over vectors and matrices.
_FUNCTIONS = {name: name for name in ("exp", "log", "sqrt", "inv_logit", "logit", "abs", "inv",
                                      "inv_sqrt", "inv_square")}

#: Relative tolerance of the check that a program's terms add up to its log density (scaled by
#: its magnitude, at least 1): the two differ by rounding only, and by the constants ``~``
#: drops, which the check ignores. Rats: 1.5e-6 nats, against 1.3e-4 for the smallest slip
#: measured (a prior's precision 1e-4 for 1e-6).
TERMS_RTOL = 1e-9

_RANK_HINT = (
    "the Stan backend writes quantities of up to 2 dims (vector, matrix); "
    "reshape the model to 2 dims or use another backend"
)


def _literal(value: float | int) -> Code:
    """A numeric literal as Stan reads it (integers beyond Stan's 32-bit int as reals)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**31:
        text = str(value)
    else:
        text = repr(float(value))
    return Code(text, UNARY if text.startswith("-") else ATOM)


def _nice(value: float) -> str | None:
    """``value`` written with at most 6 significant digits, if that is exact; else None."""
    text = f"{value:.6g}"
    return text if float(text) == value and "e" not in text else None


class StanGenerator(Generator):
    """Writes a :class:`~crossppl.models.ir.Model` as a Stan program; see the module docstring."""

    backend: ClassVar[str] = "stan"
    DIST_RULES: ClassVar[Mapping[tuple[str, str], StanDist]] = DIST_RULES
    HELPERS: ClassVar[frozenset[str]] = frozenset({"inv", "inv_sqrt", "inv_square"})

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        self.derived = {d.name: d for d in model.derived}
        self.data_decls = {d.name: d for d in model.data}
        #: Names whose values are Stan ints beyond integer data: discrete generated quantities
        #: (and, in the prior program, discrete replicated data).
        self.int_names = {g.name for g in model.generated if _discrete(g.dist)}

    def fold(self, value: float) -> Const | None:
        """A constant argument's precision or rate, where short and exact (``normal(0, 1000)``
        for a precision of 1e-6)."""
        nice = _nice(value) if math.isfinite(value) else None
        if nice is None:
            return None
        return Const(int(nice) if re.fullmatch(r"-?\d+", nice) else float(nice))

    # -- the program ----------------------------------------------------------------------------
    def program(self) -> str:
        """The whole Stan program."""
        model = self.model
        tparams = self.transformed_parameters()
        blocks = [
            ("data", self.data_block()),
            ("parameters", [self.param_decl(p) for p in model.parameters]),
            (
                "transformed parameters",
                [self.derived_decl(d) for d in model.derived if d.name in tparams],
            ),
            ("model", self.model_block()),
            (
                "generated quantities",
                [self.derived_decl(d) for d in model.derived if d.name not in tparams]
                + [self.draw_decl(g.name, g.dims, g.dist) for g in model.generated],
            ),
        ]
        return self.render(self.header(), blocks)

    def prior_program(self) -> str:
        """The prior predictive program (Stan User's Guide, "Prior predictive checks"): data
        without the observed values, and a ``generated quantities`` block that draws every
        parameter from its prior, computes the derived quantities, draws the observed variables
        (under their own names) from their likelihood, then the generated quantities. Run it
        with the ``fixed_param`` sampler."""
        model = self.model
        observed = self.prior_observed_order()
        self.int_names |= {o.name for o in observed if _discrete(o.dist)}
        statements = [
            self.draw_decl(s.name, s.dims, s.dist) if isinstance(s, ParamDecl)
            else self.derived_decl(s)
            for s in model.statements
        ]
        replicated = [self.draw_decl(o.name, o.dims, o.dist) for o in observed]
        generated = [self.draw_decl(g.name, g.dims, g.dist) for g in model.generated]
        lines: list[str] = []
        for group in (statements, replicated, generated):
            lines.extend(([""] if lines and group else []) + group)
        header = [*self.header(), "// Prior predictive draws (no observed values): run with "
                  "the fixed_param sampler."]
        return self.render(header, [("data", self.data_block(prior=True)),
                                    ("generated quantities", lines)])

    def prior_observed_order(self) -> list[ObservedDecl]:
        """The observed variables in an order where each is drawn before another uses it."""
        observed = {o.name: o for o in self.model.observed}
        for stmt in self.model.statements:
            root = stmt.expr if isinstance(stmt, DerivedDecl) else stmt.dist
            used = sorted({n.name for n in walk(root) if isinstance(n, Var)} & set(observed))
            if used:
                raise NotYetTranslated(
                    self.backend,
                    f"prior predictive draws of a model whose {stmt.name!r} uses the observed "
                    f"data {used[0]!r}",
                    "the observed data are drawn after the parameters in a prior predictive "
                    "program; declare a separate, unobserved copy of the data for the covariate",
                )
        order: list[ObservedDecl] = []
        pending = list(self.model.observed)
        while pending:
            ready = [o for o in pending
                     if not ({n.name for n in walk(o.dist) if isinstance(n, Var)}
                             & {p.name for p in pending if p is not o})]
            if not ready:
                raise NotYetTranslated(
                    self.backend,
                    "prior predictive draws of observed variables whose distributions use one "
                    f"another ({', '.join(o.name for o in pending)})",
                )
            order.extend(ready)
            pending = [o for o in pending if o not in ready]
        return order

    @staticmethod
    def render(header: list[str], blocks: list[tuple[str, list[str]]]) -> str:
        """``header`` and the non-empty ``blocks`` (name, lines) as program text."""
        out = list(header)
        for name, lines in blocks:
            if not lines:
                continue
            out.append(f"{name} {{")
            out.extend(f"  {line}" if line else "" for line in lines)
            out.append("}")
        return "\n".join(out) + "\n"

    def header(self) -> list[str]:
        """A short comment naming the model, its source and crossppl."""
        model = self.model

        def one_line(text: str) -> str:
            return " ".join(text.split())

        lines = [f"// {model.name}" + (f": {one_line(model.description)}" if model.description
                                       else "")]
        if model.source:
            lines.append(f"// Source: {one_line(model.source)}")
        spec = path_text(Path(model.path).name) if model.path else "a spec"
        lines.append(f"// Generated by crossppl from {spec}; edit the spec, not this program.")
        return lines

    def transformed_parameters(self) -> set[str]:
        """Derived quantities the model block needs (directly or through other derived ones)."""
        needed: set[str] = set()
        stack = [
            node.name
            for stmt in (*self.model.parameters, *self.model.observed)
            for node in walk(stmt.dist)
            if isinstance(node, Var) and node.name in self.derived
        ]
        while stack:
            name = stack.pop()
            if name in needed:
                continue
            needed.add(name)
            stack.extend(
                node.name
                for node in walk(self.derived[name].expr)
                if isinstance(node, Var) and node.name in self.derived
            )
        return needed

    # -- declarations ---------------------------------------------------------------------------
    def container(self, dims: tuple[str, ...], what: str, bounds: str = "") -> str:
        """The Stan type of a real quantity over ``dims``: real, vector or matrix."""
        self.check_rank(dims, what)
        sizes = ", ".join(f"N_{d}" for d in dims)
        if not dims:
            return f"real{bounds}"
        if len(dims) == 1:
            return f"vector{bounds}[{sizes}]"
        return f"matrix{bounds}[{sizes}]"

    def check_rank(self, dims: tuple[str, ...], what: str) -> None:
        if len(dims) > 2:
            raise NotYetTranslated(self.backend, f"{what} with {len(dims)} dims {dims}",
                                   _RANK_HINT)

    def data_block(self, *, prior: bool = False) -> list[str]:
        """Dim sizes and data; without the observed data when ``prior``."""
        lines = [f"int<lower=1> N_{d.name};" for d in self.model.dims]
        observed = {o.name: o for o in self.model.observed}
        for decl in self.model.data:
            if prior and decl.name in observed:
                continue
            lines.append(f"{self.data_type(decl, observed.get(decl.name))} {decl.name};")
        return lines

    def data_type(self, decl: DataDecl, observed: ObservedDecl | None) -> str:
        what = f"the data {decl.name!r}"
        self.check_rank(decl.dims, what)
        sizes = ", ".join(f"N_{d}" for d in decl.dims)
        support = DISTRIBUTIONS[observed.dist.name].support if observed else None
        kind = support.kind if support else None
        if decl.kind == "index":
            bounds = f"<lower=1, upper=N_{decl.indexes}>"
        else:  # observed data: the support of its distribution, checked by Stan too
            bounds = {"binary": "<lower=0, upper=1>", "unit": "<lower=0, upper=1>",
                      "count": "<lower=0>", "bounded_count": "<lower=0>",
                      "positive": "<lower=0>"}.get(kind or "", "")
        if decl.kind == "real":
            return self.container(decl.dims, what, bounds)
        return f"array[{sizes}] int{bounds}" if decl.dims else f"int{bounds}"

    def param_decl(self, param: ParamDecl) -> str:
        support = DISTRIBUTIONS[param.dist.name].support
        if support.kind == "positive":
            bounds = "<lower=0>"
        elif support.kind == "unit":
            bounds = "<lower=0, upper=1>"
        elif support.kind == "interval":
            lower = self.bound(param, support.lower)
            upper = self.bound(param, support.upper)
            bounds = f"<lower={lower}, upper={upper}>"
        elif support.kind == "real":
            bounds = ""
        else:
            raise NotYetTranslated(
                self.backend, f"a parameter with {support.kind} support ({param.name})"
            )
        kind = self.container(param.dims, f"the parameter {param.name!r}", bounds)
        return f"{kind} {param.name};"

    def bound(self, param: ParamDecl, arg_name: str | None) -> Code:
        """A bound of an interval-constrained parameter, laid out over the parameter's dims."""
        arg = param.dist.arg(arg_name or "")
        late = sorted({n.name for n in walk(arg) if isinstance(n, Var) and n.name in self.derived})
        if late:
            raise NotYetTranslated(
                self.backend,
                f"a bound of {param.name!r} that uses the derived quantity {late[0]!r}",
                "Stan declares parameters before derived quantities; write the expression "
                "itself in the distribution",
            )
        return self.expr(arg, param.dims)

    def derived_decl(self, derived: DerivedDecl) -> str:
        what = f"the derived quantity {derived.name!r}"
        value = self.fill(self.expr(derived.expr, derived.dims), derived.expr.dims, derived.dims)
        return f"{self.container(derived.dims, what)} {derived.name} = {value};"

    def draw_decl(self, name: str, dims: tuple[str, ...], dist: Dist) -> str:
        """``name`` declared over ``dims`` and drawn from ``dist`` with its ``_rng`` function:
        ``real`` / ``vector`` / ``matrix`` for a continuous distribution, ``int`` / ``array[...]
        int`` for a discrete one. A matrix is drawn as one column-major vector (an int one
        row-major, as the integer likelihoods are written) and reshaped."""
        what = f"{name!r}"
        self.check_rank(dims, what)
        integer = _discrete(dist)
        dist, rule = self.rng_rule(dist)
        call = self.dist_call(dist, dims, flat=len(dims) == 2, integer_target=integer,
                              rule=rule, draw=True)
        if rule.outer:
            call = f"{rule.outer}({call})"
        sizes = ", ".join(f"N_{d}" for d in dims)
        if integer:
            kind = f"array[{sizes}] int" if dims else "int"
            if len(dims) == 2:  # Stan has no reshape of int arrays: through a row-major matrix
                call = f"to_int(to_array_2d(to_matrix({call}, {sizes}, 0)))"
        else:
            kind = self.container(dims, what)
            if len(dims) == 1:
                call = f"to_vector({call})"
            elif len(dims) == 2:
                call = f"to_matrix({call}, {sizes})"
        return f"{kind} {name} = {call};"

    def rng_rule(self, dist: Dist) -> tuple[Dist, StanDist]:
        """``dist`` in a parameterization Stan draws from, and its rule; raises if none."""
        drawable = {key: rule for key, rule in self.DIST_RULES.items() if rule.rng}
        return self.native(
            dist, drawable,
            f"drawing from the distribution {dist.name} with parameterization "
            f"{dist.parameterization!r} (generated quantities, prior predictive draws)")

    def is_integer(self, node: Var) -> bool:
        """Whether ``node`` is a Stan int (or int array)."""
        return node.integer or node.name in self.int_names

    # -- the model block ------------------------------------------------------------------------
    def model_block(self) -> list[str]:
        priors = [self.sampling(p.name, p.dims, p.dist, integer=False)
                  for p in self.model.parameters]
        likelihood = [
            self.sampling(o.name, o.dims, o.dist,
                          integer=self.data_decls[o.name].kind != "real")
            for o in self.model.observed
        ]
        return priors + ([""] if priors and likelihood else []) + likelihood

    def sampling(self, name: str, dims: tuple[str, ...], dist: Dist, *, integer: bool) -> str:
        """``name ~ dist(...)``, vectorized over ``dims``."""
        self.check_rank(dims, f"{name!r}")
        call = self.dist_call(dist, dims, flat=len(dims) == 2, integer_target=integer)
        if len(dims) < 2:
            lhs = name
        elif integer:
            lhs = f"to_array_1d({name})"
        else:
            lhs = f"to_vector({name})"
        return f"{lhs} ~ {call};"

    def dist_call(self, dist: Dist, dims: tuple[str, ...], *, flat: bool = False,
                  integer_target: bool = False, rule: StanDist | None = None,
                  draw: bool = False) -> str:
        """``function(args)`` of ``dist`` with its arguments laid out over ``dims``.

        ``flat``: the target is a matrix sampled as one vector; non-scalar arguments are flattened
        in the same order: column-major (``to_vector``) for a real target, row-major for an
        integer one (``to_array_1d`` of an int array is row-major, so those arguments are built
        over the reversed dims and flattened with ``to_vector``). ``draw``: write ``rule``'s
        ``_rng`` function (then, where every argument is a scalar and ``dims`` are not, the
        first is repeated to the target's size, as a vectorized ``_rng`` returns one draw per
        element of its largest argument); ``dist`` must then be in ``rule``'s parameterization.
        Without ``rule``, ``dist`` is rewritten to a parameterization of :data:`DIST_RULES`.
        """
        if rule is None:
            dist, rule = self.native(dist)
        row = DISTRIBUTIONS[dist.name]
        integer_args = row.parameterization(dist.parameterization).integer
        layout = dims[::-1] if flat and integer_target else dims
        args = []
        for name in rule.args:
            arg = self.rule_arg(dist, name)
            if name in integer_args:
                args.append(self.integer_arg(arg, dims, flat=flat))
                continue
            code = self.expr(arg, layout)
            if flat and arg.dims:
                code = Code(f"to_vector({code})")
            args.append(code)
        if draw and dims and not any(a.dims for _, a in dist.args):
            size = " * ".join(f"N_{d}" for d in dims)
            repeat = "rep_array" if rule.args[0] in integer_args else "rep_vector"
            args[0] = f"{repeat}({args[0]}, {size})"
        return f"{rule.rng if draw else rule.function}({', '.join(args)})"

    def integer_arg(self, arg: Expr, dims: tuple[str, ...], *, flat: bool) -> Code:
        """An integer argument (binomial's n): an int literal, or int data over the target dims."""
        if isinstance(arg, Const):
            return _literal(arg.value)
        if isinstance(arg, Var) and self.is_integer(arg) and (not arg.dims or arg.dims == dims):
            return Code(f"to_array_1d({arg.name})" if flat and arg.dims else arg.name)
        raise NotYetTranslated(
            self.backend,
            "an integer distribution argument that is an expression or is broadcast across dims",
            "give integer data declared with the same dims as the observed variable",
        )

    # -- expressions ----------------------------------------------------------------------------
    def expr(self, node: Any, target: tuple[str, ...]) -> Code:
        """Write ``node``, laid out over ``target`` (a scalar stays a scalar)."""
        dims = getattr(node, "dims", ())
        self.check_rank(dims, "an expression")
        self.check_rank(target, "an expression")
        missing = [d for d in dims if d not in target]
        if missing:
            raise NotYetTranslated(self.backend, f"an expression over {dims} inside {target}")
        return super().expr(node, target)

    def align(self, code: Code, src: tuple[str, ...], dst: tuple[str, ...]) -> Code:
        """Broadcast ``code`` (laid out over ``src``) to ``dst``; scalars stay scalars."""
        if not src or src == dst:
            return code
        if len(dst) == 2:
            a, b = dst
            if src == (a,):
                return Code(f"rep_matrix({code}, N_{b})")
            if src == (b,):
                return Code(f"rep_matrix({self.transpose(code)}, N_{a})")
            if src == (b, a):
                return self.transpose(code)
        raise NotYetTranslated(self.backend, f"broadcasting dims {src} to {dst}", _RANK_HINT)

    def fill(self, code: Code, src: tuple[str, ...], dst: tuple[str, ...]) -> Code:
        """Like :meth:`align`, but a scalar becomes a full vector or matrix too."""
        if src or not dst:
            return code
        sizes = ", ".join(f"N_{d}" for d in dst)
        return Code(f"rep_vector({code}, {sizes})" if len(dst) == 1
                    else f"rep_matrix({code}, {sizes})")

    @staticmethod
    def transpose(code: Code) -> Code:
        return Code(f"{paren(code, POSTFIX)}'", POSTFIX)

    def expr_Const(self, node: Const, target: tuple[str, ...]) -> Code:
        return _literal(node.value)

    def expr_Var(self, node: Var, target: tuple[str, ...]) -> Code:
        code = Code(node.name)
        if self.is_integer(node) and node.dims:
            # int arrays have no arithmetic in Stan: use them as vector / matrix
            code = Code(f"to_vector({code})" if len(node.dims) == 1 else f"to_matrix({code})")
        return self.align(code, node.dims, target)

    def expr_Index(self, node: Index, target: tuple[str, ...]) -> Code:
        if len(node.index.dims) > 1:
            raise NotYetTranslated(
                self.backend,
                f"indexing by the {len(node.index.dims)}-dim index {node.index.name!r}",
                "Stan's multi-indexing takes a 1-dim array of indexes",
            )
        self.check_rank(node.base.dims, "an indexed quantity")
        code = Code(f"{node.base.name}[{node.index.name}]")
        base_is_int = self.is_integer(node.base)
        if node.dims and base_is_int:
            code = Code(f"to_vector({code})" if len(node.dims) == 1 else f"to_matrix({code})")
        elif not node.index.dims and len(node.base.dims) == 2:
            code = self.transpose(code)  # a row of a matrix is a row_vector
        return self.align(code, node.dims, target)

    def expr_Unary(self, node: Unary, target: tuple[str, ...]) -> Code:
        if node.op != "neg":
            raise NotYetTranslated(self.backend, f"the unary operator {node.op!r}")
        operand = self.expr(node.operand, node.dims)
        return self.align(Code(f"-{paren(operand, UNARY + 1)}", UNARY), node.dims, target)

    def expr_Binary(self, node: Binary, target: tuple[str, ...]) -> Code:
        return self.align(self.binary(node.op, node.left, node.right, node.dims), node.dims,
                          target)

    def binary(self, op: str, left: Expr, right: Expr, dims: tuple[str, ...]) -> Code:
        """``left <op> right`` computed over ``dims``."""
        if op not in _BINARY:
            raise NotYetTranslated(self.backend, f"the binary operator {op!r}")
        scalar_op, elementwise_op, scalar_strength, elementwise_strength = _BINARY[op]
        if (op == "mul" and len(dims) == 2 and len(left.dims) == 1 and len(right.dims) == 1
                and left.dims != right.dims):
            # idiom: the outer product of a column and a row vector
            column, row = (left, right) if left.dims == dims[:1] else (right, left)
            col_code = paren(self.expr(column, column.dims), MUL)
            row_code = self.transpose(self.expr(row, row.dims))
            return Code(f"{col_code} * {row_code}", MUL)
        lhs, rhs = self.expr(left, dims), self.expr(right, dims)
        both = bool(left.dims) and bool(right.dims)
        symbol, strength = (elementwise_op, elementwise_strength) if both else (
            scalar_op, scalar_strength)
        if op == "pow" and (left.dims or right.dims):
            symbol = elementwise_op
        if (op == "div" and not dims and _is_int(left, self.int_names)
                and _is_int(right, self.int_names)):
            # Stan's int / int truncates; the spec means true division
            lhs = (Code(f"{lhs}.0") if isinstance(left, Const) and lhs.isdigit()
                   else Code(f"1.0 * {paren(lhs, MUL)}", MUL))
        if op == "pow":
            lhs, rhs = paren(lhs, strength + 1), paren(rhs, strength + 1)
        else:
            lhs, rhs = paren(lhs, strength), paren(rhs, strength + 1)
        return Code(f"{lhs} {symbol} {rhs}", strength)

    def expr_Call(self, node: Call, target: tuple[str, ...]) -> Code:
        if node.func == "pow":
            code = self.binary("pow", node.args[0], node.args[1], node.dims)
        elif node.func in _FUNCTIONS:
            args = ", ".join(self.expr(a, node.dims) for a in node.args)
            code = Code(f"{_FUNCTIONS[node.func]}({args})")
        else:
            raise NotYetTranslated(self.backend, f"the function {node.func}()")
        return self.align(code, node.dims, target)


def _is_int(node: Expr, int_names: set[str] | frozenset[str] = frozenset()) -> bool:
    """Whether ``node`` has an integer value in Stan (so that ``/`` would truncate);
    ``int_names`` are ints besides integer data (discrete generated quantities)."""
    if isinstance(node, Const):
        return isinstance(node.value, int) and abs(node.value) < 2**31
    if isinstance(node, Var):
        return node.integer or node.name in int_names
    if isinstance(node, Index):
        return node.base.integer or node.base.name in int_names
    if isinstance(node, Unary):
        return _is_int(node.operand, int_names)
    if isinstance(node, Binary):
        return (node.op in ("add", "sub", "mul") and _is_int(node.left, int_names)
                and _is_int(node.right, int_names))
    if isinstance(node, Call):
        return node.func == "abs" and _is_int(node.args[0], int_names)
    return False


def _discrete(dist: Dist) -> bool:
    """Whether draws of ``dist`` are integers."""
    return DISTRIBUTIONS[dist.name].support.discrete


