"""`auterity serve` access: every route the running server registers is walked without
credentials, the query websocket wants the token, and a token URL becomes a clean URL.

A real `auterity serve` process runs on a tiny dashboards folder (the committed voila.json
and template, one small pre-heated notebook); it writes its route table at startup
(``AuterityVoila.route_table_file``), so the walk covers what the server really answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
import requests
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketHandler, websocket_connect

from auterity import warehouse
from auterity.access import sessions
from auterity.dashboards import auth, monitoring, serve
from conftest import auterity_serve, free_port

TOKEN = "serve-test-token-1234567890"
REPO = Path(__file__).resolve().parents[1]

PUBLIC = ("/voila/static/", "/voila/templates/", "/voila/labextensions/", "/voila/api/themes/")
"""Route prefixes that answer without the token (package assets), as the README says."""
PUBLIC_PAGES = ("/login", "/logout", "/metrics")
"""Pages (and the Prometheus counters) that answer without the token, as the README says."""
REFUSED = {302, 401, 403, 404}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

VIEWER_NOTEBOOK = """\
import json, os, threading
from auterity.dashboards import preheat
print('tiny dashboard')

def _record_viewer():
    info = preheat.wait_for_viewer()
    seen = {"info": info, "request_url": os.environ.get("VOILA_REQUEST_URL", "")}
    with open(os.environ["AUTERITY_TEST_VIEWER_FILE"], "a") as out:
        out.write(json.dumps(seen) + "\\n")

threading.Thread(target=_record_viewer, daemon=True).start()
"""
"""A dashboard whose pre-heated kernel records what it learns about its viewer."""


def _dashboards(folder: Path) -> Path:
    """The committed voila.json and template with one small pre-heated notebook."""
    import nbformat

    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(VIEWER_NOTEBOOK)]
    nbformat.write(nb, folder / "tiny.ipynb")
    shutil.copytree(serve.dashboards_dir() / serve.TEMPLATES, folder / serve.TEMPLATES)
    config = serve.read_config(serve.dashboards_dir())
    config["VoilaKernelManager"]["kernel_pools_config"] = {
        "default": {"pool_size": 0},
        "tiny.ipynb": {"pool_size": 1},
    }
    config["AuterityVoila"] = {"route_table_file": str(folder / "routes.json")}
    (folder / "voila.json").write_text(json.dumps(config))
    return folder


def _wait_log(log_path: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    """Poll the server log until ``text`` appears (bounded; the log is shown if it dies)."""
    deadline = time.monotonic() + 120
    while text not in log_path.read_text():
        assert process.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{log_path.read_text()}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`auterity serve` on a free loopback port, on the tiny dashboards folder."""
    root = tmp_path_factory.mktemp("serve")
    folder = _dashboards(root / "dashboards")
    log_path = root / "serve.log"
    env = {
        **os.environ,
        serve.ENV_DIR: str(folder),
        serve.ENV_TOKEN: TOKEN,
        "AUTERITY_TEST_VIEWER_FILE": str(root / "viewers.jsonl"),
    }
    with auterity_serve(env, log_path) as (process, port):
        _wait_log(log_path, "Kernel pool of tiny.ipynb is filled", process)
        yield {
            "base": f"http://127.0.0.1:{port}",
            "port": str(port),
            "log": str(log_path),
            "routes": str(folder / "routes.json"),
            "viewers": str(root / "viewers.jsonl"),
        }


def _viewers(server: dict[str, str], count: int) -> list[dict]:
    """What the pre-heated kernels learnt about their viewers (waits for ``count``)."""
    path = Path(server["viewers"])
    deadline = time.monotonic() + 60
    while not path.exists() or len(path.read_text().splitlines()) < count:
        assert time.monotonic() < deadline, Path(server["log"]).read_text()
        time.sleep(0.2)
    return [json.loads(line) for line in path.read_text().splitlines()]


def _open_dashboard(server: dict[str, str], query: str = "") -> tuple[requests.Session, str]:
    """Log in with the token URL and open the dashboard; the session and its kernel id."""
    session = requests.Session()
    page = session.get(f"{server['base']}/voila/render/tiny.ipynb?token={TOKEN}{query}", timeout=90)
    assert page.status_code == 200, page.text[:500]
    kernel = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", page.text)
    assert kernel is not None
    return session, kernel.group(0)


def _samples(pattern: str, kernel_id: str) -> list[str]:
    """Concrete paths for a route pattern (every group kind Voila uses; others fail)."""
    body = pattern.removesuffix("$")
    fills = {
        r"(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)": [kernel_id],
        r"(?P<path>(?:(?:/[^/]+)+|/?))": ["", "/", "/tiny.ipynb"],
        r"(.*)": [
            "",
            "tiny.ipynb",
            "voila.json",
            kernel_id,
            "lab/static/x.js",
            "../voila.json",
            "nope/static/x.js",
            "lab/static/../../../voila.json",
            "lab/static/",
        ],
    }

    def expand(path: str) -> list[str]:
        for group, values in fills.items():
            if group in path:
                return [q for v in values for q in expand(path.replace(group, v, 1))]
        return [path]

    paths = expand(body)
    for path in paths:
        assert "(" not in path, f"route {pattern!r} has a group this test does not know"
        assert re.fullmatch(body, path), (pattern, path)
    return sorted(set(paths))


def _is_public(path: str) -> bool:
    return path.startswith(PUBLIC) or path in PUBLIC_PAGES


async def _websocket(url: str, headers: dict[str, str]) -> int:
    """Open a websocket with a real client: 101 if it opened, else the HTTP status."""
    try:
        connection = await websocket_connect(HTTPRequest(url, headers=headers, request_timeout=20))
    except HTTPClientError as exc:
        return exc.code
    connection.close()
    return 101


def test_every_route_refuses_a_visitor_without_the_token(server: dict[str, str]) -> None:
    routes = json.loads(Path(server["routes"]).read_text())
    patterns = {route["pattern"] for route in routes}
    assert len(routes) >= 12
    assert r"/voila/query/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)$" in patterns
    _, kernel_id = _open_dashboard(server)  # a live kernel: its routes are real targets
    answered: dict[str, set[int]] = {}
    for route in routes:
        for path in _samples(route["pattern"], kernel_id):
            if route["websocket"]:
                url = f"ws://127.0.0.1:{server['port']}{path}"
                status = asyncio.run(_websocket(url, {}))
                assert status in (403, 404), (path, status)
                answered.setdefault(path, set()).add(status)
                continue
            for method in METHODS:
                response = requests.request(
                    method, server["base"] + path, allow_redirects=False, timeout=30
                )
                answered.setdefault(path, set()).add(response.status_code)
                if _is_public(path):
                    continue
                assert response.status_code in REFUSED, (method, path, response.status_code)
                if response.status_code == 302:
                    assert response.headers["Location"].startswith("/login?next="), path
                assert TOKEN not in response.text
    # The public routes serve package assets and the login form, never the dashboards.
    assert requests.get(server["base"] + "/login", timeout=30).status_code == 200
    assert requests.get(server["base"] + "/voila/static/voila.js", timeout=30).status_code == 200
    for path, statuses in answered.items():
        if _is_public(path) and ("tiny" in path or "voila.json" in path):
            assert 200 not in statuses, (path, statuses)
    for unknown in ("/nope", "/voila", "/api/kernels", "/tiny.ipynb", "/voila.json"):
        assert requests.get(server["base"] + unknown, timeout=30).status_code in REFUSED
    log = Path(server["log"]).read_text()
    assert "Traceback" not in log and "Uncaught exception" not in log
    # Kernels talk to the server over Unix sockets (voila.json: KernelManager.transport),
    # so no kernel warns that its traffic crosses TCP in plain text.
    assert "Kernel started" in log and "without encryption" not in log


def test_readme_lists_exactly_the_public_routes() -> None:
    readme = (REPO / "README.md").read_text()
    assert set(serve.PUBLIC_ROUTES) == {*PUBLIC, *PUBLIC_PAGES}
    section = readme[readme.index("## Dashboards") :]
    for route in serve.PUBLIC_ROUTES:
        assert f"`{route}" in section, route
    assert "every page and API answers 302/403" not in readme


def test_query_socket_wants_the_token_and_the_kernel_still_learns_its_viewer(
    server: dict[str, str],
) -> None:
    session, kernel_id = _open_dashboard(server, "&region=EMEA")
    url = f"ws://127.0.0.1:{server['port']}/voila/query/{kernel_id}"
    assert asyncio.run(_websocket(url, {})) == 403
    assert asyncio.run(_websocket(url, {"Authorization": "token wrong-token"})) == 403
    assert asyncio.run(_websocket(url, {"Authorization": f"token {TOKEN}"})) == 101
    cookies = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    assert asyncio.run(_websocket(url, {"Cookie": cookies})) == 101
    # The pre-heated kernel got its viewer's request through the authenticated socket,
    # and the token is nowhere in it: the browser was sent on to the clean URL first.
    seen = _viewers(server, 1)
    mine = [v for v in seen if v["info"] and v["info"]["QUERY_STRING"] == "region=EMEA"]
    assert len(mine) == 1, seen
    assert mine[0]["info"]["SCRIPT_NAME"] == "/voila/render/tiny.ipynb"
    assert TOKEN not in json.dumps(seen)


def test_token_url_logs_in_and_redirects_to_the_clean_url(server: dict[str, str]) -> None:
    base = server["base"]
    landing = requests.get(f"{base}/?token={TOKEN}", allow_redirects=False, timeout=30)
    assert landing.status_code == 302 and landing.headers["Location"] == "/"
    assert landing.cookies  # the login cookie comes with the redirect
    page = requests.get(
        f"{base}/voila/tree?a=1&token={TOKEN}&b=2", allow_redirects=False, timeout=30
    )
    assert page.status_code == 302 and page.headers["Location"] == "/voila/tree?a=1&b=2"
    session = requests.Session()
    followed = session.get(f"{base}/?token={TOKEN}", timeout=30)
    assert followed.status_code == 200 and followed.url == f"{base}/"
    assert "Auterity dashboards" in followed.text and TOKEN not in followed.text
    # The cookie alone keeps the browser in; a wrong token is a login page, never a page.
    assert session.get(f"{base}/voila/tree", allow_redirects=False, timeout=30).status_code == 200
    wrong = requests.get(f"{base}/?token=wrong", allow_redirects=False, timeout=30)
    assert wrong.status_code == 302 and wrong.headers["Location"].startswith("/login")
    # The token in an Authorization header (scripts) works without any redirect.
    header = requests.get(
        f"{base}/voila/api/contents/",
        headers={"Authorization": f"token {TOKEN}"},
        allow_redirects=False,
        timeout=30,
    )
    assert header.status_code == 200
    logout = session.get(f"{base}/logout", timeout=30)
    assert logout.status_code == 200 and "logged out" in logout.text.lower()
    assert session.get(f"{base}/", allow_redirects=False, timeout=30).status_code == 302


class _PlainEcho(WebSocketHandler):
    """A plain tornado websocket, as a future Voila route might be."""

    def open(self) -> None:
        self.write_message("hello")


class _PlainFiles(web.StaticFileHandler):
    """A plain tornado file route, as ``/voila/files/`` is."""


@pytest.fixture
def plain_app(tmp_path: Path) -> Iterator[str]:
    """An in-process tornado app serving two plain handlers through ``secure_handler``."""
    import jinja2
    from jupyter_server import DEFAULT_TEMPLATE_PATH_LIST
    from jupyter_server.auth import AllowAllAuthorizer, IdentityProvider

    (tmp_path / "data.txt").write_text("secret data")
    port = free_port()
    started, stopped = threading.Event(), threading.Event()

    def run() -> None:
        async def main() -> None:
            identity = IdentityProvider(token=TOKEN)
            app = web.Application(
                [
                    (r"/ws", serve.secure_handler(_PlainEcho)),
                    (r"/files/(.*)", serve.secure_handler(_PlainFiles), {"path": str(tmp_path)}),
                ],
                identity_provider=identity,
                authorizer=AllowAllAuthorizer(identity_provider=identity),
                cookie_secret=b"x" * 32,
                login_url="/login",
                base_url="/",
                jinja2_env=jinja2.Environment(
                    loader=jinja2.FileSystemLoader(DEFAULT_TEMPLATE_PATH_LIST)
                ),
            )
            server = app.listen(port, "127.0.0.1")
            started.set()
            await asyncio.get_running_loop().run_in_executor(None, stopped.wait)
            server.stop()

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    yield f"127.0.0.1:{port}"
    stopped.set()
    thread.join(timeout=30)


def test_plain_routes_are_put_behind_the_login(plain_app: str) -> None:
    """Fail closed: a plain tornado handler (not a Jupyter one, not a public asset route)
    is served behind Jupyter's login; the token or cookie lets a client in."""
    assert asyncio.run(_websocket(f"ws://{plain_app}/ws", {})) == 403
    token = {"Authorization": f"token {TOKEN}"}
    assert asyncio.run(_websocket(f"ws://{plain_app}/ws", token)) == 101
    url = f"http://{plain_app}/files/data.txt"
    anonymous = requests.get(url, allow_redirects=False, timeout=30)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    assert requests.post(url, timeout=30).status_code == 403
    allowed = requests.get(url, headers=token, timeout=30)
    assert allowed.status_code == 200 and allowed.text == "secret data"


def test_jupyter_pages_come_from_the_template_first(tmp_path: Path) -> None:
    """The template's server/ folder holds pages that replace Jupyter server's (login);
    one may extend Jupyter's own as jupyter_server/<name>; without the folder, Jupyter's."""
    jupyter = jinja2.DictLoader({"login.html": "{% block token_message %}docs{% endblock %}"})
    assert serve.server_page_loader([str(tmp_path)], "auterity", jupyter) is jupyter
    template = serve.dashboards_dir() / serve.TEMPLATES / "voila" / "templates" / "auterity"
    loader = serve.server_page_loader([str(template)], "auterity", jupyter)
    env = jinja2.Environment(loader=loader, extensions=["jinja2.ext.i18n"])
    env.install_null_translations()
    page = env.get_template("login.html").render(xsrf_form_html=lambda: "", base_url="/")
    assert "auterity serve" in page and "docs" not in page
    assert serve.server_page_loader([str(template)], "other", jupyter) is jupyter


def _scrape(server: dict[str, str]) -> tuple[str, dict[tuple[str, frozenset], float]]:
    """``/metrics`` without credentials: its text and every sample by (name, labels)."""
    response = requests.get(server["base"] + "/metrics", allow_redirects=False, timeout=30)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def _value(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_opens_kernels_and_routes_without_names(server: dict[str, str]) -> None:
    """A scraper without a session reads the series; opening a dashboard moves them; no
    user name, token, kernel id or typed path shows up in a label."""
    render = "/voila/render/{path}"
    _, before = _scrape(server)
    session, kernel_id = _open_dashboard(server)
    token = {"Authorization": f"token {TOKEN}"}
    # a name that is not a dashboard, and a method nobody uses: both bounded labels
    missing = requests.get(
        f"{server['base']}/voila/render/secret-plan-7.ipynb", headers=token, timeout=30
    )
    assert missing.status_code == 404
    assert requests.request("BREWCOFFEE", server["base"] + "/login", timeout=30).status_code
    text, after = _scrape(server)

    opened = "auterity_dashboard_opens_total"
    assert _value(after, opened, dashboard="tiny", status="200") >= 1 + _value(
        before, opened, dashboard="tiny", status="200"
    )
    assert _value(after, opened, dashboard="tiny", status="302") >= 1  # the token URL's hop
    assert _value(after, opened, dashboard="other", status="404") >= 1
    # the page's kernel is open (taken from the pool); the pool refills behind it
    assert _value(after, "auterity_dashboard_kernels", dashboard="tiny", state="open") >= 1
    assert _value(after, "kernel_currently_running_total", type="python3") >= 1  # Jupyter's
    count = "auterity_dashboard_request_duration_seconds_count"
    assert _value(after, count, route=render) >= 2 + _value(before, count, route=render)
    requests_total = "auterity_dashboard_requests_total"
    assert _value(after, requests_total, route=render, method="GET", status="200") >= 1
    assert _value(after, requests_total, route="/login", method="other", status="405") >= 1
    assert _value(after, requests_total, route="/metrics", method="GET", status="200") >= 1
    assert (
        _value(
            after,
            "http_request_duration_seconds_count",
            method="GET",
            handler="auterity.dashboards.serve.TornadoVoilaHandler",
            status_code="200",
        )
        >= 1
    )
    assert _value(after, "jupyter_server_started_timestamp_seconds") > 0
    for family in ("auterity_dashboard_access_denied", "auterity_dashboard_kernels_refused"):
        assert f"# TYPE {family}_total counter" in text
    for secret in (TOKEN, sessions.SERVER_USER, kernel_id, "secret-plan", "BREWCOFFEE"):
        assert secret not in text, secret
    labels = {value for _, pairs in after for _, value in pairs}
    assert not [v for v in labels if re.search(r"[0-9a-f]{8}-[0-9a-f]{4}", v)], labels
    session.close()


def test_kernel_series_never_carry_owners_and_refusals_count() -> None:
    """The kernel gauge reads dashboards and states from the kernel manager, never its
    owners; a start refused at the cap counts under its limit and kind."""
    registry = CollectorRegistry()
    series = monitoring.DashboardMetrics(registry)
    manager = serve.CappedKernelManager(max_kernels=1)
    manager.owners["k1"] = "mia.secret-user"
    manager.dashboard_of["k1"] = "business"
    manager.list_kernel_ids = lambda: ["k1"]  # type: ignore[method-assign]
    series.watch_kernels(manager.kernel_counts)
    text = generate_latest(registry).decode()
    assert 'auterity_dashboard_kernels{dashboard="business",state="open"} 1.0' in text
    assert "mia" not in text and "k1" not in text
    refused = ("auterity_dashboard_kernels_refused_total", {"limit": "server", "kind": "pool"})
    before = REGISTRY.get_sample_value(*refused) or 0.0
    with pytest.raises(web.HTTPError) as error:
        asyncio.run(manager.start_kernel(env={"VOILA_PREHEAT": "True"}))
    assert error.value.status_code == 503
    assert REGISTRY.get_sample_value(*refused) == before + 1


def test_a_denial_counts_by_resource_without_the_user() -> None:
    """The authorizer's refusal (an audit row) also counts, by resource only."""
    warehouse.ensure_schema()
    denied = ("auterity_dashboard_access_denied_total", {"resource": "contents"})
    before = REGISTRY.get_sample_value(*denied) or 0.0
    handler = SimpleNamespace(
        path_kwargs={}, settings={}, request=SimpleNamespace(path="/voila/api/contents/x")
    )
    user = auth.AuterityUser("mia", "mia", "mia")
    authorizer = auth.AuterityAuthorizer()
    assert not authorizer.is_authorized(handler, user, "read", "contents")  # type: ignore[arg-type]
    assert REGISTRY.get_sample_value(*denied) == before + 1
    assert 'user="mia"' not in generate_latest(REGISTRY).decode()
