"""The terminal report: sources, density check, a side-by-side table, and the verdict line."""

from __future__ import annotations

import math

__all__ = ["render_text"]


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    a = abs(value)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{value:.2e}"
    return f"{value:.4g}" if a < 10 else f"{value:.2f}"


def _cell(text: str, width: int) -> str:
    """``text`` right-aligned in ``width`` columns, always after at least one space, so long
    numbers never run into their neighbour."""
    return " " + text.rjust(width - 1)


def _table(table, flagged: set, max_rows: int, tested: set) -> list[str]:
    """Parameter blocks, one row per source; vector elements only when flagged (or few)."""
    stats = ("mean", "sd", "q05", "q50", "q95")
    head = (f"  {'parameter':<14}{'source':<14}{'mean':>10}{'sd':>10}{'5%':>10}{'50%':>10}"
            f"{'95%':>10}{'ESS':>8}{'R-hat':>7}")
    out = ["posterior summaries; * marks a parameter with a rejected test", head]
    bad = {p for p, stat in flagged if stat in stats}
    shown = 0
    for variable, group in table.groupby("variable", sort=False):
        params = list(dict.fromkeys(group["parameter"]))
        vector = len(params) > 1 or params[0] != variable
        keep = [p for p in params if not vector or p in bad]
        if vector and not keep and len(params) > 3:
            verdict = "no test rejected" if variable in tested else "not tested"
            out.append(f"  {variable}[...]: {len(params)} elements, {verdict}")
            continue
        for p in keep or params:
            if shown >= max_rows:
                out.append("  ... more in the JSON/HTML report")
                return out
            shown += 1
            for i, r in enumerate(group[group["parameter"] == p].itertuples()):
                label = (("*" if p in bad else " ") + p) if i == 0 else ""
                ess = "-" if math.isnan(r.ess_bulk) else f"{r.ess_bulk:.0f}"
                rhat = "-" if math.isnan(r.r_hat) else f"{r.r_hat:.3f}"
                values = "".join(_cell(_fmt(v), 10) for v in (r.mean, r.sd, r.q05, r.q50, r.q95))
                out.append(f" {label[:15]:<15}{r.source[:13]:<14}{values}"
                           f"{_cell(ess, 8)}{_cell(rhat, 7)}")
    return out


def render_text(comparison, *, max_rows: int = 40) -> str:
    """Render ``comparison`` for a terminal (plain text, fixed-width)."""
    lines = [f"crossppl compare: {comparison.model}", ""]
    lines.append("sources:")
    for s in comparison.sources.values():
        if s.kind == "reference":
            state = f"reference {s.attrs.get('file', '')}"
        elif not s.ran:
            state = f"FAILED: {s.error.splitlines()[0] if s.error else ''}"
        elif s.diagnostics is not None and not s.diagnostics.ok:
            state = f"diagnostics FAILED: {'; '.join(s.diagnostics.reasons)}"
        else:
            d = s.diagnostics
            state = f"ok, {s.seconds:.1f} s, R-hat max {d.r_hat_max:.3f}, ESS min " \
                    f"{d.ess_bulk_min:.0f}"
            if d.divergences is not None:
                state += f", {d.divergences} divergences"
        engine = f" ({s.engine})" if s.engine else ""
        lines.append(f"  {s.name}{engine}: {state}")
        if s.kind != "reference" and s.attrs.get("algorithm", "NUTS") != "NUTS":
            ignored = str(s.attrs.get("settings_not_applied", "")).split()
            lines.append(f"    {s.attrs['algorithm']}, not NUTS" + (
                f": {', '.join(ignored)} do not apply" if ignored else ""))
    lines.append("")
    density = comparison.density
    if density is not None:
        lines.append(f"log density at {density.n_points} shared points:")
        for row in density.pairs.itertuples():
            mark = "same up to a constant" if row.constant else "DIFFERENT"
            culprits = density.culprits(row.pair)
            extra = f" (terms of {', '.join(culprits)})" if culprits else ""
            lines.append(f"  {row.pair}: spread {row.spread:.2e} -> {mark}{extra}")
        lines.append("")
    for note in comparison.notes:
        lines.append(f"note: {note}")
    table = comparison.table()
    if len(table):
        tests = comparison.tests
        tested = (set(tests.loc[tests["note"] == "", "variable"]) if len(tests) else set())
        lines.extend(_table(table, comparison.flagged(), max_rows, tested))
        lines.append("")
    tests = comparison.tests
    n_tested = int((tests["note"] == "").sum()) if len(tests) else 0
    n_rej = int(tests["reject"].sum()) if len(tests) else 0
    n_pairs = tests.loc[tests["note"] == "", "pair"].nunique() if len(tests) else 0
    lines.append(f"{n_tested} tests (mean, sd, 5/50/95% quantiles per element) in {n_pairs} "
                 f"pair(s) of sources, family-wise alpha {comparison.alpha} per pair (Holm): "
                 f"{n_rej} rejected")
    if n_pairs > 1:
        a = comparison.alpha
        lines.append(f"  (each pair decides alone: a run of correct programs with {n_pairs} pairs "
                     f"is flagged at most {n_pairs} x alpha = {min(1.0, n_pairs * a):.0%} of the "
                     f"time; --alpha {a / n_pairs:.2g} bounds the whole run at {a:.0%})")
    if len(comparison.pooled):
        worst = comparison.pooled["r_hat"].max()
        lines.append(f"pooled chains across sources: max R-hat {worst:.4f}")
    lines.append("")
    verdict = comparison.verdict
    lines.append(f"VERDICT: {verdict.kind.upper()}")
    lines.extend(f"  - {reason}" for reason in verdict.reasons)
    return "\n".join(lines) + "\n"
