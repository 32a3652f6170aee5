"""The distribution table: one row per distribution, one entry per parameterization.

Generators read this table to know what a distribution is (its parameters, its support); each
backend keeps its own table of how to write every ``(row name, parameterization key)`` pair and
raises :class:`~crossppl.errors.NotYetTranslated` for a pair it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DISTRIBUTIONS", "DistRow", "Parameterization", "Support", "lookup"]


@dataclass(frozen=True, slots=True)
class Support:
    """The support of a distribution, which sets a parameter's constraint.

    ``kind`` is one of ``"real"``, ``"positive"``, ``"unit"`` (0, 1), ``"interval"`` (between the
    arguments named ``lower`` and ``upper``), ``"binary"``, ``"count"`` (0, 1, ...) and
    ``"bounded_count"`` (0..n, with ``n`` the argument named ``upper``).
    """

    kind: str
    lower: str | None = None
    upper: str | None = None

    @property
    def discrete(self) -> bool:
        """Whether the support is a set of integers."""
        return self.kind in ("binary", "count", "bounded_count")


@dataclass(frozen=True, slots=True)
class Parameterization:
    """One way of writing a distribution's arguments.

    ``positive`` lists the arguments that must be > 0, ``unit`` those in [0, 1] and ``integer``
    those that must be integers; they are checked on constants when a spec is parsed.
    """

    key: str
    params: tuple[str, ...]
    positive: tuple[str, ...] = ()
    unit: tuple[str, ...] = ()
    integer: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DistRow:
    """A distribution of the spec language; the first parameterization is the default."""

    name: str
    parameterizations: tuple[Parameterization, ...]
    support: Support
    summary: str

    def parameterization(self, key: str) -> Parameterization:
        """Return the parameterization with ``key``."""
        return next(p for p in self.parameterizations if p.key == key)

    def signature(self) -> str:
        """Human-readable list of the accepted argument lists."""
        return " | ".join(f"{self.name}({', '.join(p.params)})" for p in self.parameterizations)


P = Parameterization
REAL, POSITIVE, UNIT = Support("real"), Support("positive"), Support("unit")

DISTRIBUTIONS: dict[str, DistRow] = {
    row.name: row
    for row in (
        DistRow(
            "normal",
            (P("sigma", ("mu", "sigma"), positive=("sigma",)),
             P("tau", ("mu", "tau"), positive=("tau",))),
            REAL,
            "Normal with standard deviation sigma or precision tau = 1 / sigma^2",
        ),
        DistRow(
            "half_normal",
            (P("sigma", ("sigma",), positive=("sigma",)),
             P("tau", ("tau",), positive=("tau",))),
            POSITIVE,
            "Normal(0, sigma) folded at 0; or with precision tau",
        ),
        DistRow(
            "student_t",
            (P("sigma", ("nu", "mu", "sigma"), positive=("nu", "sigma")),
             P("tau", ("nu", "mu", "tau"), positive=("nu", "tau"))),
            REAL,
            "Student t with nu degrees of freedom, location mu, scale sigma or precision tau",
        ),
        DistRow(
            "cauchy",
            (P("sigma", ("mu", "sigma"), positive=("sigma",)),),
            REAL,
            "Cauchy with location mu and scale sigma",
        ),
        DistRow(
            "half_cauchy",
            (P("sigma", ("sigma",), positive=("sigma",)),),
            POSITIVE,
            "Cauchy(0, sigma) folded at 0",
        ),
        DistRow(
            "lognormal",
            (P("sigma", ("mu", "sigma"), positive=("sigma",)),
             P("tau", ("mu", "tau"), positive=("tau",))),
            POSITIVE,
            "log(value) is Normal(mu, sigma), or with precision tau",
        ),
        DistRow(
            "exponential",
            (P("rate", ("rate",), positive=("rate",)),
             P("scale", ("scale",), positive=("scale",))),
            POSITIVE,
            "Exponential with rate (mean 1 / rate) or scale (mean scale)",
        ),
        DistRow(
            "gamma",
            (P("rate", ("shape", "rate"), positive=("shape", "rate")),
             P("scale", ("shape", "scale"), positive=("shape", "scale"))),
            POSITIVE,
            "Gamma with shape and rate (mean shape / rate), or shape and scale",
        ),
        DistRow(
            "inverse_gamma",
            (P("scale", ("shape", "scale"), positive=("shape", "scale")),),
            POSITIVE,
            "1 / value is Gamma(shape, rate=scale)",
        ),
        DistRow(
            "weibull",
            (P("sigma", ("alpha", "sigma"), positive=("alpha", "sigma")),),
            POSITIVE,
            "Weibull with shape alpha and scale sigma",
        ),
        DistRow(
            "beta",
            (P("default", ("alpha", "beta"), positive=("alpha", "beta")),),
            UNIT,
            "Beta on (0, 1)",
        ),
        DistRow(
            "uniform",
            (P("default", ("lower", "upper")),),
            Support("interval", lower="lower", upper="upper"),
            "Uniform on (lower, upper)",
        ),
        DistRow(
            "bernoulli",
            (P("p", ("p",), unit=("p",)), P("logit_p", ("logit_p",))),
            Support("binary"),
            "0/1 outcome with probability p, or log-odds logit_p",
        ),
        DistRow(
            "binomial",
            (P("p", ("n", "p"), unit=("p",), integer=("n",)),
             P("logit_p", ("n", "logit_p"), integer=("n",))),
            Support("bounded_count", upper="n"),
            "successes in n trials with probability p, or log-odds logit_p",
        ),
        DistRow(
            "poisson",
            (P("rate", ("rate",), positive=("rate",)), P("log_rate", ("log_rate",))),
            Support("count"),
            "counts with mean rate, or log of the mean log_rate",
        ),
    )
}


def lookup(name: str) -> DistRow | None:
    """Return the row called ``name``, or None."""
    return DISTRIBUTIONS.get(name)
