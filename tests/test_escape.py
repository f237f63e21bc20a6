"""Escaping helpers, the charts and the report renderer against hostile values, and the
PDF printer's walls (no file outside the report's folder, no network)."""

from __future__ import annotations

import html
import logging
import re
import socket
import threading
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbconvert.filters.markdown import markdown2html

from auterity import charts, escape, reports
from conftest import need_chromium
from untrusted import PAYLOADS, scan_markup, shown, visit

_LINE_BREAKS = re.compile(r"[\n\r\u2028\u2029]")


def _one_line(text: str) -> str:
    """What a value looks like once its line breaks are spaces."""
    return _LINE_BREAKS.sub(" ", text)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("value", PAYLOADS)
def test_html_helpers_leave_no_markup(value: str) -> None:
    page = f"<p>{escape.html_text(value)}</p><p title='{escape.html_attr(value)}'>x</p>"
    assert scan_markup(page) == []
    assert html.unescape(escape.html_text(value)) == value
    assert '"' not in escape.html_attr(value) and "'" not in escape.html_attr(value)
    assert escape.html_text(None) == ""


@pytest.mark.parametrize("value", PAYLOADS)
def test_markdown_text_renders_as_the_value(value: str) -> None:
    """In a heading, in bold, in a sentence and as code: the reader sees the value, and
    the only elements are the ones the surrounding Markdown made."""
    source = (
        f"### 1. {escape.md_text(value)}\n\n"
        f"**{escape.md_text(value)}** and {escape.md_code(value)} end {escape.md_text(value)}"
    )
    markup = markdown2html(source)
    tags = set(re.findall(r"<([a-z0-9]+)", markup))
    assert tags <= {"h3", "a", "p", "strong", "code"}, markup
    assert markup.count("<strong>") == 1 and markup.count("<code>") == 1
    assert markup.count("<h3") == 1 and markup.count("<p>") == 1
    text = shown(markup)
    assert text.count(_one_line(value)) == 4, text
    assert scan_markup(markup) == []
    assert 'href="javascript' not in markup and "<a" not in markup.replace('<a class="anchor', "")


def test_markdown_code_survives_backticks() -> None:
    markup = markdown2html(f"model {escape.md_code('a`b``c')} here")
    assert "<code>a`b``c</code>" in markup


def test_vega_helpers() -> None:
    assert escape.vega_field("a.b[0]'\"\\") == "a\\.b\\[0\\]\\'\\\"\\\\"
    assert escape.vega_text("a\\b\nc\u2028d") == "a\u2216b c d"
    assert escape.vega_text("<b>x</b>") == "<b>x</b>"  # Vega draws text as text


def test_clean_html_keeps_formatting_and_drops_the_rest() -> None:
    dirty = (
        '<h2 id="x">Title</h2><p>a <strong>b</strong> <code>c</code> <a href="https://e.x">l</a>'
        '<a href="javascript:alert(1)">j</a></p><img src=x onerror=alert(1)>'
        "<script>alert(2)</script><iframe src=../../.env></iframe>"
        '<table><tr><th>h</th><td colspan="2" style="color:red" onclick="x()">d</td></tr></table>'
        "<svg onload=alert(3)></svg><!-- c -->"
    )
    clean = escape.clean_html(dirty)
    assert scan_markup(clean) == []
    for kept in ('<h2 id="x">', "<strong>b</strong>", "<code>c</code>", 'href="https://e.x"'):
        assert kept in clean
    assert '<td colspan="2">d</td>' in clean and "<th>h</th>" in clean
    assert "<script" not in clean and "<svg" not in clean and "<!--" not in clean
    assert escape.clean_html(b"<p>x</p>") == "<p>x</p>"


def test_one_line_and_csv_safe() -> None:
    assert escape.one_line("a\r\nBcc: evil@x.net\u2028") == "a  Bcc: evil@x.net"
    frame = pd.DataFrame(
        {"=cmd": ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "ok", None], "n": range(6)}
    )
    safe = escape.csv_safe(frame)
    assert list(safe.columns) == ["'=cmd", "n"]
    assert safe["'=cmd"].tolist()[:5] == ['\'=HYPERLINK("x")', "'+1", "'-2", "'@SUM(A1)", "ok"]
    assert safe["n"].tolist() == list(range(6)) and frame.columns[0] == "=cmd"


# --------------------------------------------------------------------------- charts


def _hostile(n: int) -> list[str]:
    """``n`` distinct hostile values."""
    return [PAYLOADS[i % len(PAYLOADS)] + ("" if i < len(PAYLOADS) else f" {i}") for i in range(n)]


def _all_charts(names: list[str]) -> dict[str, object]:
    """Every chart builder, fed hostile category values and titles."""
    days = pd.date_range("2026-10-01", periods=6, freq="D")
    long = pd.DataFrame(
        [
            {"period": d, "seg": n, "revenue": float(i + j)}
            for i, n in enumerate(names)
            for j, d in enumerate(days)
        ]
    )
    board = pd.DataFrame(
        {
            "model_id": names,
            "name": [f"{n} name" for n in names],
            "provider": list(reversed(names)),
            "requests": range(10, 10 + len(names)),
            "p95_latency_ms": [100.0 * (i + 1) for i in range(len(names))],
            "cost_per_1k_ok": [0.5 * (i + 1) for i in range(len(names))],
            "quality_mean": [0.8] * len(names),
            "quality_ci_low": [0.7] * len(names),
            "quality_ci_high": [0.9] * len(names),
        }
    )
    daily = pd.DataFrame(
        [
            {
                "day": d,
                "model_id": n,
                "p50_latency_ms": 10.0,
                "p95_latency_ms": 20.0 + j,
                "requests": 5,
                "cost": 1.0 + j,
            }
            for n in names
            for j, d in enumerate(days)
        ]
    )
    movers = pd.DataFrame(
        {
            "seg": names,
            "previous": [1.0] * len(names),
            "current": [2.0] * len(names),
            "delta": [1.0] * len(names),
            "contribution": [(-1) ** i * (i + 1.0) for i in range(len(names))],
            "share_of_change": [0.1] * len(names),
        }
    )
    windows = pd.DataFrame(
        {"start": [days[1]], "end": [days[2]], "severity": [names[0]], "label": [names[1]]}
    )
    funnel = pd.DataFrame(
        {
            "step": names[:3],
            "count": [100, 50, 10],
            "conversion_from_previous": [1.0, 0.5, 0.2],
            "conversion_from_start": [1.0, 0.5, 0.1],
            "drop_off": [0.0, 0.5, 0.8],
        }
    )
    from auterity.dashboards import linked_cost_chart

    title = names[0] + " / " + names[-1]
    return {
        "trend": charts.trend(long, "revenue", unit="currency", by="seg", title=title),
        "trend static": charts.trend(long, "revenue", unit="currency", by="seg", interactive=False),
        "breakdown": charts.breakdown_bars(
            long.groupby("seg", as_index=False)["revenue"].sum(),
            "revenue",
            "seg",
            unit="currency",
            title=title,
        ),
        "movers": charts.movers_chart(movers, "seg", unit="currency", title=title),
        "leaderboard": charts.leaderboard_chart(board, "quality_mean", title=title),
        "scatter": charts.quality_cost_scatter(board, title=title),
        "latency": charts.latency_percentiles_chart(daily, title=title),
        "funnel": charts.funnel_chart(funnel, title=title),
        "anomaly": charts.anomaly_chart(
            long[long["seg"] == names[0]],
            windows,
            value_col="revenue",
            time_col="period",
            unit="currency",
            title=title,
        ),
        "forecast": charts.forecast_chart(
            pd.DataFrame({"ds": days, "y": range(6)}),
            pd.DataFrame(
                {"ds": days, "yhat": range(6), "yhat_lower": range(6), "yhat_upper": range(6)}
            ),
            label=names[2],
            title=title,
        ),
        "linked cost": linked_cost_chart(daily),
    }


def test_every_chart_draws_hostile_values_as_text() -> None:
    """Vega-Lite compiles titles and sort orders into expressions: quotes, backslashes and
    line separators must neither break the chart nor change the expression."""
    names = _hostile(len(PAYLOADS))
    for name, chart in _all_charts(names).items():
        svg = charts.to_svg(chart)  # compiles every expression: raises if one is broken
        assert scan_markup(svg) == [], name
        assert "<foreignObject" not in svg, name
    spec = charts.to_dict(_all_charts(names)["trend"])
    # the hover tooltip lists one entry per series, titled with the series' name
    titles = [
        t.get("title")
        for layer in spec["layer"]
        for t in layer["encoding"].get("tooltip", [])
        if isinstance(t, dict)
    ]
    assert escape.vega_text(PAYLOADS[0]) in titles and "a'b\"c\u2216" in titles


def test_charts_show_hostile_values_as_text_in_chromium(tmp_path: Path) -> None:
    """The charts in a real browser: drawn, hovered (tooltips), no script runs."""
    chromium = need_chromium()
    from playwright.sync_api import sync_playwright

    page = tmp_path / "charts.html"
    names = _hostile(len(PAYLOADS))
    page.write_text(charts.standalone_html(list(_all_charts(names).values()), title=names[0]))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=reports.CHROMIUM_ARGS)
        try:
            seen = visit(browser, page.as_uri(), grid=(9, 4))
        finally:
            browser.close()
    assert seen.charts == len(_all_charts(names))
    assert seen.dialogs == [] and seen.injected == [] and seen.refused == []
    assert seen.tooltip_elements == [] or set(seen.tooltip_elements) <= {"svg"}
    tips = "\n".join(seen.tooltips)
    assert "<img src=x onerror=alert(1)>" in tips  # shown as text in a tooltip
    assert "<img src=x onerror=alert(1)>" in seen.text  # and on an axis, as text


# --------------------------------------------------------------------------- report HTML


def _executed_notebook(path: Path) -> Path:
    """An executed notebook whose outputs carry hostile Markdown, a chart and tiles."""
    chart = charts.breakdown_bars(
        pd.DataFrame({"seg": list(PAYLOADS[:4]), "v": [1.0, 2.0, 3.0, 4.0]}),
        "v",
        "seg",
        unit="count",
    )
    kpis = pd.DataFrame(
        [
            {
                "metric": "m",
                "label": PAYLOADS[0],
                "unit": "count",
                "good": "up",
                "current": 5,
                "previous_delta_pct": 0.1,
            }
        ]
    )
    from auterity import present

    bundle = {"text/html": charts.offline_html_head() + charts.chart_html(chart)}
    hostile_md = "\n\n".join(PAYLOADS) + "\n\n<a href='javascript:alert(6)'>x</a>"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Hostile\n> purpose\n\n## Section"),
        nbformat.v4.new_code_cell(
            "x",
            outputs=[
                nbformat.v4.new_output("display_data", {"text/markdown": hostile_md}),
                nbformat.v4.new_output(
                    "display_data", {"text/markdown": escape.md_text(PAYLOADS[1])}
                ),
                nbformat.v4.new_output("display_data", bundle),
                nbformat.v4.new_output("display_data", {"text/html": present.kpi_tiles_html(kpis)}),
            ],
        ),
    ]
    nbformat.write(nb, path)
    return path


def test_report_sanitises_markdown_and_keeps_charts_and_tiles(tmp_path: Path) -> None:
    """Raw HTML that reaches a Markdown output is sanitised; our HTML outputs (a chart with
    its script, KPI tiles) render as they are; header values are escaped."""
    executed = _executed_notebook(tmp_path / "hostile.ipynb")
    target = reports.render_html(
        executed,
        tmp_path / "hostile.html",
        parameters={"region": PAYLOADS[0], PAYLOADS[5]: PAYLOADS[6]},
        parameter_set=PAYLOADS[1],
    )
    page = target.read_text()
    assert scan_markup(page) == []
    assert "vegaEmbed" in page and 'class="au-kpi-value"' in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page  # the escaped Markdown value
    seen_markup = page.split('data-mime-type="text/markdown"', 1)[1]
    assert "alert(1)" in shown(seen_markup)  # raw HTML's text survives, not its elements
    chromium = need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=reports.CHROMIUM_ARGS)
        try:
            seen = visit(browser, target.as_uri())
        finally:
            browser.close()
    assert seen.dialogs == [] and seen.injected == [] and seen.refused == []
    assert seen.charts == 1 and PAYLOADS[1] in seen.text and PAYLOADS[0] in seen.text


# --------------------------------------------------------------------------- the printer


def test_pdf_printer_reads_only_the_report_folder(tmp_path: Path) -> None:
    """A report that frames, fetches and links files outside its folder (the project's
    .env three levels up, an absolute path, a symlink) prints none of them."""
    need_chromium()
    from pypdf import PdfReader

    (tmp_path / ".env").write_text("AUTERITY_SMTP_PASSWORD=hunter2-dotenv\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("hunter2-absolute\n")
    folder = tmp_path / "reports" / "nb" / "run"
    folder.mkdir(parents=True)
    (folder / "sibling.txt").write_text("SIBLING-SHOWN\n")
    (folder / "link.txt").symlink_to(outside)
    report = folder / "report.html"
    report.write_text(
        "<html><body><h1>MARKER-REPORT</h1>"
        '<iframe src="../../../.env" width="600" height="80"></iframe>'
        f'<iframe src="{outside.as_uri()}"></iframe>'
        '<iframe src="link.txt"></iframe><object data="../../../.env"></object>'
        '<embed src="../../../.env"><img src="../../../.env">'
        '<pre id="sibling"></pre><pre id="parent"></pre><pre id="link"></pre>'
        "<script>"
        "function show(url, id) { fetch(url).then(r => r.text())"
        ".then(t => { document.getElementById(id).textContent = 'GOT ' + t; })"
        ".catch(e => { document.getElementById(id).textContent = 'refused ' + id; }); }"
        "show('sibling.txt', 'sibling'); show('../../../.env', 'parent');"
        "show('link.txt', 'link');"
        "</script></body></html>"
    )
    pdf = reports.render_pdf(report, folder / "report.pdf")
    text = "".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "MARKER-REPORT" in text  # the reader does read the PDF's text
    assert "hunter2" not in text
    assert "refused parent" in text and "refused link" in text
    assert "GOT SIBLING-SHOWN" in text  # the report's own folder is readable


class _Listener:
    """TCP and UDP listeners on one local port counting anything that arrives."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.tcp.listen(50)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        for target in (self._accept, self._receive):
            threading.Thread(target=target, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            self.hits.append("tcp")
            conn.close()

    def _receive(self) -> None:
        while True:
            try:
                self.udp.recvfrom(4096)
            except OSError:
                return
            self.hits.append("udp")

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


def test_pdf_printer_has_no_network(tmp_path: Path) -> None:
    """Images, fetches, preconnects, WebSockets and WebRTC (STUN/TURN) to a local server:
    nothing reaches it while the PDF is printed."""
    need_chromium()
    listener = _Listener()
    here = f"127.0.0.1:{listener.port}"
    report = tmp_path / "net.html"
    report.write_text(
        f'<html><head><link rel="preconnect" href="http://{here}">'
        f'<link rel="dns-prefetch" href="http://localhost:{listener.port}"></head><body>'
        f'<h1>NET</h1><img src="http://{here}/i.png"><iframe src="http://{here}/f"></iframe>'
        f"<script>fetch('http://{here}/x').catch(() => {{}});"
        f"try {{ new WebSocket('ws://{here}/ws'); }} catch (e) {{}}"
        f"navigator.sendBeacon && navigator.sendBeacon('http://{here}/b', 'x');"
        "try { const pc = new RTCPeerConnection({iceServers: ["
        f"{{urls: 'stun:{here}'}}, {{urls: 'turn:{here}?transport=tcp', username: 'u', "
        "credential: 'c'}]}); pc.createDataChannel('d');"
        " pc.createOffer().then(o => pc.setLocalDescription(o)); } catch (e) {}"
        "</script></body></html>"
    )
    try:
        reports.render_pdf(report, tmp_path / "net.pdf")
        threading.Event().wait(1.0)  # late ICE candidates
    finally:
        listener.close()
    assert listener.hits == []


def test_pdf_sandbox_is_used_unless_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As root Chromium cannot start sandboxed, so it runs without; as any other user the
    sandbox is asked for, and a sandbox that cannot start is logged, not fatal."""
    need_chromium()
    import os

    assert reports.chromium_sandbox() == (os.geteuid() != 0)
    launches: list[bool] = []
    from playwright.sync_api import BrowserType

    real_launch = BrowserType.launch

    def spy(self: BrowserType, **kwargs: object) -> object:
        launches.append(bool(kwargs.get("chromium_sandbox")))
        return real_launch(self, **kwargs)

    monkeypatch.setattr(BrowserType, "launch", spy)
    report = tmp_path / "s.html"
    report.write_text("<html><body><p>sandbox</p></body></html>")
    monkeypatch.setattr(reports.render, "chromium_sandbox", lambda: True)
    with caplog.at_level(logging.WARNING, logger="auterity.reports"):
        reports.render_pdf(report, tmp_path / "s.pdf")
    assert launches[0] is True
    if os.geteuid() == 0:  # the sandboxed start fails as root: logged, then printed without
        assert launches == [True, False]
        assert "did not start with its sandbox" in caplog.text
    assert (tmp_path / "s.pdf").read_bytes().startswith(b"%PDF")
