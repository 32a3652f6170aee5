"""The NumPyro backend: IR -> a runnable NumPyro module, fitted with NumPyro's NUTS.

The generated module defines ``model(**data)``: one keyword argument per entry of
:func:`~crossppl.backends.base.model_data` (dim sizes ``N_<dim>`` and data arrays; observed data
default to ``None``, so the same function draws from the prior predictive). Every statement with
dims is written inside ``numpyro.plate``s named after its dims, its value laid out in the
statement's dim order; every leaf of an expression is aligned to those dims with
:func:`~crossppl.backends.layout.align` (``alpha[:, None] + beta[:, None] * x``). Constraints come
from each distribution's support (NumPyro transforms automatically). The module runs on its own as
a script (``python rats_numpyro.py [SPEC] [--chains 4] [--warmup 1000] [--draws 1000]``).

Generated quantities (the spec's ``[generated]``) are drawn at the end of ``model``, only when it
is called with ``generated_quantities=True``: NUTS runs ``model`` without them, so they are
neither sampled by NUTS nor part of the log density, and ``Predictive`` draws them once per
posterior draw, given that draw (the script does the same after its fit). A spec without
``[generated]`` gets a ``model`` without the keyword. Prior predictive draws run ``model``
forward with ``Predictive(model, num_samples=draws)``, the observed data left out.

Numerics: programs run with 64-bit floats (``jax_enable_x64``), as Stan and PyMC do. In float32
the joint log density of Rats is off by up to ~1e-3 at typical points (relative ~1e-7: rounding of
terms near 1e3 with y ~ 300 and priors of precision 1e-6), and a float32 fit of Rats adapted worse
(54 instead of 30 leapfrog steps a draw on average), so it was no faster than float64 on CPU.
x64 is switched on only around this backend's own calls (``jax.enable_x64`` is a context
manager), so other JAX code in the same process keeps its own setting.

FitConfig maps to NumPyro as: chains/warmup/draws -> num_chains/num_warmup/num_samples, seed ->
``jax.random.PRNGKey(seed)``, target_accept -> target_accept_prob, max_treedepth ->
max_tree_depth, init "uniform" -> ``init_to_uniform(radius=2)`` (Stan's default; "engine" leaves
NumPyro's default, which is the same), progress -> a line when sampling starts and one when it
ends (NumPyro 0.22's own bar fails inside JAX 0.12's scoped ``enable_x64``: its io_callback
returns an int32 where the traced int64 is expected). Chains run in parallel on one
JAX CPU device each when JAX can still be given the devices (see :func:`choose_chain_method`).

Hand-written programs (:class:`~.base.UserProgram`): the entry (default ``model``) IS the model
function; it is called with the spec's data by name (:mod:`~.userprog`; observed arguments get
the data) and run by the same code as a generated model; draws and per-site log-density terms
come back under the spec's names.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from crossppl.models.distributions import DISTRIBUTIONS
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

from crossppl.config import FitConfig, cache_dir
from crossppl.errors import EngineError, NotYetTranslated
from crossppl.progress import report

from .base import Backend, Draws, Generator, UserProgram, model_data
from .layout import align
from .pyexec import load_module
from .userprog import (
    call_entry,
    check_shapes,
    entry_arguments,
    entry_function,
    load_program,
    program_points,
    spec_posterior,
    spec_terms,
    spec_variables,
    user_failure,
)

__all__ = [
    "DIST_RULES",
    "EXTRA_FIELDS",
    "GENERATED_FLAG",
    "GENERATED_STREAM",
    "Arg",
    "DistRule",
    "NumPyroBackend",
    "NumPyroGenerator",
    "choose_chain_method",
    "configure_compilation_cache",
    "request_cpu_devices",
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


# -- running ------------------------------------------------------------------------------------

#: NumPyro's per-draw statistics collected, and the ArviZ names they are stored under.
EXTRA_FIELDS: dict[str, str] = {
    "potential_energy": "lp",
    "diverging": "diverging",
    "adapt_state.step_size": "step_size",
    "num_steps": "n_steps",
    "accept_prob": "acceptance_rate",
    "energy": "energy",
}

_JAX_CONFIGURED = False

#: The function of a hand-written NumPyro program used when its UserProgram names none.
USER_ENTRY = "model"


def configure_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at ``cache_dir("jax")``, unless the user has.

    A user's own ``jax_compilation_cache_dir`` (config or ``$JAX_COMPILATION_CACHE_DIR``) is left
    alone, and so are the thresholds when the user set them (``$JAX_PERSISTENT_CACHE_MIN_*``).
    Ours cache every program, however small and quick to compile: a fit also compiles ~100 tiny
    programs (initialization runs op by op), and reading them back beats compiling them again.
    Returns the folder in use, or None when JAX has none.
    """
    import jax

    global _JAX_CONFIGURED
    current = jax.config.jax_compilation_cache_dir
    if _JAX_CONFIGURED or current or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(current) if current else None
    _JAX_CONFIGURED = True
    folder = cache_dir("jax")
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES" not in os.environ:
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return folder


def request_cpu_devices(chains: int) -> None:
    """Ask JAX for one CPU device per chain (at least 4, up to the cores), for parallel chains.

    Only possible before JAX starts its backends, and only done when the user has not chosen
    (``jax_num_cpu_devices``, ``$JAX_NUM_CPU_DEVICES`` or ``--xla_force_host_platform_device_count``
    in ``$XLA_FLAGS``). Afterwards the device count is fixed and this does nothing.
    """
    import jax

    try:
        current = jax.config.jax_num_cpu_devices
    except AttributeError:  # an older JAX without the option: chains run vectorized
        return
    if (
        current != -1
        or "JAX_NUM_CPU_DEVICES" in os.environ
        or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    ):
        return
    wanted = max(chains, 4, min(os.cpu_count() or 1, 32))
    with contextlib.suppress(RuntimeError):  # raised once JAX has started: keep what it has
        jax.config.update("jax_num_cpu_devices", wanted)


def choose_chain_method(chains: int) -> str:
    """How NumPyro runs ``chains`` chains in this process.

    ``"parallel"`` (one chain per device, pmap) when JAX has a device per chain (see
    :func:`request_cpu_devices`); else ``"vectorized"`` (all chains in one vmapped program).
    Measured for Rats on 2 (busy) cores, 4 chains x (1000 + 3000), warm cache, in CPU seconds:
    parallel 6.2, vectorized 11.3, sequential 16.4. One chain runs "sequential".
    """
    import jax

    if chains == 1:
        return "sequential"
    if jax.local_device_count() >= chains:
        return "parallel"
    return "vectorized"


@contextlib.contextmanager
def _numpyro_env(chains: int = 4):
    """Devices, the compilation cache, and double precision for our own calls only."""
    import jax

    request_cpu_devices(chains)
    configure_compilation_cache()
    if callable(getattr(jax, "enable_x64", None)):
        x64 = jax.enable_x64(True)
    else:  # JAX before the config context managers
        from jax.experimental import enable_x64

        x64 = enable_x64()
    with x64:
        yield


def _dtype(decl) -> type:
    """``int64`` for a quantity drawn from a discrete distribution, else ``float64``."""
    dist_ = getattr(decl, "dist", None)
    discrete = dist_ is not None and DISTRIBUTIONS[dist_.name].support.discrete
    return np.int64 if discrete else np.float64


class NumPyroBackend(Backend):
    """NumPyro: the generated module's ``model`` fitted with ``numpyro.infer.NUTS``."""

    name: ClassVar[str] = "numpyro"
    engines: ClassVar[tuple[str, ...]] = ("numpyro",)
    packages: ClassVar[tuple[str, ...]] = ("numpyro", "jax", "jaxlib")

    def emit(self, model: Model) -> str:
        return NumPyroGenerator(model).module()

    def _load(self, model: Model, program: str):
        module = load_module(program, model.name)
        if not callable(getattr(module, "model", None)):
            raise EngineError(self.name, "numpyro", "the program defines no model() function")
        return module.model

    def _load_user(self, model: Model, program: UserProgram):
        """A hand-written program's entry (default ``model``) and the arguments it gets."""
        module = load_program(program)
        fn = entry_function(program, module, USER_ENTRY)
        args, kwargs = entry_arguments(fn, model, program, USER_ENTRY)
        return fn, args, kwargs, list(inspect.signature(fn).parameters)

    def _user_sites(self, program: UserProgram, fn, args: tuple, kwargs: dict) -> dict:
        """Run the user's model once (latent values as NUTS starts from them: uniform on
        (-2, 2) unconstrained, seed 0) and return its sites: name -> ``(kind, shape)``, kind
        ``latent``, ``observed`` or ``deterministic``. Call inside :func:`_numpyro_env`. An
        exception is the user's :class:`ProgramError`."""
        from numpyro import handlers
        from numpyro.infer import init_to_uniform

        def run(*a, **k):
            seeded = handlers.seed(fn, rng_seed=0)
            start = handlers.substitute(seeded, substitute_fn=init_to_uniform(radius=2))
            return handlers.trace(start).get_trace(*a, **k)

        trace = call_entry(program, run, args, kwargs, USER_ENTRY)
        sites = {}
        for name, site in trace.items():
            if site["type"] == "sample":
                kind = "observed" if site.get("is_observed") else "latent"
            elif site["type"] == "deterministic":
                kind = "deterministic"
            else:
                continue
            sites[name] = (kind, tuple(np.shape(site["value"])))
        return sites

    def sample(self, model: Model, program: str, config: FitConfig, engine: str) -> Draws:
        """Run ``program``'s ``model`` with NUTS under ``config``, then draw the generated
        quantities (if any) once per posterior draw, given that draw.

        JAX traces and compiles inside ``MCMC.run``, so ``build_seconds`` is loading the module
        and setting up the kernel, and ``sampling_seconds`` is the whole run, compilation
        included (a fraction of it when the compilation cache is warm), until the draws are
        back in host memory, plus drawing the generated quantities. Those are drawn by
        ``Predictive`` on the posterior draws of the parameters (``model(...,
        generated_quantities=True)``, vectorized over draws) with a key apart from the chains'
        (:data:`GENERATED_STREAM`): NUTS runs exactly as for a spec without them.
        """
        engine = self.check_engine(engine)
        start = time.perf_counter()
        fn = self._load(model, program)
        data = model_data(model)
        draws = self._run(fn, (), data, config, engine, start)
        posterior = {}
        for stmt in model.statements:
            if stmt.name not in draws.posterior:
                raise EngineError(self.name, engine, f"no draws of {stmt.name!r}")
            posterior[stmt.name] = np.asarray(draws.posterior[stmt.name], dtype=np.float64)
        if model.generated:
            began = time.perf_counter()
            params = {p.name: posterior[p.name] for p in model.parameters}
            generated = self._forward(
                fn, {**data, GENERATED_FLAG: True}, model.generated, config.seed,
                stream=GENERATED_STREAM, posterior_samples=params, batch_ndims=2,
            )
            posterior.update(generated)
            draws.sampling_seconds += time.perf_counter() - began
        draws.posterior = posterior
        return draws

    def prior_predictive(self, model: Model, draws: int, seed: int) -> dict[str, np.ndarray]:
        """Run the emitted ``model`` forward ``draws`` times with ``Predictive(model,
        num_samples=draws)`` (vectorized, key ``PRNGKey(seed)``), the observed data left out so
        that their likelihoods draw replicated data, generated quantities included.

        Distribution validation is off for the run: values are returned as JAX computes them
        (e.g. a Gamma(0.001, 0.001) draw that underflows to 0 gives a scale of ``inf``).
        Integer-valued quantities (discrete distributions) are ``int64``, the rest ``float64``.
        """
        fn = self._load(model, self.emit(model))
        optional = {name for name, par in inspect.signature(fn).parameters.items()
                    if par.default is None}
        tied = [o.name for o in model.observed if o.name not in optional]
        if tied:
            raise NotYetTranslated(
                self.name,
                f"prior predictive draws of observed data that an expression also uses "
                f"({', '.join(tied)})",
            )
        kwargs = {k: v for k, v in model_data(model).items() if k not in model.observed_names}
        if model.generated:
            kwargs[GENERATED_FLAG] = True
        return self._forward(fn, kwargs, (*model.recorded, *model.observed), seed,
                             num_samples=draws)

    def _forward(self, fn, kwargs: Mapping, recorded, seed: int, stream: int | None = None,
                 **options) -> dict[str, np.ndarray]:
        """``Predictive(fn, return_sites=<names of recorded>, parallel=True, **options)`` run
        on ``fn(**kwargs)`` with the key ``PRNGKey(seed)`` (folded in with ``stream`` if given),
        distribution validation off; returns each of ``recorded`` (declarations) as numpy,
        ``int64`` where its distribution is discrete, else ``float64``."""
        import jax
        from numpyro import validation_enabled
        from numpyro.infer import Predictive

        names = [r.name for r in recorded]
        with _numpyro_env(), validation_enabled(False):
            key = jax.random.PRNGKey(seed)
            if stream is not None:
                key = jax.random.fold_in(key, stream)
            predictive = Predictive(fn, return_sites=names, parallel=True, **options)
            try:
                out = jax.device_get(predictive(key, **kwargs))
            except (ValueError, RuntimeError, TypeError, FloatingPointError) as exc:
                raise EngineError(self.name, "numpyro",
                                  f"drawing {', '.join(names)} failed: {exc}") from exc
        missing = [n for n in names if n not in out]
        if missing:
            raise EngineError(self.name, "numpyro", f"no draws of {missing}")
        return {r.name: np.asarray(out[r.name], dtype=_dtype(r)) for r in recorded}

    def sample_user(
        self, model: Model, program: UserProgram, config: FitConfig, engine: str
    ) -> Draws:
        """Fit a hand-written NumPyro program: its entry (default ``model``) IS the model
        function, called with the spec's data by name (observed arguments receive the data), and
        run exactly as a generated program is (:meth:`sample`). Draws are keyed by the spec's
        names and shaped as the spec's dims (size-1 axes squeezed); other sites are dropped."""
        engine = self.check_engine(engine)
        start = time.perf_counter()
        fn, args, kwargs, params = self._load_user(model, program)
        with _numpyro_env(config.chains):
            sites = self._user_sites(program, fn, args, kwargs)
        names = spec_variables(
            model,
            program,
            [n for n, (kind, _) in sites.items() if kind != "observed"],
            parameters=[*params, *(n for n, (kind, _) in sites.items() if kind == "observed")],
            default=USER_ENTRY,
        )
        check_shapes(model, program, names, {n: shape for n, (_, shape) in sites.items()})
        draws = self._run(fn, args, kwargs, config, engine, start)
        draws.posterior = spec_posterior(model, program, draws.posterior, names,
                                         (config.chains, config.draws))
        return draws

    def _run(self, fn, args: tuple, kwargs: Mapping, config: FitConfig, engine: str,
             start: float) -> Draws:
        """NUTS on the model function ``fn(*args, **kwargs)`` under ``config``; the posterior
        holds every latent and deterministic site under the program's own names."""
        import jax
        from numpyro.infer import MCMC, NUTS, init_to_uniform

        # Everything JAX touches (kernel, keys, data) is made inside the x64 context.
        with _numpyro_env(config.chains):
            options = {}
            if config.init == "uniform":
                options["init_strategy"] = init_to_uniform(radius=2)
            kernel = NUTS(
                fn,
                target_accept_prob=config.target_accept,
                max_tree_depth=config.max_treedepth,
                **options,
            )
            method = choose_chain_method(config.chains)
            mcmc = MCMC(
                kernel,
                num_warmup=config.warmup,
                num_samples=config.draws,
                num_chains=config.chains,
                chain_method=method,
                progress_bar=False,
            )
            built = time.perf_counter()
            # NumPyro tells no progress without its own bar (see above): the stage only
            shown = config.show_progress and not report("sampling")
            if shown:
                sys.stderr.write(f"NumPyro: sampling {config.chains} chains x ({config.warmup} "
                                 f"warmup + {config.draws} draws)...\n")
                sys.stderr.flush()
            try:
                mcmc.run(jax.random.PRNGKey(config.seed), *args,
                         extra_fields=tuple(EXTRA_FIELDS), **kwargs)
            except (ValueError, RuntimeError, TypeError, FloatingPointError) as exc:
                raise EngineError(self.name, engine, f"sampling failed: {exc}") from exc
            samples = jax.device_get(mcmc.get_samples(group_by_chain=True))
            fields = jax.device_get(mcmc.get_extra_fields(group_by_chain=True))
        done = time.perf_counter()
        if shown:
            sys.stderr.write(f"NumPyro: sampling done in {done - built:.1f} s\n")
            sys.stderr.flush()
        stats = {EXTRA_FIELDS[k]: np.asarray(v) for k, v in fields.items() if k in EXTRA_FIELDS}
        stats["lp"] = -stats["lp"].astype(np.float64)
        stats["diverging"] = stats["diverging"].astype(bool)
        steps = stats["n_steps"].astype(np.int64)
        stats["n_steps"] = steps
        stats["tree_depth"] = np.floor(np.log2(np.maximum(steps, 1))).astype(np.int64) + 1
        return Draws(
            posterior={k: np.asarray(v) for k, v in samples.items()},
            sample_stats=stats,
            engine=engine,
            build_seconds=built - start,
            sampling_seconds=done - built,
            extra_attrs={"numpyro_chain_method": method, "jax_enable_x64": "true"},
        )

    # -- log density ------------------------------------------------------------------------
    def log_density(
        self, model: Model, program: str, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        return self._generated_terms(model, program, points)[0]

    def log_density_user(
        self, model: Model, program: UserProgram, points: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """:meth:`log_density` of a hand-written program (every sample site's log probability,
        constrained space, no Jacobian); ``points`` are keyed by the spec's names (mapped to the
        program's through :attr:`UserProgram.names`)."""
        return self._user_terms(model, program, points)[0]

    def log_density_terms(
        self, model: Model, program: str | UserProgram, points: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Per-site log probabilities (spec name -> ``(n,)``, each summed over the site's
        elements and scaled as NumPyro scales them) of a generated program (``program`` as
        :meth:`emit` wrote it) or a hand-written one."""
        if isinstance(program, UserProgram):
            return spec_terms(program, self._user_terms(model, program, points)[1])
        return spec_terms(None, self._generated_terms(model, program, points)[1])

    def _generated_terms(self, model: Model, program: str, points: Mapping[str, np.ndarray]):
        fn = self._load(model, program)
        names = [p.name for p in model.parameters]
        missing = [n for n in names if n not in points]
        if missing:
            raise ValueError(f"points lack values of {missing}")
        values = {n: np.asarray(points[n], dtype=np.float64) for n in names}
        return self._site_log_probs(fn, (), model_data(model), values)

    def _user_terms(self, model: Model, program: UserProgram,
                    points: Mapping[str, np.ndarray]):
        fn, args, kwargs, _ = self._load_user(model, program)
        with _numpyro_env():
            sites = self._user_sites(program, fn, args, kwargs)
        shapes = {n: shape for n, (kind, shape) in sites.items() if kind == "latent"}
        _, values = program_points(model, program, points, shapes)
        try:
            return self._site_log_probs(fn, args, kwargs, values)
        except Exception as exc:
            raise user_failure(program, exc, "evaluating its log density at the points",
                               USER_ENTRY) or EngineError(
                self.name, "numpyro", f"evaluating the log density failed: {exc}"
            ) from exc

    def _site_log_probs(self, fn, args: tuple, kwargs: Mapping,
                        values: Mapping[str, np.ndarray]):
        """The joint log density ``(n,)`` and each sample site's term (name -> ``(n,)``) of
        ``fn(*args, **kwargs)`` with its latent sites set to ``values`` (name -> ``(n, ...)``)."""
        import jax
        from numpyro.infer.util import compute_log_probs

        with _numpyro_env():
            params = {n: jax.numpy.asarray(v) for n, v in values.items()}

            def one(point):
                terms = compute_log_probs(fn, args, dict(kwargs), point)[0]
                # the sum in the trace's order, as numpyro.infer.util.log_density takes it
                return sum(terms.values(), start=0.0), terms

            total, terms = jax.device_get(jax.jit(jax.vmap(one))(params))
        return (np.asarray(total, dtype=np.float64),
                {n: np.asarray(v, dtype=np.float64) for n, v in terms.items()})
