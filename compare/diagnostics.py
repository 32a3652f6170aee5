"""The per-backend diagnostics gate: a fit that fails it cannot support a verdict of mismatch."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import arviz_stats as azs
import numpy as np
import pandas as pd

__all__ = ["Diagnostics", "Thresholds", "diagnose"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Documented thresholds of the gate (Vehtari et al. 2021; Betancourt 2017).

    Parameters
    ----------
    r_hat
        Largest rank-normalized split R-hat allowed over every scalar element.
    ess_per_chain
        Smallest bulk and tail ESS allowed, per chain (100 per chain: 400 for 4 chains).
    divergences
        Most post-warmup divergent transitions allowed.
    ebfmi
        Smallest E-BFMI allowed in any chain.
    """

    r_hat: float = 1.01
    ess_per_chain: float = 100.0
    divergences: int = 0
    ebfmi: float = 0.3


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """The gate's result for one fit: ``ok`` and, when not, the reasons."""

    ok: bool
    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int | None
    ebfmi_min: float
    reasons: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        """JSON-friendly form."""
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}


def _ebfmi_min(energy) -> float:
    """Smallest E-BFMI over the chains (arviz-stats), NaN where a chain's energy is constant."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = np.asarray(azs.bfmi(np.asarray(energy, dtype=float)), dtype=float)
    return float(np.min(values)) if values.size and np.isfinite(values).all() else float("nan")


def _fmt_ebfmi(value: float) -> str:
    """E-BFMI to two decimals, never "-0.00" (E-BFMI is >= 0; a tiny value reads "< 0.01")."""
    return "< 0.01" if value < 0.005 else f"{value:.2f}"


def diagnose(
    idata, summary: pd.DataFrame, thresholds: Thresholds = Thresholds()
) -> Diagnostics:
    """Check one fit: R-hat, bulk and tail ESS, divergences and E-BFMI.

    ``summary`` is :func:`crossppl.compare.summary.summarize` of the fit's posterior.
    Divergences and E-BFMI are checked where the fit's ``sample_stats`` have them (NUTS's
    ``diverging`` and ``energy``); a fit without (a Gibbs sampler's) has ``divergences`` None and
    ``ebfmi_min`` NaN, and is gated on R-hat and ESS alone.
    """
    chains = idata.posterior.sizes["chain"]
    ess_min = thresholds.ess_per_chain * chains
    r_hat_max = float(summary["r_hat"].max())
    bulk = summary["ess_bulk"].astype(float)
    tail = summary["ess_tail"].astype(float)
    stats = getattr(idata, "sample_stats", None)
    stats = {} if stats is None else stats  # draws without sampler statistics: nothing to check
    # a sampler without divergences to report (Gibbs) has None: nothing checked, nothing faked
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else None
    ebfmi_min = _ebfmi_min(stats["energy"]) if "energy" in stats else float("nan")
    reasons = []
    if not r_hat_max <= thresholds.r_hat:
        worst = summary["r_hat"].astype(float).idxmax()
        reasons.append(f"R-hat {r_hat_max:.3f} > {thresholds.r_hat} ({worst})")
    if not bulk.min() >= ess_min:
        reasons.append(f"bulk ESS {bulk.min():.0f} < {ess_min:.0f} ({bulk.idxmin()})")
    if not tail.min() >= ess_min:
        reasons.append(f"tail ESS {tail.min():.0f} < {ess_min:.0f} ({tail.idxmin()})")
    if divergences is not None and divergences > thresholds.divergences:
        reasons.append(f"{divergences} divergent transitions (allowed {thresholds.divergences})")
    if ebfmi_min < thresholds.ebfmi:
        reasons.append(f"E-BFMI {_fmt_ebfmi(ebfmi_min)} < {thresholds.ebfmi} in a chain")
    return Diagnostics(
        ok=not reasons,
        r_hat_max=r_hat_max,
        ess_bulk_min=float(bulk.min()),
        ess_tail_min=float(tail.min()),
        divergences=divergences,
        ebfmi_min=ebfmi_min,
        reasons=tuple(reasons),
    )
