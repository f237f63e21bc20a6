"""Report rendering: the executed notebook as HTML without code, and as PDF via Chromium.

The HTML report has the title, parameters, generated-at, data freshness and a table of
contents; charts are drawn offline and Markdown built from data is sanitised. The PDF is
printed by headless Chromium that sees only the report's own folder and no network.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from auterity import config
from auterity._time import utcnow
from auterity.config import ENV_CHROMIUM
from auterity.errors import ConfigError
from auterity.escape import clean_html, html_attr, html_text

log = logging.getLogger("auterity.reports")


VALUES_MIME = "application/vnd.auterity.values+json"
"""Output type of :func:`record_value`: invisible in reports, read back after the run."""
TEMPLATES = Path(__file__).parent / "templates" / "nbconvert"


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


def report_title(nb: Any, fallback: str) -> str:
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
        "title": title or report_title(nb, executed.stem),
        "parameters": parameters or {},
        "parameter_set": parameter_set or "defaults",
        "generated_at": utcnow().strftime("%Y-%m-%d %H:%M UTC"),
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
    path = config.value(ENV_CHROMIUM) or str(config.declared_default(ENV_CHROMIUM))
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
