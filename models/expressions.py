"""Parse expression and distribution strings into the IR, with Python's ``ast`` and a whitelist.

Nothing is ever evaluated: the string is parsed with :func:`ast.parse` (which runs no code), every
node is checked against a whitelist, and only then turned into IR nodes. Constant sub-expressions
are folded in float64 once, only to reject ones that overflow (``9**9**9``).
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from crossppl.errors import SpecError

from .distributions import DISTRIBUTIONS, DistRow
from .ir import FUNCTIONS, Binary, Call, Const, Dist, Expr, Index, Role, Unary, Var

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "Scope", "Symbol", "parse_dist", "parse_expr", "referenced"]

#: Longest expression string accepted.
MAX_LENGTH = 2000
#: Deepest nesting of operators and calls accepted.
MAX_DEPTH = 40

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_BINOP_TEXT = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


@dataclass(frozen=True, slots=True)
class Symbol:
    """What the parser knows of a name: its role, dims, and for index data the dim it indexes."""

    role: Role
    dims: tuple[str, ...]
    integer: bool = False
    indexes: str | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """Names visible to an expression, the model's dims in declaration order, and where we are."""

    symbols: Mapping[str, Symbol]
    dim_order: tuple[str, ...]
    file: str | None = None
    entry: str | None = None
    line: int | None = None
    #: Position of each dim in ``dim_order`` (computed when not given; pass it to share it).
    dim_index: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if self.dim_index is None:
            object.__setattr__(self, "dim_index", {d: i for i, d in enumerate(self.dim_order)})

    def error(self, message: str) -> SpecError:
        """Build a :class:`SpecError` located at this entry."""
        return SpecError(message, file=self.file, entry=self.entry, line=self.line)

    def union(self, *dimses: tuple[str, ...]) -> tuple[str, ...]:
        """Union of dims in declaration order."""
        index = self.dim_index
        present = {d for dims in dimses for d in dims if d in index}
        return tuple(sorted(present, key=index.__getitem__))


def _parse_tree(text: object, scope: Scope, what: str) -> ast.expr:
    if not isinstance(text, str):
        raise scope.error(
            f"expected a string holding {what}, found {type(text).__name__} {text!r:.60}; "
            'write it in quotes, e.g. "normal(0, 1)"'
        )
    if len(text) > MAX_LENGTH:
        raise scope.error(
            f"the {what} is {len(text)} characters long (limit {MAX_LENGTH}); "
            "split it with derived quantities"
        )
    if not text.strip():
        raise scope.error(f"empty {what}; write e.g. \"normal(0, 1)\"")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise scope.error(f"cannot parse {text!r:.80} as {what}: {exc.msg}") from None
    except UnicodeError:  # lone surrogates cannot be encoded for the parser
        raise scope.error(f"the {what} {text!r:.80} holds characters that are not valid text; "
                          "retype it") from None
    except (RecursionError, MemoryError, ValueError):
        raise scope.error(
            f"the {what} is nested too deeply or malformed; limit nesting to {MAX_DEPTH} levels"
        ) from None
    return tree.body


def referenced(text: object, scope: Scope) -> set[str]:
    """Names (not dims, functions or distributions) that ``text`` refers to.

    Used to order statements before parsing them; unknown names are reported later.
    """
    body = _parse_tree(text, scope, "expression")
    _check_depth(body, scope)
    return {
        node.id
        for node in ast.walk(body)
        if isinstance(node, ast.Name)
        and node.id not in scope.dim_index
        and node.id not in FUNCTIONS
        and node.id not in DISTRIBUTIONS
    }


def _check_depth(node: ast.AST, scope: Scope) -> None:
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise scope.error(
                f"expression nested more than {MAX_DEPTH} levels deep; "
                "split it with derived quantities"
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(current))


def parse_expr(text: object, scope: Scope) -> Expr:
    """Parse an expression string (e.g. ``"1 / sqrt(tau)"``) into an IR expression."""
    body = _parse_tree(text, scope, "expression")
    _check_depth(body, scope)
    if (
        isinstance(body, ast.Call)
        and isinstance(body.func, ast.Name)
        and body.func.id in DISTRIBUTIONS
    ):
        raise scope.error(
            f"found the distribution {body.func.id}(...) where an expression was expected; "
            "put distributions under [parameters] or [observed], expressions under [derived]"
        )
    expr = _Builder(scope).expr(body)
    _fold(expr, scope)
    return expr


def parse_dist(text: object, scope: Scope) -> Dist:
    """Parse a distribution string (e.g. ``"normal(mu, tau=tau)"``) into an IR :class:`Dist`."""
    body = _parse_tree(text, scope, "distribution")
    _check_depth(body, scope)
    if not (isinstance(body, ast.Call) and isinstance(body.func, ast.Name)):
        raise scope.error(
            f"expected a distribution call such as \"normal(mu, sigma)\", found {text!r:.80}"
        )
    name = body.func.id
    row = DISTRIBUTIONS.get(name)
    if row is None:
        close = difflib.get_close_matches(name, DISTRIBUTIONS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise scope.error(
            f"unknown distribution {name!r:.60}; {hint}known: {', '.join(sorted(DISTRIBUTIONS))}"
        )
    builder = _Builder(scope)
    positional = [builder.expr(a) for a in body.args]
    if any(isinstance(a, ast.Starred) for a in body.args):
        raise scope.error("*args are not allowed in a distribution call")
    keywords: dict[str, Expr] = {}
    for kw in body.keywords:
        if kw.arg is None:
            raise scope.error("**kwargs are not allowed in a distribution call")
        if kw.arg in keywords:
            raise scope.error(f"argument {kw.arg!r} given twice to {name}")
        keywords[kw.arg] = builder.expr(kw.value)
    param = _choose_parameterization(row, len(positional), keywords, scope)
    values = dict(zip(param.params, positional, strict=False)) | keywords
    args = tuple((p, values[p]) for p in param.params)
    for p, arg in args:
        _fold(arg, scope)
        _check_argument(row, param, p, arg, scope)
    dims = scope.union(*(a.dims for _, a in args))
    return Dist(row.name, param.key, args, dims)


def _choose_parameterization(row: DistRow, n_pos: int, keywords: Mapping, scope: Scope):
    kws = set(keywords)
    known = {p for par in row.parameterizations for p in par.params}
    unknown = sorted(kws - known)
    if unknown:
        raise scope.error(
            f"{row.name} has no argument {unknown[0]!r:.60}; it takes {row.signature()}"
        )
    for par in row.parameterizations:
        if n_pos <= len(par.params) and kws == set(par.params[n_pos:]):
            return par
    pars = row.parameterizations
    for a in pars:
        for b in pars:
            own_a, own_b = set(a.params) - set(b.params), set(b.params) - set(a.params)
            if a is not b and kws & own_a and kws & own_b:
                raise scope.error(
                    f"{row.name} got arguments of two parameterizations at once "
                    f"({', '.join(sorted(kws & (own_a | own_b)))}); give one of {row.signature()}"
                )
    if n_pos > max(len(p.params) for p in pars):
        raise scope.error(
            f"{row.name} got {n_pos} positional arguments; it takes {row.signature()}"
        )
    fitting = [p for p in pars if kws <= set(p.params)] or list(pars)
    par = fitting[0]
    twice = sorted(kws & set(par.params[:n_pos]))
    if twice:
        raise scope.error(
            f"{row.name} got argument {twice[0]!r} by position and by name; "
            f"it takes {row.signature()}"
        )
    missing = [p for p in par.params[n_pos:] if p not in kws]
    raise scope.error(
        f"{row.name} is missing argument {missing[0]!r}; it takes {row.signature()}"
    )


def _check_argument(row: DistRow, par, name: str, arg: Expr, scope: Scope) -> None:
    if name in par.integer:
        is_int = (isinstance(arg, Const) and isinstance(arg.value, int)) or (
            isinstance(arg, Var) and arg.integer
        )
        if not is_int:
            raise scope.error(
                f"argument {name!r} of {row.name} must be integer data or an integer literal; "
                "declare the data with type = \"int\""
            )
    value = _fold(arg, scope)
    if value is None:
        return
    if name in par.positive and not value > 0:
        raise scope.error(f"argument {name!r} of {row.name} must be > 0, found {value:g}")
    if name in par.unit and not 0 <= value <= 1:
        raise scope.error(f"argument {name!r} of {row.name} must be in [0, 1], found {value:g}")


def _fold(expr: Expr, scope: Scope) -> float | None:
    """Value of a constant expression in float64, or None if it is not constant."""
    ops: dict[str, Callable[..., float]] = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
        "pow": lambda a, b: a**b,
        "exp": math.exp,
        "log": math.log,
        "sqrt": math.sqrt,
        "inv_logit": lambda a: 1 / (1 + math.exp(-a)),
        "logit": lambda a: math.log(a / (1 - a)),
        "abs": abs,
    }
    ops["pow2"] = ops["pow"]
    try:
        if isinstance(expr, Const):
            return float(expr.value)
        if isinstance(expr, Unary):
            v = _fold(expr.operand, scope)
            return None if v is None else -v
        if isinstance(expr, Binary):
            a, b = _fold(expr.left, scope), _fold(expr.right, scope)
            if a is None or b is None:
                return None
            result = ops[expr.op](a, b)
        elif isinstance(expr, Call):
            vals = [_fold(a, scope) for a in expr.args]
            if any(v is None for v in vals):
                return None
            result = ops["pow2" if expr.func == "pow" else expr.func](*vals)
        else:
            return None
    except (OverflowError, ZeroDivisionError, ValueError):
        result = math.nan
    if isinstance(result, complex) or not math.isfinite(result):
        raise scope.error(
            "a constant sub-expression has no finite value (it overflows, divides by zero or "
            "leaves the function's domain); write the number itself"
        )
    return float(result)


class _Builder:
    """Turns a whitelisted Python AST into IR nodes; anything else raises."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def expr(self, node: ast.AST) -> Expr:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.scope.error(
                f"{_describe(node)} is not allowed in a model expression; use numbers, names, "
                f"+ - * / **, and the functions {', '.join(FUNCTIONS)}"
            )
        return method(node)

    def _Constant(self, node: ast.Constant) -> Const:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.scope.error(
                f"the literal {value!r:.40} is not a number; only int and float literals are "
                "allowed"
            )
        if isinstance(value, int) and abs(value) > 2**53:
            raise self.scope.error(
                f"the integer literal {value!r:.12}... ({len(repr(value))} digits) is too large "
                "(limit 2**53); write it as a float, e.g. 1e20"
            )
        if not math.isfinite(value):
            raise self.scope.error(f"the literal {value!r} is not finite")
        return Const(value)

    def _Name(self, node: ast.Name) -> Var:
        name = node.id
        scope = self.scope
        if name in scope.symbols:
            sym = scope.symbols[name]
            return Var(name, sym.role, sym.dims, sym.integer)
        if name in scope.dim_index:
            raise scope.error(
                f"{name!r} is a dim, not a value; use it inside brackets (x[{name}])"
            )
        if name in FUNCTIONS or name in DISTRIBUTIONS:
            raise scope.error(f"{name!r} is a function; call it, e.g. {name}(x)")
        close = difflib.get_close_matches(name, list(scope.symbols), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise scope.error(
            f"unknown name {name!r:.60}{hint} Declare it under [data], [parameters] or [derived]"
        )

    def _UnaryOp(self, node: ast.UnaryOp) -> Expr:
        operand = self.expr(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.USub):
            if isinstance(operand, Const):
                return Const(-operand.value)
            return Unary("neg", operand, operand.dims)
        raise self.scope.error(f"the operator {_describe(node.op)} is not allowed")

    def _BinOp(self, node: ast.BinOp) -> Binary:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.scope.error(
                f"the operator {_describe(node.op)} is not allowed; use + - * / **"
            )
        left, right = self.expr(node.left), self.expr(node.right)
        return Binary(op, left, right, self.scope.union(left.dims, right.dims))

    def _Call(self, node: ast.Call) -> Call:
        if not isinstance(node.func, ast.Name):
            raise self.scope.error(
                f"{_describe(node.func)} cannot be called; only {', '.join(FUNCTIONS)} can"
            )
        func = node.func.id
        if func in DISTRIBUTIONS:
            raise self.scope.error(
                f"the distribution {func}(...) cannot appear inside an expression; "
                "declare it as a parameter and use its name"
            )
        if func not in FUNCTIONS:
            close = difflib.get_close_matches(func, FUNCTIONS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.scope.error(
                f"unknown function {func!r:.60}; {hint}known: {', '.join(FUNCTIONS)}"
            )
        if node.keywords:
            raise self.scope.error(f"{func}() takes no keyword arguments")
        if len(node.args) != FUNCTIONS[func]:
            raise self.scope.error(
                f"{func}() takes {FUNCTIONS[func]} argument(s), found {len(node.args)}"
            )
        args = tuple(self.expr(a) for a in node.args)
        return Call(func, args, self.scope.union(*(a.dims for a in args)))

    def _Subscript(self, node: ast.Subscript) -> Expr:
        scope = self.scope
        if not isinstance(node.value, ast.Name):
            raise scope.error(f"only a name can be subscripted, found {_describe(node.value)}")
        base = self._Name(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        names = [self._subscript_name(item) for item in items]
        if all(isinstance(i, ast.Name) and i.id in scope.dim_index for i in items):
            if tuple(names) != base.dims:
                raise scope.error(
                    f"{base.name} is declared with dims [{', '.join(base.dims)}], "
                    f"written here as {base.name}[{', '.join(names)}]; the dims must agree"
                )
            return base
        if len(items) != 1:
            raise scope.error(
                f"{base.name}[...] takes one index variable, found {len(items)}"
            )
        index = self._index_var(items[0])
        sym = scope.symbols[index.name]
        if not base.dims:
            raise scope.error(f"{base.name} is a scalar and cannot be indexed by {index.name}")
        if sym.indexes != base.dims[0]:
            raise scope.error(
                f"{index.name} indexes dim {sym.indexes!r} but {base.name}'s first dim is "
                f"{base.dims[0]!r}; declare {index.name} with indexes = \"{base.dims[0]}\""
            )
        dims = index.dims + base.dims[1:]
        if len(set(dims)) != len(dims):
            raise scope.error(f"indexing {base.name} by {index.name} repeats a dim: {dims}")
        return Index(base, index, dims)

    def _subscript_name(self, item: ast.AST) -> str:
        if isinstance(item, ast.Name):
            return item.id
        if isinstance(item, ast.Subscript) and isinstance(item.value, ast.Name):
            return item.value.id
        raise self.scope.error(
            f"{_describe(item)} is not allowed in brackets; write dims (y[rat, week]) or "
            "an index variable (a[group] or a[group[obs]])"
        )

    def _index_var(self, item: ast.AST) -> Var:
        scope = self.scope
        var = self.expr(item)
        if not isinstance(var, Var):
            raise scope.error("an index must be a data variable declared with type = \"index\"")
        sym = scope.symbols[var.name]
        if sym.role is not Role.DATA or sym.indexes is None:
            raise scope.error(
                f"{var.name} is used as an index but is not index data; declare it under [data] "
                f"with type = \"index\" and indexes = \"<dim>\""
            )
        return var


def _describe(node: ast.AST) -> str:
    kinds = {
        "Attribute": "attribute access",
        "Lambda": "a lambda",
        "ListComp": "a list comprehension",
        "GeneratorExp": "a generator expression",
        "SetComp": "a set comprehension",
        "DictComp": "a dict comprehension",
        "NamedExpr": "the := operator",
        "Compare": "a comparison",
        "BoolOp": "a boolean operator",
        "IfExp": "a conditional expression",
        "Await": "await",
        "Yield": "yield",
        "JoinedStr": "an f-string",
        "Starred": "a starred expression",
    }
    name = type(node).__name__
    return kinds.get(name, f"{name!r}")


def binop_text(op: str) -> str:
    """The operator symbol of IR binary op ``op`` (for messages)."""
    return _BINOP_TEXT[op]
