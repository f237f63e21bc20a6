"""Schedule slots: cron fire times, and each slot claimed once in the warehouse.

``schedule_slots`` holds one row per cron slot ``(job, scheduled_for)`` a scheduler took
on. Claiming a slot is an insert under the primary key, after checking in the same write
transaction that no later slot of the job is taken, so ``auterity schedule run`` (the
daemon) and ``auterity schedule run-due`` (system cron) never both run one slot. A claim
names its process (``host:pid``) and its ``attempt``; a slot still claimed by a process of
this host that is gone was cut short (:func:`stranded_slots`) and is taken over with a
compare-and-set on its row (:func:`take_over`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from auterity import reports, warehouse
from auterity.reports.schedule import Job
from auterity.warehouse import schema

SINCE_KEY = "schedule.since."

log = logging.getLogger("auterity.reports.scheduler")


DELIVERY_STATUSES = (
    "sent",
    "skipped",
    "delivery_failed",
    "failure_sent",
    "failure_not_sent",
    "retried",
)


STRANDED = ("claimed", "interrupted")
"""Slot states that, with the claiming process gone, mean its run was cut short."""


MAX_ATTEMPTS = 2
"""A slot cut short runs again once; cut short again, it is reported, not re-run."""


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, as an aware UTC datetime (the scheduler's default clock)."""
    return datetime.now(UTC)


def naive_utc(moment: datetime) -> datetime:
    """UTC without a zone: the storage convention."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def aware_utc(stored: datetime) -> datetime:
    """A stored (naive UTC) time as an aware one."""
    return stored.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Slot:
    """One cron slot of a job: the (UTC) time it stands for, and which attempt at it this is
    (2 for its one re-run after an interruption)."""

    job: Job
    scheduled_for: datetime
    attempt: int = 1


_TICK = timedelta(microseconds=1)


def first_fire_after(job: Job, after: datetime) -> datetime | None:
    """The job's first fire time strictly after ``after`` (aware UTC), or None."""
    trigger = job.trigger()
    # APScheduler returns the first fire time at or after the next whole second.
    fire = trigger.get_next_fire_time(None, (after + _TICK).astimezone(trigger.timezone))
    return None if fire is None else fire.astimezone(UTC)


def fire_times(job: Job, after: datetime, until: datetime) -> list[datetime]:
    """The job's fire times in ``(after, until]``, as aware UTC datetimes (APScheduler's)."""
    out: list[datetime] = []
    fire = first_fire_after(job, after)
    while fire is not None and fire <= until:
        out.append(fire)
        fire = first_fire_after(job, fire)
    return out


def job_state(url: str | None) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """(last claimed slot per job, first-seen time per job), both aware UTC."""
    slots, meta, runs = schema.schedule_slots, schema.warehouse_meta, schema.report_runs
    with warehouse.connect(url) as conn:
        last = {
            job: aware_utc(when)
            for job, when in conn.execute(
                sa.select(slots.c.job_name, sa.func.max(slots.c.scheduled_for)).group_by(
                    slots.c.job_name
                )
            )
        }
        # report_runs survives a full data rebuild; count its slots too.
        for job, when in conn.execute(
            sa.select(runs.c.job_id, sa.func.max(runs.c.scheduled_for))
            .where(runs.c.scheduled_for.is_not(None))
            .group_by(runs.c.job_id)
        ):
            if job and when is not None and (job not in last or aware_utc(when) > last[job]):
                last[job] = aware_utc(when)
        since = {
            key[len(SINCE_KEY) :]: datetime.fromisoformat(value)
            for key, value in conn.execute(
                sa.select(meta.c.key, meta.c.value).where(meta.c.key.like(f"{SINCE_KEY}%"))
            )
        }
    return last, since


def claim(slot: Slot, *, url: str | None = None) -> bool:
    """Take a slot for this process; False if it (or a later slot of the job) is taken.

    The check and the insert share one write transaction; the primary key
    ``(job_name, scheduled_for)`` refuses a second claim of the same slot even between
    PostgreSQL sessions, and a per-job advisory lock orders claims there.
    """
    slots = schema.schedule_slots
    when = naive_utc(slot.scheduled_for)
    try:
        with warehouse.connect(url, write=True) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"auterity_schedule:{slot.job.name}"},
                )
            latest = conn.execute(
                sa.select(sa.func.max(slots.c.scheduled_for)).where(
                    slots.c.job_name == slot.job.name
                )
            ).scalar()
            if latest is not None and latest >= when:
                return False
            conn.execute(
                sa.insert(slots).values(
                    job_name=slot.job.name,
                    scheduled_for=when,
                    status="claimed",
                    claimed_at=naive_utc(utc_now()),
                    claimed_by=f"{socket.gethostname()}:{os.getpid()}",
                )
            )
    except sa.exc.IntegrityError:
        return False
    return True


def finish_slot(
    slot: Slot, status: str, run_id: str | None, detail: str | None, url: str | None
) -> None:
    """Record how a claimed slot ended."""
    slots = schema.schedule_slots
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.update(slots)
            .where(
                slots.c.job_name == slot.job.name,
                slots.c.scheduled_for == naive_utc(slot.scheduled_for),
            )
            .values(status=status, run_id=run_id, detail=detail)
        )


def slot_history(url: str | None = None, *, job: str | None = None) -> list[dict[str, Any]]:
    """Claimed slots, newest first, as plain dicts."""
    slots = schema.schedule_slots
    query = sa.select(slots).order_by(slots.c.scheduled_for.desc())
    if job:
        query = query.where(slots.c.job_name == job)
    with warehouse.connect(url) as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def claimer() -> str:
    """How this process signs its claims: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def stranded_slots(url: str | None = None) -> list[Any]:
    """Slots whose run was cut short: claimed (or stopped) by a process of this host that is gone.

    A claim names its process (``host:pid``); while that process lives its slot is its own.
    Claims made on another host are left to a scheduler there (their processes cannot be
    seen from here).
    """
    slots = schema.schedule_slots
    host = socket.gethostname()
    with warehouse.connect(url) as conn:
        rows = conn.execute(sa.select(slots).where(slots.c.status.in_(STRANDED))).all()
    stranded = []
    for row in rows:
        owner, _, pid = (row.claimed_by or "").rpartition(":")
        if owner == host and pid.isdigit() and not reports.process_alive(int(pid)):
            stranded.append(row)
    return sorted(stranded, key=lambda r: (r.scheduled_for, r.job_name))


def take_over(row: Any, status: str, attempt: int, detail: str, url: str | None) -> bool:
    """Take a stranded slot for this process; True if this process won it.

    A compare-and-set on the state the slot was left in (status, attempt, claimer): of
    two schedulers taking it over at once, the second finds it changed and gets False
    (PostgreSQL re-checks the condition after the first commits; DuckDB refuses the second
    writer of the row, or runs them one after the other).
    """
    slots = schema.schedule_slots
    try:
        with warehouse.connect(url, write=True) as conn:
            result = conn.execute(
                sa.update(slots)
                .where(
                    slots.c.job_name == row.job_name,
                    slots.c.scheduled_for == row.scheduled_for,
                    slots.c.status == row.status,
                    slots.c.attempt == row.attempt,
                    slots.c.claimed_by == row.claimed_by,
                )
                .values(
                    status=status,
                    attempt=attempt,
                    claimed_by=claimer(),
                    claimed_at=naive_utc(utc_now()),
                    detail=detail,
                )
            )
            return result.rowcount == 1
    except sa.exc.DBAPIError as exc:  # two writers of one row: the other one won
        log.info("slot %s %s taken by another scheduler (%s)", row.job_name, row.scheduled_for, exc)
        return False


def slot_run(job: str, scheduled_for: datetime, url: str | None) -> Any:
    """The newest recorded run of a slot (run_id, status, delivery_status), or None."""
    runs = schema.report_runs
    with warehouse.connect(url) as conn:
        return conn.execute(
            sa.select(runs.c.run_id, runs.c.status, runs.c.delivery_status, runs.c.error_message)
            .where(runs.c.job_id == job, runs.c.scheduled_for == scheduled_for)
            .order_by(runs.c.started_at.desc())
            .limit(1)
        ).first()
