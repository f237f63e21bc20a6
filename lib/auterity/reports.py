"""Report runs: execute a notebook with Papermill, render HTML and PDF, record the run.

Every run is a ``report_runs`` row (who ran what, with which parameters, how it ended,
where the files are) and a folder ``reports/<notebook>/<stamp>/`` holding the executed
notebook, an HTML report without code (title, parameters, generated-at, data freshness,
table of contents; charts drawn offline) and a PDF printed by headless Chromium.

A failing notebook keeps its executed notebook up to the failing cell, is recorded as
``failed`` with the cell and the message, and still gets an HTML report (the failure
email attaches it). A run whose process dies is closed as failed by the next run or
listing (``recover_interrupted``), so nothing stays "running" forever. Per notebook and
parameter set, the newest ``AUTERITY_KEEP_RUNS`` successful runs and, counted apart, the
newest ``AUTERITY_KEEP_FAILED_RUNS`` failed ones are kept; older ones are deleted and marked
pruned.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from auterity import params, schema, warehouse
from auterity.config import get_settings, reports_dir
from auterity.errors import ConfigError
from auterity.escape import html_attr, html_text
from auterity.redact import mask_secrets, mask_values, may_hold_secret

log = logging.getLogger("auterity.reports")

TEMPLATES = Path(__file__).parent / "templates" / "nbconvert"
ENV_CHROMIUM = "AUTERITY_CHROMIUM"
CHROMIUM_ARGS = [
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags of every headless Chromium the project starts (PDFs, tests, benchmarks). The
sandbox is Playwright's ``chromium_sandbox`` choice: see :func:`chromium_sandbox`."""

PDF_ARGS = [
    *CHROMIUM_ARGS,
    # No network for the printer, below what request interception sees (preconnects,
    # DNS prefetch, WebRTC): no host name resolves (IP literals included), any connection
    # would go through a proxy that does not exist, and WebRTC may not send UDP itself.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://no-network.invalid:9",
    "--proxy-bypass-list=<-loopback>",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--dns-prefetch-disable",
]
"""Flags of the Chromium that prints PDFs (:func:`render_pdf`)."""

REPORT_ORIGIN = "http://auterity-report.invalid"
"""Where :func:`render_pdf` shows a report: a name that never resolves, answered only by
the printer's own request handler from the report's folder."""

REPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; frame-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'"
)
"""Content security policy of a report being printed: its inline scripts (charts; Vega
compiles its expressions with ``Function``, hence ``unsafe-eval``) and styles run, images,
fonts and fetches come from the report's folder (or ``data:``), and nothing is framed."""


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

    @property
    def ok(self) -> bool:
        """True if the notebook ran to the end."""
        return self.status == "ok"


def _utcnow() -> datetime:
    """Now, UTC, without a zone (the storage convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


def keep_runs() -> int:
    """How many runs to keep per notebook and parameter set (``AUTERITY_KEEP_RUNS``)."""
    return get_settings().keep_runs


# --------------------------------------------------------------------------- records


def _record_start(record: RunRecord, url: str | None) -> None:
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
                acting_user=get_settings().user,
                status="running",
                started_at=record.started_at,
                output_dir=str(record.output_dir),
                worker_host=socket.gethostname(),
                worker_pid=os.getpid(),
                scheduled_for=record.scheduled_for,
                pruned=False,
            )
        )


def _record_end(record: RunRecord, url: str | None, job_id: str | None = None) -> None:
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
    now = _utcnow()
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
    url: str | None = None, *, notebook: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Recorded runs, newest first, as plain dicts (JSON-ready)."""
    recover_interrupted(url)
    runs = schema.report_runs
    query = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
    if notebook:
        query = query.where(runs.c.notebook == notebook)
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
    now = _utcnow()
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


# --------------------------------------------------------------------------- recorded values

VALUES_MIME = "application/vnd.auterity.values+json"
"""Output type of :func:`record_value`: invisible in reports, read back after the run."""


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


# --------------------------------------------------------------------------- masking

MASKED_SCHEME = "auterity-masked:"
"""Prefix of an output path papermill writes through :class:`_MaskedNotebookWriter`."""
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


class _MaskedNotebookWriter:
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

        papermill_io.register(MASKED_SCHEME, _MaskedNotebookWriter())
        _masking_registered = True


# --------------------------------------------------------------------------- rendering


def _title(nb: Any, fallback: str) -> str:
    """The notebook's first markdown H1, else the fallback."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _toc(body: str) -> list[dict[str, str]]:
    """Table of contents from the rendered H2 headings (their ids come from nbconvert)."""
    items = []
    for match in re.finditer(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', body, flags=re.S):
        text = re.sub(r"<[^>]+>", "", match.group(2)).replace("¶", "").strip()
        items.append({"id": html.unescape(match.group(1)), "text": html.unescape(text)})
    return items


def data_freshness(url: str | None = None) -> datetime | None:
    """The newest event time (UTC) across the analysed tables."""
    summary = warehouse.table_summary(url)
    lasts = [info["last"] for info in summary.values() if info.get("last") is not None]
    return max(lasts) if lasts else None


def _ipc_kernel_manager() -> type:
    """A kernel manager whose kernel talks over Unix sockets, not loopback TCP.

    Other local users cannot reach a Unix socket in the private runtime folder, and the
    kernel has no reason to warn (on every run) that its traffic crosses TCP in plain text.
    Each kernel gets sockets of its own name: jupyter_client's default for a manager
    without a connection file is ``kernel-ipc`` in the working directory, which parallel
    runs would share (one client then talks to another run's kernel).
    """
    from jupyter_client import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir

    class IPCKernelManager(AsyncKernelManager):  # type: ignore[misc]
        def _transport_default(self) -> str:
            return "ipc"

        def _ip_default(self) -> str:
            folder = Path(jupyter_runtime_dir())
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            return str(folder / f"auterity-{uuid.uuid4().hex[:16]}-ipc")

    return IPCKernelManager


def render_html(
    executed: Path,
    target: Path,
    *,
    title: str | None = None,
    parameters: dict[str, Any] | None = None,
    parameter_set: str | None = None,
    freshness: datetime | None = None,
    status: str = "ok",
) -> Path:
    """Render an executed notebook to an HTML report without code cells.

    The page carries its title, the parameters used, when it was generated, the data
    freshness and a table of contents; it loads nothing from the network.

    Markdown (cells and ``text/markdown`` outputs) is sanitised (nbconvert's
    ``sanitize_html`` with :func:`auterity.escape.clean_html` as its filter): values the
    notebooks put into Markdown are escaped already (:func:`auterity.escape.md_text`),
    and whatever HTML a Markdown output still holds loses scripts, handlers, images and
    frames. ``text/html`` outputs are kept as they are: they come from auterity's own
    builders, which escape every value, and the charts among them need their scripts.
    """
    import nbformat
    from nbconvert import HTMLExporter

    from auterity.escape import clean_html

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:  # recorded values are for the caller, not the reader
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if VALUES_MIME not in o.get("data", {})]
    exporter = HTMLExporter(
        template_name="auterity",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        sanitize_html=True,
        filters={"clean_html": clean_html},
    )
    meta = {
        "title": title or _title(nb, executed.stem),
        "parameters": parameters or {},
        "parameter_set": parameter_set or "defaults",
        "generated_at": _utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "freshness": freshness.strftime("%Y-%m-%d %H:%M UTC") if freshness else "no data",
        "status": status,
    }
    body, _ = exporter.from_notebook_node(nb, resources={"auterity": meta})
    # The contents come from the rendered headings (their ids are nbconvert's), so they
    # are filled into the template's placeholder after the one rendering pass.
    links = "".join(
        f'<a href="#{html_attr(item["id"])}">{html_text(item["text"])}</a>' for item in _toc(body)
    )
    nav = f'<nav class="au-toc" aria-label="Contents">{links}</nav>' if links else ""
    target.write_text(body.replace("<!--auterity:toc-->", nav, 1), encoding="utf-8")
    return target


def chromium_path() -> str | None:
    """The Chromium binary used for PDFs (``AUTERITY_CHROMIUM``, default /usr/bin/chromium)."""
    path = os.environ.get(ENV_CHROMIUM, "/usr/bin/chromium")
    return path if Path(path).is_file() else None


def chromium_sandbox() -> bool:
    """Whether Chromium should run with its sandbox: yes, unless this process is root.

    Chromium refuses to start as root with its sandbox on ("Running as root without
    --no-sandbox is not supported"), and containers and CI runners often run as root;
    there the browser runs without it, and the printer's other walls (no network, no
    ``file:`` access, a content security policy) remain. As any other user the sandbox
    is on; if it cannot start (no user namespaces, no setuid helper) :func:`render_pdf`
    says so in the log and prints without it.
    """
    return os.geteuid() != 0


def _launch(pw: Any, executable: str) -> Any:
    """Chromium for printing: sandboxed where that works (see :func:`chromium_sandbox`)."""
    if chromium_sandbox():
        try:
            return pw.chromium.launch(
                executable_path=executable, args=PDF_ARGS, chromium_sandbox=True
            )
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            log.warning("Chromium did not start with its sandbox (%s); printing without", first)
    return pw.chromium.launch(executable_path=executable, args=PDF_ARGS, chromium_sandbox=False)


def _serve_from(folder: Path) -> Callable[[Any], None]:
    """A Playwright route handler: GETs of :data:`REPORT_ORIGIN` answered with files inside
    ``folder`` (symlinks resolved), every other request refused."""
    import mimetypes
    from urllib.parse import unquote, urlsplit

    root = folder.resolve()

    def handle(route: Any) -> None:
        request = route.request
        parts = urlsplit(request.url)
        if f"{parts.scheme}://{parts.netloc}" != REPORT_ORIGIN or request.method != "GET":
            route.abort("blockedbyclient")
            return
        path = (root / unquote(parts.path).lstrip("/")).resolve()
        if root not in path.parents or not path.is_file():
            route.abort("blockedbyclient")
            return
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        route.fulfill(
            status=200,
            body=path.read_bytes(),
            content_type=kind,
            headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"},
        )

    return handle


def render_pdf(html_file: Path, target: Path, *, timeout_s: float = 60) -> Path:
    """Print an HTML report to PDF in headless Chromium that reads only the report's folder.

    The page is not opened as a ``file:`` URL (which may load any file the process can
    read, e.g. ``<iframe src=../../../.env>``): it is shown at :data:`REPORT_ORIGIN`, whose
    requests are answered from the report's own folder; every other request, WebSocket
    and service worker is refused, ``file:`` URLs are out of reach of an ``http:`` page,
    :data:`REPORT_CSP` allows no frames and no fetch beyond the folder, and the browser
    has no network at all (:data:`PDF_ARGS`). Sandboxed where possible
    (:func:`chromium_sandbox`).

    Waits until every chart has drawn (an ``svg`` or ``canvas`` in each ``.vega-embed``).

    Raises
    ------
    ConfigError
        If Chromium is not installed.
    """
    executable = chromium_path()
    if executable is None:
        raise ConfigError(
            "PDF needs Chromium: install it (apt-get install chromium) or set AUTERITY_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    source = html_file.resolve()
    with sync_playwright() as pw:
        browser = _launch(pw, executable)
        try:
            context = browser.new_context(service_workers="block", accept_downloads=False)
            context.route("**/*", _serve_from(source.parent))
            context.route_web_socket("**/*", lambda ws: ws.close())
            page = context.new_page()
            page.goto(f"{REPORT_ORIGIN}/{quote(source.name)}", wait_until="load")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.vega-embed')]"
                ".every(e => e.querySelector('svg, canvas'))",
                timeout=timeout_s * 1000,
            )
            page.emulate_media(media="print")
            page.pdf(
                path=str(target),
                format="A4",
                print_background=True,
                margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"},
            )
        finally:
            browser.close()
    return target


# --------------------------------------------------------------------------- runs


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

    Returns
    -------
    RunRecord
        How the run ended and where its outputs are, with the values the notebook
        recorded (:func:`record_value`). A failing notebook does not raise.

    Raises
    ------
    ConfigError
        Bad notebook name or parameters: refused before anything runs.
    """
    import papermill

    path = params.resolve_notebook(notebook)
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

    started = _utcnow()
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
    )
    _record_start(record, url)
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
            cwd=str(path.parent),
            execution_timeout=timeout,
            request_save_on_cell_execute=True,
            kernel_manager_class=_ipc_kernel_manager(),
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
        record.finished_at = _utcnow()
        record.duration_s = round(time.monotonic() - clock, 3)
        _record_end(record, url, job_id)
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
            freshness=data_freshness(url),
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
        f"<h1>Reports</h1><p>{len(rows)} runs. Generated {_utcnow():%Y-%m-%d %H:%M} UTC.</p>"
        f"{''.join(parts) or '<p>No runs yet: <code>auterity run --all</code>.</p>'}"
        "</body></html>"
    )
    root.mkdir(parents=True, exist_ok=True)
    target = root / "index.html"
    target.write_text(page, encoding="utf-8")
    return target


def run_all(
    *,
    parallel: int | None = None,
    notebook: str | None = None,
    pdf: bool = True,
    url: str | None = None,
    on_done: Callable[[RunRecord, int, int], None] | None = None,
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

    Returns
    -------
    list of RunRecord
        One per parameter set, in completion order; failures included.
    """
    jobs = params.parameter_sets(notebook)
    if not jobs:
        raise ConfigError("no parameter sets found under parameters/<notebook>/*.yml")
    for nb, file in jobs:  # refuse bad files before running anything
        params.load_parameter_set(nb, file)
    workers = max(1, parallel or os.cpu_count() or 1)
    records: list[RunRecord] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run, nb, params_file=file, pdf=pdf, url=url) for nb, file in jobs]
        for future in as_completed(futures):
            record = future.result()
            records.append(record)
            if on_done is not None:
                on_done(record, len(records), len(jobs))
    return records


__all__ = [
    "MASKED_SCHEME",
    "VALUES_MIME",
    "RunRecord",
    "chromium_sandbox",
    "get_run",
    "list_runs",
    "mark_interrupted",
    "mask_notebook",
    "process_alive",
    "record_delivery",
    "record_unstarted_run",
    "record_value",
    "recorded_values",
    "recover_interrupted",
    "render_html",
    "render_pdf",
    "run",
    "run_all",
    "write_index",
]
