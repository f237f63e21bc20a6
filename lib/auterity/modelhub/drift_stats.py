"""Distribution drift of request metrics between two windows: PSI, binned KS test, drift level.

Binning happens in SQL, on the reference window's quantiles; the statistics are computed
in numpy on the per-bin counts (scipy, for the KS p-value, is imported only when needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity.errors import ConfigError
from auterity.modelhub import _periods, pricing
from auterity.warehouse import cache, dialect, schema

E = schema.inference_events

DRIFT_COLUMNS = [
    "metric",
    "psi",
    "ks_statistic",
    "ks_pvalue",
    "n_reference",
    "n_current",
    "level",
]
DRIFT_METRICS = ("input_tokens", "output_tokens", "latency_ms", "quality")
PSI_MODERATE = 0.1
"""PSI from which drift is 'moderate' (common credit-risk convention)."""
PSI_SIGNIFICANT = 0.25
"""PSI from which drift is 'significant'."""
KS_ALPHA = 0.01
"""A KS p-value below this raises a PSI level of 'none' to 'moderate'."""
PSI_EPSILON = 1e-4
"""Bin shares below this are raised to it in the PSI (empty bins would be infinite)."""


def _drift_column(metric: str) -> ColumnElement[Any]:
    """The raw column a drift metric is measured on."""
    return {
        "input_tokens": E.c.input_tokens,
        "output_tokens": E.c.output_tokens,
        "latency_ms": E.c.latency_ms,
        "quality": E.c.quality,
    }[metric]


def _edge(value: Any) -> float:
    """A bin edge rounded to 12 significant digits, so DuckDB and PostgreSQL bin alike."""
    # Their interpolated percentiles may differ in the last bit; a value equal to an edge
    # would then fall in different bins.
    return float(f"{float(value):.12g}")


def _psi(reference: np.ndarray, current: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two binned count vectors (shares floored at epsilon)."""
    p = np.maximum(reference / reference.sum(), epsilon)
    q = np.maximum(current / current.sum(), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def _binned_ks(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest CDF gap at the bin edges: a lower bound of the exact two-sample KS statistic."""
    cdf_ref = np.cumsum(reference) / reference.sum()
    cdf_cur = np.cumsum(current) / current.sum()
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def _ks_pvalue(statistic: float, n_reference: int, n_current: int) -> float:
    """Two-sided KS p-value with the effective sample size n1*n2/(n1+n2)."""
    from scipy.stats import kstwo

    n_eff = max(1, round(n_reference * n_current / (n_reference + n_current)))
    return float(kstwo.sf(statistic, n_eff))


def drift_level(psi: float, ks_pvalue: float) -> str:
    """The drift level of a metric from its PSI and KS p-value.

    Parameters
    ----------
    psi : float
        Population stability index; NaN when a window has no values.
    ks_pvalue : float
        P-value of the (binned) two-sample Kolmogorov-Smirnov test.

    Returns
    -------
    str
        'significant' (PSI >= ``PSI_SIGNIFICANT``), 'moderate' (PSI >= ``PSI_MODERATE``,
        or a KS p-value below ``KS_ALPHA``: a significant KS test lifts 'none' to
        'moderate'), 'none', or 'insufficient data' when the PSI is NaN.
    """
    if math.isnan(psi):
        return "insufficient data"
    if psi >= PSI_SIGNIFICANT:
        return "significant"
    if psi >= PSI_MODERATE or ks_pvalue < KS_ALPHA:
        return "moderate"
    return "none"


def drift(
    reference: tuple[date, date],
    current: tuple[date, date],
    *,
    model: str | None = None,
    feature: str | None = None,
    metrics: Sequence[str] = DRIFT_METRICS,
    bins: int = 20,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Distribution drift of request metrics between a reference and a current window.

    Binning happens in SQL: one statement computes the reference window's quantile edges
    (``percentile_cont(k / bins)``, k = 1..bins-1) of every metric, a second counts rows per
    window and bin (bin = number of edges the value exceeds), for all metrics at once.
    Only successful requests (status 'ok') are compared; quality only where scored.

    Parameters
    ----------
    reference, current : tuple of date
        ``(start, end)`` local dates in ``tz``, end exclusive; the windows must not overlap.
    model, feature : str, optional
        Restrict to one model and/or one feature.
    metrics : sequence of str
        Any of input_tokens, output_tokens, latency_ms, quality.
    bins : int
        Number of reference-quantile bins (2..100).
    tz : str, optional
        Business time zone; default ``AUTERITY_TIMEZONE``.
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, psi, ks_statistic, ks_pvalue, n_reference, n_current, level``.
        ``psi`` is the population stability index over the bins (shares floored at
        ``PSI_EPSILON``). ``ks_statistic`` is the binned Kolmogorov-Smirnov statistic, the
        largest gap of the two empirical CDFs at the bin edges: a lower bound of the exact
        two-sample statistic; ``ks_pvalue`` is from ``scipy.stats.kstwo`` with the
        effective size n1*n2/(n1+n2). ``level``: 'none' (PSI < 0.1), 'moderate'
        (0.1 <= PSI < 0.25, or PSI < 0.1 with a KS p-value < 0.01), 'significant'
        (PSI >= 0.25), or 'insufficient data' when a window has no values. The bin edges
        are in ``frame.attrs["edges"]``.

    Raises
    ------
    ConfigError
        Bad or overlapping windows, unknown metric or model, bins out of range.
    """
    windows = []
    for name, window in (("reference", reference), ("current", current)):
        if not isinstance(window, Sequence) or isinstance(window, str) or len(window) != 2:
            raise ConfigError(f"the {name} window must be a (start, end) pair of dates")
        windows.append(_periods.parse_period(window[0], window[1], tz, f"{name} window"))
    ref, cur = windows
    if ref.lo < cur.hi and cur.lo < ref.hi:
        raise ConfigError(
            f"the reference window {ref.start}..{ref.end} and the current window "
            f"{cur.start}..{cur.end} overlap"
        )
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in names if m not in DRIFT_METRICS]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(
            f"metrics must be distinct names among {', '.join(DRIFT_METRICS)} (got {names!r})"
        )
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 100:
        raise ConfigError(f"bins must be an integer between 2 and 100 (got {bins!r})")
    base = [E.c.status == "ok"]
    if model is not None:
        pricing.check_models([model], pricing.catalogue(url))
        base.append(E.c.model_id == model)
    if feature is not None:
        base.append(E.c.feature == feature)

    # 1. The reference window's quantile edges of every metric, in one statement.
    columns = []
    for metric in names:
        col = _drift_column(metric)
        columns.append(sa.func.count(col).label(f"n__{metric}"))
        points = [k / bins for k in range(1, bins)]
        columns += [
            dialect.percentile_of_many(col, k / bins, points).label(f"e{k}__{metric}")
            for k in range(1, bins)
        ]
    edge_row = cache.fetch(sa.select(*columns).where(ref.where(), *base), url=url).iloc[0]
    edges = {
        m: np.array([_edge(edge_row[f"e{k}__{m}"]) for k in range(1, bins)])
        for m in names
        if int(edge_row[f"n__{m}"] or 0) > 0
    }

    # 2. Rows per window and bin, every metric in one statement.
    selects = []
    for metric in names:
        col = _drift_column(metric)
        bin_expr: ColumnElement[Any] = sa.literal(0)  # no reference values: count only
        if metric in edges:
            bin_expr = sa.case((col > float(edges[metric][0]), 1), else_=0)
            for edge in edges[metric][1:]:
                bin_expr = bin_expr + sa.case((col > float(edge), 1), else_=0)
        rows = (
            sa.select(
                sa.case((ref.where(), 0), else_=1).label("window"),
                bin_expr.label("bin"),
            )
            .where(
                *base,
                col.is_not(None),
                sa.or_(ref.where(), cur.where()),
            )
            .subquery()
        )
        selects.append(
            sa.select(
                sa.literal(metric, sa.String()).label("metric"),
                rows.c.window,
                rows.c.bin,
                sa.func.count().label("n"),
            ).group_by(rows.c.window, rows.c.bin)
        )
    counts = cache.fetch(sa.union_all(*selects), url=url)

    out = []
    for metric in names:
        result: dict[str, Any] = {"metric": metric, "psi": math.nan, "ks_statistic": math.nan}
        result["ks_pvalue"] = math.nan
        hist = np.zeros((2, bins))
        mine = counts[counts["metric"] == metric]
        for window, b, n in zip(mine["window"], mine["bin"], mine["n"], strict=True):
            hist[int(window), int(b)] += int(n)
        n_ref, n_cur = int(hist[0].sum()), int(hist[1].sum())
        if n_ref and n_cur:
            result["psi"] = _psi(hist[0], hist[1])
            result["ks_statistic"] = _binned_ks(hist[0], hist[1])
            result["ks_pvalue"] = _ks_pvalue(result["ks_statistic"], n_ref, n_cur)
        result.update(n_reference=n_ref, n_current=n_cur)
        result["level"] = drift_level(result["psi"], result["ks_pvalue"])
        out.append(result)
    frame = pd.DataFrame(out, columns=DRIFT_COLUMNS)
    frame.attrs["edges"] = {m: e.tolist() for m, e in edges.items()}
    return frame
