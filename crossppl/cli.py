"""The ``crossppl`` command line.

Exit codes: 0 success; 2 bad input (spec, data, options), printed without a traceback; 3 a
backend could not run the model (not yet translated, or the engine failed); 130 interrupted
(SIGINT, Ctrl-C); 143 terminated (SIGTERM). Interrupted or terminated, a command stops every
process it started and removes its scratch folders before it exits, and writes no output.

Output paths are checked before any work: a folder, a path under a file, a folder that cannot
be written and (without ``--force``) an existing file are refused (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from crossppl import __version__, errors, runner
from crossppl.api import emit, fit, list_models, load_spec, save_netcdf
from crossppl.backends import get_backend
from crossppl.backends.registry import backend_names, backend_status
from crossppl.comparison import compare
from crossppl.config import FitConfig
from crossppl.errors import (
    ConfigError,
    CrossPPLError,
    EngineError,
    NotYetTranslated,
    SpecWarning,
    UserInputError,
)
from crossppl.models import bundled_specs
from crossppl.models.spec import path_text
from crossppl.prior import compare_prior
from crossppl.runner import (
    FitJob,
    Terminated,
    check_parallel,
    check_timeout,
    own_resource_tracker,
    signals_unwind,
)

__all__ = ["main"]

EXIT_OK, EXIT_USAGE, EXIT_BACKEND, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 2, 3, 130, 143
FORCE_HELP = "overwrite output files that exist (without it they are refused, exit 2)"


def _parser() -> argparse.ArgumentParser:

    names = backend_names()
    parser = argparse.ArgumentParser(
        prog="crossppl",
        description="Write one Bayesian model spec for Stan, PyMC and NumPyro, and fit it.",
    )
    parser.add_argument("--version", action="version", version=f"crossppl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list the bundled models, one line each")
    backends = sub.add_parser(
        "backends", help="list every backend and engine: usable here or why not, and versions")
    backends.add_argument("--json", action="store_true", help="print JSON instead of a table")

    spec_help = "a bundled model's name (see `crossppl list`) or a path to a .toml spec"
    emit = sub.add_parser("emit", help="print the program a backend runs for a spec")
    emit.add_argument("spec", help=spec_help)
    emit.add_argument("--backend", "-b", required=True, choices=names)
    emit.add_argument("--output", "-o", help="write the program to this file instead")
    emit.add_argument("--force", action="store_true", help=FORCE_HELP)

    fit = sub.add_parser("fit", help="fit a spec with one backend's generated program (NUTS)")
    fit.add_argument("spec", help=spec_help)
    fit.add_argument("--backend", "-b", required=True, choices=names)
    fit.add_argument("--engine", help="engine running the program (default: the backend's "
                     "first usable one; `crossppl backends` lists them)")
    fit.add_argument("--output", "-o", help="write the result (ArviZ groups) to this NetCDF file")
    fit.add_argument("--force", action="store_true", help=FORCE_HELP)
    _sampler_options(fit)

    cmp = sub.add_parser(
        "compare",
        help="fit a spec on several backends (and hand-written programs) and decide whether "
        "the posteriors agree; exit 0 match, 1 mismatch, 3 inconclusive, 2 bad input",
    )
    cmp.add_argument("spec", nargs="?", help=spec_help)
    cmp.add_argument("--all", action="store_true",
                     help="compare every bundled model; one line per model")
    cmp.add_argument("--out-dir", help="with --all: write <model>.json and <model>.html here")
    cmp.add_argument("--backends", default=",".join(names),
                     help="comma-separated backends (default: all); 'none' for none")
    cmp.add_argument("--program", action="append", default=[], metavar="BACKEND=PATH[:ENTRY]",
                     help="a hand-written program: a backend's name, its file and, for a "
                     "Python module, the function (repeatable)")
    cmp.add_argument("--rename", action="append", default=[], metavar="THEIRS=OURS",
                     help="a hand-written program's variable name -> the spec's (repeatable)")
    cmp.add_argument("--reference", help="reference posterior: summary .json/.csv or draws .nc")
    cmp.add_argument("--engine", action="append", default=[], metavar="BACKEND=ENGINE",
                     help="engine for a backend (repeatable; `crossppl backends` lists them)")
    cmp.add_argument("--alpha", type=float, default=0.05,
                     help="family-wise false-alarm rate of each pair of sources' tests "
                     "(Holm within the pair; default 0.05)")
    cmp.add_argument("--json", help="write the JSON report here")
    cmp.add_argument("--html", help="write the self-contained HTML report here")
    cmp.add_argument("--save-reference", metavar="PATH",
                     help="store the first healthy backend's summaries as a reference file")
    cmp.add_argument("--timeout", type=float, help="stop a backend's fit after this many s")
    cmp.add_argument("--parallel", type=int, help="fits at once (default: cores / chains)")
    cmp.add_argument("--force", action="store_true", help=FORCE_HELP)
    _sampler_options(cmp, progress_help="show each fit's progress on stderr: one line per backend, "
                     "redrawn, in a terminal; a line per stage elsewhere (default: when stderr "
                     "is a terminal)")

    prior = sub.add_parser(
        "prior",
        help="simulate a spec from its priors on several backends (no MCMC) and test that the "
        "prior predictive distributions agree; exit 0 match, 1 mismatch, 3 inconclusive",
    )
    prior.add_argument("spec", nargs="?", help=spec_help)
    prior.add_argument("--all", action="store_true", help="every bundled model, one block each")
    prior.add_argument("--backends", default=",".join(names),
                       help="comma-separated backends (default: all)")
    prior.add_argument("--draws", type=int, default=2000, help="draws per backend (2000)")
    prior.add_argument("--seed", type=int, default=FitConfig().seed)
    prior.add_argument("--alpha", type=float, default=0.01,
                       help="family-wise false-alarm rate of the tests (Holm; default 0.01)")
    prior.add_argument("--timeout", type=float, help="stop a backend after this many s")
    return parser


def _sampler_options(p: argparse.ArgumentParser, progress_help: str = "show a progress bar "
                     "(default: when stderr is a terminal)") -> None:
    """One option per :class:`~crossppl.config.FitConfig` setting (``--target-accept`` for
    ``target_accept``); a setting whose default is None is a ``--NAME``/``--no-NAME`` switch."""
    for f in dataclasses.fields(FitConfig):
        if f.default is None:
            group = p.add_mutually_exclusive_group()
            group.add_argument(f"--{f.name}", dest=f.name, action="store_true", default=None,
                               help=progress_help)
            group.add_argument(f"--no-{f.name}", dest=f.name, action="store_false")
            continue
        spec = "the spec's [fit] value, else " if f.metadata["spec"] else ""
        p.add_argument(_option(f.name), type=type(f.default), choices=f.metadata["choices"],
                       help=f"default: {spec}{f.default}")


def _option(name: str) -> str:
    """The command-line option of the sampler setting ``name``."""
    return "--" + name.replace("_", "-")


def _settings(args: argparse.Namespace) -> dict[str, object]:
    """The sampler settings given on the command line (None: not given)."""
    return {name: getattr(args, name, None) for name in FitConfig.names()}


def _cmd_list(args: argparse.Namespace) -> int:

    models = list_models()
    width = max(map(len, models), default=0)
    for name, description in models.items():
        print(f"{name:<{width}}  {description}")
    return EXIT_OK


def _cmd_backends(args: argparse.Namespace) -> int:
    """Every registered backend and engine, whether it can run here (and why not), versions."""

    status = backend_status()
    if args.json:

        print(json.dumps([dataclasses.asdict(s) for s in status], indent=2))
        return EXIT_OK
    rows = [("backend", "engine", "usable", "versions, or why not")]
    for backend in status:
        if backend.problem:
            rows.append((backend.backend, "-", "no", backend.problem))
        for e in backend.engines:
            usable = ("yes (default)" if e.default else "yes") if e.usable else "no"
            versions = ", ".join(f"{k} {v}" for k, v in e.versions.items())
            rows.append((backend.backend, e.engine, usable, versions if e.usable else e.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(f"{c:<{w}}" for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return EXIT_OK


def _cmd_emit(args: argparse.Namespace) -> int:

    _check_output(args.output, "--output", args.force)
    program = emit(args.spec, args.backend)
    if args.output:

        Path(args.output).write_text(program)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(program)
    return EXIT_OK


def _cmd_fit(args: argparse.Namespace) -> int:
    """Fit in a worker process (:func:`crossppl.runner.run_fits`, one job), as ``compare``
    does, after every input (spec, settings, engine, output path) is checked here.

    This process only waits for the worker, so Ctrl-C or SIGTERM stops the worker's whole
    process group within :data:`crossppl.runner.GRACE` seconds whatever the engine is doing
    (JAX's compiled sampler does not return to Python to take a KeyboardInterrupt, and crashed
    when it did; httpstan's pool blocked the exit), and nothing the engine started outlives the
    command. The output is written here, once the fit succeeded.
    """
    _check_output(args.output, "--output", args.force, netcdf=True)
    _check_sampler_options(args)

    model = load_spec(args.spec)
    config = FitConfig.resolve(model.fit, **_settings(args))
    engine = get_backend(args.backend).check_engine(args.engine)
    job = FitJob(args.backend, fit, {"spec": model, "backend": args.backend, "engine": engine,
                                     "config": config})
    outcome = runner.run_fits([job])[args.backend]
    if not outcome.ok:
        return _report_failure(outcome)
    if args.output:
        save_netcdf(outcome.idata, args.output)
    _print_fit_summary(outcome.idata)
    if args.output:
        print(f"wrote {args.output}")
    return EXIT_OK


def _print_fit_summary(idata) -> None:
    from crossppl.compare.summary import summarize  # lazy: loads pandas and ArviZ

    posterior = idata["posterior"].to_dataset()
    attrs = posterior.attrs
    scalars = [name for name, var in posterior.data_vars.items() if var.ndim == 2]
    vectors = [name for name in posterior.data_vars if name not in scalars]
    n_div = int(idata["sample_stats"]["diverging"].sum())
    print(
        f"{attrs['model']} on {attrs['backend']} ({attrs['engine']}): "
        f"{attrs['config_chains']} chains x ({attrs['config_warmup']} warmup + "
        f"{attrs['config_draws']} draws), build {attrs['build_seconds']:.1f} s, "
        f"sampling {attrs['sampling_seconds']:.1f} s, {n_div} divergences"
    )
    if scalars:
        columns = ["mean", "sd", "q05", "q50", "q95", "mcse_mean", "ess_bulk", "ess_tail",
                   "r_hat"]
        table = summarize(posterior, scalars)[columns]
        print(table.to_string(float_format=lambda v: f"{v:.4g}", na_rep="-"))
    if vectors:
        print(f"(not shown: {', '.join(vectors)}; see the NetCDF output or "
              "crossppl.compare.summary.summarize)")


def _check_sampler_options(args: argparse.Namespace) -> None:
    """Refuse a sampler option's value (``--draws 0``, ``--seed -1``, ...) before any PPL is
    imported (ConfigError naming the option, the value found and the fix; exit 2).

    Each given value is checked alone by :class:`~crossppl.config.FitConfig`'s rules; the
    spec's ``[fit]`` values were checked when it was loaded.
    """

    for f in dataclasses.fields(FitConfig):
        value = getattr(args, f.name, None)
        problem = None if value is None else FitConfig.problem(f.name, value)
        if problem:
            option = _option(f.name)
            example = f.metadata["example"]
            fix = f"give e.g. {option} {example}, or" if example is not None else "or"
            raise ConfigError(f"{problem}; {fix} leave it out for the default", entry=option)


def _backends_option(text: str, option: str = "--backends", *,
                     allow_none: bool = True) -> list[str]:
    """The backends a ``--backends`` value names, in its order; refused (ConfigError, exit 2)
    before any PPL is imported when a name is unknown or given twice, or none is given."""

    if allow_none and text.strip() == "none":
        return []
    names = [b.strip() for b in text.split(",") if b.strip()]
    known = backend_names()
    fix = (f"give one or more of {', '.join(known)}, comma-separated (e.g. {option} "
           f"{','.join(known[:2])})" + (", or 'none' for no backend" if allow_none else ""))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        found = f"unknown backend {unknown[0]!r} in {text!r}" if unknown else f"found {text!r}"
        raise ConfigError(f"{found}; {fix}", entry=option)
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise ConfigError(f"{twice!r} is named twice in {text!r}; name each backend once",
                          entry=option)
    return names


def _engines_option(items: list[str], programs: list[str]) -> dict[str, str]:
    """``--engine BACKEND=ENGINE`` values by backend or program label; an unknown backend or
    engine is refused here (ConfigError, exit 2), before any fit. A key that is not a backend
    may label one of ``programs`` (checked by :func:`crossppl.comparison.compare`)."""

    engines = _pairs(items, "--engine")
    known = backend_names()
    for key, engine in engines.items():
        if key not in known:
            if not programs:
                raise ConfigError(f"found {key}={engine}, but {key!r} is not a backend; give "
                                  f"BACKEND=ENGINE with BACKEND one of {', '.join(known)} "
                                  "(`crossppl backends` lists each one's engines)",
                                  entry="--engine")
            continue  # a --program label: compare() checks it with its program's backend
        choices = get_backend(key).engines
        if engine not in choices:
            raise ConfigError(f"the {key} backend has no engine {engine!r} (found "
                              f"{key}={engine}); choose one of {', '.join(choices)}, e.g. "
                              f"--engine {key}={choices[-1]}", entry="--engine")
    return engines


def _check_alpha(alpha: float, example: float) -> None:
    """Refuse an ``--alpha`` outside (0, 1) (ConfigError, exit 2)."""

    if not 0 < alpha < 1:
        raise ConfigError(f"must be strictly between 0 and 1 (a family-wise false-alarm rate), "
                          f"found {alpha:g}; give e.g. --alpha {example}", entry="--alpha")


def _pairs(items: list[str], option: str) -> dict[str, str]:

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{option} takes KEY=VALUE, found {item!r}", entry=option)
        out[key] = value
    return out


def _cmd_compare(args: argparse.Namespace) -> int:

    if args.all == bool(args.spec):
        raise ConfigError("give a SPEC or --all (not both)", entry="spec")
    _check_run_options(args)
    # Plain values first, in milliseconds: nothing heavy (PyMC, JAX, SciPy, ...) is imported yet.
    args.backends = _backends_option(args.backends)
    _check_sampler_options(args)
    _check_alpha(args.alpha, 0.05)
    _pairs(args.rename, "--rename")
    args.engine = _engines_option(args.engine, args.program)
    if args.all:
        if args.out_dir:

            _check_output(args.out_dir, "--out-dir", args.force, folder=True)
            for name in bundled_specs():
                for suffix in (".json", ".html"):
                    _check_output(os.path.join(args.out_dir, name + suffix), "--out-dir",
                                  args.force)
        return _compare_all(args)
    for option in ("json", "html", "save_reference"):
        _check_output(getattr(args, option), f"--{option.replace('_', '-')}", args.force)
    result = _run_compare(args, args.spec)
    sys.stdout.write(result.to_text())
    for path, writer in ((args.json, result.write_json), (args.html, result.write_html)):
        if path:
            writer(path)
            print(f"wrote {path}")
    if args.save_reference:
        try:
            result.save_reference(args.save_reference)
            print(f"wrote {args.save_reference}")
        except ValueError as exc:
            print(f"crossppl: no reference saved: {exc}", file=sys.stderr)
    return result.exit_code


def _compare_all(args: argparse.Namespace) -> int:


    codes = []
    for name in bundled_specs():
        try:
            result = _run_compare(args, name)
        except CrossPPLError as exc:
            print(f"{name:<24} error: {exc}")
            codes.append(EXIT_BACKEND)
            continue
        times = ", ".join(
            f"{s.name} {s.seconds:.0f} s" for s in result.sources.values() if s.kind != "reference"
        )
        why = "" if result.verdict.kind == "match" else f"  ({result.verdict.reasons[0]})"
        print(f"{name:<24} {result.verdict.kind.upper():<13} {times}{why}", flush=True)
        if args.out_dir:
            out = Path(args.out_dir)
            result.write_json(out / f"{name}.json")
            result.write_html(out / f"{name}.html")
        codes.append(result.exit_code)
    if args.out_dir:
        print(f"wrote {args.out_dir}/<model>.json and .html")
    return 1 if 1 in codes else (3 if any(codes) else 0)


def _cmd_prior(args: argparse.Namespace) -> int:

    if args.all == bool(args.spec):
        raise ConfigError("give a SPEC or --all (not both)", entry="spec")
    _check_run_options(args)
    backends = _backends_option(args.backends, allow_none=False)
    _check_sampler_options(args)
    _check_alpha(args.alpha, 0.01)

    codes = []
    for spec in bundled_specs() if args.all else [args.spec]:
        result = compare_prior(spec, backends=backends, draws=args.draws, seed=args.seed,
                               alpha=args.alpha, timeout=args.timeout)
        print(result, flush=True)
        codes.append({"match": EXIT_OK, "mismatch": 1}.get(result.verdict, EXIT_BACKEND))
    return 1 if 1 in codes else max(codes)


def _check_run_options(args: argparse.Namespace) -> None:
    """``--timeout`` and ``--parallel`` checked before any work (ConfigError, exit 2)."""

    check_timeout(args.timeout, "--timeout")
    check_parallel(getattr(args, "parallel", None), "--parallel")


def _run_compare(args: argparse.Namespace, spec: str):

    return compare(
        spec,
        backends=args.backends,
        programs=args.program,
        names=_pairs(args.rename, "--rename"),
        reference=args.reference,
        alpha=args.alpha,
        engines=args.engine,
        parallel=args.parallel,
        timeout=args.timeout,
        **_settings(args),
    )


def _report_failure(outcome) -> int:
    """Print a worker's failure as :func:`main` prints the same error raised here; its exit
    code (2 bad input, 3 the backend could not run the model, 1 anything else)."""

    kinds = {cls.__name__: cls for cls in _subclasses(errors.CrossPPLError)}
    kind = kinds.get(outcome.error_type)
    if kind is None and outcome.error_type in ("Crash", "Timeout"):
        kind = EngineError
    if kind is None:
        print(f"crossppl: error: {outcome.error}", file=sys.stderr)
        return 1
    prefix, code = next((prefix, code) for cls, prefix, code in _ERROR_KINDS
                        if issubclass(kind, cls))
    print(f"crossppl: {prefix}: {outcome.error}", file=sys.stderr)
    return code


def _subclasses(cls: type) -> list[type]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _subclasses(child))]


def _check_output(path: str | None, option: str, force: bool, *, folder: bool = False,
                  netcdf: bool = False) -> None:
    """Refuse an output path before any work (ConfigError, exit 2): a folder (unless
    ``folder``), a file that exists (unless ``force``), a path under a file, or one in a folder
    this process cannot write in; for ``netcdf``, a path that is not UTF-8 (the netCDF library
    cannot open it). Missing folders on the way are fine (they are created)."""


    if path is None:
        return
    if netcdf:
        try:
            os.fsencode(path).decode("utf-8")
        except UnicodeDecodeError:

            raise ConfigError(f"cannot write NetCDF to '{path_text(path)}': the netCDF library "
                              "opens only UTF-8 paths; give a path whose folder and file names "
                              "are UTF-8", entry=option) from None
    target = Path(path)
    if target.is_dir() and not folder:
        raise ConfigError(f"found the folder {path!r}; give a file path, e.g. "
                          f"{str(target / 'out')!r}", entry=option)
    if target.exists() and not target.is_dir() and folder:
        raise ConfigError(f"found the file {path!r}; give a folder", entry=option)
    if target.is_file() and not force:
        raise ConfigError(f"{path!r} exists; pass --force to overwrite it, or give another "
                          "path", entry=option)
    parent = target.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot write {path!r}: {str(parent)!r} is a file, not a folder; "
                          "give a path in a folder", entry=option)
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write {path!r}: the folder {str(parent)!r} is not writable "
                          f"({exc.strerror}); give a path in a folder you can write in",
                          entry=option) from None


COMMANDS = {"list": _cmd_list, "backends": _cmd_backends, "emit": _cmd_emit, "fit": _cmd_fit,
            "compare": _cmd_compare, "prior": _cmd_prior}


#: Error class -> what main prints before its message, and the exit code (first match wins).
_ERROR_KINDS = ((UserInputError, "error", EXIT_USAGE),
                (NotYetTranslated, "not yet translated", EXIT_BACKEND),
                (EngineError, "engine failed", EXIT_BACKEND),
                (CrossPPLError, "error", EXIT_BACKEND))


def _show_spec_warnings() -> None:
    """Print crossppl's own warnings (:class:`~crossppl.errors.SpecWarning`) as one line,
    ``crossppl: warning: ...``, without Python's source line; others as before."""


    previous = warnings.showwarning
    if getattr(previous, "crossppl", False):
        return

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, SpecWarning):
            print(f"crossppl: warning: {message}", file=file or sys.stderr, flush=True)
        else:
            previous(message, category, filename, lineno, file, line)

    show.crossppl = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    While a command runs, SIGINT and SIGTERM unwind it (KeyboardInterrupt,
    :class:`crossppl.runner.Terminated`) so that every process it started is stopped and every
    scratch folder removed; the signal handlers in place before are restored on return. No
    process it started outlives it (:func:`crossppl.runner.own_resource_tracker`).
    """

    _show_spec_warnings()
    args = _parser().parse_args(argv)
    try:
        with own_resource_tracker(), signals_unwind():
            return COMMANDS[args.command](args)
    except UserInputError as exc:
        print(f"crossppl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotYetTranslated as exc:
        print(f"crossppl: not yet translated: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except EngineError as exc:
        print(f"crossppl: engine failed: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except CrossPPLError as exc:
        print(f"crossppl: error: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except KeyboardInterrupt:
        print("crossppl: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("crossppl: terminated; no output written", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:  # stdout closed early (`crossppl backends | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
