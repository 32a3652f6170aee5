"""From diagnostics, density checks and agreement tests to one verdict."""

from __future__ import annotations

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
    """Mismatch if the programs' densities differ or a test between healthy sources rejects;
    otherwise inconclusive if any source failed to run or its diagnostics; otherwise match."""
    mismatches = []
    if density is not None:
        for _, row in density.pairs[~density.pairs["constant"]].iterrows():
            culprits = density.culprits(row["pair"])
            where = f" (terms of {', '.join(culprits)} differ)" if culprits else ""
            mismatches.append(
                f"log densities of {row['pair']} differ by a non-constant amount "
                f"(spread {row['spread']:.3g}){where}"
            )
    rejected = tests[tests["reject"]] if len(tests) else tests
    for pair, group in rejected.groupby("pair", sort=False) if len(rejected) else ():
        flagged = ", ".join(
            f"{r.parameter} {r.statistic} (z={r.z:.1f})"
            for r in group.sort_values("p").head(5).itertuples()
        )
        more = f" and {len(group) - 5} more" if len(group) > 5 else ""
        mismatches.append(f"{pair}: {flagged}{more}")
    if mismatches:
        return Verdict("mismatch", tuple(mismatches))
    problems = [s.problem for s in sources if not s.ok]
    if problems:
        return Verdict("inconclusive", tuple(problems))
    if sum(1 for s in sources if s.ok) < 2:
        return Verdict("inconclusive", ("fewer than two posteriors to compare",))
    n = int((tests["note"] == "").sum()) if len(tests) else 0
    return Verdict("match", (f"{n} tests, none rejected",))
