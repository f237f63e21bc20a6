"""Model SLOs: the SLO file (``parameters/slos.yml``), its validation, and compliance per model.

An SLO is a latency target at a percentile (over successful requests) and an error-rate
target (share of requests with status error or timeout); a ``default`` applies to every
model, per-model overrides on top of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from auterity._yaml import parse_yaml
from auterity.config import parameters_dir
from auterity.errors import ConfigError
from auterity.modelhub import _periods, _sql, pricing
from auterity.warehouse import cache, dialect, schema

E = schema.inference_events

SLO_COLUMNS = [
    "model_id",
    "name",
    "latency_percentile",
    "latency_target_ms",
    "error_rate_target",
    "latency_ms",
    "error_rate",
    "days",
    "days_met",
    "compliance",
    "status",
]
SLO_FIELDS = ("latency_percentile", "latency_ms", "error_rate")
SLO_FILE = "slos.yml"


def _slo_number(value: Any, where: str, field: str) -> float:
    """A number from the SLO file, else a ConfigError naming the place and field."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{where}: {field} must be a number (got {value!r})")
    return float(value)


def _slo_fields(raw: Any, where: str) -> dict[str, float]:
    """The validated fields of one SLO block (default or a model's override)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(SLO_FIELDS)}")
    out: dict[str, float] = {}
    for field, value in raw.items():
        if field not in SLO_FIELDS:
            raise ConfigError(
                f"{where}: unknown field {field!r} (allowed: {', '.join(SLO_FIELDS)})"
            )
        number = _slo_number(value, where, field)
        if field == "latency_percentile" and not 50 <= number <= 99.9:
            raise ConfigError(
                f"{where}: latency_percentile must be between 50 and 99.9 (got {value})"
            )
        if field == "latency_ms" and number <= 0:
            raise ConfigError(f"{where}: latency_ms must be a positive number of ms (got {value})")
        if field == "error_rate" and not 0 <= number <= 1:
            raise ConfigError(
                f"{where}: error_rate must be a fraction between 0 and 1 (got {value})"
            )
        out[field] = number
    return out


def _validate_slos(raw: Any, source: str) -> dict[str, Any]:
    """Validate SLO definitions (``default`` plus per-model overrides) and merge them."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping with 'default' and 'models'")
    extra = set(raw) - {"default", "models"}
    if extra:
        raise ConfigError(
            f"{source}: unknown section(s) {', '.join(map(repr, sorted(extra)))} "
            "(allowed: default, models)"
        )
    default = _slo_fields(raw.get("default"), f"{source}: default")
    missing = [f for f in SLO_FIELDS if f not in default]
    if missing:
        raise ConfigError(f"{source}: default: missing field(s) {', '.join(missing)}")
    overrides = raw.get("models") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{source}: models must map model ids to SLO fields")
    merged = {
        str(model_id): {**default, **_slo_fields(fields, f"{source}: model {model_id!r}")}
        for model_id, fields in overrides.items()
    }
    return {"default": default, "models": merged}


def load_slos(path: str | Path | None = None) -> dict[str, Any]:
    """Load and validate the model SLOs.

    Parameters
    ----------
    path : str or Path, optional
        YAML file; default ``parameters/slos.yml``. It holds a ``default`` block with
        ``latency_percentile`` (50..99.9), ``latency_ms`` (target, > 0) and
        ``error_rate`` (target fraction of failed requests, 0..1), and optional per-model
        overrides under ``models: {model_id: {field: value}}``.

    Returns
    -------
    dict
        ``{"default": {...}, "models": {model_id: {...}}}``, every model entry complete
        (its overrides on top of the default).

    Raises
    ------
    ConfigError
        Missing or unreadable file, bad YAML, unknown section or field, missing target, or
        a value out of range; the message names the file, the model and the field.
    """
    file = Path(path) if path is not None else parameters_dir() / SLO_FILE
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the SLO file {file}: {exc.strerror or exc}") from None
    # the shared reader refuses duplicate keys, like metrics.yml's and schedule.yml's
    return _validate_slos(parse_yaml(text, str(file)), str(file))


def _slo_for(slos: Mapping[str, Any], model_id: str) -> dict[str, float]:
    """The SLO that applies to a model."""
    return slos["models"].get(model_id, slos["default"])


def _pct_label(p: float) -> str:
    """Column label of a latency percentile, e.g. p99_9."""
    return "p" + f"{p:g}".replace(".", "_")


def slo_report(
    start: date,
    end: date,
    *,
    tz: str | None = None,
    slos: Mapping[str, Any] | str | Path | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """SLO compliance per model: the share of days meeting both latency and error targets.

    Parameters
    ----------
    start, end : date
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    tz : str, optional
        Business time zone (days are cut there); default ``AUTERITY_TIMEZONE``.
    slos : dict, str or Path, optional
        SLO definitions as returned by :func:`load_slos` (or a path to such a YAML file);
        default ``parameters/slos.yml``.
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        One row per model with traffic: ``model_id, name, latency_percentile,
        latency_target_ms, error_rate_target, latency_ms, error_rate, days, days_met,
        compliance, status``. A day (local, with traffic for the model) is met when its
        latency percentile over 'ok' requests is at most the target and its error rate
        (share of requests with status error or timeout) at most the target;
        ``compliance = days_met / days``. ``latency_ms`` and ``error_rate`` are over the
        whole period, and ``status`` is 'met' when both meet the targets, else 'breached'.
        Sorted by compliance, worst first. Daily and whole-period statistics come from one
        statement (``GROUPING SETS``); models without traffic are not listed.
    """
    period = _periods.parse_period(start, end, tz)
    if slos is None or isinstance(slos, str | Path):
        definitions = load_slos(slos)
    else:
        definitions = _validate_slos(slos, "slos argument")
    catalogue = pricing.catalogue(url)
    percentiles = sorted(
        {d["latency_percentile"] for d in [definitions["default"], *definitions["models"].values()]}
    )
    rows = (
        sa.select(
            E.c.model_id,
            dialect.period_start(E.c.ts, "day", period.tz).label("day"),
            _sql.flag(E.c.status != "ok").label("failed"),
            _sql.ok_latency(),
        )
        .where(period.where())
        .subquery()
    )
    r = rows.c
    stmt = sa.select(
        r.model_id,
        r.day,
        sa.func.count().label("requests"),
        sa.func.sum(r.failed).label("failed"),
        *[
            dialect.percentile_of_many(r.ok_latency, p / 100, [q / 100 for q in percentiles]).label(
                _pct_label(p)
            )
            for p in percentiles
        ],
    ).group_by(sa.func.grouping_sets(sa.tuple_(r.model_id, r.day), sa.tuple_(r.model_id)))
    frame = cache.fetch(stmt, url=url)
    if frame.empty:
        return pd.DataFrame(columns=SLO_COLUMNS)
    frame["error_rate"] = _sql.as_int(frame["failed"]) / _sql.as_int(frame["requests"])
    out = []
    for model_id, group in frame.groupby("model_id", sort=True):
        slo = _slo_for(definitions, model_id)
        label = _pct_label(slo["latency_percentile"])
        daily = group[group["day"].notna()]
        whole = group[group["day"].isna()].iloc[0]
        latency = _sql.as_float(daily[label])
        met = (latency <= slo["latency_ms"]) & (daily["error_rate"] <= slo["error_rate"])
        overall_latency = float(whole[label]) if pd.notna(whole[label]) else math.nan
        ok = overall_latency <= slo["latency_ms"] and whole["error_rate"] <= slo["error_rate"]
        out.append(
            {
                "model_id": model_id,
                "latency_percentile": slo["latency_percentile"],
                "latency_target_ms": slo["latency_ms"],
                "error_rate_target": slo["error_rate"],
                "latency_ms": overall_latency,
                "error_rate": float(whole["error_rate"]),
                "days": len(daily),
                "days_met": int(met.sum()),
                "compliance": float(met.sum()) / len(daily),
                "status": "met" if ok else "breached",
            }
        )
    report = pd.DataFrame(out).merge(catalogue[["model_id", "name"]], on="model_id", how="left")
    report["name"] = report["name"].fillna(report["model_id"])
    report = report.sort_values(["compliance", "model_id"])
    return report[SLO_COLUMNS].reset_index(drop=True)
