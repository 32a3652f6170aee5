"""Names a spec may not use: keywords and built-ins of the backends' languages, and the names of
the dims of ArviZ's results.

A fit's result holds every posterior quantity with the dims ``chain`` and ``draw`` first. A
dim of a spec called ``chain`` or ``draw`` crashes the fit after sampling ("conflicting sizes for
dimension 'draw'") and a variable of that name is silently dropped from the posterior, so both
are refused as any name (:data:`ARVIZ_RESERVED`). ``sample`` (ArviZ's ``extract`` and crossppl's
comparison stack chain and draw into a dim of that name) and ``quantile`` (the dim
``Dataset.quantile`` adds, which the summaries use) clash only in the posterior: they are refused
as the name or a dim of a parameter, derived or generated quantity (:data:`POSTERIOR_RESERVED`),
and stay allowed for data (the Dyes model's ``y[batch, sample]``). Other names ArviZ uses
(``hdi``, ``ci_bound``, ...) live in results of their own and do not clash.
"""

from __future__ import annotations

import keyword
import re

from .ir import FUNCTIONS

__all__ = ["ARVIZ_RESERVED", "IDENTIFIER", "POSTERIOR_RESERVED", "RESERVED",
           "reserved_reason"]

#: A spec name: a letter, then letters, digits or underscores, at most 64 characters.
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

STAN_RESERVED = frozenset(
    [
        "for",
        "in",
        "while",
        "repeat",
        "until",
        "if",
        "then",
        "else",
        "true",
        "false",
        "target",
        "functions",
        "model",
        "data",
        "parameters",
        "quantities",
        "transformed",
        "generated",
        "int",
        "real",
        "complex",
        "vector",
        "row_vector",
        "matrix",
        "simplex",
        "unit_vector",
        "ordered",
        "positive_ordered",
        "cholesky_factor_corr",
        "cholesky_factor_cov",
        "corr_matrix",
        "cov_matrix",
        "array",
        "tuple",
        "lower",
        "upper",
        "offset",
        "multiplier",
        "print",
        "reject",
        "fatal_error",
        "return",
        "break",
        "continue",
        "void",
        "struct",
        "typedef",
        "export",
        "auto",
        "extern",
        "var",
        "static",
        "lp__",
        "profile",
        "get_lp",
        "complex_vector",
        "complex_row_vector",
        "complex_matrix",
        "sum_to_zero_vector",
        "sum_to_zero_matrix",
        "column_stochastic_matrix",
        "row_stochastic_matrix",
        "jacobian",
    ]
)

#: Names the generated Python programs use for modules and helpers.
PYTHON_GENERATED = frozenset(
    [
        "np",
        "pm",
        "pt",
        "jnp",
        "jax",
        "dist",
        "numpyro",
        "model",
        "data",
        "coords",
        "build_model",
        "generated",
        "generated_quantities",
        "GENERATED",
        "main",
        "sys",
        "json",
        "math",
    ]
)

#: The sample dims of ArviZ's results, refused as any name, with what each holds.
ARVIZ_RESERVED: dict[str, str] = {"chain": "the chains", "draw": "the draws"}

#: Dims that ArviZ and the comparison add to posterior quantities, refused in the posterior only.
POSTERIOR_RESERVED: dict[str, str] = {
    "sample": "ArviZ's extract and crossppl's comparison stack chain and draw into a dim 'sample'",
    "quantile": "posterior quantiles (Dataset.quantile) lie along a dim 'quantile'",
}

#: Every reserved name, with the reason it is reserved.
RESERVED: dict[str, str] = {}
for _name in STAN_RESERVED:
    RESERVED[_name] = "a Stan keyword"
for _name in keyword.kwlist + keyword.softkwlist:
    RESERVED[_name] = "a Python keyword"
for _name in PYTHON_GENERATED:
    RESERVED[_name] = "a name the generated Python programs use"
for _name in FUNCTIONS:
    RESERVED[_name] = "a function of the spec language"
for _name, _what in ARVIZ_RESERVED.items():
    RESERVED[_name] = (f"ArviZ's results use it as the dim of {_what}, which a dim or "
                       "variable of that name clashes with")


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot name a dim or variable, or None if it can."""
    if not IDENTIFIER.fullmatch(name):
        return (
            "not a valid name (start with a letter; then letters, digits or _; "
            "at most 64 characters)"
        )
    if name in RESERVED:
        return RESERVED[name]
    if name.endswith("__"):
        return "names ending in '__' are reserved by Stan"
    if name.startswith("N_"):
        return "names starting with 'N_' are reserved for dim sizes in generated programs"
    if name.endswith(("_lpdf", "_lpmf", "_lcdf", "_lccdf", "_rng", "_lupdf", "_lupmf")):
        return "Stan reserves this suffix for distribution functions"
    return None
