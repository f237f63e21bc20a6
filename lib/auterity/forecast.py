"""Forecasts with Prophet, and their track record: rolling-origin backtests against baselines.

A report never shows a forecast without its track record, so :func:`backtest` scores
Prophet and two baselines (naive: the last value; seasonal naive: the last season
repeated) on the same rolling origins with MAE, MAPE, sMAPE and MASE.

Model choices (the same for every series; none is tuned on a test window):

* Strictly positive series are modelled on the log scale (``transform="auto"``), so trend
  and seasonality act multiplicatively - a season's swing grows with the level, as in
  sales and traffic - and the forecast cannot go negative. Series with zeros or negative
  values are modelled as they are.
* Seasonality follows the grain: weekly and yearly for daily data (yearly only with two
  years of history), yearly for weekly and monthly data (Prophet's automatic choices).
* The trend may change up to 95 % of the way through the history (Prophet's default is
  80 %): otherwise the last fifth of a long history - years of a monthly series - cannot
  move the trend, and forecasts start from a stale slope.
* Holidays of ``country`` (via the ``holidays`` package) for daily data.
* ``uncertainty_samples`` trades interval precision for speed: intervals come from that
  many simulated trend paths; backtests need no intervals and use none.

Prophet and cmdstanpy are imported inside the functions that fit, never at
``import auterity``; their chatty logging is silenced.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from auterity.errors import AuterityError
from auterity.timeseries import infer_frequency

GRAINS = ("day", "week", "month")
SEASON = {"day": 7, "week": 52, "month": 12}
"""Season length (in periods) per grain, used by seasonal naive and MASE."""
FREQ = {"day": "D", "week": "W-MON", "month": "MS"}
MODELS = ("prophet", "naive", "seasonal_naive")
MAX_ITERATIONS = 1000
"""L-BFGS iterations per fit (Prophet's default is 10 000). On short, smooth series the fit
can interpolate the data, the noise scale heads to zero and the optimiser crawls for tens of
seconds without changing the forecast; real series converge well within this cap."""
INTERVAL_SEED = 20261202
"""Seed of the simulations behind Prophet's interval (same history, same interval)."""
_SEEDED = threading.Lock()
"""One seeded prediction at a time per process (threads of an API worker)."""
DEFAULT_UNCERTAINTY_SAMPLES = 200
"""Prophet's default is 1000; 200 gives stable 80 % intervals in a fifth of the time."""


def _check_grain(grain: str) -> str:
    """Return ``grain`` if it is known, else raise."""
    if grain not in GRAINS:
        raise AuterityError(f"unknown grain {grain!r} (use one of: {', '.join(GRAINS)})")
    return grain


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    """A ``ds, y`` frame, sorted, without missing values; raise if unusable."""
    if not {"ds", "y"} <= set(frame.columns):
        raise AuterityError("a series needs columns 'ds' and 'y'")
    out = frame[["ds", "y"]].dropna().copy()
    out["ds"] = pd.to_datetime(out["ds"])
    out["y"] = out["y"].astype(float)
    out = out.sort_values("ds", ignore_index=True)
    if len(out) < 3:
        raise AuterityError(f"a series needs at least 3 values to forecast (got {len(out)})")
    return out


def _prophet() -> type:
    """Import Prophet quietly and return its class.

    The loggers are silenced *before* the import: ``prophet.plot`` logs "Importing plotly
    failed" at import time (we draw with Altair, so plotly is not installed).
    """
    for name in ("prophet", "cmdstanpy", "prophet.plot"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        # cmdstanpy (re)configures its own handler when it runs, so a level is not enough.
        logger.disabled = True
    from prophet import Prophet

    return Prophet


def _check_country(country: str) -> None:
    """Raise unless ``holidays`` knows ``country``."""
    import holidays

    try:
        holidays.country_holidays(country)
    except NotImplementedError:
        raise AuterityError(
            f"unknown holiday country {country!r} (use an ISO code such as US, DE, FR)"
        ) from None


def _use_log(y: np.ndarray, transform: str) -> bool:
    """Whether to model ``y`` on the log scale."""
    if transform not in ("auto", "log", "none"):
        raise AuterityError(f"unknown transform {transform!r} (use auto, log or none)")
    positive = bool(np.all(y > 0))
    if transform == "log" and not positive:
        raise AuterityError("transform='log' needs strictly positive values")
    return transform == "log" or (transform == "auto" and positive)


def _fit_predict(
    frame: pd.DataFrame,
    horizon: int,
    grain: str,
    *,
    country: str | None,
    interval_width: float,
    uncertainty_samples: int,
    transform: str,
    changepoint_prior_scale: float,
    changepoint_range: float = 0.95,
) -> pd.DataFrame:
    """Fit Prophet on ``frame`` and predict the next ``horizon`` periods."""
    Prophet = _prophet()

    train = frame.copy()
    log = _use_log(train["y"].to_numpy(), transform)
    if log:
        train["y"] = np.log(train["y"])
    model = Prophet(
        interval_width=interval_width,
        uncertainty_samples=uncertainty_samples,
        changepoint_prior_scale=changepoint_prior_scale,
        changepoint_range=changepoint_range,
    )
    if country and grain == "day":
        model.add_country_holidays(country_name=country)
    model.fit(train, iter=MAX_ITERATIONS)
    last = train["ds"].iloc[-1]
    future = pd.DataFrame(
        {"ds": pd.date_range(last, periods=horizon + 1, freq=_offset(frame, grain))[1:]}
    )
    # Prophet draws its interval from NumPy's global generator: a fixed seed makes the same
    # history give the same interval (in every API worker, and on every rerun of a report).
    with _SEEDED:
        saved = np.random.get_state()
        np.random.seed(INTERVAL_SEED)
        try:
            predicted = model.predict(future)
        finally:
            np.random.set_state(saved)
    out = pd.DataFrame({"ds": future["ds"].to_numpy()})
    for col in ("yhat", "yhat_lower", "yhat_upper"):
        values = predicted[col].to_numpy() if col in predicted else predicted["yhat"].to_numpy()
        out[col] = np.exp(values) if log else values
    return out


def _offset(frame: pd.DataFrame, grain: str) -> str:
    """The step of future periods: the series' own frequency when regular."""

    return infer_frequency(frame["ds"]) or FREQ[grain]


def forecast(
    frame: pd.DataFrame,
    *,
    horizon: int,
    grain: str = "day",
    country: str | None = None,
    interval_width: float = 0.8,
    uncertainty_samples: int = DEFAULT_UNCERTAINTY_SAMPLES,
    transform: str = "auto",
    changepoint_prior_scale: float = 0.05,
    changepoint_range: float = 0.95,
) -> pd.DataFrame:
    """Forecast the next ``horizon`` periods of a series with Prophet.

    Parameters
    ----------
    frame : pandas.DataFrame
        The history: columns ``ds`` and ``y`` (rows with missing ``y`` are ignored).
    horizon : int
        Periods to forecast (at least 1).
    grain : {"day", "week", "month"}
        The series' grain; sets the step of future periods when the series is irregular.
    country : str, optional
        ISO country code whose public holidays are modelled (daily grain only).
    interval_width : float
        Coverage of the uncertainty interval, e.g. 0.8 for 80 %.
    uncertainty_samples : int
        Simulations behind the interval; 0 gives no interval (lower = upper = yhat).
    transform : {"auto", "log", "none"}
        ``auto`` models strictly positive series on the log scale.
    changepoint_prior_scale : float
        Flexibility of the trend (Prophet's default 0.05).
    changepoint_range : float
        Share of the history in which the trend may change (see the module notes).

    Returns
    -------
    pandas.DataFrame
        ``ds, yhat, yhat_lower, yhat_upper``, one row per future period.
    """
    _check_grain(grain)
    if horizon < 1:
        raise AuterityError(f"horizon must be at least 1 (got {horizon})")
    if not 0 < interval_width < 1:
        raise AuterityError(f"interval_width must be between 0 and 1 (got {interval_width})")
    if country:
        _check_country(country)
    return _fit_predict(
        _clean(frame),
        horizon,
        grain,
        country=country,
        interval_width=interval_width,
        uncertainty_samples=uncertainty_samples,
        transform=transform,
        changepoint_prior_scale=changepoint_prior_scale,
        changepoint_range=changepoint_range,
    )


def in_sample(
    frame: pd.DataFrame,
    *,
    grain: str = "day",
    interval_width: float = 0.8,
    uncertainty_samples: int = DEFAULT_UNCERTAINTY_SAMPLES,
) -> pd.DataFrame:
    """Prophet's fit of the history itself: ``ds, yhat, yhat_lower, yhat_upper`` per row.

    Used by the ``prophet`` anomaly detector; the series is modelled as it is (no log), so
    the interval is symmetric around ``yhat``.
    """
    Prophet = _prophet()
    data = _clean(frame)
    model = Prophet(
        interval_width=interval_width,
        uncertainty_samples=uncertainty_samples,
        changepoint_range=0.95,
    )
    model.fit(data, iter=MAX_ITERATIONS)
    predicted = model.predict(data[["ds"]])
    return predicted[["ds", "yhat", "yhat_lower", "yhat_upper"]].reset_index(drop=True)


def naive(train: Sequence[float] | np.ndarray, horizon: int) -> np.ndarray:
    """The naive forecast: the last value, repeated."""
    values = np.asarray(train, dtype=float)
    return np.repeat(values[-1], horizon)


def seasonal_naive(train: Sequence[float] | np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The seasonal naive forecast: the last full season, repeated."""
    values = np.asarray(train, dtype=float)
    if len(values) < season:
        raise AuterityError(f"seasonal naive needs a full season of {season} values")
    last = values[-season:]
    return np.array([last[i % season] for i in range(horizon)])


def mase_scale(train: Sequence[float] | np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast: the denominator of MASE."""
    values = np.asarray(train, dtype=float)
    lag = season if len(values) > season else 1
    diffs = np.abs(values[lag:] - values[:-lag])
    return float(np.mean(diffs)) if len(diffs) else float("nan")


def accuracy(
    actual: Sequence[float] | np.ndarray,
    predicted: Sequence[float] | np.ndarray,
    *,
    scale: float | None = None,
) -> dict[str, float | None]:
    """MAE, MAPE (%), sMAPE (%) and, given the MASE scale, MASE of a forecast.

    MAPE skips actual zeros (NaN if all are zero); sMAPE is ``200 |e| / (|y| + |yhat|)``
    averaged, with 0 where both are 0.
    """
    y = np.asarray(actual, dtype=float)
    f = np.asarray(predicted, dtype=float)
    err = np.abs(y - f)
    nonzero = y != 0
    denom = np.abs(y) + np.abs(f)
    smape = np.where(denom == 0, 0.0, 200 * err / np.where(denom == 0, 1, denom))
    return {
        "mae": float(np.mean(err)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(100 * err[nonzero] / np.abs(y[nonzero]))) if nonzero.any() else None,
        "smape": float(np.mean(smape)),
        "mase": float(np.mean(err) / scale) if scale else None,
    }


def _cutoffs(n: int, horizon: int, initial: int | None, period: int | None, season: int) -> list:
    """Training lengths of the rolling origins (each followed by ``horizon`` test points)."""
    period = period or horizon
    if initial is None:
        # Up to five origins, one horizon apart, keeping at least two seasons to train on.
        initial = max(2 * season + 1, n - horizon - 4 * period)
    if initial + horizon > n:
        raise AuterityError(
            f"the series has {n} points: too short for a backtest with {initial} to train on"
            f" and a horizon of {horizon}"
        )
    return list(range(initial, n - horizon + 1, period))


def _fold_forecasts(
    frame: pd.DataFrame, n_train: int, horizon: int, grain: str, models: Sequence[str], opts: dict
) -> dict[str, np.ndarray]:
    """Each model's forecast for one origin."""
    train = frame.iloc[:n_train]
    y = train["y"].to_numpy()
    out: dict[str, np.ndarray] = {}
    for name in models:
        if name == "naive":
            out[name] = naive(y, horizon)
        elif name == "seasonal_naive":
            out[name] = seasonal_naive(y, horizon, SEASON[grain])
        elif name == "prophet":
            fit = _fit_predict(train, horizon, grain, uncertainty_samples=0, **opts)
            out[name] = fit["yhat"].to_numpy()
    return out


def _fold_task(args: tuple) -> dict[str, np.ndarray]:
    """Process-pool entry point for one origin."""
    return _fold_forecasts(*args)


def _map(fn: Callable[[Any], Any], items: list, processes: int | None) -> list:
    """``map`` in a process pool when ``processes`` > 1 and there is more than one item."""
    if processes is None:
        processes = os.cpu_count() or 1
    if processes <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ProcessPoolExecutor(max_workers=min(processes, len(items))) as pool:
        return list(pool.map(fn, items))


def backtest(
    frame: pd.DataFrame,
    *,
    horizon: int,
    grain: str = "day",
    initial: int | None = None,
    period: int | None = None,
    models: Sequence[str] = MODELS,
    country: str | None = None,
    transform: str = "auto",
    changepoint_prior_scale: float = 0.05,
    changepoint_range: float = 0.95,
    processes: int | None = 1,
) -> dict[str, Any]:
    """Rolling-origin backtest of Prophet and the baselines on one series.

    At each origin every model is trained on the points before it and forecasts the next
    ``horizon`` points; errors of all origins are pooled. MASE divides each origin's
    errors by the in-sample MAE of the seasonal naive forecast on that origin's training
    data (season: 7 days, 52 weeks or 12 months), so MASE < 1 beats it in-sample.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``ds, y``; rows are periods (missing ``y`` rows are dropped).
    horizon : int
        Periods forecast at each origin.
    grain : {"day", "week", "month"}
        Sets the season length.
    initial : int, optional
        Points in the first training set (default: up to five origins, one ``period``
        apart, at least two seasons of training data).
    period : int, optional
        Points between origins (default ``horizon``: test windows do not overlap).
    models : sequence of str
        Among ``prophet``, ``naive``, ``seasonal_naive``.
    country, transform, changepoint_prior_scale, changepoint_range
        Prophet options, as in :func:`forecast`.
    processes : int, optional
        Worker processes for the origins (None: one per core).

    Returns
    -------
    dict
        ``horizon``, ``grain``, ``season``, ``folds`` (one per origin: ``cutoff`` (last
        training timestamp), ``test_start``, ``test_end``, ``n_train`` and per-model
        ``mae``) and ``models`` (per model: ``mae``, ``rmse``, ``mape``, ``smape``,
        ``mase`` over all origins).
    """
    _check_grain(grain)
    unknown = set(models) - set(MODELS)
    if unknown:
        raise AuterityError(f"unknown model(s) {sorted(unknown)} (use: {', '.join(MODELS)})")
    if horizon < 1:
        raise AuterityError(f"horizon must be at least 1 (got {horizon})")
    if country:
        _check_country(country)
    data = _clean(frame)
    season = SEASON[grain]
    cuts = _cutoffs(len(data), horizon, initial, period, season)
    opts = {
        "country": country,
        "interval_width": 0.8,
        "transform": transform,
        "changepoint_prior_scale": changepoint_prior_scale,
        "changepoint_range": changepoint_range,
    }
    tasks = [(data, n, horizon, grain, tuple(models), opts) for n in cuts]
    results = _map(_fold_task, tasks, processes)
    y = data["y"].to_numpy()
    errors: dict[str, list[np.ndarray]] = {m: [] for m in models}
    scaled: list[np.ndarray] = []
    folds = []
    for n, fold in zip(cuts, results, strict=True):
        actual = y[n : n + horizon]
        scale = mase_scale(y[:n], season)
        scaled.append(np.full(len(actual), scale))
        row: dict[str, Any] = {
            "cutoff": data["ds"].iloc[n - 1].isoformat(),
            "test_start": data["ds"].iloc[n].isoformat(),
            "test_end": data["ds"].iloc[n + horizon - 1].isoformat(),
            "n_train": n,
        }
        for name in models:
            errors[name].append(np.stack([actual, fold[name]]))
            row[f"{name}_mae"] = float(np.mean(np.abs(actual - fold[name])))
        folds.append(row)
    scales = np.concatenate(scaled)
    summary = {}
    for name in models:
        pairs = np.concatenate(errors[name], axis=1)
        metrics = accuracy(pairs[0], pairs[1])
        metrics["mase"] = float(np.mean(np.abs(pairs[0] - pairs[1]) / scales))
        summary[name] = metrics
    return {"horizon": horizon, "grain": grain, "season": season, "folds": folds, "models": summary}


def _forecast_task(args: tuple) -> pd.DataFrame:
    """Process-pool entry point for :func:`forecast_many`."""
    frame, kwargs = args
    return forecast(frame, **kwargs)


def _backtest_task(args: tuple) -> dict[str, Any]:
    """Process-pool entry point for :func:`backtest_many`."""
    frame, kwargs = args
    return backtest(frame, **kwargs)


def forecast_many(
    frames: Mapping[str, pd.DataFrame], *, processes: int | None = None, **kwargs: Any
) -> dict[str, pd.DataFrame]:
    """Forecast many series in parallel processes (one per core by default).

    ``kwargs`` are passed to :func:`forecast`; returns ``{name: forecast frame}``.
    """
    names = list(frames)
    results = _map(_forecast_task, [(frames[n], kwargs) for n in names], processes)
    return dict(zip(names, results, strict=True))


def backtest_many(
    frames: Mapping[str, pd.DataFrame], *, processes: int | None = None, **kwargs: Any
) -> dict[str, dict[str, Any]]:
    """Backtest many series in parallel processes; ``kwargs`` go to :func:`backtest`."""
    names = list(frames)
    kwargs = {**kwargs, "processes": 1}
    results = _map(_backtest_task, [(frames[n], kwargs) for n in names], processes)
    return dict(zip(names, results, strict=True))


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A forecast frame as JSON-ready rows (``ds`` as ISO text)."""
    out = []
    for row in frame.itertuples(index=False):
        record = row._asdict()
        ts = pd.Timestamp(record["ds"])
        record["ds"] = ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()
        for key in ("yhat", "yhat_lower", "yhat_upper"):
            record[key] = float(record[key])
        out.append(record)
    return out
