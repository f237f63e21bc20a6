"""Retention: raw events older than a number of days are purged.

``AUTERITY_RETENTION_DAYS`` (unset: keep everything) applies to the raw event tables of
:data:`RAW_EVENT_TABLES`; orders, customers and models are business records and stay.
``auterity db purge`` applies it (or ``--older-than``), and the scheduler daemon applies
the setting when it starts and once a day. Each purge is one transaction and one
``retention.purge`` audit row with the cut-off and the rows removed; the data version is
bumped and the result cache cleared; DuckDB files are checkpointed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import URL

from auterity import config
from auterity._time import utcnow
from auterity.errors import ConfigError
from auterity.warehouse import cache, rollups, schema
from auterity.warehouse.engine import checkpoint, connect, ensure_schema
from auterity.warehouse.writes import audit, mark_data_changed

EPOCH = datetime(1970, 1, 1)
"""Earlier than any event: the start of the span a purge refreshes in the rollups."""
RAW_EVENT_TABLES = ("product_events", "inference_events")
"""Tables whose rows are raw events (what retention purges)."""


def retention_days() -> int | None:
    """``AUTERITY_RETENTION_DAYS`` (None when unset: keep everything)."""
    raw = config.value(config.ENV_RETENTION_DAYS)
    if not raw:
        return None
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise ConfigError(f"{config.ENV_RETENTION_DAYS}={raw!r} is not a whole number of days >= 1")
    return days


def purge(
    days: int | None = None,
    *,
    tables: Sequence[str] = RAW_EVENT_TABLES,
    now: datetime | None = None,
    actor: str | None = None,
    url: str | URL | None = None,
) -> dict[str, int]:
    """Delete raw events older than ``days`` days (default the setting).

    Returns
    -------
    dict
        Table -> rows deleted.

    Raises
    ------
    ConfigError
        No ``days`` and no setting, fewer than 1 day, or a table that is not a raw
        event table.
    """
    days = days if days is not None else retention_days()
    if days is None:
        raise ConfigError(
            f"no retention: give --older-than DAYS or set {config.ENV_RETENTION_DAYS}"
        )
    if days < 1:
        raise ConfigError(f"keep at least 1 day of events, not {days}")
    unknown = [t for t in tables if t not in RAW_EVENT_TABLES]
    if unknown:
        raise ConfigError(
            f"retention purges raw events only ({', '.join(RAW_EVENT_TABLES)}), "
            f"not {', '.join(unknown)}"
        )
    cutoff = (now or utcnow()) - timedelta(days=days)
    ensure_schema(url)
    deleted: dict[str, int] = {}
    with connect(url, write=True) as conn:
        for name in tables:
            table = schema.metadata.tables[name]
            result = conn.execute(sa.delete(table).where(table.c.ts < cutoff))
            deleted[name] = int(result.rowcount)
        if deleted.get(schema.inference_events.name):
            # the purged days leave the rollups; the cutoff's own day is recomputed
            rollups.refresh_range(conn, EPOCH, cutoff)
        if any(deleted.values()):
            mark_data_changed(conn, rollups_unaffected=True)  # refreshed above if events went
        audit(
            conn,
            "retention.purge",
            actor=actor,
            object_type="warehouse",
            details={"days": days, "cutoff": cutoff.isoformat(), "deleted": deleted},
        )
    if any(deleted.values()):
        cache.clear()
        checkpoint(url)
    return deleted
