"""The spec language: the Rats spec and small specs parse to the expected IR.

Covers named-dim broadcasting, index data, inline and file data, derived quantities, statement
ordering, every distribution row and parameterization, and constraint / support checks.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from crossppl.models import DISTRIBUTIONS, Model, load_spec, parse_spec
from crossppl.models.ir import (
    Binary,
    Call,
    Const,
    DataDecl,
    DerivedDecl,
    Dist,
    Index,
    ParamDecl,
    Role,
    Unary,
    Var,
    walk,
)

from crossppl.errors import DataError, SpecError

REPO = Path(__file__).resolve().parents[1]
RATS_DATA = json.loads((REPO / "data" / "rats.data.json").read_text())


def spec(text: str, tmp_path: Path | None = None) -> Model:
    """Parse a spec written as an indented string (a [model] header is added when missing)."""
    text = textwrap.dedent(text)
    if "[model]" not in text:
        text = '[model]\nname = "t"\n' + text
    return parse_spec(text, file="t.toml", spec_dir=tmp_path)


def stmt(model: Model, name: str):
    return next(s for s in model.statements if s.name == name)


# -- the Rats spec ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rats() -> Model:
    return load_spec("rats")


def test_rats_metadata(rats):
    assert rats.name == "rats"
    assert "30 rats" in rats.description
    assert "Gelfand" in rats.source
    assert rats.path.endswith("rats.toml")


def test_rats_dims_sizes_and_coords(rats):
    assert [(d.name, d.size) for d in rats.dims] == [("rat", 30), ("week", 5)]
    assert rats.dim("week").coords == (8, 15, 22, 29, 36)
    assert rats.dim("rat").coords == ()
    assert rats.coords == {"rat": list(range(30)), "week": [8, 15, 22, 29, 36]}


def test_rats_data(rats):
    x, y = rats.datum("x"), rats.datum("y")
    assert (x.dims, x.kind) == (("week",), "real")
    assert (y.dims, y.kind) == (("rat", "week"), "real")
    assert y.value.shape == (30, 5) and y.value.dtype == np.float64
    np.testing.assert_array_equal(x.value, RATS_DATA["x"])
    np.testing.assert_array_equal(y.value, RATS_DATA["y"])
    assert rats.observed_names == ("y",)


def test_rats_parameter_order_and_dims(rats):
    assert [(p.name, p.dims) for p in rats.parameters] == [
        ("mu_alpha", ()),
        ("tau_alpha", ()),
        ("mu_beta", ()),
        ("tau_beta", ()),
        ("tau", ()),
        ("alpha", ("rat",)),
        ("beta", ("rat",)),
    ]


def test_rats_parameterizations(rats):
    mu_alpha = stmt(rats, "mu_alpha").dist
    assert (mu_alpha.name, mu_alpha.parameterization) == ("normal", "tau")
    assert mu_alpha.args == (("mu", Const(0)), ("tau", Const(1e-6)))
    for name in ("tau_alpha", "tau_beta", "tau"):
        dist = stmt(rats, name).dist
        assert (dist.name, dist.parameterization) == ("gamma", "rate")
        assert dist.args == (("shape", Const(0.001)), ("rate", Const(0.001)))
    alpha = stmt(rats, "alpha").dist
    assert (alpha.name, alpha.parameterization, alpha.dims) == ("normal", "tau", ())
    assert alpha.arg("mu") == Var("mu_alpha", Role.PARAM, ())
    assert alpha.arg("tau") == Var("tau_alpha", Role.PARAM, ())


def test_rats_derived_sigma(rats):
    (sigma,) = rats.derived
    assert sigma == DerivedDecl(
        "sigma",
        (),
        Binary("div", Const(1), Call("sqrt", (Var("tau", Role.PARAM, ()),), ()), ()),
    )
    # derived quantities come after what they use
    names = [s.name for s in rats.statements]
    assert names.index("sigma") > names.index("tau")


def test_rats_likelihood_broadcasts_to_rat_week(rats):
    (obs,) = rats.observed
    assert (obs.name, obs.dims) == ("y", ("rat", "week"))
    dist = obs.dist
    assert (dist.name, dist.parameterization, dist.dims) == ("normal", "tau", ("rat", "week"))
    alpha = Var("alpha", Role.PARAM, ("rat",))
    beta = Var("beta", Role.PARAM, ("rat",))
    x = Var("x", Role.DATA, ("week",))
    assert dist.arg("mu") == Binary(
        "add", alpha, Binary("mul", beta, x, ("rat", "week")), ("rat", "week")
    )
    assert dist.arg("tau") == Var("tau", Role.PARAM, ())
    assert rats.used_names() == {"mu_alpha", "tau_alpha", "mu_beta", "tau_beta", "tau", "alpha",
                                 "beta", "x"}


def test_ir_is_immutable(rats):
    with pytest.raises(dataclasses.FrozenInstanceError):
        rats.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rats.parameters[0].dist.name = "cauchy"  # type: ignore[misc]
    assert isinstance(rats.statements, tuple) and isinstance(rats.dims, tuple)


def test_bundled_name_and_path_give_the_same_model(rats):
    again = load_spec(REPO / "models" / "specs" / "rats.toml")
    assert again.statements == rats.statements
    assert again.observed == rats.observed


# -- named-dim broadcasting ---------------------------------------------------------------------

DIMS_RW = """
[dims]
rat = 3
week = 2
[data]
x = { dims = ["week"], value = [1.0, 2.0] }
y = { dims = ["rat", "week"], value = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]] }
[parameters]
"a[rat]" = "normal(0, 1)"
s = "half_normal(1)"
"""


@pytest.mark.parametrize(
    ("expr", "dims"),
    [
        ("a + x", ("rat", "week")),
        ("x + a", ("rat", "week")),  # declaration order, not operand order
        ("x * a - 1", ("rat", "week")),
        ("a * s", ("rat",)),
        ("x / s", ("week",)),
        ("s ** 2", ()),
        ("exp(a) + log(x)", ("rat", "week")),
        ("pow(x, a)", ("rat", "week")),
        ("-x", ("week",)),
        ("a[rat] + x[week]", ("rat", "week")),
        ("y[rat, week] - a", ("rat", "week")),
        ("inv_logit(logit(s))", ()),
        ("1 + 2", ()),
    ],
)
def test_binary_broadcasting_by_name(expr, dims):
    model = spec(DIMS_RW + f'[derived]\nm = "{expr}"\n[observed]\ny = "normal(a, 1)"\n')
    assert stmt(model, "m").dims == dims
    assert stmt(model, "m").expr.dims == dims


def test_dims_follow_declaration_order():
    # week declared before rat: a [rat] + [week] quantity is laid out [week, rat]
    model = spec(
        """
        [dims]
        week = 2
        rat = 3
        [data]
        x = { dims = ["week"], value = [1.0, 2.0] }
        y = { dims = ["week", "rat"], value = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]] }
        [parameters]
        "a[rat]" = "normal(0, 1)"
        [derived]
        m = "a + x"
        [observed]
        "y[week, rat]" = "normal(a * x, 1)"
        """
    )
    assert stmt(model, "m").dims == ("week", "rat")
    assert model.observed[0].dist.dims == ("week", "rat")


def test_every_node_has_union_dims():
    model = spec(
        DIMS_RW + '[derived]\nm = "exp(-a) * (x + s) / 2"\n[observed]\ny = "normal(m, s)"\n'
    )
    m = stmt(model, "m")
    assert isinstance(m.expr, Binary) and m.expr.op == "div"
    mul = m.expr.left
    assert mul.dims == ("rat", "week")
    assert mul.left == Call("exp", (Unary("neg", Var("a", Role.PARAM, ("rat",)), ("rat",)),),
                            ("rat",))
    assert mul.right.dims == ("week",)
    # derived quantities are referred to with role DERIVED
    assert model.observed[0].dist.arg("mu") == Var("m", Role.DERIVED, ("rat", "week"))


def test_declared_derived_dims_may_be_wider_than_the_expression():
    model = spec(DIMS_RW + '[derived]\n"m[rat, week]" = "a * 2"\n[observed]\ny = "normal(m, 1)"\n')
    assert stmt(model, "m").dims == ("rat", "week")
    assert stmt(model, "m").expr.dims == ("rat",)


def test_parameter_with_dims_and_scalar_prior():
    model = spec(DIMS_RW + '[observed]\ny = "normal(a, s)"\n')
    a = stmt(model, "a")
    assert isinstance(a, ParamDecl) and a.dims == ("rat",) and a.dist.dims == ()
    assert model.observed[0].dist.dims == ("rat",)


def test_unary_minus_of_literal_folds_to_constant():
    model = spec(DIMS_RW + '[derived]\nm = "-2.5 + +s"\n[observed]\ny = "normal(a, 1)"\n')
    assert stmt(model, "m").expr == Binary("add", Const(-2.5), Var("s", Role.PARAM, ()), ())


# -- index data ---------------------------------------------------------------------------------

GROUPED = """
[dims]
obs = {{}}
g = 3
[data]
group = {{ dims = ["obs"], type = "index", indexes = "g"{base}, value = {group} }}
y = {{ dims = ["obs"], value = [0.5, 1.5, 2.5, 3.5] }}
[parameters]
"a[g]" = "normal(0, 1)"
[observed]
y = "normal({mean}, 1)"
"""


@pytest.mark.parametrize("mean", ["a[group]", "a[group[obs]]"])
def test_index_data_base_1_converted_to_0_based(mean):
    model = spec(GROUPED.format(base="", group="[1, 2, 3, 1]", mean=mean))
    group = model.datum("group")
    assert (group.kind, group.indexes, group.base, group.dims) == ("index", "g", 1, ("obs",))
    assert group.value.tolist() == [0, 1, 2, 0]
    assert np.issubdtype(group.value.dtype, np.integer)
    assert model.dim("obs").size == 4
    mu = model.observed[0].dist.arg("mu")
    assert mu == Index(
        Var("a", Role.PARAM, ("g",)), Var("group", Role.DATA, ("obs",), integer=True), ("obs",)
    )


def test_index_data_base_0_kept():
    model = spec(GROUPED.format(base=", base = 0", group="[0, 2, 1, 0]", mean="a[group]"))
    assert model.datum("group").value.tolist() == [0, 2, 1, 0]
    assert model.datum("group").base == 0


@pytest.mark.parametrize(
    ("base", "group", "shown"),
    [
        ("", "[1, 2, 4, 1]", "outside 1..3"),
        ("", "[0, 1, 2, 3]", "outside 1..3"),
        (", base = 0", "[0, 1, 3, 0]", "outside 0..2"),
        (", base = 0", "[-1, 0, 1, 2]", "outside 0..2"),
    ],
)
def test_index_data_range_checked(base, group, shown):
    with pytest.raises(DataError) as info:
        spec(GROUPED.format(base=base, group=group, mean="a[group]"))
    err = info.value
    assert err.file == "t.toml" and err.entry == "[data] 'group'"
    assert shown in str(err) and "dim 'g'" in str(err)


def test_index_sizes_an_unsized_dim_from_its_largest_value():
    model = spec(
        """
        [dims]
        obs = {}
        g = {}
        [data]
        group = { dims = ["obs"], type = "index", indexes = "g", value = [1, 2, 4] }
        y = { dims = ["obs"], value = [1.0, 2.0, 3.0] }
        [parameters]
        "a[g]" = "normal(0, 1)"
        [observed]
        y = "normal(a[group], 1)"
        """
    )
    assert model.dim("g").size == 4


def test_index_of_a_two_dim_parameter_keeps_the_trailing_dim():
    model = spec(
        """
        [dims]
        obs = 3
        g = 2
        k = 2
        [data]
        group = { dims = ["obs"], type = "index", indexes = "g", value = [1, 2, 2] }
        y = { dims = ["obs", "k"], value = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]] }
        [parameters]
        "b[g, k]" = "normal(0, 1)"
        [observed]
        "y[obs, k]" = "normal(b[group], 1)"
        """
    )
    mu = model.observed[0].dist.arg("mu")
    assert isinstance(mu, Index) and mu.dims == ("obs", "k")


# -- data: inline, files, types -----------------------------------------------------------------


def test_inline_data_values_and_types():
    model = spec(
        """
        [dims]
        n = 3
        [data]
        x = { dims = ["n"], value = [1, 2.5, -3] }
        k = { dims = ["n"], type = "int", value = [0, 1, 5] }
        c = { value = 2.0 }
        [parameters]
        rate = "gamma(2, 1)"
        [observed]
        k = "poisson(rate * c + x * 0)"
        """
    )
    x, k, c = model.datum("x"), model.datum("k"), model.datum("c")
    assert x.value.tolist() == [1.0, 2.5, -3.0] and x.value.dtype == np.float64
    assert k.value.tolist() == [0, 1, 5] and np.issubdtype(k.value.dtype, np.integer)
    assert k.kind == "int" and c.dims == () and c.value.shape == ()
    assert model.observed[0].dist.arg("rate").dims == ("n",)
    # integer data reads as integer in expressions
    assert isinstance(model.observed[0].dist.arg("rate"), Binary)
    k_var = Var("k", Role.DATA, ("n",), integer=True)
    assert k_var.integer


def test_data_from_files_with_key_and_default_file(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"y": [1.0, 2.0], "xx": [3.0, 4.0]}))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.json").write_text(json.dumps({"z": 7}))
    model = spec(
        """
        [model]
        name = "files"
        data_file = "d.json"
        [dims]
        n = {}
        [data]
        y = { dims = ["n"] }
        x = { dims = ["n"], key = "xx" }
        z = { file = "sub/e.json" }
        [parameters]
        m = "normal(0, 1)"
        [observed]
        y = "normal(m + x * z, 1)"
        """,
        tmp_path,
    )
    assert model.datum("x").value.tolist() == [3.0, 4.0]
    assert model.datum("z").value.tolist() == 7.0
    assert model.dim("n").size == 2


def test_bundled_data_file_is_found_from_any_folder(tmp_path):
    model = spec(
        """
        [model]
        name = "r"
        data_file = "rats.data.json"
        [dims]
        week = 5
        [data]
        x = { dims = ["week"] }
        [parameters]
        m = "normal(0, 1)"
        [observed]
        x = "normal(m, 10)"
        """,
        tmp_path,
    )
    assert model.datum("x").value.tolist() == RATS_DATA["x"]


def test_coords_and_sizes():
    model = spec(
        """
        [dims]
        a = 2
        b = { size = 3 }
        c = { coords = ["u", "v"] }
        d = { size = 2, coords = [0.5, 1.5] }
        [data]
        y = { dims = ["a"], value = [1.0, 2.0] }
        [parameters]
        m = "normal(0, 1)"
        [observed]
        y = "normal(m, 1)"
        """
    )
    assert [(d.name, d.size, d.coords) for d in model.dims] == [
        ("a", 2, ()),
        ("b", 3, ()),
        ("c", 2, ("u", "v")),
        ("d", 2, (0.5, 1.5)),
    ]


# -- derived quantities and ordering -------------------------------------------------------------


def _assert_defined_before_use(model: Model) -> None:
    seen: set[str] = {d.name for d in model.data}
    for s in model.statements:
        root = s.expr if isinstance(s, DerivedDecl) else s.dist
        used = {n.name for n in walk(root) if isinstance(n, Var)}
        assert used <= seen, f"{s.name} uses {used - seen} before they are defined"
        seen.add(s.name)


def test_derived_quantities_used_by_parameters():
    model = spec(
        """
        [dims]
        g = 2
        [data]
        y = { dims = ["g"], value = [1.0, 2.0] }
        [parameters]
        "a[g]" = "normal(mu, sigma_a)"
        log_sigma = "normal(0, 1)"
        mu = "normal(0, 10)"
        [derived]
        sigma_a = "exp(log_sigma)"
        [observed]
        y = "normal(a, 1)"
        """
    )
    names = [s.name for s in model.statements]
    assert names.index("log_sigma") < names.index("sigma_a") < names.index("a")
    assert stmt(model, "a").dist.arg("sigma") == Var("sigma_a", Role.DERIVED, ())
    _assert_defined_before_use(model)


def test_topological_order_regardless_of_spec_order():
    # a chain written backwards: d uses c uses b uses a
    model = spec(
        """
        [data]
        y = { value = 1.0 }
        [parameters]
        d = "normal(c, 1)"
        b = "normal(a, 1)"
        a = "normal(0, 1)"
        [derived]
        c = "b * 2"
        e = "d + c"
        [observed]
        y = "normal(e, 1)"
        """
    )
    names = [s.name for s in model.statements]
    assert names == ["a", "b", "c", "d", "e"]
    _assert_defined_before_use(model)


def test_independent_statements_keep_spec_order():
    model = spec(
        """
        [data]
        y = { value = 1.0 }
        [parameters]
        z = "normal(0, 1)"
        m = "normal(0, 1)"
        b = "normal(0, 1)"
        [observed]
        y = "normal(z + m + b, 1)"
        """
    )
    assert [s.name for s in model.statements] == ["z", "m", "b"]


# -- every distribution and parameterization ----------------------------------------------------

_VALUES = {"positive": "2.5", "unit": "0.25", "integer": "3", "any": "0.5"}


def _arg_value(par, name: str, row) -> str:
    if name in par.integer:
        return _VALUES["integer"]
    if name in par.unit:
        return _VALUES["unit"]
    if name in par.positive:
        return _VALUES["positive"]
    if row.support.kind == "interval":
        return "0" if name == row.support.lower else "1"
    return _VALUES["any"]


def _cases():
    for row in DISTRIBUTIONS.values():
        for par in row.parameterizations:
            for n_pos in range(len(par.params) + 1):
                yield pytest.param(row.name, par.key, n_pos, id=f"{row.name}-{par.key}-{n_pos}pos")


def _data_for(row) -> str:
    kind = row.support.kind
    value = {
        "binary": "[0, 1, 1]",
        "count": "[0, 1, 4]",
        "bounded_count": "[0, 1, 3]",
        "positive": "[0.5, 1.0, 2.0]",
        "unit": "[0.25, 0.5, 0.75]",
        "interval": "[0.25, 0.5, 0.75]",
        "real": "[-1.0, 0.0, 1.0]",
    }[kind]
    type_ = '"int"' if row.support.discrete else '"real"'
    return f"y = {{ dims = [\"n\"], type = {type_}, value = {value} }}"


@pytest.mark.parametrize(("dist", "key", "n_pos"), list(_cases()))
def test_every_distribution_and_parameterization(dist, key, n_pos):
    row = DISTRIBUTIONS[dist]
    par = row.parameterization(key)
    values = [_arg_value(par, p, row) for p in par.params]
    parts = values[:n_pos] + [f"{p}={v}" for p, v in zip(par.params[n_pos:], values[n_pos:],
                                                               strict=True)]
    call = f"{dist}({', '.join(parts)})"
    # all positional always means the default (first) parameterization
    expected = par if n_pos < len(par.params) else row.parameterizations[0]
    if row.support.discrete:
        body = f'[dims]\nn = 3\n[data]\n{_data_for(row)}\n[observed]\ny = "{call}"\n'
        model = spec(body)
        parsed = model.observed[0].dist
    else:
        body = (f'[dims]\nn = 3\n[data]\n{_data_for(row)}\n[parameters]\nz = "{call}"\n'
                f'[observed]\ny = "{call}"\n')
        model = spec(body)
        parsed = stmt(model, "z").dist
        assert model.observed[0].dist == parsed
    assert isinstance(parsed, Dist)
    assert (parsed.name, parsed.parameterization) == (dist, expected.key)
    assert [name for name, _ in parsed.args] == list(expected.params)
    assert [float(a.value) for _, a in parsed.args] == [float(v) for v in values]


def test_keywords_in_any_order_are_stored_in_row_order():
    model = spec(
        """
        [data]
        y = { value = 1.0 }
        [parameters]
        t = "student_t(sigma=2, mu=1, nu=3)"
        [observed]
        y = "normal(tau=4, mu=t)"
        """
    )
    t = stmt(model, "t").dist
    assert t.args == (("nu", Const(3)), ("mu", Const(1)), ("sigma", Const(2)))
    obs = model.observed[0].dist
    assert obs.parameterization == "tau" and [n for n, _ in obs.args] == ["mu", "tau"]


def test_signature_lists_every_parameterization():
    assert DISTRIBUTIONS["normal"].signature() == "normal(mu, sigma) | normal(mu, tau)"


# -- constraints and support --------------------------------------------------------------------


@pytest.mark.parametrize("dist", ["poisson(3)", "bernoulli(0.5)", "binomial(10, 0.5)"])
def test_discrete_parameter_rejected(dist):
    with pytest.raises(SpecError) as info:
        spec(f'[data]\ny = {{ value = 1.0 }}\n[parameters]\nk = "{dist}"\n'
             '[observed]\ny = "normal(0, 1)"\n')
    msg = str(info.value)
    assert info.value.entry == "[parameters] 'k'"
    assert "discrete distribution" in msg and "NUTS" in msg and "marginalize" in msg


@pytest.mark.parametrize(
    ("dist", "values", "found"),
    [
        ("lognormal(0, 1)", "[1.0, 0.0]", "values <= 0"),
        ("gamma(2, 2)", "[1.0, -1.0]", "values <= 0"),
        ("exponential(1)", "[-0.5]", "values <= 0"),
        ("half_normal(1)", "[0.0]", "values <= 0"),
        ("beta(2, 2)", "[0.5, 1.0]", "outside the support (0, 1)"),
        ("beta(2, 2)", "[0.0]", "outside the support (0, 1)"),
    ],
)
def test_observed_continuous_support_checked(dist, values, found):
    n = values.count(",") + 1
    with pytest.raises(DataError) as info:
        spec(f'[dims]\nn = {n}\n[data]\ny = {{ dims = ["n"], value = {values} }}\n'
             f'[observed]\ny = "{dist}"\n')
    err = info.value
    assert err.entry == "[observed] 'y'"
    assert found in str(err) and "fix the data or the distribution" in str(err)


@pytest.mark.parametrize(
    ("dist", "values", "found"),
    [
        ("bernoulli(0.5)", "[0, 1, 2]", "values other than 0 and 1"),
        ("poisson(2)", "[0, -1, 3]", "negative counts"),
        ("binomial(5, 0.5)", "[1, -2, 3]", "negative counts"),
    ],
)
def test_observed_discrete_support_checked(dist, values, found):
    with pytest.raises(DataError) as info:
        spec(f'[dims]\nn = 3\n[data]\ny = {{ dims = ["n"], type = "int", value = {values} }}\n'
             f'[observed]\ny = "{dist}"\n')
    assert found in str(info.value)


def test_discrete_observed_needs_int_data():
    with pytest.raises(SpecError) as info:
        spec('[data]\ny = { value = 1.0 }\n[observed]\ny = "poisson(2)"\n')
    assert 'declare it with type = "int"' in str(info.value)


@pytest.mark.parametrize(
    ("dist", "found"),
    [
        ("normal(0, -1)", "argument 'sigma' of normal must be > 0, found -1"),
        ("normal(0, tau=0)", "argument 'tau' of normal must be > 0, found 0"),
        ("gamma(1, 2 - 3)", "argument 'rate' of gamma must be > 0, found -1"),
        ("beta(0, 1)", "argument 'alpha' of beta must be > 0"),
    ],
)
def test_constant_arguments_checked(dist, found):
    with pytest.raises(SpecError) as info:
        spec(f'[data]\ny = {{ value = 1.0 }}\n[parameters]\nz = "{dist}"\n'
             '[observed]\ny = "normal(0, 1)"\n')
    assert found in str(info.value)


@pytest.mark.parametrize(
    ("dist", "found"),
    [
        ("bernoulli(1.5)", "argument 'p' of bernoulli must be in [0, 1], found 1.5"),
        ("binomial(2.5, 0.5)", "argument 'n' of binomial must be integer data or an integer"),
        ("binomial(m, 0.5)", "argument 'n' of binomial must be integer data"),
    ],
)
def test_discrete_arguments_checked(dist, found):
    with pytest.raises(SpecError) as info:
        spec(f'[data]\ny = {{ type = "int", value = 1 }}\nm = {{ value = 3.0 }}\n'
             f'[observed]\ny = "{dist}"\n')
    assert found in str(info.value)


def test_binomial_n_from_integer_data_accepted():
    model = spec(
        """
        [dims]
        n = 2
        [data]
        trials = { dims = ["n"], type = "int", value = [5, 6] }
        y = { dims = ["n"], type = "int", value = [1, 6] }
        [parameters]
        p = "beta(1, 1)"
        [observed]
        y = "binomial(trials, p)"
        """
    )
    dist = model.observed[0].dist
    assert dist.arg("n") == Var("trials", Role.DATA, ("n",), integer=True)
    assert isinstance(model.datum("trials"), DataDecl)


def test_observed_within_support_accepted():
    model = spec(
        """
        [dims]
        n = 3
        [data]
        k = { dims = ["n"], type = "int", value = [0, 1, 1] }
        w = { dims = ["n"], value = [0.1, 2.0, 30.0] }
        [parameters]
        p = "beta(1, 1)"
        s = "exponential(scale=2)"
        [observed]
        k = "bernoulli(p)"
        w = "lognormal(0, s)"
        """
    )
    assert model.observed_names == ("k", "w")


# -- [generated] and [fit] -------------------------------------------------------------------------
PREDICTIVE = REPO / "tests" / "fixtures" / "specs" / "predictive.toml"


def test_generated_quantities_are_parsed_in_spec_order_with_roles():
    model = load_spec(PREDICTIVE)
    assert [(g.name, g.dims) for g in model.generated] == [
        ("b_new", ()), ("r_rep", ("group",)), ("y_new", ("unit",)), ("count_new", ()),
        ("flip", ("group",)),
    ]
    # not parameters, not derived: NUTS never sees them
    assert {s.name for s in model.statements} == {"mu", "sigma", "b", "p"}
    assert [s.name for s in model.recorded] == [
        *(s.name for s in model.statements), *(g.name for g in model.generated)
    ]
    roles = {v.name: v.role for g in model.generated for v in walk(g.dist) if isinstance(v, Var)}
    assert roles == {"mu": Role.PARAM, "sigma": Role.PARAM, "n": Role.DATA, "p": Role.DERIVED,
                     "b_new": Role.GENERATED, "x": Role.DATA, "b": Role.PARAM}
    assert model.generated[1].dist.name == "binomial"  # discrete is allowed here
    assert "b_new" in model.used_names()


def test_generated_quantities_are_not_visible_to_the_model():
    with pytest.raises(SpecError, match="unknown name 'z'"):
        spec("""
            [parameters]
            a = "normal(0, 1)"
            [derived]
            s = "a + z"
            [data]
            y = { value = 1.0 }
            [observed]
            y = "normal(a, 1)"
            [generated]
            z = "normal(a, 1)"
        """)


def test_fit_settings_are_recorded_and_resolved_under_the_user_s():
    from crossppl.config import FitConfig

    model = spec("""
        [data]
        y = { value = 1.0 }
        [parameters]
        a = "normal(0, 1)"
        [observed]
        y = "normal(a, 1)"
        [fit]
        target_accept = 0.95
        draws = 2000
    """)
    assert model.fit == (("target_accept", 0.95), ("draws", 2000))
    config = FitConfig.resolve(model.fit)
    assert (config.target_accept, config.draws, config.warmup) == (0.95, 2000, 1000)
    config = FitConfig.resolve(model.fit, target_accept=0.8, draws=None, chains=2)
    assert (config.target_accept, config.draws, config.chains) == (0.8, 2000, 2)
    assert load_spec("rats").fit == ()
