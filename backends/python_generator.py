"""What the generators of Python PPLs (PyMC, NumPyro) share, the way a sqlglot dialect shares
its base Generator: expressions with Python's precedence, literals, line wrapping, docstrings,
statement dispatch and the module skeleton. A subclass supplies its ``FUNCTIONS`` and
``DIST_RULES`` tables, one ``stmt_<IR statement class>`` method per statement kind, and the
parts of the module that differ (imports, the model function, ``main``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from crossppl.models.ir import Binary, Call, Const, Expr, Index, Model, Unary, Var
from crossppl.models.spec import bundled_specs

from crossppl.errors import NotYetTranslated

from .base import Generator
from .layout import align

__all__ = ["LINE_LENGTH", "CallCode", "PythonGenerator", "docstring", "py_string",
           "spec_reference"]

#: Longest line a generator writes before it breaks a call over several lines.
LINE_LENGTH = 99

# Python's operator precedence of what the expression methods write, loosest first.
ADD, MUL, NEG, POW, ATOM = 1, 2, 3, 4, 5
_BINARY = {"add": ("+", ADD), "sub": ("-", ADD), "mul": ("*", MUL), "div": ("/", MUL),
           "pow": ("**", POW)}


def precedence(node: Expr) -> int:
    """How tightly the code written for ``node`` binds."""
    if isinstance(node, Binary):
        return _BINARY[node.op][1] if node.op in _BINARY else ATOM
    if isinstance(node, Unary) or (isinstance(node, Const) and node.value < 0):
        return NEG
    return ATOM


def py_string(text: str | None) -> str:
    """A double-quoted Python literal of ``text`` (JSON escapes are valid Python ones); all
    ASCII where ``text`` is not UTF-8 text (a path with undecodable bytes, as surrogates)."""
    if text is None:
        return "None"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(text)
    return json.dumps(text, ensure_ascii=False)


def docstring(text: str) -> str:
    """``text`` as a triple-quoted docstring (closing quotes on a line of their own), escaped
    so that whatever it holds (quotes, backslashes, control characters) reads back as is."""
    out = []
    for ch in text:
        if ch in "\\\"":
            out.append("\\" + ch)
        elif ch == "\n" or ch == "\t" or (ord(ch) >= 32 and ch not in "\x7f\u2028\u2029"):
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
    return '"""' + "".join(out) + '\n"""'


@dataclass(frozen=True, slots=True)
class CallCode:
    """A call ``func(args)`` kept as a tree so that long ones can be broken over lines."""

    func: str
    args: tuple[str | CallCode, ...]

    def flat(self) -> str:
        parts = (a if isinstance(a, str) else a.flat() for a in self.args)
        return f"{self.func}({', '.join(parts)})"

    def lines(self, indent: int, prefix: str = "", suffix: str = "") -> list[str]:
        """Lines at ``indent`` spaces; broken one argument a line when too long."""
        pad = " " * indent
        one = f"{pad}{prefix}{self.flat()}{suffix}"
        if len(one) <= LINE_LENGTH:
            return [one]
        out = [f"{pad}{prefix}{self.func}("]
        for arg in self.args:
            if isinstance(arg, str):
                out.append(f"{pad}    {arg},")
            else:
                out.extend(arg.lines(indent + 4, suffix=","))
        out.append(f"{pad}){suffix}")
        return out


def name_list(name: str, items: Iterable[str]) -> list[str]:
    """``NAME = ["a", "b"]`` on one line if it fits, else one item a line."""
    quoted = [py_string(i) for i in items]
    one = f"{name} = [{', '.join(quoted)}]"
    if len(one) <= LINE_LENGTH:
        return [one]
    return [f"{name} = [", *(f"    {q}," for q in quoted), "]"]


def spec_reference(model: Model) -> str | None:
    """How a generated script finds its spec again: a bundled model's name, else the spec's
    path; None for a spec parsed from text (the script then needs it on its command line)."""
    path = Path(model.path) if model.path else None
    if path is None or not path.is_file():
        return None
    bundled = bundled_specs().get(model.name)
    if bundled is not None and path.resolve() == bundled.resolve():
        return model.name
    return str(path)


class PythonGenerator(Generator):
    """Base of the generators that write a Python module.

    Expressions: every leaf is laid out (:func:`~.layout.align`) against the dims of the
    statement it appears in, so NumPy-style broadcasting does by position what the IR does by
    name; parentheses keep the IR's grouping exactly (``a - (b - c)``, ``(-x) ** 2``).
    Functions come from the subclass's ``FUNCTIONS`` table; each one used is recorded in
    :attr:`uses` by its module prefix, for the imports. Statements go to
    ``stmt_<IR class>(stmt, indent)``; one without a method raises :class:`NotYetTranslated`.
    """

    #: Spec-language function -> the Python function the PPL computes it with.
    FUNCTIONS: ClassVar[Mapping[str, str]] = {}

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        #: Module prefixes of the functions written so far (``jnp``, ``pt``, ``jax.scipy``).
        self.uses: set[str] = set()

    # -- expressions ------------------------------------------------------------------------
    def expr_Const(self, node: Const, target: tuple[str, ...]) -> str:
        return repr(node.value) if isinstance(node.value, float) else str(int(node.value))

    def expr_Var(self, node: Var, target: tuple[str, ...]) -> str:
        return align(node.name, node.dims, target)

    def expr_Index(self, node: Index, target: tuple[str, ...]) -> str:
        # index data is 0-based already; the result's dims are the index's, then base's rest
        return align(f"{node.base.name}[{node.index.name}]", node.dims, target)

    def expr_Unary(self, node: Unary, target: tuple[str, ...]) -> str:
        if node.op != "neg":
            raise NotYetTranslated(self.backend, f"the unary operator {node.op!r}")
        return f"-{self.operand(node.operand, target, NEG + 1)}"

    def expr_Binary(self, node: Binary, target: tuple[str, ...]) -> str:
        if node.op not in _BINARY:
            raise NotYetTranslated(self.backend, f"the binary operator {node.op!r}")
        symbol, prec = _BINARY[node.op]
        if node.op == "pow":  # right-associative; the exponent may be a unary minus
            left = self.operand(node.left, target, ATOM)
            right = self.operand(node.right, target, NEG)
        else:  # left-associative: keep the IR's grouping exactly, a + (b + c) included
            left = self.operand(node.left, target, prec)
            right = self.operand(node.right, target, prec + 1)
        return f"{left} {symbol} {right}"

    def expr_Call(self, node: Call, target: tuple[str, ...]) -> str:
        func = self.FUNCTIONS.get(node.func)
        if func is None:
            raise NotYetTranslated(self.backend, f"the function {node.func}()")
        self.uses.add("jax.scipy" if func.startswith("jax.scipy.") else func.split(".")[0])
        return f"{func}({', '.join(self.expr(a, target) for a in node.args)})"

    def operand(self, node: Expr, target: tuple[str, ...], least: int) -> str:
        """``node`` as an operand that binds at least as tightly as ``least``; a negative
        number is always parenthesized (``2 * (-1.0)``)."""
        code = self.expr(node, target)
        if precedence(node) >= least and not (isinstance(node, Const) and node.value < 0):
            return code
        return f"({code})"

    # -- statements and the module ------------------------------------------------------------
    def statement(self, stmt: object, indent: int) -> list[str]:
        """The lines of one IR statement at ``indent`` spaces."""
        method = getattr(self, f"stmt_{type(stmt).__name__}", None)
        if method is None:
            raise NotYetTranslated(self.backend, f"the statement {type(stmt).__name__}")
        return method(stmt, indent)

    def used_later(self, name: str) -> bool:
        """Whether a statement's value is read by a later one (else it binds no local)."""
        return name in self.model.used_names()

    def constants(self) -> list[str]:
        """``SPEC`` (what the script loads by default) and, for a model with generated
        quantities, ``GENERATED`` (their names)."""
        lines = [f"SPEC = {py_string(spec_reference(self.model))}"]
        if self.model.generated:
            lines += ["# The spec's generated quantities: drawn given each posterior draw.",
                      *name_list("GENERATED", (g.name for g in self.model.generated))]
        return lines

    def module_doc(self) -> str:
        """The module's docstring text."""
        raise NotImplementedError

    def imports(self) -> list[str]:
        """The module's import lines (called after the model function is written)."""
        raise NotImplementedError

    def model_function(self) -> list[str]:
        """The lines of the function that defines the model."""
        raise NotImplementedError

    def main_function(self) -> list[str]:
        """The lines of ``main(argv=None)``, which fits the model when run as a script."""
        raise NotImplementedError

    def module(self) -> str:
        """The whole module's source."""
        self.uses = set()
        model_function = self.model_function()  # first: it records what must be imported
        return "\n".join([
            docstring(self.module_doc()),
            "",
            *self.imports(),
            "",
            *self.constants(),
            "",
            "",
            *model_function,
            "",
            "",
            *self.main_function(),
            "",
            "",
            'if __name__ == "__main__":',
            "    main()",
            "",
        ])
