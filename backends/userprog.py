"""Hand-written Python programs (PyMC, NumPyro): load a user's file, call its entry function with
the spec's data by name, and map the program's variables to the spec's names.

Conventions for a user's file (see :class:`~crossppl.backends.base.UserProgram`):

* The file is imported as a module under a unique name (its folder is on ``sys.path`` while it
  is imported, so it may import modules next to it).
* The entry function is called with keyword arguments chosen BY NAME from its signature; a
  parameter named

  - like a data variable of the spec (``x``, ``y``, ...) receives that array (index data
    0-based), whether or not it has a default (``y=None`` receives the observed ``y``);
  - ``N_<dim>`` receives the dim's size;
  - ``coords`` receives the spec's coords (dim -> labels), ``data`` the dict of all of the
    above (unless the spec has data of those names);
  - like a program name mapped by :attr:`UserProgram.names` to one of the above receives that;
  - anything else keeps its default; without one it is a :class:`ProgramError`.

  ``**kwargs`` receives every data variable and dim size not already passed.
* Variables are matched to the spec by name (after :meth:`UserProgram.rename`); the program's
  other variables are left out of the comparison.

Every failure of the user's code (file missing, syntax error, import error, entry missing, an
exception raised by the entry, a variable of the wrong shape) is a :class:`ProgramError`, which
names the file, the function and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import linecache
import sys
import traceback
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from crossppl.models.ir import Model

from crossppl.errors import UserInputError

from .base import UserProgram, model_data

__all__ = [
    "ProgramError",
    "call_entry",
    "check_shapes",
    "entry_arguments",
    "entry_function",
    "fit_shape",
    "load_program",
    "program_points",
    "spec_posterior",
    "spec_terms",
    "spec_variables",
    "user_failure",
    "user_key",
]


class ProgramError(UserInputError):
    """A hand-written program cannot be loaded, called, or matched to the spec (the user's
    file needs a fix); the message names the file and the function."""


def _error(program: UserProgram, message: str, *, entry: str | None = None,
           line: int | None = None) -> ProgramError:
    return ProgramError(message, file=str(program.path), entry=entry, line=line)


def _entry_label(program: UserProgram, default: str) -> str:
    return f"{program.entry or default}()"


def _user_line(program: UserProgram, exc: BaseException) -> int | None:
    """The last line of the user's file in ``exc``'s traceback, if any."""
    target = str(Path(program.path).resolve())
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            if str(Path(frame.filename).resolve()) == target:
                line = frame.lineno
        except (OSError, ValueError):
            continue
    if line is None and isinstance(exc, SyntaxError) and exc.lineno:
        line = exc.lineno
    return line


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- loading ---------------------------------------------------------------------------------------
def load_program(program: UserProgram) -> types.ModuleType:
    """Import ``program.path`` as a fresh module under a unique name."""
    path = Path(program.path)
    if not path.exists():
        raise _error(program, "the program file does not exist; check the path")
    if not path.is_file():
        raise _error(program, "the program path is not a file; give the .py file itself")
    if path.suffix != ".py":
        raise _error(
            program,
            f"a {program.backend} program must be a Python (.py) file, found {path.suffix!r}",
        )
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise _error(program, f"the program file cannot be read: {exc}") from None
    digest = hashlib.sha256(str(path.resolve()).encode() + b"\0" + source).hexdigest()[:16]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"crossppl_user_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _error(program, "Python cannot import this file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module  # pickling by reference and dataclasses need it registered
    linecache.checkcache(str(path))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise _error(
            program, f"the program has a syntax error: {exc.msg}; fix the file",
            line=exc.lineno,
        ) from None
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _error(
            program,
            f"importing the program failed: {_describe(exc)}; the file must import without "
            "errors (install what it imports, and keep fitting code under "
            "`if __name__ == \"__main__\":`)",
            line=_user_line(program, exc),
        ) from exc
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    return module


def entry_function(program: UserProgram, module: types.ModuleType, default: str) -> Callable:
    """The entry function (``program.entry``, else ``default``) of the loaded ``module``."""
    name = program.entry or default
    fn = getattr(module, name, None)
    if callable(fn):
        return fn
    functions = sorted(
        k for k, v in vars(module).items()
        if inspect.isfunction(v) and v.__module__ == module.__name__ and not k.startswith("_")
    )
    found = f"; it defines {', '.join(functions)}" if functions else "; it defines no function"
    what = "is not a function" if fn is not None else "is not defined"
    raise _error(
        program,
        f"the entry function {name!r} {what} in the program{found}; give the function that "
        f"builds the model as entry=...",
    )


# -- calling ---------------------------------------------------------------------------------------
def available_arguments(model: Model) -> dict[str, Any]:
    """What an entry's parameters can receive: data, ``N_<dim>``, ``coords`` and ``data``."""
    values: dict[str, Any] = dict(model_data(model))
    extra = {"coords": model.coords, "data": dict(values)}
    for key, value in extra.items():
        values.setdefault(key, value)
    return values


def entry_arguments(
    fn: Callable, model: Model, program: UserProgram, default: str
) -> tuple[tuple, dict[str, Any]]:
    """Positional-only and keyword arguments of ``fn``, chosen by parameter name."""
    label = _entry_label(program, default)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise _error(program, f"its signature cannot be read: {exc}", entry=label) from None
    values = available_arguments(model)
    plain = list(model_data(model))
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    passed: set[str] = set()
    for param in sig.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            continue
        if param.kind is param.VAR_KEYWORD:
            for key in plain:
                if key not in passed and key not in sig.parameters:
                    kwargs[key] = values[key]
            continue
        source = param.name if param.name in values else program.rename(param.name)
        if source in values:
            value = values[source]
            passed.add(source)
        elif param.default is not param.empty:
            if param.kind is param.POSITIONAL_ONLY:
                args.append(param.default)
            continue
        else:
            data_names = [d.name for d in model.data]
            dims = [f"N_{d.name}" for d in model.dims]
            raise _error(
                program,
                f"its parameter {param.name!r} matches nothing the spec provides; name each "
                f"parameter after a spec data variable ({', '.join(data_names) or 'none'}), a "
                f"dim size ({', '.join(dims) or 'none'}), 'coords' or 'data', give it a "
                "default, or map it with names={" + repr(param.name) + ": <spec data name>}",
                entry=label,
            )
        if param.kind is param.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[param.name] = value
    return tuple(args), kwargs


def call_entry(program: UserProgram, fn: Callable, args: tuple, kwargs: Mapping[str, Any],
               default: str) -> Any:
    """``fn(*args, **kwargs)``; an exception becomes a :class:`ProgramError` at the user's
    line."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        given = [*([f"{len(args)} positional"] if args else []), *kwargs] or ["no arguments"]
        raise _error(
            program,
            f"calling it with the spec's data ({', '.join(given)}) raised "
            f"{_describe(exc)}; fix the program (or the spec's data)",
            entry=_entry_label(program, default),
            line=_user_line(program, exc),
        ) from exc


def user_failure(program: UserProgram, exc: BaseException, action: str,
                 default: str) -> ProgramError | None:
    """A :class:`ProgramError` for ``exc`` if it was raised in the user's file, else None
    (then the engine failed)."""
    line = _user_line(program, exc)
    if line is None:
        return None
    return _error(program, f"{action} raised {_describe(exc)}; fix the program",
                  entry=_entry_label(program, default), line=line)


def user_key(program: UserProgram) -> str:
    """What identifies a user's program in compile caches: its file, text and entry."""
    path = Path(program.path)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""  # loading it fails with the user's error, before anything is cached
    return f"{path.resolve()}\0{program.entry}\0{text}"


# -- names and shapes ------------------------------------------------------------------------------
def spec_variables(
    model: Model,
    program: UserProgram,
    variables: Iterable[str],
    *,
    parameters: Iterable[str] = (),
    default: str = "",
) -> dict[str, str]:
    """Program name -> spec name of the program's ``variables`` that the spec also has (its
    parameters and derived quantities).

    ``parameters`` (the entry's parameter names) count as known names for ``program.names``:
    a mapped name the program has nowhere is an error (most likely a typo), and so is a program
    that shares no variable with the spec.
    """
    variables = list(variables)
    wanted = [s.name for s in model.statements]
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in variables:
        spec = program.rename(name)
        if spec not in wanted:
            continue
        if spec in seen:
            raise _error(
                program,
                f"both {seen[spec]!r} and {name!r} stand for the spec's {spec!r}; map one "
                "name only",
                entry=_entry_label(program, default) if default else None,
            )
        seen[spec] = name
        out[name] = spec
    known = {*variables, *parameters}
    unknown = [p for p, _ in program.names if p not in known]
    if unknown:
        raise _error(
            program,
            f"names maps {', '.join(map(repr, unknown))}, which the program does not define; "
            f"its variables are {', '.join(variables) or 'none'}",
        )
    if not out:
        raise _error(
            program,
            f"none of the program's variables ({', '.join(variables) or 'none'}) is a variable "
            f"of the spec ({', '.join(wanted)}); name them as the spec does or map them with "
            "names={program name: spec name}",
        )
    return out


def _fits(have: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """Whether ``have`` is ``want`` up to axes of size 1."""
    return [s for s in have if s != 1] == [s for s in want if s != 1]


def _shape_error(program: UserProgram, name: str, spec: str, have: tuple[int, ...],
                 want: tuple[int, ...]) -> ProgramError:
    label = f"the variable {name!r}" + (f" (the spec's {spec!r})" if spec != name else "")
    return _error(
        program,
        f"{label} has shape {have} in the program but {want} in the spec; give it the spec's "
        "dims in the spec's order (axes of size 1 may be added or left out)",
    )


def check_shapes(model: Model, program: UserProgram, names: Mapping[str, str],
                 shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise a :class:`ProgramError` before sampling if a program variable (``names``:
    program -> spec name; ``shapes``: program name -> shape of one draw) cannot take the
    spec's shape."""
    for name, spec in names.items():
        if name in shapes:
            want = _dims_of(model, spec)
            if not _fits(tuple(shapes[name]), want):
                raise _shape_error(program, name, spec, tuple(shapes[name]), want)


def fit_shape(program: UserProgram, arr: np.ndarray, lead: tuple[int, ...],
              want: tuple[int, ...], name: str, spec: str) -> np.ndarray:
    """``arr`` (draws of the program's ``name``, shape ``lead + something``) laid out as
    ``lead + want`` (the shape of the spec's ``spec``).

    Shapes that differ only by axes of size 1 (``(30, 1)`` for ``(30,)``) are reshaped; any
    other difference is a :class:`ProgramError`.
    """
    arr = np.asarray(arr)
    have = arr.shape[len(lead):]
    if arr.shape[: len(lead)] != lead or not _fits(have, want):
        raise _shape_error(program, name, spec, have, want)
    return arr if have == want else arr.reshape(*lead, *want)


def spec_posterior(model: Model, program: UserProgram, samples: Mapping[str, np.ndarray],
                   names: Mapping[str, str], lead: tuple[int, int]) -> dict[str, np.ndarray]:
    """Draws keyed by the spec's names (``names``: program -> spec), shaped
    ``(chain, draw, *spec dims)``."""
    out = {}
    for name, spec in names.items():
        if name in samples:
            arr = fit_shape(program, samples[name], lead, _dims_of(model, spec), name, spec)
            out[spec] = np.asarray(arr, dtype=np.float64)
    return out


def _dims_of(model: Model, name: str) -> tuple[int, ...]:
    for stmt in (*model.statements, *model.observed):
        if stmt.name == name:
            return tuple(model.dim(d).size for d in stmt.dims)
    raise KeyError(name)


def program_points(
    model: Model,
    program: UserProgram,
    points: Mapping[str, np.ndarray],
    shapes: Mapping[str, tuple[int, ...]],
) -> tuple[int, dict[str, np.ndarray]]:
    """Values of the program's free variables (``shapes``: program name -> shape) from
    ``points`` (spec names -> ``(n, *spec dims)``): ``n`` and program name -> ``(n, *shape)``."""
    arrays = {}
    ns = set()
    for prog_name, shape in shapes.items():
        spec = program.rename(prog_name)
        if spec not in points:
            raise _error(
                program,
                f"the program's variable {prog_name!r} gets no value from the points (they "
                f"hold {', '.join(points) or 'nothing'}); a free variable must be a spec "
                "parameter, named as in the spec or mapped with names={program name: spec "
                "name}",
            )
        arr = np.asarray(points[spec], dtype=np.float64)
        if arr.ndim == 0:
            raise ValueError(f"points of {spec!r} need a leading axis of points, shape (n, ...)")
        n = arr.shape[0]
        ns.add(n)
        arrays[prog_name] = _to_program_shape(program, arr, tuple(shape), prog_name, spec)
    if len(ns) > 1:
        raise ValueError("every point array needs the same leading size n")
    n = ns.pop() if ns else next((np.shape(v)[0] for v in points.values()), 0)
    return n, arrays


def _to_program_shape(program: UserProgram, arr: np.ndarray, shape: tuple[int, ...],
                      name: str, spec: str) -> np.ndarray:
    have = arr.shape[1:]
    if not _fits(have, shape):
        raise _shape_error(program, name, spec, shape, have)
    return arr if have == shape else arr.reshape(arr.shape[0], *shape)


def spec_terms(program: UserProgram | None, terms: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
    """Per-variable terms keyed by the spec's names (terms of program variables mapped to the
    same spec name are added)."""
    out: dict[str, np.ndarray] = {}
    for name, value in terms.items():
        spec = program.rename(name) if program is not None else name
        value = np.asarray(value, dtype=np.float64)
        out[spec] = out[spec] + value if spec in out else value
    return out
