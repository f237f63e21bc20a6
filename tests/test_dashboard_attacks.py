"""Attacks on `auterity serve` in users mode, over raw HTTP and in Chromium.

The server runs on a copy of the dashboards folder inside a scratch project home that
holds files worth stealing (a ``pyproject.toml``, the DuckDB warehouse, ``data/.pii_key``),
each with a marker. Path tricks (``..`` plain, percent-encoded, double-encoded, with
backslashes, absolute) on every route never return a marker, ``/etc/passwd`` or a
dashboard the role is not granted; a viewer calling the kernels, contents, sessions and
terminals APIs (and another user's kernel sockets) is refused; a session cookie issued
more than 8 hours ago, signed with the server's own cookie secret, lands Chromium on the
login page, while the same cookie issued now signs in (so the forgery is sound).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from tornado.web import create_signed_value

from auterity import access, reports, warehouse
from auterity._time import utcnow
from auterity.dashboards import auth, serve
from auterity.demo import generate as demo_data
from conftest import auterity_serve

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
COOKIE_SECRET = os.urandom(32).hex()
HOSTILE = {
    "region": '<img src=x onerror="window.pwned=1;alert(1)">',
    "segment": '<script>window.pwned=2;alert("segment")</script>',
}
MARKERS = {
    "pyproject": "attack-marker-pyproject-7c1f",
    "pii_key": "attack-marker-pii-key-0d9e" + "k" * 20,
}
STOLEN = [
    *MARKERS.values(),
    "[tool.importlinter]",  # the checkout's own pyproject.toml
    "root:x:0:0",  # /etc/passwd
    "DUCK",  # a DuckDB file's header
    COOKIE_SECRET,
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project home: the dashboards (copied), the server's cookie secret in a Voila
    config file, a warehouse with users, a pseudonym key file, a marked pyproject."""
    root = tmp_path_factory.mktemp("attacks")
    (root / "pyproject.toml").write_text(f'[project]\nname = "{MARKERS["pyproject"]}"\n')
    (root / "parameters").symlink_to(REPO / "parameters")
    folder = root / "notebooks" / "dashboards"
    shutil.copytree(REPO / "notebooks" / "dashboards", folder)
    # read by Voila from JUPYTER_CONFIG_PATH (not from its working directory: a voila.py
    # there would shadow the voila package): the server's cookie secret, known to the test
    (root / "jupyter_config").mkdir()
    (root / "jupyter_config" / "voila.py").write_text(
        f"c.Voila.cookie_secret = bytes.fromhex({COOKIE_SECRET!r})\n"
    )
    (root / "data").mkdir()
    (root / "data" / ".pii_key").write_text(MARKERS["pii_key"])
    url = f"duckdb:///{root / 'data' / 'auterity.duckdb'}"
    end = utcnow().date() + timedelta(days=1)
    demo_data.build(
        demo_data.DemoConfig(seed=3, events=3000, months=2, end=end, effects=False), url=url
    )
    with warehouse.connect(url, write=True) as conn:
        region, segment = conn.execute(
            sa.text("SELECT max(region), max(segment) FROM customers WHERE region <> 'EMEA'")
        ).one()
        conn.execute(
            sa.text("UPDATE customers SET region = :p WHERE region = :v"),
            {"p": HOSTILE["region"], "v": region},
        )
        conn.execute(
            sa.text("UPDATE customers SET segment = :p WHERE segment = :v"),
            {"p": HOSTILE["segment"], "v": segment},
        )
    access.add_user("root", "admin", PASSWORD, url=url, actor="installer")
    access.add_user("mia", "emea_manager", PASSWORD, url=url, actor="root")  # business only
    access.add_user("vic", "viewer", PASSWORD, url=url, actor="root")
    warehouse.dispose_engines()
    return root


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[dict[str, Any]]:
    env = {
        **os.environ,
        "AUTERITY_HOME": str(home),
        "AUTERITY_DB_URL": f"duckdb:///{home / 'data' / 'auterity.duckdb'}",
        "AUTERITY_DASHBOARDS_DIR": str(home / "notebooks" / "dashboards"),
        "AUTERITY_PII_KEY": MARKERS["pii_key"],
        "JUPYTER_CONFIG_PATH": str(home / "jupyter_config"),
    }
    for name in (serve.ENV_TOKEN, "AUTERITY_TIMEZONE", auth.ENV_AUTH):
        env.pop(name, None)
    log_path = home / "voila.log"
    with auterity_serve(env, log_path) as (process, port):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if requests.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        yield {"base": base, "port": port, "log": log_path}


def sign_in(base: str, name: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base}/login", timeout=30)
    answer = session.post(
        f"{base}/login?next=/",
        data={"username": name, "password": PASSWORD, "_xsrf": session.cookies.get("_xsrf", "")},
        allow_redirects=False,
        timeout=60,
    )
    assert answer.status_code == 302 and "auterity-session" in session.cookies, answer.text
    return session


def raw_get(port: int, path: str, cookies: dict[str, str]) -> tuple[int, str]:
    """GET ``path`` exactly as written (no client normalises ``..`` or re-encodes it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def traversals(target: str, up: str = "../../") -> list[str]:
    """``target`` reached by going ``up`` (from the dashboards folder, two levels below the
    project home, by default), every way of spelling ``..`` and ``/``."""
    spellings = [
        lambda up: up,
        lambda up: up.replace("..", "%2e%2e"),
        lambda up: up.replace("../", "%2e%2e%2f"),
        lambda up: up.replace("../", "..%2f"),
        lambda up: up.replace("../", "%2e%2e%5c"),
        lambda up: up.replace("..", "%252e%252e"),
        lambda up: up.replace("../", "..%252f"),
        lambda up: up.replace("/", "\\"),
        lambda up: up.replace("/", "%5c"),
        lambda up: up.replace("../", "....//"),
        lambda up: up.replace("../", ".%2e/"),
    ]
    return [spell(up) + target for spell in spellings]


ROUTES = [
    "/voila/render/",
    "/voila/static/",
    "/voila/templates/",
    "/voila/templates/auterity/static/",
    "/voila/files/",
    "/voila/tree/",
    "/voila/api/contents/",
    "/voila/labextensions/",
    "/voila/api/themes/",
    "/static/",
    "/files/",
    "/api/contents/",
    "/",
]
TARGETS = ["pyproject.toml", "data/.pii_key", "data/auterity.duckdb", "jupyter_config/voila.py"]


def test_path_tricks_never_return_a_file_outside_the_dashboards(server: dict[str, Any]) -> None:
    """Every route x every spelling of ``..`` x every target, signed in as a viewer (and
    signed out on the public routes): never a marker, the warehouse, /etc/passwd or the
    cookie secret."""
    base, port = server["base"], server["port"]
    vic = dict(sign_in(base, "vic").cookies.items())
    tricks = [trick for target in TARGETS for trick in traversals(target)]
    tricks += traversals("etc/passwd", "../" * 12)  # past the root, from any folder
    tricks += ["/etc/passwd", "%2fetc%2fpasswd", "%252fetc%252fpasswd", "file:///etc/passwd"]
    paths = [route + trick for route in ROUTES for trick in tricks]
    # signed out, only the routes that answer without a session are worth trying
    public = (*serve.PUBLIC_ROUTES, "/static/")
    attempts = [("vic", vic, path) for path in paths]
    attempts += [("nobody", {}, path) for path in paths if path.startswith(public)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda a: raw_get(port, a[2], a[1]), attempts))
    statuses: dict[int, int] = {}
    for (who, _cookies, path), (status, body) in zip(attempts, answers, strict=True):
        statuses[status] = statuses.get(status, 0) + 1
        assert not [s for s in STOLEN if s in body], (who, path, status, body[:300])
        assert status in (302, 400, 403, 404, 405), (who, path, status, body[:300])
    assert len(attempts) > 900 and statuses.get(200) is None, statuses
    # the sound requests of the same routes do answer (the tricks were judged, not the routes)
    assert raw_get(port, "/voila/tree/", vic)[0] == 200
    status, body = raw_get(port, "/voila/static/voila.js", {})
    assert status == 200 and len(body) > 1000


def test_an_ungranted_dashboard_stays_shut_however_it_is_named(
    server: dict[str, Any],
) -> None:
    """mia's role opens ``business`` only: every spelling of ``modelhub`` is refused
    before a kernel starts (no dashboard page, no kernel id in the answer)."""
    base, port = server["base"], server["port"]
    mia = dict(sign_in(base, "mia").cookies.items())
    tricks = [
        "modelhub.ipynb",
        "./modelhub.ipynb",
        "x/../modelhub.ipynb",
        "business.ipynb/../modelhub.ipynb",
        "%2e/modelhub.ipynb",
        "x/%2e%2e/modelhub.ipynb",
        "x%2f..%2fmodelhub.ipynb",
        "x/%252e%252e/modelhub.ipynb",
        "x\\..\\modelhub.ipynb",
        "modelhub%2eipynb",
        "%6dodelhub.ipynb",
        "ModelHub.ipynb",
        "MODELHUB.IPYNB",
        "modelhub.ipynb/",
        "modelhub.ipynb%00business.ipynb",
        "modelhub.ipynb?business.ipynb",
        "modelhub.ipynb#business.ipynb",
        "modelhub",
        "/modelhub.ipynb",
        "//modelhub.ipynb",
        "realtime.ipynb",
        "../dashboards/modelhub.ipynb",
        "%2e%2e/dashboards/realtime.ipynb",
    ]
    for trick in tricks:
        status, body = raw_get(port, "/voila/render/" + trick, mia)
        assert status in (400, 403, 404), (trick, status, body[:300])
        assert "kernelId" not in body and "jupyter-config-data" not in body, trick
    # and the landing page does not list them
    status, landing = raw_get(port, "/", mia)
    assert status == 200 and "business.ipynb" in landing
    assert "modelhub.ipynb" not in landing and "realtime.ipynb" not in landing


def kernel_socket(base: str, path: str, cookies: dict[str, str]) -> int:
    """The HTTP status of opening a websocket at ``path`` with ``cookies``."""
    import websockets

    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())

    async def attempt() -> int:
        try:
            async with websockets.connect(
                base.replace("http", "ws") + path,
                additional_headers={"Cookie": cookie, "Origin": base},
                open_timeout=30,
            ):
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    # in a thread of its own: Playwright's sync API keeps an event loop in this one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, attempt()).result()


def test_a_viewer_cannot_drive_kernels_or_contents_directly(server: dict[str, Any]) -> None:
    base = server["base"]
    vic = sign_in(base, "vic")
    xsrf = {"X-XSRFToken": vic.cookies.get("_xsrf", "")}
    calls = [
        ("POST", "/api/kernels", {"name": "python3"}),
        ("POST", "/api/sessions", {"path": "x.ipynb", "type": "notebook", "kernel": {}}),
        ("POST", "/api/terminals", {}),
        ("PUT", "/api/contents/x.ipynb", {"type": "file", "format": "text", "content": "x"}),
        ("PUT", "/voila/api/contents/x.ipynb", {"type": "file", "format": "text", "content": "x"}),
        ("PATCH", "/api/contents/business.ipynb", {"path": "stolen.ipynb"}),
        ("DELETE", "/api/contents/business.ipynb", None),
        ("POST", "/api/contents/business.ipynb/checkpoints", None),
        ("GET", "/api/contents/business.ipynb", None),
        ("GET", "/api/kernels", None),
        ("GET", "/api/kernelspecs", None),
    ]
    for method, path, body in calls:
        answer = vic.request(method, base + path, json=body, headers=xsrf, timeout=30)
        assert answer.status_code in (403, 404, 405), (method, path, answer.status_code)
    for name in ("x.ipynb", "stolen.ipynb"):
        assert not (Path(server["log"]).parent / "notebooks" / "dashboards" / name).exists()
    # the contents API lists and serves no file, granted dashboard or not (it served
    # every file of the folder to any signed-in user)
    for name in ("", "business.ipynb", "modelhub.ipynb", "voila.json"):
        answer = vic.get(f"{base}/voila/api/contents/{name}", timeout=30)
        assert answer.status_code == 403 and '"cells"' not in answer.text, (name, answer.text)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, args=reports.CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_hostile_values_show_as_text_and_the_kernel_stays_its_owners(
    server: dict[str, Any], browser: Any
) -> None:
    """root signs in through the login page in Chromium and opens the business dashboard:
    the hostile region and segment show as text, no dialog opens, nothing they carry runs;
    vic cannot reach that page's kernel by its id (sockets, kernel routes, shutdown)."""
    base = server["base"]
    context = browser.new_context()
    dialogs: list[str] = []
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{base}/login?next=/voila/render/business.ipynb", wait_until="domcontentloaded")
    page.fill("input[name='username']", "root")
    page.fill("input[name='password']", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url("**/voila/render/business.ipynb", timeout=240_000)
    page.wait_for_selector(".au-kpi-value", timeout=240_000)
    page.wait_for_selector("select option", state="attached", timeout=240_000)
    page.wait_for_timeout(2000)  # widgets, charts and their scripts settle
    shown = page.evaluate(
        "document.body.innerText + '\\n' + "
        "[...document.querySelectorAll('option')].map(o => o.textContent).join('\\n')"
    )
    shown = shown.replace("\xa0", " ")  # ipywidgets keeps an option's spaces as NBSPs
    for dimension, value in HOSTILE.items():
        assert value in shown, (dimension, shown[-600:])
    assert dialogs == [] and page.evaluate("window.pwned") is None
    assert page.locator("img[src='x']").count() == 0
    kernel = json.loads(
        page.content()
        .split('<script id="jupyter-config-data" type="application/json">')[1]
        .split("</script>")[0]
    )["kernelId"]
    vic = sign_in(base, "vic")
    mine = dict(vic.cookies.items())
    theirs = {c["name"]: c["value"] for c in context.cookies()}
    xsrf = {"X-XSRFToken": vic.cookies.get("_xsrf", "")}
    assert kernel_socket(base, f"/api/kernels/{kernel}/channels", mine) == 403
    assert kernel_socket(base, f"/voila/query/{kernel}", mine) in (403, 404)
    assert kernel_socket(base, f"/voila/execution/{kernel}", mine) in (403, 404)
    assert kernel_socket(base, f"/api/kernels/{kernel}/channels", {}) in (302, 403)
    for method, path in (
        ("GET", f"/api/kernels/{kernel}"),
        ("DELETE", f"/api/kernels/{kernel}"),
        ("POST", f"/api/kernels/{kernel}/interrupt"),
        ("POST", f"/api/kernels/{kernel}/restart"),
        ("POST", f"/voila/api/shutdown/{kernel}"),
    ):
        answer = vic.request(method, base + path, headers=xsrf, timeout=30)
        assert answer.status_code in (403, 404, 405), (method, path, answer.status_code)
    # the kernel is alive and still root's: its owner's socket opens
    assert kernel_socket(base, f"/api/kernels/{kernel}/channels", theirs) == 101
    assert dialogs == []
    context.close()


def session_cookie(user: str, issued: float) -> str:
    """A session cookie for ``user`` issued at ``issued``, signed as the server signs."""
    value = json.dumps({"u": user, "t": issued})
    return create_signed_value(bytes.fromhex(COOKIE_SECRET), "auterity-session", value).decode()


def test_an_expired_session_lands_chromium_on_the_login_page(
    server: dict[str, Any], browser: Any
) -> None:
    """A session cookie issued 9 hours ago (sessions last 8), signed with the server's
    secret, opens nothing; the same cookie issued now signs vic in (the forgery is sound)."""
    base = server["base"]
    assert auth.SESSION_HOURS == 8.0
    for issued, signed_in in ((time.time() - 9 * 3600, False), (time.time(), True)):
        context = browser.new_context()
        context.add_cookies(
            [{"name": "auterity-session", "value": session_cookie("vic", issued), "url": base}]
        )
        page = context.new_page()
        page.goto(f"{base}/voila/tree/", wait_until="domcontentloaded")
        if signed_in:
            assert "/login" not in page.url, page.url
            assert page.locator("a[href*='business.ipynb']").count() >= 1
        else:
            assert "/login" in page.url, page.url
            assert page.locator("input[name='username']").count() == 1
            assert page.locator("a[href*='business.ipynb']").count() == 0
            page.goto(f"{base}/voila/render/business.ipynb", wait_until="domcontentloaded")
            assert "/login" in page.url, page.url
            assert "jupyter-config-data" not in page.content()
        context.close()
