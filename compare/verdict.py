"""From diagnostics, density checks and agreement tests to one verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from .density import DensityCheck

__all__ = ["EXIT_CODES", "Source", "Verdict", "decide"]

#: Exit codes of ``crossppl compare`` by verdict.
EXIT_CODES = {"match": 0, "mismatch": 1, "inconclusive": 3}


@dataclass
class Source:
    """One posterior being compared: a backend's generated program, a hand-written program, or a
    reference. ``ok`` is False when it failed to run or failed the diagnostics gate."""

    name: str
    kind: str  # "generated", "program" or "reference"
    engine: str = ""
    ran: bool = True
    seconds: float = 0.0
    error: str = ""
    diagnostics: object = None
    summary: pd.DataFrame | None = None
    idata: object = None
    attrs: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Ran, and (for sampled sources) passed the diagnostics gate."""
        if not self.ran:
            return False
        return self.diagnostics is None or bool(self.diagnostics.ok)

    @property
    def problem(self) -> str:
        """Why this source cannot support a verdict ("" when it can)."""
        if not self.ran:
            return f"{self.name} failed to run: {self.error}"
        if self.diagnostics is not None and not self.diagnostics.ok:
            return f"{self.name} failed its diagnostics: {'; '.join(self.diagnostics.reasons)}"
        return ""


@dataclass(frozen=True)
class Verdict:
    """``kind`` is "match", "mismatch" or "inconclusive"; ``reasons`` say why."""

    kind: str
    reasons: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """The CLI exit code of this verdict."""
        return EXIT_CODES[self.kind]


def decide(
    sources: list[Source], tests: pd.DataFrame, density: DensityCheck | None
) -> Verdict:
    """Mismatch if the programs' densities differ or a test between healthy sources rejects
    (each pair of sources is its own family of tests, so a pair's result does not depend on the
    other sources of the run); otherwise inconclusive if any source failed to run or its
    diagnostics; otherwise match."""
    mismatches = []
    if density is not None:
        for _, row in density.pairs[~density.pairs["constant"]].iterrows():
            mismatches.append(_density_reason(row, density))
    rejected = tests[tests["reject"]] if len(tests) else tests
    for pair, group in rejected.groupby("pair", sort=False) if len(rejected) else ():
        mismatches.extend(_pair_reasons(pair, group, tests, density))
    if mismatches:
        return Verdict("mismatch", tuple(mismatches))
    problems = [s.problem for s in sources if not s.ok]
    if problems:
        return Verdict("inconclusive", tuple(problems))
    if sum(1 for s in sources if s.ok) < 2:
        return Verdict("inconclusive", ("fewer than two posteriors to compare",))
    n = int((tests["note"] == "").sum()) if len(tests) else 0
    return Verdict("match", (f"{n} tests, none rejected",))


def _density_reason(row: pd.Series, density: DensityCheck) -> str:
    """Why a pair's densities differ: the whole density's spread against its tolerance, and
    each culprit variable's term spread against that term's own tolerance."""
    pair = row["pair"]
    tol = row.get("tolerance", math.nan)
    whole = f"spread {row['spread']:.3g}" + (f", tolerance {tol:.2g}" if _finite(tol) else "")
    culprits = density.culprits(pair)
    if not culprits:
        return f"log densities of {pair} differ by a non-constant amount ({whole})"
    terms = density.terms[(density.terms["pair"] == pair)
                          & density.terms["variable"].isin(culprits)]
    each = "; ".join(
        f"terms of {t.variable} differ (spread {t.spread:.3g}"
        + (f", tolerance {t.tolerance:.2g})" if _finite(getattr(t, "tolerance", math.nan))
           else ")")
        for t in terms.itertuples())
    if row.get("density_constant", False):
        return (f"log densities of {pair}: {each}; a slip too small for the whole density's "
                f"tolerance ({whole})")
    return f"log densities of {pair} differ by a non-constant amount ({whole}); {each}"


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


#: A rejected |z| below this multiple of its threshold is "just past" it.
JUST_PAST = 1.5


def _pair_reasons(pair: str, group: pd.DataFrame, tests: pd.DataFrame,
                  density: DensityCheck | None) -> list[str]:
    """Why ``pair`` is a mismatch: its rejected tests (z against the |z| each needed) and, when
    the pair's programs define the same density, that the difference is in the draws and what
    to do next."""
    top = group.sort_values("p").head(5)
    flagged = ", ".join(f"{r.parameter} {r.statistic} (z={r.z:.1f}{_needed(r)})"
                        for r in top.itertuples())
    more = f" and {len(group) - 5} more" if len(group) > 5 else ""
    reasons = [f"{pair}: {flagged}{more}"]
    same = _same_density(pair, density)
    if same:
        n = int(((tests["pair"] == pair) & (tests["note"] == "")).sum())
        crit = group["z_crit"] if "z_crit" in group else pd.Series(math.nan, group.index)
        near = bool((group["z"].abs() < JUST_PAST * crit).all())
        how = "just past its threshold" if len(group) == 1 else "just past their thresholds"
        reasons.append(
            f"{pair}: the programs define the same density (log densities equal up to a constant "
            f"at {density.n_points} points), so the difference is in the draws: "
            f"{len(group)} of {n} tests rejected{', ' + how if near else ''}. Rerun with more "
            "draws (--draws) or another seed (--seed): Monte Carlo noise does not repeat, a real "
            "difference between the samplers does."
        )
    return reasons


def _needed(row) -> str:
    crit = getattr(row, "z_crit", math.nan)
    return f", needed |z| >= {crit:.2f}" if math.isfinite(crit) else ""


def _same_density(pair: str, density: DensityCheck | None) -> bool:
    """Whether the density check compared ``pair``'s two programs and found them equal."""
    if density is None or not len(density.pairs):
        return False
    a, _, b = pair.partition(" vs ")
    rows = density.pairs[((density.pairs["a"] == a) & (density.pairs["b"] == b))
                         | ((density.pairs["a"] == b) & (density.pairs["b"] == a))]
    return bool(len(rows)) and bool(rows["constant"].all())
