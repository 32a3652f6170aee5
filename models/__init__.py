"""The spec language: TOML specs parsed into an immutable, dim-aware IR."""

from .distributions import DISTRIBUTIONS, DistRow, Parameterization, Support
from .ir import Model
from .spec import bundled_specs, load_spec, parse_spec

__all__ = [
    "DISTRIBUTIONS",
    "DistRow",
    "Model",
    "Parameterization",
    "Support",
    "bundled_specs",
    "load_spec",
    "parse_spec",
]
