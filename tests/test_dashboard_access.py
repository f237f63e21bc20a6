"""`auterity serve` with the warehouse's users: sign-in, grants, 403s and row scopes,
over HTTP against the real server (and the kernel websocket)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from auterity import access, business, charts, metrics, present, warehouse
from auterity._time import utcnow
from auterity.dashboards import auth, serve
from auterity.demo import generate as demo_data
from auterity.warehouse import schema
from conftest import auterity_serve

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def users_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small warehouse with an admin, an EMEA manager and a viewer."""
    url = f"duckdb:///{tmp_path_factory.mktemp('access') / 'users.duckdb'}"
    end = utcnow().date() + timedelta(days=1)
    demo_data.build(
        demo_data.DemoConfig(seed=5, events=3000, months=2, end=end, effects=False), url=url
    )
    access.add_user("root", "admin", PASSWORD, url=url, actor="installer")
    access.add_user("mia", "emea_manager", PASSWORD, url=url, actor="root")
    access.add_user("vic", "viewer", PASSWORD, url=url, actor="root")
    warehouse.dispose_engines()
    return url


@pytest.fixture(scope="module")
def server(users_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    log_path = tmp_path_factory.mktemp("voila") / "voila.log"
    env = {**os.environ, "AUTERITY_DB_URL": users_url, "AUTERITY_PII_KEY": "p" * 40}
    env.pop(serve.ENV_TOKEN, None)
    env.pop("AUTERITY_TIMEZONE", None)
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
        yield {"base": base, "log": str(log_path)}


def _audit(url: str, action: str) -> list[dict]:
    with warehouse.connect(url) as conn:
        a = schema.audit_log
        rows = conn.execute(sa.select(a).where(a.c.action == action).order_by(a.c.ts)).mappings()
        return [dict(r) for r in rows]


def _sign_in(
    base: str, name: str, password: str = PASSWORD
) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    form = session.get(f"{base}/login", timeout=30)
    assert form.status_code == 200 and 'name="username"' in form.text
    answer = session.post(
        f"{base}/login?next=/",
        data={"username": name, "password": password, "_xsrf": session.cookies.get("_xsrf", "")},
        allow_redirects=False,
        timeout=60,
    )
    return session, answer


def test_the_server_says_which_mode_it_runs_in(server: dict[str, str]) -> None:
    log = Path(server["log"]).read_text()
    assert "Sign-in with the warehouse's users" in log
    assert not re.search(r"\?token=(?!\.\.\.)", log)  # the token itself is never printed
    assert "Single-token mode" not in log


def test_nothing_opens_without_signing_in(server: dict[str, str]) -> None:
    base = server["base"]
    page = requests.get(f"{base}/voila/render/business.ipynb", allow_redirects=False, timeout=30)
    assert page.status_code in (302, 303) and "/login" in page.headers["Location"]
    for path in ("/api/contents", "/api/kernels", "/api/sessions", "/api/terminals"):
        assert requests.get(f"{base}{path}", timeout=30).status_code in (403, 404), path


def test_wrong_passwords_are_refused_and_audited_then_locked(
    server: dict[str, str], users_url: str
) -> None:
    _, wrong = _sign_in(server["base"], "vic", "not the password")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    _, nobody = _sign_in(server["base"], "ghost", PASSWORD)
    assert nobody.status_code == 401 and "Wrong user name or password" in nobody.text
    failed = [
        (r["actor"], json.loads(r["details"])["client"])
        for r in _audit(users_url, "auth.login_failed")
    ]
    assert ("vic", "127.0.0.1") in failed and ("ghost", "127.0.0.1") in failed
    for _ in range(access.users.FREE_FAILURES):
        _sign_in(server["base"], "root", "not the password")
    _, locked = _sign_in(server["base"], "root", PASSWORD)  # the right one, but locked
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert "Too many failed sign-ins" in locked.text
    access.set_password("root", PASSWORD, actor="root", url=users_url)  # lifts the lock


def test_a_user_sees_only_the_dashboards_their_role_grants(
    server: dict[str, str], users_url: str
) -> None:
    base = server["base"]
    session, answer = _sign_in(base, "mia")
    assert answer.status_code == 302 and "auterity-session" in session.cookies
    landing = session.get(f"{base}/", timeout=30)
    assert landing.status_code == 200
    assert "business.ipynb" in landing.text
    assert "modelhub.ipynb" not in landing.text and "realtime.ipynb" not in landing.text
    refused = session.get(f"{base}/voila/render/modelhub.ipynb", timeout=60)
    assert refused.status_code == 403 and "not one of your dashboards" in refused.text
    denied = [(r["actor"], r["object_id"]) for r in _audit(users_url, "access.denied")]
    assert ("mia", "modelhub.ipynb") in denied
    # the kernels, contents, files, sessions and terminals APIs are not served by the
    # dashboard server at all (404, for anyone); a kernel's own routes are checked below
    statuses = {
        path: session.get(f"{base}{path}", timeout=30).status_code
        for path in (
            "/api/kernels",
            "/api/kernelspecs",
            "/api/contents",
            "/api/sessions",
            "/api/terminals",
            "/files/business.ipynb",
            "/voila/files/business.ipynb",
            "/api/contents/business.ipynb",
        )
    }
    assert all(code in (403, 404) for code in statuses.values()), statuses
    # the business dashboard opens, reading as mia: EMEA is the only region it knows
    page = session.get(f"{base}/voila/render/business.ipynb", timeout=180)
    assert page.status_code == 200, page.text[-2000:]
    assert ("mia", "business") in [
        (r["actor"], r["object_id"]) for r in _audit(users_url, "dashboard.open")
    ]
    shown = re.search(r'au-kpi-value" data-metric="revenue"[^>]*>([^<]+)<', page.text)
    assert shown is not None
    start, end = present.resolve_period("last_28_days", url=users_url)
    with metrics.acting_as("mia", url=users_url):
        emea = business.kpi_summary(start, end, url=users_url).set_index("metric")
    everyone = business.kpi_summary(start, end, url=users_url).set_index("metric")
    assert emea.loc["revenue", "current"] < everyone.loc["revenue", "current"]
    assert shown.group(1) == charts.format_value(emea.loc["revenue", "current"], "currency")
    kernel = json.loads(
        page.text.split('<script id="jupyter-config-data" type="application/json">')[1].split(
            "</script>"
        )[0]
    )["kernelId"]
    # another signed-in user cannot reach mia's kernel
    other, _ = _sign_in(base, "vic")
    assert _kernel_socket(base, kernel, other) == 403
    assert _kernel_socket(base, kernel, session) == 101
    assert other.get(f"{base}/api/kernels/{kernel}", timeout=30).status_code in (403, 404)
    xsrf = {"X-XSRFToken": other.cookies.get("_xsrf", "")}
    assert (
        other.post(f"{base}/voila/api/shutdown/{kernel}", headers=xsrf, timeout=30).status_code
        == 403
    )
    mine = {"X-XSRFToken": session.cookies.get("_xsrf", "")}
    assert (
        session.post(f"{base}/voila/api/shutdown/{kernel}", headers=mine, timeout=30).status_code
        == 204
    )
    for s in (session, other):
        s.close()


def _kernel_socket(base: str, kernel: str, session: requests.Session) -> int:
    """The HTTP status of opening a kernel's channels websocket with a session's cookies."""
    import websockets

    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    url = base.replace("http", "ws") + f"/api/kernels/{kernel}/channels"

    async def attempt() -> int:
        try:
            async with websockets.connect(
                url, additional_headers={"Cookie": cookie, "Origin": base}, open_timeout=30
            ):
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(attempt())


def test_a_forged_or_foreign_cookie_signs_nobody_in(server: dict[str, str]) -> None:
    base = server["base"]
    forged = requests.Session()
    forged.cookies.set(
        "auterity-session", "2|1:0|10:1700000000|16:auterity-session|8:eyJ1IjoiIn0=|00"
    )
    page = forged.get(f"{base}/voila/render/business.ipynb", allow_redirects=False, timeout=30)
    assert page.status_code in (302, 303)


def test_token_mode_without_users_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse.ensure_schema()
    assert auth.auth_mode() == "token"
    monkeypatch.setenv(auth.ENV_AUTH, "users")
    assert auth.auth_mode() == "users"
    monkeypatch.setenv(auth.ENV_AUTH, "open")
    with pytest.raises(Exception, match="one of auto, users, token"):
        auth.auth_mode()
    monkeypatch.delenv(auth.ENV_AUTH)
    process, url = serve.start(
        "127.0.0.1", 1, token="t" * 20, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    serve.stop(process)
    assert url.endswith("?token=" + "t" * 20)


def test_sessions_end_when_they_expire_or_the_user_is_disabled() -> None:
    warehouse.ensure_schema()
    access.add_user("root", "admin", PASSWORD)
    access.add_user("vic", "viewer", PASSWORD, actor="root")
    provider = auth.AuterityIdentityProvider(users_mode=True, session_hours=1.0)
    fresh = json.dumps({"u": "vic", "t": time.time()})
    user = provider.user_from_cookie(fresh)
    assert user is not None and user.username == "vic" and user.role == "viewer"
    assert auth.granted(user, "business") and not auth.granted(user, "secret")
    stale = json.dumps({"u": "vic", "t": time.time() - 3601})
    assert provider.user_from_cookie(stale) is None
    access.set_disabled("vic", actor="root")
    provider._known.clear()  # past the short cache: the warehouse is asked again
    assert provider.user_from_cookie(fresh) is None
    assert provider.user_from_cookie(json.dumps({"u": "ghost", "t": time.time()})) is None
    token_mode = auth.AuterityIdentityProvider(users_mode=False)
    assert token_mode.user_from_cookie(json.dumps({"u": "root", "t": time.time()})) is None
    server_user = token_mode.user_from_cookie(json.dumps({"u": auth.SERVER_USER, "t": time.time()}))
    assert server_user is not None and auth.role_of(server_user) is None
    assert auth.granted(server_user, "anything")


def test_live_dashboards_per_user_are_limited_by_role(server: dict[str, str]) -> None:
    """emea_manager allows 2 live dashboards: the third open gets 429 with a message."""
    base = server["base"]
    session, _ = _sign_in(base, "mia")
    xsrf = {"X-XSRFToken": session.cookies.get("_xsrf", "")}
    kernels = []
    for _ in range(2):
        page = session.get(f"{base}/voila/render/business.ipynb", timeout=180)
        assert page.status_code == 200
        kernels.append(
            json.loads(
                page.text.split('<script id="jupyter-config-data" type="application/json">')[
                    1
                ].split("</script>")[0]
            )["kernelId"]
        )
    third = session.get(f"{base}/voila/render/business.ipynb", timeout=180)
    assert third.status_code == 429 and "the most your role allows" in third.text
    for kernel in kernels:
        bye = session.post(f"{base}/voila/api/shutdown/{kernel}", headers=xsrf, timeout=30)
        assert bye.status_code == 204
    assert session.get(f"{base}/voila/render/business.ipynb", timeout=180).status_code == 200


def test_dashboard_downloads_need_the_export_grant_and_are_audited(
    users_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dashboard hands out download links only when asked, after an ``export`` audit
    row; a role without ``export`` is refused (``access.denied`` row, a message in the
    status line); the links carry the viewer's rows only."""
    from auterity import dashboards

    shipped = (Path(__file__).parents[1] / "parameters" / "access.yml").read_text()
    policy = tmp_path / "access.yml"
    policy.write_text(
        shipped.replace(
            "    may: [export]\n    limits: {dashboard_kernels: 2, runs_per_minute: 0,",
            "    may: []\n    limits: {dashboard_kernels: 2, runs_per_minute: 0,",
            1,
        )
    )
    assert policy.read_text() != shipped
    monkeypatch.setenv("AUTERITY_ACCESS_FILE", str(policy))
    monkeypatch.setenv("AUTERITY_DB_URL", users_url)
    monkeypatch.setenv("AUTERITY_AS", "vic")  # a viewer's kernel
    dash = dashboards.business(url=users_url)
    assert dash is not None and dash.view is not None
    assert not dash.prepare_exports() and dash.exports.value == ""
    assert "may not export" in dash.status.value
    assert not dash.prepare_pngs()
    denied = [r for r in _audit(users_url, "access.denied") if r["actor"] == "vic"]
    assert denied and json.loads(denied[-1]["details"])["action"] == "export"
    monkeypatch.setenv("AUTERITY_AS", "mia")  # the EMEA manager may export: EMEA rows only
    dash = dashboards.business(url=users_url)
    assert dash is not None and dash.prepare_exports()
    row = [r for r in _audit(users_url, "export") if r["actor"] == "mia"][-1]
    assert row["object_type"] == "dashboard" and row["object_id"] == "business"
    assert json.loads(row["details"])["formats"] == ["csv", "json"]
    links = dict(
        re.findall(r'data-export="(\w+)"[^>]*href="data:[^;]+;base64,([^"]+)"', dash.exports.value)
    )
    data = json.loads(base64.b64decode(links["json"]))
    revenue = {r["metric"]: r["current"] for r in data["data"]["kpis"]}["revenue"]
    start, end = dash.start.value, dash.end.value
    with metrics.acting_as("mia", url=users_url):
        emea = business.kpi_summary(start, end, url=users_url).set_index("metric")
    assert revenue == pytest.approx(emea.loc["revenue", "current"])


REFRESHED = """() => {
  const s = document.querySelector('.au-state');
  return s !== null && s.dataset.busy === '0' && Number(s.dataset.generation) > 0;
}"""


def _personal(url: str) -> list[str]:
    """Every customer email and name of the warehouse."""
    with warehouse.connect(url) as conn:
        rows = conn.execute(sa.text("SELECT email, name FROM customers")).all()
    return sorted({v for row in rows for v in row if v})


def _browser_scan(browser: object, base: str, user: str, names: list[str]) -> dict[str, str]:
    """Sign in as ``user`` in Chromium, open each dashboard, prepare and download its
    exports: ``{what: text}`` of every page (as drawn) and every CSV and JSON download."""
    context = browser.new_context(accept_downloads=True)  # type: ignore[attr-defined]
    context.set_default_timeout(90_000)
    page = context.new_page()
    page.goto(f"{base}/login", wait_until="domcontentloaded")
    page.fill("#username_input", user)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_selector(".au-card", timeout=60_000)
    seen: dict[str, str] = {"landing": page.content()}
    for name in names:
        page.goto(f"{base}/voila/render/{name}.ipynb", wait_until="domcontentloaded")
        page.wait_for_selector(".au-dash .au-kpi-value", timeout=90_000)
        page.wait_for_function(REFRESHED, timeout=60_000)
        seen[f"{name} page"] = page.content()
        page.locator(".au-export-button").click()
        for fmt in ("csv", "json"):
            page.wait_for_selector(f"a.au-export-{fmt}", timeout=60_000)
            with page.expect_download() as info:
                page.locator(f"a.au-export-{fmt}").click()
            seen[f"{name}.{fmt}"] = Path(info.value.path()).read_text()
    context.close()
    return seen


def test_a_viewer_sees_no_personal_data_in_dashboards_or_downloads_an_admin_does(
    server: dict[str, str], users_url: str, chromium: str
) -> None:
    """Through Chromium: every dashboard a viewer may open, as drawn, and its CSV and
    JSON downloads hold no customer email or name; the same scan as an admin (PII
    granted) finds them in the business dashboard's top customers, so it can fail."""
    from playwright.sync_api import sync_playwright

    from auterity.reports import CHROMIUM_ARGS

    personal = _personal(users_url)
    assert len(personal) > 50
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            viewer = _browser_scan(
                browser, server["base"], "vic", ["business", "modelhub", "realtime"]
            )
            admin = _browser_scan(browser, server["base"], "root", ["business"])
        finally:
            browser.close()
    for what, text in viewer.items():
        assert [p for p in personal if p in text] == [], what
    assert "email-" in viewer["business page"]  # the top customers table was there, pseudonymised
    assert [p for p in personal if p in admin["business page"]]
    assert [p for p in personal if p in admin["business.json"]]
    exports = [(r["actor"], r["object_id"]) for r in _audit(users_url, "export")]
    assert {
        ("vic", "business"),
        ("vic", "modelhub"),
        ("vic", "realtime"),
        ("root", "business"),
    } <= set(exports)
