"""The scipy reference of every distribution: ``(row name, parameterization key)`` -> the frozen
``scipy.stats`` distribution with those arguments.

Written from each distribution's definition, independently of the conversion table and of every
backend's rules, so that conformance checks (a backend's log density, its draws) against it
catch a wrong parameterization (an sd read as a precision, a rate as a scale) or a wrong
conversion. Arguments may be arrays (they broadcast, as scipy's do).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = ["REFERENCES", "log_density", "reference"]

Args = Mapping[str, Any]


def _sd(tau: Any) -> Any:
    """The standard deviation (scale) of precision ``tau``."""
    return 1 / np.sqrt(tau)


#: (row, parameterization) -> the scipy distribution given the arguments by name.
REFERENCES: dict[tuple[str, str], Callable[[Args], Any]] = {
    ("normal", "sigma"): lambda a: stats.norm(a["mu"], a["sigma"]),
    ("normal", "tau"): lambda a: stats.norm(a["mu"], _sd(a["tau"])),
    ("half_normal", "sigma"): lambda a: stats.halfnorm(scale=a["sigma"]),
    ("half_normal", "tau"): lambda a: stats.halfnorm(scale=_sd(a["tau"])),
    ("student_t", "sigma"): lambda a: stats.t(a["nu"], a["mu"], a["sigma"]),
    ("student_t", "tau"): lambda a: stats.t(a["nu"], a["mu"], _sd(a["tau"])),
    ("cauchy", "sigma"): lambda a: stats.cauchy(a["mu"], a["sigma"]),
    ("half_cauchy", "sigma"): lambda a: stats.halfcauchy(scale=a["sigma"]),
    ("lognormal", "sigma"): lambda a: stats.lognorm(a["sigma"], scale=np.exp(a["mu"])),
    ("lognormal", "tau"): lambda a: stats.lognorm(_sd(a["tau"]), scale=np.exp(a["mu"])),
    ("exponential", "rate"): lambda a: stats.expon(scale=1 / a["rate"]),
    ("exponential", "scale"): lambda a: stats.expon(scale=a["scale"]),
    ("gamma", "rate"): lambda a: stats.gamma(a["shape"], scale=1 / a["rate"]),
    ("gamma", "scale"): lambda a: stats.gamma(a["shape"], scale=a["scale"]),
    ("inverse_gamma", "scale"): lambda a: stats.invgamma(a["shape"], scale=a["scale"]),
    ("weibull", "sigma"): lambda a: stats.weibull_min(a["alpha"], scale=a["sigma"]),
    ("beta", "default"): lambda a: stats.beta(a["alpha"], a["beta"]),
    ("uniform", "default"): lambda a: stats.uniform(a["lower"], a["upper"] - a["lower"]),
    ("bernoulli", "p"): lambda a: stats.bernoulli(a["p"]),
    ("bernoulli", "logit_p"): lambda a: stats.bernoulli(special.expit(a["logit_p"])),
    ("binomial", "p"): lambda a: stats.binom(a["n"], a["p"]),
    ("binomial", "logit_p"): lambda a: stats.binom(a["n"], special.expit(a["logit_p"])),
    ("poisson", "rate"): lambda a: stats.poisson(a["rate"]),
    ("poisson", "log_rate"): lambda a: stats.poisson(np.exp(a["log_rate"])),
}


def reference(name: str, parameterization: str, args: Args) -> Any:
    """The frozen scipy distribution of row ``name`` in ``parameterization`` with ``args``."""
    return REFERENCES[name, parameterization](args)


def log_density(name: str, parameterization: str, value: Any, args: Args) -> Any:
    """scipy's log density (or log mass, for a discrete row) at ``value``, elementwise."""
    dist = reference(name, parameterization, args)
    return dist.logpmf(value) if isinstance(dist.dist, stats.rv_discrete) else dist.logpdf(value)
