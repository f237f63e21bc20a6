"""``/api/reports``: recorded report runs and their HTML/PDF, for who may see them.

A run's files show what its reader saw (``auterity run --as``): a caller is shown a run
only when that is within what their own role may see (:func:`auterity.access.sees_within`:
no PII they may not see, no rows outside their row filters). A run made as nobody (the
local setup: every row, PII) is shown to unrestricted roles only. Downloading a file is
an export (the ``export`` permission, an audit row).
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from auterity import access, reports
from auterity.api.auth import Caller
from auterity.api.common import (
    API_PREFIX,
    ERRORS,
    Answer,
    Forbidden,
    Paged,
    Signed,
    answer,
    role_of,
    state,
)
from auterity.errors import AuterityError

router = APIRouter(prefix=f"{API_PREFIX}/reports", tags=["reports"], responses=ERRORS)
MAX_RUNS = 5000
"""Newest runs a list looks through."""
SHOWN = (
    "run_id",
    "notebook",
    "parameter_set",
    "parameters",
    "trigger",
    "job_id",
    "status",
    "started_at",
    "finished_at",
    "duration_s",
    "error_cell",
    "error_message",
    "delivery_status",
    "scheduled_for",
    "read_as",
    "pruned",
)
FILES = {"html": "text/html", "pdf": "application/pdf"}


class NotFound(AuterityError):
    """No such run (HTTP 404)."""


def _visible(run: dict[str, Any], who: Caller) -> bool:
    viewer = role_of(who)
    if viewer is None:
        return True
    made_as: access.Role | None = None
    if run.get("read_as"):
        policy = access.load_policy()
        name = str(run.get("read_as_role") or "")
        if name not in policy.roles:
            return viewer.unrestricted  # a role since removed: judged as unscoped
        made_as = policy.role(name)
    return access.sees_within(made_as, viewer)


def _shown(run: dict[str, Any]) -> dict[str, Any]:
    out = {k: run.get(k) for k in SHOWN}
    outputs = run.get("outputs") or {}
    out["links"] = {
        kind: f"{API_PREFIX}/reports/{run['run_id']}/{kind}"
        for kind in FILES
        if kind in outputs and not run.get("pruned")
    }
    return out


def _run(request: Request, who: Caller, run_id: str) -> dict[str, Any]:
    """One run the caller may see: 404 when unknown, 403 (audited) when not theirs to see."""
    found = reports.list_runs(state(request).url, run_id=run_id, limit=1)
    if not found:
        raise NotFound(f"no recorded run {run_id!r}")
    run = found[0]
    if not _visible(run, who):
        access.note_denied(
            who.name,
            "report_run",
            run_id,
            details={"read_as_role": run.get("read_as_role"), "role": who.role},
            url=state(request).url,
        )
        raise Forbidden("this run shows data outside what your role may see")
    return run


@router.get("", response_model=Answer)
def runs(
    request: Request,
    who: Signed,
    paged: Paged,
    notebook: Annotated[str | None, Query(description="Only runs of this notebook.")] = None,
) -> Response:
    """Recorded runs the caller may see, newest first, with links to their HTML and PDF."""
    url = state(request).url

    def compute() -> list[dict[str, Any]]:
        every = reports.list_runs(url, notebook=notebook, limit=MAX_RUNS)
        return [_shown(r) for r in every if _visible(r, who)]

    return answer(request, who, compute, paged=paged, data_only=False)


@router.get("/{run_id}", response_model=Answer)
def run(request: Request, who: Signed, run_id: str) -> Response:
    """One recorded run (403 when it shows more than the caller may see)."""
    found = _run(request, who, run_id)
    return answer(request, who, lambda: _shown(found), data_only=False)


@router.get(
    "/{run_id}/{kind}",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in FILES.values()}}},
)
def run_file(request: Request, who: Signed, run_id: str, kind: Literal["html", "pdf"]) -> Response:
    """A run's HTML or PDF: an export (needs the ``export`` permission; audited)."""
    found = _run(request, who, run_id)
    path = (found.get("outputs") or {}).get(kind)
    if not path or found.get("pruned") or not Path(path).is_file():
        raise NotFound(f"run {run_id!r} has no {kind} (not made, or removed by retention)")
    access.note_export(
        "report_run",
        run_id,
        [kind],
        user=who.acting,
        details={"notebook": found["notebook"]},
        url=state(request).url,
    )
    return FileResponse(path, media_type=FILES[kind], filename=f"{found['notebook']}.{kind}")
