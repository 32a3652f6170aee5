"""Engines that fit a Stan program: PyStan (httpstan, in a Stan host process) and CmdStanPy.

Both run Stan's default NUTS (``hmc_nuts_diag_e_adapt``) under one :class:`FitConfig` and return
:class:`~crossppl.backends.base.Draws` keyed by the PROGRAM's names: every parameter, transformed
parameter and generated quantity, shaped ``(chain, draw, *Stan dims)``. They know nothing of the
spec; :class:`~crossppl.backends.stan.StanBackend` maps the names and shapes, the same way for a
generated program and a hand-written one. Settings crossppl does not set (``init_radius``,
``refresh``, adaptation windows, ...) are left to the engine, so its own defaults apply; with
``init = "uniform"`` that is Stan's own initialization, uniform on (-2, 2) unconstrained.

Stan's console chatter is kept from the user: the "Informational Message: The current Metropolis
proposal is about to be rejected ..." lines that vague priors cause during warmup are counted and
recorded in ``Draws.extra_attrs`` (``stan_warmup_messages``, ``stan_sampling_messages``), and a
progress display is shown only when ``config.show_progress``. Genuine failures (the program does
not compile, chains fail) raise :class:`~crossppl.errors.EngineError`.

Both also run a program's ``generated quantities`` alone with Stan's ``fixed_param`` sampler
(``fixed_param``, for prior predictive draws); a draw Stan cannot compute is NaN and its
message is counted (:func:`count_failed_draws`), not printed.

The Stan host
-------------
PyStan's engine does all of httpstan's work (building, sampling, ``fixed_param``, log
densities) in a Stan host (:class:`_StanHost`): a fresh interpreter started for each call by
:mod:`subprocess` (never a fork: httpstan's sampler pool forks, and forking a process that has
imported JAX can deadlock), in a session of its own, working in a scratch folder of its own in
the temporary folder (a cold build writes ``./build/temp.*`` relative to its working directory).
When the call returns or raises, or the caller gets KeyboardInterrupt or SystemExit, the host's
whole process group (httpstan's pool included) gets SIGTERM, then SIGKILL after
:data:`HOST_GRACE` seconds, and the scratch folder is removed; a host whose caller was killed
outright stops itself. The calling process never imports httpstan. Errors cross back intact
(:class:`~crossppl.errors.EngineError` pickles), reduced to the last meaningful lines of
httpstan's message (:func:`_error_text`: never its Python traceback); a progress display is
written by the host to standard error.

Caches
------
PyStan
    httpstan caches every compiled program in its own cache folder
    (``httpstan.cache.cache_directory()``, i.e. ``~/.cache/httpstan/<version>`` or under
    ``$XDG_CACHE_HOME``), which httpstan offers no option to move; a second fit of the same program
    does not recompile. The cache key (httpstan's model name) is a hash of the program's text
    and of the interpreter's path as spelled (the host's ``sys.executable``). The host computes
    it once per call, and every later request of the call uses the name the server answered
    with; nothing in this process depends on how its own interpreter was spelled. The host is
    started as ``<prefix>/bin/python`` whenever that is this interpreter (:func:`host_python`),
    so the ``crossppl`` console script (``.venv/bin/python3``), ``python -m`` and pytest share
    one build per program. httpstan also keeps every fit made with a seed; this engine deletes
    each fit once its draws are read, so that the cache does not grow with every run and every
    run really samples.
CmdStanPy
    The program is written to ``crossppl.config.cache_dir("stan")`` under a name holding its hash;
    CmdStanPy compiles the executable next to it and reuses it while it is newer than the file.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from crossppl.models.ir import Model

from crossppl.config import FitConfig, cache_dir
from crossppl.errors import CrossPPLError, EngineError
from crossppl.progress import STAN_COMPILING, report

from ..base import Draws, program_hash

__all__ = [
    "SAMPLE_STATS",
    "CmdStanPyEngine",
    "MessageLog",
    "PyStanEngine",
    "StancError",
    "cmdstan_available",
    "cmdstanpy_sample_args",
    "count_failed_draws",
    "count_messages",
    "get_engine",
    "host_python",
    "pystan_fit_args",
    "stanc",
    "stanc_info",
]

#: Why PyStan fails on Python 3.13 (its builds do not load there).
_PY313 = ("httpstan compiled it, but the module does not load on Python 3.13 (httpstan 4.17's "
          "wheel links every model with a stan_services.o built for Python 3.10, which calls "
          "_PyThreadState_UncheckedGet, removed in 3.13); run PyStan on Python 3.12, or use the "
          "cmdstanpy engine with a CmdStan installation")

log = logging.getLogger("crossppl.stan")

#: Stan's sampler outputs -> ArviZ's sample_stats names.
SAMPLE_STATS = {
    "lp__": "lp",
    "accept_stat__": "acceptance_rate",
    "stepsize__": "step_size",
    "treedepth__": "tree_depth",
    "n_leapfrog__": "n_steps",
    "divergent__": "diverging",
    "energy__": "energy",
}
_INTEGER_STATS = {"tree_depth", "n_steps"}

_NUTS = "stan::services::sample::hmc_nuts_diag_e_adapt"
_FIXED_PARAM = "stan::services::sample::fixed_param"
_INFO_MESSAGE = "Informational Message"
_SAMPLING_ITERATION = re.compile(r"Iteration:\s*\d+\s*/\s*\d+.*\(Sampling\)")
_ITERATION = re.compile(r"Iteration:\s*(\d+)\s*/\s*(\d+)")


def get_engine(name: str) -> PyStanEngine | CmdStanPyEngine:
    """The engine called ``name``."""
    engines = {"pystan": PyStanEngine, "cmdstanpy": CmdStanPyEngine}
    return engines[name]()


# -- Stan's messages -------------------------------------------------------------------------------
@dataclass
class MessageLog:
    """Stan's informational messages of one fit, counted per phase."""

    warmup: int = 0
    sampling: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, other: MessageLog) -> None:
        self.warmup += other.warmup
        self.sampling += other.sampling
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n
        self.warnings.extend(w for w in other.warnings if w not in self.warnings)

    def attrs(self) -> dict[str, Any]:
        """Flat, NetCDF-friendly attributes."""
        out: dict[str, Any] = {
            "stan_warmup_messages": self.warmup,
            "stan_sampling_messages": self.sampling,
        }
        if self.reasons:
            top = max(self.reasons, key=self.reasons.__getitem__)
            out["stan_message_example"] = top
        if self.warnings:
            out["stan_warnings"] = " | ".join(self.warnings)
        return out


def count_messages(lines: Iterable[str]) -> MessageLog:
    """Count the "Informational Message" lines of one chain's console output.

    Messages before the first ``Iteration: ... (Sampling)`` line are warmup's (Stan logs that line
    before the first sampling transition). The line after each message that starts with
    ``Exception:`` says why the proposal was rejected; those reasons are tallied too.
    """
    result = MessageLog()
    sampling = False
    expect_reason = False
    for raw in lines:
        line = raw.strip()
        if line.startswith(("info:", "warn:", "error:")):
            line = line.split(":", 1)[1].strip()
        if _SAMPLING_ITERATION.search(line):
            sampling = True
        if _INFO_MESSAGE in line:
            if sampling:
                result.sampling += 1
            else:
                result.warmup += 1
            expect_reason = True
            continue
        if expect_reason and line.startswith("Exception:"):
            reason = re.sub(r"\s*\(in '.*$", "", line[len("Exception:"):].strip())
            result.reasons[reason] = result.reasons.get(reason, 0) + 1
            expect_reason = False
        elif line.startswith("WARNING:") and line not in result.warnings:
            result.warnings.append(line)
    return result


def count_failed_draws(lines: Iterable[str]) -> MessageLog:
    """Count the draws of a ``fixed_param`` run that Stan could not compute.

    When a statement of ``generated quantities`` throws (``normal_rng`` with an infinite scale),
    Stan logs the exception (a line with ``Exception`` and the function's message) and writes
    NaN for every value of that draw; each such line counts as one failed draw (``sampling``)
    and its message, without the program's location, as a reason.
    """
    result = MessageLog()
    for raw in lines:
        line = raw.strip()
        if line.startswith(("info:", "warn:", "error:")):
            line = line.split(":", 1)[1].strip()
        if "Exception" not in line:
            continue
        result.sampling += 1
        reason = re.sub(r"\s*\(in '.*$", "", line.split("Exception:", 1)[-1].strip())
        result.reasons[reason] = result.reasons.get(reason, 0) + 1
    return result


def _progress_writer(enabled: bool, label: str):
    """A function ``(done, total)`` that redraws a one-line progress display on stderr."""
    state = {"last": -1}
    stream = sys.stderr
    tty = stream.isatty() if hasattr(stream, "isatty") else False

    def write(done: int, total: int, final: bool = False) -> None:
        if report("sampling", done, total) or not enabled:  # compare's display, or ours
            return
        pct = int(100 * done / total) if total else 100
        if tty:
            stream.write(f"\r{label}: {pct:3d}% ({done}/{total})" + ("\n" if final else ""))
            stream.flush()
        elif final or pct // 10 > state["last"] // 10:
            stream.write(f"{label}: {pct:3d}% ({done}/{total})\n")
            stream.flush()
        state["last"] = pct

    return write


def _reshape(flat: np.ndarray, n_chains: int, n_draws: int, dims: tuple[int, ...]) -> np.ndarray:
    """(chain*draw, prod(dims)) column-major Stan values -> (chain, draw, *dims)."""
    arr = flat.reshape((n_chains * n_draws, *dims[::-1]))
    arr = arr.transpose(0, *range(len(dims), 0, -1)) if dims else arr
    return np.ascontiguousarray(arr.reshape((n_chains, n_draws, *dims)))


def _strip_paths(text: str) -> str:
    """stanc's messages without the temporary file names they quote."""
    text = re.sub(r"\(in '[^']*\.stan', (line \d+)[^)]*\)", r"(\1 of the program)", text)
    return re.sub(r" in '[^']*\.stan', line", " at line", text).strip()


def _stanc_binary() -> Path:
    """The stanc bundled with httpstan, found without importing httpstan."""
    import importlib.util

    spec = importlib.util.find_spec("httpstan")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'httpstan'", name="httpstan")
    return Path(next(iter(spec.submodule_search_locations))) / "stanc"


def stanc(program: str, timeout: float = 60) -> str:
    """Check ``program`` with stanc (the one bundled with httpstan, run with the same
    ``--warn-pedantic`` flag httpstan uses) and return its warnings; no C++ is built.

    Raises :class:`EngineError` with stanc's message if the program is rejected.
    """
    binary = _stanc_binary()
    with tempfile.TemporaryDirectory(prefix="crossppl_stanc_") as tmp:
        path = Path(tmp) / "program.stan"
        path.write_text(program, encoding="utf-8")
        done = subprocess.run(
            [str(binary), "--warn-pedantic", "--name", "crossppl_check", "--o",
             str(Path(tmp) / "program.hpp"), str(path)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    if done.returncode != 0:
        raise EngineError("stan", "stanc", f"stanc rejected the Stan program:\n"
                          f"{_strip_paths(done.stderr)}")
    return _strip_paths(done.stderr)


class StancError(EngineError):
    """stanc rejected a program; ``text`` is stanc's message, ``line`` the line it points at."""

    def __init__(self, text: str, line: int | None) -> None:
        self.text = text
        self.line = line
        super().__init__("stan", "stanc", f"stanc rejected the Stan program:\n{text}")


def stanc_info(path: str | Path, timeout: float = 60) -> dict[str, Any]:
    """stanc's ``--info`` description of the Stan file at ``path`` (the bundled stanc; no C++ is
    built): its ``inputs`` (the data block), ``parameters``, ``transformed parameters`` and
    ``generated quantities``, each name -> ``{"type": "int" | "real" | ..., "dimensions": rank}``
    (a ``matrix`` or an ``array[N] vector`` has rank 2), and its ``included_files``.

    Raises :class:`StancError` with stanc's message (which names the file and line) if the
    program does not parse or type-check.
    """
    binary = _stanc_binary()
    path = Path(path)
    done = subprocess.run(
        [str(binary), "--info", f"--include-paths={path.parent}", str(path)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if done.returncode != 0:
        text = (done.stderr or done.stdout).strip()
        found = re.search(r"line (\d+)", text)
        raise StancError(text, int(found.group(1)) if found else None)
    return json.loads(done.stdout)


# -- PyStan ----------------------------------------------------------------------------------------
def pystan_fit_args(config: FitConfig) -> dict[str, Any]:
    """httpstan's arguments for one chain (CmdStan's names), from ``config``.

    ``init = "uniform"`` and ``"engine"`` both leave ``init_radius`` to httpstan (Stan's 2).
    """
    return {
        "function": _NUTS,
        "random_seed": config.seed,
        "num_warmup": config.warmup,
        "num_samples": config.draws,
        "delta": float(config.target_accept),
        "max_depth": config.max_treedepth,
    }


#: Modules whose warnings during a PyStan call are noise to a crossppl user (httpstan's use of
#: deprecated marshmallow, aiohttp and importlib APIs); crossppl's own and other warnings pass.
_QUIET_MODULES = r"(httpstan|marshmallow|stan|importlib\.resources)(\.|$)"


@contextlib.contextmanager
def _quiet_pystan() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=_QUIET_MODULES)
        yield


def _pystan_client():
    """PyStan's httpstan client class (imported quietly); only the Stan host imports it."""
    with _quiet_pystan():
        from stan.common import HttpstanClient
    return HttpstanClient


#: httpstan appends ``traceback: `[...]``` (Python's whole traceback, one line) to its errors.
_HTTPSTAN_TRACEBACK = re.compile(r",?\s*traceback:\s*`\[.*\]`\s*$", re.S)
#: The ``repr`` of the exception an httpstan error quotes: ```ValueError('...')```.
_EXCEPTION_REPR = re.compile(r"""`(\w+)\((['"])(.*)\2\)`""", re.S)


#: Where httpstan's one-line messages (Stan's logger lines joined by spaces) break into lines.
_SENTENCE_END = re.compile(r"(?<=[.!)])\s+(?=[A-Z])")
_NUMBER = re.compile(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?")
_TRACEBACK_LINES = ("Traceback (most recent call last)", 'File "')


def _last_lines(text: str, n: int = 20, width: int = 400) -> str:
    """The last ``n`` meaningful lines of ``text``: one-line text is broken into its sentences;
    blank lines, a Python traceback's lines, repeated lines and a last line that is a header
    with nothing under it (``Rejecting initial value:``) are dropped; each line is cut to
    ``width`` characters."""
    text = text.strip()
    if "\n" not in text:
        text = _SENTENCE_END.sub("\n", text)
    lines: list[str] = []
    for line in (line.rstrip() for line in text.splitlines()):
        bare = line.strip()
        if bare and not bare.startswith(_TRACEBACK_LINES) and line not in lines:
            lines.append(line if len(line) <= width else line[:width] + " ...")
    if len(lines) > 1 and lines[-1].endswith(":"):
        lines.pop()
    return "\n".join(lines[-n:])


def _error_text(content: bytes | str) -> str:
    """The message of an httpstan error: the exception it quotes (``ValueError('...')`` ->
    its message; another type keeps its name), without the Python traceback httpstan appends
    and the temporary file names stanc quotes; its last meaningful lines."""
    if isinstance(content, bytes):
        content = content.decode(errors="replace")
    try:
        message = str(json.loads(content)["message"])
    except (ValueError, KeyError, TypeError):
        message = content
    message = _HTTPSTAN_TRACEBACK.sub("", message)
    found = _EXCEPTION_REPR.search(message)
    if found:
        kind, quote, inner = found.groups()
        with contextlib.suppress(ValueError, SyntaxError):
            inner = ast.literal_eval(quote + inner + quote)
        message = inner if kind in ("ValueError", "RuntimeError") else f"{kind}: {inner}"
    return _last_lines(_strip_paths(message))


@dataclass
class _Built:
    model_name: str
    params: list[dict]
    build_seconds: float
    cached: bool
    stanc_warnings: str


class PyStanEngine:
    """Fits through PyStan's httpstan server, run by a Stan host process of its own for each
    call (:class:`_StanHost`); sampling runs in httpstan's process pool inside that host."""

    name = "pystan"

    def __init__(self) -> None:
        # httpstan logs failures at CRITICAL with no handler of its own, which Python would print
        # on top of the EngineError raised here; a NullHandler (as libraries should have) stops
        # that while still letting the records propagate to handlers the user configured.
        httpstan_log = logging.getLogger("httpstan")
        if not any(isinstance(h, logging.NullHandler) for h in httpstan_log.handlers):
            httpstan_log.addHandler(logging.NullHandler())

    def error(self, message: str) -> EngineError:
        return EngineError("stan", self.name, message)

    # -- building -------------------------------------------------------------------------------
    def build(self, program: str, data: Mapping, progress: bool = False,
              label: str = "the program") -> _Built:
        """Compile ``program`` (or find it in httpstan's cache) and check ``data`` against it;
        ``label`` names the program in error messages."""
        with _StanHost(self) as host:
            return host.call("build", program, data, progress, label)

    async def _build(self, client, program: str, data: Mapping, progress: bool,
                     label: str = "the program") -> _Built:
        """(Stan host) Build ``program``; its httpstan model name is computed here once, and
        the name the server answers with is the one every later request uses."""
        import httpstan.models

        model_name = httpstan.models.calculate_model_name(program)
        start = time.perf_counter()
        async with _build_lock(model_name):
            resp = await client.post(f"/{model_name}/params", json={"data": data})
            cached = resp.status != 404
            if not cached and not report(STAN_COMPILING, notice=True) and progress:
                sys.stderr.write("Stan (pystan): compiling the program (about a minute, once)...\n")
                sys.stderr.flush()
            with _compiler_output_captured(not cached) as compiler_output:
                resp = await client.post("/models", json={"program_code": program})
                output = compiler_output() if resp.status != 201 else ""
        if resp.status != 201:
            text = _error_text(resp.content)
            if output.strip():
                text += "\ncompiler output (last lines):\n" + "\n".join(
                    output.strip().splitlines()[-20:])
            if re.match(r"(Semantic|Syntax) error", text):
                raise self.error(f"stanc rejected {_stan_label(label)}:\n{text}")
            if resp.status == 500 and sys.version_info >= (3, 13):
                raise self.error(f"building {label} failed: {_PY313}")
            raise self.error(
                f"building {label} failed (is a C++ compiler installed?):\n{text}"
            )
        model_name = resp.json()["name"]
        stanc_warnings = _strip_paths(resp.json().get("stanc_warnings") or "")
        resp = await client.post(f"/{model_name}/params", json={"data": data})
        if resp.status == 500 and sys.version_info >= (3, 13):
            raise self.error(f"loading {label} failed: {_PY313}")
        if resp.status != 200:
            raise self.error(f"the data do not fit {label}: {_error_text(resp.content)}")
        return _Built(model_name, list(resp.json()["params"]), time.perf_counter() - start,
                      cached, stanc_warnings)

    async def _host_build(self, client, program: str, data: Mapping, progress: bool,
                          label: str) -> _Built:
        return await self._build(client, program, data, progress, label)

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, program: str, data: Mapping, config: FitConfig, *, stem: str = "program",
               label: str = "the program",
               check: Callable[[dict[str, tuple[int, ...]]], None] | None = None) -> Draws:
        """Fit ``program`` with NUTS under ``config``; draws keyed by the program's names.
        ``label`` names the program in error messages (``stem`` is for CmdStanPy's cache);
        ``check`` is called with every variable's dims once the program is built, before
        sampling (it raises to stop)."""
        show = config.show_progress
        with _StanHost(self) as host:
            built = host.call("build", program, data, show, label)
            if check is not None:
                check({p["name"]: tuple(p["dims"]) for p in built.params})
            draws = host.call("sample", built, data, config, show)
        warmup = draws.extra_attrs.get("stan_warmup_messages", 0)
        sampling = draws.extra_attrs.get("stan_sampling_messages", 0)
        if warmup or sampling:
            log.info("Stan reported %d informational messages during warmup and %d during "
                     "sampling (recorded in the attrs)", warmup, sampling)
        return draws

    async def _host_sample(self, client, built: _Built, data: Mapping, config: FitConfig,
                           show: bool) -> Draws:
        start = time.perf_counter()
        outputs = await self._sample(client, built, data, config, show)
        draws = self.to_draws(built, outputs, config)
        draws.sampling_seconds = time.perf_counter() - start
        return draws

    async def _sample(self, client, built: _Built, data: Mapping, config: FitConfig,
                      show: bool) -> list[bytes]:
        args = pystan_fit_args(config)
        operations = []
        for chain in range(1, config.chains + 1):
            resp = await client.post(
                f"/{built.model_name}/fits", json={**args, "chain": chain, "data": data}
            )
            if resp.status != 201:
                raise self.error(f"httpstan refused the fit: {_error_text(resp.content)}")
            operations.append(resp.json())
        progress = _progress_writer(show, "Stan (pystan): sampling")
        total = config.chains * (config.warmup + config.draws)
        done_iterations: dict[str, int] = {}
        while not all(op["done"] for op in operations):
            for op in operations:
                if op["done"]:
                    continue
                resp = await client.get(f"/{op['name']}")
                op.update(resp.json())
                found = _ITERATION.findall(op.get("metadata", {}).get("progress") or "")
                if found:
                    done_iterations[op["name"]] = int(found[-1][0])
            progress(sum(done_iterations.values()), total)
            await asyncio.sleep(0.05)
        progress(total, total, final=True)
        outputs: list[bytes] = []
        failures: list[tuple[int, str]] = []
        for chain, op in enumerate(operations, start=1):
            fit_name = op["result"].get("name")
            if fit_name is None:
                failures.append((chain, _error_text(json.dumps(op["result"]))))
                continue
            resp = await client.get(f"/{fit_name}")
            if resp.status != 200:
                failures.append((chain, f"its draws could not be read ({resp.status})"))
                continue
            outputs.append(resp.content)
            await client.delete(f"/{fit_name}")
        if failures:
            which = (f"all {config.chains} chains" if len(failures) == config.chains
                     else f"{len(failures)} of {config.chains} chains")
            reasons = {_NUMBER.sub("#", reason): None for _, reason in failures}
            if len(reasons) == 1:  # the same reason (its numbers aside): said once
                detail = failures[0][1]
            else:
                detail = "\n".join(f"chain {chain}: " + reason.replace("\n", "\n  ")
                                   for chain, reason in failures)
            raise self.error(f"sampling failed in {which}: {detail}")
        return outputs

    # -- forward simulation ---------------------------------------------------------------------
    def fixed_param(self, program: str, data: Mapping, draws: int, seed: int, *,
                    stem: str = "program", label: str = "the program"
                    ) -> tuple[dict[str, np.ndarray], MessageLog]:
        """Run ``program``'s generated quantities ``draws`` times with Stan's ``fixed_param``
        sampler (one chain, no MCMC). Returns every variable (program names) as an array of
        shape ``(draws, *Stan dims)``, NaN where Stan could not compute a draw, and the failed
        draws' messages, counted (never printed). ``stem`` is for CmdStanPy's cache."""
        with _StanHost(self) as host:
            return host.call("fixed_param", program, data, draws, seed, label)

    async def _host_fixed_param(self, client, program: str, data: Mapping, draws: int,
                                seed: int, label: str
                                ) -> tuple[dict[str, np.ndarray], MessageLog]:
        args = {"function": _FIXED_PARAM, "data": data, "num_samples": draws,
                "random_seed": seed, "chain": 1}
        built = await self._build(client, program, data, False, label)
        resp = await client.post(f"/{built.model_name}/fits", json=args)
        if resp.status != 201:
            raise self.error(f"httpstan refused the run: {_error_text(resp.content)}")
        op = resp.json()
        while not op["done"]:
            await asyncio.sleep(0.05)
            op.update((await client.get(f"/{op['name']}")).json())
        fit_name = op["result"].get("name")
        if fit_name is None:
            raise self.error(f"running {label} failed: {_error_text(json.dumps(op['result']))}")
        resp = await client.get(f"/{fit_name}")
        if resp.status != 200:
            raise self.error(f"the draws of {label} could not be read ({resp.status})")
        await client.delete(f"/{fit_name}")
        rows, columns, log_lines = _parse_output(resp.content)
        if len(rows) != draws:
            raise self.error(f"{label} returned {len(rows)} draws, expected {draws}")
        table = np.asarray(rows, dtype=float).reshape(draws, -1)
        where = {name: i for i, name in enumerate(columns)}
        values = {}
        for param in built.params:
            names = param["constrained_names"]
            first = where[names[0]] if names else 0
            flat = table[:, first:first + len(names)]
            values[param["name"]] = _reshape(flat, 1, draws, tuple(param["dims"]))[0]
        return values, count_failed_draws(log_lines)

    def to_draws(self, built: _Built, outputs: list[bytes], config: FitConfig) -> Draws:
        """Parse httpstan's per-chain outputs into :class:`Draws`."""
        messages = MessageLog()
        tables = []
        columns: list[str] = []
        for output in outputs:
            rows, columns, log_lines = _parse_output(output)
            if len(rows) != config.draws:
                raise self.error(f"a chain returned {len(rows)} draws, expected {config.draws}")
            tables.append(rows)
            messages.add(count_messages(log_lines))
        table = np.asarray(tables, dtype=float).reshape(config.chains * config.draws, -1)
        where = {name: i for i, name in enumerate(columns)}
        posterior = {}
        for param in built.params:
            names = param["constrained_names"]
            if not names:
                continue
            first = where[names[0]]
            flat = table[:, first:first + len(names)]
            posterior[param["name"]] = _reshape(flat, config.chains, config.draws,
                                                tuple(param["dims"]))
        stats = {}
        for stan_name, name in SAMPLE_STATS.items():
            if stan_name in where:
                values = table[:, where[stan_name]].reshape(config.chains, config.draws)
                if name == "diverging":
                    values = values.astype(bool)
                elif name in _INTEGER_STATS:
                    values = values.astype(np.int64)
                stats[name] = values
        extra = {**messages.attrs(), "stan_compiled_now": int(not built.cached)}
        if built.stanc_warnings:
            extra["stan_stanc_warnings"] = built.stanc_warnings
        return Draws(posterior, stats, engine=self.name, build_seconds=built.build_seconds,
                     extra_attrs=extra)

    # -- log density ----------------------------------------------------------------------------
    def log_density(self, program: str, data: Mapping, points: Mapping[str, np.ndarray], *,
                    built: _Built | None = None, label: str = "the program") -> np.ndarray:
        """Log density (no Jacobian) at each point, by httpstan's ``transform_inits`` (to the
        unconstrained space) and ``log_prob`` with ``adjust_transform`` false.

        ``points`` maps every parameter of the program (its names, its Stan dims) to an array of
        shape ``(n, *dims)`` of constrained values; ``built`` is :meth:`build`'s result if the
        caller has it already.
        """
        arrays = {name: np.asarray(value, dtype=float) for name, value in points.items()}
        with _StanHost(self) as host:
            return host.call("log_density", program, data, arrays, built, label)

    async def _host_log_density(self, client, program: str, data: Mapping,
                                points: Mapping[str, np.ndarray], built: _Built | None,
                                label: str) -> np.ndarray:
        if built is None:
            built = await self._build(client, program, data, False, label)
        n = len(next(iter(points.values()))) if points else 0
        out = np.empty(n)
        for i in range(n):
            _, out[i] = await self._point_log_prob(client, built, data, points, i)
        return out

    async def _point_log_prob(self, client, built: _Built, data: Mapping,
                              points: Mapping[str, np.ndarray], i: int
                              ) -> tuple[list[float], float]:
        """(Stan host) The unconstrained values of point ``i`` and the log density there."""
        values = {name: arr[i].tolist() for name, arr in points.items()}
        resp = await client.post(f"/{built.model_name}/transform_inits",
                                 json={"data": data, "constrained_parameters": values})
        unconstrained: list[float] = []
        if resp.status == 200:
            unconstrained = json.loads(resp.content)["params_r_unconstrained"]
            resp = await client.post(
                f"/{built.model_name}/log_prob",
                json={"data": data, "unconstrained_parameters": unconstrained,
                      "adjust_transform": False},
            )
        if resp.status != 200:
            raise self.error(f"log density at point {i}: {_error_text(resp.content)}")
        return unconstrained, json.loads(resp.content)["log_prob"]

    def log_density_terms(self, program: str, terms: str, n_terms: int, data: Mapping,
                          points: Mapping[str, np.ndarray], *, built: _Built | None = None,
                          label: str = "the program") -> tuple[np.ndarray, np.ndarray]:
        """The log density of ``program`` (as :meth:`log_density`) and the ``n_terms`` values
        of the generated quantities of ``terms`` (a terms program of
        :mod:`crossppl.backends.stan.terms`: ``program``'s parameters, one vector of terms) at
        each point: shapes ``(n,)`` and ``(n, n_terms)``.

        Each point goes to the unconstrained space by ``program``'s ``transform_inits``, then
        through ``log_prob`` (``program``) and ``write_array`` with generated quantities
        (``terms``). ``terms`` is built (and cached by httpstan) like any program.
        """
        arrays = {name: np.asarray(value, dtype=float) for name, value in points.items()}
        with _StanHost(self) as host:
            return host.call("log_density_terms", program, terms, n_terms, data, arrays, built,
                             label)

    async def _host_log_density_terms(self, client, program: str, terms: str, n_terms: int,
                                      data: Mapping, points: Mapping[str, np.ndarray],
                                      built: _Built | None, label: str
                                      ) -> tuple[np.ndarray, np.ndarray]:
        if built is None:
            built = await self._build(client, program, data, False, label)
        terms_label = f"the terms program of {_stan_label(label)}"
        terms_built = await self._build(client, terms, data, False, terms_label)
        n = len(next(iter(points.values()))) if points else 0
        logp, out = np.empty(n), np.empty((n, n_terms))
        for i in range(n):
            unconstrained, logp[i] = await self._point_log_prob(client, built, data, points, i)
            resp = await client.post(
                f"/{terms_built.model_name}/write_array",
                json={"data": data, "unconstrained_parameters": unconstrained,
                      "include_tparams": True, "include_gqs": True},
            )
            if resp.status != 200:
                raise self.error(f"the terms of {_stan_label(label)} at point {i}: "
                                 f"{_error_text(resp.content)}")
            values = json.loads(resp.content)["params_r_constrained"]
            if len(values) < n_terms:
                raise self.error(f"{terms_label} wrote {len(values)} values, expected at "
                                 f"least {n_terms}")
            out[i] = values[len(values) - n_terms:]
        return logp, out


# -- the Stan host ---------------------------------------------------------------------------------
#: Seconds the Stan host's process group has between SIGTERM and SIGKILL when a call is over.
HOST_GRACE = 1.0
#: Seconds between the Stan host's checks that the process that started it is alive.
_HOST_WATCH = 0.5
#: Prefix of the Stan host's scratch folder (its working directory) in the temporary folder.
HOST_SCRATCH_PREFIX = "crossppl-stan-"

#: What the Stan host runs (``python -c``): it takes the caller's ``sys.path`` (the first
#: message), then serves requests (:func:`_host_main`).
_HOST_BOOT = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "conn = Connection(int(sys.argv[1]))\n"
    "sys.path[:] = conn.recv()\n"
    "from crossppl.backends.stan.engines import _host_main\n"
    "_host_main(conn, int(sys.argv[2]))\n"
)


def host_python() -> str:
    """The interpreter that runs the Stan host: this one, spelled ``<prefix>/bin/python`` when
    that is this interpreter (a virtual environment's ``bin/python``).

    httpstan's build cache key holds the host's ``sys.executable`` as spelled, and one
    interpreter is spelled ``.venv/bin/python3`` by a console script and ``.venv/bin/python``
    by ``python -m``; started as one spelling, the host builds each program once for both.
    """
    exe = sys.executable
    canonical = os.path.join(sys.prefix, "bin", "python")
    if exe and os.path.exists(canonical) and os.path.realpath(canonical) == os.path.realpath(exe):
        return canonical
    return exe or canonical


#: The longest scratch folder in which httpstan's sockets (``httpstan_XXXXXXXX.sock``) still
#: have a path that fits in a Unix socket address (107 bytes).
_SOCKET_FOLDER_MAX = 80


def _host_environment(scratch: str) -> dict[str, str] | None:
    """The Stan host's environment: this one with ``TMPDIR`` the scratch folder (httpstan never
    removes the socket file each fit binds there), unless that folder's path is too long for a
    socket's; then this one unchanged."""
    if len(os.fsencode(scratch)) > _SOCKET_FOLDER_MAX:
        return None
    return {**os.environ, "TMPDIR": scratch}


def _output_fd() -> int:
    """Where the Stan host's standard output and error go: this process's descriptor 2 when it
    is open (a progress display reaches the terminal), else nowhere."""
    try:
        os.fstat(2)
    except OSError:
        return subprocess.DEVNULL
    return 2


def stop_process_group(proc: subprocess.Popen, grace: float) -> None:
    """Stop the process group led by ``proc``: SIGTERM, then SIGKILL to what is left after
    ``grace`` seconds (also when the wait is interrupted); ``proc`` is reaped."""
    try:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class _StanHost:
    """A Stan host for the length of a ``with`` block: a fresh interpreter (:func:`host_python`,
    started by :mod:`subprocess`, never a fork of this process) in a session of its own, whose
    working directory and temporary folder (``TMPDIR``: httpstan leaves files there) are a
    scratch folder of its own, running httpstan's server and answering
    :class:`PyStanEngine`'s requests (:meth:`call`).

    However the block is left (a result, an error, KeyboardInterrupt, SystemExit), the host's
    whole process group, httpstan's forked sampler pool included, is stopped and the scratch
    folder removed. A host whose caller dies without stopping it stops itself
    (:func:`_watch_parent`).
    """

    def __init__(self, engine: PyStanEngine) -> None:
        self.engine = engine
        self.proc: subprocess.Popen | None = None
        self.conn: Any = None
        self.scratch = ""

    def __enter__(self) -> _StanHost:
        from multiprocessing.connection import Pipe

        self.scratch = tempfile.mkdtemp(prefix=HOST_SCRATCH_PREFIX)
        try:
            self.conn, theirs = Pipe()
            with theirs:
                self.proc = subprocess.Popen(
                    [host_python(), "-c", _HOST_BOOT, str(theirs.fileno()), str(os.getpid())],
                    cwd=self.scratch, env=_host_environment(self.scratch),
                    start_new_session=True, pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL, stdout=_output_fd(),
                )
            self.conn.send([os.path.abspath(p) if p else os.getcwd() for p in sys.path])
        except OSError as exc:
            self.__exit__(None, None, None)
            raise self.engine.error(f"could not start the Stan host process: {exc}") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.proc is not None:
                stop_process_group(self.proc, HOST_GRACE)
        finally:
            if self.conn is not None:
                self.conn.close()
            shutil.rmtree(self.scratch, ignore_errors=True)

    def call(self, request: str, *args: Any) -> Any:
        """Run ``PyStanEngine._host_<request>(client, *args)`` in the host; return its result
        or raise the error it raised (an :class:`EngineError` arrives intact)."""
        try:
            self.conn.send((request, args))
            status, payload, detail = self.conn.recv()
        except (EOFError, OSError):
            code = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(HOST_GRACE)
            how = (f"killed by signal {-code}" if code is not None and code < 0
                   else f"exit code {code}")
            raise self.engine.error(f"the Stan host process stopped unexpectedly ({how})"
                                    ) from None
        if status == "ok":
            return payload
        if detail:
            log.debug("the Stan host's traceback:\n%s", detail)
        raise payload


def _host_main(conn: Any, parent: int) -> None:
    """The Stan host: serve requests on ``conn`` until the caller closes it or stops the host."""
    threading.Thread(target=_watch_parent, args=(parent, os.getcwd()), daemon=True).start()
    # httpstan's server logs a failed request's traceback through aiohttp ("Error handling
    # request"); the EngineError it becomes says what went wrong, once.
    server_log = logging.getLogger("aiohttp.server")
    server_log.addHandler(logging.NullHandler())
    server_log.propagate = False
    engine = PyStanEngine()
    with _quiet_pystan():
        asyncio.run(_host_serve(engine, conn))


def _watch_parent(parent: int, scratch: str) -> None:
    """Once the process that started this Stan host is gone (killed before it could stop the
    host), remove the host's scratch folder and end its process group."""
    while os.getppid() == parent:
        time.sleep(_HOST_WATCH)
    if os.path.basename(scratch).startswith(HOST_SCRATCH_PREFIX):
        shutil.rmtree(scratch, ignore_errors=True)
    os.killpg(0, signal.SIGKILL)


async def _host_serve(engine: PyStanEngine, conn: Any) -> None:
    HttpstanClient = _pystan_client()
    async with HttpstanClient() as client:
        while True:
            try:
                request, args = await asyncio.to_thread(conn.recv)
            except EOFError:
                return
            try:
                result = await getattr(engine, f"_host_{request}")(client, *args)
                reply = ("ok", result, "")
            except Exception as exc:
                reply = ("error", _portable_error(exc), traceback.format_exc())
            conn.send(reply)


def _portable_error(exc: Exception) -> CrossPPLError:
    """``exc`` if it is a crossppl error that pickles intact, else an :class:`EngineError` with
    its type and the last lines of its message."""
    if isinstance(exc, CrossPPLError):
        with contextlib.suppress(Exception):
            pickle.loads(pickle.dumps(exc))
            return exc
    return EngineError("stan", "pystan", f"the Stan host failed: {type(exc).__name__}: "
                       f"{_last_lines(str(exc))}")


@contextlib.contextmanager
def _compiler_output_captured(active: bool = True) -> Iterator[Callable[[], str]]:
    """Send file descriptor 2 to a scratch file while g++ builds a program; yields a function
    that returns what was written there. httpstan captures the compiler's output itself only
    when ``sys.stderr`` has a working ``fileno()``; where it has none (a notebook, a test's
    capture) the compiler's warnings, pages of them for Stan's headers, reached the terminal."""
    if not active:
        yield lambda: ""
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:

        def captured() -> str:
            sink.seek(0)
            return sink.read().decode(errors="replace")

        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.asynccontextmanager
async def _build_lock(model_name: str):
    """Hold an exclusive lock on building ``model_name`` (httpstan's ``models/<id>``): httpstan
    builds in a folder it empties first, so two processes building the same program at once
    (two crossppl commands, a test suite's parallel jobs) would break each other's build. The
    second waits, then finds the program in httpstan's cache."""
    path = cache_dir("stan") / f"pystan-{model_name.replace('/', '-')}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _stan_label(label: str) -> str:
    return "the Stan program" if label == "the program" else label


def _parse_output(output: bytes) -> tuple[list[tuple], list[str], list[str]]:
    """One chain's httpstan output -> (draw rows, column names, logger lines).

    Draw lines are parsed with orjson (a PyStan dependency, as PyStan itself does); lines with
    NaN or infinity, which orjson rejects as non-standard JSON, with :mod:`json`.
    """
    import orjson

    rows: list[tuple] = []
    columns: list[str] = []
    log_lines: list[str] = []
    for line in output.splitlines():
        if b'"logger"' in line:
            msg = json.loads(line)
            if msg.get("topic") == "logger":
                log_lines.extend(v for v in msg["values"] if isinstance(v, str))
            continue
        if b'"sample"' not in line:
            continue  # the diagnostic writer's lines, most of the output
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            msg = json.loads(line)
        values = msg.get("values")
        if msg.get("topic") == "sample" and isinstance(values, dict):
            columns = columns or list(values)
            rows.append(tuple(values.values()))
    return rows, columns, log_lines


# -- CmdStanPy -------------------------------------------------------------------------------------
def cmdstan_available() -> bool:
    """Whether CmdStanPy finds a CmdStan installation."""
    try:
        import cmdstanpy
    except ImportError:
        return False
    try:
        with _quiet_cmdstanpy():
            cmdstanpy.cmdstan_path()
    except (ValueError, RuntimeError, OSError):
        return False
    return True


def cmdstanpy_sample_args(config: FitConfig, data: Mapping, output_dir: str | None = None
                          ) -> dict[str, Any]:
    """Keyword arguments of ``CmdStanModel.sample`` for ``config``.

    ``init = "uniform"`` and ``"engine"`` both leave ``inits`` to CmdStan (uniform on (-2, 2)).
    """
    args: dict[str, Any] = {
        "data": data,
        "chains": config.chains,
        "iter_warmup": config.warmup,
        "iter_sampling": config.draws,
        "seed": config.seed,
        "adapt_delta": float(config.target_accept),
        "max_treedepth": config.max_treedepth,
        "show_progress": config.show_progress,
        "show_console": False,
    }
    if output_dir is not None:
        args["output_dir"] = output_dir
    return args


def cmdstan_program_path(model: Model | str, program: str) -> Path:
    """Where the program is written for CmdStan: named by model (or a stem: a user's file's)
    and hash, so compiles are cached (CmdStanPy builds the executable next to it)."""
    stem = re.sub(r"\W", "_", model if isinstance(model, str) else model.name)
    return cache_dir("stan") / f"{stem}_{program_hash(program)}.stan"


class _DropCmdStanPyNoise(logging.Filter):
    """Drops CmdStanPy's INFO chatter and its "Non-fatal error during sampling" warning (the
    messages it quotes are counted from the console transcripts instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.INFO:
            return False
        return not str(record.getMessage()).startswith("Non-fatal error during sampling")


@contextlib.contextmanager
def _quiet_cmdstanpy() -> Iterator[None]:
    logger = logging.getLogger("cmdstanpy")
    noise = _DropCmdStanPyNoise()
    logger.addFilter(noise)
    try:
        yield
    finally:
        logger.removeFilter(noise)


class CmdStanPyEngine:
    """Fits with CmdStanPy's documented API (``CmdStanModel(stan_file=...).sample(...)``)."""

    name = "cmdstanpy"

    def error(self, message: str) -> EngineError:
        return EngineError("stan", self.name, message)

    def build(self, stem: Model | str, program: str, label: str = "the program"):
        """The compiled ``CmdStanModel`` of ``program`` (compiled once per program text)."""
        if not cmdstan_available():
            raise self.error(
                "no CmdStan installation found (cmdstanpy.cmdstan_path() fails); install one "
                "with `python -m cmdstanpy.install_cmdstan`, or use engine='pystan'"
            )
        import cmdstanpy

        path = cmdstan_program_path(stem, program)
        if not path.exists() or path.read_text(encoding="utf-8") != program:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(program, encoding="utf-8")
            os.replace(tmp, path)
        try:
            with _quiet_cmdstanpy():
                return cmdstanpy.CmdStanModel(stan_file=str(path))
        except (ValueError, RuntimeError) as exc:
            raise self.error(f"compiling {label} failed:\n{exc}") from None

    def sample(self, program: str, data: Mapping, config: FitConfig, *, stem: str = "program",
               label: str = "the program",
               check: Callable[[dict[str, tuple[int, ...]]], None] | None = None) -> Draws:
        """Fit ``program`` with NUTS under ``config``; draws keyed by the program's names.
        ``check`` is not called (dims are known only from the draws; the caller checks those).
        """
        start = time.perf_counter()
        compiled = self.build(stem, program, label)
        build_seconds = time.perf_counter() - start
        start = time.perf_counter()
        try:
            with _quiet_cmdstanpy():
                fit = compiled.sample(**cmdstanpy_sample_args(config, data))
        except RuntimeError as exc:
            raise self.error(f"sampling {label} failed:\n{exc}") from None
        messages = MessageLog()
        for transcript in fit.runset.stdout_files:
            with open(transcript, encoding="utf-8", errors="replace") as fh:
                messages.add(count_messages(fh))
        posterior = {}
        for name, values in fit.stan_variables().items():  # (chain * draw, *dims), by chain
            values = np.asarray(values)
            posterior[name] = values.reshape((config.chains, config.draws, *values.shape[1:]))
        table = np.asarray(fit.draws())  # (draw, chain, column)
        columns = list(fit.column_names)
        stats = {}
        for stan_name, name in SAMPLE_STATS.items():
            if stan_name in columns:
                values = table[:, :, columns.index(stan_name)].T
                if name == "diverging":
                    values = values.astype(bool)
                elif name in _INTEGER_STATS:
                    values = values.astype(np.int64)
                stats[name] = np.ascontiguousarray(values)
        return Draws(posterior, stats, engine=self.name, build_seconds=build_seconds,
                     sampling_seconds=time.perf_counter() - start,
                     extra_attrs=messages.attrs())

    def fixed_param(self, program: str, data: Mapping, draws: int, seed: int, *,
                    stem: str = "program", label: str = "the program"
                    ) -> tuple[dict[str, np.ndarray], MessageLog]:
        """:meth:`PyStanEngine.fixed_param` with CmdStanPy's documented API
        (``CmdStanModel.sample(fixed_param=True, ...)``, one chain)."""
        compiled = self.build(stem, program, label)
        try:
            with _quiet_cmdstanpy():
                fit = compiled.sample(data=data, fixed_param=True, chains=1,
                                      iter_sampling=draws, seed=seed, show_progress=False,
                                      show_console=False)
        except RuntimeError as exc:
            raise self.error(f"running {label} failed:\n{exc}") from None
        messages = MessageLog()
        for transcript in fit.runset.stdout_files:
            with open(transcript, encoding="utf-8", errors="replace") as fh:
                messages.add(count_failed_draws(fh))
        values = {name: np.asarray(v).reshape((draws, *np.shape(v)[1:]))
                  for name, v in fit.stan_variables().items()}
        return values, messages

    def log_density(self, program: str, data: Mapping, points: Mapping[str, np.ndarray],
                    **kwargs: Any) -> np.ndarray:  # pragma: no cover
        return PyStanEngine().log_density(program, data, points, **kwargs)
