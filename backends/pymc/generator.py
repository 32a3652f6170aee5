"""The PyMC generator: IR -> an idiomatic, vectorized PyMC module (see
:mod:`crossppl.backends.pymc`)."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping
from typing import ClassVar

from crossppl.models.ir import (
    Call,
    DerivedDecl,
    Dist,
    GeneratedDecl,
    ObservedDecl,
    ParamDecl,
    Role,
    Var,
    walk,
)

from ..python_generator import LINE_LENGTH, CallCode, PythonGenerator, py_string, spec_reference

__all__ = ["DIST_RULES", "FUNCTIONS", "PyMCDist", "PyMCGenerator"]


@dataclasses.dataclass(frozen=True, slots=True)
class PyMCDist:
    """How to write one native (row, parameterization) of the distribution table in PyMC.

    ``cls`` is the PyMC distribution class; ``kwargs`` are ``(pymc keyword, argument)`` pairs,
    each argument one of the row's (or derived from them through
    :mod:`crossppl.models.conversions`).
    """

    cls: str
    kwargs: tuple[tuple[str, str], ...]


def _dist(cls: str, **kwargs: str) -> PyMCDist:
    return PyMCDist(cls, tuple(kwargs.items()))


#: (row name, parameterization key) -> PyMC call, for PyMC's native parameterizations; the others
#: are rewritten through the conversion table (a gamma's scale as ``beta=1 / scale``).
DIST_RULES: dict[tuple[str, str], PyMCDist] = {
    ("normal", "sigma"): _dist("Normal", mu="mu", sigma="sigma"),
    ("normal", "tau"): _dist("Normal", mu="mu", tau="tau"),
    ("half_normal", "sigma"): _dist("HalfNormal", sigma="sigma"),
    ("half_normal", "tau"): _dist("HalfNormal", tau="tau"),
    ("student_t", "sigma"): _dist("StudentT", nu="nu", mu="mu", sigma="sigma"),
    ("student_t", "tau"): _dist("StudentT", nu="nu", mu="mu", lam="tau"),
    ("cauchy", "sigma"): _dist("Cauchy", alpha="mu", beta="sigma"),
    ("half_cauchy", "sigma"): _dist("HalfCauchy", beta="sigma"),
    ("lognormal", "sigma"): _dist("LogNormal", mu="mu", sigma="sigma"),
    ("lognormal", "tau"): _dist("LogNormal", mu="mu", tau="tau"),
    ("exponential", "rate"): _dist("Exponential", lam="rate"),
    ("exponential", "scale"): _dist("Exponential", scale="scale"),
    ("gamma", "rate"): _dist("Gamma", alpha="shape", beta="rate"),
    ("inverse_gamma", "scale"): _dist("InverseGamma", alpha="shape", beta="scale"),
    ("weibull", "sigma"): _dist("Weibull", alpha="alpha", beta="sigma"),
    ("beta", "default"): _dist("Beta", alpha="alpha", beta="beta"),
    ("uniform", "default"): _dist("Uniform", lower="lower", upper="upper"),
    ("bernoulli", "p"): _dist("Bernoulli", p="p"),
    ("bernoulli", "logit_p"): _dist("Bernoulli", logit_p="logit_p"),
    ("binomial", "p"): _dist("Binomial", n="n", p="p"),
    ("binomial", "logit_p"): _dist("Binomial", n="n", logit_p="logit_p"),
    ("poisson", "rate"): _dist("Poisson", mu="rate"),
}

#: Spec-language function -> PyMC/PyTensor function.
FUNCTIONS: dict[str, str] = {
    "exp": "pm.math.exp",
    "log": "pm.math.log",
    "sqrt": "pm.math.sqrt",
    "inv_logit": "pm.math.invlogit",
    "logit": "pm.math.logit",
    "pow": "pt.pow",
    "abs": "pm.math.abs",
}

def _dims_kwarg(dims: tuple[str, ...]) -> str:
    if len(dims) == 1:
        return f"dims={py_string(dims[0])}"
    return f"dims=({', '.join(map(py_string, dims))})"


def _call(lhs: str | None, func: str, args: list[str], indent: int) -> list[str]:
    """``lhs = func(args)`` on one line if it fits, else one argument per line."""
    return CallCode(func, tuple(args)).lines(indent, prefix=f"{lhs} = " if lhs else "")


class PyMCGenerator(PythonGenerator):
    """Writes a model as a PyMC module: ``build_model(data, coords)`` plus a script entry point.

    Every leaf of an expression is laid out (:func:`~.layout.align`) against the dims of the
    statement it appears in, so NumPy broadcasting does by position what the IR does by name.
    """

    backend: ClassVar[str] = "pymc"
    DIST_RULES: ClassVar[Mapping[tuple[str, str], PyMCDist]] = DIST_RULES

    FUNCTIONS: ClassVar[Mapping[str, str]] = FUNCTIONS

    # -- statements -------------------------------------------------------------------------------
    def dist_args(self, dist: Dist, target: tuple[str, ...]) -> tuple[str, list[str]]:
        """The PyMC class and keyword arguments of ``dist``, laid out against ``target``."""
        dist, rule = self.native(dist)
        args = [f"{keyword}={self.expr(self.rule_arg(dist, name), target)}"
                for keyword, name in rule.kwargs]
        return f"pm.{rule.cls}", args

    def lhs(self, name: str) -> str | None:
        """The Python name a statement binds: only names used later (no unused locals)."""
        return name if self.used_later(name) else None

    def stmt_ParamDecl(self, stmt: ParamDecl, indent: int) -> list[str]:
        func, args = self.dist_args(stmt.dist, stmt.dims)
        if stmt.dims:
            args.append(_dims_kwarg(stmt.dims))
        return _call(self.lhs(stmt.name), func, [py_string(stmt.name), *args], indent)

    def stmt_DerivedDecl(self, stmt: DerivedDecl, indent: int) -> list[str]:
        expr = stmt.expr
        code = self.expr(expr, stmt.dims)
        if tuple(d for d in stmt.dims if d in expr.dims) != tuple(stmt.dims):
            sizes = ", ".join(f"model.dim_lengths[{py_string(d)}]" for d in stmt.dims)
            code = f"pt.broadcast_to({code}, ({sizes}{',' if len(stmt.dims) == 1 else ''}))"
            self.uses.add("pt")
        elif not any(
            isinstance(n, Call) or (isinstance(n, Var) and n.role is not Role.DATA)
            for n in walk(expr)
        ):
            code = f"pt.as_tensor({code})"  # only data and numbers: make it a tensor
            self.uses.add("pt")
        args = [py_string(stmt.name), code]
        if stmt.dims:
            args.append(_dims_kwarg(stmt.dims))
        return _call(self.lhs(stmt.name), "pm.Deterministic", args, indent)

    def stmt_ObservedDecl(self, obs: ObservedDecl, indent: int) -> list[str]:
        func, args = self.dist_args(obs.dist, obs.dims)
        args.append(f"observed=data[{py_string(obs.name)}]")
        if obs.dims:
            args.append(_dims_kwarg(obs.dims))
        return _call(None, func, [py_string(obs.name), *args], indent)

    def stmt_GeneratedDecl(self, gen: GeneratedDecl, indent: int) -> list[str]:
        """A posterior-predictive quantity: a random variable of the ``generated=True`` model
        (written inside ``if generated:``)."""
        func, args = self.dist_args(gen.dist, gen.dims)
        if gen.dims:
            args.append(_dims_kwarg(gen.dims))
        return _call(self.lhs(gen.name), func, [py_string(gen.name), *args], indent)

    # -- the module -------------------------------------------------------------------------------
    def module_doc(self) -> str:
        model = self.model
        doc = [f"PyMC model {model.name!r}, generated by crossppl; do not edit.", ""]
        for label, text in (("", model.description), ("Source: ", model.source)):
            if text:
                doc += textwrap.wrap(label + text, LINE_LENGTH - 4)
        if doc[-1]:
            doc.append("")
        after = "; posterior-predictive quantities drawn after NUTS" if model.generated else ""
        run = ("Run as a script to fit it to its spec's data exactly as `crossppl fit SPEC "
               f"--backend pymc` does (nutpie's NUTS, the same settings and initial points{after})"
               " and print a summary")
        spec = spec_reference(model)
        default = f" (default {spec!r})" if spec is not None else ""
        doc += [
            *textwrap.wrap(f"{run}:", LINE_LENGTH - 4),
            "",
            f"    python {model.name}_pymc.py [SPEC] [--chains N] [--warmup N] [--draws N] "
            "[--seed N]",
            "",
            f"SPEC: a bundled model's name or the path to a .toml spec{default}.",
        ]
        return "\n".join(doc)

    def imports(self) -> list[str]:
        return ["import pymc as pm", *(["import pytensor.tensor as pt"] if "pt" in self.uses
                                       else [])]

    def model_function(self) -> list[str]:
        model = self.model
        body: list[str] = []
        for stmt in [*model.statements, *model.observed]:
            body += self.statement(stmt, 8)
        if model.generated:
            body += ["        if generated:",
                     "            # drawn once per posterior draw by "
                     "pm.sample_posterior_predictive, never by NUTS"]
            for gen in model.generated:
                body += self.statement(gen, 12)
        # data referenced by expressions get a local name
        data_lines = [f"    {d.name} = data[{py_string(d.name)}]" for d in model.data
                      if self.used_later(d.name)]
        doc = ['    """Return the PyMC model for ``data`` (name -> array) and ``coords`` '
               '(dim -> labels)."""']
        signature = "def build_model(data, coords):"
        if model.generated:
            signature = "def build_model(data, coords, generated=False):"
            doc = [
                '    """Return the PyMC model for ``data`` (name -> array) and ``coords`` '
                "(dim -> labels).",
                "",
                "    With ``generated=True`` the model also declares the posterior-predictive "
                "quantities",
                "    ``GENERATED``: fit the model without them, then draw them for every "
                "posterior draw with",
                "    ``pm.sample_posterior_predictive(idata, var_names=GENERATED)``.",
                '    """',
            ]
        return [signature, *doc, *data_lines, "    with pm.Model(coords=coords) as model:",
                *body, "    return model"]

    def main_function(self) -> list[str]:
        return [
            "def main(argv=None):",
            '    """Fit this module\'s model to a spec\'s data as ``crossppl fit`` does and '
            'print a summary."""',
            "    import argparse",
            "    from pathlib import Path",
            "",
            "    from crossppl.backends import get_backend, to_inference_data",
            "    from crossppl.compare.summary import summarize",
            "    from crossppl.config import FitConfig",
            "    from crossppl.models import load_spec",
            "",
            "    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])",
            '    parser.add_argument("spec", nargs="?", default=SPEC, '
            'help="bundled model name or .toml path")',
            "    for name in (\"--chains\", \"--warmup\", \"--draws\", \"--seed\"):",
            "        parser.add_argument(name, type=int, help=\"default: the spec's [fit], "
            "else crossppl's\")",
            "    args = parser.parse_args(argv)",
            "    if args.spec is None:",
            '        parser.error("give the spec: a bundled model name or a TOML file")',
            "    spec = load_spec(args.spec)",
            "    config = FitConfig.resolve(spec.fit, chains=args.chains, warmup=args.warmup,",
            "                               draws=args.draws, seed=args.seed)",
            f"    backend = get_backend({py_string(self.backend)})",
            "    program = Path(__file__).read_text(encoding=\"utf-8\")",
            "    draws = backend.sample(spec, program, config, backend.default_engine())",
            "    idata = to_inference_data(spec, draws, backend=backend, program=program, "
            "config=config)",
            "    table = summarize(idata[\"posterior\"].to_dataset())",
            "    columns = [\"mean\", \"sd\", \"q05\", \"q50\", \"q95\", \"ess_bulk\", "
            "\"r_hat\"]",
            "    print(table[columns].round(4).to_string())",
        ]
