"""The PyMC generator: IR -> an idiomatic, vectorized PyMC module (see
:mod:`crossppl.backends.pymc`)."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

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
    Role,
    Unary,
    Var,
    walk,
)
from crossppl.models.spec import bundled_specs

from crossppl.errors import NotYetTranslated

from ..base import Generator
from ..layout import align

__all__ = ["DIST_RULES", "FUNCTIONS", "PyMCDist", "PyMCGenerator"]


@dataclasses.dataclass(frozen=True, slots=True)
class PyMCDist:
    """How to write one (row, parameterization) of the distribution table in PyMC.

    ``cls`` is the PyMC distribution class; ``kwargs`` are ``(pymc keyword, IR argument)`` pairs,
    or ``(pymc keyword, IR argument, rewrite)`` where ``rewrite`` maps the argument's IR
    expression to the expression PyMC takes (``beta=1 / scale``).
    """

    cls: str
    kwargs: tuple[tuple[Any, ...], ...]


def _reciprocal(e: Expr) -> Expr:
    return Binary("div", Const(1), e, e.dims)


def _exp(e: Expr) -> Expr:
    return Call("exp", (e,), e.dims)


#: (row name, parameterization key) -> PyMC call; PyMC's native parameterizations throughout.
DIST_RULES: dict[tuple[str, str], PyMCDist] = {
    ("normal", "sigma"): PyMCDist("Normal", (("mu", "mu"), ("sigma", "sigma"))),
    ("normal", "tau"): PyMCDist("Normal", (("mu", "mu"), ("tau", "tau"))),
    ("half_normal", "sigma"): PyMCDist("HalfNormal", (("sigma", "sigma"),)),
    ("half_normal", "tau"): PyMCDist("HalfNormal", (("tau", "tau"),)),
    ("student_t", "sigma"): PyMCDist("StudentT", (("nu", "nu"), ("mu", "mu"), ("sigma", "sigma"))),
    ("student_t", "tau"): PyMCDist("StudentT", (("nu", "nu"), ("mu", "mu"), ("lam", "tau"))),
    ("cauchy", "sigma"): PyMCDist("Cauchy", (("alpha", "mu"), ("beta", "sigma"))),
    ("half_cauchy", "sigma"): PyMCDist("HalfCauchy", (("beta", "sigma"),)),
    ("lognormal", "sigma"): PyMCDist("LogNormal", (("mu", "mu"), ("sigma", "sigma"))),
    ("lognormal", "tau"): PyMCDist("LogNormal", (("mu", "mu"), ("tau", "tau"))),
    ("exponential", "rate"): PyMCDist("Exponential", (("lam", "rate"),)),
    ("exponential", "scale"): PyMCDist("Exponential", (("scale", "scale"),)),
    ("gamma", "rate"): PyMCDist("Gamma", (("alpha", "shape"), ("beta", "rate"))),
    ("gamma", "scale"): PyMCDist("Gamma", (("alpha", "shape"), ("beta", "scale", _reciprocal))),
    ("inverse_gamma", "scale"): PyMCDist("InverseGamma", (("alpha", "shape"), ("beta", "scale"))),
    ("beta", "default"): PyMCDist("Beta", (("alpha", "alpha"), ("beta", "beta"))),
    ("uniform", "default"): PyMCDist("Uniform", (("lower", "lower"), ("upper", "upper"))),
    ("bernoulli", "p"): PyMCDist("Bernoulli", (("p", "p"),)),
    ("bernoulli", "logit_p"): PyMCDist("Bernoulli", (("logit_p", "logit_p"),)),
    ("binomial", "p"): PyMCDist("Binomial", (("n", "n"), ("p", "p"))),
    ("binomial", "logit_p"): PyMCDist("Binomial", (("n", "n"), ("logit_p", "logit_p"))),
    ("poisson", "rate"): PyMCDist("Poisson", (("mu", "rate"),)),
    ("poisson", "log_rate"): PyMCDist("Poisson", (("mu", "log_rate", _exp),)),
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

# Python operator precedence of what the expression methods write (higher binds tighter).
_ADD, _MUL, _NEG, _POW, _ATOM = 1, 2, 3, 4, 5
_BINARY = {"add": ("+", _ADD), "sub": ("-", _ADD), "mul": ("*", _MUL), "div": ("/", _MUL),
           "pow": ("**", _POW)}
_INDENT = " " * 8
_LINE = 99


def _precedence(node: Expr) -> int:
    if isinstance(node, Const):
        return _NEG if node.value < 0 else _ATOM
    if isinstance(node, Unary):
        return _NEG
    if isinstance(node, Binary):
        return _BINARY[node.op][1] if node.op in _BINARY else _ATOM
    return _ATOM


def _str(text: str) -> str:
    """A Python string literal, double-quoted where possible (as ruff and black write it)."""
    if '"' in text or "\\" in text or not text.isprintable():
        return repr(text)
    return f'"{text}"'


def _dims_kwarg(dims: tuple[str, ...]) -> str:
    if len(dims) == 1:
        return f"dims={_str(dims[0])}"
    return f"dims=({', '.join(map(_str, dims))})"


def _call(lhs: str | None, func: str, args: list[str], indent: str = _INDENT) -> list[str]:
    """``lhs = func(args)`` on one line if it fits, else one argument per line."""
    prefix = f"{indent}{lhs} = " if lhs else indent
    one = f"{prefix}{func}({', '.join(args)})"
    if len(one) <= _LINE:
        return [one]
    return [f"{prefix}{func}(", *(f"{indent}    {a}," for a in args), f"{indent})"]


def _docstring(text: str) -> str:
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""{text}\n"""'


class PyMCGenerator(Generator):
    """Writes a model as a PyMC module: ``build_model(data, coords)`` plus a script entry point.

    Every leaf of an expression is laid out (:func:`~.layout.align`) against the dims of the
    statement it appears in, so NumPy broadcasting does by position what the IR does by name.
    """

    backend: ClassVar[str] = "pymc"
    DIST_RULES: ClassVar[Mapping[tuple[str, str], PyMCDist]] = DIST_RULES

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        self.uses_pt = False
        self._used = model.used_names()

    # -- expressions ------------------------------------------------------------------------------
    def expr_Const(self, node: Const, target: tuple[str, ...]) -> str:
        return repr(node.value)

    def expr_Var(self, node: Var, target: tuple[str, ...]) -> str:
        return align(node.name, node.dims, target)

    def expr_Index(self, node: Index, target: tuple[str, ...]) -> str:
        return align(f"{node.base.name}[{node.index.name}]", node.dims, target)

    def expr_Unary(self, node: Unary, target: tuple[str, ...]) -> str:
        if node.op != "neg":
            raise NotYetTranslated(self.backend, f"the unary operator {node.op!r}")
        code = self.expr(node.operand, target)
        if _precedence(node.operand) <= _NEG:
            code = f"({code})"
        return f"-{code}"

    def expr_Binary(self, node: Binary, target: tuple[str, ...]) -> str:
        if node.op not in _BINARY:
            raise NotYetTranslated(self.backend, f"the binary operator {node.op!r}")
        symbol, prec = _BINARY[node.op]
        left, right = self.expr(node.left, target), self.expr(node.right, target)
        lp, rp = _precedence(node.left), _precedence(node.right)
        if lp < prec or (node.op == "pow" and lp <= prec):
            left = f"({left})"
        # a right operand of equal precedence keeps its parentheses (a - (b - c), a ** b ** c
        # aside), so the program evaluates in exactly the IR's order
        if rp < prec or (rp == prec and node.op != "pow"):
            right = f"({right})"
        return f"{left} {symbol} {right}"

    def expr_Call(self, node: Call, target: tuple[str, ...]) -> str:
        func = FUNCTIONS.get(node.func)
        if func is None:
            raise NotYetTranslated(self.backend, f"the function {node.func}()")
        if func.startswith("pt."):
            self.uses_pt = True
        return f"{func}({', '.join(self.expr(a, target) for a in node.args)})"

    # -- statements -------------------------------------------------------------------------------
    def dist_args(self, dist: Dist, target: tuple[str, ...]) -> tuple[str, list[str]]:
        """The PyMC class and keyword arguments of ``dist``, laid out against ``target``."""
        rule = self.dist_rule(dist)
        args = []
        for kw in rule.kwargs:
            keyword, name, *rewrite = kw
            node = dist.arg(name)
            if rewrite:
                node = rewrite[0](node)
            args.append(f"{keyword}={self.expr(node, target)}")
        return f"pm.{rule.cls}", args

    def lhs(self, name: str) -> str | None:
        """The Python name a statement binds: only names used later (no unused locals)."""
        return name if name in self._used else None

    def param(self, stmt: ParamDecl) -> list[str]:
        func, args = self.dist_args(stmt.dist, stmt.dims)
        if stmt.dims:
            args.append(_dims_kwarg(stmt.dims))
        return _call(self.lhs(stmt.name), func, [_str(stmt.name), *args])

    def derived(self, stmt: DerivedDecl) -> list[str]:
        expr = stmt.expr
        code = self.expr(expr, stmt.dims)
        if tuple(d for d in stmt.dims if d in expr.dims) != tuple(stmt.dims):
            sizes = ", ".join(f"model.dim_lengths[{_str(d)}]" for d in stmt.dims)
            code = f"pt.broadcast_to({code}, ({sizes}{',' if len(stmt.dims) == 1 else ''}))"
            self.uses_pt = True
        elif not any(
            isinstance(n, Call) or (isinstance(n, Var) and n.role is not Role.DATA)
            for n in walk(expr)
        ):
            code = f"pt.as_tensor({code})"  # only data and numbers: make it a tensor
            self.uses_pt = True
        args = [_str(stmt.name), code]
        if stmt.dims:
            args.append(_dims_kwarg(stmt.dims))
        return _call(self.lhs(stmt.name), "pm.Deterministic", args)

    def observed(self, obs: ObservedDecl) -> list[str]:
        func, args = self.dist_args(obs.dist, obs.dims)
        args.append(f"observed=data[{_str(obs.name)}]")
        if obs.dims:
            args.append(_dims_kwarg(obs.dims))
        return _call(None, func, [_str(obs.name), *args])

    def generated(self, gen: GeneratedDecl) -> list[str]:
        """A posterior-predictive quantity: a random variable of the ``generated=True`` model,
        one level deeper (inside ``if generated:``)."""
        func, args = self.dist_args(gen.dist, gen.dims)
        if gen.dims:
            args.append(_dims_kwarg(gen.dims))
        return _call(self.lhs(gen.name), func, [_str(gen.name), *args], _INDENT + "    ")

    def spec_reference(self) -> str:
        """What ``load_spec`` is given in the script: the bundled name, or the spec's path."""
        model = self.model
        bundled = bundled_specs().get(model.name)
        if bundled is not None and model.path and Path(model.path).resolve() == bundled.resolve():
            return model.name
        return str(model.path or model.name)

    def module(self) -> str:
        """The whole module's source."""
        model = self.model
        self.uses_pt = False
        body: list[str] = []
        for stmt in model.statements:
            body += self.param(stmt) if isinstance(stmt, ParamDecl) else self.derived(stmt)
        for obs in model.observed:
            body += self.observed(obs)
        if model.generated:
            body += [
                f"{_INDENT}if generated:",
                f"{_INDENT}    # drawn once per posterior draw by pm.sample_posterior_predictive, "
                "never by NUTS",
            ]
            for gen in model.generated:
                body += self.generated(gen)
        # data referenced by expressions get a local name
        data_lines = [
            f"    {d.name} = data[{_str(d.name)}]" for d in model.data if d.name in self._used
        ]

        spec = self.spec_reference()
        file = f"{model.name}_pymc.py"
        doc = [f"PyMC model {model.name!r}, generated by crossppl; do not edit.", ""]
        for label, text in (("", model.description), ("Source: ", model.source)):
            if text:
                doc += textwrap.wrap(label + text, _LINE - 4)
        if doc[-1]:
            doc.append("")
        after = "; posterior-predictive quantities drawn after NUTS" if model.generated else ""
        run = ("Run as a script to fit it to its spec's data exactly as `crossppl fit SPEC "
               f"--backend pymc` does (nutpie's NUTS, the same settings and initial points{after})"
               " and print a summary")
        doc += [
            *textwrap.wrap(f"{run}:", _LINE - 4),
            "",
            f"    python {file} [SPEC] [--chains N] [--warmup N] [--draws N] [--seed N]",
            "",
            f"SPEC: a bundled model's name or the path to a .toml spec (default {spec!r}).",
        ]
        imports = ["import pymc as pm"]
        if self.uses_pt:
            imports.append("import pytensor.tensor as pt")
        constants = [f"SPEC = {_str(spec)}"]
        signature = "def build_model(data, coords):"
        build_doc = [
            '    """Return the PyMC model for ``data`` (name -> array) and ``coords`` '
            '(dim -> labels)."""'
        ]
        main_doc = (
            '    """Fit this module\'s model to a spec\'s data as ``crossppl fit`` does and '
            'print a summary."""'
        )
        if model.generated:
            names = ", ".join(_str(g.name) for g in model.generated)
            if len(f"GENERATED = [{names}]") <= _LINE:
                constants.append(f"GENERATED = [{names}]")
            else:
                constants += ["GENERATED = [", *(f"    {_str(g.name)}," for g in model.generated),
                              "]"]
            signature = "def build_model(data, coords, generated=False):"
            build_doc = [
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
        fit = [
            "    spec = load_spec(args.spec)",
            "    config = FitConfig.resolve(spec.fit, chains=args.chains, warmup=args.warmup,",
            "                               draws=args.draws, seed=args.seed)",
            "    backend = get_backend(\"pymc\")",
            "    program = Path(__file__).read_text(encoding=\"utf-8\")",
            "    draws = backend.sample(spec, program, config, backend.default_engine())",
            "    idata = to_inference_data(spec, draws, backend=backend, program=program, "
            "config=config)",
            "    table = summarize(idata[\"posterior\"].to_dataset())",
            "    columns = [\"mean\", \"sd\", \"q05\", \"q50\", \"q95\", \"ess_bulk\", "
            "\"r_hat\"]",
            "    print(table[columns].round(4).to_string())",
        ]
        lines = [
            _docstring("\n".join(doc)),
            "",
            *imports,
            "",
            *constants,
            "",
            "",
            signature,
            *build_doc,
            *data_lines,
            "    with pm.Model(coords=coords) as model:",
            *body,
            "    return model",
            "",
            "",
            "def main(argv=None):",
            main_doc,
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
            *fit,
            "",
            "",
            'if __name__ == "__main__":',
            "    main()",
            "",
        ]
        return "\n".join(lines)


