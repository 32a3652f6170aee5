"""The prior predictive agreement statistics (crossppl.compare.prior) on synthetic draws."""

from __future__ import annotations

import numpy as np
import pytest
from crossppl.compare.prior import LIMIT, MIN_USABLE, prior_agreement, usable_rows


def vague_model(rng: np.random.Generator, n: int, sd_of_tau=None, engine: str = "numpy"):
    """Forward draws of a small vague-prior model (tau ~ Gamma(0.001, 0.001), b ~ N(0, tau=tau),
    y ~ Poisson(exp(b)) x 3), with the engine's way of failing where the scale is infinite."""
    tau = rng.gamma(0.001, 1 / 0.001, size=n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sd = 1 / np.sqrt(tau) if sd_of_tau is None else sd_of_tau(tau)
        b = rng.normal(size=(n, 3)) * sd[:, None]
        rate = np.exp(np.clip(b, -700, 700))
        y = np.where(rate < 1e15, rng.poisson(np.minimum(rate, 1e15)), rate).astype(float)
    draws = {"tau": tau, "sigma": sd, "b": b, "y": y}
    if engine == "stan":  # Stan writes a draw it cannot make (infinite scale, rate >= 2^30) as NaN
        bad = ~np.isfinite(sd) | np.any(rate >= LIMIT, axis=1)
        for arr in draws.values():
            arr[bad] = np.nan
    return draws


def test_the_same_model_agrees_across_engines_that_fail_differently():
    rng = np.random.default_rng(1)
    result = prior_agreement({
        "numpy": vague_model(rng, 4000),
        "stan": vague_model(rng, 4000, engine="stan"),
    }, counts=["y"])
    assert result.ok, result.problems
    # about half the tau draws underflow to 0; of the rest, most give Poisson rates beyond 2^30
    assert 0.05 < result.usable["numpy"] < 0.5
    assert abs(result.usable["numpy"] - result.usable["stan"]) < 0.05
    assert set(result.tests["test"]) == {"ks", "usable share"}
    assert len(result.tests) == 1 + 1 + 1 + 3 + 3  # share, tau, sigma, b[0..2], y[0..2]


def test_a_precision_given_as_an_sd_is_detected():
    rng = np.random.default_rng(2)
    result = prior_agreement({
        "right": vague_model(rng, 2000),
        "wrong": vague_model(rng, 2000, sd_of_tau=lambda tau: tau),
    }, counts=["y"])
    assert not result.ok
    flagged = set(result.tests.loc[result.tests["reject"], "variable"])
    assert {"sigma", "b"} <= flagged
    assert any("sigma" in p and "differs between right and wrong" in p for p in result.problems)


def test_a_small_shift_of_one_element_is_detected():
    rng = np.random.default_rng(3)
    a = {"x": rng.normal(size=(2000, 4))}
    b = {"x": rng.normal(size=(2000, 4)) + np.array([0, 0, 0.25, 0])}
    result = prior_agreement({"a": a, "b": b})
    assert list(result.tests.loc[result.tests["reject"], "element"]) == ["[2]"]


@pytest.mark.slow
def test_false_alarm_rate_is_at_most_alpha():
    rng = np.random.default_rng(4)
    alarms = sum(
        not prior_agreement({"a": {"x": rng.standard_t(3, size=(500, 20))},
                             "b": {"x": rng.standard_t(3, size=(500, 20))},
                             "c": {"x": rng.standard_t(3, size=(500, 20))}},
                            alpha=0.05).ok
        for _ in range(100)
    )
    assert alarms <= 11  # P(Binomial(100, 0.05) > 11) < 0.5%; Holm + KS is conservative


def test_discrete_draws_with_ties_do_not_raise_false_alarms():
    rng = np.random.default_rng(5)
    result = prior_agreement({"a": {"k": rng.binomial(3, 0.4, size=(3000, 5))},
                              "b": {"k": rng.binomial(3, 0.4, size=(3000, 5))}})
    assert result.ok


def test_usable_rows_leave_out_non_finite_values_and_huge_counts():
    draws = {"a": np.array([1.0, np.inf, 2.0, 3.0, 1e300]),
             "b": np.array([[0, 1], [0, 1], [np.nan, 1], [0, LIMIT], [0, 1]])}
    assert usable_rows(draws).tolist() == [True, False, False, True, True]
    assert usable_rows(draws, counts=["b"]).tolist() == [True, False, False, False, True]


def test_too_few_usable_draws_is_not_a_verdict():
    x = np.full((MIN_USABLE + 10, 2), np.nan)
    x[:MIN_USABLE - 1] = 1.0
    result = prior_agreement({"a": {"x": x}, "b": {"x": np.ones((500, 2))}})
    assert not result.ok and result.tests.empty
    assert result.problems == (f"a: only {MIN_USABLE - 1} usable prior draws (need {MIN_USABLE})",)


def test_variables_and_shapes_must_match():
    one = np.zeros((200, 2))
    result = prior_agreement({"a": {"x": one, "y": one}, "b": {"x": one}})
    assert not result.ok and "differ in their variables: ['y']" in result.problems[0]
    result = prior_agreement({"a": {"x": one}, "b": {"x": np.zeros((200, 3))}})
    assert result.problems == ("x: shape (3,) in b but (2,) in a",)


def test_one_source_is_an_error():
    with pytest.raises(ValueError, match="at least two sources"):
        prior_agreement({"a": {"x": np.zeros((200, 1))}})
