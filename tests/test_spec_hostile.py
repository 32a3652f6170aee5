"""Hostile input: specs and expressions built to run code, hang, exhaust memory or crash.

(a) Every hostile spec (the fixtures in ``fixtures/specs/hostile``, each saying what it tests and
what it must raise, and the generated ones below) must raise a crossppl user error (a subclass of
:class:`~crossppl.errors.UserInputError`) with a short message: never another exception, a hang,
a crash or code run. Each runs in a forked child with a time limit, so a hang or a crash fails
the test instead of stopping the run.

(b) Hypothesis feeds random TOML documents and random expression strings (random text, and random
ASTs of allowed and disallowed nodes printed with ``ast.unparse``) to the parsers: the only
exceptions allowed are user errors, and every accepted expression holds whitelisted nodes only.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import glob
import json
import math
import multiprocessing
import os
import signal
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from crossppl.models import DISTRIBUTIONS, Model, load_spec, parse_spec
from crossppl.models.expressions import MAX_LENGTH, Scope, Symbol, parse_dist, parse_expr
from crossppl.models.ir import (
    BINARY_OPS,
    FUNCTIONS,
    Binary,
    Call,
    Const,
    DerivedDecl,
    Dist,
    Index,
    Role,
    Unary,
    Var,
    walk,
)
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from crossppl.errors import DataError, SpecError, UserInputError

HOSTILE = Path(__file__).parent / "fixtures" / "specs" / "hostile"
#: Marker files the hostile payloads try to create (``touch /tmp/crossppl_pwned_...``).
MARKERS = "/tmp/crossppl_pwned*"
#: Seconds a hostile case may take before it counts as a hang (each takes milliseconds).
LIMIT = 20.0
#: Seconds one hypothesis example may take.
EXAMPLE_LIMIT = 10.0

# -- running a case in isolation ----------------------------------------------------------------


@dataclass
class Outcome:
    """How a call ended: ``ok``, ``raised``, ``hang`` or ``crash``."""

    status: str
    type: str = ""
    message: str = ""
    user_error: bool = False
    seconds: float = 0.0

    def describe(self) -> str:
        return f"{self.status} {self.type}: {self.message[:500]!r} after {self.seconds:.1f}s"


def _child(conn, fn, args) -> None:
    try:
        result = fn(*args)
        conn.send(("ok", type(result).__name__, "", False))
    except BaseException as exc:  # report everything, including non-user errors
        conn.send(("raised", type(exc).__name__, str(exc)[:100_000], isinstance(exc,
                                                                               UserInputError)))
    finally:
        conn.close()


def isolated(fn, *args, limit: float = LIMIT) -> Outcome:
    """Call ``fn(*args)`` in a child process; report a hang past ``limit`` s, or a crash."""
    start = time.monotonic()
    if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover - not Linux
        try:
            with time_limit(limit):
                result = fn(*args)
            return Outcome("ok", type(result).__name__, seconds=time.monotonic() - start)
        except BaseException as exc:
            return Outcome("raised", type(exc).__name__, str(exc),
                           isinstance(exc, UserInputError), time.monotonic() - start)
    # forkserver: children fork from a clean server process, not from this one, which may
    # already run JAX's or PyTensor's threads (forking those can deadlock).
    ctx = multiprocessing.get_context("forkserver")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args), daemon=True)
    proc.start()
    send.close()
    try:
        if not receive.poll(limit):
            proc.kill()
            proc.join()
            return Outcome("hang", seconds=time.monotonic() - start)
        try:
            status, type_, message, user = receive.recv()
        except EOFError:
            proc.join(5)
            return Outcome("crash", f"exit code {proc.exitcode}",
                           seconds=time.monotonic() - start)
    finally:
        receive.close()
    proc.join(limit)
    return Outcome(status, type_, message, user, time.monotonic() - start)


class _Timeout(BaseException):
    """Raised by :func:`time_limit` (a BaseException, so no ``except Exception`` eats it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`_Timeout` in the main thread after ``seconds`` (a no-op where it cannot)."""
    main = threading.current_thread() is threading.main_thread()
    if not hasattr(signal, "setitimer") or not main:
        yield
        return

    def _alarm(signum, frame):
        raise _Timeout(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_clean_message(text: str) -> None:
    """A user error reads as a short message: no traceback, at most a few lines."""
    assert "Traceback (most recent call last):\n" not in text, text
    assert '\n  File "' not in text, text
    assert text.count("\n") <= 2, text
    assert len(text) <= 1000, f"{len(text)} characters: {text[:300]!r}..."


def assert_user_error(outcome: Outcome, kind: str | None = None, part: str = "") -> None:
    assert outcome.status == "raised" and outcome.user_error, outcome.describe()
    if kind:
        assert outcome.type == kind, outcome.describe()
    assert part in outcome.message, f"{part!r} not in {outcome.message!r}"
    assert_clean_message(outcome.message)


@pytest.fixture
def no_markers():
    """Remove marker files before a case and check that none was created by it."""
    for path in glob.glob(MARKERS):
        os.unlink(path)
    yield
    assert not glob.glob(MARKERS), f"hostile input ran code: {glob.glob(MARKERS)}"


# -- (a) the hostile fixture files --------------------------------------------------------------


def _expectation(path: Path) -> tuple[str, str]:
    head = path.read_bytes()[:1000].decode("ascii", "replace").splitlines()
    line = next(x for x in head if x.startswith("# expect: "))
    kind, _, part = line.removeprefix("# expect: ").partition(": ")
    return kind, part


HOSTILE_FILES = sorted(HOSTILE.glob("*.toml"))


def test_hostile_fixtures_are_there():
    assert len(HOSTILE_FILES) >= 40
    for path in HOSTILE_FILES:
        assert path.read_bytes().startswith(b"# hostile: "), path


@pytest.mark.parametrize("path", HOSTILE_FILES, ids=lambda p: p.stem)
@pytest.mark.slow
def test_hostile_fixture(path, no_markers):
    kind, part = _expectation(path)
    outcome = isolated(load_spec, str(path))
    assert_user_error(outcome, kind, part)
    assert outcome.message.startswith(str(path)), "the message names the file"


@pytest.mark.parametrize("path", HOSTILE_FILES, ids=lambda p: p.stem)
def test_hostile_fixture_in_process(path, no_markers):
    # the same, in this process: any user error, and no other exception gets through
    with time_limit(LIMIT), pytest.raises(UserInputError) as info:
        load_spec(path)
    assert isinstance(info.value, SpecError | DataError)
    assert_clean_message(str(info.value))


def test_injected_traceback_stays_on_one_line():
    for name in ("section_traceback_injection", "key_newline_injection", "model_name_newline"):
        with pytest.raises(SpecError) as info:
            load_spec(HOSTILE / f"{name}.toml")
        assert "\n" not in str(info.value)


# -- (a) generated: deep nesting ----------------------------------------------------------------

SCOPE = Scope(
    {
        "a": Symbol(Role.PARAM, ()),
        "b": Symbol(Role.PARAM, ("rat",)),
        "x": Symbol(Role.DATA, ("week",)),
        "y": Symbol(Role.DATA, ("rat", "week")),
        "grp": Symbol(Role.DATA, ("obs",), integer=True, indexes="rat"),
        "k": Symbol(Role.DATA, (), integer=True),
        "d": Symbol(Role.DERIVED, ("rat", "week")),
    },
    ("rat", "week", "obs"),
    "hostile.toml",
    "[derived] 's'",
)

NESTERS = {
    "parentheses": lambda n: "(" * n + "a" + ")" * n,
    "unary-minus": lambda n: "-" * n + "a",
    "unary-not": lambda n: "not " * n + "a",
    "unary-invert": lambda n: "~" * n + "a",
    "calls": lambda n: "exp(" * n + "a" + ")" * n,
    "distributions": lambda n: "normal(" * n + "0, 1" + ", 1)" * n,
    "subscripts": lambda n: "b[" * n + "grp" + "]" * n,
    "power-chain": lambda n: "**".join(["a"] * n),
    "sum-chain": lambda n: "+".join(["a"] * n),
    "lists": lambda n: "[" * n + "]" * n,
    "lambdas": lambda n: "lambda: " * n + "0",
    "attributes": lambda n: "a" + ".b" * n,
    "mixed": lambda n: "exp(-(" * n + "a" + "))" * n,
}


def _depth_cases():
    for name, make in NESTERS.items():
        yield pytest.param(make(10_000), id=f"{name}-10000")
        # the deepest that fits under the length limit, so the parser itself meets it
        n = 1
        while len(make(n * 2)) <= MAX_LENGTH:
            n *= 2
        while len(make(n + 1)) <= MAX_LENGTH:
            n += 1
        yield pytest.param(make(n), id=f"{name}-{n}")


def _parse_expr_and_dist(text: str) -> None:
    errors = []
    for parse in (parse_expr, parse_dist):
        try:
            parse(text, SCOPE)
        except UserInputError as exc:
            errors.append(exc)
    if len(errors) < 2:
        raise AssertionError("deep nesting was accepted")
    raise errors[0]


@pytest.mark.parametrize("text", list(_depth_cases()))
def test_deep_nesting_in_expressions(text):
    outcome = isolated(_parse_expr_and_dist, text)
    assert_user_error(outcome, "SpecError")
    assert outcome.message.startswith("hostile.toml: [derived] 's': ")


@pytest.mark.parametrize("make", list(NESTERS.values()), ids=list(NESTERS))
@pytest.mark.parametrize("n", [10_000, 600])
@pytest.mark.slow
def test_deep_nesting_in_specs(make, n, no_markers):
    text = make(n).replace('"', "'")
    derived = (
        '[model]\nname = "deep"\n[data]\ny = { value = 1.0 }\n'
        f'[derived]\ns = "{text}"\n[observed]\ny = "normal(0, 1)"\n'
    )
    assert_user_error(isolated(parse_spec, derived), "SpecError", "[derived] 's'")
    param = (
        '[model]\nname = "deep"\n[data]\ny = { value = 1.0 }\n'
        f'[parameters]\nz = "{text}"\n[observed]\ny = "normal(0, 1)"\n'
    )
    assert_user_error(isolated(parse_spec, param), "SpecError", "[parameters] 'z'")


# -- (a) generated: TOML bombs ------------------------------------------------------------------

HEADER = '[model]\nname = "bomb"\n'


@pytest.mark.parametrize("depth", [1_000, 10_000, 100_000])
@pytest.mark.parametrize(
    "make",
    [
        lambda n: "x = " + "[" * n + "]" * n,
        lambda n: "x = " + "{a = " * n + "1" + "}" * n,
        lambda n: "x = " + "[{a = " * n + "1" + "}]" * n,
        lambda n: ".".join(["a"] * n) + " = 1",
        lambda n: "[" + ".".join(["a"] * n) + "]",
        lambda n: "[[" + ".".join(["a"] * n) + "]]",
        lambda n: "x = {" + ".".join(['"a"'] * n) + " = 1}",
    ],
    ids=["arrays", "inline-tables", "arrays-of-tables", "dotted-key", "dotted-header",
         "dotted-array-header", "quoted-dotted-key-in-table"],
)
def test_toml_bombs(make, depth):
    outcome = isolated(parse_spec, HEADER + make(depth) + "\n", limit=10.0)
    assert_user_error(outcome, "SpecError")


@pytest.mark.slow
def test_many_tables_and_keys_are_quick():
    # 60,000 sections: linear work, then the first unknown one is reported
    text = HEADER + "".join(f"[s{i}]\na = 1\n" for i in range(60_000))
    outcome = isolated(parse_spec, text, limit=15.0)
    assert_user_error(outcome, "SpecError", "unknown section [s0]")


@pytest.mark.slow
def test_large_spec_parses_in_linear_time():
    # ~0.9 MB, 20,000 parameters over 20,000 dims: the parser must not be quadratic in entries
    n = 20_000
    text = (
        HEADER
        + "[dims]\n" + "".join(f"d{i} = 2\n" for i in range(n))
        + '[data]\ny = { dims = ["d0"], value = [1.0, 2.0] }\n'
        + "[parameters]\n" + "".join(f'"p{i}[d{i}]" = "normal(0, 1)"\n' for i in range(n))
        + '[observed]\ny = "normal(p0 + p1[0 + 0] * 0, 1)"\n'
    )
    assert len(text) < 1_000_000
    outcome = isolated(parse_spec, text, limit=30.0)
    # p1[0 + 0] is not a valid subscript: an error at the very end, after all the work
    assert_user_error(outcome, "SpecError", "[observed] 'y'")
    assert outcome.seconds < 30


def test_key_made_for_regex_backtracking():
    text = HEADER + '[parameters]\n"a[' + " " * 200_000 + '" = "normal(0, 1)"\n'
    outcome = isolated(parse_spec, text, limit=10.0)
    assert_user_error(outcome, "SpecError", "expected a name with optional dims")


# -- (a) generated: sizes and huge strings ------------------------------------------------------


def test_ten_megabyte_spec_text():
    text = HEADER + 'description = "' + "x" * 10_000_000 + '"\n'
    assert_user_error(isolated(parse_spec, text), "SpecError", "the limit is 1,000,000")


def test_spec_file_over_the_size_limit(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(HEADER + "# " + "x" * 2_000_000 + "\n")
    assert_user_error(isolated(load_spec, str(path)), "SpecError", "the limit is 1,000,000")


@pytest.mark.parametrize(
    ("where", "part"),
    [
        ('[data]\ny = {{ value = 1.0 }}\n[derived]\ns = "{big}"\n', "characters long (limit"),
        ('[data]\ny = {{ value = 1.0 }}\n[derived]\n"{big}" = "1"\n', "cannot be used as a name"),
        ('[data]\ny = {{ value = 1.0 }}\n[parameters]\n"a[{big}]" = "normal(0, 1)"\n',
         "unknown dim"),
        ('[data]\ny = {{ file = "{big}.json" }}\n', "data file"),
        ('[dims]\n"{big}" = 3\n', "cannot be used as a name"),
        ('["{big}"]\n', "unknown section"),
        ('[data]\ny = {{ value = 1.0 }}\n[derived]\ns = "a{long}"\n', "unknown name"),
        ('[data]\ny = {{ value = 1.0 }}\n[derived]\ns = "{long}(1)"\n', "unknown function"),
        ('[data]\ny = {{ value = 1.0 }}\n[parameters]\nz = "{long}(1)"\n',
         "unknown distribution"),
        ('[data]\ny = {{ value = 1.0 }}\n[parameters]\nz = "normal(0, {long}=1)"\n',
         "has no argument"),
        ('[data]\ny = {{ value = 1.0, type = "{big}" }}\n', "is not one of"),
    ],
    ids=["expression", "derived-name", "dim-in-key", "data-file", "dim-name", "section",
         "identifier", "function", "distribution", "keyword", "data-type"],
)
@pytest.mark.slow
def test_huge_strings(where, part):
    # big: far over every limit; long: an identifier just under the expression length limit
    body = where.format(big="a" * 100_000, long="a" * (MAX_LENGTH - 20))
    if "[observed]" not in body:
        body += '[observed]\ny = "normal(0, 1)"\n'
    outcome = isolated(parse_spec, HEADER + body)
    assert_user_error(outcome, None, part)


def test_huge_model_name():
    text = '[model]\nname = "' + "n" * 100_000 + '"\n[observed]\n'
    assert_user_error(isolated(parse_spec, text), "SpecError", "must be letters, digits")


@pytest.mark.parametrize("size", ["1000000000", "10000001", "0", "-1", "1e9", "true", '"30"'])
def test_dim_sizes_out_of_range(size):
    text = HEADER + f"[dims]\nrat = {size}\n[observed]\n"
    assert_user_error(isolated(parse_spec, text), "SpecError", "[dims] 'rat'")


# -- (a) generated: data files outside the spec's folder, and odd files --------------------------

def parse_at(text: str, spec_dir: Path) -> Model:
    """``parse_spec`` of ``text`` as file ``t.toml`` in folder ``spec_dir``."""
    return parse_spec(text, file="t.toml", spec_dir=spec_dir)


SPEC_WITH_FILE = (
    HEADER + '[data]\ny = {{ file = "{file}" }}\n[parameters]\nm = "normal(0, 1)"\n'
    '[observed]\ny = "normal(m, 1)"\n'
)


@pytest.mark.parametrize(
    "file",
    ["../../etc/passwd", "/etc/passwd", "sub/../../x.json", "..", "/dev/zero", "~/x.json",
     "C:\\\\x.json", "./../x.json"],
)
def test_data_path_outside_the_spec_folder(tmp_path, file):
    (tmp_path / "x.json").write_text('{"y": 1.0}')
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "sub").mkdir()
    outcome = isolated(parse_at, SPEC_WITH_FILE.format(file=file), spec_dir)
    assert_user_error(outcome, "SpecError", "[data] 'y'")


def test_symlink_to_a_file_outside(tmp_path):
    (tmp_path / "outside.json").write_text('{"y": 1.0}')
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "d.json").symlink_to(tmp_path / "outside.json")
    (spec_dir / "passwd.json").symlink_to("/etc/passwd")
    for name in ("d.json", "passwd.json"):
        outcome = isolated(parse_at, SPEC_WITH_FILE.format(file=name), spec_dir)
        assert_user_error(outcome, "SpecError", "links that leave the spec's folder")


def test_symlinked_folder_pointing_outside(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "d.json").write_text('{"y": 1.0}')
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "data").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    outcome = isolated(parse_at, SPEC_WITH_FILE.format(file="data/d.json"), spec_dir)
    assert_user_error(outcome, "SpecError", "outside")


def test_symlink_inside_the_folder_is_followed(tmp_path):
    (tmp_path / "real.json").write_text('{"y": 1.0}')
    (tmp_path / "d.json").symlink_to(tmp_path / "real.json")
    model = parse_spec(SPEC_WITH_FILE.format(file="d.json"), file="t.toml", spec_dir=tmp_path)
    assert model.datum("y").value.tolist() == 1.0


def test_symlink_loop(tmp_path):
    (tmp_path / "a.json").symlink_to(tmp_path / "b.json")
    (tmp_path / "b.json").symlink_to(tmp_path / "a.json")
    outcome = isolated(parse_at, SPEC_WITH_FILE.format(file="a.json"), tmp_path)
    assert_user_error(outcome, "SpecError", "[data] 'y'")


def test_fifo_as_data_file_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "d.json")
    outcome = isolated(parse_at, SPEC_WITH_FILE.format(file="d.json"), tmp_path,
                       limit=10.0)
    assert_user_error(outcome, "SpecError", "is not a regular file (it is a FIFO")


def test_sparse_huge_data_file(tmp_path):
    with open(tmp_path / "d.json", "wb") as f:
        f.truncate(300 * 2**20)  # 300 MiB, but no disk used
    outcome = isolated(parse_at, SPEC_WITH_FILE.format(file="d.json"), tmp_path)
    assert_user_error(outcome, "DataError", "the limit is 200 MiB")


@pytest.mark.parametrize(
    ("content", "part"),
    [
        ('{"y": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
        ('{"y": ' + "[" * 900 + "1" + "]" * 900 + "}", ""),
        ('{"y": 1' + "0" * 5000 + "}", "not valid JSON"),
        ('{"y": 1' + "0" * 400 + "}", "too large for a 64-bit float"),
        ('{"y": 1e999}', "non-finite"),
        ('{"y": Infinity}', "non-finite"),
        ('{"y": "' + "s" * 1_000_000 + '"}', "found str"),
        ("\x00\xff\xfe garbage", "not valid JSON"),
    ],
    ids=["deep-100000", "deep-900", "5000-digits", "400-digits", "1e999", "Infinity",
         "huge-string", "garbage"],
)
def test_hostile_data_files(tmp_path, content, part):
    (tmp_path / "d.json").write_text(content, encoding="latin-1")
    outcome = isolated(parse_at, SPEC_WITH_FILE.format(file="d.json"), tmp_path)
    assert_user_error(outcome, "DataError", part)


def test_binary_data_file(tmp_path):
    (tmp_path / "d.json").write_bytes(bytes(range(256)) * 100)
    outcome = isolated(parse_at, SPEC_WITH_FILE.format(file="d.json"), tmp_path)
    assert_user_error(outcome, "DataError", "not valid JSON")


@pytest.mark.parametrize("seed", range(5))
def test_random_binary_spec_files(tmp_path, seed):
    path = tmp_path / "spec.toml"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert_user_error(isolated(load_spec, str(path)), "SpecError")


def test_path_too_long_for_the_file_system():
    assert_user_error(isolated(load_spec, "x" * 10_000 + ".toml"), "SpecError")


# -- (a) generated: byte-order marks, odd folder names, text that lands in the programs ----------

UTF8_FIXTURES = [p for p in HOSTILE_FILES if p.stem not in ("binary_not_utf8", "utf16")]


@pytest.mark.parametrize("path", UTF8_FIXTURES, ids=lambda p: p.stem)
def test_byte_order_mark_changes_nothing(tmp_path, path, no_markers):
    # a UTF-8 BOM (as some editors write) is read as no text at all: the same error as without
    copy = tmp_path / path.name
    copy.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with time_limit(LIMIT), pytest.raises(UserInputError) as plain:
        load_spec(path)
    with time_limit(LIMIT), pytest.raises(UserInputError) as bom:
        load_spec(copy)
    assert type(bom.value) is type(plain.value)
    assert bom.value.message == plain.value.message
    assert bom.value.line == plain.value.line


TINY = (
    '[model]\nname = "tiny"\ndata_file = "tiny.data.json"\n[dims]\nn = 3\n'
    '[data]\ny = { dims = ["n"] }\n[parameters]\nmu = "normal(0, 1)"\n'
    '[observed]\n"y[n]" = "normal(mu, 1)"\n'
)
TINY_DATA = '{"y": [0.1, -0.3, 0.5]}'


def _emit_all(model: Model) -> dict[str, str]:
    from crossppl.api import emit

    return {backend: emit(model, backend) for backend in ("stan", "pymc", "numpyro")}


def _python_namespace(program: str, name: str) -> dict:
    """The globals of ``program`` run as a module that is not ``__main__``."""
    namespace: dict = {"__name__": name}
    exec(compile(program, f"{name}.py", "exec"), namespace)
    namespace.pop("__builtins__", None)
    return namespace


@pytest.mark.parametrize("folder", [b"sp\xffec", b"\xc3\x28", b"a\x80\xfe b"],
                         ids=["xff", "bad-continuation", "two-bytes-and-space"])
@pytest.mark.slow
def test_spec_in_a_folder_whose_name_is_not_utf8(tmp_path, folder, no_markers):
    # os.fsdecode holds such bytes as surrogates, which no UTF-8 file or program can hold
    spec_dir = os.fsencode(tmp_path) + b"/" + folder
    os.mkdir(spec_dir)
    with open(spec_dir + b"/tiny.toml", "w", encoding="utf-8") as f:
        f.write(TINY)
    with open(spec_dir + b"/tiny.data.json", "w", encoding="utf-8") as f:
        f.write(TINY_DATA)
    path = os.fsdecode(spec_dir + b"/tiny.toml")
    model = load_spec(path)
    assert model.path == path
    for backend, program in _emit_all(model).items():
        program.encode("utf-8")  # the program can be written, hashed and compiled
        if backend != "stan":
            namespace = _python_namespace(program, f"tiny_{backend}")
            assert namespace["SPEC"] == path, "the script finds the spec again"
            assert load_spec(namespace["SPEC"]).name == "tiny"


def test_spec_file_name_cannot_break_out_of_a_stan_comment(tmp_path):
    name = "x\nmodel { target += 1; }\r# .toml"
    (tmp_path / name).write_text(TINY)
    (tmp_path / "plain.toml").write_text(TINY)
    (tmp_path / "tiny.data.json").write_text(TINY_DATA)
    programs = _emit_all(load_spec(tmp_path / name))
    plain = _emit_all(load_spec(tmp_path / "plain.toml"))
    stan = programs["stan"].splitlines()
    assert len(stan) == len(plain["stan"].splitlines())
    header = next(line for line in stan if line.startswith("// Generated by crossppl from "))
    assert "x\\nmodel { target += 1; }\\r# .toml" in header
    for backend in ("pymc", "numpyro"):
        assert _python_namespace(programs[backend], "t")["SPEC"] == str(tmp_path / name)


BREAKOUTS = [
    '""" + __import__("os").system("touch /tmp/crossppl_pwned_doc") + """',
    '\\"""\nimport os; os.system("touch /tmp/crossppl_pwned_doc")\n#',
    "*/ } model { target += 1; } /* \n}\nparameters { real pwned; }\n//",
    "'''\n\\\n\"\"\"\r\nexec('1')\t# \\",
]


@pytest.mark.parametrize("text", BREAKOUTS, ids=range(len(BREAKOUTS)))
@pytest.mark.parametrize("field", ["description", "source"])
def test_text_fields_cannot_break_out_of_comments_and_docstrings(tmp_path, field, text,
                                                                 no_markers):
    # accepted text (quotes, backslashes, line breaks, comment markers) stays inside the
    # docstring or comment it is written to: the programs are those of a plain spec but for it
    (tmp_path / "tiny.data.json").write_text(TINY_DATA)
    fields = {"description": "d", "source": "s"}
    plain = parse_at(TINY.replace("[dims]", "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in fields.items()) + "[dims]"), tmp_path)
    fields[field] = text
    model = parse_at(TINY.replace("[dims]", "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in fields.items()) + "[dims]"), tmp_path)
    assert getattr(model, field) == text
    programs, plain_programs = _emit_all(model), _emit_all(plain)
    for program, plain_program in ((programs["stan"], plain_programs["stan"]),):
        code = [line for line in program.splitlines() if not line.startswith("//")]
        assert code == [line for line in plain_program.splitlines() if not line.startswith("//")]
    for backend in ("pymc", "numpyro"):
        namespace = _python_namespace(programs[backend], "t")
        assert " ".join(text.split()) in " ".join(namespace["__doc__"].split())
        assert set(namespace) == set(_python_namespace(plain_programs[backend], "t"))


# -- (a) generated: index data that would make a huge dim ---------------------------------------


@pytest.mark.slow
def test_index_value_sizing_a_huge_dim():
    text = (
        HEADER + "[dims]\nobs = 2\ng = {}\n[data]\n"
        'grp = { dims = ["obs"], type = "index", indexes = "g", value = [1, 2147483647] }\n'
        '[parameters]\n"a[g]" = "normal(0, 1)"\n[observed]\ngrp = "poisson(1)"\n'
    )
    assert_user_error(isolated(parse_spec, text), "DataError", "limit")


# -- (b) hypothesis: helpers ----------------------------------------------------------------------

FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)


def only_user_errors(fn, *args):
    """Call ``fn``; return its result, or None if it raised a user error (checked for form)."""
    try:
        with time_limit(EXAMPLE_LIMIT):
            result = fn(*args)
    except UserInputError as exc:
        assert isinstance(exc, SpecError | DataError), type(exc)
        assert_clean_message(str(exc))
        event(f"{fn.__name__}: {type(exc).__name__}")
        return None
    event(f"{fn.__name__}: accepted")
    return result


_OK_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant,
             ast.Subscript, ast.Tuple, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub,
             ast.UAdd)


def assert_whitelisted(text: str, scope: Scope, distribution: bool) -> None:
    """Every node of accepted ``text`` is on the whitelist, and every name is known."""
    tree = ast.parse(text.strip(), mode="eval")
    top = tree.body
    if distribution:
        assert isinstance(top, ast.Call) and isinstance(top.func, ast.Name)
        assert top.func.id in DISTRIBUTIONS
    known = set(scope.symbols) | set(scope.dim_order) | set(FUNCTIONS)
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword):
            assert distribution and any(node is k for k in top.keywords), ast.dump(node)
            assert node.arg is not None
            continue
        assert isinstance(node, _OK_NODES), f"{type(node).__name__} accepted in {text!r}"
        if isinstance(node, ast.Constant):
            assert type(node.value) in (int, float), text
        elif isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            if node is not top or not distribution:
                assert node.func.id in FUNCTIONS and not node.keywords, text
        elif isinstance(node, ast.Subscript):
            assert isinstance(node.value, ast.Name), text
        elif isinstance(node, ast.Name):
            assert node.id in known or (distribution and node is top.func), node.id


def assert_ir_sound(root: Dist | object, scope: Scope) -> None:
    """IR nodes are of the expression language, and their dims are the union of their operands'."""
    order = scope.dim_order
    for node in walk(root):
        assert isinstance(node, Const | Var | Index | Unary | Binary | Call | Dist), node
        assert set(node.dims) <= set(order), node.dims
        if isinstance(node, Binary | Call | Dist):  # a union of dims is in declaration order
            assert list(node.dims) == sorted(node.dims, key=order.index), node.dims
        if isinstance(node, Const):
            assert type(node.value) in (int, float) and math.isfinite(node.value)
            assert node.dims == ()
        elif isinstance(node, Var):
            assert node.dims == scope.symbols[node.name].dims
        elif isinstance(node, Unary):
            assert node.op == "neg" and node.dims == node.operand.dims
        elif isinstance(node, Binary):
            assert node.op in BINARY_OPS
            assert node.dims == scope.union(node.left.dims, node.right.dims)
        elif isinstance(node, Call):
            assert node.func in FUNCTIONS and len(node.args) == FUNCTIONS[node.func]
            assert node.dims == scope.union(*(a.dims for a in node.args))
        elif isinstance(node, Index):
            assert scope.symbols[node.index.name].indexes == node.base.dims[0]
            assert node.dims == node.index.dims + node.base.dims[1:]
        elif isinstance(node, Dist):
            row = DISTRIBUTIONS[node.name]
            par = row.parameterization(node.parameterization)
            assert tuple(n for n, _ in node.args) == par.params


def check_expression(text: str) -> None:
    expr = only_user_errors(parse_expr, text, SCOPE)
    if expr is not None:
        assert_whitelisted(text, SCOPE, distribution=False)
        assert_ir_sound(expr, SCOPE)
    dist = only_user_errors(parse_dist, text, SCOPE)
    if dist is not None:
        assert_whitelisted(text, SCOPE, distribution=True)
        assert_ir_sound(dist, SCOPE)


# -- (b) hypothesis: random expression strings --------------------------------------------------

TOKENS = [
    "a", "b", "x", "y", "d", "k", "grp", "rat", "week", "obs", "exp", "log", "sqrt", "pow",
    "inv_logit", "abs", "normal", "gamma", "poisson", "__import__", "os", "lambda", "for", "in",
    "if", "else", "not", "and", "or", "(", ")", "[", "]", "{", "}", ",", ".", ":", "=", ":=", "+",
    "-", "*", "/", "**", "//", "%", "@", "<", ">", "==", "~", "&", "|", "^", "<<", "0", "1", "2.5",
    "1e308", "1e-6", "9", "'s'", '"s"', "b''", "1j", "True", "None", "...", "*", "**", "mu=",
    "sigma=", "tau=", " ", "\\", "\n", "#", "f'{a}'", "__class__", "_", "yield", "await",
]
token_soup = st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join)
any_text = st.text(max_size=120)


@FAST
@given(text=any_text)
def test_random_text_expressions(text):
    check_expression(text)


@FAST
@given(text=token_soup)
def test_token_soup_expressions(text):
    check_expression(text)


# -- (b) hypothesis: random ASTs ----------------------------------------------------------------

NAMES = ["a", "b", "x", "y", "d", "k", "grp", "rat", "week", "obs", "exp", "normal", "zz",
         "__import__", "os", "__builtins__"]
CALLEES = [*FUNCTIONS, *DISTRIBUTIONS, "eval", "open", "getattr", "max", "__import__"]
ANY_OPS = [ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.FloorDiv, ast.Mod, ast.MatMult,
           ast.BitAnd, ast.BitOr, ast.LShift]
OK_OPS = [ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow]


def _name(name: str) -> ast.Name:
    return ast.Name(name, ast.Load())


constants = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.complex_numbers(max_magnitude=10, allow_nan=False),
    st.just(...),
).map(ast.Constant)
any_leaf = st.one_of(st.sampled_from(NAMES).map(_name), constants)


def _no_args() -> ast.arguments:
    return ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                         kwarg=None, defaults=[])


def _comprehension() -> list[ast.comprehension]:
    return [ast.comprehension(ast.Name("i", ast.Store()), _name("x"), [], 0)]


def _any_nodes(children):
    keywords = st.lists(
        st.builds(ast.keyword, st.sampled_from(["mu", "sigma", "tau", "p", "rate", "n", None]),
                  children),
        max_size=2,
    )
    return st.one_of(
        st.builds(ast.BinOp, children, st.sampled_from(ANY_OPS).map(lambda op: op()), children),
        st.builds(ast.UnaryOp, st.sampled_from([ast.USub(), ast.UAdd(), ast.Not(), ast.Invert()]),
                  children),
        st.builds(ast.Call, st.sampled_from(CALLEES).map(_name), st.lists(children, max_size=3),
                  keywords),
        st.builds(ast.Call, children, st.lists(children, max_size=2), st.just([])),
        st.builds(ast.Attribute, children, st.sampled_from(["__class__", "real", "system"]),
                  st.just(ast.Load())),
        st.builds(ast.Subscript, children,
                  children | st.lists(children, min_size=2, max_size=3).map(
                      lambda e: ast.Tuple(e, ast.Load())),
                  st.just(ast.Load())),
        st.builds(ast.Subscript, children, st.builds(ast.Slice, children, children, st.none()),
                  st.just(ast.Load())),
        st.builds(lambda a, b: ast.Compare(a, [ast.Lt()], [b]), children, children),
        st.builds(lambda a, b: ast.BoolOp(ast.And(), [a, b]), children, children),
        st.builds(ast.IfExp, children, children, children),
        st.builds(lambda body: ast.Lambda(_no_args(), body), children),
        st.builds(lambda e: ast.ListComp(e, _comprehension()), children),
        st.builds(lambda e: ast.GeneratorExp(e, _comprehension()), children),
        st.builds(lambda e: ast.SetComp(e, _comprehension()), children),
        st.builds(lambda k, v: ast.DictComp(k, v, _comprehension()), children, children),
        st.builds(lambda e: ast.Tuple(e, ast.Load()), st.lists(children, max_size=3)),
        st.builds(lambda e: ast.List(e, ast.Load()), st.lists(children, max_size=3)),
        st.builds(lambda e: ast.Starred(e, ast.Load()), children),
        st.builds(lambda e: ast.NamedExpr(ast.Name("w", ast.Store()), e), children),
        st.builds(lambda e: ast.JoinedStr([ast.FormattedValue(e, -1, None)]), children),
        st.builds(lambda e: ast.Await(e), children),
    )


any_ast = st.recursive(any_leaf, _any_nodes, max_leaves=20)

# Mostly-valid ASTs: allowed nodes over known names, to exercise the accepting path too.
ok_leaf = st.one_of(
    st.sampled_from(["a", "b", "x", "y", "d", "k"]).map(_name),
    st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False)).map(ast.Constant),
    st.sampled_from([
        ast.Subscript(_name("b"), _name("rat"), ast.Load()),
        ast.Subscript(_name("y"), ast.Tuple([_name("rat"), _name("week")], ast.Load()),
                      ast.Load()),
        ast.Subscript(_name("b"), _name("grp"), ast.Load()),
        ast.Subscript(_name("b"), ast.Subscript(_name("grp"), _name("obs"), ast.Load()),
                      ast.Load()),
    ]),
)


def _ok_nodes(children):
    unary = [f for f, n in FUNCTIONS.items() if n == 1]
    return st.one_of(
        st.builds(ast.BinOp, children, st.sampled_from(OK_OPS).map(lambda op: op()), children),
        st.builds(ast.UnaryOp, st.sampled_from([ast.USub(), ast.UAdd()]), children),
        st.builds(lambda f, e: ast.Call(_name(f), [e], []), st.sampled_from(unary), children),
        st.builds(lambda a, b: ast.Call(_name("pow"), [a, b], []), children, children),
    )


ok_ast = st.recursive(ok_leaf, _ok_nodes, max_leaves=12)


def _unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(ast.fix_missing_locations(node))
    except Exception:  # a combination ast.unparse cannot print: not an input we can write
        reject()
        raise


@FAST
@given(tree=any_ast)
@pytest.mark.slow
def test_random_ast_expressions(tree):
    check_expression(_unparse(tree))


@FAST
@given(tree=ok_ast)
def test_allowed_ast_expressions_are_sound(tree):
    text = _unparse(tree)
    expr = only_user_errors(parse_expr, text, SCOPE)
    if expr is not None:
        assert_whitelisted(text, SCOPE, distribution=False)
        assert_ir_sound(expr, SCOPE)


dist_calls = st.builds(
    lambda name, args, kws: ast.Call(_name(name), args, kws),
    st.sampled_from([*DISTRIBUTIONS, "normall", "exp", "__import__"]),
    st.lists(ok_ast | any_ast, max_size=3),
    st.lists(st.builds(ast.keyword,
                       st.sampled_from(["mu", "sigma", "tau", "nu", "p", "logit_p", "rate",
                                        "scale", "shape", "n", "lower", "upper", "sd", None]),
                       ok_ast | any_ast),
             max_size=3),
)


@FAST
@given(tree=dist_calls)
@pytest.mark.slow
def test_random_distribution_calls(tree):
    text = _unparse(tree)
    dist = only_user_errors(parse_dist, text, SCOPE)
    if dist is not None:
        assert_whitelisted(text, SCOPE, distribution=True)
        assert_ir_sound(dist, SCOPE)


def test_allowed_expressions_are_accepted():
    # the whitelist is not empty: the mostly-valid grammar does produce accepted expressions
    for text in ("a + b * x", "exp(-b[rat]) / sqrt(a)", "pow(y[rat, week], 2) - d",
                 "b[grp] * 2", "b[grp[obs]] + 1", "inv_logit(logit(0.5)) * k"):
        expr = parse_expr(text, SCOPE)
        assert_whitelisted(text, SCOPE, distribution=False)
        assert_ir_sound(expr, SCOPE)


# -- (b) hypothesis: random TOML documents ------------------------------------------------------


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are a subset of TOML's; DEL must be escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(type(value))


def toml_document(doc: dict) -> str:
    """Serialize a dict: top-level plain values first, then one [table] per dict value."""
    lines = [f"{toml_string(k)} = {toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict)]
    for key, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_string(key)}]")
            lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(max_size=10),
    st.dates(),
)
toml_values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
    max_leaves=15,
)
toml_docs = st.dictionaries(
    st.sampled_from(["model", "dims", "data", "parameters", "derived", "observed"])
    | st.text(max_size=8),
    st.dictionaries(st.text(max_size=8), toml_values, max_size=5) | toml_values,
    max_size=6,
)


@FAST
@given(doc=toml_docs)
@pytest.mark.slow
def test_toml_serializer_round_trips(doc):
    assert tomllib.loads(toml_document(doc)) == doc


@FAST
@given(text=st.text(max_size=300))
def test_random_text_specs(text):
    only_user_errors(parse_spec, text)


toml_lines = st.lists(
    st.sampled_from([
        "[model]", 'name = "t"', "[dims]", "rat = 3", "rat = {}", "week = { coords = [1, 2] }",
        "[data]", 'y = { dims = ["rat"], value = [1.0, 2.0, 3.0] }',
        'x = { dims = ["week"], type = "int", value = [1, 2] }',
        'g = { dims = ["rat"], type = "index", indexes = "week", value = [1, 2, 1] }',
        "[parameters]", 'mu = "normal(0, 1)"', '"a[rat]" = "normal(mu, tau=t)"',
        't = "gamma(1, 1)"', "[derived]", 's = "1 / sqrt(t)"', 'c = "c + 1"',
        "[observed]", 'y = "normal(a, 1)"', '"y[rat]" = "normal(mu + x, 1)"',
        'y = "normal(a[g], s)"', "[paramters]", "x = [[[[", "= =", '"', "[[data]]",
    ]) | st.text(max_size=20),
    max_size=20,
).map("\n".join)


@FAST
@given(text=toml_lines)
def test_toml_fragment_specs(text):
    model = only_user_errors(parse_spec, text)
    if model is not None:
        assert_model_sound(model)


@FAST
@given(doc=toml_docs)
@pytest.mark.slow
def test_random_toml_documents(doc):
    only_user_errors(parse_spec, toml_document(doc))


# Spec-shaped documents: the right sections, plausible and implausible entries.

DIM_NAMES = ["rat", "week", "obs", "g", "target", "x__", "N_x"]
VAR_NAMES = ["a", "b", "mu", "tau", "y", "x", "grp", "lambda", "s"]

small_exprs = st.recursive(
    st.sampled_from(["0", "1", "2.5", "-1", "1e-6", "a", "b", "mu", "tau", "x", "y", "s", "rat",
                     "a[rat]", "a[grp]", "b[grp[obs]]", "y[rat, week]", "__import__('os')",
                     "9**9**9", "''", "x.real", "lambda: 0"]),
    lambda c: st.one_of(
        st.tuples(c, st.sampled_from([" + ", " - ", " * ", " / ", " ** ", " // "]), c).map(
            "".join),
        c.map(lambda e: f"({e})"),
        c.map(lambda e: f"-{e}"),
        st.tuples(st.sampled_from([*FUNCTIONS, "max", "normal"]), c).map(
            lambda t: f"{t[0]}({t[1]})"),
    ),
    max_leaves=6,
)
small_dists = st.builds(
    lambda name, args, kws: f"{name}({', '.join(args + [f'{k}={v}' for k, v in kws])})",
    st.sampled_from([*DISTRIBUTIONS, "normall"]),
    st.lists(small_exprs, max_size=3),
    st.lists(st.tuples(st.sampled_from(["mu", "sigma", "tau", "rate", "p", "n", "shape", "sd"]),
                       small_exprs), max_size=2),
)
keys_with_dims = st.builds(
    lambda name, dims: f"{name}[{', '.join(dims)}]" if dims else name,
    st.sampled_from(VAR_NAMES),
    st.lists(st.sampled_from(DIM_NAMES), max_size=2),
)
data_values = st.recursive(
    st.one_of(st.integers(-3, 6), st.floats(-10, 10), st.floats(), st.booleans(),
              st.text(max_size=2)),
    lambda c: st.lists(c, max_size=4),
    max_leaves=16,
)
data_entries = st.fixed_dictionaries(
    {},
    optional={
        "dims": st.lists(st.sampled_from(DIM_NAMES), max_size=3),
        "type": st.sampled_from(["real", "int", "index", "bogus"]),
        "value": data_values,
        "indexes": st.sampled_from(DIM_NAMES),
        "base": st.sampled_from([0, 1, 2, 1.0, True]),
        "file": st.sampled_from(["d.json", "../d.json", "/etc/passwd", "nope.json", "d.csv", "",
                                 "sub", "sub/../d.json"]),
        "key": st.sampled_from(["y", "x", "grp", "", "nope"]),
    },
)
dim_values = st.one_of(
    st.integers(-2, 6),
    st.just({}),
    st.builds(dict, coords=st.lists(st.integers(0, 3) | st.text(max_size=2), max_size=5)),
    st.builds(dict, size=st.integers(-1, 6)),
    st.floats(),
    st.text(max_size=3),
    st.just(10**9),
)


@st.composite
def spec_documents(draw) -> dict:
    doc: dict = {}
    if draw(st.integers(0, 9)):
        model = {"name": draw(st.sampled_from(["t", "rats", "", "a b", "x" * 70]))}
        if draw(st.booleans()):
            model["data_file"] = draw(st.sampled_from(["d.json", "../d.json", "nope.json"]))
        doc["model"] = model
    doc["dims"] = draw(st.dictionaries(st.sampled_from(DIM_NAMES), dim_values, max_size=3))
    doc["data"] = draw(st.dictionaries(st.sampled_from(VAR_NAMES), data_entries, max_size=3))
    doc["parameters"] = draw(st.dictionaries(keys_with_dims, small_dists, max_size=4))
    if draw(st.booleans()):
        doc["derived"] = draw(st.dictionaries(keys_with_dims, small_exprs, max_size=2))
    if draw(st.integers(0, 9)):
        doc["observed"] = draw(st.dictionaries(keys_with_dims, small_dists, max_size=2))
    if not draw(st.integers(0, 20)):
        doc[draw(st.text(max_size=5))] = {}
    return doc


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hypothesis_specs")
    (folder / "d.json").write_text(json.dumps(
        {"y": [[1.0, 2.0], [3.0, 4.0]], "x": [1, 2], "grp": [1, 2, 1], "a": None, "b": "s"}
    ))
    (folder / "d.csv").write_text("y\n1\n")
    (folder / "sub").mkdir()
    return folder


@FAST
@given(doc=spec_documents())
@pytest.mark.slow
def test_spec_shaped_documents(doc, data_dir):
    model = only_user_errors(parse_at, toml_document(doc), data_dir)
    if model is not None:
        assert_model_sound(model)


def assert_model_sound(model: Model) -> None:
    """What an accepted model promises: dims, data shapes, order, index ranges, continuity."""
    sizes = {d.name: d.size for d in model.dims}
    assert all(1 <= n <= 10_000_000 for n in sizes.values())
    for datum in model.data:
        assert datum.value.shape == tuple(sizes[d] for d in datum.dims)
        assert np.all(np.isfinite(datum.value))
        if datum.kind == "index":
            assert datum.value.min(initial=0) >= 0
            assert datum.value.max(initial=0) < sizes[datum.indexes]
    defined = {d.name for d in model.data}
    symbols = {d.name: Symbol(Role.DATA, d.dims, d.kind != "real", d.indexes)
               for d in model.data}
    scope = Scope(symbols, tuple(sizes))
    for s in model.statements:
        root = s.expr if isinstance(s, DerivedDecl) else s.dist
        used = {n.name for n in walk(root) if isinstance(n, Var)}
        assert used <= defined, (s.name, used - defined)
        assert_ir_sound(root, scope)
        if not isinstance(s, DerivedDecl):
            assert not DISTRIBUTIONS[s.dist.name].support.discrete
        assert set(root.dims) <= set(s.dims)
        defined.add(s.name)
        role = Role.DERIVED if isinstance(s, DerivedDecl) else Role.PARAM
        symbols[s.name] = Symbol(role, s.dims)
    assert model.observed
    for o in model.observed:
        assert o.name in {d.name for d in model.data}
        assert_ir_sound(o.dist, scope)
        assert set(o.dist.dims) <= set(o.dims)


# Valid specs with a few random edits: many are still accepted, so the accepting path is
# exercised as much as the rejecting one.

BASE_DOC: dict = {
    "model": {"name": "t"},
    "dims": {"rat": 3, "week": {"coords": [1, 2]}, "g": {}},
    "data": {
        "x": {"dims": ["week"], "value": [1.0, 2.0]},
        "y": {"dims": ["rat", "week"], "value": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]},
        "grp": {"dims": ["rat"], "type": "index", "indexes": "g", "value": [1, 2, 1]},
        "k": {"dims": ["rat"], "type": "int", "value": [0, 3, 1]},
    },
    "parameters": {
        "mu": "normal(0, 1)",
        "tau": "gamma(1, 1)",
        "a[g]": "normal(mu, tau=tau)",
        "b[rat]": "normal(0, 1)",
    },
    "derived": {"s": "1 / sqrt(tau)"},
    "observed": {"y[rat, week]": "normal(a[grp] + b * x, s)", "k": "poisson(exp(b))"},
}

valid_exprs = st.recursive(
    st.sampled_from(["0", "1", "2.5", "1e-3", "mu", "tau", "s", "b", "x", "y", "k", "a[grp]",
                     "b[rat]", "x[week]", "y[rat, week]", "a[grp[rat]]"]),
    lambda c: st.one_of(
        st.tuples(c, st.sampled_from([" + ", " - ", " * ", " / ", " ** "]), c).map("".join),
        c.map(lambda e: f"({e})"),
        c.map(lambda e: f"-{e}"),
        st.tuples(st.sampled_from(["exp", "log", "sqrt", "abs", "inv_logit"]), c).map(
            lambda t: f"{t[0]}({t[1]})"),
    ),
    max_leaves=5,
)


@st.composite
def valid_dists(draw) -> str:
    row = DISTRIBUTIONS[draw(st.sampled_from(sorted(DISTRIBUTIONS)))]
    par = draw(st.sampled_from(row.parameterizations))
    n_pos = draw(st.integers(0, len(par.params)))
    args = [draw(st.sampled_from(["1", "2", "0.5", "tau", "s"]) | valid_exprs)
            for _ in par.params]
    parts = args[:n_pos] + [f"{p}={a}" for p, a in zip(par.params[n_pos:], args[n_pos:],
                                                       strict=True)]
    return f"{row.name}({', '.join(parts)})"


plausible_data = st.builds(
    lambda dims, v: {"dims": dims, "value": v},
    st.sampled_from([["rat"], ["week"], [], ["g"]]),
    st.sampled_from([[1.0, 2.0, 3.0], [1.0, 2.0], 1.5, [0.5, 1.5, 2.5]]),
)
VALUES_FOR = {
    "model": st.sampled_from(["t", "t", "t", "", "x y", "rats"]),
    "dims": st.integers(1, 4) | dim_values,
    "data": st.one_of(*[plausible_data] * 3, data_entries),
    "parameters": valid_dists() | small_dists,
    "derived": valid_exprs | small_exprs,
    "observed": valid_dists() | small_dists,
}
KEYS_FOR = {
    "model": st.sampled_from(["name", "description", "source", "data_file", "author"]),
    "dims": st.sampled_from(DIM_NAMES),
    "data": st.sampled_from(VAR_NAMES),
    "parameters": keys_with_dims,
    "derived": keys_with_dims,
    "observed": keys_with_dims,
}


@st.composite
def mutated_specs(draw) -> dict:
    doc = json.loads(json.dumps(BASE_DOC))  # a deep copy
    for _ in range(draw(st.integers(0, 2))):
        section = draw(st.sampled_from(["parameters", "parameters", "derived", "derived",
                                         "observed", "observed", "data", "dims", "model"]))
        table = doc[section]
        op = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if op == "delete" and table:
            del table[draw(st.sampled_from(sorted(table)))]
        elif op == "set" and table:
            table[draw(st.sampled_from(sorted(table)))] = draw(VALUES_FOR[section])
        else:
            table[draw(KEYS_FOR[section])] = draw(VALUES_FOR[section])
    return doc


def test_base_document_is_valid():
    model = parse_spec(toml_document(BASE_DOC), file="t.toml")
    assert_model_sound(model)
    assert model.dim("g").size == 2 and model.datum("grp").value.tolist() == [0, 1, 0]


@FAST
@given(doc=mutated_specs())
@pytest.mark.filterwarnings("ignore::crossppl.errors.SpecWarning")  # a mutation may earn one
@pytest.mark.slow
def test_mutated_valid_specs(doc, data_dir):
    model = only_user_errors(parse_at, toml_document(doc), data_dir)
    if model is not None:
        assert_model_sound(model)
