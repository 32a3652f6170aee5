"""Per-variable log-density terms of a Stan program, by a "terms program".

Stan's engines return only the total ``log_prob`` of a program (``target`` is one accumulator),
so the terms of each variable are computed by a second program derived from the first: the
model block copied into ``generated quantities`` (inside a block of its own, so its local
variables stay local), where

* ``lhs ~ dist(args);`` becomes ``<terms>[k] += dist_lpdf(lhs | args);`` (``_lpmf`` for a
  discrete distribution: Stan's own and the program's functions ending in ``_lpmf``), with ``k``
  the slot of the variable at the root of ``lhs`` (``y`` for ``y``, ``y[n]``, ``y[n, t]``,
  ``to_vector(y)``, ``col(y, 2)'``, ...);
* ``target += e;`` counts for the variable ``x`` when ``e`` is one call
  ``dist_lpdf(x... | ...)`` (or ``_lupdf``, ``_lpmf``, ``_lupmf``), else for the catch-all name
  :data:`CATCH_ALL` (``"target"``, a name no spec variable can have); containers are summed;
* ``_lupdf`` / ``_lupmf`` calls become ``_lpdf`` / ``_lpmf`` (generated quantities allow only
  the normalized forms); ``print`` statements are left out; every other statement is copied as
  it is.

A sampling statement whose left-hand side is not a global variable (data, a parameter or a
transformed parameter), possibly indexed or reshaped, counts for the catch-all name too: it
is never attributed to a variable it might not be the density of.

The terms are those of the constrained values without Jacobian, fully normalized: they differ
from the program's ``~`` statements (which drop constants) by constants only, as the terms of
PyMC and NumPyro do. The caller checks that the terms add up to the program's own log density
up to a constant at every point (:meth:`StanBackend.log_density_terms
<crossppl.backends.stan.StanBackend.log_density_terms>`), so a rewrite that changed the density
is an error, never a wrong blame.

The program is first put in stanc's canonical form (``--auto-format`` with braces everywhere,
comments stripped, one statement a line), so the rewrite reads a regular text. What a
generated-quantities block cannot compute raises :class:`~crossppl.errors.NotYetTranslated`:
truncated sampling statements (``T[...]``), ``target()``, and calls of ``_lp`` functions.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from crossppl.errors import EngineError, NotYetTranslated

from . import engines as stan_engines

__all__ = ["CATCH_ALL", "DISCRETE", "TermsProgram", "canonical", "terms_program"]

#: Name of the terms of ``target +=`` statements that are not one variable's density.
CATCH_ALL = "target"

#: Stan's discrete distributions (their densities are ``_lpmf``).
DISCRETE = frozenset({
    "bernoulli", "bernoulli_logit", "bernoulli_logit_glm", "binomial", "binomial_logit",
    "binomial_logit_glm", "beta_binomial", "hypergeometric", "categorical", "categorical_logit",
    "categorical_logit_glm", "discrete_range", "ordered_logistic", "ordered_logistic_glm",
    "ordered_probit", "neg_binomial", "neg_binomial_2", "neg_binomial_2_log",
    "neg_binomial_2_log_glm", "poisson", "poisson_log", "poisson_log_glm", "multinomial",
    "multinomial_logit", "dirichlet_multinomial", "beta_neg_binomial", "poisson_binomial",
    "skellam",
})

#: Functions through which a sampling statement's left-hand side still belongs to the variable
#: of its first argument (they select or reshape its elements).
_RESHAPE = frozenset({
    "to_vector", "to_row_vector", "to_matrix", "to_array_1d", "to_array_2d", "col", "row",
    "block", "sub_col", "sub_row", "head", "tail", "segment", "diagonal",
})

#: The top-level blocks of a Stan program, in order.
_BLOCKS = ("functions", "data", "transformed data", "parameters", "transformed parameters",
           "model", "generated quantities")

_TOKEN = re.compile(r"""
    (?P<string>"[^"\n]*")
  | (?P<ident>[A-Za-z][A-Za-z0-9_]*)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?i?)
  | (?P<op>\+=|-=|\*=|/=|\.\*=|\./=|<-|==|!=|<=|>=|&&|\|\||\.\*|\./|\.\^|%/%
          |[-+*/%^'\\|!<>=?:~,;()\[\]{}.])
  | (?P<space>\s+)
""", re.X)


@dataclass(frozen=True)
class TermsProgram:
    """A terms program: ``text``, whose ``generated quantities`` are one vector ``output`` of
    ``len(names)`` terms, ``names[k]`` the program variable (or :data:`CATCH_ALL`) of term
    ``k``."""
    text: str
    output: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None:
            raise NotYetTranslated("stan", f"per-variable terms of a model block holding "
                                   f"{text[pos:pos + 20]!r} (unexpected character)")
        kind = found.lastgroup or "op"
        if kind != "space":
            out.append(_Token(kind, found.group(), found.start(), found.end()))
        pos = found.end()
    return out


def _stanc() -> Path:
    return stan_engines._stanc_binary()


def canonical(program: str, timeout: float = 60) -> str:
    """``program`` in stanc's canonical form: deprecated syntax updated, braces around every
    body, comments stripped, redundant parentheses removed, one statement a line."""
    with tempfile.TemporaryDirectory(prefix="crossppl_terms_") as tmp:
        path = Path(tmp) / "program.stan"
        path.write_text(program, encoding="utf-8")
        done = subprocess.run(
            [str(_stanc()), "--auto-format",
             "--canonicalize=deprecations,braces,strip-comments,parentheses",
             "--max-line-length=1000000", str(path)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    if done.returncode != 0:
        raise EngineError("stan", "stanc", f"stanc rejected the Stan program:\n"
                          f"{stan_engines._strip_paths(done.stderr or done.stdout)}")
    return done.stdout


def _blocks(text: str) -> dict[str, str]:
    """The bodies of the top-level blocks of a canonical program (block name -> text)."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        name = line[:-1].strip() if line.endswith("{") and not line.startswith(" ") else None
        if name not in _BLOCKS:
            raise NotYetTranslated("stan", f"per-variable terms of a program whose canonical "
                                   f"form has {line!r} at the top level")
        j = i + 1
        while j < len(lines) and lines[j] != "}":
            j += 1
        out[name] = "\n".join(lines[i + 1:j])
        i = j + 1
    return out


def _match(tokens: list[_Token], i: int) -> int:
    """Index of the bracket closing the one at ``tokens[i]``."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = []
    for j in range(i, len(tokens)):
        t = tokens[j].text
        if t in pairs:
            stack.append(pairs[t])
        elif t in (")", "]", "}"):
            if not stack or stack.pop() != t:
                break
            if not stack:
                return j
    raise NotYetTranslated("stan", "per-variable terms of a model block with unbalanced "
                           "brackets")


def _root(tokens: list[_Token]) -> str | None:
    """The variable whose elements ``tokens`` (a sampling statement's left-hand side) are:
    ``x``, indexed (``x[...]``), transposed, or inside a :data:`_RESHAPE` call's first
    argument; None for anything else."""
    def form(i: int) -> tuple[str, int] | None:
        if i >= len(tokens) or tokens[i].kind != "ident":
            return None
        if i + 1 < len(tokens) and tokens[i + 1].text == "(":
            if tokens[i].text not in _RESHAPE:
                return None
            close = _match(tokens, i + 1)
            inner = form(i + 2)
            if inner is None:
                return None
            name, j = inner
            if j != close and tokens[j].text != ",":
                return None
            j = close + 1
        else:
            name, j = tokens[i].text, i + 1
        while j < len(tokens) and tokens[j].text in ("[", "'"):
            j = _match(tokens, j) + 1 if tokens[j].text == "[" else j + 1
        return name, j

    found = form(0)
    if found is None or found[1] != len(tokens):
        return None
    return found[0]


def _split_top(tokens: list[_Token], sep: str) -> list[list[_Token]]:
    """``tokens`` split at ``sep`` outside brackets."""
    parts: list[list[_Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.text in ("(", "[", "{"):
            depth += 1
        elif t.text in (")", "]", "}"):
            depth -= 1
        if t.text == sep and depth == 0:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _unique(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


class _Rewriter:
    """Rewrites a canonical model block's body into the body of the terms block."""
    _DENSITY = re.compile(r"^(\w+)_(lpdf|lupdf|lpmf|lupmf)$")

    def __init__(self, body: str, globals_: set[str], discrete: set[str], total: str,
                 output: str) -> None:
        self.body = body
        self.tokens = _tokens(body)
        self.globals = globals_
        self.discrete = discrete
        self.total = total
        self.output = output
        self.names: list[str] = []
        self.edits: list[tuple[int, int, str]] = []

    def slot(self, name: str) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name) + 1

    def text(self, tokens: list[_Token]) -> str:
        """The source of ``tokens``, with ``_lupdf``/``_lupmf`` calls made ``_lpdf``/``_lpmf``."""
        if not tokens:
            return ""
        start, end = tokens[0].start, tokens[-1].end
        out = self.body[start:end]
        for t in reversed(tokens):
            found = self._DENSITY.match(t.text) if t.kind == "ident" else None
            if found and found.group(2).startswith("lu"):
                new = f"{found.group(1)}_l{found.group(2)[2:]}"
                out = out[:t.start - start] + new + out[t.end - start:]
        return out

    def run(self) -> str:
        tokens = self.tokens
        i = 0
        while i < len(tokens):
            t = tokens[i]
            if t.text in ("{", "}", "else"):
                i += 1
            elif t.text in ("for", "while", "if", "profile") and i + 1 < len(tokens) \
                    and tokens[i + 1].text == "(":
                close = _match(tokens, i + 1)
                self.check(tokens[i + 2:close])
                i = close + 1
            else:
                j = i
                depth = 0
                while j < len(tokens) and not (tokens[j].text == ";" and depth == 0):
                    if tokens[j].text in ("(", "[", "{"):
                        depth += 1
                    elif tokens[j].text in (")", "]", "}"):
                        depth -= 1
                    j += 1
                if j == len(tokens):
                    raise NotYetTranslated("stan", "per-variable terms of a model block "
                                           "whose last statement has no ';'")
                self.statement(tokens[i:j], tokens[j])
                i = j + 1
        out = self.body
        for start, end, new in sorted(self.edits, reverse=True):
            out = out[:start] + new + out[end:]
        return out

    def check(self, tokens: list[_Token]) -> None:
        """Refuse what generated quantities cannot compute."""
        for k, t in enumerate(tokens):
            if t.kind != "ident":
                continue
            call = k + 1 < len(tokens) and tokens[k + 1].text == "("
            if t.text == "target" and call:
                raise NotYetTranslated("stan", "per-variable terms of a model block that "
                                       "reads target()")
            if t.text.endswith("_lp") and call:
                raise NotYetTranslated("stan", f"per-variable terms of a model block that "
                                       f"calls the _lp function {t.text}()")

    def statement(self, tokens: list[_Token], semicolon: _Token) -> None:
        start, end = tokens[0].start, semicolon.end
        tilde = [k for k, t in enumerate(tokens) if t.text == "~"]
        if tokens[0].text == "target" and len(tokens) > 1 and tokens[1].text == "+=":
            self.check(tokens[2:])
            expr = tokens[2:]
            name = self.density_of(expr) or CATCH_ALL
            new = f"{self.output}[{self.slot(name)}] += {self.total}({self.text(expr)});"
        elif tilde:
            self.check(tokens)
            k = tilde[0]
            lhs, rest = tokens[:k], tokens[k + 1:]
            if len(rest) < 3 or rest[0].kind != "ident" or rest[1].text != "(":
                raise NotYetTranslated("stan", f"per-variable terms of the sampling statement "
                                       f"{self.body[start:end]!r}")
            close = _match(rest, 1)
            if close != len(rest) - 1:
                raise NotYetTranslated(
                    "stan", f"per-variable terms of a truncated sampling statement "
                    f"({self.body[start:end]!r})",
                    "the density is compared as a whole",
                )
            dist = rest[0].text
            suffix = "lpmf" if dist in self.discrete else "lpdf"
            args = self.text(rest[2:close])
            variate = self.text(lhs)
            call = f"{dist}_{suffix}({variate} | {args})" if args else \
                f"{dist}_{suffix}({variate})"
            root = _root(lhs)
            name = root if root in self.globals else CATCH_ALL
            new = f"{self.output}[{self.slot(name)}] += {call};"
        elif tokens[0].text == "print" and len(tokens) > 1 and tokens[1].text == "(" \
                and _match(tokens, 1) == len(tokens) - 1:
            new = ""  # printed once per point otherwise; it adds nothing to the density
        else:
            self.check(tokens)
            new = self.text(tokens) + ";"
        self.edits.append((start, end, new))

    def density_of(self, expr: list[_Token]) -> str | None:
        """The variable whose density ``expr`` is, when it is one call ``dist_lpdf(x | ...)``."""
        if len(expr) < 3 or expr[0].kind != "ident" or expr[1].text != "(":
            return None
        if not self._DENSITY.match(expr[0].text) or _match(expr, 1) != len(expr) - 1:
            return None
        inside = expr[2:-1]
        variate = _split_top(inside, "|")[0] if any(t.text == "|" for t in inside) else inside
        root = _root(variate)
        return root if root in self.globals else None


#: Overloads of the function that sums what ``target +=`` adds (a real or a container).
_TOTAL_TYPES = ("real", "vector", "row_vector", "matrix", "array[] real", "array[,] real",
                "array[] vector", "array[] row_vector", "array[] matrix")


def _total_functions(name: str) -> str:
    lines = []
    for typ in _TOTAL_TYPES:
        if typ == "real":
            body = "return x;"
        elif typ.startswith("array[] ") and typ != "array[] real":
            body = "real s = 0;\n    for (i in 1 : size(x)) {\n      s += sum(x[i]);\n    }\n" \
                   "    return s;"
        elif typ == "array[,] real":
            body = "return sum(to_array_1d(x));"
        else:
            body = "return sum(x);"
        lines.append(f"  real {name}({typ} x) {{\n    {body}\n  }}")
    return "\n".join(lines)


def terms_program(program: str, globals_: Iterable[str]) -> TermsProgram | None:
    """The terms program of ``program`` (see the module docstring); ``globals_`` are its data,
    parameters and transformed parameters, the variables a term can belong to. None when its
    model block has no statement that adds to the density."""
    text = canonical(program)
    blocks = _blocks(text)
    body = blocks.get("model", "")
    taken = {t.text for t in _tokens(text) if t.kind == "ident"}
    output = _unique("crossppl_terms", taken)
    total = _unique("crossppl_total", taken)
    functions = blocks.get("functions", "")
    discrete = set(DISCRETE) | {
        t.text[: -len("_lpmf")] for t in _tokens(functions)
        if t.kind == "ident" and t.text.endswith("_lpmf")
    }
    rewriter = _Rewriter(body, set(globals_), discrete, total, output)
    new_body = rewriter.run()
    if not rewriter.names:
        return None
    parts = [f"functions {{\n{functions}\n{_total_functions(total)}\n}}"
             if functions.strip() else f"functions {{\n{_total_functions(total)}\n}}"]
    for block in _BLOCKS[1:5]:
        if block in blocks:
            parts.append(f"{block} {{\n{blocks[block]}\n}}")
    inner = "\n".join(f"  {line}" if line.strip() else "" for line in new_body.splitlines())
    parts.append(
        "generated quantities {\n"
        f"  vector[{len(rewriter.names)}] {output} = rep_vector(0, {len(rewriter.names)});\n"
        f"  {{\n{inner}\n  }}\n}}"
    )
    return TermsProgram("\n".join(parts) + "\n", output, tuple(rewriter.names))
