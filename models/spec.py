"""Read a spec file (TOML) into a validated :class:`~crossppl.models.ir.Model`.

The format, with the Rats model as example, is documented in the README. In short::

    [model]      name, description, source, data_file (default file for [data])
    [dims]       rat = {}  (size from data) | week = 5 | week = { coords = [8, 15] }
    [data]       y = { dims = ["rat", "week"], type = "real" }   (file, key, value, indexes, base)
    [parameters] "alpha[rat]" = "normal(mu_alpha, tau=tau_alpha)"
    [derived]    sigma = "1 / sqrt(tau)"
    [observed]   "y[rat, week]" = "normal(alpha + beta * x, tau=tau)"
    [generated]  "y_new[week]" = "normal(mu_alpha + mu_beta * x, tau=tau)"   (posterior predictive)
    [fit]        target_accept = 0.95   (recommended sampler settings; the user's own win)
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import math
import os
import re
import tomllib
import unicodedata
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from crossppl.config import FitConfig
from crossppl.errors import ConfigError, DataError, SpecError, SpecWarning

from . import data as datamod
from . import specs
from .distributions import DISTRIBUTIONS
from .expressions import Scope, Symbol, parse_dist, parse_expr, referenced
from .ir import (
    DataDecl,
    DerivedDecl,
    DimDecl,
    Dist,
    GeneratedDecl,
    Index,
    Model,
    ObservedDecl,
    ParamDecl,
    Role,
    Statement,
    Var,
    walk,
)
from .names import POSTERIOR_RESERVED, reserved_reason

__all__ = ["MAX_SPEC_BYTES", "bundled_specs", "load_spec", "parse_spec", "path_text"]

MAX_SPEC_BYTES = 1_000_000
SECTIONS = ("model", "dims", "data", "parameters", "derived", "observed", "generated", "fit")
#: Sampler settings a spec may recommend under [fit] (derived from ``FitConfig``'s fields).
FIT_FIELDS = FitConfig.spec_names()
DATA_FIELDS = ("dims", "type", "value", "file", "key", "indexes", "base")
_SECTION_LINE = re.compile(r"\[([^\[\]]*)\]")
#: Most parts of a dotted TOML key (tomllib takes time quadratic in it: 50,000 parts take a minute).
MAX_KEY_PARTS = 100
# A dotted key of MAX_KEY_PARTS parts or more; it cannot start inside a word, string or dotted key,
# so the search stays linear.
_DOTTED_KEY_BOMB = re.compile(
    r"""(?<![\w\-"'.])(?:(?:[\w\-]+|"[^"\n]*"|'[^'\n]*')[ \t]*\.[ \t]*)"""
    + f"{{{MAX_KEY_PARTS}}}"
)
# One unambiguous way to match each character, so matching is linear (no backtracking blow-up
# on hostile keys such as "a[" followed by thousands of spaces); dims are stripped afterwards.
_KEY = re.compile(r"^\s*([^\[\]\s]+)\s*(?:\[([^\[\]]*)\])?\s*$")
#: Control characters a text field may hold (TOML's multi-line strings give line breaks).
TEXT_CONTROLS = frozenset("\t\n\r")
#: Bidirectional embedding, override and isolate controls: text holding them can display
#: differently from what it is (the "Trojan Source" attack on comments and docstrings).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def bundled_specs() -> dict[str, Path]:
    """The specs shipped with crossppl, by model name."""
    folder = Path(specs.__file__).parent
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def load_spec(spec: str | Path) -> Model:
    """Load a model spec: a bundled model's name (``"rats"``) or a path to a TOML file.

    Raises
    ------
    SpecError
        The spec is malformed; the message names the file, the entry and the fix.
    DataError
        The data it declares is missing or does not fit the declaration.
    """
    bundled = bundled_specs()
    if isinstance(spec, str) and spec in bundled:
        path = bundled[spec]
    else:
        path = Path(spec)
        try:
            found = path.is_file()
        except OSError:  # e.g. a name too long for the file system
            found = False
        if not found:
            close = difflib.get_close_matches(str(spec), bundled, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise SpecError(
                f"no bundled model and no file called {str(spec)!r:.200}{hint} "
                f"Bundled models: {', '.join(bundled)}; or give the path to a .toml spec"
            )
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"the spec is {size:,} bytes; the limit is {MAX_SPEC_BYTES:,}",
                        file=str(path))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some editors write, is dropped
    except UnicodeDecodeError as exc:
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        found = "UTF-16 text" if utf16 else f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise SpecError(f"{found}; a spec is read as UTF-8 text: save it with that encoding",
                        file=str(path),
                        line=None if utf16 else raw.count(b"\n", 0, exc.start) + 1) from None
    return parse_spec(text, file=str(path), spec_dir=path.parent)


def path_text(path: str | os.PathLike[str]) -> str:
    """``path`` as printable UTF-8 text, for messages, comments and attributes: bytes that are
    not UTF-8 (held as surrogates by ``os.fsdecode``) read ``\\xff``, control characters are
    escaped as by ``repr``. Not for opening the file again."""
    text = os.fsdecode(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text if text.isprintable() else repr(text)[1:-1]


def parse_spec(text: str, *, file: str = "<spec>", spec_dir: Path | None = None) -> Model:
    """Parse spec ``text``; ``spec_dir`` is where relative data files are looked for."""
    if not isinstance(text, str):
        raise SpecError(f"expected the spec as text (str), found {type(text).__name__}",
                        file=file)
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"the spec is {len(text):,} characters; the limit is {MAX_SPEC_BYTES:,}",
                        file=file)
    text = text.removeprefix("\ufeff")  # a byte-order mark read as text
    return _SpecParser(text, file, Path(spec_dir or Path.cwd())).parse()


class _SpecParser:
    def __init__(self, text: str, file: str, spec_dir: Path) -> None:
        self.text = text
        self.file = file
        self.spec_dir = spec_dir
        self.lines = text.splitlines()
        self._line_index: dict[str, tuple[int, dict[str, int]]] | None = None
        self.dim_sources: dict[str, str] = {}
        #: Support kind of each parameter and generated quantity parsed so far.
        self.support: dict[str, str] = {}
        #: Warnings to issue once the spec is parsed without error.
        self.warnings: list[str] = []
        self._dim_order: tuple[str, ...] = ()
        self._dim_index: dict[str, int] = {}

    # -- helpers ------------------------------------------------------------------------------
    def error(self, message: str, section: str | None = None, key: str | None = None,
              cls: type[SpecError] | type[DataError] = SpecError) -> Exception:
        entry = None
        if section:
            entry = f"[{_short(section)}]" + (f" {_short(key, True)}" if key is not None else "")
        return cls(message, file=self.file, entry=entry, line=self.line_of(section, key))

    def line_of(self, section: str | None, key: str | None) -> int | None:
        """Best-effort 1-based line of ``key`` in ``[section]``."""
        if section is None:
            return None
        if self._line_index is None:
            self._line_index = _index_lines(self.lines)
        start, keys = self._line_index.get(section, (None, {}))
        if start is None or key is None:
            return start
        return keys.get(key)

    def scope(self, symbols: Mapping[str, Symbol], section: str, key: str) -> Scope:
        """The scope of entry ``key`` of ``section`` (dims as declared so far)."""
        if len(self._dim_order) != len(self.dim_sizes):  # dims are only ever added
            self._dim_order = tuple(self.dim_sizes)
            self._dim_index = {d: i for i, d in enumerate(self._dim_order)}
        return Scope(symbols, self._dim_order, self.file, f"[{section}] {_short(key, True)}",
                     self.line_of(section, key), self._dim_index)

    def table(self, doc: Mapping, section: str, required: bool) -> Mapping:
        value = doc.get(section)
        if value is None:
            if required:
                raise self.error(f"the [{section}] section is missing; add it", section)
            return {}
        if not isinstance(value, dict):
            raise self.error(
                f"expected a table, found {type(value).__name__}; write it as [{section}]", section
            )
        return value

    def check_name(self, name: object, section: str, key: str) -> str:
        if not isinstance(name, str):
            raise self.error(f"expected a name, found {name!r:.40}", section, key)
        reason = reserved_reason(name)
        if reason:
            raise self.error(f"{name!r:.70} cannot be used as a name: {reason}; rename it",
                             section, key)
        return name

    def check_text(self, text: str, section: str, key: str, what: str = "the text") -> None:
        """Refuse control characters (but tab and line breaks) and bidirectional controls in
        text that lands in the generated programs (docstrings, comments) or the results."""
        for i, char in enumerate(text):
            if char in BIDI_CONTROLS:
                raise self.error(
                    f"{what} holds the bidirectional control character U+{ord(char):04X} at "
                    f"character {i + 1}, which makes text display otherwise than it reads; "
                    "remove it", section, key,
                )
            if unicodedata.category(char) == "Cc" and char not in TEXT_CONTROLS:
                raise self.error(
                    f"{what} holds the control character {char!r} (U+{ord(char):04X}) at "
                    f"character {i + 1}; remove it (text may hold tabs and line breaks, no other "
                    "control characters)", section, key,
                )

    def check_posterior_names(self, scope: Scope, name: str, dims: tuple[str, ...]) -> None:
        """Refuse a name or dim of a posterior quantity that ArviZ's results use for their own
        dims (see :data:`~crossppl.models.names.POSTERIOR_RESERVED`)."""
        if name in POSTERIOR_RESERVED:
            raise scope.error(
                f"{name!r} cannot name a parameter, derived or generated quantity: "
                f"{POSTERIOR_RESERVED[name]}; rename it (e.g. {name}_value)"
            )
        for d in dims:
            if d in POSTERIOR_RESERVED:
                raise scope.error(
                    f"{name} varies along dim {d!r}, which a parameter, derived or generated "
                    f"quantity cannot have: {POSTERIOR_RESERVED[d]}; rename the dim under [dims] "
                    f"(e.g. {d}_id; data may keep it)"
                )

    def warn_real_scale(self, scope: Scope, dist: Dist, support: Mapping[str, str]) -> None:
        """Note a warning (:class:`SpecWarning`, issued once the spec is parsed) when an argument
        of ``dist`` that must be positive (a scale, precision, rate, shape, ...) is a parameter
        or generated quantity whose distribution has real support (``support``: name -> kind)."""
        positive = DISTRIBUTIONS[dist.name].parameterization(dist.parameterization).positive
        for arg_name, arg in dist.args:
            var = arg.base if isinstance(arg, Index) else arg
            if arg_name not in positive or not isinstance(var, Var):
                continue
            if support.get(var.name) == "real":
                message = (
                    f"argument {arg_name!r} of {dist.name} must be > 0, but {var.name} has a "
                    "distribution with real support, so it can be negative; give it a positive "
                    f"one (half_normal, gamma, exponential, ...) or write exp({var.name})"
                )
                self.warnings.append(str(scope.error(message)))

    def split_key(self, key: str, section: str) -> tuple[str, tuple[str, ...]]:
        match = _KEY.match(key)
        if not match:
            raise self.error(
                "expected a name with optional dims, e.g. \"alpha[rat]\" or \"y[rat, week]\"",
                section, key,
            )
        name = self.check_name(match.group(1), section, key)
        dims_text = match.group(2)
        if dims_text is not None:
            dims_text = dims_text.strip()
        dims: tuple[str, ...] = ()
        if dims_text is not None:
            parts = [d.strip() for d in dims_text.split(",")]
            if dims_text.strip() == "" or any(not p for p in parts):
                raise self.error("empty dim in brackets; write e.g. \"alpha[rat]\"", section, key)
            dims = tuple(parts)
            for d in dims:
                if d not in self.dim_sizes:
                    close = difflib.get_close_matches(d, self.dim_sizes, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else "."
                    raise self.error(
                        f"unknown dim {d!r:.60}{hint} Declare it under [dims]", section, key
                    )
            if len(set(dims)) != len(dims):
                raise self.error(f"dim repeated in {_short(key, True)}", section, key)
        return name, dims

    # -- the sections ---------------------------------------------------------------------------
    def parse(self) -> Model:
        bomb = _DOTTED_KEY_BOMB.search(self.text)
        if bomb:
            line = self.text.count("\n", 0, bomb.start()) + 1
            raise SpecError(
                f"a dotted key of more than {MAX_KEY_PARTS} parts; the spec nests tables a few "
                "levels deep at most", file=self.file, line=line,
            )
        try:
            doc = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"not valid TOML: {exc}", file=self.file) from None
        except RecursionError:
            raise SpecError("not valid TOML: nested too deeply", file=self.file) from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise SpecError(f"not valid TOML: {exc}", file=self.file) from None
        for section in doc:
            if section not in SECTIONS:
                close = difflib.get_close_matches(section, SECTIONS, n=1)
                hint = f"; did you mean [{close[0]}]?" if close else "."
                raise self.error(
                    f"unknown section [{_short(section)}]{hint} Sections: "
                    + ", ".join(f"[{s}]" for s in SECTIONS),
                    section,
                )
        meta = self.table(doc, "model", True)
        self.meta = self.parse_meta(meta)
        self.dim_sizes: dict[str, int | None] = {}
        self.dim_coords: dict[str, tuple] = {}
        self.parse_dims(self.table(doc, "dims", False))
        data = self.parse_data(self.table(doc, "data", False))
        dims = self.finish_dims()
        statements = self.parse_statements(
            self.table(doc, "parameters", False), self.table(doc, "derived", False), data
        )
        observed = self.parse_observed(self.table(doc, "observed", True), data, statements)
        generated = self.parse_generated(self.table(doc, "generated", False), data, statements)
        fit = self.parse_fit(self.table(doc, "fit", False))
        for message in self.warnings:
            warnings.warn(message, SpecWarning, skip_file_prefixes=_package_dirs())
        return Model(
            name=self.meta["name"],
            description=self.meta.get("description", ""),
            source=self.meta.get("source", ""),
            dims=dims,
            data=tuple(data.values()),
            statements=statements,
            observed=observed,
            path=self.file,
            generated=generated,
            fit=fit,
        )

    def parse_meta(self, meta: Mapping) -> dict[str, str]:
        allowed = ("name", "description", "source", "data_file")
        for key, value in meta.items():
            if key not in allowed:
                raise self.error(f"unknown field; [model] takes {', '.join(allowed)}", "model", key)
            if not isinstance(value, str):
                raise self.error(f"expected a string, found {value!r:.40}", "model", key)
            if key != "name":  # the name is checked below, against a stricter pattern
                self.check_text(value, "model", key)
        if "name" not in meta:
            raise self.error('the model needs a name: name = "rats"', "model")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]{0,63}", meta["name"]):
            raise self.error(
                f"the name {meta['name']!r:.40} must be letters, digits, _ or -", "model", "name"
            )
        return dict(meta)

    def dim_size(self, size: object, name: str) -> int:
        try:
            return datamod.check_finite_size(size, file=self.file, entry=f"[dims] {name!r}")
        except SpecError as exc:  # the same error, with the entry's line
            raise self.error(exc.message, "dims", name) from None

    def parse_dims(self, dims: Mapping) -> None:
        for name, value in dims.items():
            self.check_name(name, "dims", name)
            size: int | None = None
            coords: tuple = ()
            if isinstance(value, dict):
                unknown = set(value) - {"size", "coords"}
                if unknown:
                    raise self.error(
                        f"unknown field {sorted(unknown)[0]!r:.60}; a dim takes size and coords",
                        "dims", name,
                    )
                if "size" in value:
                    size = self.dim_size(value["size"], name)
                if "coords" in value:
                    raw = value["coords"]
                    if not isinstance(raw, list) or not all(
                        isinstance(c, str | int | float) and not isinstance(c, bool) for c in raw
                    ):
                        raise self.error("coords must be a list of strings or numbers",
                                         "dims", name)
                    if len(set(raw)) != len(raw):
                        raise self.error("coords must be distinct", "dims", name)
                    for label in raw:
                        if isinstance(label, str):
                            self.check_text(label, "dims", name, what="a coord")
                    coords = tuple(raw)
                    if size is not None and size != len(coords):
                        raise self.error(
                            f"size = {size} but {len(coords)} coords are given", "dims", name
                        )
                    size = self.dim_size(len(coords), name)
            else:
                size = self.dim_size(value, name)
            self.dim_sizes[name] = size
            self.dim_coords[name] = coords

    def parse_data(self, section: Mapping) -> dict[str, DataDecl]:
        decls: dict[str, DataDecl] = {}
        files: dict[Path, Mapping] = {}
        for name, spec in section.items():
            self.check_name(name, "data", name)
            if name in self.dim_sizes:
                raise self.error(f"{name!r} names both a dim and data; rename one", "data", name)
            if not isinstance(spec, dict):
                raise self.error(
                    'expected a table such as { dims = ["rat"], type = "real" }', "data", name
                )
            unknown = sorted(set(spec) - set(DATA_FIELDS))
            if unknown:
                raise self.error(
                    f"unknown field {unknown[0]!r:.60}; data takes {', '.join(DATA_FIELDS)}",
                    "data", name,
                )
            kind = spec.get("type", "real")
            if kind not in ("real", "int", "index"):
                raise self.error(
                    f'type {kind!r:.30} is not one of "real", "int", "index"', "data", name
                )
            dims = spec.get("dims", [])
            if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
                raise self.error('dims must be a list of dim names, e.g. ["rat"]', "data", name)
            if len(set(dims)) != len(dims):
                raise self.error(f"a dim is repeated in dims {dims!r:.80}; list each dim once",
                                 "data", name)
            for d in dims:
                if d not in self.dim_sizes:
                    raise self.error(f"unknown dim {d!r:.60}; declare it under [dims]", "data",
                                     name)
            value = self.data_value(name, spec, files)
            entry = f"[data] {name!r}"
            try:
                arr = datamod.to_array(value, kind, file=self.file, entry=entry)
            except DataError as exc:  # the same error, with the entry's line
                raise self.error(exc.message, "data", name, cls=DataError) from None
            if arr.ndim != len(dims):
                raise self.error(
                    f"declared with {len(dims)} dim(s) [{', '.join(dims)}] but the value has "
                    f"{arr.ndim} axes (shape {arr.shape}); fix dims or the data",
                    "data", name, cls=DataError,
                )
            for d, n in zip(dims, arr.shape, strict=True):
                known = self.dim_sizes[d]
                if known is None:
                    if n < 1:
                        raise self.error(f"dim {d!r} would have size 0", "data", name,
                                         cls=DataError)
                    self.dim_sizes[d] = n
                    self.dim_sources[d] = name
                elif known != n:
                    source = self.dim_sources.get(d, "[dims]")
                    raise self.error(
                        f"has {n} entries along dim {d!r}, but {d!r} has size {known} "
                        f"(from {source}); the shapes must agree",
                        "data", name, cls=DataError,
                    )
            indexes = spec.get("indexes")
            base = spec.get("base", 1 if kind == "index" else 0)
            if kind == "index":
                arr = self.check_index(name, arr, indexes, base)
            elif indexes is not None or "base" in spec:
                raise self.error('indexes and base apply to type = "index" only', "data", name)
            decls[name] = DataDecl(name, tuple(dims), kind, arr, indexes, base)
        return decls

    def data_value(self, name: str, spec: Mapping, files: dict[Path, Mapping]) -> object:
        if "value" in spec:
            if "file" in spec or "key" in spec:
                raise self.error("give either value or file/key, not both", "data", name)
            return spec["value"]
        file_name = spec.get("file", self.meta.get("data_file"))
        if file_name is None:
            raise self.error(
                "no value: give value = [...], or file = \"data.json\" here or data_file in "
                "[model]", "data", name,
            )
        path = datamod.resolve_data_path(file_name, self.spec_dir, self.file, f"[data] {name!r}")
        if path not in files:
            files[path] = datamod.read_data_file(path)
        key = spec.get("key", name)
        if not isinstance(key, str) or not key:
            raise self.error(f"key must be a non-empty string, found {key!r:.40}", "data", name)
        if key not in files[path]:
            known = ", ".join(_short(k, True) for k in list(files[path])[:20])
            more = ", ..." if len(files[path]) > 20 else ""
            raise DataError(
                f"{path.name} has no entry {_short(key, True)}; it has {known}{more}",
                file=self.file, entry=f"[data] {name!r}", line=self.line_of("data", name),
            )
        return files[path][key]

    def check_index(self, name: str, arr: np.ndarray, indexes: object, base: object) -> np.ndarray:
        if not isinstance(indexes, str) or indexes not in self.dim_sizes:
            raise self.error(
                f'index data needs indexes = "<dim>" naming a declared dim, found {indexes!r:.30}',
                "data", name,
            )
        if isinstance(base, bool) or not isinstance(base, int) or base not in (0, 1):
            raise self.error(f"base must be 0 or 1, found {base!r:.20}", "data", name)
        size = self.dim_sizes[indexes]
        if size is None:
            size = int(arr.max()) - base + 1 if arr.size else 1
            if size > datamod.MAX_DIM_SIZE:
                raise self.error(
                    f"its largest value {arr.max()} would make dim {indexes!r} {size:,} long "
                    f"(limit {datamod.MAX_DIM_SIZE:,}); fix the data or give the dim's size "
                    "under [dims]", "data", name, cls=DataError,
                )
            self.dim_sizes[indexes] = size
            self.dim_sources[indexes] = f"the largest value of {name}"
        if arr.size and (arr.min() < base or arr.max() > size - 1 + base):
            raise self.error(
                f"holds values {arr.min()}..{arr.max()}, outside {base}..{size - 1 + base} "
                f"(dim {indexes!r}, base {base})", "data", name, cls=DataError,
            )
        return arr - base

    def finish_dims(self) -> tuple[DimDecl, ...]:
        out = []
        for name, size in self.dim_sizes.items():
            if size is None:
                raise self.error(
                    f"dim {name!r} has no size: give one (e.g. {name} = 10) or use it in the dims "
                    "of some data", "dims", name,
                )
            out.append(DimDecl(name, size, self.dim_coords[name]))
        return tuple(out)

    def parse_statements(
        self, params: Mapping, derived: Mapping, data: Mapping[str, DataDecl]
    ) -> tuple[Statement, ...]:
        entries: dict[str, tuple[str, str, tuple[str, ...], object]] = {}
        for section, table in (("parameters", params), ("derived", derived)):
            for key, value in table.items():
                name, dims = self.split_key(key, section)
                if name in entries or name in data or name in self.dim_sizes:
                    raise self.error(f"{name!r} is defined twice; rename one", section, key)
                entries[name] = (section, key, dims, value)
        symbols: dict[str, Symbol] = {
            d.name: Symbol(Role.DATA, d.dims, d.kind != "real", d.indexes) for d in data.values()
        }
        for name, (section, _key, dims, _value) in entries.items():
            if section == "parameters":
                symbols[name] = Symbol(Role.PARAM, dims)
        # Order: every name after the names it uses (a cycle is an error).
        deps = {}
        names = set(entries)
        for name, (section, key, _dims, value) in entries.items():
            deps[name] = referenced(value, self.scope(symbols, section, key)) & names
        order = self.topological(deps, entries)
        statements: list[Statement] = []
        for name in order:
            section, key, dims, value = entries[name]
            scope = self.scope(symbols, section, key)
            if section == "parameters":
                dist = parse_dist(value, scope)
                row = DISTRIBUTIONS[dist.name]
                if row.support.discrete:
                    raise scope.error(
                        f"parameter {name!r} has the discrete distribution {dist.name}, which NUTS "
                        "cannot sample; marginalize it out, or observe it under [observed]"
                    )
                self.check_dims(scope, name, dims, dist.dims)
                self.check_size(scope, name, dims)
                self.check_posterior_names(scope, name, dims)
                self.warn_real_scale(scope, dist, self.support)
                self.support[name] = row.support.kind
                statements.append(ParamDecl(name, dims, dist))
            else:
                expr = parse_expr(value, scope)
                if dims:
                    self.check_dims(scope, name, dims, expr.dims)
                else:
                    dims = expr.dims
                self.check_size(scope, name, dims)
                self.check_posterior_names(scope, name, dims)
                symbols[name] = Symbol(Role.DERIVED, dims)
                statements.append(DerivedDecl(name, dims, expr))
        return tuple(statements)

    def topological(self, deps: Mapping[str, set[str]], entries: Mapping) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}
        for root in deps:
            stack = [(root, iter(sorted(deps[root])))]
            if state.get(root) == 2:
                continue
            state[root] = 1
            path = [root]
            while stack:
                node, children = stack[-1]
                child = next(children, None)
                if child is None:
                    stack.pop()
                    path.pop()
                    state[node] = 2
                    order.append(node)
                elif state.get(child) == 1:
                    cycle = [*path[path.index(child):], child]
                    section, key = entries[child][0], entries[child][1]
                    raise self.error(
                        f"circular definition: {' -> '.join(cycle)}; break the cycle",
                        section, key,
                    )
                elif state.get(child) is None:
                    state[child] = 1
                    path.append(child)
                    stack.append((child, iter(sorted(deps[child]))))
        return order

    def check_size(self, scope: Scope, name: str, dims: tuple[str, ...]) -> None:
        shape = tuple(self.dim_sizes[d] for d in dims)
        if not datamod.fits_limit(shape):
            raise scope.error(
                f"{name}[{', '.join(dims)}] would hold {math.prod(shape):,} values (limit "
                f"{datamod.MAX_ELEMENTS:,}); check the dim sizes"
            )

    def check_dims(self, scope: Scope, name: str, lhs: tuple[str, ...], rhs: tuple[str, ...]):
        extra = [d for d in rhs if d not in lhs]
        if extra:
            lhs_text = f"{name}[{', '.join(lhs)}]" if lhs else name
            raise scope.error(
                f"the right-hand side varies along dim(s) {', '.join(extra)} but {lhs_text} does "
                f"not; declare {name}[{', '.join(scope.union(lhs, rhs))}] or fix the expression"
            )

    def parse_observed(
        self, section: Mapping, data: Mapping[str, DataDecl], statements: tuple[Statement, ...]
    ) -> tuple[ObservedDecl, ...]:
        if not section:
            raise self.error("no likelihood: add at least one entry under [observed]",
                             "observed")
        symbols = _model_symbols(data, statements)
        out = []
        seen = set()
        for key, value in section.items():
            name, dims = self.split_key(key, "observed")
            scope = self.scope(symbols, "observed", key)
            if name not in data:
                raise scope.error(
                    f"{name!r} is observed but not declared under [data]; declare it there"
                )
            if name in seen:
                raise scope.error(f"{name!r} is observed twice")
            seen.add(name)
            decl = data[name]
            if key == name:
                dims = decl.dims
            if dims != decl.dims:
                raise scope.error(
                    f"written {name}[{', '.join(dims)}] but declared with dims "
                    f"[{', '.join(decl.dims)}]; the dims must agree"
                )
            dist = parse_dist(value, scope)
            self.check_dims(scope, name, dims, dist.dims)
            if any(isinstance(n, Index) and n.index.name == name for n in walk(dist)):
                raise scope.error(f"{name!r} is used to index its own distribution")
            self.check_support(scope, decl, dist)
            self.warn_real_scale(scope, dist, self.support)
            out.append(ObservedDecl(name, dims, dist))
        return tuple(out)

    def parse_generated(
        self, section: Mapping, data: Mapping[str, DataDecl], statements: tuple[Statement, ...]
    ) -> tuple[GeneratedDecl, ...]:
        """Posterior-predictive draws; each may use data, parameters, derived quantities and
        the generated quantities written above it."""
        symbols = _model_symbols(data, statements)
        out = []
        for key, value in section.items():
            name, dims = self.split_key(key, "generated")
            scope = self.scope(symbols, "generated", key)
            if name in symbols or name in self.dim_sizes:
                raise scope.error(f"{name!r} is defined twice; rename one")
            dist = parse_dist(value, scope)
            self.check_dims(scope, name, dims, dist.dims)
            self.check_size(scope, name, dims)
            self.check_posterior_names(scope, name, dims)
            self.warn_real_scale(scope, dist, self.support)
            self.support[name] = DISTRIBUTIONS[dist.name].support.kind
            out.append(GeneratedDecl(name, dims, dist))
            symbols[name] = Symbol(Role.GENERATED, dims, DISTRIBUTIONS[dist.name].support.discrete)
        return tuple(out)

    def parse_fit(self, section: Mapping) -> tuple[tuple[str, object], ...]:
        """Recommended sampler settings, validated as ``FitConfig`` validates them."""
        for key in section:
            if key not in FIT_FIELDS:
                close = difflib.get_close_matches(key, FIT_FIELDS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error(
                    f"unknown setting{hint or ';'} [fit] takes {', '.join(FIT_FIELDS)}", "fit", key
                )
        try:
            FitConfig(**section)
        except ConfigError as exc:
            raise self.error(exc.message, "fit", exc.entry) from None
        return tuple(section.items())

    def check_support(self, scope: Scope, decl: DataDecl, dist) -> None:
        support = DISTRIBUTIONS[dist.name].support
        values = decl.value
        if support.discrete and decl.kind == "real":
            raise scope.error(
                f"{decl.name} follows the discrete {dist.name} but is declared real; "
                'declare it with type = "int"'
            )
        bad = None
        if support.kind == "positive" and np.any(values <= 0):
            bad = "values <= 0, outside the support (0, inf)"
        elif support.kind == "unit" and np.any((values <= 0) | (values >= 1)):
            bad = "values outside the support (0, 1)"
        elif support.kind == "binary" and np.any((values != 0) & (values != 1)):
            bad = "values other than 0 and 1"
        elif support.kind in ("count", "bounded_count") and np.any(values < 0):
            bad = "negative counts"
        if bad:
            raise DataError(
                f"{decl.name} holds {bad} of {dist.name}; fix the data or the distribution",
                file=scope.file, entry=scope.entry, line=scope.line,
            )


@functools.cache
def _package_dirs() -> tuple[str, ...]:
    """The folders of crossppl's packages: a warning names the first caller outside them."""
    dirs = []
    for name in ("crossppl", "crossppl.models", "crossppl.backends", "crossppl.compare"):
        spec = importlib.util.find_spec(name)
        dirs += [os.path.join(d, "") for d in (spec.submodule_search_locations or [])]
    return tuple(dirs)


def _model_symbols(
    data: Mapping[str, DataDecl], statements: tuple[Statement, ...]
) -> dict[str, Symbol]:
    """The names a likelihood or a generated quantity may use: data, parameters, derived."""
    symbols: dict[str, Symbol] = {
        d.name: Symbol(Role.DATA, d.dims, d.kind != "real", d.indexes) for d in data.values()
    }
    for s in statements:
        role = Role.PARAM if isinstance(s, ParamDecl) else Role.DERIVED
        symbols[s.name] = Symbol(role, s.dims)
    return symbols


def _short(text: object, quote: bool = False, limit: int = 60) -> str:
    """``text`` for a message: one line (repr-escaped if it holds odd characters), cut short."""
    text = str(text)
    shown = repr(text) if quote or not text.isprintable() else text
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _index_lines(lines: list[str]) -> dict[str, tuple[int, dict[str, int]]]:
    """Map each section to its header's line and the line of each of its keys (1-based)."""
    index: dict[str, tuple[int, dict[str, int]]] = {}
    keys: dict[str, int] | None = None
    for i, line in enumerate(lines, start=1):
        text = line.lstrip()
        if text.startswith("["):
            keys = None
            head = _SECTION_LINE.match(text)
            if head and head.group(1).strip() not in index:
                keys = {}
                index[head.group(1).strip()] = (i, keys)
            continue
        if keys is None:
            continue
        if text[:1] in ("'", '"'):
            end = text.find(text[0], 1)
            if end < 0:
                continue
            key, rest = text[1:end], text[end + 1 :]
        else:
            eq = text.find("=")
            if eq < 0:
                continue
            key, rest = text[:eq].rstrip(), text[eq:]
        if rest.lstrip().startswith("="):
            keys.setdefault(key, i)
    return index
