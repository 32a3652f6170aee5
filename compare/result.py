"""The result of a comparison: the verdict, the evidence, and the report writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .density import DensityCheck
from .reference import write_reference
from .report_html import write_html
from .report_json import to_json_dict, write_json
from .report_text import render_text
from .verdict import Source, Verdict

__all__ = ["Comparison"]

TABLE_COLUMNS = ["mean", "sd", "mcse_mean", "q05", "q50", "q95", "ess_bulk", "r_hat"]


@dataclass
class Comparison:
    """Everything a comparison found.

    Attributes
    ----------
    model
        The model's name.
    verdict
        :class:`~crossppl.compare.verdict.Verdict` (``.kind`` is "match", "mismatch" or
        "inconclusive"; ``.reasons``; ``.exit_code``).
    sources
        Each posterior compared (backends, hand-written programs, references), by name.
    tests
        One row per test: parameter, statistic, pair, z, p, reject, note.
    density
        The log-density check, or None when it could not run.
    pooled
        Rank-normalized R-hat over the chains of all sampled sources pooled (a second view).
    alpha
        The family-wise false-alarm rate the tests were run at (Holm).
    """

    model: str
    verdict: Verdict
    sources: dict[str, Source]
    tests: pd.DataFrame
    density: DensityCheck | None
    pooled: pd.DataFrame
    alpha: float
    notes: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """The CLI exit code: 0 match, 1 mismatch, 3 inconclusive."""
        return self.verdict.exit_code

    def table(self) -> pd.DataFrame:
        """Tidy table: one row per (parameter, source) with mean, sd, quantiles, ESS, R-hat."""
        frames = []
        for name, source in self.sources.items():
            if source.summary is None:
                continue
            frame = source.summary.reindex(columns=["variable", *TABLE_COLUMNS]).copy()
            frame.insert(0, "source", name)
            frame.insert(0, "parameter", frame.index)
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=["parameter", "source", "variable", *TABLE_COLUMNS])
        return pd.concat(frames, ignore_index=True)

    def flagged(self) -> set[tuple[str, str]]:
        """(parameter, statistic) pairs with a rejected test."""
        if not len(self.tests):
            return set()
        rej = self.tests[self.tests["reject"]]
        return set(zip(rej["parameter"], rej["statistic"], strict=True))

    def to_text(self, *, max_rows: int = 40) -> str:
        """The terminal report."""
        return render_text(self, max_rows=max_rows)

    def to_dict(self) -> dict:
        """The JSON report as a dict (schema in the README)."""
        return to_json_dict(self)

    def write_json(self, path: str | Path) -> Path:
        """Write the JSON report."""
        return write_json(self, path)

    def write_html(self, path: str | Path) -> Path:
        """Write the self-contained HTML report."""
        return write_html(self, path)

    def save_reference(self, path: str | Path, source: str | None = None) -> Path:
        """Store one source's summaries (default: the first healthy sampled one) as a reference
        file that ``reference=`` reads back, with versions and seeds."""
        candidates = [s for s in self.sources.values() if s.kind != "reference" and s.ok]
        chosen = self.sources[source] if source else (candidates[0] if candidates else None)
        if chosen is None or chosen.summary is None:
            raise ValueError("no healthy sampled source to save as a reference")
        meta = {"model": self.model, "source": chosen.name, "engine": chosen.engine,
                **{k: v for k, v in chosen.attrs.items()
                   if k.startswith(("version_", "config_")) or k == "program_sha256"}}
        return write_reference(path, chosen.summary, metadata=meta)
