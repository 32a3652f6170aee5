"""Load and check the data a spec declares: files, shapes, types and values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from crossppl import data as bundled_data
from crossppl.errors import DataError, SpecError

__all__ = ["MAX_DIM_SIZE", "MAX_ELEMENTS", "MAX_FILE_BYTES", "bundled_data_dir", "read_data_file",
           "to_array"]

#: Largest size of one dim.
MAX_DIM_SIZE = 10_000_000
#: Most elements of one data array.
MAX_ELEMENTS = 50_000_000
#: Largest data file read.
MAX_FILE_BYTES = 200 * 2**20


def bundled_data_dir() -> Path:
    """The folder of the datasets shipped with crossppl."""
    return Path(bundled_data.__file__).parent


def resolve_data_path(name: object, spec_dir: Path, file: str, entry: str) -> Path:
    """Find data file ``name`` in the spec's folder, then in crossppl's bundled data folder.

    The path must be relative and stay inside the folder it is found in.
    """
    if not isinstance(name, str) or not name:
        raise SpecError(
            f"the data file must be a non-empty string, found {name!r:.60}", file=file, entry=entry
        )
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or "\x00" in name:
        raise SpecError(
            f"data file {name!r:.80} points outside the spec's folder; put the file next to the "
            "spec (or in a folder below it) and give its relative path",
            file=file,
            entry=entry,
        )
    not_a_file = None
    for root in (spec_dir, bundled_data_dir()):
        try:
            candidate = (root / rel).resolve()
            inside = candidate.is_relative_to(root.resolve())
            if inside and candidate.is_file():
                return candidate
            if inside and not_a_file is None and candidate.exists():
                not_a_file = "is a folder, not a file" if candidate.is_dir() else (
                    "is not a regular file (it is a FIFO, socket or device)")
            outside = not inside and candidate.exists()
        except (OSError, RuntimeError) as exc:  # name too long, symlink loop, no permission...
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SpecError(
                f"cannot open data file {name!r:.80}: {reason:.200}; check the name",
                file=file,
                entry=entry,
            ) from None
        if outside:
            raise SpecError(
                f"data file {name!r:.80} resolves to {candidate}, outside {root}; links that "
                "leave the spec's folder are not followed",
                file=file,
                entry=entry,
            )
    if not_a_file:
        raise SpecError(
            f"data file {name!r:.80} {not_a_file}; give the path of a .json file holding the "
            "data",
            file=file,
            entry=entry,
        )
    raise SpecError(
        f"data file {name!r:.80} not found next to the spec ({spec_dir}) nor among crossppl's "
        "bundled data; check the name",
        file=file,
        entry=entry,
    )


def read_data_file(path: Path) -> Mapping[str, object]:
    """Read a JSON data file holding an object of ``name: value``."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"data file is {size / 2**20:.0f} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB",
            file=str(path),
        )
    if path.suffix.lower() != ".json":
        raise DataError(
            f"cannot read data of type {path.suffix or '(none)'!r}; give a .json file holding "
            "an object such as {\"x\": [1, 2], \"y\": [[...]]}",
            file=str(path),
        )
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"))  # with or without a BOM
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: 4300+ digits
        raise DataError(f"not valid JSON: {exc}", file=str(path)) from None
    if not isinstance(content, dict):
        raise DataError(
            f"expected a JSON object of name: value, found {type(content).__name__}",
            file=str(path),
        )
    return content


def to_array(value: object, kind: str, *, file: str, entry: str) -> np.ndarray:
    """Convert a JSON value to an array of ``kind`` (``"real"``, ``"int"`` or ``"index"``)."""
    if value is None:
        raise DataError("the value is missing (null); give numbers", file=file, entry=entry)
    try:
        raw = np.asarray(value, dtype=object)
    except (ValueError, RecursionError):
        raise DataError(
            "the value is a ragged list; every row must have the same length",
            file=file,
            entry=entry,
        ) from None
    if raw.size > MAX_ELEMENTS:
        raise DataError(f"{raw.size} elements exceed the limit {MAX_ELEMENTS}", file=file,
                        entry=entry)
    flat = raw.reshape(-1)
    for item in flat:
        if isinstance(item, list | tuple):
            raise DataError(
                "found a list where a number was expected: the value is ragged (rows of different "
                "lengths) or nested too deeply; every row must have the same length",
                file=file,
                entry=entry,
            )
        if isinstance(item, bool) or not isinstance(item, int | float):
            what = "missing (null)" if item is None else f"{type(item).__name__} {item!r:.30}"
            raise DataError(
                f"found {what} where a number was expected; the data must be numbers only",
                file=file,
                entry=entry,
            )
    try:
        arr = np.asarray(raw.tolist(), dtype=float) if raw.ndim else np.asarray(float(value))
    except OverflowError:
        raise DataError(
            "holds an integer too large for a 64-bit float; fix the data", file=file, entry=entry
        ) from None
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"holds {np.sum(bad)} non-finite value(s) (NaN or inf; first at index {where}); "
            "the model cannot take them: drop those rows or impute them before fitting",
            file=file,
            entry=entry,
        )
    if kind in ("int", "index"):
        if np.any(arr != np.round(arr)):
            first = arr[arr != np.round(arr)].reshape(-1)[0]
            raise DataError(
                f"declared {kind} but holds the non-integer {first:g}; fix the data or declare "
                'type = "real"',
                file=file,
                entry=entry,
            )
        if np.any(np.abs(arr) > 2**31 - 1):
            raise DataError("an integer is outside the 32-bit range", file=file, entry=entry)
        return arr.astype(np.int64)
    return arr


def check_finite_size(size: object, *, file: str, entry: str) -> int:
    """Validate a dim size given in a spec."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise SpecError(f"a dim size must be an integer, found {size!r:.40}", file=file,
                        entry=entry)
    if size < 1 or size > MAX_DIM_SIZE:
        raise SpecError(
            f"dim size {size:,} is outside 1..{MAX_DIM_SIZE:,}; give the real size",
            file=file,
            entry=entry,
        )
    return size


def fits_limit(shape: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` stays within :data:`MAX_ELEMENTS`."""
    return math.prod(shape) <= MAX_ELEMENTS
