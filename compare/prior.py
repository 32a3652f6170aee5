"""Agreement of prior predictive draws between sources, without MCMC.

Each source (a backend) simulates the model forward from its priors: parameters, derived and
generated quantities, and replicated data. Engines draw from different random streams, so the
draws can agree only in distribution, not to floating-point tolerance (that is what the
log-density check at fixed points is for). Every scalar element of every variable is compared by
a two-sample Kolmogorov-Smirnov test between each source and the first, and the share of usable
draws by Fisher's exact test; Holm's correction keeps the family-wise false-alarm rate at
``alpha``.

Usable draws. Vague priors make forward simulation overflow: a Gamma(0.001, 0.001) precision
underflows to 0 in about half the draws, so a scale ``1 / sqrt(tau)`` is infinite. Engines differ
in what they do then: NumPyro and PyMC return inf or nan; Stan's RNGs refuse an infinite scale or
a Poisson rate of 2^30 or more and write the WHOLE draw as NaN. So a draw is used only when every
value in it is finite and every count is below :data:`LIMIT` (2^30), in every source alike: the
draws Stan refuses are among those, so all sources are compared on the same event. (Huge but
finite continuous values are kept: under Gamma(0.001, 0.001) precisions most scales exceed 10^4.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .agreement import holm

__all__ = ["LIMIT", "MIN_USABLE", "PriorAgreement", "prior_agreement", "prior_verdict",
           "usable_rows"]

#: Draws holding a count this large (or any non-finite value) are left out, in every source
#: alike: Stan's RNGs refuse Poisson rates of 2^30 and more (and infinite scales) and then write
#: the draw as NaN.
LIMIT = 2.0**30
#: Fewest usable draws per source for the tests to be run at all.
MIN_USABLE = 100

COLUMNS = ["variable", "element", "test", "a", "b", "statistic", "p", "reject"]


@dataclass(frozen=True)
class PriorAgreement:
    """The outcome of :func:`prior_agreement`.

    Attributes
    ----------
    ok
        True when no test rejects and every source had enough usable draws.
    tests
        One row per test: variable, element (e.g. ``"[2, 0]"``), test (``"ks"`` or
        ``"usable share"``), sources ``a`` and ``b``, statistic, p, and Holm's reject.
    usable
        Source -> share of its draws that were usable.
    problems
        Human-readable reasons when ``ok`` is False.
    """

    ok: bool
    tests: pd.DataFrame
    usable: dict[str, float]
    problems: tuple[str, ...]

    def worst(self, n: int = 5) -> pd.DataFrame:
        """The ``n`` tests with the smallest p."""
        return self.tests.nsmallest(n, "p")


def usable_rows(draws: Mapping[str, np.ndarray], counts: Iterable[str] = ()) -> np.ndarray:
    """Boolean mask of the draws whose every value is finite, and every value of the variables
    named in ``counts`` below :data:`LIMIT` in magnitude."""
    counts = set(counts)
    mask = None
    for name, arr in draws.items():
        values = np.asarray(arr, dtype=float)
        flat = values.reshape(values.shape[0], -1)
        ok = np.isfinite(flat)
        if name in counts:
            ok &= np.abs(flat) < LIMIT
        ok = np.all(ok, axis=1)
        mask = ok if mask is None else mask & ok
    if mask is None:
        raise ValueError("no variables to compare")
    return mask


def prior_agreement(
    sources: Mapping[str, Mapping[str, np.ndarray]],
    *,
    counts: Iterable[str] = (),
    alpha: float = 0.01,
) -> PriorAgreement:
    """Compare prior predictive draws of several sources.

    Parameters
    ----------
    sources
        Source name -> variable name -> draws of shape ``(draws, *dims)``; every source must
        hold the same variables with the same trailing shapes (the first is the baseline).
    counts
        The variables that are counts (Poisson, binomial): see :data:`LIMIT`.
    alpha
        Family-wise false-alarm rate over all tests (Holm).
    """
    names = list(sources)
    if len(names) < 2:
        raise ValueError(f"need at least two sources to compare, found {names}")
    base = names[0]
    variables = list(sources[base])
    problems: list[str] = []
    for name in names[1:]:
        if sorted(sources[name]) != sorted(variables):
            missing = sorted(set(variables) ^ set(sources[name]))
            problems.append(f"{name} and {base} differ in their variables: {missing}")
        for var in set(variables) & set(sources[name]):
            a, b = np.shape(sources[base][var])[1:], np.shape(sources[name][var])[1:]
            if a != b:
                problems.append(f"{var}: shape {b} in {name} but {a} in {base}")
    if problems:
        return PriorAgreement(False, pd.DataFrame(columns=COLUMNS), {}, tuple(problems))
    masks = {name: usable_rows(sources[name], counts) for name in names}
    usable = {name: float(mask.mean()) for name, mask in masks.items()}
    for name, mask in masks.items():
        if mask.sum() < MIN_USABLE:
            problems.append(f"{name}: only {mask.sum()} usable prior draws (need {MIN_USABLE})")
    if problems:
        return PriorAgreement(False, pd.DataFrame(columns=COLUMNS), usable, tuple(problems))
    rows = []
    for name in names[1:]:
        counts = [[int(m.sum()), int((~m).sum())] for m in (masks[base], masks[name])]
        odds, p = stats.fisher_exact(counts)
        rows.append(("*", "", "usable share", base, name, float(odds), float(p)))
        for var in variables:
            a = np.asarray(sources[base][var], dtype=float)[masks[base]]
            b = np.asarray(sources[name][var], dtype=float)[masks[name]]
            for index in np.ndindex(a.shape[1:]):
                # asymptotic p: at >= MIN_USABLE draws it is accurate, and the exact method
                # fails (with a warning) on the ties of discrete draws
                res = stats.ks_2samp(a[(slice(None), *index)], b[(slice(None), *index)],
                                     method="asymp")
                element = f"[{', '.join(map(str, index))}]" if index else ""
                rows.append((var, element, "ks", base, name, float(res.statistic),
                             float(res.pvalue)))
    tests = pd.DataFrame(rows, columns=COLUMNS[:-1])
    tests["reject"] = holm(tests["p"].to_numpy(), alpha)
    for row in tests[tests["reject"]].itertuples():
        problems.append(
            f"{row.variable}{row.element}: {row.test} differs between {row.a} and {row.b} "
            f"(statistic {row.statistic:.3g}, p {row.p:.2g})"
        )
    return PriorAgreement(not problems, tests, usable, tuple(problems))


def prior_verdict(agreement: PriorAgreement | None, *, failed: bool = False) -> str:
    """The verdict on prior predictive draws: ``"match"``, ``"mismatch"`` or ``"inconclusive"``.

    Parameters
    ----------
    agreement
        The tests of the sources that produced draws; None when fewer than two did.
    failed
        Whether a source produced no draws.

    Returns
    -------
    str
        ``"mismatch"`` when a test rejects or the sources' variables differ (a disagreement
        outweighs a failure); ``"inconclusive"`` when fewer than two sources produced draws, one
        failed, or too few draws were usable; else ``"match"``.
    """
    if agreement is None:
        return "inconclusive"
    rejected = len(agreement.tests) > 0 and bool(agreement.tests["reject"].any())
    if rejected or (not agreement.ok and not agreement.usable):  # tests fail, or variables differ
        return "mismatch"
    if failed or not agreement.ok:  # a backend failed, or too few usable draws
        return "inconclusive"
    return "match"
