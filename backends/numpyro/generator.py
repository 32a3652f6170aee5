"""The NumPyro generator: IR -> a runnable NumPyro module (see
:mod:`crossppl.backends.numpyro`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from crossppl.models.ir import (
    Binary,
    Call,
    Const,
    DerivedDecl,
    Dist,
    Expr,
    GeneratedDecl,
    Index,
    Model,
    ObservedDecl,
    ParamDecl,
    Unary,
    Var,
)

from crossppl.config import FitConfig
from crossppl.errors import NotYetTranslated

from ..base import Generator
from ..layout import align

__all__ = [
    "DIST_RULES",
    "GENERATED_FLAG",
    "GENERATED_STREAM",
    "Arg",
    "DistRule",
    "NumPyroGenerator",
]


#: Longest line the generator writes before it breaks a call over several lines.
LINE_LENGTH = 99

#: The keyword of a generated ``model`` that also draws the spec's generated quantities.
GENERATED_FLAG = "generated_quantities"

#: A fit's generated quantities are drawn with the key ``fold_in(PRNGKey(seed), GENERATED_STREAM)``:
#: a stream apart from the chains' (``MCMC.run`` splits ``PRNGKey(seed)``).
GENERATED_STREAM = 1

# -- the distribution table ---------------------------------------------------------------------


def _precision_to_scale(tau: Expr) -> Expr:
    """``1 / sqrt(tau)``: the standard deviation of precision ``tau``."""
    return Binary("div", Const(1), Call("sqrt", (tau,), tau.dims), tau.dims)


def _reciprocal(value: Expr) -> Expr:
    """``1 / value``: a rate from a scale."""
    return Binary("div", Const(1), value, value.dims)


def _exp(value: Expr) -> Expr:
    """``exp(value)``: a rate from a log rate."""
    return Call("exp", (value,), value.dims)


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of a NumPyro distribution.

    ``source`` is the name of the spec argument it is computed from, ``transform`` (if any)
    rewrites that argument's IR (e.g. precision -> scale) and ``keyword`` writes the argument
    by name (``probs=p``) instead of by position.
    """

    source: str
    transform: Callable[[Expr], Expr] | None = None
    keyword: str | None = None


@dataclass(frozen=True, slots=True)
class DistRule:
    """How to write one ``(row, parameterization)``: ``dist.<ctor>(<args>)``."""

    ctor: str
    args: tuple[Arg, ...]


def _rule(ctor: str, *args: str | Arg) -> DistRule:
    return DistRule(ctor, tuple(a if isinstance(a, Arg) else Arg(a) for a in args))


#: ``(row name, parameterization key)`` -> how NumPyro writes it. Every pair of
#: :data:`crossppl.models.distributions.DISTRIBUTIONS` has a rule (a test checks it).
DIST_RULES: dict[tuple[str, str], DistRule] = {
    ("normal", "sigma"): _rule("Normal", "mu", "sigma"),
    ("normal", "tau"): _rule("Normal", "mu", Arg("tau", _precision_to_scale)),
    ("half_normal", "sigma"): _rule("HalfNormal", "sigma"),
    ("half_normal", "tau"): _rule("HalfNormal", Arg("tau", _precision_to_scale)),
    ("student_t", "sigma"): _rule("StudentT", "nu", "mu", "sigma"),
    ("student_t", "tau"): _rule("StudentT", "nu", "mu", Arg("tau", _precision_to_scale)),
    ("cauchy", "sigma"): _rule("Cauchy", "mu", "sigma"),
    ("half_cauchy", "sigma"): _rule("HalfCauchy", "sigma"),
    ("lognormal", "sigma"): _rule("LogNormal", "mu", "sigma"),
    ("lognormal", "tau"): _rule("LogNormal", "mu", Arg("tau", _precision_to_scale)),
    ("exponential", "rate"): _rule("Exponential", "rate"),
    ("exponential", "scale"): _rule("Exponential", Arg("scale", _reciprocal)),
    ("gamma", "rate"): _rule("Gamma", "shape", "rate"),
    ("gamma", "scale"): _rule("Gamma", "shape", Arg("scale", _reciprocal)),
    # NumPyro's InverseGamma "rate" is the scale beta of Stan's inv_gamma(alpha, beta): the
    # density is beta^alpha / Gamma(alpha) x^(-alpha - 1) exp(-beta / x) in both.
    ("inverse_gamma", "scale"): _rule("InverseGamma", "shape", "scale"),
    ("beta", "default"): _rule("Beta", "alpha", "beta"),
    ("uniform", "default"): _rule("Uniform", "lower", "upper"),
    ("bernoulli", "p"): _rule("Bernoulli", Arg("p", keyword="probs")),
    ("bernoulli", "logit_p"): _rule("Bernoulli", Arg("logit_p", keyword="logits")),
    ("binomial", "p"): _rule("Binomial", "n", Arg("p", keyword="probs")),
    ("binomial", "logit_p"): _rule("Binomial", "n", Arg("logit_p", keyword="logits")),
    ("poisson", "rate"): _rule("Poisson", "rate"),
    ("poisson", "log_rate"): _rule("Poisson", Arg("log_rate", _exp)),
}

#: Spec functions -> the JAX function that computes them.
FUNCTION_RULES: dict[str, str] = {
    "exp": "jnp.exp",
    "log": "jnp.log",
    "sqrt": "jnp.sqrt",
    "inv_logit": "jax.nn.sigmoid",
    "logit": "jax.scipy.special.logit",
    "pow": "jnp.power",
    "abs": "jnp.abs",
}

_BINARY_TEXT = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}

# Operator precedence, loosest first, as Python parses it.
_ADD, _MUL, _NEG, _POW, _ATOM = 1, 2, 3, 4, 5
_BINARY_PREC = {"add": _ADD, "sub": _ADD, "mul": _MUL, "div": _MUL, "pow": _POW}


def _precedence(node: Expr) -> int:
    if isinstance(node, Binary):
        return _BINARY_PREC[node.op]
    if isinstance(node, Unary) or (isinstance(node, Const) and node.value < 0):
        return _NEG
    return _ATOM


@dataclass(frozen=True, slots=True)
class _CallCode:
    """A call ``func(args)`` kept as a tree so that long ones can be broken over lines."""

    func: str
    args: tuple[str | _CallCode, ...]

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


def _literal_for_docstring(text: str) -> str:
    """``text`` escaped to sit inside a triple-quoted docstring, whatever it holds."""
    out = []
    for ch in text:
        if ch in "\\\"":
            out.append("\\" + ch)
        elif ch == "\n" or ch == "\t" or (ord(ch) >= 32 and ch not in "\x7f\u2028\u2029"):
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
    return "".join(out)


def _py_string(text: str | None) -> str:
    """A double-quoted Python literal of ``text`` (JSON escapes are valid Python ones); all
    ASCII where ``text`` is not UTF-8 text (a path with undecodable bytes, as surrogates)."""
    if text is None:
        return "None"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(text)
    return json.dumps(text, ensure_ascii=False)


def spec_reference(model: Model) -> str | None:
    """How the generated script finds the spec again: a bundled name, else the spec's path.

    None for a spec parsed from text (the script then needs the spec on its command line).
    """
    from crossppl.models import bundled_specs

    path = Path(model.path) if model.path else None
    if path is None or not path.is_file():
        return None
    bundled = bundled_specs().get(model.name)
    if bundled is not None and path.resolve() == bundled.resolve():
        return model.name
    return str(path)


class NumPyroGenerator(Generator):
    """Writes a model as a NumPyro module (see the module docstring for its shape)."""

    backend: ClassVar[str] = "numpyro"
    DIST_RULES: ClassVar[Mapping[tuple[str, str], DistRule]] = DIST_RULES

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        self.uses: set[str] = set()

    # -- expressions -------------------------------------------------------------------------
    def expr_Const(self, node: Const, target: tuple[str, ...]) -> str:
        return repr(node.value) if isinstance(node.value, float) else str(int(node.value))

    def expr_Var(self, node: Var, target: tuple[str, ...]) -> str:
        return align(node.name, node.dims, target)

    def expr_Index(self, node: Index, target: tuple[str, ...]) -> str:
        # The index data is 0-based already; the result is laid out as index dims + base's rest.
        gathered = f"{node.base.name}[{node.index.name}]"
        return align(gathered, node.index.dims + node.base.dims[1:], target)

    def expr_Unary(self, node: Unary, target: tuple[str, ...]) -> str:
        if node.op != "neg":
            raise NotYetTranslated(self.backend, f"the unary operator {node.op!r}")
        return f"-{self.operand(node.operand, target, _NEG)}"

    def expr_Binary(self, node: Binary, target: tuple[str, ...]) -> str:
        text = _BINARY_TEXT.get(node.op)
        if text is None:
            raise NotYetTranslated(self.backend, f"the binary operator {node.op!r}")
        prec = _BINARY_PREC[node.op]
        if node.op == "pow":  # right-associative; the exponent may be a unary minus
            left = self.operand(node.left, target, _ATOM)
            right = self.operand(node.right, target, _NEG)
        else:  # left-associative: keep the IR's grouping exactly, a + (b + c) included
            left = self.operand(node.left, target, prec)
            right = self.operand(node.right, target, prec + 1)
        return f"{left} {text} {right}"

    def expr_Call(self, node: Call, target: tuple[str, ...]) -> str:
        func = FUNCTION_RULES.get(node.func)
        if func is None:
            raise NotYetTranslated(self.backend, f"the function {node.func}()")
        self.uses.add(func.split(".")[0] if not func.startswith("jax.scipy") else "jax.scipy")
        args = ", ".join(self.expr(a, target) for a in node.args)
        return f"{func}({args})"

    def operand(self, node: Expr, target: tuple[str, ...], least: int) -> str:
        """``node`` as an operand that binds at least as tightly as ``least``."""
        code = self.expr(node, target)
        if _precedence(node) >= least and not (isinstance(node, Const) and node.value < 0):
            return code
        return f"({code})"

    # -- distributions -----------------------------------------------------------------------
    def dist_call(self, d: Dist, target: tuple[str, ...]) -> _CallCode:
        """``dist.<Name>(...)`` for ``d`` with every argument aligned to ``target``."""
        rule = self.dist_rule(d)
        given = dict(d.args)
        args: list[str] = []
        for arg in rule.args:
            node = given[arg.source]
            if arg.transform is not None:
                node = arg.transform(node)
            code = self.expr(node, target)
            args.append(f"{arg.keyword}={code}" if arg.keyword else code)
        return _CallCode(f"dist.{rule.ctor}", tuple(args))

    # -- statements --------------------------------------------------------------------------
    def plates(self, dims: tuple[str, ...]) -> str:
        """``with numpyro.plate(...), ...:`` for ``dims`` (rightmost dim last), or ''."""
        if not dims:
            return ""
        parts = []
        for i, d in enumerate(dims):
            where = "" if len(dims) == 1 else f", dim={i - len(dims)}"
            parts.append(f'numpyro.plate("{d}", N_{d}{where})')
        return f"with {', '.join(parts)}:"

    def statement_lines(self, stmt, indent: int) -> list[str]:
        if isinstance(stmt, ParamDecl):
            call = _CallCode("numpyro.sample", (f'"{stmt.name}"', self.dist_call(stmt.dist,
                                                                                  stmt.dims)))
            return call.lines(indent, prefix=f"{stmt.name} = ")
        if isinstance(stmt, DerivedDecl):
            value = self.expr(stmt.expr, stmt.dims)
            if stmt.expr.dims != stmt.dims:
                # The expression varies along fewer dims than declared: give it the full shape.
                self.uses.add("jnp")
                shape = ", ".join(f"N_{d}" for d in stmt.dims)
                value = f"jnp.broadcast_to({value}, ({shape}{',' if len(stmt.dims) == 1 else ''}))"
            call = _CallCode("numpyro.deterministic", (f'"{stmt.name}"', value))
            return call.lines(indent, prefix=f"{stmt.name} = ")
        if isinstance(stmt, ObservedDecl):
            call = _CallCode(
                "numpyro.sample",
                (f'"{stmt.name}"', self.dist_call(stmt.dist, stmt.dims), f"obs={stmt.name}"),
            )
            return call.lines(indent)
        if isinstance(stmt, GeneratedDecl):
            call = _CallCode("numpyro.sample", (f'"{stmt.name}"', self.dist_call(stmt.dist,
                                                                                  stmt.dims)))
            # named only when a later generated quantity uses it
            used = stmt.name in self.model.used_names()
            return call.lines(indent, prefix=f"{stmt.name} = " if used else "")
        raise NotYetTranslated(self.backend, f"the statement {type(stmt).__name__}")

    def signature(self) -> str:
        """``N_<dim>, ..., data, ..., observed=None`` (and ``generated_quantities=False`` for
        a model with generated quantities)."""
        m = self.model
        used = m.used_names()
        first = [f"N_{d.name}" for d in m.dims]
        last = []
        for d in m.data:
            if d.name in m.observed_names and d.name not in used:
                last.append(f"{d.name}=None")
            else:
                first.append(d.name)
        if m.generated:
            last.append(f"{GENERATED_FLAG}=False")
        return ", ".join(first + last)

    def grouped_lines(self, stmts, indent: int) -> list[str]:
        """The lines of ``stmts`` at ``indent`` spaces, consecutive ones with the same dims
        under one set of plates."""
        lines: list[str] = []
        i = 0
        while i < len(stmts):
            dims = stmts[i].dims
            group = [stmts[i]]
            while (
                dims
                and i + len(group) < len(stmts)
                and stmts[i + len(group)].dims == dims
            ):
                group.append(stmts[i + len(group)])
            if dims:
                lines.append(f"{' ' * indent}{self.plates(dims)}")
            for stmt in group:
                lines.extend(self.statement_lines(stmt, indent + 4 if dims else indent))
            i += len(group)
        return lines

    def body(self) -> list[str]:
        """The lines of ``model``'s body: statements grouped by their plates, then the generated
        quantities, drawn only when ``generated_quantities`` is true."""
        m = self.model
        lines = self.grouped_lines([*m.statements, *m.observed], 4)
        if m.generated:
            lines += [
                f"    if {GENERATED_FLAG}:",
                "        # Generated quantities, drawn by Predictive given each posterior draw;",
                "        # NUTS runs the model without them: not part of the log density.",
                *self.grouped_lines(list(m.generated), 8),
            ]
        return lines

    def header(self) -> str:
        m = self.model
        title = f"{m.name}: {m.description}" if m.description else m.name
        parts = [title.rstrip(".") + "."]
        if m.source:
            parts.append(f"Source: {m.source}")
        parts.append(
            "NumPyro program generated by crossppl from the model spec; do not edit.\n"
            "Run it to fit the model: python <this file> [SPEC] [--chains N] [--warmup N] "
            "[--draws N] [--seed N]"
        )
        return '"""' + _literal_for_docstring("\n\n".join(parts)) + '\n"""'

    def main_generated(self) -> list[str]:
        """The lines of ``main`` that draw the generated quantities and summarize them."""
        return [
            "",
            "    # The generated quantities: one draw per posterior draw, given that draw, with a",
            "    # key apart from the chains' (crossppl derives it from the seed the same way).",
            "    samples = mcmc.get_samples(group_by_chain=True)",
            "    predictive = Predictive(model, samples, return_sites=GENERATED, batch_ndims=2,",
            "                            parallel=True)",
            f"    key = jax.random.fold_in(jax.random.PRNGKey(args.seed), {GENERATED_STREAM})",
            f"    generated = predictive(key, **data, {GENERATED_FLAG}=True)",
            "    numpyro.diagnostics.print_summary(generated)",
        ]

    def module(self) -> str:
        """The whole module's source."""
        body = self.body()
        body_text = "\n".join(body)
        if "jnp." in body_text:
            self.uses.add("jnp")
        imports = ["import argparse", "import sys", ""]
        if "jax.scipy" in self.uses:
            imports.append("import jax.scipy.special")
        else:
            imports.append("import jax")
        if "jnp" in self.uses:
            imports.append("import jax.numpy as jnp")
        generated = [g.name for g in self.model.generated]
        infer = "MCMC, NUTS, Predictive, init_to_uniform" if generated else (
            "MCMC, NUTS, init_to_uniform")
        imports += [
            "import numpyro",
            "import numpyro.distributions as dist",
            f"from numpyro.infer import {infer}",
        ]
        spec = spec_reference(self.model)
        defaults = FitConfig()
        constants = [f"SPEC = {_py_string(spec)}"]
        if generated:
            names = ", ".join(f'"{n}"' for n in generated)
            one = f"GENERATED = [{names}]"
            constants += [
                "# The spec's generated quantities: drawn given each posterior draw.",
                one if len(one) <= LINE_LENGTH
                else "\n".join(["GENERATED = [", *(f'    "{n}",' for n in generated), "]"]),
            ]
        return "\n".join(
            [
                self.header(),
                "",
                *imports,
                "",
                *constants,
                "",
                "",
                f"def model({self.signature()}):",
                *body,
                "",
                "",
                "def main(argv=None):",
                '    """Fit the model to its spec\'s data with NUTS and print a summary."""',
                "    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])",
                '    parser.add_argument("spec", nargs="?", default=SPEC,',
                '                        help="bundled model name or path to its TOML spec")',
                f'    parser.add_argument("--chains", type=int, default={defaults.chains})',
                f'    parser.add_argument("--warmup", type=int, default={defaults.warmup})',
                f'    parser.add_argument("--draws", type=int, default={defaults.draws})',
                f'    parser.add_argument("--seed", type=int, default={defaults.seed})',
                "    args = parser.parse_args(argv)",
                "    if args.spec is None:",
                '        parser.error("give the spec: a bundled model name or a TOML file")',
                "    # Before JAX starts: a CPU device per chain, and double precision as crossppl",
                "    # runs it (Stan and PyMC compute in float64 too).",
                "    numpyro.set_host_device_count(args.chains)",
                "    numpyro.enable_x64()",
                "",
                "    from crossppl.backends.base import model_data",
                "    from crossppl.models import load_spec",
                "",
                "    data = model_data(load_spec(args.spec))",
                "    kernel = NUTS(model, init_strategy=init_to_uniform(radius=2))",
                "    mcmc = MCMC(kernel, num_warmup=args.warmup, num_samples=args.draws,",
                '                num_chains=args.chains, chain_method="parallel",',
                "                progress_bar=sys.stderr.isatty())",
                "    mcmc.run(jax.random.PRNGKey(args.seed), **data)",
                "    mcmc.print_summary()",
                *(self.main_generated() if generated else []),
                "",
                "",
                'if __name__ == "__main__":',
                "    main()",
                "",
            ]
        )


