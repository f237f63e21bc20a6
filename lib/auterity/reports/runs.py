"""Run records: the ``report_runs`` rows, their listing, recovery and retention.

Every run is a ``report_runs`` row (who ran what, with which parameters, how it ended,
where the files are). A run whose process dies is closed as failed by the next run or
listing (:func:`recover_interrupted`), so nothing stays "running" forever. Per notebook and
parameter set, the newest ``AUTERITY_KEEP_RUNS`` successful runs and, counted apart, the
newest ``AUTERITY_KEEP_FAILED_RUNS`` failed ones are kept; older ones are deleted and marked
pruned (:func:`prune`); :func:`write_index` writes ``reports/index.html``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from auterity import warehouse
from auterity._time import utcnow
from auterity.config import get_settings, reports_dir
from auterity.errors import ConfigError
from auterity.escape import html_attr, html_text
from auterity.redact import mask_secrets, mask_values
from auterity.warehouse import schema

log = logging.getLogger("auterity.reports")


@dataclass
class RunRecord:
    """How one run ended and where its files are."""

    run_id: str
    notebook: str
    parameter_set: str | None
    parameters: dict[str, Any]
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    duration_s: float | None = None
    error_cell: int | None = None
    error_message: str | None = None
    output_dir: Path | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    scheduled_for: datetime | None = None
    job_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    acting_user: str | None = None
    """The user the run read as (``--as``); None: the process's own user, unscoped."""
    read_as_role: str | None = None
    """``acting_user``'s role when the run started (None when unscoped)."""

    @property
    def ok(self) -> bool:
        """True if the notebook ran to the end."""
        return self.status == "ok"


def keep_runs() -> int:
    """How many runs to keep per notebook and parameter set (``AUTERITY_KEEP_RUNS``)."""
    return get_settings().keep_runs


def record_start(record: RunRecord, url: str | None) -> None:
    """Insert the run's row as 'running', with this process as its worker."""
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.insert(schema.report_runs).values(
                run_id=record.run_id,
                notebook=record.notebook,
                parameter_set=record.parameter_set,
                parameters=json.dumps(mask_values(record.parameters), sort_keys=True, default=str),
                trigger=record.trigger,
                job_id=record.job_id,
                acting_user=record.acting_user or get_settings().user,
                status="running",
                started_at=record.started_at,
                output_dir=str(record.output_dir),
                worker_host=socket.gethostname(),
                worker_pid=os.getpid(),
                scheduled_for=record.scheduled_for,
                pruned=False,
                read_as=record.acting_user,
                read_as_role=record.read_as_role if record.acting_user else None,
            )
        )


def record_end(record: RunRecord, url: str | None, job_id: str | None = None) -> None:
    """Store how the run ended, and an audit row."""
    runs = schema.report_runs
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.update(runs)
            .where(runs.c.run_id == record.run_id)
            .values(
                status=record.status,
                finished_at=record.finished_at,
                duration_s=record.duration_s,
                error_cell=record.error_cell,
                error_message=mask_secrets(record.error_message) if record.error_message else None,
                outputs=json.dumps(record.outputs, sort_keys=True),
            )
        )
        warehouse.audit(
            conn,
            "report.run",
            object_type="report_run",
            object_id=record.run_id,
            details={
                "notebook": record.notebook,
                "status": record.status,
                "parameter_set": record.parameter_set,
                "trigger": record.trigger,
                "job_id": job_id,
            },
        )


def process_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(url: str | None = None) -> int:
    """Close runs left 'running' by a process of this host that no longer exists.

    Returns
    -------
    int
        How many runs were marked failed.
    """
    runs = schema.report_runs
    host = socket.gethostname()
    with warehouse.connect(url) as conn:
        stale = conn.execute(
            sa.select(runs.c.run_id, runs.c.worker_pid, runs.c.started_at).where(
                runs.c.status == "running", runs.c.worker_host == host
            )
        ).all()
    dead = [r for r in stale if r.worker_pid is None or not process_alive(r.worker_pid)]
    if not dead:
        return 0
    with warehouse.connect(url, write=True) as conn:
        _close_interrupted(
            conn,
            dead,
            lambda row: (
                f"the process running it (pid {row.worker_pid}) ended without recording a result"
            ),
        )
    return len(dead)


def _close_interrupted(
    conn: sa.Connection, rows: Sequence[Any], reason: str | Callable[[Any], str]
) -> None:
    """Record ``rows`` (with ``run_id``, ``started_at``) as failed: 'interrupted: <reason>'.

    ``reason`` is a string, or a callable giving the reason of one row.
    """
    runs = schema.report_runs
    now = utcnow()
    for row in rows:
        why = reason(row) if callable(reason) else reason
        conn.execute(
            sa.update(runs)
            .where(runs.c.run_id == row.run_id)
            .values(
                status="failed",
                finished_at=now,
                duration_s=(now - row.started_at).total_seconds(),
                error_message=f"interrupted: {why}",
            )
        )


def list_runs(
    url: str | None = None,
    *,
    notebook: str | None = None,
    run_id: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Recorded runs, newest first, as plain dicts (JSON-ready); only ``notebook``'s or
    the run ``run_id`` when given."""
    recover_interrupted(url)
    runs = schema.report_runs
    query = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
    if notebook:
        query = query.where(runs.c.notebook == notebook)
    if run_id:
        query = query.where(runs.c.run_id == run_id)
    with warehouse.connect(url) as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        for key in ("parameters", "outputs"):
            row[key] = json.loads(row[key]) if row[key] else {}
        # Stored masked since issue 12; masking on read covers rows recorded before.
        row["parameters"] = mask_values(row["parameters"])
        for key in ("error_message", "delivery_error"):
            if row[key]:
                row[key] = mask_secrets(row[key])
        for key in ("started_at", "finished_at", "scheduled_for"):
            if row[key] is not None:
                row[key] = row[key].isoformat(timespec="seconds")
    return rows


def record_delivery(
    run_id: str, status: str, error: str | None = None, *, url: str | None = None
) -> None:
    """Store how a run's email went (``sent``, ``skipped``, ``delivery_failed`` ...)."""
    runs = schema.report_runs
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.update(runs)
            .where(runs.c.run_id == run_id)
            .values(delivery_status=status, delivery_error=mask_secrets(error) if error else None)
        )
        warehouse.audit(
            conn,
            "report.email",
            object_type="report_run",
            object_id=run_id,
            details={"status": status, "error": mask_secrets(error) if error else None},
        )


def get_run(run_id: str, url: str | None = None) -> RunRecord:
    """A recorded run as a :class:`RunRecord` (its partial notebook found if the run died).

    Raises
    ------
    ConfigError
        If there is no such run.
    """
    runs = schema.report_runs
    with warehouse.connect(url) as conn:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    if row is None:
        raise ConfigError(f"no recorded run {run_id!r}")
    outputs = json.loads(row.outputs) if row.outputs else {}
    folder = Path(row.output_dir) if row.output_dir else None
    partial = folder / f"{row.notebook}.ipynb" if folder else None
    if "notebook" not in outputs and partial is not None and partial.is_file():
        outputs["notebook"] = str(partial)  # a killed run recorded no outputs
    return RunRecord(
        row.run_id,
        row.notebook,
        row.parameter_set,
        json.loads(row.parameters) if row.parameters else {},
        row.trigger,
        row.status,
        row.started_at,
        finished_at=row.finished_at,
        duration_s=row.duration_s,
        error_cell=row.error_cell,
        error_message=row.error_message,
        output_dir=folder,
        outputs=outputs,
        scheduled_for=row.scheduled_for,
        job_id=row.job_id,
        acting_user=row.read_as,
        read_as_role=row.read_as_role,
    )


def record_unstarted_run(
    notebook: str,
    parameter_set: str | None,
    *,
    job_id: str,
    scheduled_for: datetime,
    reason: str,
    url: str | None = None,
) -> str:
    """Record a scheduled run that never started (its scheduler died first) as failed.

    So the slot has a run record to carry its delivery status. Returns the run id.
    """
    now = utcnow()
    run_id = uuid.uuid4().hex
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.insert(schema.report_runs).values(
                run_id=run_id,
                notebook=notebook,
                parameter_set=parameter_set,
                parameters="{}",
                trigger="schedule",
                job_id=job_id,
                acting_user=get_settings().user,
                status="failed",
                started_at=now,
                finished_at=now,
                duration_s=0.0,
                error_message=mask_secrets(f"interrupted: {reason}"),
                worker_host=socket.gethostname(),
                worker_pid=os.getpid(),
                scheduled_for=scheduled_for,
                pruned=False,
            )
        )
    return run_id


def mark_interrupted(reason: str, *, url: str | None = None) -> int:
    """Close the runs this process still has 'running' as failed with ``reason``.

    For a scheduler stopping before its reports finished.
    """
    runs = schema.report_runs
    mine = sa.and_(
        runs.c.status == "running",
        runs.c.worker_host == socket.gethostname(),
        runs.c.worker_pid == os.getpid(),
    )
    with warehouse.connect(url, write=True) as conn:
        rows = conn.execute(sa.select(runs.c.run_id, runs.c.started_at).where(mine)).all()
        _close_interrupted(conn, rows, reason)
    return len(rows)


def prune(
    notebook: str,
    parameter_set: str | None,
    *,
    keep: int,
    keep_failed: int | None = None,
    url: str | None = None,
) -> int:
    """Delete the outputs of old runs of one notebook and parameter set; mark them pruned.

    Successful and failed runs are counted apart: the newest ``keep`` successful runs are
    always kept, whatever failed after them (a failure streak, e.g. through a database
    outage, must not delete the last good reports), and the newest ``keep_failed`` failed
    runs besides (default ``AUTERITY_KEEP_FAILED_RUNS``). Running runs are never touched.

    Returns
    -------
    int
        How many runs were pruned.
    """
    if keep_failed is None:
        keep_failed = get_settings().keep_failed_runs
    runs = schema.report_runs
    same_set = (
        runs.c.parameter_set == parameter_set
        if parameter_set is not None
        else runs.c.parameter_set.is_(None)
    )
    with warehouse.connect(url) as conn:
        rows = conn.execute(
            sa.select(runs.c.run_id, runs.c.output_dir, runs.c.status)
            .where(
                runs.c.notebook == notebook,
                same_set,
                runs.c.pruned.is_(False),
                runs.c.status != "running",
            )
            .order_by(runs.c.started_at.desc())
        ).all()
    good = [r for r in rows if r.status == "ok"]
    bad = [r for r in rows if r.status != "ok"]
    old = good[keep:] + bad[keep_failed:]
    if not old:
        return 0
    root = reports_dir().resolve()
    for row in old:
        folder = Path(row.output_dir or "").resolve()
        if row.output_dir and root in folder.parents:  # never delete outside reports/
            shutil.rmtree(folder, ignore_errors=True)
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.update(runs).where(runs.c.run_id.in_([r.run_id for r in old])).values(pruned=True)
        )
    return len(old)


def write_index(url: str | None = None) -> Path:
    """Write ``reports/index.html``: runs by notebook and parameter set, newest first."""
    rows = [r for r in list_runs(url, limit=1000) if not r["pruned"]]
    root = reports_dir()
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["notebook"], row["parameter_set"] or "defaults"), []).append(row)
    parts = []
    for (nb, pset), items in sorted(groups.items()):
        lines = []
        for r in items:
            links = []
            for kind in ("html", "pdf", "notebook"):
                target = r["outputs"].get(kind)
                if target and Path(target).exists():
                    rel = os.path.relpath(target, root)
                    href = html_attr(quote(Path(rel).as_posix()))
                    links.append(f'<a href="{href}">{kind.upper()}</a>')
            error = html_text(r["error_message"] or "")
            duration = "" if r["duration_s"] is None else f"{r['duration_s']:.1f} s"
            lines.append(
                f'<tr class="{html_attr(r["status"])}"><td>{html_text(r["started_at"])}</td>'
                f"<td>{html_text(r['status'])}</td><td>{html_text(r['trigger'])}</td>"
                f"<td>{duration}</td><td>{' · '.join(links)}</td><td>{error}</td></tr>"
            )
        parts.append(
            f"<h2>{html_text(nb)} <small>{html_text(pset)}</small></h2><table>"
            "<tr><th>started (UTC)</th><th>status</th><th>trigger</th><th>duration</th>"
            f"<th>outputs</th><th>error</th></tr>{''.join(lines)}</table>"
        )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Auterity reports</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}"
        "table{border-collapse:collapse;margin-bottom:2rem}"
        "td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}"
        "tr.failed td{background:#fde8e8}small{color:#666;font-weight:normal}"
        "@media (prefers-color-scheme: dark){body{background:#111;color:#eee}"
        "tr.failed td{background:#4a1d1d}}</style></head><body>"
        f"<h1>Reports</h1><p>{len(rows)} runs. Generated {utcnow():%Y-%m-%d %H:%M} UTC.</p>"
        f"{''.join(parts) or '<p>No runs yet: <code>auterity run --all</code>.</p>'}"
        "</body></html>"
    )
    root.mkdir(parents=True, exist_ok=True)
    target = root / "index.html"
    target.write_text(page, encoding="utf-8")
    return target
