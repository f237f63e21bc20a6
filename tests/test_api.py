"""`auterity api`: the JSON API over HTTP against the real server (uvicorn, 2 workers),
signed in as the warehouse's users (and with the token when there are none)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import redis
import requests

from auterity import access, business, metrics, modelhub, present, warehouse
from auterity._time import utcnow
from auterity.demo import generate as demo_data
from conftest import free_port

PASSWORD = "correct horse battery"
# The two workers share one cache only through Redis (as the README says): its own db here,
# since other test files use 12 to 15.
REDIS_URL = "redis://127.0.0.1:6379/11"


def _start(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = Path(sys.executable).with_name("auterity")
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(exe), "api", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log_path.read_text()
        try:
            if requests.get(f"{base}/health", timeout=5).status_code == 200:
                return process, base
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):  # pragma: no cover
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A small demo warehouse with an admin, an EMEA manager and a viewer, and the API."""
    root = tmp_path_factory.mktemp("api")
    url = f"duckdb:///{root / 'api.duckdb'}"
    end = utcnow().date() + timedelta(days=1)
    demo_data.build(
        demo_data.DemoConfig(seed=9, events=3000, months=2, end=end, effects=False), url=url
    )
    access.add_user("root", "admin", PASSWORD, url=url, actor="installer")
    access.add_user("mia", "emea_manager", PASSWORD, url=url, actor="root")
    access.add_user("vic", "viewer", PASSWORD, url=url, actor="root")
    warehouse.dispose_engines()
    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).flushdb()  # fails if Redis is down
    env = {
        **os.environ,
        "AUTERITY_DB_URL": url,
        "AUTERITY_PII_KEY": "p" * 40,
        "AUTERITY_CACHE_URL": REDIS_URL,
        "AUTERITY_CACHE_KEY": "k" * 40,
    }
    for name in ("AUTERITY_DASHBOARD_TOKEN", "AUTERITY_DASHBOARD_AUTH", "AUTERITY_USER"):
        env.pop(name, None)
    log_path = root / "api.log"
    process, base = _start(env, log_path)
    try:
        yield {"url": url, "base": base, "log": str(log_path)}
    finally:
        _stop(process)


def _get(
    world: dict[str, str], path: str, user: str | None = "root", **kw: object
) -> requests.Response:
    auth = (user, PASSWORD) if user else None
    return requests.get(f"{world['base']}{path}", auth=auth, timeout=120, **kw)  # type: ignore[arg-type]


def test_health_needs_no_sign_in_and_the_server_says_its_mode(world: dict[str, str]) -> None:
    health = _get(world, "/health", user=None)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["database"] == "reachable" and body["version"]
    assert body["newest_data"] is not None
    assert "Sign-in with the warehouse's users" in Path(world["log"]).read_text()


def test_no_or_wrong_credentials_are_401_and_audited(world: dict[str, str]) -> None:
    bare = _get(world, "/analytics/kpis", user=None)
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"] == "Basic"
    assert "Basic" in bare.json()["error"]
    wrong = requests.get(
        f"{world['base']}/analytics/kpis", auth=("vic", "not the password"), timeout=60
    )
    assert wrong.status_code == 401 and wrong.json() == {"error": "wrong user name or password"}
    failed = access.audit_trail(action="auth.login_failed", user="vic", url=world["url"])
    assert not failed.empty and failed.iloc[0]["details"]["client"] == "127.0.0.1"
    token = requests.get(
        f"{world['base']}/analytics/kpis", headers={"Authorization": "Bearer abc"}, timeout=60
    )
    assert token.status_code == 401  # users mode: no token signs anyone in


def test_kpis_are_read_as_the_caller(world: dict[str, str]) -> None:
    start, end = present.resolve_period("last_28_days", url=world["url"])
    everyone = business.kpi_summary(start, end, url=world["url"]).set_index("metric")
    with metrics.acting_as("mia", url=world["url"]):
        emea = business.kpi_summary(start, end, url=world["url"]).set_index("metric")
    got = {}
    for user in ("root", "mia"):
        answer = _get(world, "/analytics/kpis", user=user)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        got[user] = {r["metric"]: r for r in body["data"]}
        assert body["meta"]["as_user"] == user
        assert body["meta"]["freshness"] and answer.headers["X-Data-Freshness"]
    assert got["root"]["revenue"]["current"] == pytest.approx(everyone.loc["revenue", "current"])
    assert got["mia"]["revenue"]["current"] == pytest.approx(emea.loc["revenue", "current"])
    assert got["mia"]["revenue"]["current"] < got["root"]["revenue"]["current"]
    channel = _get(world, "/analytics/kpis", params={"channel": "web", "start": str(start)})
    by_web = business.kpi_summary(start, end, where={"channel": "web"}, url=world["url"])
    web = {r["metric"]: r for r in channel.json()["data"]}
    assert web["orders"]["current"] == pytest.approx(
        by_web.set_index("metric").loc["orders", "current"]
    )


def test_etag_gives_304_and_a_repeat_comes_from_the_cache(world: dict[str, str]) -> None:
    first = _get(world, "/modelhub/leaderboard", user="vic")
    assert first.status_code == 200, first.text
    etag = first.headers["ETag"]
    again = _get(world, "/modelhub/leaderboard", user="vic", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    for _ in range(4):  # whichever of the two workers answers: the cache is shared
        repeat = _get(world, "/modelhub/leaderboard", user="vic")
        assert repeat.json()["meta"]["cached"] is True and repeat.headers["X-Cache"] == "hit"
        assert repeat.json()["data"] == first.json()["data"]
    other = _get(world, "/modelhub/leaderboard", user="root", headers={"If-None-Match": etag})
    assert other.status_code == 200  # another caller's tag is not theirs
    start, end = present.resolve_period("last_28_days", url=world["url"])
    board = modelhub.leaderboard(start, end, url=world["url"])
    assert sorted(r["model_id"] for r in first.json()["data"]) == sorted(board["model_id"])


def test_lists_are_paged(world: dict[str, str]) -> None:
    every = metrics.describe()
    page = _get(world, "/analytics/metrics", params={"limit": 2, "offset": 1}).json()
    assert [m["name"] for m in page["data"]] == list(every["name"][1:3])
    assert page["meta"]["total"] == len(every)
    assert (page["meta"]["limit"], page["meta"]["offset"]) == (2, 1)
    too_many = _get(world, "/analytics/metrics", params={"limit": 5000})
    assert too_many.status_code == 400 and too_many.json()["parameter"] == "limit"


def test_one_metric_by_a_dimension(world: dict[str, str]) -> None:
    start = date.today() - timedelta(days=20)
    params = {"grain": "total", "by": "region", "start": str(start)}
    rows = _get(world, "/analytics/metrics/revenue", params=params).json()["data"]
    regions = {r["region"] for r in rows}
    assert {"EMEA", "NA"} <= regions
    mine = _get(world, "/analytics/metrics/revenue", user="mia", params=params).json()["data"]
    assert {r["region"] for r in mine} == {"EMEA"}
    filtered = _get(
        world, "/analytics/metrics/orders", params={**params, "where": "region=NA"}
    ).json()["data"]
    assert {r["region"] for r in filtered} == {"NA"}


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/analytics/metrics/no_such_metric", {}, "name"),
        ("/analytics/kpis", {"start": "2026-13-40"}, "start"),
        ("/analytics/kpis", {"start": "2026-02-01", "end": "2026-01-01"}, "end"),
        ("/analytics/metrics/revenue", {"by": "shoe_size"}, "by"),
        ("/analytics/metrics/revenue", {"where": "region"}, "where"),
        ("/analytics/metrics/revenue", {"grain": "fortnight"}, "grain"),
        ("/modelhub/leaderboard", {"offset": -1}, "offset"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    world: dict[str, str], path: str, params: dict[str, object], parameter: str
) -> None:
    answer = _get(world, path, params=params)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["parameter"] == parameter and body["error"]
    assert "Traceback" not in answer.text


def test_the_openapi_document_is_generated_from_the_code(world: dict[str, str]) -> None:
    doc = _get(world, "/openapi.json", user=None).json()
    assert doc["info"]["title"] == "Auterity Analytics API"
    assert {
        "/api/health",
        "/api/analytics/kpis",
        "/api/analytics/metrics",
        "/api/analytics/metrics/{name}",
        "/api/modelhub/leaderboard",
    } <= set(doc["paths"])
    kpis = doc["paths"]["/api/analytics/kpis"]["get"]
    assert {p["name"] for p in kpis["parameters"]} >= {"start", "end", "region"}
    assert {"200", "400", "401"} <= set(kpis["responses"])


def test_token_mode_without_users(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'solo.duckdb'}"
    warehouse.ensure_schema(url)
    warehouse.dispose_engines()
    env = {**os.environ, "AUTERITY_DB_URL": url, "AUTERITY_DASHBOARD_TOKEN": "solo-token-1234"}
    env.pop("AUTERITY_DASHBOARD_AUTH", None)
    process, base = _start(env, tmp_path / "api.log")
    try:
        assert "Single-token mode" in (tmp_path / "api.log").read_text()
        assert requests.get(f"{base}/analytics/metrics", timeout=60).status_code == 401
        ok = requests.get(
            f"{base}/analytics/metrics",
            headers={"Authorization": "Bearer solo-token-1234"},
            timeout=60,
        )
        assert ok.status_code == 200 and ok.json()["meta"]["as_user"] is None
    finally:
        _stop(process)


def test_a_misconfigured_cache_stops_the_start_with_a_clear_line(
    world: dict[str, str],
) -> None:
    env = {**os.environ, "AUTERITY_DB_URL": world["url"], "AUTERITY_CACHE_URL": REDIS_URL}
    env.pop("AUTERITY_CACHE_KEY", None)
    exe = Path(sys.executable).with_name("auterity")
    done = subprocess.run(
        [str(exe), "api", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "needs AUTERITY_CACHE_KEY" in done.stderr and "Traceback" not in done.stderr
