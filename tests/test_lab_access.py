"""`auterity lab`: JupyterLab behind the warehouse's users, over HTTP and websockets
against the real running server (its kernels included)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from auterity import access, warehouse
from auterity.access import policy as policies
from auterity.cli import cli
from auterity.config import project_root
from auterity.dashboards import auth, lab
from auterity.errors import ConfigError
from auterity.warehouse import schema
from conftest import free_port

PASSWORD = "correct horse battery"
NOTEBOOK = "01-business-overview.ipynb"


@contextmanager
def auterity_lab(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, Path]]:
    """``auterity lab`` as a user starts it, on a free loopback port, until it answers;
    yields its address and log, and stops it (its process group) afterwards."""
    port = free_port()
    exe = Path(sys.executable).with_name("auterity")
    command = [str(exe), "lab", "--host", "127.0.0.1", "--port", str(port), "--no-browser"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--allow-root"],  # CI containers run tests as root
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if requests.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        yield base, log_path
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):  # pragma: no cover
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _env(url: str) -> dict[str, str]:
    env = {**os.environ, "AUTERITY_DB_URL": url, "AUTERITY_PII_KEY": "p" * 40}
    for name in (auth.ENV_AUTH, "AUTERITY_AS", "AUTERITY_USER", "JUPYTER_TOKEN"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def users_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A warehouse with an admin, two analysts and a viewer."""
    url = f"duckdb:///{tmp_path_factory.mktemp('lab') / 'users.duckdb'}"
    warehouse.ensure_schema(url)
    access.add_user("root", "admin", PASSWORD, url=url, actor="installer")
    for name, role in (("ana", "analyst"), ("ann", "analyst"), ("vic", "viewer")):
        access.add_user(name, role, PASSWORD, url=url, actor="root")
    warehouse.dispose_engines()
    return url


@pytest.fixture(scope="module")
def lab_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-server") / "lab.log"


@pytest.fixture(scope="module")
def server(users_url: str, lab_log: Path) -> Iterator[str]:
    with auterity_lab(_env(users_url), lab_log) as (base, _):
        yield base


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
        f"{base}/login?next=%2Flab",
        data={"username": name, "password": password, "_xsrf": session.cookies.get("_xsrf", "")},
        allow_redirects=False,
        timeout=60,
    )
    session.headers["X-XSRFToken"] = session.cookies.get("_xsrf", "")
    return session, answer


def _socket_status(base: str, path: str, session: requests.Session | None) -> int:
    """The HTTP status of opening a websocket on ``path`` with a session's cookies."""
    import websockets

    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items()) if session else ""

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

    return asyncio.run(attempt())


def _run_code(base: str, kernel_id: str, session: requests.Session, code: str) -> str:
    """What ``code`` prints when run in a kernel, over the kernel's websocket."""
    import websockets

    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    url = base.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels"
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }

    async def execute() -> str:
        printed = []
        async with websockets.connect(
            url, additional_headers={"Cookie": cookie, "Origin": base}, open_timeout=30
        ) as socket:
            await socket.send(json.dumps(request))
            while True:
                reply = json.loads(await asyncio.wait_for(socket.recv(), timeout=120))
                if reply.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = reply["msg_type"]
                if kind == "stream":
                    printed.append(reply["content"]["text"])
                elif kind == "error":
                    raise AssertionError(reply["content"])
                elif kind == "status" and reply["content"]["execution_state"] == "idle":
                    return "".join(printed)

    return asyncio.run(execute())


def _page_config(html: str) -> dict:
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert found is not None, html[:2000]
    return json.loads(found.group(1))


# --------------------------------------------------------------------------- policy


def test_lab_and_terminals_are_permissions_of_the_shipped_policy() -> None:
    assert {"lab", "terminals"} <= set(policies.PERMISSIONS)
    policy = policies.load_policy(project_root() / "parameters" / "access.yml")
    holders = {
        permission: sorted(n for n, r in policy.roles.items() if r.can(permission))
        for permission in ("lab", "terminals")
    }
    assert holders == {"lab": ["admin", "analyst"], "terminals": ["admin"]}
    spec = {
        "roles": {
            "viewer": {"dashboards": []},
            "analyst": {"dashboards": "*", "may": ["terminals"]},
            "admin": {"dashboards": "*"},
        }
    }
    with pytest.raises(ConfigError, match=r"roles\.analyst\.may: terminals needs lab"):
        policies.parse_policy(spec)


def test_the_command_has_help() -> None:
    result = CliRunner().invoke(cli, ["lab", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--no-browser", "--allow-root"):
        assert option in result.output


# --------------------------------------------------------------------------- users mode


def test_the_server_says_which_mode_it_runs_in_and_has_no_token(server: str, lab_log: Path) -> None:
    log = lab_log.read_text()
    assert f"Auterity Lab: {server}/lab\n" in log
    assert "Sign-in with the warehouse's users" in log and "Single-token mode" not in log
    assert "token=" not in log
    # a token, even one guessed empty, signs nobody in
    for header in ("token ", "token x"):
        answer = requests.get(f"{server}/api/status", headers={"Authorization": header}, timeout=30)
        assert answer.status_code == 403


def test_the_login_page_asks_for_a_name_and_needs_no_other_host(server: str) -> None:
    page = requests.get(f"{server}/login", timeout=30)
    assert page.status_code == 200
    assert 'name="username"' in page.text and 'name="password"' in page.text
    assert "Auterity Lab" in page.text
    assert re.findall(r"https?://", page.text) == []  # nothing fetched from, or linked to, afar
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
    assert len(assets) >= 3
    for asset in assets:
        assert requests.get(f"{server}{asset}", timeout=30).status_code == 200, asset


def test_nothing_opens_without_signing_in(server: str) -> None:
    page = requests.get(f"{server}/lab", allow_redirects=False, timeout=30)
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=%2Flab"
    for path in (
        "/api/contents",
        "/api/kernels",
        "/api/sessions",
        "/api/terminals",
        "/api/kernelspecs",
        f"/files/{NOTEBOOK}",
        "/lab/api/workspaces",
        "/lab/api/settings",
        "/api/me",
    ):
        answer = requests.get(f"{server}{path}", allow_redirects=False, timeout=30)
        if path.startswith("/files/"):  # a page: to the login form
            assert answer.status_code == 302 and "/login?next=" in answer.headers["Location"]
        else:
            assert answer.status_code == 403, path
    assert _socket_status(server, f"/api/kernels/{uuid.uuid4()}/channels", None) == 403


def test_wrong_passwords_are_refused_and_audited(server: str, users_url: str) -> None:
    _, wrong = _sign_in(server, "ana", "not the password")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    failed = [
        (r["actor"], json.loads(r["details"])["client"])
        for r in _audit(users_url, "auth.login_failed")
    ]
    assert ("ana", "127.0.0.1") in failed


def test_a_role_without_lab_gets_403_on_the_page_and_every_api(server: str, users_url: str) -> None:
    session, answer = _sign_in(server, "vic")
    assert answer.status_code == 302 and "auterity-lab-session" in session.cookies
    page = session.get(f"{server}/lab", timeout=30)
    assert page.status_code == 403 and "JupyterLab is not part of your role" in page.text
    assert "data-jupyter-api-token" not in page.text
    paths = [
        "/api/contents",
        f"/api/contents/{NOTEBOOK}",
        f"/files/{NOTEBOOK}",
        "/api/kernels",
        "/api/sessions",
        "/api/terminals",
        "/api/kernelspecs",
        "/lab/api/workspaces",
        "/lab/api/settings",
        "/api/me",
    ]
    statuses = {
        path: session.get(f"{server}{path}", allow_redirects=False, timeout=30).status_code
        for path in paths
    }
    for path in ("/api/kernels", "/api/sessions", "/api/terminals"):
        statuses[f"POST {path}"] = session.post(f"{server}{path}", json={}, timeout=30).status_code
    kernel = str(uuid.uuid4())
    statuses["channels"] = _socket_status(server, f"/api/kernels/{kernel}/channels", session)
    assert set(statuses.values()) == {403}, statuses
    denied = {(r["actor"], r["object_id"]) for r in _audit(users_url, "access.denied")}
    for path in ["/lab", *paths, f"/api/kernels/{kernel}/channels"]:
        assert ("vic", path) in denied, path


def test_an_analyst_works_in_lab_with_kernels_of_their_own(server: str, users_url: str) -> None:
    ana, answer = _sign_in(server, "ana")
    assert answer.status_code == 302 and answer.headers["Location"] == "/lab"
    page = ana.get(f"{server}/lab", timeout=60)
    assert page.status_code == 200
    settings = _page_config(page.text)
    assert settings["token"] == ""  # the server has no token a page could hand out
    assert settings["terminalsAvailable"] is False  # analysts have no terminals
    assert ("ana", "/lab") in {(r["actor"], r["object_id"]) for r in _audit(users_url, "lab.open")}
    listing = ana.get(f"{server}/api/contents", timeout=30)
    assert listing.status_code == 200
    assert NOTEBOOK in {item["name"] for item in listing.json()["content"]}
    # Voila's server extension is not loaded: no dashboard renders here, ungated
    assert (
        ana.get(f"{server}/voila/render/dashboards/business.ipynb", timeout=30).status_code == 404
    )
    # ana's kernel reads as her and holds no server token
    started = ana.post(f"{server}/api/kernels", json={"name": "python3"}, timeout=180)
    assert started.status_code == 201, started.text
    kernel = started.json()["id"]
    code = (
        "import json, os; from ipykernel.connect import get_connection_info; "
        "print(os.environ.get('AUTERITY_AS'), 'JUPYTER_TOKEN' in os.environ, "
        "json.loads(get_connection_info())['transport'])"
    )
    assert _run_code(server, kernel, ana, code).split() == ["ana", "False", "ipc"]
    # her notebook's session on it
    body = {"path": NOTEBOOK, "type": "notebook", "kernel": {"id": kernel}}
    opened = ana.post(f"{server}/api/sessions", json=body, timeout=60)
    assert opened.status_code == 201 and opened.json()["kernel"]["id"] == kernel, opened.text
    session_id = opened.json()["id"]
    # another analyst can neither see nor reach it, nor bind to it
    ann, _ = _sign_in(server, "ann")
    assert kernel not in {k["id"] for k in ann.get(f"{server}/api/kernels", timeout=30).json()}
    assert ann.get(f"{server}/api/sessions", timeout=30).json() == []
    refused = {
        "kernel": ann.get(f"{server}/api/kernels/{kernel}", timeout=30).status_code,
        "restart": ann.post(f"{server}/api/kernels/{kernel}/restart", timeout=30).status_code,
        "delete": ann.delete(f"{server}/api/kernels/{kernel}", timeout=30).status_code,
        "channels": _socket_status(server, f"/api/kernels/{kernel}/channels", ann),
        "session": ann.get(f"{server}/api/sessions/{session_id}", timeout=30).status_code,
        "take over": ann.post(
            f"{server}/api/kernels", json={"kernel_id": kernel}, timeout=30
        ).status_code,
        "bind": ann.post(
            f"{server}/api/sessions",
            json={"path": "other.ipynb", "type": "notebook", "kernel": {"id": kernel}},
            timeout=30,
        ).status_code,
        "terminal": ann.post(f"{server}/api/terminals", timeout=30).status_code,
        "shut the server down": ann.post(f"{server}/api/shutdown", timeout=30).status_code,
    }
    assert refused == dict.fromkeys(refused, 403)
    denials = [
        json.loads(r["details"])["reason"]
        for r in _audit(users_url, "access.denied")
        if r["actor"] == "ann"
    ]
    assert "another user's kernel" in denials and "another user's session" in denials
    assert "the role has no terminals permission" in denials
    # the same notebook opened by ann gets a kernel of her own
    body = {"path": NOTEBOOK, "type": "notebook", "kernel": {"name": "python3"}}
    hers = ann.post(f"{server}/api/sessions", json=body, timeout=180)
    assert hers.status_code == 201 and hers.json()["kernel"]["id"] != kernel
    assert [s["id"] for s in ana.get(f"{server}/api/sessions", timeout=30).json()] == [session_id]
    for who, sid in ((ana, session_id), (ann, hers.json()["id"])):
        assert who.delete(f"{server}/api/sessions/{sid}", timeout=60).status_code == 204


def test_terminals_are_for_roles_with_the_terminals_permission(server: str) -> None:
    root, _ = _sign_in(server, "root")
    assert _page_config(root.get(f"{server}/lab", timeout=60).text)["terminalsAvailable"] is True
    made = root.post(f"{server}/api/terminals", timeout=60)
    assert made.status_code == 200, made.text
    name = made.json()["name"]
    assert _socket_status(server, f"/terminals/websocket/{name}", root) == 101
    ana, _ = _sign_in(server, "ana")
    assert _socket_status(server, f"/terminals/websocket/{name}", ana) == 403
    assert ana.get(f"{server}/api/terminals", timeout=30).status_code == 403
    assert root.delete(f"{server}/api/terminals/{name}", timeout=60).status_code == 204
    # logging out ends the session
    assert root.get(f"{server}/logout", timeout=30).status_code == 200
    assert root.get(f"{server}/lab", allow_redirects=False, timeout=30).status_code == 302


# --------------------------------------------------------------------------- token mode


def test_single_token_mode_starts_and_says_so(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'nobody.duckdb'}"
    warehouse.ensure_schema(url)
    warehouse.dispose_engines()
    with auterity_lab(_env(url), tmp_path / "lab.log") as (base, log_path):
        log = log_path.read_text()
        assert "Single-token mode, for one local person" in log
        token = re.search(r"Auterity Lab: http://\S+/lab\?token=(\S+)", log)
        assert token is not None, log
        assert requests.get(f"{base}/api/status", timeout=30).status_code == 403
        headers = {"Authorization": f"token {token.group(1)}"}
        assert requests.get(f"{base}/api/status", headers=headers, timeout=30).status_code == 200
        page = requests.get(f"{base}/lab?token={token.group(1)}", timeout=60)
        assert page.status_code == 200 and _page_config(page.text)["terminalsAvailable"] is True


def test_the_server_refuses_parts_that_do_not_enforce_the_roles(tmp_path: Path) -> None:
    app = lab.AuterityLab()
    assert app.allow_unauthenticated_access is False
    stock = "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager"
    with pytest.raises(ConfigError, match="needs LabKernelManager as its kernel_manager"):
        app.initialize(
            argv=[
                f"--ServerApp.kernel_manager_class={stock}",
                f"--ServerApp.root_dir={tmp_path}",
                "--ServerApp.allow_root=True",
            ],
            new_httpserver=False,
        )
