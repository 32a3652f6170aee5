"""Assertions for users' own test suites."""

from __future__ import annotations

from collections.abc import Sequence

from crossppl.datatree import as_datatree

__all__ = ["assert_posteriors_match"]


def assert_posteriors_match(
    *idatas,
    names: Sequence[str] | None = None,
    var_names: Sequence[str] | None = None,
    alpha: float = 0.05,
    check_diagnostics: bool = True,
) -> None:
    """Assert that two or more posteriors agree.

    Each is an ``xarray.DataTree`` with a ``posterior`` group (what :func:`crossppl.fit`,
    ``pm.sample``, nutpie and ``arviz_base.from_numpyro`` return), or anything ArviZ converts
    to one (an ArviZ 0.x ``InferenceData`` included).

    Runs crossppl's tests (mean, sd, 5/50/95% quantiles of every shared element, scaled by
    MCSEs, Holm at family-wise ``alpha``) on the shared variables (or ``var_names``).

    Raises
    ------
    AssertionError
        Listing the rejected tests, or the failed diagnostics when ``check_diagnostics``
        (a failed fit cannot show agreement).
    """
    # lazy: the statistics load SciPy, pandas and ArviZ
    from crossppl.compare.agreement import pairwise_tests
    from crossppl.compare.diagnostics import diagnose
    from crossppl.compare.summary import summarize

    if len(idatas) < 2:
        raise TypeError("assert_posteriors_match needs at least two posteriors, found "
                        f"{len(idatas)}")
    idatas = tuple(as_datatree(i, f"posterior {k}") for k, i in enumerate(idatas))
    labels = list(names) if names else [f"posterior_{i}" for i in range(len(idatas))]
    if len(labels) != len(idatas):
        raise TypeError(f"names has {len(labels)} entries for {len(idatas)} posteriors")
    shared = set.intersection(*(set(i.posterior.data_vars) for i in idatas))
    chosen = [v for v in (var_names or sorted(shared))]
    missing = [v for v in chosen if v not in shared]
    if missing:
        raise AssertionError(f"variables not in every posterior: {', '.join(missing)}")
    summaries = {}
    problems = []
    for label, idata in zip(labels, idatas, strict=True):
        summary = summarize(idata.posterior, chosen)
        summaries[label] = summary
        if check_diagnostics:
            diag = diagnose(idata, summary)
            if not diag.ok:
                problems.append(f"{label}: {'; '.join(diag.reasons)}")
    if problems:
        raise AssertionError("diagnostics failed, agreement cannot be shown: "
                             + " | ".join(problems))
    tests = pairwise_tests(summaries, alpha=alpha)
    rejected = tests[tests["reject"]].sort_values("p")
    if len(rejected):
        lines = [f"{r.pair}: {r.parameter} {r.statistic} {r.value_a:.4g} vs {r.value_b:.4g} "
                 f"(z={r.z:.1f}, p={r.p:.1e})" for r in rejected.head(20).itertuples()]
        raise AssertionError(
            f"{len(rejected)} of {int((tests['note'] == '').sum())} tests rejected at "
            f"family-wise alpha {alpha}:\n  " + "\n  ".join(lines)
        )
