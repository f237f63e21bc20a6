"""The effective cost of model requests: per-token prices, monthly tiers and flat fees.

Cost (no model silently shows $0)
---------------------------------
The effective cost of a request is, in this order:

* the ``cost`` reported by the source, when not NULL (also for errors);
* 0 for an error with no reported cost (failed calls are not billed);
* ``per_token`` models: ``input_tokens / 1000 * input_price_per_1k +
  output_tokens / 1000 * output_price_per_1k``, computed in SQL;
* ``tiered`` models: the tiers of ``pricing_config`` (``up_to_tokens`` bounds on the
  monthly volume of input + output tokens) are applied in Python to each calendar month's
  (UTC) billed tokens, aggregated in SQL (:func:`tiered_cost`); the month's cost is
  prorated to requests by their share of the month's tokens (:func:`tier_price`). This
  takes two more statements (the monthly volumes, then the report again with the month
  prices) and happens only when a tiered model has requests without a reported cost;
* ``flat`` (self-hosted) models: the flat fee of the days the model is deployed
  (:mod:`auterity.modelhub.flat_fees`), plus any reported costs. Reports broken down by
  feature or customer, and savings, share it out by requests.

A request that cannot be priced (a per-token model without prices, or a model missing
from ``models``) makes the cost of its group NaN, with a warning, rather than $0.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity.errors import ConfigError
from auterity.modelhub import _periods, _sql, flat_fees
from auterity.warehouse import cache, dialect, schema

log = logging.getLogger("auterity.modelhub")

E = schema.inference_events
M = schema.models

Tier = tuple[float, float, float]
"""A price tier: (monthly token bound, input price per 1k, output price per 1k)."""


# --------------------------------------------------------------------------- pricing maths


def parse_tiers(model_id: str, config: Mapping[str, Any]) -> list[Tier]:
    """The validated price tiers of a tiered model's ``pricing_config``.

    Parameters
    ----------
    model_id : str
        The model, for error messages.
    config : mapping
        Its parsed ``pricing_config``: ``{"tiers": [{"up_to_tokens", "input_price_per_1k",
        "output_price_per_1k"}, ...]}``, ``up_to_tokens`` increasing, null for the last.

    Returns
    -------
    list of tuple
        ``(monthly token bound, input price per 1k, output price per 1k)`` per tier; the
        last bound is infinite (whatever ``up_to_tokens`` it gives).

    Raises
    ------
    ConfigError
        No tiers, a tier without numeric prices, or bounds that do not increase; the
        message names the model and the tier.
    """
    raw = config.get("tiers")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"models.pricing_config of {model_id!r}: 'tiers' must be a non-empty list"
        )
    tiers: list[Tier] = []
    previous = 0.0
    for i, tier in enumerate(raw):
        try:
            upper = tier.get("up_to_tokens")
            upper = math.inf if upper is None or i == len(raw) - 1 else float(upper)
            prices = float(tier["input_price_per_1k"]), float(tier["output_price_per_1k"])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ConfigError(
                f"models.pricing_config of {model_id!r}: tier {i + 1} needs up_to_tokens "
                "(null for the last) and numeric input_price_per_1k, output_price_per_1k"
            ) from None
        if upper <= previous:
            raise ConfigError(
                f"models.pricing_config of {model_id!r}: up_to_tokens must increase (tier {i + 1})"
            )
        tiers.append((upper, *prices))
        previous = upper
    return tiers


def tiered_cost(input_tokens: float, output_tokens: float, tiers: Sequence[Tier]) -> float:
    """The cost of a month's billed tokens under monthly volume tiers.

    Parameters
    ----------
    input_tokens, output_tokens : float
        The month's billed tokens of one model.
    tiers : sequence of tuple
        As returned by :func:`parse_tiers`.

    Returns
    -------
    float
        Each tier's slice of the volume (input + output tokens) at its prices; a slice has
        the month's input/output mix.
    """
    total = float(input_tokens) + float(output_tokens)
    if total <= 0:
        return 0.0
    cost, lower = 0.0, 0.0
    for upper, price_in, price_out in tiers:
        share = max(0.0, min(total, upper) - lower) / total
        cost += share * (input_tokens * price_in + output_tokens * price_out) / 1000
        lower = upper
        if lower >= total:
            break
    return cost


def tier_price(input_tokens: float, output_tokens: float, tiers: Sequence[Tier]) -> float:
    """The price per token of a month: its :func:`tiered_cost` prorated by token share.

    Parameters
    ----------
    input_tokens, output_tokens : float
        The month's billed tokens of one model.
    tiers : sequence of tuple
        As returned by :func:`parse_tiers`.

    Returns
    -------
    float
        Cost per (input or output) token; 0 for a month without tokens.
    """
    total = float(input_tokens) + float(output_tokens)
    return tiered_cost(input_tokens, output_tokens, tiers) / total if total > 0 else 0.0


def _month_floor(instant: datetime) -> datetime:
    """Start of the (UTC) calendar month containing ``instant``."""
    return datetime(instant.year, instant.month, 1)


def _next_month(instant: datetime) -> datetime:
    """Start of the month after the one containing ``instant``."""
    return datetime(instant.year + instant.month // 12, instant.month % 12 + 1, 1)


# --------------------------------------------------------------------------- pricing SQL


def _pending(c: Any) -> ColumnElement[bool]:
    """Rows whose cost must be computed: no reported cost and not an error."""
    return sa.and_(c.cost.is_(None), c.status != "error")


@dataclass(frozen=True)
class Pricing:
    """The models table and what pricing a period needs beyond plain SQL.

    Costs are computed after aggregation: each statement aggregates per model (and its
    other keys) the reported costs and the tokens of the requests still to be priced
    (:meth:`parts`), then joins ``models`` to the few aggregated rows and prices those
    tokens (:meth:`cost`). Tiered models need per-month prices that depend on the month's
    whole volume; they are computed only when some of their requests lack a cost
    (:func:`fetch_priced`), and are then applied row by row (:meth:`parts`).

    Attributes
    ----------
    period : Period
        The report's period.
    catalogue : pandas.DataFrame
        The ``models`` table, as returned by :func:`catalogue`.
    tiers : dict
        Each tiered model's tiers (:func:`parse_tiers`).
    flat : dict
        Each flat model's :class:`~auterity.modelhub.flat_fees.FlatFee` within the period.
    tier_rates : dict, optional
        Each tiered model's ``(month start, next month start, price per token)`` in the
        period; None until :meth:`with_tier_rates`.
    """

    period: _periods.Period
    catalogue: pd.DataFrame
    tiers: dict[str, list[Tier]]
    flat: dict[str, flat_fees.FlatFee]
    tier_rates: dict[str, list[tuple[datetime, datetime, float]]] | None = None

    def parts(self, c: Any) -> list[ColumnElement[Any]]:
        """Aggregates over raw rows (columns ``c``) that the effective cost is built from."""
        pending = _pending(c)
        parts: list[ColumnElement[Any]] = [
            dialect.to_float(sa.func.sum(c.cost)).label("reported_cost"),
            sa.func.sum(_sql.flag(pending)).label("pending"),
            dialect.to_float(sa.func.sum(sa.case((pending, c.input_tokens)))).label(
                "pending_input"
            ),
            dialect.to_float(sa.func.sum(sa.case((pending, c.output_tokens)))).label(
                "pending_output"
            ),
        ]
        if self.tier_rates is not None:
            tokens = dialect.to_float(c.input_tokens + c.output_tokens)
            whens = [
                (sa.and_(c.model_id == model_id, c.ts >= lo, c.ts < hi), tokens * price)
                for model_id, months in self.tier_rates.items()
                for lo, hi, price in months
            ]
            tiered = sa.case((pending, sa.case(*whens))) if whens else sa.null()
            parts.append(dialect.to_float(sa.func.sum(tiered)).label("tiered_cost"))
        return parts

    def cost(self, agg: Any) -> ColumnElement[Any]:
        """Effective cost of aggregated rows (``parts`` columns ``agg``, ``models`` joined).

        NULL when requests cannot be priced. Flat models give their reported costs only:
        callers add the period's fee.
        """
        tiered = agg.tiered_cost if self.tier_rates is not None else sa.null()
        computed = sa.case(
            (agg.pending == 0, 0.0),
            (
                M.c.pricing_kind == "per_token",
                agg.pending_input * M.c.input_price_per_1k / 1000.0
                + agg.pending_output * M.c.output_price_per_1k / 1000.0,
            ),
            (M.c.pricing_kind == "flat", 0.0),
            (M.c.pricing_kind == "tiered", tiered),
            else_=sa.null(),
        )
        return sa.func.coalesce(agg.reported_cost, 0.0) + computed

    def tier_pending(self, agg: Any) -> ColumnElement[Any]:
        """Requests of tiered models still to be priced (they need the tier prices)."""
        return sa.case((M.c.pricing_kind == "tiered", agg.pending), else_=0)

    def flat_fees(self) -> dict[str, float]:
        """Each flat model's fee for the period (only the days it was deployed)."""
        return {m: fee.total(self.period.start, self.period.end) for m, fee in self.flat.items()}

    def with_tier_rates(self, url: str | None) -> Pricing:
        """A copy with the per-month prices of every tiered model in the period."""
        rates: dict[str, list[tuple[datetime, datetime, float]]] = {}
        if self.tiers:
            volumes = _tier_volumes(list(self.tiers), self.period, url)
            for model_id, month, tokens_in, tokens_out in volumes.itertuples(index=False):
                lo = pd.Timestamp(month).to_pydatetime()
                price = tier_price(tokens_in, tokens_out, self.tiers[model_id])
                rates.setdefault(model_id, []).append((lo, _next_month(lo), price))
        return replace(self, tier_rates=rates)


def with_models(agg: sa.Subquery) -> sa.Join:
    """Aggregated rows joined to the ``models`` table.

    Parameters
    ----------
    agg : sqlalchemy.Subquery
        Aggregated rows with a ``model_id`` column.

    Returns
    -------
    sqlalchemy.Join
        ``agg LEFT JOIN models``: rows of models missing from ``models`` stay, unpriced.
    """
    return agg.outerjoin(M, M.c.model_id == agg.c.model_id)


def priced_select(agg: sa.Subquery, pricing: Pricing, *extra: ColumnElement[Any]) -> sa.Select:
    """Aggregated rows with their effective cost.

    Parameters
    ----------
    agg : sqlalchemy.Subquery
        Rows aggregated with :meth:`Pricing.parts` among their columns.
    pricing : Pricing
        The period's pricing.
    *extra : ColumnElement
        More columns to select (of ``models``, say).

    Returns
    -------
    sqlalchemy.Select
        Every column of ``agg``, ``extra``, ``cost`` (:meth:`Pricing.cost`) and
        ``tier_pending``, over :func:`with_models`.
    """
    return sa.select(
        agg,
        *extra,
        dialect.to_float(pricing.cost(agg.c)).label("cost"),
        pricing.tier_pending(agg.c).label("tier_pending"),
    ).select_from(with_models(agg))


def fetch_priced(
    build: Callable[[Pricing], sa.Select], pricing: Pricing, url: str | None
) -> pd.DataFrame:
    """Run a priced statement, again with the month prices of tiered models if it needs them.

    Usually (tiered models report their costs) this is one statement and one scan.

    Parameters
    ----------
    build : callable
        Builds the statement from a :class:`Pricing`; it must return ``tier_pending``.
    pricing : Pricing
        The period's pricing (without tier rates).
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        The statement's rows, every request priced that can be.
    """
    frame = cache.fetch(build(pricing), url=url)
    if pricing.tiers and not frame.empty and _sql.as_int(frame["tier_pending"]).sum() > 0:
        frame = cache.fetch(build(pricing.with_tier_rates(url)), url=url)
    return frame


def catalogue(url: str | None) -> pd.DataFrame:
    """The ``models`` table (a small dimension table) with parsed pricing configs.

    Parameters
    ----------
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        ``model_id, name, provider, pricing_kind, input_price_per_1k,
        output_price_per_1k, pricing_config`` and ``config`` (the parsed JSON, ``{}`` when
        empty), sorted by ``model_id``.

    Raises
    ------
    ConfigError
        A ``pricing_config`` is not valid JSON; the message names the model.
    """
    frame = cache.fetch(
        sa.select(
            M.c.model_id,
            M.c.name,
            M.c.provider,
            M.c.pricing_kind,
            M.c.input_price_per_1k,
            M.c.output_price_per_1k,
            M.c.pricing_config,
        ).order_by(M.c.model_id),
        url=url,
    )
    configs = []
    for model_id, text in zip(frame["model_id"], frame["pricing_config"], strict=True):
        try:
            configs.append(json.loads(text) if isinstance(text, str) and text else {})
        except json.JSONDecodeError:
            raise ConfigError(f"models.pricing_config of {model_id!r} is not valid JSON") from None
    frame["config"] = configs
    return frame


def check_models(models: str | Iterable[str] | None, known: pd.DataFrame) -> list[str] | None:
    """The model ids a report asks for, each checked against the models table.

    Parameters
    ----------
    models : str or iterable of str, optional
        One model id, several, or None for every model.
    known : pandas.DataFrame
        The models table (:func:`catalogue`).

    Returns
    -------
    list of str or None
        The ids without duplicates, in the order given; None for every model.

    Raises
    ------
    ConfigError
        An empty list, or an id missing from the models table (the message lists the
        known ones).
    """
    if models is None:
        return None
    wanted = [models] if isinstance(models, str) else list(models)
    if not wanted:
        raise ConfigError("models is empty; pass None for every model")
    ids = set(known["model_id"])
    unknown = [m for m in wanted if m not in ids]
    if unknown:
        raise ConfigError(
            f"unknown model id(s): {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(ids))})"
        )
    return list(dict.fromkeys(wanted))


def for_period(period: _periods.Period, url: str | None) -> Pricing:
    """The pricing of a period: the models table, tier definitions and flat fees.

    Parameters
    ----------
    period : Period
        The report's period (:func:`auterity.modelhub._periods.parse_period`).
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    Pricing
        Without tier rates (:func:`fetch_priced` adds them when a statement needs them).

    Raises
    ------
    ConfigError
        A pricing config is invalid (JSON, tiers, flat fee or deployment dates).
    """
    models = catalogue(url)
    tiers: dict[str, list[Tier]] = {}
    for row in models.itertuples(index=False):
        if row.pricing_kind == "tiered":
            tiers[row.model_id] = parse_tiers(row.model_id, row.config)
    return Pricing(period, models, tiers, flat_fees.deployed_fees(models, period, url))


def _tier_volumes(model_ids: list[str], period: _periods.Period, url: str | None) -> pd.DataFrame:
    """Billed (non-error) input and output tokens per tiered model and UTC month."""
    first = _month_floor(period.lo)
    last = period.hi if _month_floor(period.hi) == period.hi else _next_month(period.hi)
    rows = (
        sa.select(
            E.c.model_id,
            sa.func.date_trunc("month", E.c.ts, type_=sa.DateTime()).label("month"),
            E.c.input_tokens,
            E.c.output_tokens,
        )
        .where(
            E.c.model_id.in_(model_ids),
            E.c.ts >= first,
            E.c.ts < last,
            E.c.status != "error",
        )
        .subquery()
    )
    stmt = (
        sa.select(
            rows.c.model_id,
            rows.c.month,
            dialect.to_float(sa.func.sum(rows.c.input_tokens)).label("input_tokens"),
            dialect.to_float(sa.func.sum(rows.c.output_tokens)).label("output_tokens"),
        )
        .group_by(rows.c.model_id, rows.c.month)
        .order_by(rows.c.model_id, rows.c.month)
    )
    return cache.fetch(stmt, url=url)


def warn_unpriced(keys: Iterable[Any], where: str) -> None:
    """Log the groups whose cost is NaN because some requests could not be priced.

    Parameters
    ----------
    keys : iterable
        The groups (model ids, features, customers...); nothing is logged when empty.
    where : str
        The report, named in the warning (e.g. ``"leaderboard"``).
    """
    bad = sorted({str(k) for k in keys})
    if bad:
        log.warning(
            "%s: cost is unknown for %s (requests of models without prices); shown as NaN",
            where,
            ", ".join(bad),
        )
