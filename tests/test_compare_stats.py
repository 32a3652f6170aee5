"""The statistics behind the verdict, on synthetic posteriors with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from arviz_base import from_dict
from crossppl.compare.agreement import holm, pairwise_tests, pooled_rhat
from crossppl.compare.density import check_density
from crossppl.compare.diagnostics import diagnose
from crossppl.compare.reference import load_reference
from crossppl.compare.summary import pareto_khat, summarize
from crossppl.compare.verdict import Source, decide

from crossppl.errors import DataError
from crossppl.testing import assert_posteriors_match


def _idata(seed, shift=0.0, scale=1.0, chains=4, draws=2000, diverging=0, stuck=False):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(chains, draws))
    b = shift + scale * rng.normal(size=(chains, draws, 8))
    if stuck:
        b[0] += 5.0
    div = np.zeros((chains, draws), bool)
    div.flat[:diverging] = True
    energy = rng.normal(size=(chains, draws))
    return from_dict(
        {"posterior": {"a": a, "b": b},
         "sample_stats": {"diverging": div, "energy": energy, "lp": energy}},
        coords={"g": list("abcdefgh")},
        dims={"b": ["g"]},
    )


def test_holm_matches_the_step_down_rule():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_array_equal(holm(p, 0.05), [True, False, False, True])
    assert not holm(np.array([0.02, 0.03]), 0.01).any()


def test_pareto_khat_separates_light_and_heavy_tails():
    rng = np.random.default_rng(1)
    assert pareto_khat(rng.normal(size=8000)) < 0.3
    assert pareto_khat(rng.standard_cauchy(size=8000)) > 0.7


def test_summary_has_every_element_with_mcse_columns():
    s = summarize(_idata(0).posterior)
    assert list(s.index) == ["a", *(f"b[{c}]" for c in "abcdefgh")]
    for col in ("mean", "sd", "q05", "q50", "q95", "mcse_mean", "mcse_sd", "mcse_q05",
                "ess_bulk", "ess_tail", "r_hat", "khat"):
        assert s[col].notna().all(), col
    assert (s["mcse_mean"] < 0.05).all()


def test_same_distribution_gives_no_rejection_and_a_shift_is_caught():
    same = {"x": summarize(_idata(1).posterior), "y": summarize(_idata(2).posterior)}
    assert not pairwise_tests(same)["reject"].any()
    shifted = {"x": same["x"], "z": summarize(_idata(3, shift=0.15).posterior)}
    rejected = pairwise_tests(shifted).query("reject")
    assert set(rejected["statistic"]) >= {"mean", "q50"}
    assert set(rejected["parameter"]) <= {f"b[{c}]" for c in "abcdefgh"}


def test_a_wrong_scale_is_caught_by_the_sd_and_tail_quantiles():
    pair = {"x": summarize(_idata(4).posterior), "y": summarize(_idata(5, scale=1.2).posterior)}
    rejected = pairwise_tests(pair).query("reject")
    assert {"sd", "q05", "q95"} <= set(rejected["statistic"])


def test_heavy_tails_are_tested_on_quantiles_only():
    rng = np.random.default_rng(6)
    heavy = {k: summarize(from_dict({"posterior": {"c": rng.standard_cauchy((4, 2000))}}).posterior)
             for k in ("x", "y")}
    tests = pairwise_tests(heavy)
    untested = tests[tests["note"] != ""]
    assert set(untested["statistic"]) == {"mean", "sd"}
    assert "Pareto k" in untested["note"].iloc[0]


def test_diagnostics_gate_names_what_failed():
    good = _idata(7)
    assert diagnose(good, summarize(good.posterior)).ok
    bad = _idata(8, diverging=3, stuck=True)
    diag = diagnose(bad, summarize(bad.posterior))
    assert not diag.ok
    text = "; ".join(diag.reasons)
    assert "3 divergent transitions" in text and "R-hat" in text


def test_pooled_rhat_flags_disagreeing_sources_only():
    same = pooled_rhat({"x": _idata(9).posterior, "y": _idata(10).posterior})
    assert not same["flagged"].any()
    differ = pooled_rhat({"x": _idata(9).posterior, "y": _idata(11, shift=0.5).posterior})
    assert differ.set_index("parameter").loc["b[a]", "flagged"]


def test_density_check_accepts_constant_offsets_and_names_culprit_terms():
    rng = np.random.default_rng(12)
    base = rng.normal(size=20) * 50
    terms_a = {"mu": rng.normal(size=20), "y": base}
    terms_b = {"mu": terms_a["mu"] + 3.0, "y": base * 1.01}
    check = check_density({"a": base, "b": base + 7.5, "c": base * 1.01},
                          {"a": terms_a, "c": terms_b})
    ok = check.pairs.set_index("pair")["constant"]
    assert ok["a vs b"] and not ok["a vs c"]
    assert check.culprits("a vs c") == ["y"]


def _slip_terms(seed: int = 3) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Terms of a Rats-like model (a likelihood of thousands of nats, a small prior) and the
    same terms with a slip in the small prior (precision 1e-4 for 1e-6, as nats)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(6.19, 0.11, 20)
    y = -3000.0 + rng.normal(0, 200, 20)
    a = {"mu": -0.5e-6 * mu**2 - 7.8, "y": y}
    b = {"mu": -0.5e-4 * mu**2 - 5.5, "y": y + 0.25}
    return a, b


def test_a_small_slip_under_the_whole_density_tolerance_is_a_mismatch_by_its_term():
    a, b = _slip_terms()
    total_a, total_b = a["mu"] + a["y"], b["mu"] + b["y"]
    whole = check_density({"a": total_a, "b": total_b})  # no terms: the whole density only
    assert whole.ok
    row = whole.pairs.iloc[0]
    assert 0 < row["spread"] <= row["tolerance"] and row["terms_constant"] is None
    check = check_density({"a": total_a, "b": total_b}, {"a": a, "b": b})
    row = check.pairs.iloc[0]
    assert row["density_constant"] and not row["terms_constant"] and not row["constant"]
    assert not check.ok
    assert check.culprits("a vs b") == ["mu"]
    term = check.terms.set_index("variable").loc["mu"]
    assert term["spread"] > 10 * term["tolerance"]  # the tolerance of a term of ~8 nats
    assert check.terms.set_index("variable").loc["y", "constant"]
    verdict = decide([Source("a", "generated"), Source("b", "program")],
                     pairwise_tests({}), check)
    assert verdict.kind == "mismatch" and "terms of mu differ" in verdict.reasons[0]


def test_terms_that_differ_but_cancel_are_no_mismatch():
    """The same joint density factorized otherwise (density moved between two variables, or
    into a term only one program has) is no mismatch and names no culprit; a slip still is."""
    rng = np.random.default_rng(4)
    a = {"mu": rng.normal(size=20) * 3, "y": -1500 + rng.normal(0, 200, 20)}
    moved = rng.normal(size=20)
    b = {"mu": a["mu"] - moved, "y": a["y"] + moved + 2.0}
    c = {"mu": a["mu"] - moved, "y": a["y"] + 1.0, "target": moved}
    total = a["mu"] + a["y"]
    logps = {"a": total, "b": total + 2.0, "c": total + 1.0}
    check = check_density(logps, {"a": a, "b": b, "c": c})
    assert check.ok, check.pairs
    assert check.culprits("a vs b") == [] and check.culprits("a vs c") == []
    assert not check.terms.set_index(["pair", "variable"]).loc[("a vs b", "mu"), "constant"]
    c["target"] = moved + 2e-5 * rng.normal(size=20)  # the moved part, slightly wrong
    check = check_density({**logps, "c": c["mu"] + c["y"] + c["target"]},
                          {"a": a, "b": b, "c": c})
    assert check.pairs.set_index("pair").loc["a vs c", "density_constant"]
    assert not check.ok and check.culprits("a vs c") == ["mu"]


def test_pairs_keep_their_public_columns():
    check = check_density({"a": np.arange(5.0), "b": np.arange(5.0) + 1})
    assert list(check.pairs.columns[:5]) == ["pair", "a", "b", "spread", "constant"]
    assert check.ok and check.culprits("a vs b") == [] and check.n_points == 5


def test_verdict_precedence():
    tests = pairwise_tests({"x": summarize(_idata(1).posterior),
                            "y": summarize(_idata(2).posterior)})
    ok = [Source("x", "generated"), Source("y", "generated")]
    assert decide(ok, tests, None).kind == "match"
    failed = [*ok, Source("z", "generated", ran=False, error="compile error")]
    verdict = decide(failed, tests, None)
    assert verdict.kind == "inconclusive" and "z failed to run: compile error" in verdict.reasons
    density = check_density({"x": np.arange(5.0), "y": np.arange(5.0) ** 2})
    assert decide(ok, tests, density).kind == "mismatch"
    assert decide(ok, tests, density).exit_code == 1


def test_shipped_rats_reference_reads_with_rounding_in_the_mcse():
    from importlib.resources import files

    ref = load_reference(files("crossppl.data").joinpath("rats.reference.json"))
    assert ref.loc["mu_alpha", "mean"] == pytest.approx(106.580)
    # a reported MCSE of 0.000 still carries the rounding error of the table
    assert ref.loc["tau_alpha", "mcse_mean"] == pytest.approx(0.0005 / np.sqrt(3))
    assert ref.loc["mu_beta", "mcse_sd"] > 0


def test_reference_csv_and_netcdf_and_errors(tmp_path):
    csv = tmp_path / "ref.csv"
    pd.DataFrame({"parameter": ["a"], "mean": [0.0], "sd": [1.0]}).to_csv(csv, index=False)
    ref = load_reference(csv)
    assert ref.loc["a", "mcse_mean"] == pytest.approx(0.1)  # documented tolerance_sd
    nc = tmp_path / "draws.nc"
    _idata(13).to_netcdf(nc)
    assert "b[h]" in load_reference(nc).index
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"parameters": {"a": {"mean": 1.0}}}))
    with pytest.raises(DataError, match="'a' needs at least mean and sd"):
        load_reference(bad)
    with pytest.raises(DataError, match="reference file not found"):
        load_reference(tmp_path / "missing.json")


@pytest.mark.slow
def test_assert_posteriors_match_for_users_test_suites():
    assert_posteriors_match(_idata(14), _idata(15))
    with pytest.raises(AssertionError, match=r"(?s)tests rejected.*b\["):
        assert_posteriors_match(_idata(14), _idata(16, shift=0.2), names=["ok", "shifted"])
    with pytest.raises(AssertionError, match="diagnostics failed"):
        assert_posteriors_match(_idata(14), _idata(17, diverging=2))


# -- what a user reads: no numeric noise, columns apart, honest wording --------------------------
def test_summaries_of_constant_and_count_elements_raise_no_numeric_warnings():
    """A data-like constant element and a count with tied tails gave NumPy "divide by zero"
    warnings in the terminal; their undefined statistics are NaN, silently."""
    rng = np.random.default_rng(21)
    idata = from_dict({"posterior": {"c": np.full((4, 500), 2.0),
                                     "k": rng.poisson(0.1, size=(4, 500)).astype(float),
                                     "x": rng.normal(size=(4, 500))}})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = summarize(idata.posterior)
        diagnose(idata, table)
    assert np.isnan(table.loc["c", "khat"]) and table.loc["x", "khat"] < 0.7


def test_ebfmi_is_never_printed_as_minus_zero():
    rng = np.random.default_rng(22)
    stuck = np.cumsum(rng.normal(scale=1e-3, size=(4, 500)), axis=1)  # E-BFMI ~ 0
    idata = from_dict({"posterior": {"a": rng.normal(size=(4, 500))},
                       "sample_stats": {"energy": stuck, "diverging": np.zeros((4, 500), bool)}})
    diag = diagnose(idata, summarize(idata.posterior))
    text = "; ".join(diag.reasons)
    assert "E-BFMI" in text and "-0.00" not in text


def _comparison(idatas: dict, reference: pd.DataFrame | None = None):
    from crossppl.compare.result import Comparison
    from crossppl.compare.verdict import decide

    sources = {name: summarize(idata.posterior) for name, idata in idatas.items()}
    srcs = [Source(name, "generated", summary=sources[name],
                   diagnostics=diagnose(idata, sources[name]), idata=idata)
            for name, idata in idatas.items()]
    if reference is not None:
        sources["reference"] = reference
        srcs.append(Source("reference", "reference", summary=reference))
    tests = pairwise_tests(sources)
    return Comparison(model="m", verdict=decide(srcs, tests, None),
                      sources={s.name: s for s in srcs}, tests=tests, density=None,
                      pooled=pd.DataFrame(columns=["parameter", "r_hat", "flagged"]), alpha=0.05)


def test_terminal_table_keeps_long_numbers_apart():
    rng = np.random.default_rng(23)
    draws = {"a": 7.944 + rng.normal(size=(4, 500)),
             "tiny": 4.776e-28 * np.exp(rng.normal(size=(4, 500))),
             "huge": -44.964e125 * np.exp(rng.normal(size=(4, 500)))}
    text = _comparison({"x": from_dict({"posterior": draws})}).to_text()
    rows = [line for line in text.splitlines() if line.lstrip().startswith(("a ", "tiny", "huge"))]
    assert len(rows) == 3
    for row in rows:
        cells = row.split()
        assert len(cells) == 9, row  # name, source, 5 statistics, ESS, R-hat: all apart
        for cell in cells[2:7]:
            float(cell)


def test_a_vector_without_tests_is_not_reported_as_passing_them():
    rng = np.random.default_rng(24)
    one = from_dict({"posterior": {"v": rng.normal(size=(4, 500, 6))}}, dims={"v": ["k"]})
    alone = _comparison({"x": one}).to_text()
    assert "v[...]: 6 elements, not tested" in alone and "no test rejected" not in alone
    two = _comparison({"x": one, "y": one}).to_text()
    assert "v[...]: 6 elements, no test rejected" in two


def test_a_pair_s_tests_do_not_depend_on_the_other_sources_of_the_run():
    """Each pair is its own Holm family: adding a third source changes nothing of a pair."""
    x, y, z = (summarize(_idata(s, shift=0.06 if s == 31 else 0.0).posterior)
               for s in (30, 31, 32))
    alone = pairwise_tests({"x": x, "y": y})
    together = pairwise_tests({"x": x, "y": y, "z": z})
    mine = together[together["pair"] == "x vs y"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone.reset_index(drop=True), mine)
    # the thresholds are Holm's within the pair: the smallest p faces alpha / m
    m = len(alone)
    from scipy import stats

    first = alone.loc[alone["p"].idxmin(), "z_crit"]
    assert first == pytest.approx(stats.t.isf(0.05 / m / 2, 100))


def test_a_mismatch_of_draws_alone_says_so_and_what_to_do():
    """Densities equal, one test past its threshold: the reason says the difference is in the
    draws, shows z against the |z| needed, and suggests more draws or another seed."""
    x, y = summarize(_idata(40).posterior), summarize(_idata(41).posterior)
    y.loc["b[c]", "q05"] -= 12 * y.loc["b[c]", "mcse_q05"]  # one quantile far off, nothing else
    tests = pairwise_tests({"x": x, "y": y})
    assert tests["reject"].sum() >= 1
    base = np.random.default_rng(42).normal(size=20)
    density = check_density({"x": base, "y": base + 3.0})
    verdict = decide([Source("x", "generated"), Source("y", "generated")], tests, density)
    assert verdict.kind == "mismatch" and verdict.exit_code == 1
    text = " ".join(verdict.reasons)
    assert "b[c] q05" in text and "needed |z| >=" in text
    assert "same density" in text and "difference is in the draws" in text
    assert "--draws" in text and "--seed" in text
    # when the densities differ, no such reassurance
    differ = check_density({"x": base, "y": base * 2})
    text = " ".join(decide([Source("x", "generated"), Source("y", "generated")], tests,
                           differ).reasons)
    assert "same density" not in text


@pytest.mark.parametrize("prob", [0.05, 0.5, 0.95])
def test_quantile_mcse_is_right_and_steady(prob):
    """On 400 independent N(0, 1) elements of 4 x 1000 iid draws the quantile MCSE is near its
    true value sqrt(p (1 - p) / n) / phi(z_p), and varies little from element to element: its
    noise is what puts the far tail of z (where Holm's thresholds lie) above the normal's.
    arviz-stats's own estimate varies about 2.5 times as much in the tails."""
    import arviz_stats as azs
    import xarray as xr
    from crossppl.compare.summary import mcse_quantile
    from scipy import stats

    x = np.random.default_rng(50).normal(size=(4, 1000, 400))
    ds = xr.Dataset({"v": (("chain", "draw", "k"), x)})
    ours = mcse_quantile(ds, prob)["v"].values
    truth = np.sqrt(prob * (1 - prob) / 4000) / stats.norm.pdf(stats.norm.ppf(prob))
    assert 0.97 * truth < ours.mean() < 1.12 * truth  # a little conservative in the tails
    cv = ours.std() / ours.mean()
    assert cv < 0.09
    theirs = azs.mcse(ds, method="quantile", prob=prob)["v"].values
    assert theirs.std() / theirs.mean() > 1.5 * cv


def _report_parts(comparison):
    """The HTML report, its forest plot (figure, sources drawn as mean +- sd) and its table
    rows as (parameter, source)."""
    from crossppl.compare.report_html import _forest_figure

    html, rows = _html_rows(comparison)
    return html, _forest_figure(comparison), rows


def _html_rows(comparison) -> tuple[str, list[tuple[str, str]]]:
    """The HTML report and its summary table's rows as (parameter, source)."""
    import re

    from crossppl.compare.report_html import render_html

    html = render_html(comparison)
    table = html[html.index("<h2>Summary table</h2>"):html.index("<h2>Tests</h2>")]
    return html, re.findall(r"<tr[^>]*><td class='l'>([^<]*)</td><td class='l'>([^<]*)</td>",
                            table)


def test_html_forest_draws_5_95_quantiles_and_labels_a_reference_of_mean_and_sd():
    """Issue 10: a summary-only reference was drawn as mean +- 2 sd under a title promising
    5-95% intervals, and its square marker showed as a circle in the legend."""
    from crossppl.compare.reference import reference_from_table

    rng = np.random.default_rng(25)
    draws = {name: from_dict({"posterior": {"a": 3 + 2 * rng.normal(size=(4, 500))}})
             for name in ("x", "y")}
    reference = reference_from_table({"a": {"mean": 3.0, "sd": 2.0}})
    html, (fig, sd_only), _ = _report_parts(_comparison(draws, reference))
    assert sd_only == ["reference"]
    assert ("<h2>Forest plot (median and 5–95% interval per source; reference: mean ± 1.645 "
            "sd, no quantiles given)</h2>") in html
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "x", "y", "reference: mean ± 1.645 sd, no quantiles given"]
    assert [h.get_marker() for h in legend.legend_handles] == ["o", "o", "s"]
    assert [h.get_linestyle() for h in legend.legend_handles] == ["-", "-", "--"]
    lines = [line for line in fig.axes[0].lines if len(line.get_xdata()) == 2]
    summary = {n: summarize(d.posterior).loc["a"] for n, d in draws.items()}
    drawn = sorted(tuple(np.round(line.get_xdata(), 9)) for line in lines)
    expected = sorted([(round(3 - 1.6448536269514722 * 2, 9), round(3 + 1.6448536269514722 * 2, 9)),
                       *((round(s.q05, 9), round(s.q95, 9)) for s in summary.values())])
    assert drawn == expected
    # A reference with quantiles is drawn like every other source, and the title says nothing
    # more.
    quantiles = reference_from_table({"a": {"mean": 3.0, "sd": 2.0, "q05": -0.2, "q50": 3.1,
                                            "q95": 6.4}})
    html, (fig, sd_only), _ = _report_parts(_comparison(draws, quantiles))
    assert sd_only == [] and "1.645" not in html
    assert [h.get_marker() for h in fig.legends[0].legend_handles] == ["o", "o", "o"]
    assert (-0.2, 6.4) in [tuple(line.get_xdata()) for line in fig.axes[0].lines]


@pytest.mark.slow
def test_html_table_is_sorted_by_parameter_in_model_order_then_source():
    """Issue 10: the table (198 rows for Rats) was sorted by source, so that backends could not
    be read side by side."""
    from crossppl.compare.reference import reference_from_table

    rng = np.random.default_rng(26)

    def draws():
        return from_dict({"posterior": {"mu": rng.normal(size=(4, 300)),
                                        "v": rng.normal(size=(4, 300, 12)),
                                        "sigma": np.exp(rng.normal(size=(4, 300)))}},
                         dims={"v": ["k"]})

    reference = reference_from_table({"sigma": {"mean": 1.6, "sd": 2.1},
                                      "mu": {"mean": 0.0, "sd": 1.0}})
    _, rows = _html_rows(_comparison({"stan": draws(), "pymc": draws()}, reference))
    params = ["mu", *(f"v[{i}]" for i in range(12)), "sigma"]
    assert rows == [*(("mu", s) for s in ("stan", "pymc", "reference")),
                    *((p, s) for p in params[1:-1] for s in ("stan", "pymc")),
                    *(("sigma", s) for s in ("stan", "pymc", "reference"))]


def test_every_report_says_a_mismatch_is_in_the_draws_when_densities_agree(tmp_path):
    """Terminal, JSON and HTML carry the reason, and the |z| each rejected test needed."""
    from crossppl.compare.result import Comparison

    x, y = summarize(_idata(40).posterior), summarize(_idata(41).posterior)
    y.loc["b[c]", "q05"] -= 12 * y.loc["b[c]", "mcse_q05"]
    tests = pairwise_tests({"x": x, "y": y})
    base = np.random.default_rng(42).normal(size=20)
    density = check_density({"x": base, "y": base + 3.0})
    sources = {n: Source(n, "generated", summary=s, diagnostics=diagnose(_idata(seed), s))
               for n, s, seed in (("x", x, 40), ("y", y, 41))}
    comparison = Comparison(model="m", verdict=decide(list(sources.values()), tests, density),
                            sources=sources, tests=tests, density=density,
                            pooled=pd.DataFrame(columns=["parameter", "r_hat", "flagged"]),
                            alpha=0.05)
    assert "difference is in the draws" in comparison.to_text()
    report = comparison.to_dict()
    assert any("difference is in the draws" in r for r in report["reasons"])
    assert all(t["z_crit"] is not None for t in report["tests"] if t["reject"])
    html = comparison.write_html(tmp_path / "r.html").read_text()
    assert "difference is in the draws" in html and "|z| needed" in html
