"""User errors in a spec or its data: each raises SpecError / DataError whose message names the
file, the entry (section and key), what was found and how to fix it.

Every case edits one line of a small valid spec (``BASE``), so the line number is known too.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from crossppl.models import bundled_specs, load_spec, parse_spec

from crossppl.config import FitConfig
from crossppl.errors import ConfigError, DataError, SpecError, SpecWarning, UserInputError

FILE = "model.toml"

# Line numbers of BASE (1-based) are used by the cases below.
BASE = """\
[model]
name = "t"
[dims]
rat = 3
week = 2
[data]
x = { dims = ["week"], value = [1.0, 2.0] }
y = { dims = ["rat", "week"], value = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]] }
[parameters]
tau = "gamma(1, 1)"
"a[rat]" = "normal(0, 1)"
"""
OBSERVED = '[observed]\ny = "normal(a, 1)"\n'
PARAM_LINE = 12  # a line added right after BASE
DERIVED_LINE = 13  # "[derived]" then the entry


def with_param(value: str, key: str = "b") -> str:
    return BASE + f'{key} = "{value}"\n' + OBSERVED


def with_derived(value: str, key: str = "s") -> str:
    return BASE + f'[derived]\n{key} = "{value}"\n' + OBSERVED


def replace(old: str, new: str, observed: str = OBSERVED) -> str:
    assert old in BASE, old
    return BASE.replace(old, new) + observed


X_LINE = 'x = { dims = ["week"], value = [1.0, 2.0] }'


def with_x(fields: str) -> str:
    return replace(X_LINE, f'x = {{ dims = ["week"], {fields} }}')


@dataclass
class Case:
    text: str
    error: type[UserInputError]
    entry: str | None
    line: int | None
    parts: tuple[str, ...]  # what was found, and the fix


CASES: dict[str, Case] = {
    # -- names --------------------------------------------------------------------------------
    "unknown-name": Case(
        with_derived("1 / sqrt(tua)"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("unknown name 'tua'", "did you mean 'tau'?", "Declare it under [data], [parameters]"),
    ),
    "unknown-name-in-likelihood": Case(
        replace("", "", '[observed]\ny = "normal(alpah, 1)"\n'), SpecError, "[observed] 'y'", 13,
        ("unknown name 'alpah'", "Declare it under"),
    ),
    "unknown-dim-in-key": Case(
        with_param("normal(0, 1)", key='"b[rats]"'), SpecError, "[parameters] 'b[rats]'",
        PARAM_LINE, ("unknown dim 'rats'", "did you mean 'rat'?", "Declare it under [dims]"),
    ),
    "dim-used-as-value": Case(
        with_derived("rat + 1"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("'rat' is a dim, not a value", "use it inside brackets"),
    ),
    "defined-twice": Case(
        with_derived("1", key="tau"), SpecError, "[derived] 'tau'", DERIVED_LINE,
        ("'tau' is defined twice", "rename one"),
    ),
    # -- distributions and arguments ---------------------------------------------------------
    "unknown-distribution": Case(
        with_param("normall(0, 1)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("unknown distribution 'normall'", "did you mean 'normal'?", "known: bernoulli, beta"),
    ),
    "wrong-argument": Case(
        with_param("normal(0, sd=1)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("normal has no argument 'sd'", "it takes normal(mu, sigma) | normal(mu, tau)"),
    ),
    "missing-argument": Case(
        with_param("normal(0)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("normal is missing argument 'sigma'", "it takes normal(mu, sigma) | normal(mu, tau)"),
    ),
    "missing-argument-by-keyword": Case(
        with_param("gamma(shape=1)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("gamma is missing argument 'rate'", "gamma(shape, rate) | gamma(shape, scale)"),
    ),
    "too-many-positional": Case(
        with_param("normal(0, 1, 2)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("normal got 3 positional arguments", "it takes normal(mu, sigma)"),
    ),
    "argument-by-position-and-name": Case(
        with_param("normal(0, 1, mu=0)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("got argument 'mu' by position and by name", "it takes normal(mu, sigma)"),
    ),
    "two-parameterizations": Case(
        with_param("normal(0, sigma=1, tau=2)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("two parameterizations at once (sigma, tau)",
         "give one of normal(mu, sigma) | normal(mu, tau)"),
    ),
    "two-parameterizations-gamma": Case(
        with_param("gamma(1, rate=1, scale=2)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("two parameterizations at once (rate, scale)", "give one of gamma(shape, rate)"),
    ),
    "distribution-inside-expression": Case(
        with_param("normal(normal(0, 1), 1)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("the distribution normal(...) cannot appear inside an expression",
         "declare it as a parameter and use its name"),
    ),
    "distribution-as-derived": Case(
        with_derived("normal(0, 1)"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("found the distribution normal(...) where an expression was expected",
         "put distributions under [parameters] or [observed]"),
    ),
    "expression-as-parameter": Case(
        with_param("tau + 1"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("expected a distribution call", "found 'tau + 1'"),
    ),
    "value-not-a-string": Case(
        BASE + "b = 3\n" + OBSERVED, SpecError, "[parameters] 'b'", PARAM_LINE,
        ("found int 3", "write it in quotes"),
    ),
    "constant-out-of-range": Case(
        with_param("normal(0, -1)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("argument 'sigma' of normal must be > 0, found -1",),
    ),
    # -- dims that do not line up ------------------------------------------------------------
    "rhs-varies-along-dim-lhs-lacks": Case(
        with_param("normal(a, 1)"), SpecError, "[parameters] 'b'", PARAM_LINE,
        ("the right-hand side varies along dim(s) rat but b does not", "declare b[rat]"),
    ),
    "derived-declared-too-narrow": Case(
        with_derived("a * x", key='"s[rat]"'), SpecError, "[derived] 's[rat]'", DERIVED_LINE,
        ("varies along dim(s) week but s[rat] does not", "declare s[rat, week]"),
    ),
    "observed-dims-differ-from-data-dims": Case(
        replace("", "", '[observed]\n"y[week, rat]" = "normal(a, 1)"\n'), SpecError,
        "[observed] 'y[week, rat]'", 13,
        ("written y[week, rat] but declared with dims [rat, week]", "the dims must agree"),
    ),
    "observed-dims-missing-one": Case(
        replace("", "", '[observed]\n"y[rat]" = "normal(a, 1)"\n'), SpecError,
        "[observed] 'y[rat]'", 13, ("written y[rat] but declared with dims [rat, week]",),
    ),
    "likelihood-varies-along-dim-data-lacks": Case(
        replace(X_LINE, 'x = { dims = ["rat"], value = [1.0, 2.0, 3.0] }',
                '[observed]\nx = "normal(a + y, 1)"\n'),
        SpecError, "[observed] 'x'", 13,
        ("varies along dim(s) week but x[rat] does not",),
    ),
    "subscript-with-wrong-dims": Case(
        replace("", "", '[observed]\ny = "normal(a[week], 1)"\n'), SpecError, "[observed] 'y'",
        13, ("a is declared with dims [rat], written here as a[week]", "the dims must agree"),
    ),
    "index-with-non-index-data": Case(
        replace("", "", '[observed]\ny = "normal(a[x], 1)"\n'), SpecError, "[observed] 'y'", 13,
        ("x is used as an index but is not index data", 'type = "index"'),
    ),
    # -- data shape and type -----------------------------------------------------------------
    "wrong-number-of-axes": Case(
        with_x("value = [[1.0, 2.0]]"), DataError, "[data] 'x'", 7,
        ("declared with 1 dim(s) [week] but the value has 2 axes (shape (1, 2))",
         "fix dims or the data"),
    ),
    "size-clash-between-two-arrays": Case(
        replace("rat = 3", "rat = {}").replace(
            "y = {", 'z = { dims = ["rat"], value = [1.0, 2.0] }\ny = {'),
        DataError, "[data] 'y'", 9,
        ("has 3 entries along dim 'rat', but 'rat' has size 2 (from z)",
         "the shapes must agree"),
    ),
    "size-clash-with-dims": Case(
        replace("rat = 3", "rat = 4"), DataError, "[data] 'y'", 8,
        ("has 3 entries along dim 'rat', but 'rat' has size 4 (from [dims])",),
    ),
    "ragged-data": Case(
        replace("[3.0, 4.0]", "[3.0]"), DataError, "[data] 'y'", 8,
        ("ragged", "every row must have the same length"),
    ),
    "string-data": Case(
        with_x('value = ["a", 2.0]'), DataError, "[data] 'x'", 7,
        ("found str 'a' where a number was expected", "numbers only"),
    ),
    "bool-data": Case(
        with_x("value = [true, 2.0]"), DataError, "[data] 'x'", 7,
        ("found bool True", "numbers only"),
    ),
    "nan-data": Case(
        with_x("value = [1.0, nan]"), DataError, "[data] 'x'", 7,
        ("1 non-finite value(s) (NaN or inf; first at index (1,))", "drop those rows or impute"),
    ),
    "inf-data": Case(
        with_x("value = [-inf, 1.0]"), DataError, "[data] 'x'", 7,
        ("non-finite", "first at index (0,)"),
    ),
    "non-integer-int-data": Case(
        with_x('type = "int", value = [1, 2.5]'), DataError, "[data] 'x'", 7,
        ("declared int but holds the non-integer 2.5", 'declare type = "real"'),
    ),
    "unknown-data-type": Case(
        with_x('type = "float", value = [1.0, 2.0]'), SpecError, "[data] 'x'", 7,
        ("type 'float' is not one of", '"real", "int", "index"'),
    ),
    "unknown-data-field": Case(
        with_x('typ = "real", value = [1.0, 2.0]'), SpecError, "[data] 'x'", 7,
        ("unknown field 'typ'", "data takes dims, type, value"),
    ),
    "data-without-value": Case(
        replace(X_LINE, 'x = { dims = ["week"] }'), SpecError, "[data] 'x'", 7,
        ("no value", "give value = [...], or file"),
    ),
    "index-out-of-range": Case(
        replace(X_LINE, 'g = { dims = ["week"], type = "index", indexes = "rat", value = [1, 4] }'),
        DataError, "[data] 'g'", 7, ("holds values 1..4, outside 1..3", "dim 'rat', base 1"),
    ),
    "index-zero-with-base-1": Case(
        replace(X_LINE, 'g = { dims = ["week"], type = "index", indexes = "rat", value = [0, 1] }'),
        DataError, "[data] 'g'", 7, ("holds values 0..1, outside 1..3",),
    ),
    "index-without-indexes": Case(
        replace(X_LINE, 'g = { dims = ["week"], type = "index", value = [1, 2] }'),
        SpecError, "[data] 'g'", 7, ('index data needs indexes = "<dim>"',),
    ),
    "index-float-base": Case(
        replace(X_LINE,
                'g = { dims = ["week"], type = "index", indexes = "rat", base = 1.0, '
                "value = [1, 2] }"),
        SpecError, "[data] 'g'", 7, ("base must be 0 or 1, found 1.0",),
    ),
    "repeated-data-dim": Case(
        replace(X_LINE, 'x = { dims = ["week", "week"], value = [[1.0, 2.0], [3.0, 4.0]] }'),
        SpecError, "[data] 'x'", 7, ("a dim is repeated", "list each dim once"),
    ),
    "dim-without-size": Case(
        replace("week = 2", "week = 2\ng = {}"), SpecError, "[dims] 'g'", 6,
        ("dim 'g' has no size", "give one (e.g. g = 10)"),
    ),
    "observed-but-not-data": Case(
        replace("", "", '[observed]\nz = "normal(a, 1)"\n'), SpecError, "[observed] 'z'", 13,
        ("'z' is observed but not declared under [data]", "declare it there"),
    ),
    "observed-twice": Case(
        replace("", "", '[observed]\ny = "normal(a, 1)"\n"y[rat, week]" = "normal(a, 1)"\n'),
        SpecError, "[observed] 'y[rat, week]'", 14, ("'y' is observed twice",),
    ),
    # -- cycles ------------------------------------------------------------------------------
    "cycle-between-derived": Case(
        BASE + '[derived]\nc = "d + 1"\nd = "c * 2"\n' + OBSERVED, SpecError, "[derived] 'c'",
        13, ("circular definition: c -> d -> c", "break the cycle"),
    ),
    "cycle-parameter-derived": Case(
        BASE + 'm = "normal(s, 1)"\n[derived]\ns = "exp(m)"\n' + OBSERVED, SpecError,
        "[parameters] 'm'", PARAM_LINE, ("circular definition: m -> s -> m",),
    ),
    "self-reference": Case(
        with_derived("s + 1"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("circular definition: s -> s", "break the cycle"),
    ),
    # -- reserved names ----------------------------------------------------------------------
    "stan-keyword-target": Case(
        with_param("normal(0, 1)", key="target"), SpecError, "[parameters] 'target'",
        PARAM_LINE, ("'target' cannot be used as a name: a Stan keyword", "rename it"),
    ),
    "keyword-for-with-dims": Case(
        with_param("normal(0, 1)", key='"for[rat]"'), SpecError, "[parameters] 'for[rat]'",
        PARAM_LINE, ("'for' cannot be used as a name", "keyword", "rename it"),
    ),
    "python-keyword-lambda": Case(
        with_derived("tau * 2", key="lambda"), SpecError, "[derived] 'lambda'", DERIVED_LINE,
        ("'lambda' cannot be used as a name: a Python keyword", "rename it"),
    ),
    "trailing-double-underscore": Case(
        with_param("normal(0, 1)", key="b__"), SpecError, "[parameters] 'b__'", PARAM_LINE,
        ("names ending in '__' are reserved by Stan",),
    ),
    "lp-suffix": Case(
        with_param("normal(0, 1)", key="b_lpdf"), SpecError, "[parameters] 'b_lpdf'",
        PARAM_LINE, ("Stan reserves this suffix",),
    ),
    "function-name-as-variable": Case(
        with_derived("tau", key="exp"), SpecError, "[derived] 'exp'", DERIVED_LINE,
        ("a function of the spec language",),
    ),
    "stan-keyword-as-dim": Case(
        replace("week = 2", "week = 2\nint = 2"), SpecError, "[dims] 'int'", 6,
        ("'int' cannot be used as a name: a Stan keyword",),
    ),
    "python-keyword-as-data": Case(
        replace(X_LINE, 'lambda = { dims = ["week"], value = [1.0, 2.0] }'), SpecError,
        "[data] 'lambda'", 7, ("a Python keyword",),
    ),
    # -- non-whitelisted expressions ---------------------------------------------------------
    "conditional-expression": Case(
        with_derived("tau if tau > 0 else 1"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("a conditional expression is not allowed", "use numbers, names, + - * / **"),
    ),
    "comparison": Case(
        with_derived("tau > 1"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("a comparison is not allowed",),
    ),
    "floor-division": Case(
        with_derived("tau // 2"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("the operator 'FloorDiv' is not allowed", "use + - * / **"),
    ),
    "unknown-function": Case(
        with_derived("max(tau, 1)"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("unknown function 'max'", "known: exp, log, sqrt"),
    ),
    "string-literal": Case(
        with_derived("'hello'"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("the literal 'hello' is not a number", "only int and float literals"),
    ),
    "attribute-access": Case(
        with_derived("tau.real"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("attribute access is not allowed",),
    ),
    "syntax-error": Case(
        with_derived("tau +"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("cannot parse 'tau +' as expression",),
    ),
    # -- sections ----------------------------------------------------------------------------
    "unknown-section": Case(
        BASE + '[paramters]\nb = "normal(0, 1)"\n' + OBSERVED, SpecError, "[paramters]", 12,
        ("unknown section [paramters]", "did you mean [parameters]?", "Sections: [model]"),
    ),
    "missing-model-name": Case(
        replace('name = "t"', 'description = "no name"'), SpecError, "[model]", 1,
        ("the model needs a name", 'name = "rats"'),
    ),
    "unknown-model-field": Case(
        replace('name = "t"', 'name = "t"\nauthor = "me"'), SpecError, "[model] 'author'", 3,
        ("unknown field", "[model] takes name, description, source, data_file"),
    ),
    "missing-model-section": Case(
        replace('[model]\nname = "t"\n', ""), SpecError, "[model]", None,
        ("the [model] section is missing", "add it"),
    ),
    "missing-observed": Case(
        BASE, SpecError, "[observed]", None, ("the [observed] section is missing", "add it"),
    ),
    "empty-observed": Case(
        BASE + "[observed]\n", SpecError, "[observed]", 12,
        ("no likelihood", "add at least one entry under [observed]"),
    ),
    "bad-dim-size": Case(
        replace("rat = 3", 'rat = "three"'), SpecError, "[dims] 'rat'", 4,
        ("a dim size must be an integer, found 'three'",),
    ),
    # -- [generated] and [fit] (line 14 is the section header, 15 its entry) ------------------
    "generated-unknown-name": Case(
        BASE + OBSERVED + '[generated]\ny_new = "normal(mu_a, 1)"\n', SpecError,
        "[generated] 'y_new'", 15, ("unknown name 'mu_a'", "Declare it under"),
    ),
    "generated-uses-a-later-one": Case(
        BASE + OBSERVED + '[generated]\nu = "normal(v, 1)"\nv = "normal(0, 1)"\n', SpecError,
        "[generated] 'u'", 15, ("unknown name 'v'",),
    ),
    "generated-redefines-a-parameter": Case(
        BASE + OBSERVED + '[generated]\ntau = "normal(0, 1)"\n', SpecError,
        "[generated] 'tau'", 15, ("'tau' is defined twice", "rename one"),
    ),
    "generated-narrower-than-its-distribution": Case(
        BASE + OBSERVED + '[generated]\nz = "normal(a, 1)"\n', SpecError,
        "[generated] 'z'", 15, ("varies along dim(s) rat", "declare z[rat]"),
    ),
    "fit-unknown-setting": Case(
        BASE + OBSERVED + "[fit]\nadapt_delta = 0.9\n", SpecError, "[fit] 'adapt_delta'", 15,
        ("unknown setting", "[fit] takes chains, warmup, draws, target_accept"),
    ),
    "fit-bad-target-accept": Case(
        BASE + OBSERVED + "[fit]\ntarget_accept = 1.5\n", SpecError, "[fit] 'target_accept'",
        15, ("target_accept must be strictly between 0 and 1, found 1.5",),
    ),
    "fit-bad-draws": Case(
        BASE + OBSERVED + '[fit]\ndraws = "many"\n', SpecError, "[fit] 'draws'", 15,
        ("draws must be an integer >= 1, found 'many'",),
    ),
    "zero-dim-size": Case(
        replace("rat = 3", "rat = 0"), SpecError, "[dims] 'rat'", 4,
        ("dim size 0 is outside 1..", "give the real size"),
    ),
    # -- two sentences, each ended ----------------------------------------------------------
    "unknown-name-without-suggestion": Case(
        with_derived("1 / sqrt(slope)"), SpecError, "[derived] 's'", DERIVED_LINE,
        ("unknown name 'slope'. Declare it under [data], [parameters] or [derived]",),
    ),
    "unknown-dim-without-suggestion": Case(
        with_param("normal(0, 1)", key='"b[zzz]"'), SpecError, "[parameters] 'b[zzz]'",
        PARAM_LINE, ("unknown dim 'zzz'. Declare it under [dims]",),
    ),
    "unknown-section-without-suggestion": Case(
        BASE + "[zzz]\nb = 1\n" + OBSERVED, SpecError, "[zzz]", 12,
        ("unknown section [zzz]. Sections: [model]",),
    ),
    # -- names of ArviZ's dims ---------------------------------------------------------------
    "dim-named-draw": Case(
        replace("week = 2", "week = 2\ndraw = 2"), SpecError, "[dims] 'draw'", 6,
        ("'draw' cannot be used as a name", "ArviZ's results use it as the dim of the draws",
         "rename it"),
    ),
    "dim-named-chain": Case(
        replace("week = 2", "week = 2\nchain = { coords = [1, 2] }"), SpecError,
        "[dims] 'chain'", 6, ("'chain' cannot be used as a name", "the dim of the chains"),
    ),
    "parameter-named-draw": Case(
        with_param("normal(0, 1)", key="draw"), SpecError, "[parameters] 'draw'", PARAM_LINE,
        ("'draw' cannot be used as a name", "rename it"),
    ),
    "data-named-chain": Case(
        replace(X_LINE, 'chain = { dims = ["week"], value = [1.0, 2.0] }'), SpecError,
        "[data] 'chain'", 7, ("'chain' cannot be used as a name",),
    ),
    "parameter-named-sample": Case(
        with_param("normal(0, 1)", key="sample"), SpecError, "[parameters] 'sample'",
        PARAM_LINE, ("'sample' cannot name a parameter, derived or generated quantity",
                     "stack chain and draw into a dim 'sample'", "rename it"),
    ),
    "parameter-along-dim-sample": Case(
        BASE.replace("week = 2", "week = 2\nsample = 2") + '"b[sample]" = "normal(0, 1)"\n'
        + OBSERVED, SpecError, "[parameters] 'b[sample]'", 13,
        ("b varies along dim 'sample'", "rename the dim under [dims]", "data may keep it"),
    ),
    "derived-along-dim-quantile-of-its-data": Case(
        BASE.replace("week = 2", "week = 2\nquantile = 2").replace(
            X_LINE, 'x = { dims = ["quantile"], value = [1.0, 2.0] }')
        + '[derived]\ns = "2 * x"\n' + OBSERVED, SpecError, "[derived] 's'", 14,
        ("s varies along dim 'quantile'", "posterior quantiles", "rename the dim"),
    ),
    "generated-named-quantile": Case(
        BASE + OBSERVED + '[generated]\nquantile = "normal(0, 1)"\n', SpecError,
        "[generated] 'quantile'", 15, ("'quantile' cannot name a parameter",),
    ),
    # -- text that lands in the generated programs -------------------------------------------
    "description-with-nul": Case(
        replace('name = "t"', 'name = "t"\ndescription = "a\\u0000b"'), SpecError,
        "[model] 'description'", 3,
        ("the text holds the control character '\\x00' (U+0000) at character 2", "remove it"),
    ),
    "source-with-terminal-escape": Case(
        replace('name = "t"', 'name = "t"\nsource = "x\\u001b[2J"'), SpecError,
        "[model] 'source'", 3, ("control character '\\x1b' (U+001B) at character 2",),
    ),
    "description-with-bidi-override": Case(
        replace('name = "t"', 'name = "t"\ndescription = "abc\\u202edef"'), SpecError,
        "[model] 'description'", 3,
        ("bidirectional control character U+202E at character 4", "remove it"),
    ),
    "data-file-with-control-character": Case(
        replace('name = "t"', 'name = "t"\ndata_file = "d\\u0001.json"'), SpecError,
        "[model] 'data_file'", 3, ("control character '\\x01'",),
    ),
    "coords-with-control-character": Case(
        replace("week = 2", 'week = { coords = ["a\\u0007", "b"] }'), SpecError,
        "[dims] 'week'", 5, ("a coord holds the control character '\\x07' (U+0007)",),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_user_error_names_file_entry_finding_and_fix(name):
    case = CASES[name]
    with pytest.raises(UserInputError) as info:
        parse_spec(case.text, file=FILE)
    err = info.value
    assert type(err) is case.error, f"{type(err).__name__}: {err}"
    assert err.file == FILE
    assert err.entry == case.entry
    if case.line is not None:
        assert err.line == case.line
    text = str(err)
    where = FILE + (f":{err.line}" if err.line else "") + (f": {case.entry}" if case.entry else "")
    assert text.startswith(where + ": "), text
    for part in case.parts:
        assert part in text, f"{part!r} not in {text!r}"
    assert_clean(err)


def assert_clean(err: UserInputError) -> None:
    """An error's text is a short message, not a traceback."""
    text = str(err)
    assert "Traceback" not in text and 'File "' not in text
    assert text.count("\n") <= 2
    assert len(text) < 1000


def test_invalid_toml_reports_the_line():
    with pytest.raises(SpecError) as info:
        parse_spec(BASE + "[observed\n", file=FILE)
    assert str(info.value).startswith(f"{FILE}: not valid TOML")
    assert "line 12" in str(info.value)
    assert_clean(info.value)


# -- errors in data files -----------------------------------------------------------------------

FILE_SPEC = """\
[model]
name = "t"
data_file = "d.json"
[dims]
n = {{}}
[data]
y = {{ dims = ["n"]{extra} }}
[parameters]
m = "normal(0, 1)"
[observed]
y = "normal(m, 1)"
"""


def _write(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)


@pytest.mark.parametrize(
    ("content", "extra", "error", "parts"),
    [
        ('{"y": [1.0, null]}', "", DataError, ("found missing (null)", "numbers only")),
        ('{"y": null}', "", DataError, ("the value is missing (null)", "give numbers")),
        ('{"y": [1.0, NaN]}', "", DataError, ("non-finite", "impute")),
        ('{"y": [1, 2.5]}', ', type = "int"', DataError, ("non-integer 2.5",)),
        ('{"y": ["1.0"]}', "", DataError, ("found str '1.0'",)),
        ('{"y": {"a": 1}}', "", DataError, ("found dict",)),
        ('{"yy": [1.0]}', "", DataError, ("d.json has no entry 'y'", "it has 'yy'")),
        ('{"y": [1.0]}', ', key = "z"', DataError, ("has no entry 'z'",)),
        ("{y: 1}", "", DataError, ("not valid JSON",)),
        ("[1, 2]", "", DataError, ("expected a JSON object of name: value, found list",)),
        ('{"y": [[1.0], [2.0]]}', "", DataError, ("declared with 1 dim(s) [n]", "2 axes")),
        ('{"y": []}', "", DataError, ("dim 'n' would have size 0",)),
    ],
)
def test_data_file_errors(tmp_path, content, extra, error, parts):
    _write(tmp_path, "d.json", content)
    with pytest.raises(UserInputError) as info:
        parse_spec(FILE_SPEC.format(extra=extra), file=FILE, spec_dir=tmp_path)
    err = info.value
    assert type(err) is error, f"{type(err).__name__}: {err}"
    for part in parts:
        assert part in str(err), f"{part!r} not in {str(err)!r}"
    # the error names the spec entry, or the data file when the file itself is bad
    assert err.entry == "[data] 'y'" or err.file == str(tmp_path / "d.json")
    assert_clean(err)


def test_missing_data_file(tmp_path):
    with pytest.raises(SpecError) as info:
        parse_spec(FILE_SPEC.format(extra=""), file=FILE, spec_dir=tmp_path)
    err = info.value
    assert err.entry == "[data] 'y'"
    assert "data file 'd.json' not found next to the spec" in str(err)
    assert "check the name" in str(err)


def test_data_file_that_is_a_folder(tmp_path):
    (tmp_path / "d.json").mkdir()
    with pytest.raises(SpecError) as info:
        parse_spec(FILE_SPEC.format(extra=""), file=FILE, spec_dir=tmp_path)
    assert info.value.entry == "[data] 'y'"
    assert "data file 'd.json' is a folder, not a file" in str(info.value)
    assert "give the path of a .json file" in str(info.value)
    assert "not found" not in str(info.value)


def test_data_file_with_a_byte_order_mark(tmp_path):
    (tmp_path / "d.json").write_bytes(b"\xef\xbb\xbf" + b'{"y": [1.0, 2.0]}')
    model = parse_spec(FILE_SPEC.format(extra=""), file=FILE, spec_dir=tmp_path)
    assert model.datum("y").value.tolist() == [1.0, 2.0]


def test_data_file_of_unknown_type(tmp_path):
    _write(tmp_path, "d.csv", "y\n1\n")
    with pytest.raises(DataError) as info:
        parse_spec(FILE_SPEC.format(extra="").replace("d.json", "d.csv"), file=FILE,
                   spec_dir=tmp_path)
    assert "cannot read data of type '.csv'" in str(info.value)
    assert "give a .json file" in str(info.value)


def test_data_key_must_be_a_string(tmp_path):
    _write(tmp_path, "d.json", json.dumps({"y": [1.0]}))
    with pytest.raises(SpecError) as info:
        parse_spec(FILE_SPEC.format(extra=", key = [1]"), file=FILE, spec_dir=tmp_path)
    assert info.value.entry == "[data] 'y'"
    assert "key must be a non-empty string, found [1]" in str(info.value)


# -- load_spec ----------------------------------------------------------------------------------


def test_load_spec_unknown_bundled_name_suggests_one():
    with pytest.raises(SpecError) as info:
        load_spec("ratz")
    text = str(info.value)
    assert "no bundled model and no file called 'ratz'" in text
    assert "did you mean 'rats'?" in text and re.search(r"Bundled models: [a-z_, ]*\brats\b", text)
    assert_clean(info.value)


def test_load_spec_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(with_derived("1 / sqrt(tua)"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}:{DERIVED_LINE}: [derived] 's': unknown name")


def test_load_spec_missing_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.toml")
    assert f"no bundled model and no file called '{tmp_path / 'nope.toml'}'. Bundled models: " \
        in str(info.value)
    assert "give the path to a .toml spec" in str(info.value)


def test_spec_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (BASE + OBSERVED).encode())
    assert load_spec(path).name == "t"
    assert parse_spec("\ufeff" + BASE + OBSERVED, file=FILE).name == "t"


@pytest.mark.parametrize(
    ("encoding", "found"),
    [("latin-1", ":3: not UTF-8 text (invalid start byte at byte 35)"),
     ("utf-16", ": UTF-16 text")],
)
def test_spec_not_in_utf8(tmp_path, encoding, found):
    path = tmp_path / "latin.toml"
    path.write_bytes(replace('name = "t"', 'name = "t"\ndescription = "Gödel"').encode(encoding))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (f"{path}{found}; a spec is read as UTF-8 text: save it with "
                               "that encoding")


@pytest.mark.parametrize(("setting", "value"), [("draws", 0), ("chains", -1), ("seed", -3)])
def test_config_error_names_the_setting_once(setting, value):
    with pytest.raises(ConfigError) as info:
        FitConfig(**{setting: value})
    assert str(info.value).startswith(f"{setting} must be ")
    assert info.value.entry == setting


def test_parse_spec_wants_text():
    with pytest.raises(SpecError) as info:
        parse_spec(b'[model]\nname = "t"\n', file=FILE)  # type: ignore[arg-type]
    assert "expected the spec as text (str), found bytes" in str(info.value)


def test_user_errors_are_the_user_input_family():
    for case in CASES.values():
        assert issubclass(case.error, UserInputError)


# -- broken spec files --------------------------------------------------------------------------

BROKEN = Path(__file__).parent / "fixtures" / "specs" / "broken"


def _expectation(path: Path) -> tuple[str, str]:
    line = next(x for x in path.read_text().splitlines() if x.startswith("# expect: "))
    kind, _, part = line.removeprefix("# expect: ").partition(": ")
    return kind, part


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.toml")), ids=lambda p: p.stem)
def test_broken_spec_files(path):
    kind, part = _expectation(path)
    if kind == "OK":
        assert load_spec(path).name == "broken"
        return
    with pytest.raises(UserInputError) as info:
        load_spec(path)
    err = info.value
    assert type(err).__name__ == kind, f"{type(err).__name__}: {err}"
    text = str(err)
    assert part in text, f"{part!r} not in {text!r}"
    # the file named is the spec, or the data file the spec points to
    assert text.startswith(str(path)) or text.startswith(str(BROKEN))
    assert_clean(err)


# -- warnings: a spec that parses but is likely wrong -------------------------------------------

SCALE_BASE = BASE + 'sigma = "normal(0, 5)"\n'  # line 12: a real-valued "scale"


@pytest.mark.parametrize(
    ("extra", "observed", "entry", "line", "argument"),
    [
        ("", '[observed]\ny = "normal(a, sigma)"\n', "[observed] 'y'", 14, "'sigma' of normal"),
        ("", '[observed]\ny = "normal(a, tau=sigma)"\n', "[observed] 'y'", 14, "'tau' of normal"),
        ('b = "gamma(2, sigma)"\n', OBSERVED, "[parameters] 'b'", 13, "'rate' of gamma"),
        ('b = "student_t(sigma, 0, 1)"\n', OBSERVED, "[parameters] 'b'", 13, "'nu' of student_t"),
        ('"s[rat]" = "normal(0, 1)"\n', '[observed]\ny = "normal(a, s)"\n', "[observed] 'y'", 15,
         "'sigma' of normal"),
        ("", OBSERVED + '[generated]\nz = "exponential(sigma)"\n', "[generated] 'z'", 16,
         "'rate' of exponential"),
    ],
    ids=["sigma", "tau", "gamma-rate", "student-t-nu", "along-a-dim", "generated"],
)
def test_real_parameter_as_a_scale_warns(extra, observed, entry, line, argument):
    with pytest.warns(SpecWarning) as record:
        model = parse_spec(SCALE_BASE + extra + observed, file=FILE)
    assert model.name == "t"
    assert len(record) == 1
    text = str(record[0].message)
    assert text.startswith(f"{FILE}:{line}: {entry}: argument {argument} must be > 0, but ")
    assert "has a distribution with real support, so it can be negative" in text
    assert "give it a positive one (half_normal, gamma, exponential, ...)" in text
    assert record[0].filename == __file__, "the warning points at the caller, not crossppl"


@pytest.mark.parametrize(
    "spec",
    [
        BASE + 'sigma = "half_normal(5)"\n[observed]\ny = "normal(a, sigma)"\n',
        BASE + 'sigma = "uniform(0, 10)"\n[observed]\ny = "normal(a, sigma)"\n',
        BASE + 'ls = "normal(0, 1)"\n[observed]\ny = "normal(a, exp(ls))"\n',
        BASE + 'ls = "normal(0, 1)"\n[derived]\ns = "abs(ls)"\n[observed]\ny = "normal(a, s)"\n',
        BASE + '[observed]\ny = "normal(a, tau=tau)"\n',
        replace(X_LINE, 'x = { dims = ["week"], value = [1.0, 2.0] }',
                '[observed]\ny = "normal(a, x)"\n'),
    ],
    ids=["half-normal", "uniform-0-10", "exp", "derived-abs", "gamma", "data"],
)
def test_positive_scales_do_not_warn(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpecWarning)
        parse_spec(spec, file=FILE)


def test_bundled_specs_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpecWarning)
        for path in bundled_specs().values():
            load_spec(path)


def test_no_warning_when_the_spec_has_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpecWarning)
        with pytest.raises(SpecError, match="unknown name 'zz'"):
            parse_spec(SCALE_BASE + '[observed]\ny = "normal(a, sigma)"\n'
                       '[generated]\nq = "normal(zz, 1)"\n', file=FILE)


def test_cli_prints_a_spec_warning_once_on_one_line(tmp_path, capsys):
    from crossppl.cli import main

    path = tmp_path / "scale.toml"
    path.write_text(SCALE_BASE + '[observed]\ny = "normal(a, sigma)"\n')
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = warnings._showwarning_orig  # as outside pytest
        assert main(["emit", str(path), "--backend", "stan"]) == 0
    err = capsys.readouterr().err
    assert err == (f"crossppl: warning: {path}:14: [observed] 'y': argument 'sigma' of normal "
                   "must be > 0, but sigma has a distribution with real support, so it can be "
                   "negative; give it a positive one (half_normal, gamma, exponential, ...) or "
                   "write exp(sigma)\n")


@pytest.mark.parametrize("name", ["description_nul", "dim_named_draw", "data_file_folder"])
def test_cli_refuses_bad_input_before_any_backend(name, capsys):
    # once an "engine failed" (exit 3) or a crash after sampling: now exit 2 at parse time
    from crossppl.cli import main

    path = Path(__file__).parent / "fixtures" / "specs" / "hostile" / f"{name}.toml"
    assert main(["emit", str(path), "--backend", "pymc"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"crossppl: error: {path}") and captured.err.count("\n") == 1
