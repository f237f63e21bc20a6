"""Savings: cheaper models that serve a feature about as well as the model serving it now."""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa

from auterity.errors import ConfigError
from auterity.modelhub import _periods, _sql, pricing
from auterity.warehouse import dialect

SAVINGS_COLUMNS = [
    "feature",
    "current_model",
    "candidate_model",
    "current_quality",
    "candidate_quality",
    "quality_gap",
    "current_cost_per_request",
    "candidate_cost_per_request",
    "current_requests",
    "est_monthly_savings",
    "evidence",
]


def savings(
    start: date,
    end: date,
    *,
    tolerance: float = 0.02,
    min_quality_n: int = 200,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Cheaper models that serve a feature about as well as the model currently serving it.

    For each feature and each model serving it in the period (the current model), a
    candidate is another model serving the same feature that is cheaper per request
    (effective cost, flat fees shared out by requests) and whose mean quality on the
    feature is within ``tolerance`` of the current model's: ``candidate_mean >=
    current_mean - tolerance`` and the upper end of the candidate's 95 % interval
    ``>= current_mean - tolerance``. Both need ``min_quality_n`` scored requests.

    Parameters
    ----------
    start, end : date
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    tolerance : float
        Quality loss accepted (absolute, on the 0..1 scale).
    min_quality_n : int
        Scored requests needed on the feature by both models.
    tz : str, optional
        Business time zone; default ``AUTERITY_TIMEZONE``.
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        Columns ``feature, current_model, candidate_model, current_quality,
        candidate_quality, quality_gap, current_cost_per_request,
        candidate_cost_per_request, current_requests, est_monthly_savings, evidence``,
        largest saving first. ``est_monthly_savings`` = the current model's requests on the
        feature scaled to 30 days x the difference in cost per request; ``quality_gap`` =
        current - candidate quality.
    """
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 <= tolerance < 1
    ):
        raise ConfigError(f"tolerance must be a number in [0, 1) (got {tolerance!r})")
    if isinstance(min_quality_n, bool) or not isinstance(min_quality_n, int) or min_quality_n < 2:
        raise ConfigError(f"min_quality_n must be an integer >= 2 (got {min_quality_n!r})")
    period = _periods.parse_period(start, end, tz)
    prices = pricing.for_period(period, url)

    def statement(prices: pricing.Pricing) -> sa.Select:
        rows = _sql.raw_rows(period.where()).subquery()
        r = rows.c
        agg = (
            sa.select(
                r.feature,
                r.model_id,
                sa.func.count().label("requests"),
                sa.func.count(r.quality).label("quality_n"),
                dialect.to_float(sa.func.avg(r.quality)).label("quality_mean"),
                dialect.to_float(sa.func.stddev_samp(r.quality)).label("quality_std"),
                *prices.parts(r),
            )
            .group_by(r.feature, r.model_id)
            .subquery()
        )
        return pricing.priced_select(agg, prices)

    frame = pricing.fetch_priced(statement, prices, url)
    if frame.empty:
        return pd.DataFrame(columns=SAVINGS_COLUMNS)
    for col in ("requests", "quality_n"):
        frame[col] = _sql.as_int(frame[col])
    for col in ("cost", "quality_mean", "quality_std"):
        frame[col] = _sql.as_float(frame[col])
    fees = prices.flat_fees()
    model_requests = frame.groupby("model_id")["requests"].transform("sum")
    frame["cost"] += frame["model_id"].map(fees).fillna(0.0) * frame["requests"] / model_requests
    frame["cpr"] = frame["cost"] / frame["requests"]
    _, frame["ci_high"] = _sql.quality_ci(
        frame["quality_mean"], frame["quality_std"], frame["quality_n"]
    )
    scored = frame[frame["feature"].notna() & (frame["quality_n"] >= min_quality_n)]
    pairs = scored.merge(scored, on="feature", suffixes=("_cur", "_cand"))
    floor = pairs["quality_mean_cur"] - tolerance
    pairs = pairs[
        (pairs["model_id_cur"] != pairs["model_id_cand"])
        & (pairs["cpr_cand"] < pairs["cpr_cur"])
        & (pairs["quality_mean_cand"] >= floor)
        & (pairs["ci_high_cand"] >= floor)
    ]
    months = 30.0 / period.days
    out = pd.DataFrame(
        {
            "feature": pairs["feature"],
            "current_model": pairs["model_id_cur"],
            "candidate_model": pairs["model_id_cand"],
            "current_quality": pairs["quality_mean_cur"],
            "candidate_quality": pairs["quality_mean_cand"],
            "quality_gap": pairs["quality_mean_cur"] - pairs["quality_mean_cand"],
            "current_cost_per_request": pairs["cpr_cur"],
            "candidate_cost_per_request": pairs["cpr_cand"],
            "current_requests": pairs["requests_cur"],
            "est_monthly_savings": pairs["requests_cur"]
            * months
            * (pairs["cpr_cur"] - pairs["cpr_cand"]),
            "quality_n_cur": pairs["quality_n_cur"],
            "quality_n_cand": pairs["quality_n_cand"],
        }
    )
    out["evidence"] = [
        f"On {row.feature}, {row.candidate_model} scores {row.candidate_quality:.3f} "
        f"(n={row.quality_n_cand:,}) vs {row.current_quality:.3f} (n={row.quality_n_cur:,}) "
        f"for {row.current_model} at ${row.candidate_cost_per_request:.5f} vs "
        f"${row.current_cost_per_request:.5f} per request; {row.current_requests:,} requests "
        f"in {period.days} days, about ${row.est_monthly_savings:,.0f} a month saved."
        for row in out.itertuples(index=False)
    ]
    out = out.sort_values(["est_monthly_savings", "feature"], ascending=[False, True])
    return out[SAVINGS_COLUMNS].reset_index(drop=True)
