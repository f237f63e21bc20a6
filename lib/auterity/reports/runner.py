"""Report runs: execute a notebook with Papermill, render HTML and PDF, record the run.

Each run writes a folder ``reports/<notebook>/<stamp>/`` holding the executed notebook, an
HTML report (:mod:`~auterity.reports.render`) and a PDF, and a ``report_runs`` row
(:mod:`~auterity.reports.runs`). A failing notebook keeps its executed notebook up to the
failing cell, is recorded as ``failed`` with the cell and the message, and still gets an
HTML report (the failure email attaches it). Parameters and errors are masked before they
are written anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from auterity import access, config, warehouse
from auterity._time import utcnow
from auterity.config import get_settings, reports_dir
from auterity.errors import ConfigError
from auterity.redact import mask_secrets, mask_values, may_hold_secret
from auterity.reports import params
from auterity.reports.render import VALUES_MIME, render_html, render_pdf
from auterity.reports.runs import (
    RunRecord,
    prune,
    record_end,
    record_start,
    recover_interrupted,
    write_index,
)
from auterity.warehouse import schema

log = logging.getLogger("auterity.reports")


def record_value(name: str, value: Any) -> None:
    """Record a named value from inside a notebook for whoever ran it (e.g. the scheduler).

    The value travels as a display output of type :data:`VALUES_MIME` in the executed
    notebook (no file, no environment): ``record_value("anomalies", len(found))`` lets a
    job with ``condition: anomalies`` decide whether to send its email. Values must be
    JSON-serialisable; reports do not show them.
    """
    from IPython.display import display

    json.dumps(value)  # refuse what cannot travel, in the cell that records it
    display({VALUES_MIME: {name: value}}, raw=True)


def recorded_values(executed: str | Path) -> dict[str, Any]:
    """The values an executed notebook recorded with :func:`record_value` (later win)."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    values: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {}).get(VALUES_MIME)
            if isinstance(data, dict):
                values.update(data)
    return values


MASKED_SCHEME = "auterity-masked:"
"""Prefix of an output path papermill writes through :class:`MaskedNotebookWriter`."""


_masking_registered = False


def _mask_node(node: Any, key: str = "") -> Any:
    """A notebook (or part of one) with every string masked; image data is left alone."""
    if isinstance(node, str):
        return node if key.startswith("image/") else mask_secrets(node)
    if isinstance(node, dict):
        for name, value in node.items():
            node[name] = _mask_node(value, name)
        return node
    if isinstance(node, list):
        return [_mask_node(value, key) for value in node]
    return node


def mask_notebook(text: str) -> str:
    """A notebook's JSON with :func:`auterity.redact.mask_secrets` applied to every text.

    Sources (the injected-parameters cell too), outputs (tracebacks, printed values,
    HTML) and metadata (papermill's copy of the parameters) are masked; image data is not
    searched. A notebook with nothing to mask comes back unchanged, without being parsed.
    """
    if not may_hold_secret(text):
        return text
    import nbformat

    return nbformat.writes(_mask_node(nbformat.reads(text, as_version=4)))


class MaskedNotebookWriter:
    """Papermill I/O handler writing ``auterity-masked:<path>`` to ``<path>``, masked.

    Papermill saves the executed notebook as every cell starts and ends; through this
    handler no save puts an unmasked secret on disk, not even that of a run killed halfway,
    and each save replaces the file whole (a reader never sees half a notebook).
    """

    @staticmethod
    def _path(path: str) -> Path:
        """The real file behind a prefixed path."""
        return Path(path[len(MASKED_SCHEME) :])

    def read(self, path: str) -> str:
        """The notebook's text."""
        return self._path(path).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        """Files in a folder (papermill's handler interface)."""
        return [MASKED_SCHEME + str(p) for p in self._path(path).iterdir()]

    def write(self, buf: str, path: str) -> None:
        """Write the notebook with secrets masked (and its recorded output path unprefixed)."""
        target = self._path(path)
        text = buf.replace(json.dumps(path)[1:-1], json.dumps(str(target))[1:-1])
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.write_text(mask_notebook(text), encoding="utf-8")
        os.replace(partial, target)

    def pretty_path(self, path: str) -> str:
        """The path as logs show it."""
        return str(self._path(path))


def _register_masking() -> None:
    """Make papermill write ``auterity-masked:`` paths through the masking handler (once)."""
    global _masking_registered
    if not _masking_registered:
        from papermill.iorw import papermill_io

        papermill_io.register(MASKED_SCHEME, MaskedNotebookWriter())
        _masking_registered = True


def _ipc_kernel_manager(env: dict[str, str] | None = None) -> type:
    """A kernel manager whose kernel talks over Unix sockets, not loopback TCP (and gets
    ``env`` on top of this process's environment: ``AUTERITY_AS`` for a run as a user).

    Other local users cannot reach a Unix socket in the private runtime folder, and the
    kernel has no reason to warn (on every run) that its traffic crosses TCP in plain text.
    Each kernel gets sockets of its own name: jupyter_client's default for a manager
    without a connection file is ``kernel-ipc`` in the working directory, which parallel
    runs would share (one client then talks to another run's kernel).
    """
    from jupyter_client import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir

    class IPCKernelManager(AsyncKernelManager):
        def _transport_default(self) -> str:
            return "ipc"

        def _ip_default(self) -> str:
            folder = Path(jupyter_runtime_dir())
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            return str(folder / f"auterity-{uuid.uuid4().hex[:16]}-ipc")

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            if env:
                kw["env"] = {**os.environ, **(kw.get("env") or {}), **env}
            await super().start_kernel(**kw)

    return IPCKernelManager


def _stamp(started: datetime, parameter_set: str | None, run_id: str) -> str:
    """Folder name of a run: sortable time, parameter set, short id."""
    return f"{started:%Y%m%d-%H%M%S}-{parameter_set or 'defaults'}-{run_id[:6]}"


def _running_cell(executed: Path) -> int | None:
    """Execution count of the cell that was running when the run stopped, from the saved notebook.

    Papermill stamps a cell's ``start_time`` as it starts it and saves; a timeout or a dead
    kernel does not mark the cell failed, so the running cell is the last one started. A
    kernel that died at once may not have announced the cell's number: it is then the one
    after the previous cell's (every executed cell takes the next number).
    """
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except (OSError, ValueError):  # never saved, or cut off mid-write
        return None
    started = [
        cell
        for cell in nb.cells
        if cell.cell_type == "code" and cell.metadata.get("papermill", {}).get("start_time")
    ]
    if not started:
        return None
    running = started[-1].get("execution_count")
    if running is None:
        previous = started[-2].get("execution_count") if len(started) > 1 else 0
        running = previous + 1 if previous is not None else None
    return running


def _error_summary(exc: BaseException) -> tuple[int | None, str]:
    """(failing cell's execution count, one-line message) for any run failure."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return exc.exec_count, f"{exc.ename}: {exc.evalue}".strip()
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if name == "DeadKernelError":
        return None, f"the kernel died: {text or 'no reason given'}"
    if name == "CellTimeoutError":
        return None, f"a cell ran longer than the timeout: {text}"
    return None, f"{name}: {text}" if text else name


def _check_run_rate(user: str, role: access.Role, url: str | None) -> None:
    """Refuse a run past the role's ``runs_per_minute`` (counted over the last minute)."""
    limit = role.limits.get("runs_per_minute")
    if limit is None:
        return
    r = schema.report_runs
    since = utcnow() - timedelta(minutes=1)
    with warehouse.connect(url) as conn:
        recent = sorted(
            conn.execute(
                sa.select(r.c.started_at).where(r.c.acting_user == user, r.c.started_at >= since)
            ).scalars()
        )
    if len(recent) >= limit:
        if limit == 0:
            raise access.AccessDenied(
                f"{user!r} (role {role.name}) may not start report runs (runs_per_minute: 0)"
            )
        wait = 60 - (utcnow() - recent[len(recent) - limit]).total_seconds()
        raise access.AccessDenied(
            f"{user!r} (role {role.name}) may start {limit} report run(s) a minute; "
            f"try again in {max(1, int(wait) + 1)} s"
        )


def check_may_run(as_user: str, notebook: str | Path, *, url: str | None = None) -> access.Role:
    """The role of ``as_user`` if it grants running ``notebook`` (a name or path).

    Raises
    ------
    AccessDenied
        ``as_user`` is not an active user, or their role does not grant the notebook.
    """
    stem = params.resolve_notebook(notebook).stem
    _user, role = access.active_user(as_user, url=url)
    if not role.may_run(stem):
        raise access.AccessDenied(
            f"{as_user!r} (role {role.name}) may not run {stem} "
            f"(it may run: {', '.join(role.notebooks or ()) or 'none'})"
        )
    return role


def run(
    notebook: str | Path,
    *,
    params_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    values: dict[str, Any] | None = None,
    trigger: str = "manual",
    job_id: str | None = None,
    pdf: bool = True,
    url: str | None = None,
    scheduled_for: datetime | None = None,
    as_user: str | None = None,
) -> RunRecord:
    """Run a notebook with parameters and record the run.

    Parameters
    ----------
    notebook : str or Path
        Notebook name (``01-business-overview``) or path.
    params_file : path, optional
        A parameter set file (``parameters/<notebook>/<name>.yml``).
    overrides : sequence of str
        ``key=value`` items (the CLI's ``-p``), applied after the file.
    values : dict, optional
        Parameter values from Python (validated like the others), applied last.
    trigger : {"manual", "schedule"}
        What started the run.
    job_id : str, optional
        The schedule job, if any.
    pdf : bool
        Also print a PDF (needs Chromium).
    url : str, optional
        Warehouse URL (runs are recorded there; the notebook reads ``AUTERITY_DB_URL``).
    scheduled_for : datetime, optional
        The cron slot (UTC, naive) a scheduled run stands for.
    as_user : str, optional
        Run as this user of the warehouse: their role must grant the notebook, and the
        kernel reads through their row filters and PII rule (``AUTERITY_AS``).

    Returns
    -------
    RunRecord
        How the run ended and where its outputs are, with the values the notebook
        recorded (:func:`record_value`). A failing notebook does not raise.

    Raises
    ------
    ConfigError
        Bad notebook name or parameters: refused before anything runs.
    AccessDenied
        ``as_user`` is not an active user or their role does not grant the notebook.
    """
    import papermill

    path = params.resolve_notebook(notebook)
    role_name = None
    if as_user is not None:
        role = check_may_run(as_user, path, url=url)
        _check_run_rate(as_user, role, url)
        role_name = role.name
    parameter_values: dict[str, Any] = {}
    set_name = None
    if params_file is not None:
        parameter_values.update(params.load_parameter_set(path, params_file))
        set_name = Path(params_file).stem
    parameter_values.update(params.parse_overrides(path, list(overrides)))
    if values:
        parameter_values.update(params.validate(path, values, "values"))
    if trigger not in ("manual", "schedule"):
        raise ConfigError(f"trigger must be manual or schedule, not {trigger!r}")
    settings = get_settings()
    timeout = settings.run_timeout_s
    warehouse.ensure_schema(url)
    recover_interrupted(url)

    started = utcnow()
    run_id = uuid.uuid4().hex
    out_dir = reports_dir() / path.stem / _stamp(started, set_name, run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = RunRecord(
        run_id,
        path.stem,
        set_name,
        parameter_values,
        trigger,
        "running",
        started,
        output_dir=out_dir,
        scheduled_for=scheduled_for,
        job_id=job_id,
        acting_user=as_user,
        read_as_role=role_name,
    )
    record_start(record, url)
    executed = out_dir / f"{path.stem}.ipynb"
    clock = time.monotonic()
    interrupted: BaseException | None = None
    _register_masking()
    try:
        # The kernel gets the values as given; what is saved, stored and shown is masked.
        papermill.execute_notebook(
            str(path),
            MASKED_SCHEME + str(executed),
            parameters=parameter_values,
            kernel_name="python3",
            progress_bar=False,
            # The kernel starts in the notebook's folder. Not papermill's ``cwd``: that
            # changes this whole process's working directory, which parallel runs in
            # threads then race on (one could leave the process in a run's folder).
            resources={"metadata": {"path": str(path.parent)}},
            execution_timeout=timeout,
            request_save_on_cell_execute=True,
            kernel_manager_class=_ipc_kernel_manager({config.ENV_AS: as_user} if as_user else None),
        )
        record.status = "ok"
    except Exception as exc:  # the notebook's failure is the run's result, not ours
        record.status = "failed"
        record.error_cell, message = _error_summary(exc)
        record.error_message = mask_secrets(message)
        if record.error_cell is None:  # a timeout or a dead kernel: the cell it was running
            record.error_cell = _running_cell(executed)
    except BaseException as exc:  # SIGTERM / Ctrl-C: record, then let it propagate
        record.status = "failed"
        record.error_message = f"interrupted ({type(exc).__name__})"
        interrupted = exc
    finally:
        record.outputs["notebook"] = str(executed)
        if executed.exists() and interrupted is None:
            record.values = recorded_values(executed)
            _render_outputs(record, executed, pdf=pdf, url=url)
        record.finished_at = utcnow()
        record.duration_s = round(time.monotonic() - clock, 3)
        record_end(record, url, job_id)
    if interrupted is not None:
        raise interrupted
    prune(
        path.stem, set_name, keep=settings.keep_runs, keep_failed=settings.keep_failed_runs, url=url
    )
    write_index(url)
    return record


def _render_outputs(record: RunRecord, executed: Path, *, pdf: bool, url: str | None) -> None:
    """HTML (always) and PDF (for successful runs) next to the executed notebook."""
    try:
        html_file = render_html(
            executed,
            executed.with_suffix(".html"),
            parameters=mask_values(record.parameters),
            parameter_set=record.parameter_set,
            freshness=warehouse.data_freshness(url),
            status=record.status,
        )
        record.outputs["html"] = str(html_file)
    except Exception as exc:  # a rendering problem must not lose the run record
        log.exception("HTML export of %s failed", executed)
        record.status = "failed"
        record.error_message = record.error_message or mask_secrets(f"HTML export failed: {exc}")
        return
    if pdf and record.status == "ok":
        try:
            record.outputs["pdf"] = str(render_pdf(html_file, executed.with_suffix(".pdf")))
        except Exception as exc:
            log.warning("PDF of %s not produced: %s", executed, exc)
            reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
            record.outputs["pdf_error"] = mask_secrets(reason)


def run_all(
    *,
    parallel: int | None = None,
    notebook: str | None = None,
    pdf: bool = True,
    url: str | None = None,
    on_done: Callable[[RunRecord, int, int], None] | None = None,
    as_user: str | None = None,
) -> list[RunRecord]:
    """Run every committed parameter set (of one notebook, or all), in parallel.

    Parameters
    ----------
    parallel : int, optional
        Concurrent runs (default: the number of CPU cores).
    notebook : str, optional
        Only this notebook's parameter sets.
    on_done : callable, optional
        ``on_done(record, finished, total)`` after each run, for progress displays.
    as_user : str, optional
        Run as this user (see :func:`run`): only the notebooks their role grants.

    Returns
    -------
    list of RunRecord
        One per parameter set, in completion order; failures included.
    """
    jobs = params.parameter_sets(notebook)
    if not jobs:
        raise ConfigError("no parameter sets found under parameters/<notebook>/*.yml")
    if as_user is not None:
        _user, role = access.active_user(as_user, url=url)
        jobs = [(nb, file) for nb, file in jobs if role.may_run(Path(nb).stem)]
        if not jobs:
            raise access.AccessDenied(f"{as_user!r} (role {role.name}) may run none of them")
    for nb, file in jobs:  # refuse bad files before running anything
        params.load_parameter_set(nb, file)
    workers = max(1, parallel or os.cpu_count() or 1)
    records: list[RunRecord] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(run, nb, params_file=file, pdf=pdf, url=url, as_user=as_user)
            for nb, file in jobs
        ]
        for future in as_completed(futures):
            record = future.result()
            records.append(record)
            if on_done is not None:
                on_done(record, len(records), len(jobs))
    return records
