"""One self-contained HTML report: verdict, table, forest plots and posterior densities.

Plots are drawn with matplotlib (Agg) as inline SVG: the file needs nothing else to render.
"""

from __future__ import annotations

import html
import io
import math
import re
from pathlib import Path

import numpy as np

__all__ = ["render_html", "write_html"]

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
.verdict{font-size:1.4em;font-weight:bold;padding:.5em 1em;border-radius:6px;display:inline-block}
.match{background:#e3f4e1;color:#1b5e20}.mismatch{background:#fde0dc;color:#b71c1c}
.inconclusive{background:#fff4d6;color:#8a5a00}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} tr.flag td{background:#fde0dc}
tr.first td{border-top:2px solid #bbb}
.bad{color:#b71c1c;font-weight:bold} .ok{color:#1b5e20}
figure{margin:1em 0} svg{max-width:100%;height:auto}
"""


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    a = abs(x)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{x:.3e}"
    return f"{x:.4g}"


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # RDF boilerplate
    return text[text.index("<svg"):]


#: A source's interval where it gives no quantiles (a summary-only reference): mean +- Z90 sd,
#: which is the 5%-95% interval if the posterior is normal, and labelled as what it is.
Z90 = 1.6448536269514722
SD_ONLY = "mean ± 1.645 sd, no quantiles given"


def _interval(row) -> tuple[str, float, float, float] | None:
    """``("quantiles", q05, q50, q95)`` for a row with all three, else ``("sd", mean - Z90 sd,
    mean, mean + Z90 sd)`` for a row with mean and sd, else None (nothing to draw)."""
    q05, q50, q95, mean, sd = (float(row[k]) for k in ("q05", "q50", "q95", "mean", "sd"))
    if all(map(math.isfinite, (q05, q50, q95))):
        return "quantiles", q05, q50, q95
    if math.isfinite(mean) and math.isfinite(sd):
        return "sd", mean - Z90 * sd, mean, mean + Z90 * sd
    return None


def _forest_figure(comparison):
    """The forest plot: per parameter, each source's median and 5%-95% quantiles (a circle on a
    solid line), or, for a source that gives only mean and sd, mean +- 1.645 sd (a square on a
    dashed line, labelled so in the legend); None without rows. Also returns the sources drawn
    the second way."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    table = comparison.table()
    if not len(table):
        return None, []
    sources = list(dict.fromkeys(table["source"]))
    variables = list(dict.fromkeys(table["variable"]))
    heights = [max(1.6, len(set(table[table["variable"] == v]["parameter"]))) for v in variables]
    fig, axes = plt.subplots(
        len(variables), 1, figsize=(8, 1.1 + 0.28 * sum(heights) + 0.35 * len(variables)),
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )
    kinds: dict[str, set[str]] = {source: set() for source in sources}
    for ax, var in zip(axes[:, 0], variables, strict=True):
        sub = table[table["variable"] == var]
        params = list(dict.fromkeys(sub["parameter"]))
        for j, source in enumerate(sources):
            rows = sub[sub["source"] == source].set_index("parameter")
            offset = (j - (len(sources) - 1) / 2) * 0.8 / max(1, len(sources))
            color = COLORS[j % len(COLORS)]
            for i, p in enumerate(params):
                drawn = _interval(rows.loc[p]) if p in rows.index else None
                if drawn is None:
                    continue
                kind, lo, mid, hi = drawn
                kinds[source].add(kind)
                y = len(params) - 1 - i + offset
                ax.plot([lo, hi], [y, y], color=color, lw=1.2,
                        ls="-" if kind == "quantiles" else "--")
                ax.plot([mid], [y], "o" if kind == "quantiles" else "s", color=color, ms=3)
        ax.set_ylim(-0.6, len(params) - 0.4)
        ax.set_yticks(range(len(params)))
        ax.set_yticklabels(list(reversed(params)), fontsize=7)
        ax.set_title(var, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = [], []
    for j, source in enumerate(sources):
        color = COLORS[j % len(COLORS)]
        if "quantiles" in kinds[source] or not kinds[source]:
            handles.append(plt.Line2D([], [], color=color, marker="o", ms=4, lw=1.2))
            labels.append(source)
        if "sd" in kinds[source]:
            handles.append(plt.Line2D([], [], color=color, marker="s", ms=4, lw=1.2, ls="--"))
            labels.append(f"{source}: {SD_ONLY}")
    fig.legend(handles, labels, loc="upper center", fontsize=8, frameon=False,
               ncol=min(len(handles), 4 if len(handles) <= 4 else 3))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig, [source for source in sources if "sd" in kinds[source]]


def _densities(comparison) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from scipy.stats import gaussian_kde

    sampled = {n: s for n, s in comparison.sources.items() if s.idata is not None}
    if not sampled:
        return ""
    first = next(iter(sampled.values())).idata.posterior
    scalars = [v for v in first.data_vars if first[v].ndim == 2]
    if not scalars:
        return ""
    cols = min(3, len(scalars))
    rows = math.ceil(len(scalars) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.4 * rows), squeeze=False)
    names = list(comparison.sources)
    for ax, var in zip(axes.flat, scalars, strict=False):
        for name, source in comparison.sources.items():
            color = COLORS[names.index(name) % len(COLORS)]
            if source.idata is not None and var in source.idata.posterior:
                x = np.asarray(source.idata.posterior[var]).reshape(-1)
                x = x[np.isfinite(x)]
                lo, hi = np.quantile(x, [0.001, 0.999])
                grid = np.linspace(lo, hi, 200)
                if np.ptp(x) > 0:
                    ax.plot(grid, gaussian_kde(x)(grid), color=color, lw=1.3, label=name)
            elif source.summary is not None and var in source.summary.index:
                ax.axvline(float(source.summary.loc[var, "mean"]), color=color, ls="--",
                           lw=1, label=f"{name} mean")
        ax.set_title(var, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(scalars):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return _svg(fig)


def _by_parameter(table):
    """The summary table sorted by parameter, then source, so that the sources of one
    parameter sit side by side: variables in the model's order, elements in their order
    (``alpha[2]`` before ``alpha[10]``), each as the first source that has it lists them;
    sources in the comparison's order."""
    order = {column: {value: i for i, value in enumerate(dict.fromkeys(table[column]))}
             for column in ("variable", "parameter", "source")}
    keys = table.assign(**{f"_{c}": table[c].map(o) for c, o in order.items()})
    return table.loc[keys.sort_values(["_variable", "_parameter", "_source"],
                                      kind="stable").index]


def render_html(comparison) -> str:
    """The report as one HTML string."""
    esc = html.escape
    v = comparison.verdict
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>crossppl: {esc(comparison.model)} – {esc(v.kind)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>crossppl compare: {esc(comparison.model)}</h1>",
        f"<div class='verdict {esc(v.kind)}' id='verdict'>{esc(v.kind.upper())}</div>",
        "<ul>" + "".join(f"<li>{esc(r)}</li>" for r in v.reasons) + "</ul>",
        "<h2>Sources</h2><table><tr><th class='l'>source</th><th class='l'>engine</th>"
        "<th class='l'>algorithm</th><th>seconds</th><th>R-hat max</th><th>ESS min</th>"
        "<th>divergences</th><th class='l'>status</th></tr>",
    ]
    for s in comparison.sources.values():
        d = s.diagnostics
        algorithm = s.attrs.get("algorithm", "–" if s.kind == "reference" or not s.ran else "")
        ignored = str(s.attrs.get("settings_not_applied", "")).split()
        if ignored:
            algorithm += f": {', '.join(ignored)} do not apply"
        status = ("<span class='ok'>ok</span>" if s.ok else
                  f"<span class='bad'>{esc(s.problem)}</span>")
        parts.append(
            f"<tr><td class='l'>{esc(s.name)}</td><td class='l'>{esc(s.engine or s.kind)}</td>"
            f"<td class='l'>{esc(algorithm)}</td><td>{s.seconds:.1f}</td>"
            f"<td>{_fmt(d.r_hat_max) if d else '–'}</td>"
            f"<td>{_fmt(d.ess_bulk_min) if d else '–'}</td>"
            f"<td>{d.divergences if d and d.divergences is not None else '–'}</td>"
            f"<td class='l'>{status}</td></tr>"
        )
    parts.append("</table>")
    if comparison.density is not None:
        parts.append(f"<h2>Log density at {comparison.density.n_points} shared points</h2>"
                     "<table><tr><th class='l'>pair</th><th>spread of difference</th>"
                     "<th class='l'>same density?</th></tr>")
        for r in comparison.density.pairs.itertuples():
            ok = "<span class='ok'>yes (up to a constant)</span>" if r.constant else (
                "<span class='bad'>NO</span>")
            parts.append(f"<tr><td class='l'>{esc(r.pair)}</td><td>{r.spread:.2e}</td>"
                         f"<td class='l'>{ok}</td></tr>")
        parts.append("</table>")
    for note in comparison.notes:
        parts.append(f"<p>Note: {esc(note)}</p>")
    fig, sd_only = _forest_figure(comparison)
    if fig is not None:
        also = "".join(f"; {esc(name)}: {SD_ONLY}" for name in sd_only)
        parts.append(f"<h2>Forest plot (median and 5–95% interval per source{also})</h2>"
                     f"<figure id='forest'>{_svg(fig)}</figure>")
    dens = _densities(comparison)
    if dens:
        parts.append("<h2>Posterior densities of the scalar parameters</h2>"
                     f"<figure id='densities'>{dens}</figure>")
    table = _by_parameter(comparison.table())
    flagged = {p for p, _ in comparison.flagged()}
    parts.append("<h2>Summary table</h2><table><tr><th class='l'>parameter</th>"
                 "<th class='l'>source</th><th>mean</th><th>sd</th><th>MCSE</th><th>5%</th>"
                 "<th>50%</th><th>95%</th><th>ESS bulk</th><th>R-hat</th></tr>")
    previous = None
    for r in table.itertuples():
        classes = [*(["flag"] if r.parameter in flagged else []),
                   *(["first"] if r.parameter != previous else [])]
        previous = r.parameter
        cls = f" class='{' '.join(classes)}'" if classes else ""
        parts.append(
            f"<tr{cls}><td class='l'>{esc(str(r.parameter))}</td><td class='l'>{esc(r.source)}"
            f"</td><td>{_fmt(r.mean)}</td><td>{_fmt(r.sd)}</td><td>{_fmt(r.mcse_mean)}</td>"
            f"<td>{_fmt(r.q05)}</td><td>{_fmt(r.q50)}</td><td>{_fmt(r.q95)}</td>"
            f"<td>{_fmt(r.ess_bulk)}</td><td>{_fmt(r.r_hat)}</td></tr>"
        )
    parts.append("</table>")
    rejected = comparison.tests[comparison.tests["reject"]] if len(comparison.tests) else None
    n = int((comparison.tests["note"] == "").sum()) if len(comparison.tests) else 0
    parts.append(f"<h2>Tests</h2><p>{n} z-tests of mean, sd and 5/50/95% quantiles, scaled by "
                 f"their Monte Carlo standard errors; family-wise alpha {comparison.alpha} "
                 "per pair of sources (Holm within each pair: a pair's result does not depend "
                 "on the other sources).</p>")
    if rejected is not None and len(rejected):
        parts.append("<table><tr><th class='l'>parameter</th><th class='l'>statistic</th>"
                     "<th class='l'>pair</th><th>z</th><th>|z| needed</th><th>p</th></tr>")
        for r in rejected.sort_values("p").itertuples():
            crit = getattr(r, "z_crit", float("nan"))
            parts.append(f"<tr class='flag'><td class='l'>{esc(str(r.parameter))}</td>"
                         f"<td class='l'>{esc(r.statistic)}</td><td class='l'>{esc(r.pair)}</td>"
                         f"<td>{r.z:.2f}</td><td>{crit:.2f}</td><td>{r.p:.2e}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(comparison, path: str | Path) -> Path:
    """Write the HTML report atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(render_html(comparison), encoding="utf-8")
    tmp.replace(path)
    return path
