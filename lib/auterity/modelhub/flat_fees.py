"""The fees of flat-priced (self-hosted) models: the days they are deployed, and the daily accrual.

A flat model's ``monthly_cost`` accrues only on the local days (in ``tz``) it is
deployed, whatever the traffic on each day: from ``deployed_on`` in its
``pricing_config`` (an ISO date), else the day of its first request, up to
``retired_on`` (exclusive: the first day it no longer runs), else through the day of
its last request. First and last requests are those of the whole warehouse, not of the
report's period: a model still serving after a period's end is deployed to that end,
and for a period ending today (data up to now) a model that served today is deployed
through today; a model with no request since some day and no ``retired_on`` is taken as
switched off after that day (set ``retired_on``, or keep it serving, to say otherwise).
On each deployed day the fee is ``monthly_cost / days in that month``, so a whole
month costs ``monthly_cost`` and a partial month its share of days. Every view sums the
same daily accrual (:meth:`FlatFee.daily`): the leaderboard, the daily trend (whose days
add up to the leaderboard), the cost breakdowns, savings, and what emails, dashboards
and insights show from them. A model with neither date nor any request is never billed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity import _time
from auterity.errors import ConfigError
from auterity.modelhub import _periods
from auterity.warehouse import cache, schema

E = schema.inference_events


@dataclass(frozen=True)
class FlatFee:
    """A flat-priced (self-hosted) model's monthly fee and the local days it is deployed.

    Attributes
    ----------
    monthly_cost : float
        The fee of a whole calendar month.
    first, until : date
        Deployed from ``first`` (inclusive) to ``until`` (exclusive), local dates; empty
        (``until <= first``) when the model was not deployed. For a report these are the
        deployed days within its period (a deployment reaching beyond the period is cut
        at its edges, which changes nothing inside it).
    """

    monthly_cost: float
    first: date
    until: date

    def daily(self, days: pd.DatetimeIndex) -> np.ndarray:
        """The fee accrued on each local day of ``days`` (midnights).

        The monthly cost over the number of days of that day's month while deployed, 0
        outside ``[first, until)``: the one rule every view sums (leaderboard, daily trend,
        cost breakdowns, savings), so partial months are prorated alike everywhere.
        """
        fee = self.monthly_cost / days.days_in_month.to_numpy(dtype=float)
        deployed = (days >= pd.Timestamp(self.first)) & (days < pd.Timestamp(self.until))
        return np.where(np.asarray(deployed), fee, 0.0)

    def total(self, start: date, end: date) -> float:
        """The fee of the local period ``[start, end)``: :meth:`daily` summed over its days."""
        lo, hi = max(start, self.first), min(end, self.until)
        if hi <= lo:
            return 0.0
        return float(self.daily(pd.date_range(lo, hi - timedelta(days=1), freq="D")).sum())


def _config_date(model_id: str, config: Mapping[str, Any], key: str) -> date | None:
    """An optional ISO date of a pricing config, else a ConfigError naming model and key."""
    value = config.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if isinstance(value, str) else _time.as_date(value, key)
    except (ConfigError, ValueError):
        raise ConfigError(
            f"models.pricing_config of {model_id!r}: {key!r} must be a date such as "
            f"2026-01-31 (got {value!r})"
        ) from None


RECENT_DAYS = 7
"""A model with a request in the week before a period was already deployed at its start.

Checked first because it is cheap (a bounded time range); only a model idle that week is
then asked whether it ever served before the period, a scan of its older history."""


def _traffic_days(
    model_ids: list[str], period: _periods.Period, url: str | None
) -> dict[str, tuple]:
    """Per model, the local days of ``period`` between its first and last request (over the
    whole warehouse) as ``(first, until)``, ``until`` exclusive; empty when none fall in it.

    One statement of subqueries per model: whether any request comes in the
    :data:`RECENT_DAYS` before the period and any after it, and the first and last request
    inside it. Only models idle in that week need a second statement, whether any request
    came before the period at all. Global ``min``/``max`` would read the model's whole
    history on every report.
    """
    recent = period.lo - timedelta(days=RECENT_DAYS)

    def exists(mine: ColumnElement[bool], *where: ColumnElement[bool]) -> Any:
        return sa.exists(sa.select(sa.literal(1)).select_from(E).where(mine, *where))

    def one(model_id: str) -> sa.Select:
        mine = E.c.model_id == model_id
        inside = (
            sa.select(sa.func.min(E.c.ts).label("first_ts"), sa.func.max(E.c.ts).label("last_ts"))
            .where(mine, period.where())
            .subquery()
        )
        return sa.select(
            sa.literal(model_id, sa.String()).label("model_id"),
            exists(mine, E.c.ts >= recent, E.c.ts < period.lo).label("before"),
            exists(mine, E.c.ts >= period.hi).label("after"),
            inside.c.first_ts,
            inside.c.last_ts,
        ).select_from(inside)

    def older(model_id: str) -> sa.Select:
        mine = E.c.model_id == model_id
        return sa.select(
            sa.literal(model_id, sa.String()).label("model_id"),
            exists(mine, E.c.ts < recent).label("before"),
        )

    def fetch(selects: list[sa.Select]) -> pd.DataFrame:
        return cache.fetch(selects[0] if len(selects) == 1 else sa.union_all(*selects), url=url)

    frame = fetch([one(m) for m in model_ids])
    frame["before"] = frame["before"].astype(bool)
    idle = frame.loc[~frame["before"], "model_id"].astype(str).tolist()
    if idle:
        seen_before = fetch([older(m) for m in idle]).set_index("model_id")["before"]
        frame["before"] |= frame["model_id"].map(seen_before).fillna(False).astype(bool)

    def local_day(ts: Any) -> date:
        return pd.Timestamp(ts).tz_localize("UTC").tz_convert(period.tz).date()

    out: dict[str, tuple] = {}
    for row in frame.itertuples(index=False):
        seen_inside = pd.notna(row.first_ts)
        if row.before:
            first = period.start
        else:  # the first request is in the period, or after it (then nothing is in it)
            first = local_day(row.first_ts) if seen_inside else period.end
        if bool(row.after):
            until = period.end
        else:  # the last request is in the period, or before it
            until = local_day(row.last_ts) + timedelta(days=1) if seen_inside else period.start
        out[str(row.model_id)] = (first, until)
    return out


def deployed_fees(
    models: pd.DataFrame, period: _periods.Period, url: str | None
) -> dict[str, FlatFee]:
    """Each flat-priced model's fee and its deployed days in a period (module docstring).

    Parameters
    ----------
    models : pandas.DataFrame
        The models table (:func:`auterity.modelhub.pricing.catalogue`); rows of other
        pricing kinds are ignored.
    period : Period
        The report's period.
    url : str, optional
        Warehouse URL; default from the settings. Queried only for models missing a
        ``deployed_on`` or ``retired_on`` date (one statement for all of them).

    Returns
    -------
    dict
        Model id to :class:`FlatFee` for every flat model: deployed from ``deployed_on``
        to ``retired_on`` where configured, else from its first request through the day
        of its last one, those two cut to the period.

    Raises
    ------
    ConfigError
        ``monthly_cost`` missing or negative, a date that is not an ISO date, or
        ``retired_on`` not after ``deployed_on``; the message names the model.
    """
    configured: dict[str, tuple[float, date | None, date | None]] = {}
    for row in models.itertuples(index=False):
        if row.pricing_kind != "flat":
            continue
        fee = row.config.get("monthly_cost")
        if not isinstance(fee, int | float) or isinstance(fee, bool) or fee < 0:
            raise ConfigError(
                f"models.pricing_config of flat-priced {row.model_id!r} needs a "
                "non-negative number 'monthly_cost'"
            )
        deployed = _config_date(row.model_id, row.config, "deployed_on")
        retired = _config_date(row.model_id, row.config, "retired_on")
        if deployed is not None and retired is not None and retired <= deployed:
            raise ConfigError(
                f"models.pricing_config of {row.model_id!r}: 'retired_on' ({retired}) must be "
                f"after 'deployed_on' ({deployed})"
            )
        configured[row.model_id] = (float(fee), deployed, retired)
    # Only models missing a date need their traffic (one statement for all of them).
    unknown = [m for m, (_, first, until) in configured.items() if first is None or until is None]
    traffic = _traffic_days(unknown, period, url) if unknown else {}
    out: dict[str, FlatFee] = {}
    for model_id, (fee, first, until) in configured.items():
        seen_first, seen_until = traffic.get(model_id, (period.start, period.start))
        out[model_id] = FlatFee(
            fee, first if first is not None else seen_first, until or seen_until
        )
    return out
