"""Correlation engine on small synthetic series with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from auterity import _json, correlate
from auterity.errors import ConfigError

DAYS = pd.date_range("2026-01-05", periods=240, freq="D", name="day")


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """An AR(1) series with unit innovations."""
    out = np.zeros(n)
    noise = rng.normal(size=n)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + noise[t]
    return out


def test_lagged_relation_is_found_at_the_right_lag_with_the_right_sign() -> None:
    rng = np.random.default_rng(1)
    x = 100 + 5 * _ar1(rng, len(DAYS), 0.3)
    y = np.full(len(DAYS), 50.0)
    # y responds to x three days later, negatively, plus noise of the same size.
    y[3:] -= 0.6 * (x[:-3] - 100)
    y += 3 * rng.normal(size=len(DAYS))
    ml = pd.DataFrame({"m1:p95_latency_ms": x}, index=DAYS)
    biz = pd.DataFrame({"conversion_rate": y}, index=DAYS)

    tests = correlate.lagged_correlations(ml, biz, max_lag=7)
    assert len(tests) == 15 and tests["lag"].tolist() == list(range(-7, 8))
    found = correlate.findings(tests)
    assert len(found) == 1
    row = found.iloc[0]
    assert row["lag"] == 3
    assert row["pearson_r"] < -0.5 and row["spearman_r"] < -0.4
    assert row["pearson_ci_low"] < row["pearson_r"] < row["pearson_ci_high"] < 0
    assert row["model_id"] == "m1" and row["ml_metric"] == "p95_latency_ms"
    assert row["q_value"] < 1e-6
    # Every other lag is far weaker.
    others = tests[tests["lag"] != 3]["pearson_r"].abs()
    assert others.max() < abs(row["pearson_r"]) / 2


def test_independent_trending_series_are_not_reported() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(len(DAYS))
    weekly = np.tile([1.0, 1.02, 1.03, 1.0, 0.95, 0.7, 0.65], len(DAYS) // 7 + 1)[: len(DAYS)]
    # Both grow and share the weekday rhythm, but their day-to-day noise is independent.
    revenue = (1000 + 8 * t) * weekly * np.exp(rng.normal(0, 0.05, len(DAYS)))
    cost = (20 + 0.2 * t) * weekly * np.exp(rng.normal(0, 0.05, len(DAYS)))
    walk_a = np.cumsum(rng.normal(size=len(DAYS))) + 100
    walk_b = np.cumsum(rng.normal(size=len(DAYS))) + 100
    ml = pd.DataFrame({"m:cost_per_request": cost, "m:p95_latency_ms": walk_a}, index=DAYS)
    biz = pd.DataFrame({"revenue": revenue, "active_customers": walk_b}, index=DAYS)
    assert np.corrcoef(revenue, cost)[0, 1] > 0.9  # the trap: levels correlate strongly

    tests = correlate.lagged_correlations(ml, biz)
    assert correlate.findings(tests).empty
    assert not tests["significant"].any()
    # Without detrending the shared trend would have been "found".
    raw = correlate.lagged_correlations(ml, biz, detrend=False)
    assert raw["significant"].any()


def test_benjamini_hochberg_matches_a_hand_calculation() -> None:
    # m = 4, alpha 0.05: thresholds 0.0125, 0.025, 0.0375, 0.05 for ranks 1..4.
    reject, q = correlate.benjamini_hochberg([0.04, 0.001, 0.5, 0.02], 0.05)
    assert reject.tolist() == [False, True, False, True]  # 0.04 > 0.0375 at rank 3
    assert q == pytest.approx([0.04 * 4 / 3, 0.004, 0.5, 0.04])
    # Step-up: a larger p-value that passes its threshold carries the smaller ones.
    reject, q = correlate.benjamini_hochberg([0.01, 0.04, 0.03, 0.005], 0.05)
    assert reject.all()
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])
    reject, q = correlate.benjamini_hochberg([], 0.05)
    assert len(reject) == 0 and len(q) == 0
    reject, q = correlate.benjamini_hochberg([np.nan, 0.001], 0.05)
    assert reject.tolist() == [False, True] and q[0] == 1.0


def test_benjamini_hochberg_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(0, 0.002, 20), rng.uniform(0, 1, 480)])
    for alpha in (0.01, 0.05, 0.1):
        reject, q = correlate.benjamini_hochberg(p, alpha)
        expected_reject, expected_q, _, _ = multipletests(p, alpha=alpha, method="fdr_bh")
        assert reject.tolist() == expected_reject.tolist()
        np.testing.assert_allclose(q, expected_q, rtol=1e-12)


def test_correlation_test_matches_scipy_and_fisher_z() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=60)
    b = 0.4 * a + rng.normal(size=60)
    r, p_scipy = stats.pearsonr(a, b)
    p, lo, hi = correlate.correlation_test(float(r), 60)
    assert p == pytest.approx(p_scipy, rel=1e-9)
    z, se = math.atanh(r), 1 / math.sqrt(57)
    assert (lo, hi) == pytest.approx((math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)), abs=1e-3)
    # Spearman intervals are wider (Bonett & Wright).
    _, slo, shi = correlate.correlation_test(float(r), 60, spearman=True)
    assert slo < lo and shi > hi
    assert correlate.correlation_test(0.5, 3) == (1.0, -1.0, 1.0)


def test_effective_sample_size_shrinks_with_shared_autocorrelation() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    white = correlate.effective_n(rng.normal(size=n), rng.normal(size=n))
    assert 0.85 * n < white <= n
    ar = correlate.effective_n(_ar1(rng, n, 0.8), _ar1(rng, n, 0.8))
    # Theory for two AR(1) with phi 0.8: n (1 - phi^2) / (1 + phi^2) = 0.22 n.
    assert 0.15 * n < ar < 0.32 * n
    assert correlate.effective_n(np.ones(3), np.ones(3)) == 3


def test_significance_is_calibrated_for_autocorrelated_noise() -> None:
    """Independent AR(1) pairs: our test rejects about 5 % at 0.05; the naive one far more."""
    rng = np.random.default_rng(6)
    ours = naive = 0
    trials = 300
    for _ in range(trials):
        a, b = _ar1(rng, 150, 0.7), _ar1(rng, 150, 0.7)
        r = float(np.corrcoef(a, b)[0, 1])
        ours += correlate.correlation_test(r, correlate.effective_n(a, b))[0] < 0.05
        naive += correlate.correlation_test(r, 150)[0] < 0.05
    assert ours / trials < 0.09
    assert naive / trials > 0.15


def test_residuals_remove_trend_weekday_and_keep_short_episodes() -> None:
    t = np.arange(len(DAYS))
    weekly = np.tile([1.0, 1.1, 1.1, 1.0, 0.9, 0.6, 0.5], len(DAYS) // 7 + 1)[: len(DAYS)]
    values = 100 * np.exp(0.003 * t) * weekly
    values[100:105] *= 2.5  # a five-day episode
    values[150:] *= 1.25  # a level shift
    res = correlate.residuals(pd.Series(values, index=DAYS), clip=None)
    assert res.iloc[100:105].min() > 0.8  # log(2.5) = 0.92 survives
    quiet = res.drop(res.index[95:110])
    # Trend, weekdays and the level shift are gone (a strong weekday rhythm blurs the
    # rolling median for a few days around the shift; the edges see half a window).
    assert quiet.abs().median() < 0.01
    around_shift = (quiet.index >= DAYS[140]) & (quiet.index < DAYS[160])
    assert quiet[~around_shift].abs().max() < 0.06
    # By default: standardised by a local robust scale and winsorised at CLIP_MADS.
    noisy = pd.Series(values * np.exp(np.random.default_rng(0).normal(0, 0.02, len(t))), DAYS)
    standard = correlate.residuals(noisy)
    assert (standard.iloc[100:105] == correlate.CLIP_MADS).all()
    assert standard.drop(standard.index[100:105]).abs().median() == pytest.approx(0.67, abs=0.1)
    # Zeros: no log; missing days stay missing.
    with_zero = pd.Series(np.ones(len(DAYS)), index=DAYS)
    with_zero.iloc[50] = 0.0
    with_zero.iloc[10] = np.nan
    out = correlate.residuals(with_zero)
    assert math.isnan(out.iloc[10]) and out.iloc[50] == -1.0


def test_a_single_coincident_episode_is_not_a_finding() -> None:
    rng = np.random.default_rng(7)
    n = len(DAYS)
    x, y = rng.normal(0, 1, n), rng.normal(0, 1, n)
    one_x, one_y = x.copy(), y.copy()
    one_x[120:124] += 6
    one_y[121:125] -= 6
    xs, ys = pd.Series(one_x, index=DAYS), pd.Series(one_y, index=DAYS)
    robust, r_without, p_without = correlate.episode_robust(xs, ys, 1)
    assert not robust and p_without > 0.05
    three_x, three_y = x.copy(), y.copy()
    for s in (40, 120, 200):
        three_x[s : s + 4] += 6
        three_y[s + 1 : s + 5] -= 6
    robust, r_without, _ = correlate.episode_robust(
        pd.Series(three_x, index=DAYS), pd.Series(three_y, index=DAYS), 1
    )
    assert robust and r_without < -0.3
    short = pd.Series(np.arange(6.0))
    assert correlate.episode_robust(short, short, 0) == (
        False,
        pytest.approx(np.nan, nan_ok=True),
        1.0,
    )


def test_findings_need_agreeing_signs_and_a_minimum_effect() -> None:
    tests = pd.DataFrame(
        {
            "ml_series": ["a:x", "a:x", "b:x", "c:x"],
            "business_metric": ["revenue"] * 4,
            "lag": [0, 1, 0, 0],
            "pearson_r": [0.3, 0.4, 0.3, 0.05],
            "spearman_r": [0.2, 0.3, -0.1, 0.05],
            "p_value": [0.001, 0.0001, 0.001, 0.001],
            "q_value": [0.01, 0.005, 0.01, 0.01],
            "significant": [True, True, True, True],
        }
    )
    found = correlate.findings(tests, min_abs_r=0.1)
    assert found["ml_series"].tolist() == ["a:x"]  # b disagrees in sign, c is too small
    assert found.iloc[0]["lag"] == 1 and found.iloc[0]["significant_lags"] == [0, 1]
    assert correlate.findings(tests.assign(significant=False)).empty
    assert correlate.findings(tests.iloc[0:0]).empty


def test_bad_arguments_are_one_line_errors() -> None:
    ml = pd.DataFrame({"m:error_rate": np.ones(60)}, index=DAYS[:60])
    biz = pd.DataFrame({"revenue": np.ones(60)}, index=DAYS[:60])
    with pytest.raises(ConfigError, match="alpha"):
        correlate.lagged_correlations(ml, biz, alpha=1.5)
    with pytest.raises(ConfigError, match="max_lag"):
        correlate.lagged_correlations(ml, biz, max_lag=-1)
    with pytest.raises(ConfigError, match="share one daily index"):
        correlate.lagged_correlations(ml, biz.iloc[1:])
    # Constant series: nothing to test, p-value 1.
    tests = correlate.lagged_correlations(ml, biz)
    assert (tests["p_value"] == 1).all() and not tests["significant"].any()
    with pytest.raises(ConfigError, match="8 weeks"):
        correlate.correlate(DAYS[0].date(), DAYS[30].date())


def test_small_helpers() -> None:
    assert correlate.describe_lag(0) == "the same day"
    assert correlate.describe_lag(1) == "1 day later"
    assert correlate.describe_lag(-3) == "3 days earlier"
    frame = pd.DataFrame(
        {
            "a": [np.float64(1.5), np.nan],
            "b": [np.int64(2), np.int64(3)],
            "c": [pd.Timestamp("2026-01-02"), pd.Timestamp("2026-01-02 10:00")],
            "d": [np.bool_(True), None],
            "e": [[np.int64(1)], {"k": np.float64(np.inf)}],
        }
    )
    # One serialiser (auterity._json) for the CLI, exports and cards: a column with any
    # time of day is written to the second throughout (it was per value here).
    assert _json.records(frame) == [
        {"a": 1.5, "b": 2, "c": "2026-01-02T00:00:00", "d": True, "e": [1]},
        {"a": None, "b": 3, "c": "2026-01-02T10:00:00", "d": None, "e": {"k": None}},
    ]


def test_holiday_days_are_the_countrys_public_holidays() -> None:
    days = pd.date_range("2026-07-01", "2026-09-10", freq="D")
    us = correlate.holiday_days(days, "US")
    assert [d.date().isoformat() for d in us] == ["2026-07-03", "2026-07-04", "2026-09-07"]
    assert len(correlate.holiday_days(days, None)) == 0
    with pytest.raises(ConfigError, match="unknown holiday country"):
        correlate.holiday_days(days, "XX")
