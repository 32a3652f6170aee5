"""Names a spec may not use: keywords and built-ins of the backends' languages."""

from __future__ import annotations

import keyword
import re

from .ir import FUNCTIONS

__all__ = ["IDENTIFIER", "RESERVED", "reserved_reason"]

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
