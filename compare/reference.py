"""Reference posteriors: published summaries (JSON or CSV) or stored draws (NetCDF).

A summary reference gives, per parameter (element labels as ``alpha[0]``), at least ``mean`` and
``sd``; optionally ``mcse_mean``, ``mcse_sd``, ``q05``/``q50``/``q95`` with ``mcse_q05``..., and
``ess_bulk``. Missing MCSEs are derived, in this order:

1. from ``ess_bulk``: ``mcse_mean = sd / sqrt(ess)``, ``mcse_sd = sd / sqrt(2 ess)``;
2. otherwise from the documented tolerance ``tolerance_sd`` (default 0.1): the reference is
   treated as known to within ``tolerance_sd * sd`` for its mean and sd (a published table with
   no Monte Carlo error, e.g. BUGS's).

Numbers rounded to a fixed number of decimals add the rounding error (uniform over
``+-rounding``, standard deviation ``rounding / sqrt(3)``) to their MCSE in quadrature.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from crossppl.errors import DataError

from .summary import STATISTICS, summarize

__all__ = ["DEFAULT_TOLERANCE_SD", "load_reference", "reference_from_table", "write_reference"]

DEFAULT_TOLERANCE_SD = 0.1
FORMAT = "crossppl-reference/1"


def load_reference(path: str | Path) -> pd.DataFrame:
    """Read a reference file into a summary table like :func:`summarize` gives."""
    path = Path(path)
    if not path.is_file():
        raise DataError("reference file not found; give a .json, .csv or .nc file",
                        file=str(path))
    suffix = path.suffix.lower()
    if suffix in (".nc", ".netcdf"):
        import xarray as xr

        try:
            with xr.open_datatree(path) as tree:
                if "posterior" not in tree.children:
                    raise DataError("the NetCDF file has no posterior group", file=str(path))
                posterior = tree["posterior"].to_dataset().load()
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"cannot read NetCDF draws: {exc}", file=str(path)) from None
        return summarize(posterior)
    if suffix == ".json":
        try:
            content = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"not valid JSON: {exc}", file=str(path)) from None
        if not isinstance(content, dict) or not isinstance(content.get("parameters"), dict):
            raise DataError(
                'expected {"parameters": {"mu": {"mean": ..., "sd": ...}, ...}}', file=str(path)
            )
        return reference_from_table(
            content["parameters"],
            rounding=float(content.get("rounding", 0.0)),
            tolerance_sd=float(content.get("tolerance_sd", DEFAULT_TOLERANCE_SD)),
            file=str(path),
        )
    if suffix == ".csv":
        frame = pd.read_csv(path)
        if "parameter" not in frame.columns:
            raise DataError("the CSV needs a 'parameter' column", file=str(path))
        table = {row["parameter"]: row.drop("parameter").dropna().to_dict()
                 for _, row in frame.iterrows()}
        return reference_from_table(table, file=str(path))
    raise DataError(f"cannot read a reference of type {suffix!r}; give .json, .csv or .nc",
                    file=str(path))


def reference_from_table(
    table: Mapping[str, Mapping[str, float]],
    *,
    rounding: float = 0.0,
    tolerance_sd: float = DEFAULT_TOLERANCE_SD,
    file: str = "<reference>",
) -> pd.DataFrame:
    """Build a summary table (with MCSEs) from ``{parameter: {statistic: value}}``."""
    rows = {}
    round_sd = rounding / math.sqrt(3)
    for name, stats in table.items():
        if not isinstance(stats, Mapping) or "mean" not in stats or "sd" not in stats:
            raise DataError(f"{name!r} needs at least mean and sd", file=file, entry=name)
        try:
            row = {k: float(v) for k, v in stats.items()}
        except (TypeError, ValueError):
            raise DataError(f"{name!r} holds a value that is not a number", file=file,
                            entry=name) from None
        sd = row["sd"]
        ess = row.get("ess_bulk")
        for stat in STATISTICS:
            if stat not in row:
                continue
            key = f"mcse_{stat}"
            if key not in row:
                if ess:
                    row[key] = sd / math.sqrt(ess) / (math.sqrt(2) if stat == "sd" else 1)
                elif stat in ("mean", "sd"):
                    row[key] = tolerance_sd * sd
                else:
                    continue
            row[key] = math.hypot(row[key], round_sd)
        row["variable"] = name.split("[")[0]
        row["element"] = name
        rows[name] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    for column in ("variable", "element", *STATISTICS, *(f"mcse_{s}" for s in STATISTICS)):
        if column not in frame.columns:
            frame[column] = math.nan
    return frame


def write_reference(
    path: str | Path, summary: pd.DataFrame, *, metadata: Mapping[str, object]
) -> Path:
    """Store a run's summary in the format :func:`load_reference` reads."""
    columns = [*STATISTICS, *(f"mcse_{s}" for s in STATISTICS), "ess_bulk", "ess_tail", "r_hat"]
    params = {
        label: {c: float(row[c]) for c in columns if c in row and pd.notna(row[c])}
        for label, row in summary.iterrows()
    }
    meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in metadata.items()}
    content = {"format": FORMAT, **meta, "parameters": params}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(content, indent=1, default=str))
    tmp.replace(path)
    return path
