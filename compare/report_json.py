"""The JSON report. Schema (``format: crossppl-compare/1``)::

    verdict            "match" | "mismatch" | "inconclusive"
    reasons            [str]
    model, alpha, settings
    backends.<name>    {kind, engine, algorithm, settings_not_applied, ok, ran, seconds, error,
                        diagnostics: {ok, r_hat_max, ess_bulk_min, ess_tail_min, divergences,
                        ebfmi_min, reasons}}  (algorithm: "NUTS", "Gibbs (JAGS)", null where
                        unknown; settings_not_applied: the settings this algorithm ignores,
                        e.g. ["target_accept", "max_treedepth"]; divergences: null where the
                        algorithm has none)
    parameters.<name>.<source>   {mean, sd, mcse_mean, mcse_sd, q05, q50, q95, ess_bulk,
                                  ess_tail, r_hat, khat}
    tests              [{parameter, statistic, pair, z, p, z_crit, reject, note}]  (z_crit: the
                        |z| the test needed at its Holm step within its pair)
    density            {points, pairs: [{pair, spread, tolerance, constant, density_constant,
                        terms_constant}], terms: [{pair, variable, spread, constant,
                        tolerance}]} | null
    pooled_rhat        [{parameter, r_hat, flagged}]
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["FORMAT", "to_json_dict", "write_json"]

FORMAT = "crossppl-compare/1"
PARAM_COLUMNS = ["mean", "sd", "mcse_mean", "mcse_sd", "q05", "q50", "q95", "ess_bulk",
                 "ess_tail", "r_hat", "khat"]


def _clean(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def to_json_dict(comparison) -> dict:
    """The report as JSON-ready data."""
    backends = {}
    for name, s in comparison.sources.items():
        backends[name] = {
            "kind": s.kind, "engine": s.engine, "algorithm": s.attrs.get("algorithm"),
            "settings_not_applied": str(s.attrs.get("settings_not_applied", "")).split(),
            "ok": s.ok, "ran": s.ran,
            "seconds": round(s.seconds, 3), "error": s.error or None,
            "diagnostics": s.diagnostics.as_dict() if s.diagnostics is not None else None,
        }
    parameters: dict[str, dict] = {}
    for name, s in comparison.sources.items():
        if s.summary is None:
            continue
        for label, row in s.summary.iterrows():
            parameters.setdefault(label, {})[name] = {
                c: _clean(float(row[c])) for c in PARAM_COLUMNS if c in row.index
            }
    tests = [
        {k: _clean(v) for k, v in rec.items()}
        for rec in comparison.tests.reindex(columns=["parameter", "statistic", "pair", "z", "p",
                                                     "z_crit", "reject", "note"]
                                            ).to_dict("records")
    ]
    density = None
    if comparison.density is not None:
        density = {
            "points": comparison.density.n_points,
            "pairs": [{k: _clean(v) for k, v in r.items()} for r in
                      comparison.density.pairs.reindex(
                          columns=["pair", "spread", "tolerance", "constant", "density_constant",
                                   "terms_constant"]).to_dict("records")],
            "terms": [{k: _clean(v) for k, v in r.items()} for r in
                      comparison.density.terms.to_dict("records")],
        }
    return {
        "format": FORMAT,
        "model": comparison.model,
        "verdict": comparison.verdict.kind,
        "reasons": list(comparison.verdict.reasons),
        "alpha": comparison.alpha,
        "settings": comparison.settings,
        "notes": comparison.notes,
        "backends": backends,
        "parameters": parameters,
        "tests": tests,
        "density": density,
        "pooled_rhat": [{k: _clean(v) for k, v in r.items()}
                        for r in comparison.pooled.to_dict("records")],
    }


def write_json(comparison, path: str | Path) -> Path:
    """Write the JSON report atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(to_json_dict(comparison), indent=1))
    tmp.replace(path)
    return path
