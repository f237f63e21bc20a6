"""Lagged correlations between ML metrics and business metrics, with honest significance.

The question: "when a model gets slower, more error-prone, more expensive or worse, does a
business metric move, and how many days later?". Every series is a daily aggregate computed
in the warehouse (:func:`load_series`); this module only sees those aggregates.

Method
------
1. **Residuals, not levels** (:func:`residuals`). Two series that both grow are correlated
   and say nothing about each other. Each series is log-transformed when positive, its
   trend removed with a centred rolling median (21 days: it follows level shifts and slow
   trends but ignores short episodes of up to ten days, which are what we look for), and
   its day-of-week profile removed (median residual per weekday).
2. **Lags** -``max_lag`` .. +``max_lag`` days. Lag ``k`` correlates the ML metric on day
   ``t`` with the business metric on day ``t + k``: a positive lag means the ML metric
   leads.
3. **Pearson and Spearman** at each lag. Residuals still carry autocorrelation, which
   makes the usual ``n - 2`` degrees of freedom overconfident. The effective sample size
   of Pyper & Peterman (1998), ``1 / n_eff = 1/n + 2/n * sum_j (n-j)/n * rho_x(j) *
   rho_y(j)`` (j up to n/5), replaces ``n`` in the t-test and in the confidence interval
   (Fisher z for Pearson; Bonett & Wright's standard error for Spearman).
4. **Bounded influence.** Residuals are divided by a local robust scale (1.4826 x the
   rolling median absolute residual over ``SCALE_WINDOW`` days, so a noisier stretch
   weighs no more than a quiet one) and winsorised at ``CLIP_MADS``. Checked on demo
   data without planted effects: over circular shifts of one series against the other,
   the resulting z-scores have standard deviation 1.00 and normal (or lighter) tails.
   The p-value of each (pair, lag) is Pearson's (t-test on the effective sample size).
   Spearman's rank correlation is reported next to it (with its interval) and must agree
   in sign, but is not the test, because ranks dilute short episodes (a five-day slowdown
   is 15 of 365 ranks, however large it is).
5. **Benjamini-Hochberg** over every pair and lag tested: the expected share of false
   discoveries among reported correlations is at most ``alpha``. A pair is reported once,
   at its strongest significant lag, and only if the effect is at least ``min_abs_r``.
6. **More than one episode.** Two unrelated incidents that happen to fall within a week
   of each other correlate in the sample. A finding must survive removing the
   ``EPISODE_DAYS`` days around its most influential day (the largest product of the two
   standardised residuals): it stays the same sign with a nominal p-value below
   ``alpha`` (:func:`episode_robust`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from auterity import metrics, modelhub
from auterity.charts import columns
from auterity.errors import ConfigError
from auterity.warehouse.cache import fetch
from auterity.warehouse.schema import models as models_table

BUSINESS_METRICS = ("conversion_rate", "revenue", "active_customers")
"""Business metrics correlated with the ML metrics by default."""
ML_METRICS = ("p95_latency_ms", "error_rate", "cost_per_request", "quality_mean")
"""Per-model ML metrics (columns of :func:`auterity.modelhub.daily_trend`, plus cost per
request)."""
ML_LABELS = {name: columns.phrase(name) for name in ML_METRICS}
"""How each ML metric is named in a sentence ("p95 latency"; from the column table)."""
ML_UNITS = {name: columns.unit(name) or "number" for name in ML_METRICS}
"""The unit of each ML metric (from the column table, :mod:`auterity.charts.columns`)."""
TREND_WINDOW = 21
"""Days of the centred rolling median that estimates each series' trend."""
EPISODE_DAYS = 10
"""Days on each side of the most influential day dropped by :func:`episode_robust`."""
CLIP_MADS = 5.0
SCALE_WINDOW = 35
"""Days of the centred rolling window of the robust scale residuals are divided by."""
"""Residuals are winsorised at this many robust standard deviations (1.4826 x MAD)."""
Z95 = 1.959963984540054

TEST_COLUMNS = [
    "ml_series",
    "model_id",
    "ml_metric",
    "business_metric",
    "lag",
    "n",
    "n_eff",
    "pearson_r",
    "pearson_p",
    "pearson_ci_low",
    "pearson_ci_high",
    "spearman_r",
    "spearman_p",
    "spearman_ci_low",
    "spearman_ci_high",
    "p_value",
    "q_value",
    "significant",
]


# --------------------------------------------------------------------------- statistics


def residuals(
    series: pd.Series,
    *,
    window: int = TREND_WINDOW,
    weekly: bool = True,
    log: bool | None = None,
    clip: float | None = CLIP_MADS,
) -> pd.Series:
    """A daily series without its trend and weekday profile.

    Parameters
    ----------
    series : pandas.Series
        Values indexed by day (a complete daily index; missing days NaN).
    window : int
        Length in days of the centred rolling median taken as the trend.
    weekly : bool
        Also remove the median residual of each weekday.
    log : bool, optional
        Work on ``log(values)``; default: when every value is positive.
    clip : float, optional
        Standardise by a local robust scale and winsorise at +- ``clip`` (None: neither;
        the residuals stay in the series' (log) units).

    Returns
    -------
    pandas.Series
        Residuals on the same index (NaN where the value was missing).
    """
    values = pd.to_numeric(series, errors="coerce").astype(float)
    present = values.dropna()
    if log is None:
        log = bool(len(present)) and bool((present > 0).all())
    if log:
        values = np.log(values.where(values > 0))
    trend = values.rolling(window, center=True, min_periods=window // 2 + 1).median()
    out = values - trend
    if weekly and isinstance(out.index, pd.DatetimeIndex):
        by_weekday = out.groupby(out.index.day_of_week).transform("median")
        out = out - by_weekday
    if clip is not None:
        # Standardise by a local robust scale: noise that is larger in one stretch of both
        # series (e.g. while traffic is still small) must not carry their correlation.
        centre = out.median()
        spread = (out - centre).abs()
        scale = (
            1.4826
            * spread.rolling(SCALE_WINDOW, center=True, min_periods=SCALE_WINDOW // 2 + 1)
            .median()
            .bfill()
            .ffill()
        )
        overall = 1.4826 * spread.median()
        if overall > 0:
            scale = scale.where(scale > 0.05 * overall, overall)
            out = ((out - centre) / scale).clip(-clip, clip)
    return out


def _acf(values: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations at lags 1..max_lag (NaNs count as the mean)."""
    x = values - np.nanmean(values)
    x = np.where(np.isnan(x), 0.0, x)
    denom = float(np.dot(x, x))
    if denom == 0 or max_lag < 1:
        return np.zeros(max(max_lag, 0))
    return np.array([np.dot(x[:-j], x[j:]) / denom for j in range(1, max_lag + 1)])


def effective_n(
    x: np.ndarray,
    y: np.ndarray,
    *,
    acf_x: np.ndarray | None = None,
    acf_y: np.ndarray | None = None,
) -> float:
    """Effective sample size of a correlation between two autocorrelated series.

    Pyper & Peterman (1998): ``1/n_eff = 1/n + (2/n) * sum_{j=1}^{n/5} (n-j)/n *
    rho_x(j) rho_y(j)``, clipped to ``[3, n]`` (never more than the real sample).

    Parameters
    ----------
    x, y : numpy.ndarray
        The paired values (same length n).
    acf_x, acf_y : numpy.ndarray, optional
        Autocorrelations at lags 1, 2, ... to use instead of those of ``x`` and ``y``
        (e.g. of the whole series a lagged pair was cut from).
    """
    n = len(x)
    if n < 4:
        return float(n)
    lags = max(1, n // 5)
    rx = _acf(np.asarray(x, float), lags) if acf_x is None else acf_x[:lags]
    ry = _acf(np.asarray(y, float), lags) if acf_y is None else acf_y[:lags]
    lags = min(len(rx), len(ry))
    weights = (n - np.arange(1, lags + 1)) / n
    inverse = 1 / n + 2 / n * float(np.sum(weights * rx[:lags] * ry[:lags]))
    if inverse <= 0:
        return float(n)
    return float(min(n, max(3.0, 1 / inverse)))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r (0 when a series is constant)."""
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(xc, xc)) * float(np.dot(yc, yc)))
    return float(np.dot(xc, yc) / denom) if denom > 0 else 0.0


def correlation_test(
    r: float, n_eff: float, *, spearman: bool = False
) -> tuple[float, float, float]:
    """Two-sided p-value and 95 % confidence interval of a correlation.

    Parameters
    ----------
    r : float
        Pearson's or Spearman's correlation coefficient.
    n_eff : float
        (Effective) sample size.
    spearman : bool
        Use Bonett & Wright's standard error of Fisher's z for a rank correlation,
        ``sqrt((1 + r^2/2) / (n - 3))``, instead of ``1 / sqrt(n - 3)``.

    Returns
    -------
    tuple of float
        ``(p_value, ci_low, ci_high)``; the p-value is from the t distribution with
        ``n_eff - 2`` degrees of freedom.
    """
    from scipy import stats

    if n_eff <= 3:
        return 1.0, -1.0, 1.0
    r = min(max(r, -0.999999), 0.999999)
    df = n_eff - 2
    t = r * math.sqrt(df / (1 - r * r))
    p = float(2 * stats.t.sf(abs(t), df))
    se = math.sqrt((1 + r * r / 2) / (n_eff - 3)) if spearman else 1 / math.sqrt(n_eff - 3)
    z = math.atanh(r)
    return p, math.tanh(z - Z95 * se), math.tanh(z + Z95 * se)


def benjamini_hochberg(
    pvalues: Sequence[float] | np.ndarray, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg step-up procedure.

    Parameters
    ----------
    pvalues : sequence of float
        One p-value per hypothesis (NaN counts as 1).
    alpha : float
        False discovery rate to control.

    Returns
    -------
    tuple of numpy.ndarray
        ``(reject, q_values)``: which hypotheses are rejected, and the BH-adjusted
        p-values (reject exactly where ``q <= alpha``).
    """
    p = np.nan_to_num(np.asarray(pvalues, dtype=float), nan=1.0)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q <= alpha, q


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    from scipy import stats

    return stats.rankdata(values)


@dataclass
class _Prepared:
    """A residual series with its autocorrelations (and those of its ranks)."""

    values: np.ndarray
    acf: np.ndarray
    rank_acf: np.ndarray


def _prepare(series: pd.Series) -> _Prepared:
    """Values and autocorrelations of one residual series, computed once."""
    values = series.to_numpy(float)
    lags = max(1, len(values) // 5)
    present = ~np.isnan(values)
    ranks = np.full(len(values), np.nan)
    ranks[present] = _ranks(values[present])
    return _Prepared(values, _acf(values, lags), _acf(ranks, lags))


def _pair_tests(x: _Prepared, y: _Prepared, max_lag: int, min_overlap: int) -> list[dict[str, Any]]:
    """Pearson and Spearman of ``x[t]`` with ``y[t + lag]`` for every lag."""
    rows = []
    xv, yv = x.values, y.values
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            a, b = xv[: len(xv) - lag], yv[lag:]
        else:
            a, b = xv[-lag:], yv[: len(yv) + lag]
        keep = ~(np.isnan(a) | np.isnan(b))
        a, b = a[keep], b[keep]
        n = len(a)
        row: dict[str, Any] = {"lag": lag, "n": n}
        if n < min_overlap or a.std() == 0 or b.std() == 0:
            rows.append({**row, "n_eff": float("nan"), "pearson_p": 1.0, "spearman_p": 1.0})
            continue
        n_eff = effective_n(a, b, acf_x=x.acf, acf_y=y.acf)
        r = _pearson(a, b)
        ra, rb = _ranks(a), _ranks(b)
        rho = _pearson(ra, rb)
        pp, lo, hi = correlation_test(r, n_eff)
        rho_n = effective_n(a, b, acf_x=x.rank_acf, acf_y=y.rank_acf)
        sp, slo, shi = correlation_test(rho, rho_n, spearman=True)
        rows.append(
            {
                **row,
                "n_eff": n_eff,
                "pearson_r": r,
                "pearson_p": pp,
                "pearson_ci_low": lo,
                "pearson_ci_high": hi,
                "spearman_r": rho,
                "spearman_p": sp,
                "spearman_ci_low": slo,
                "spearman_ci_high": shi,
            }
        )
    return rows


def lagged_correlations(
    ml: pd.DataFrame,
    business: pd.DataFrame,
    *,
    max_lag: int = 7,
    alpha: float = 0.05,
    min_overlap: int = 28,
    detrend: bool = True,
) -> pd.DataFrame:
    """Every (ML series, business metric, lag) test with BH-controlled significance.

    Parameters
    ----------
    ml, business : pandas.DataFrame
        Daily series, one column each, on the same complete daily index. ML column names
        may be ``"<model_id>:<metric>"``.
    max_lag : int
        Lags ``-max_lag .. +max_lag`` (days; positive: the ML series leads).
    alpha : float
        False discovery rate across all tests.
    min_overlap : int
        Fewest paired days a test needs (fewer: p-value 1).
    detrend : bool
        Work on :func:`residuals` (default) rather than the raw values.

    Returns
    -------
    pandas.DataFrame
        One row per test, columns :data:`TEST_COLUMNS`; ``p_value`` is Pearson's (on
        effective sample size), ``q_value`` its Benjamini-Hochberg adjustment over all
        rows, ``significant`` whether ``q_value <= alpha``.
    """
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1 (got {alpha})")
    if max_lag < 0:
        raise ConfigError(f"max_lag must be >= 0 (got {max_lag})")
    if not ml.index.equals(business.index):
        raise ConfigError("ML and business series must share one daily index")
    prep = residuals if detrend else (lambda s: pd.to_numeric(s, errors="coerce").astype(float))
    ml_res = {c: _prepare(prep(ml[c])) for c in ml.columns}
    biz_res = {c: _prepare(prep(business[c])) for c in business.columns}
    rows = []
    for ml_name, x in ml_res.items():
        model_id, _, metric = str(ml_name).rpartition(":")
        for biz_name, y in biz_res.items():
            for row in _pair_tests(x, y, max_lag, min_overlap):
                rows.append(
                    {
                        "ml_series": ml_name,
                        "model_id": model_id or None,
                        "ml_metric": metric,
                        "business_metric": biz_name,
                        **row,
                    }
                )
    tests = pd.DataFrame(rows).reindex(columns=TEST_COLUMNS)
    if tests.empty:
        return tests
    tests["p_value"] = tests["pearson_p"]
    reject, q = benjamini_hochberg(tests["p_value"].to_numpy(), alpha)
    tests["q_value"] = q
    tests["significant"] = reject
    return tests


def _lagged(x: np.ndarray, y: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``x[t]`` and ``y[t + lag]`` over the days both exist (positions kept as NaN)."""
    if lag >= 0:
        return x[: len(x) - lag], y[lag:]
    return x[-lag:], y[: len(y) + lag]


def episode_robust(
    x: pd.Series, y: pd.Series, lag: int, *, alpha: float = 0.05, days: int = EPISODE_DAYS
) -> tuple[bool, float, float]:
    """Whether a correlation survives dropping its most influential episode.

    Parameters
    ----------
    x, y : pandas.Series
        The two residual series (same daily index).
    lag : int
        ``y`` is taken ``lag`` days after ``x``.
    alpha : float
        Nominal level the remaining correlation must reach.
    days : int
        Days dropped on each side of the most influential day.

    Returns
    -------
    tuple
        ``(robust, r_without, p_without)``.
    """
    a, b = _lagged(x.to_numpy(float), y.to_numpy(float), lag)
    keep = ~(np.isnan(a) | np.isnan(b))
    idx = np.flatnonzero(keep)
    a, b = a[keep], b[keep]
    if len(a) < 8 or a.std() == 0 or b.std() == 0:
        return False, float("nan"), 1.0
    r = _pearson(a, b)
    products = (a - a.mean()) / a.std() * (b - b.mean()) / b.std() * np.sign(r)
    centre = idx[int(np.argmax(products))]
    rest = np.abs(idx - centre) > days
    a2, b2 = a[rest], b[rest]
    if len(a2) < 8 or a2.std() == 0 or b2.std() == 0:
        return False, float("nan"), 1.0
    r2 = _pearson(a2, b2)
    p2, _, _ = correlation_test(r2, effective_n(a2, b2))
    return bool(np.sign(r2) == np.sign(r) and p2 < alpha), r2, p2


def findings(tests: pd.DataFrame, *, min_abs_r: float = 0.1) -> pd.DataFrame:
    """One row per (ML series, business metric) with a significant correlation.

    A pair qualifies when at least one of its lags is significant, Pearson and Spearman
    agree in sign there, and ``|pearson_r| >= min_abs_r``. Its row is the qualifying lag
    with the smallest p-value (then the largest ``|r|``); ``significant_lags`` lists all
    of them. Sorted by p-value.
    """
    if tests.empty:
        return tests.assign(significant_lags=[])
    ok = (
        tests["significant"]
        & (np.sign(tests["pearson_r"]) == np.sign(tests["spearman_r"]))
        & (tests["pearson_r"].abs() >= min_abs_r)
    )
    hits = tests[ok].copy()
    if hits.empty:
        return hits.assign(significant_lags=[]).reset_index(drop=True)
    hits["_abs_r"] = hits["pearson_r"].abs()
    lags = hits.groupby(["ml_series", "business_metric"])["lag"].agg(lambda s: sorted(s))
    best = (
        hits.sort_values(["p_value", "_abs_r"], ascending=[True, False])
        .groupby(["ml_series", "business_metric"], sort=False)
        .head(1)
        .drop(columns="_abs_r")
    )
    best["significant_lags"] = [
        lags[(row.ml_series, row.business_metric)] for row in best.itertuples()
    ]
    return best.sort_values(["p_value", "q_value"]).reset_index(drop=True)


# --------------------------------------------------------------------------- data


def holiday_days(index: pd.DatetimeIndex, country: str | None) -> pd.DatetimeIndex:
    """The days of ``index`` that are public holidays of ``country`` (ISO code; None: none).

    Holidays move business metrics for a known reason; left in, a handful of holiday dips
    line up with anything else that dips on holidays and look like a relationship.
    """
    if not country or len(index) == 0:
        return pd.DatetimeIndex([])
    import holidays

    try:
        calendar = holidays.country_holidays(country, years=sorted(set(index.year)))
    except NotImplementedError:
        raise ConfigError(
            f"unknown holiday country {country!r} (use an ISO code such as US, DE, FR)"
        ) from None
    return index[[day.date() in calendar for day in index]]


@dataclass
class Series:
    """The daily aggregates correlated: ML series and business metrics on one index."""

    ml: pd.DataFrame
    business: pd.DataFrame
    requests: pd.DataFrame = field(default_factory=pd.DataFrame)


def load_series(
    start: date,
    end: date,
    *,
    business_metrics: Sequence[str] = BUSINESS_METRICS,
    ml_metrics: Sequence[str] = ML_METRICS,
    min_daily_requests: float = 20,
    holidays: str | None = "US",
    tz: str | None = None,
    url: str | None = None,
) -> Series:
    """Daily ML and business series from the warehouse (aggregated in SQL).

    ML series are per model from :func:`auterity.modelhub.daily_trend` (one statement,
    effective cost); ``cost_per_request`` is cost / requests and is left out for
    flat-priced (self-hosted) models, whose fee per request only mirrors traffic. Models
    with a median below ``min_daily_requests`` requests a day are left out (their daily
    percentiles are noise), and so are a model's days with fewer requests than that.
    Business metrics come from one :func:`auterity.metrics.query`. Public holidays of
    the country ``holidays`` (None: none) are left out of every series
    (:func:`holiday_days`).

    Returns
    -------
    Series
        ``ml`` (columns ``"<model_id>:<metric>"``), ``business`` (one column per metric)
        and ``requests`` (per model), indexed by day.
    """

    unknown = [m for m in ml_metrics if m not in ML_METRICS]
    if unknown:
        raise ConfigError(f"unknown ML metric {unknown[0]!r} (known: {', '.join(ML_METRICS)})")
    biz = metrics.query(list(business_metrics), start=start, end=end, grain="day", tz=tz, url=url)
    biz = biz.set_index(pd.DatetimeIndex(pd.to_datetime(biz["period"]), name="day"))
    business = biz[list(business_metrics)].astype(float)

    daily = modelhub.daily_trend(start, end, tz=tz, url=url)
    daily["cost_per_request"] = daily["cost"] / daily["requests"].where(daily["requests"] > 0)
    kinds = fetch(sa.select(models_table.c.model_id, models_table.c.pricing_kind), url=url)
    flat = set(kinds.loc[kinds["pricing_kind"] == "flat", "model_id"])
    columns: dict[str, pd.Series] = {}
    requests: dict[str, pd.Series] = {}
    for model_id, part in daily.groupby("model_id", sort=True):
        part = part.set_index(pd.DatetimeIndex(part["day"], name="day")).reindex(business.index)
        requests[str(model_id)] = part["requests"].fillna(0)
        if part["requests"].fillna(0).median() < min_daily_requests:
            continue
        thin = part["requests"].fillna(0) < min_daily_requests
        for metric in ml_metrics:
            if metric == "cost_per_request" and model_id in flat:
                continue
            columns[f"{model_id}:{metric}"] = part[metric].astype(float).mask(thin)
    ml = pd.DataFrame(columns, index=business.index)
    off = holiday_days(pd.DatetimeIndex(business.index), holidays)
    business.loc[off] = np.nan
    ml.loc[off] = np.nan
    return Series(ml=ml, business=business, requests=pd.DataFrame(requests, index=business.index))


@dataclass
class CorrelationResult:
    """All tests, the findings, and the series they came from.

    ``single_episode`` holds the significant pairs dropped because one episode carried
    them (see :func:`episode_robust`).
    """

    tests: pd.DataFrame
    findings: pd.DataFrame
    single_episode: pd.DataFrame
    series: Series
    alpha: float
    max_lag: int

    @property
    def hypotheses(self) -> int:
        """Number of (pair, lag) hypotheses tested (the BH family)."""
        return len(self.tests)


def correlate(
    start: date,
    end: date,
    *,
    max_lag: int = 7,
    alpha: float = 0.05,
    min_abs_r: float = 0.1,
    business_metrics: Sequence[str] = BUSINESS_METRICS,
    ml_metrics: Sequence[str] = ML_METRICS,
    holidays: str | None = "US",
    tz: str | None = None,
    url: str | None = None,
    series: Series | None = None,
) -> CorrelationResult:
    """Significant lagged correlations between per-model ML metrics and business metrics.

    Parameters
    ----------
    start, end : date
        Local dates, ``start`` inclusive, ``end`` exclusive; needs at least 8 weeks.
    max_lag : int
        Lags tested, in days, on each side.
    alpha : float
        False discovery rate over every pair and lag.
    min_abs_r : float
        Smallest |Pearson r| reported (tiny significant effects are not insights).
    business_metrics, ml_metrics : sequence of str
        What to correlate.
    holidays : str, optional
        Country whose public holidays are left out (ISO code; None: keep every day).
    tz, url : str, optional
        Business time zone and warehouse URL.
    series : Series, optional
        Already loaded series (skips :func:`load_series`).

    Returns
    -------
    CorrelationResult
    """
    if (end - start).days < 56:
        raise ConfigError(
            f"correlations need at least 8 weeks of data ({start} to {end} is "
            f"{(end - start).days} days)"
        )
    series = series or load_series(
        start,
        end,
        business_metrics=business_metrics,
        ml_metrics=ml_metrics,
        holidays=holidays,
        tz=tz,
        url=url,
    )
    tests = lagged_correlations(series.ml, series.business, max_lag=max_lag, alpha=alpha)
    found = findings(tests, min_abs_r=min_abs_r)
    if not found.empty:
        checks = [
            episode_robust(
                residuals(series.ml[row.ml_series]),
                residuals(series.business[row.business_metric]),
                int(row.lag),
                alpha=alpha,
            )
            for row in found.itertuples()
        ]
        found["r_without_top_episode"] = [c[1] for c in checks]
        found["p_without_top_episode"] = [c[2] for c in checks]
        dropped = found[[not c[0] for c in checks]]
        found = found[[c[0] for c in checks]].reset_index(drop=True)
    else:
        dropped = found
    return CorrelationResult(
        tests=tests,
        findings=found,
        single_episode=dropped.reset_index(drop=True),
        series=series,
        alpha=alpha,
        max_lag=max_lag,
    )


def describe_lag(lag: int) -> str:
    """``"the same day"``, ``"1 day later"``, ``"3 days earlier"``."""
    if lag == 0:
        return "the same day"
    days = "day" if abs(lag) == 1 else "days"
    return f"{lag} {days} later" if lag > 0 else f"{-lag} {days} earlier"


__all__ = [
    "BUSINESS_METRICS",
    "ML_METRICS",
    "CorrelationResult",
    "Series",
    "benjamini_hochberg",
    "correlate",
    "correlation_test",
    "describe_lag",
    "effective_n",
    "episode_robust",
    "findings",
    "holiday_days",
    "lagged_correlations",
    "load_series",
    "residuals",
]
