"""Anomaly detection on metric time series, causal by default, with alert windows.

Three detectors, each giving every point an expected value and a score (how many robust
standard deviations the point is from what was expected):

* ``stl_mad`` (default): seasonal and robust. Causal: every ``refit`` points a robust STL
  decomposition is fitted on the ``history`` points before them; each following point is
  expected at the last trend level plus the seasonal value one season earlier, and its
  residual is scored against the median and MAD (median absolute deviation, x 1.4826) of
  the out-of-sample residuals of the ``history`` points before it. With ``causal=False``
  one STL is fitted on the whole series (it sees the future).
* ``rolling_z``: streaming-friendly robust z-score: the median of the last ``history``
  points is expected, the scale is the rolling median of past absolute deviations
  (x 1.4826). No seasonality. With ``causal=False`` the window is centred.
* ``prophet``: Prophet fitted on the whole series; the score is the distance from Prophet's
  fit in units of its residual scale (from the 80 % interval). It is **not causal**: the
  result says ``causal=False`` whatever was asked.

With ``log=True`` every detector works on the logarithm of a positive series: for series
whose noise is multiplicative (sums of skewed amounts such as revenue, where a few large
orders make the linear scale's right tail long and a fall to a third as rare as a tripling),
scores are then relative deviations.

A point is flagged when its score reaches ``threshold``; flagged points at most
``merge_gap`` rows apart form one :class:`AlertWindow`, which starts at the first flagged
timestamp (when a live alert would have fired). Detectors work on rows: a series with gaps
is taken as it is (see ``report["gaps"]`` of :func:`auterity.timeseries.read_csv_series`).

:func:`nab_score` scores detections the way the Numenta Anomaly Benchmark does (windows,
probationary period, scaled sigmoid, cost profile), for ``benchmarks/bench_anomaly.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from auterity import forecast, timeseries
from auterity.errors import AuterityError

log = logging.getLogger("auterity.anomaly")

METHODS = ("stl_mad", "rolling_z", "prophet")
DEFAULT_THRESHOLD = 5.0
"""Default score (robust standard deviations) at which a point is flagged."""
MAD_TO_SIGMA = 1.4826
_MIN_POINTS = 8


@dataclass(frozen=True)
class AlertWindow:
    """Consecutive flagged points merged into one alert.

    ``start`` is the first flagged timestamp, ``end`` the last; ``score`` the highest
    score; ``direction`` ``up`` or ``down`` (of the peak); ``severity`` ``low``, ``medium``
    or ``high``; ``peak_ds``, ``peak_value`` and ``expected_value`` describe the peak point.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    score: float
    direction: str
    severity: str
    peak_ds: pd.Timestamp
    peak_value: float
    expected_value: float
    points: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO text."""
        out = asdict(self)
        for key in ("start", "end", "peak_ds"):
            out[key] = _iso(out[key])
        for key in ("score", "peak_value", "expected_value"):
            out[key] = None if out[key] is None or math.isnan(out[key]) else float(out[key])
        return out


@dataclass(frozen=True)
class AnomalyResult:
    """What a detector found.

    ``points``: one row per input point with ``ds, y, expected, score`` (NaN while the
    detector is warming up), ``direction`` (``up``/``down``), ``severity`` (empty unless
    flagged) and ``is_anomaly``. ``windows``: the alert windows. ``causal``: whether every
    score used only earlier points. ``method``, ``threshold`` and ``options`` as used.
    """

    points: pd.DataFrame
    windows: list[AlertWindow]
    causal: bool
    method: str
    threshold: float
    options: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: method, causal, threshold, options and the windows."""
        return {
            "method": self.method,
            "causal": self.causal,
            "threshold": self.threshold,
            "options": self.options,
            "anomalies": [w.to_dict() for w in self.windows],
        }


def _iso(value: Any) -> str:
    """A timestamp as ISO text (a plain date when it is midnight)."""
    ts = pd.Timestamp(value)
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def season_length(ds: pd.Series) -> int:
    """Points per season from the typical step: a day for sub-daily data, a week for
    daily, a year for weekly (52) and monthly (12) data; 0 when none applies."""
    times = pd.DatetimeIndex(ds).as_unit("ns")
    if len(times) < 3:
        return 0
    step = pd.Timedelta(int(np.median(np.diff(times.asi8))))
    if step <= pd.Timedelta(0):
        return 0
    if step < pd.Timedelta(days=1):
        return round(pd.Timedelta(days=1) / step)
    if step == pd.Timedelta(days=1):
        return 7
    if step == pd.Timedelta(days=7):
        return 52
    if pd.Timedelta(days=28) <= step <= pd.Timedelta(days=31):
        return 12
    return 0


def _robust_scale(residuals: np.ndarray, level: float, relative_floor: float) -> tuple:
    """(median, scale) of residuals; the scale never drops below a share of the level
    (on a log scale, pass level 1: the floor is then a relative change)."""
    med = float(np.median(residuals))
    mad = float(np.median(np.abs(residuals - med))) * MAD_TO_SIGMA
    floor = max(relative_floor * abs(level), 1e-9)
    return med, max(mad, floor)


def _stl(y: np.ndarray, period: int) -> Any:
    """A robust STL fit, made affordable for long seasons (a day of 5-minute data).

    The trend and low-pass smoothers are evaluated every ``period // 24`` points and
    interpolated (statsmodels' ``*_jump``), and five robustness iterations are run
    instead of fifteen: residuals change by under 1 % and a fit is ~10x faster. The
    seasonal smoother is locally constant (``seasonal_deg=0``): with a few seasons of
    history a locally linear one follows an outlier at the end of its cycle-subseries, so
    the outlier gets full weight and echoes one season later.
    """
    from statsmodels.tsa.seasonal import STL

    jump = max(1, period // 24)
    stl = STL(y, period=period, robust=True, seasonal_deg=0, trend_jump=jump, low_pass_jump=jump)
    return stl.fit(outer_iter=5)


def _stl_causal(
    y: np.ndarray,
    period: int,
    history: int,
    refit: int,
    relative_floor: float,
    floor_level: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected values and signed scores, each from the points before it (``floor_level``:
    the level the scale's floor is relative to; default the series' recent median)."""
    n = len(y)
    expected = np.full(n, np.nan)
    seasonal = period >= 2
    if seasonal:
        refit = max(1, min(refit, period))
    for t0 in range(_MIN_POINTS, n, refit):
        lo = max(0, t0 - history)
        past = y[lo:t0]
        block = range(t0, min(t0 + refit, n))
        if seasonal and len(past) >= 2 * period + 1:
            fit = _stl(past, period)
            level = fit.trend[-1]
            seasons = len(past) // period
            for t in block:
                # The median of the same phase over the last (up to) three seasons: one
                # season's outlier sits at the end of its cycle-subseries, where STL's
                # smoother follows it, and would otherwise echo one season later.
                lags = t - lo - period * np.arange(1, min(3, seasons) + 1)
                expected[t] = level + np.median(fit.seasonal[lags])
        else:
            expected[list(block)] = np.median(past[-max(period, _MIN_POINTS) :])
    return expected, _causal_scores(y, expected, history, refit, relative_floor, floor_level)


def _causal_scores(
    y: np.ndarray,
    expected: np.ndarray,
    history: int,
    refit: int,
    relative_floor: float,
    floor_level: float | None = None,
) -> np.ndarray:
    """Signed robust z-scores of residuals against the residuals before each block."""
    n = len(y)
    resid = y - expected
    scores = np.full(n, np.nan)
    for t0 in range(_MIN_POINTS, n, refit):
        past = resid[max(0, t0 - history) : t0]
        past = past[~np.isnan(past)]
        if len(past) < _MIN_POINTS:
            continue
        level = (
            floor_level
            if floor_level is not None
            else float(np.median(y[max(0, t0 - history) : t0]))
        )
        med, scale = _robust_scale(past, level, relative_floor)
        block = slice(t0, min(t0 + refit, n))
        scores[block] = (resid[block] - med) / scale
    return scores


def _stl_whole(
    y: np.ndarray, period: int, relative_floor: float, floor_level: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Non-causal: one robust STL on the whole series."""
    if period >= 2 and len(y) >= 2 * period + 1:
        fit = _stl(y, period)
        expected = np.asarray(fit.trend + fit.seasonal)
    else:
        expected = pd.Series(y).rolling(_MIN_POINTS, center=True, min_periods=1).median()
        expected = expected.to_numpy()
    resid = y - expected
    level = float(np.median(y)) if floor_level is None else floor_level
    med, scale = _robust_scale(resid, level, relative_floor)
    return expected, (resid - med) / scale


def _rolling(
    y: np.ndarray,
    history: int,
    causal: bool,
    relative_floor: float,
    floor_level: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rolling median and rolling median absolute deviation (past-only when causal)."""
    series = pd.Series(y)
    source = series.shift(1) if causal else series
    window = history if causal else 2 * (history // 2) + 1
    median = source.rolling(window, min_periods=_MIN_POINTS, center=not causal).median()
    deviation = (source - median).abs()
    if causal:
        # Deviations of past points from the median of their own time: updatable live.
        mad = deviation.rolling(window, min_periods=_MIN_POINTS).median()
    else:
        mad = deviation.rolling(window, min_periods=_MIN_POINTS, center=True).median()
    level = median.abs().to_numpy() if floor_level is None else floor_level
    floor = np.maximum(relative_floor * level, 1e-9)
    scale = np.maximum(MAD_TO_SIGMA * mad.to_numpy(), floor)
    expected = median.to_numpy()
    return expected, (y - expected) / scale


def _prophet(
    frame: pd.DataFrame, relative_floor: float, floor_level: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Prophet's in-sample fit and the residual in units of its interval (non-causal)."""

    fit = forecast.in_sample(
        frame, grain=timeseries.grain_of(timeseries.infer_frequency(frame["ds"]))
    )
    expected = fit["yhat"].to_numpy()
    # Prophet's in-sample 80 % interval spans +-1.2816 sigma of its noise.
    sigma = (fit["yhat_upper"].to_numpy() - fit["yhat_lower"].to_numpy()) / (2 * 1.2816)
    level = np.abs(expected) if floor_level is None else floor_level
    floor = np.maximum(relative_floor * level, 1e-9)
    y = frame["y"].to_numpy()
    return expected, (y - expected) / np.maximum(sigma, floor)


def severity_of(score: float, threshold: float) -> str:
    """``high`` from twice the threshold, ``medium`` from 1.5 times, else ``low``."""
    if score >= 2 * threshold:
        return "high"
    if score >= 1.5 * threshold:
        return "medium"
    return "low"


def alert_windows(points: pd.DataFrame, merge_gap: int) -> list[AlertWindow]:
    """Merge flagged points of ``points`` at most ``merge_gap`` unflagged rows apart."""
    flagged = np.flatnonzero(points["is_anomaly"].to_numpy())
    windows: list[AlertWindow] = []
    if len(flagged) == 0:
        return windows
    groups = np.split(flagged, np.flatnonzero(np.diff(flagged) > merge_gap + 1) + 1)
    ds = points["ds"].to_numpy()
    y = points["y"].to_numpy()
    expected = points["expected"].to_numpy()
    score = points["score"].to_numpy()
    direction = points["direction"].to_numpy()
    severity = points["severity"].to_numpy()
    for group in groups:
        peak = group[np.argmax(score[group])]
        windows.append(
            AlertWindow(
                start=pd.Timestamp(ds[group[0]]),
                end=pd.Timestamp(ds[group[-1]]),
                score=float(score[peak]),
                direction=str(direction[peak]),
                severity=str(severity[peak]),
                peak_ds=pd.Timestamp(ds[peak]),
                peak_value=float(y[peak]),
                expected_value=float(expected[peak]),
                points=len(group),
            )
        )
    return windows


def detect(
    frame: pd.DataFrame,
    *,
    method: str = "stl_mad",
    causal: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    merge_gap: int | None = None,
    period: int | None = None,
    history: int | None = None,
    refit: int | None = None,
    relative_floor: float = 0.01,
    log: bool = False,
) -> AnomalyResult:
    """Find anomalies in a series and merge them into alert windows.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``ds, y``, one row per period (rows with missing ``y`` are dropped).
    method : {"stl_mad", "rolling_z", "prophet"}
        The detector (see the module notes).
    causal : bool
        Judge each point only from the points before it (as a live alert would). The
        ``prophet`` method cannot; its result says ``causal=False``.
    threshold : float
        Score (robust standard deviations) from which a point is flagged.
    merge_gap : int, optional
        Flagged points separated by at most this many unflagged rows form one window
        (default: a quarter of a season, at least 1).
    period : int, optional
        Season length in rows (default from the step: a day of sub-daily data, 7 for
        daily, 52 for weekly, 12 for monthly data); 0 or 1 for none.
    history : int, optional
        Rows of history each estimate uses (default: four seasons, at least 56).
    refit : int, optional
        ``stl_mad``: rows between refits of the decomposition (default: a quarter of a
        season, at least 1; never more than a season).
    relative_floor : float
        The scale never drops below this share of the series' level, so a flat stretch
        does not turn the smallest wiggle into an alert.
    log : bool
        Judge the logarithm of the series (every value must be positive): for series
        whose noise is multiplicative. Scores are relative deviations, ``expected``
        is given back in the series' units, and ``relative_floor`` is a floor on the
        relative change.

    Returns
    -------
    AnomalyResult
    """
    if method not in METHODS:
        raise AuterityError(f"unknown anomaly method {method!r} (use one of: {', '.join(METHODS)})")
    if threshold <= 0:
        raise AuterityError(f"threshold must be positive (got {threshold})")
    if not {"ds", "y"} <= set(frame.columns):
        raise AuterityError("a series needs columns 'ds' and 'y'")
    data = frame[["ds", "y"]].dropna().copy()
    data["ds"] = pd.to_datetime(data["ds"])
    data["y"] = data["y"].astype(float)
    data = data.sort_values("ds", kind="stable", ignore_index=True)
    if len(data) < _MIN_POINTS + 1:
        raise AuterityError(
            f"a series needs at least {_MIN_POINTS + 1} values to detect anomalies"
            f" (got {len(data)})"
        )
    period = season_length(data["ds"]) if period is None else int(period)
    history = int(history or max(4 * period, 56))
    refit = int(refit or max(1, period // 4))
    merge_gap = int(max(1, period // 4) if merge_gap is None else merge_gap)
    y = data["y"].to_numpy()
    floor_level: float | None = None
    work = y
    if log:
        if (y <= 0).any():
            raise AuterityError("a log scale needs every value to be positive")
        work, floor_level = np.log(y), 1.0
    if method == "prophet":
        causal = False
        expected, signed = _prophet(data.assign(y=work), relative_floor, floor_level)
    elif method == "rolling_z":
        expected, signed = _rolling(work, history, causal, relative_floor, floor_level)
    elif causal:
        expected, signed = _stl_causal(work, period, history, refit, relative_floor, floor_level)
    else:
        expected, signed = _stl_whole(work, period, relative_floor, floor_level)
    if log:
        expected = np.exp(expected)
    score = np.abs(signed)
    is_anomaly = np.nan_to_num(score, nan=0.0) >= threshold
    points = pd.DataFrame(
        {
            "ds": data["ds"],
            "y": y,
            "expected": expected,
            "score": score,
            "direction": np.where(signed < 0, "down", "up"),
            "severity": [
                severity_of(s, threshold) if flag else ""
                for s, flag in zip(score, is_anomaly, strict=True)
            ],
            "is_anomaly": is_anomaly,
        }
    )
    options: dict[str, Any] = {"period": period, "history": history, "merge_gap": merge_gap}
    if log:
        options["log"] = True
    if method == "stl_mad" and causal:
        options["refit"] = refit
    return AnomalyResult(
        points=points,
        windows=alert_windows(points, merge_gap),
        causal=causal,
        method=method,
        threshold=float(threshold),
        options=options,
    )


def scan(
    metrics: Sequence[str],
    *,
    start: date,
    end: date,
    grain: str = "day",
    warmup: int = 56,
    method: str = "stl_mad",
    threshold: float = DEFAULT_THRESHOLD,
    filters: Mapping[str, str | Sequence[str]] | None = None,
    log_metrics: Sequence[str] = (),
    tz: str | None = None,
    url: str | None = None,
) -> dict[str, AnomalyResult]:
    """Detect anomalies in several metrics over a period, each judged with its history.

    Each metric is read from ``warmup`` periods before ``start`` (so the first days of
    the period have history to be judged against) up to ``end``; only windows that start
    inside ``[start, end)`` are kept, and ``points`` covers the period only.

    Parameters
    ----------
    metrics : sequence of str
        Metric names from the catalog.
    start, end : date
        Local dates, ``start`` inclusive, ``end`` exclusive.
    grain : {"day", "week", "month"}
        One point per period.
    warmup : int
        Periods of history read before ``start``.
    method, threshold
        As in :func:`detect`.
    log_metrics : sequence of str
        Metrics judged on a log scale (``detect(log=True)``), e.g. revenue, whose noise
        is multiplicative; a series with a value <= 0 in the range falls back to the
        linear scale (logged), as the log of it does not exist.
    filters, tz, url
        As in :func:`auterity.timeseries.metric_series`.

    Returns
    -------
    dict
        ``{metric: AnomalyResult}`` in the order given.
    """

    step = {"day": timedelta(days=1), "week": timedelta(weeks=1), "month": timedelta(days=31)}
    if grain not in step:
        raise AuterityError(f"unknown grain {grain!r} (use day, week or month)")
    first = start - warmup * step[grain]
    results = {}
    for name in metrics:
        series = timeseries.metric_series(
            name, start=first, end=end, grain=grain, filters=filters, tz=tz, url=url
        )
        log_scale = name in log_metrics
        if log_scale and not bool((series["y"] > 0).all()):
            log.warning("%s has values <= 0: judged on the linear scale", name)
            log_scale = False
        found = detect(series, method=method, threshold=threshold, log=log_scale)
        keep = found.points["ds"] >= pd.Timestamp(start)
        results[name] = replace(
            found,
            points=found.points[keep].reset_index(drop=True),
            windows=[w for w in found.windows if w.start >= pd.Timestamp(start)],
        )
    return results


def windows_table(results: Mapping[str, AnomalyResult]) -> pd.DataFrame:
    """All windows of :func:`scan` as one table, most severe (highest score) first.

    Columns: ``metric, start, end, direction, severity, score, peak_value,
    expected_value, points``.
    """
    rows = [{"metric": name, **asdict(w)} for name, res in results.items() for w in res.windows]
    columns = [
        "metric",
        "start",
        "end",
        "direction",
        "severity",
        "score",
        "peak_value",
        "expected_value",
        "points",
    ]
    table = pd.DataFrame(rows, columns=[*columns, "peak_ds"])[columns]
    return table.sort_values("score", ascending=False, ignore_index=True)


# --- NAB scoring --------------------------------------------------------------------------

NAB_PROFILES = {
    "standard": {"tp": 1.0, "fn": 1.0, "fp": 0.11},
    "reward_low_fp_rate": {"tp": 1.0, "fn": 1.0, "fp": 0.22},
    "reward_low_fn_rate": {"tp": 1.0, "fn": 2.0, "fp": 0.11},
}


def scaled_sigmoid(position: float) -> float:
    """NAB's reward for a detection at a relative ``position`` to a window's right end.

    -1 is the window's left edge (about +0.987), 0 its right edge (0), positive values
    lie after the window (negative rewards, -1 from 3 window widths on).
    """
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def nab_probation(rows: int, share: float = 0.15) -> int:
    """Rows NAB leaves unscored at the start of a file: ``min(floor(share*rows), share*5000)``."""
    return int(min(math.floor(share * rows), share * 5000))


def nab_score(
    detections: Sequence[bool] | np.ndarray,
    windows: Sequence[tuple[int, int]],
    *,
    profile: str = "standard",
    probation_share: float = 0.15,
) -> dict[str, float]:
    """Score one file's detections the way NAB's sweeper does.

    Parameters
    ----------
    detections : sequence of bool
        One per row: whether the detector fired on that row.
    windows : sequence of (int, int)
        Labelled anomaly windows as inclusive (first row, last row) positions, sorted.
    profile : str
        A key of :data:`NAB_PROFILES` (``standard``: TP 1, FN 1, FP 0.11).
    probation_share : float
        Share of rows (at most ``share * 5000``) at the start that are not scored.

    Returns
    -------
    dict
        ``raw`` (the file's score), ``null`` (score without detections: -FN per scored
        window), ``perfect`` (TP per scored window), ``tp`` (windows detected), ``fn``,
        ``fp`` (detections outside every window) and ``windows`` (scored windows).

    Notes
    -----
    A detection inside a window of width W at row i earns
    ``TP * scaled_sigmoid(-(right - i + 1) / W) / scaled_sigmoid(-1)``; only the best
    (earliest) detection of a window counts, and a window without one costs ``FN``. A
    detection outside every window costs ``FP * scaled_sigmoid(d / (W_prev - 1))``, with
    ``d`` its distance from the previous window's right end, or ``-FP`` before any window.
    """
    weights = NAB_PROFILES[profile]
    fired = np.asarray(detections, dtype=bool)
    rows = len(fired)
    probation = nab_probation(rows, probation_share)
    max_tp = scaled_sigmoid(-1.0)
    window_of = np.full(rows, -1)
    reward = np.zeros(rows)
    prev_right: int | None = None
    prev_width = 0
    bounds = sorted(windows)
    k = 0
    i = 0
    while i < rows:
        if k < len(bounds) and i == bounds[k][0]:
            left, right = bounds[k]
            width = right - left + 1
            for j in range(left, min(right, rows - 1) + 1):
                window_of[j] = k
                reward[j] = scaled_sigmoid(-(right - j + 1) / width) * weights["tp"] / max_tp
            prev_right, prev_width = right, width
            k += 1
            i = right + 1
            continue
        position = 3.0 if prev_right is None else abs(prev_right - i) / max(prev_width - 1, 1)
        reward[i] = scaled_sigmoid(position) * weights["fp"]
        i += 1
    scored = np.arange(rows) >= probation
    raw = 0.0
    tp = fn = 0
    counted = sorted({int(w) for w in window_of[scored] if w >= 0})
    for w in counted:
        hits = scored & (window_of == w) & fired
        if hits.any():
            raw += float(reward[hits].max())
            tp += 1
        else:
            raw -= weights["fn"]
            fn += 1
    false_hits = scored & (window_of < 0) & fired
    raw += float(reward[false_hits].sum())
    return {
        "raw": raw,
        "null": -weights["fn"] * len(counted),
        "perfect": weights["tp"] * len(counted),
        "tp": tp,
        "fn": fn,
        "fp": int(false_hits.sum()),
        "windows": len(counted),
    }


def nab_normalise(raw: float, null: float, perfect: float) -> float:
    """NAB's normalised score: 0 for no detections, 100 for perfect ones."""
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else float("nan")
