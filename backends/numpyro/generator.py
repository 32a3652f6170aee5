"""The NumPyro generator: IR -> a runnable NumPyro module (see
:mod:`crossppl.backends.numpyro`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from crossppl.models.ir import (
    DerivedDecl,
    Dist,
    GeneratedDecl,
    ObservedDecl,
    ParamDecl,
)

from crossppl.config import FitConfig

from ..python_generator import CallCode, PythonGenerator, py_string

__all__ = [
    "DIST_RULES",
    "GENERATED_FLAG",
    "GENERATED_STREAM",
    "Arg",
    "DistRule",
    "NumPyroGenerator",
]


#: The keyword of a generated ``model`` that also draws the spec's generated quantities.
GENERATED_FLAG = "generated_quantities"

#: A fit's generated quantities are drawn with the key ``fold_in(PRNGKey(seed), GENERATED_STREAM)``:
#: a stream apart from the chains' (``MCMC.run`` splits ``PRNGKey(seed)``).
GENERATED_STREAM = 1

# -- the distribution table ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of a NumPyro distribution: ``source`` names an argument of the row (or one
    derived from them through :mod:`crossppl.models.conversions`), and ``keyword`` writes it by
    name (``probs=p``) instead of by position."""

    source: str
    keyword: str | None = None


@dataclass(frozen=True, slots=True)
class DistRule:
    """How to write one native ``(row, parameterization)``: ``dist.<ctor>(<args>)``."""

    ctor: str
    args: tuple[Arg, ...]


def _rule(ctor: str, *args: str | Arg) -> DistRule:
    return DistRule(ctor, tuple(a if isinstance(a, Arg) else Arg(a) for a in args))


#: ``(row name, parameterization key)`` -> how NumPyro writes it, for NumPyro's native
#: parameterizations; the others are rewritten through the conversion table (a precision as
#: ``1 / jnp.sqrt(tau)``).
DIST_RULES: dict[tuple[str, str], DistRule] = {
    ("normal", "sigma"): _rule("Normal", "mu", "sigma"),
    ("half_normal", "sigma"): _rule("HalfNormal", "sigma"),
    ("student_t", "sigma"): _rule("StudentT", "nu", "mu", "sigma"),
    ("cauchy", "sigma"): _rule("Cauchy", "mu", "sigma"),
    ("half_cauchy", "sigma"): _rule("HalfCauchy", "sigma"),
    ("lognormal", "sigma"): _rule("LogNormal", "mu", "sigma"),
    ("exponential", "rate"): _rule("Exponential", "rate"),
    ("gamma", "rate"): _rule("Gamma", "shape", "rate"),
    # NumPyro's InverseGamma "rate" is the scale beta of Stan's inv_gamma(alpha, beta): the
    # density is beta^alpha / Gamma(alpha) x^(-alpha - 1) exp(-beta / x) in both.
    ("inverse_gamma", "scale"): _rule("InverseGamma", "shape", "scale"),
    ("weibull", "sigma"): _rule("Weibull", "sigma", "alpha"),  # Weibull(scale, concentration)
    ("beta", "default"): _rule("Beta", "alpha", "beta"),
    ("uniform", "default"): _rule("Uniform", "lower", "upper"),
    ("bernoulli", "p"): _rule("Bernoulli", Arg("p", keyword="probs")),
    ("bernoulli", "logit_p"): _rule("Bernoulli", Arg("logit_p", keyword="logits")),
    ("binomial", "p"): _rule("Binomial", "n", Arg("p", keyword="probs")),
    ("binomial", "logit_p"): _rule("Binomial", "n", Arg("logit_p", keyword="logits")),
    ("poisson", "rate"): _rule("Poisson", "rate"),
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


class NumPyroGenerator(PythonGenerator):
    """Writes a model as a NumPyro module (see the module docstring for its shape)."""

    backend: ClassVar[str] = "numpyro"
    DIST_RULES: ClassVar[Mapping[tuple[str, str], DistRule]] = DIST_RULES
    FUNCTIONS: ClassVar[Mapping[str, str]] = FUNCTION_RULES

    # -- distributions -----------------------------------------------------------------------
    def dist_call(self, d: Dist, target: tuple[str, ...]) -> CallCode:
        """``dist.<Name>(...)`` for ``d`` with every argument aligned to ``target``."""
        d, rule = self.native(d)
        args: list[str] = []
        for arg in rule.args:
            code = self.expr(self.rule_arg(d, arg.source), target)
            args.append(f"{arg.keyword}={code}" if arg.keyword else code)
        return CallCode(f"dist.{rule.ctor}", tuple(args))

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

    def stmt_ParamDecl(self, stmt: ParamDecl, indent: int) -> list[str]:
        call = CallCode("numpyro.sample", (py_string(stmt.name),
                                           self.dist_call(stmt.dist, stmt.dims)))
        return call.lines(indent, prefix=f"{stmt.name} = ")

    def stmt_DerivedDecl(self, stmt: DerivedDecl, indent: int) -> list[str]:
        value = self.expr(stmt.expr, stmt.dims)
        if stmt.expr.dims != stmt.dims:
            # The expression varies along fewer dims than declared: give it the full shape.
            self.uses.add("jnp")
            shape = ", ".join(f"N_{d}" for d in stmt.dims)
            value = f"jnp.broadcast_to({value}, ({shape}{',' if len(stmt.dims) == 1 else ''}))"
        call = CallCode("numpyro.deterministic", (py_string(stmt.name), value))
        return call.lines(indent, prefix=f"{stmt.name} = ")

    def stmt_ObservedDecl(self, stmt: ObservedDecl, indent: int) -> list[str]:
        call = CallCode("numpyro.sample", (py_string(stmt.name),
                                           self.dist_call(stmt.dist, stmt.dims),
                                           f"obs={stmt.name}"))
        return call.lines(indent)

    def stmt_GeneratedDecl(self, stmt: GeneratedDecl, indent: int) -> list[str]:
        call = CallCode("numpyro.sample", (py_string(stmt.name),
                                           self.dist_call(stmt.dist, stmt.dims)))
        # named only when a later generated quantity uses it
        return call.lines(indent, prefix=f"{stmt.name} = " if self.used_later(stmt.name) else "")

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
                lines.extend(self.statement(stmt, indent + 4 if dims else indent))
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

    def module_doc(self) -> str:
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
        return "\n\n".join(parts)

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

    def model_function(self) -> list[str]:
        body = self.body()
        if "jnp." in "\n".join(body):
            self.uses.add("jnp")
        return [f"def model({self.signature()}):", *body]

    def imports(self) -> list[str]:
        lines = ["import argparse", "import sys", ""]
        lines.append("import jax.scipy.special" if "jax.scipy" in self.uses else "import jax")
        if "jnp" in self.uses:
            lines.append("import jax.numpy as jnp")
        infer = ("MCMC, NUTS, Predictive, init_to_uniform" if self.model.generated
                 else "MCMC, NUTS, init_to_uniform")
        return [*lines, "import numpyro", "import numpyro.distributions as dist",
                f"from numpyro.infer import {infer}"]

    def main_function(self) -> list[str]:
        defaults = FitConfig()
        return [
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
            *(self.main_generated() if self.model.generated else []),
        ]
