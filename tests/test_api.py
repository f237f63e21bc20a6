"""`auterity api`: the JSON API over HTTP against the real server (uvicorn, 2 workers),
signed in as the warehouse's users (and with the token when there are none)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis
import requests

from auterity import _json, access, business, metrics, modelhub, present, warehouse
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


def test_the_reference_page_works_offline(world: dict[str, str]) -> None:
    page = requests.get(f"{world['base']}/docs", timeout=60)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    document = _get(world, "/openapi.json", user=None).json()
    for path in document["paths"]:
        assert f"{path}</h3>" in page.text
    assert "<script" not in page.text and "cdn" not in page.text.lower()
    assert not re.search(r"(src|href)=['\"]https?://", page.text)  # nothing from elsewhere
    assert "horizon (required)" in page.text and "&lt;= 1000" in page.text


def test_no_answer_carries_a_secret(world: dict[str, str]) -> None:
    """Passwords, the pseudonym key, the cache key and the session secret never appear in
    any answer: data, errors (401, 400, 403, 404, 429), the documents, the metrics."""
    from auterity.access import sessions

    secrets = [PASSWORD, "p" * 40, "k" * 40, sessions.session_secret().decode()]
    wrong = requests.get(
        f"{world['base']}/analytics/kpis", auth=("vic", "x" + PASSWORD), timeout=60
    )
    answers = [
        wrong,
        _get(world, "/health", user=None),
        _get(world, "/openapi.json", user=None),
        _get(world, "/docs", user=None),
        requests.get(world["base"].removesuffix("/api") + "/metrics", timeout=60),
        _get(world, "/analytics/kpis"),
        _get(world, "/analytics/kpis", params={"start": "2026-13-01"}),
        _get(world, "/analytics/metrics/revenue", params={"where": "region=EMEA", "by": "x"}),
        _get(world, "/modelhub/costs", user="mia"),
        _get(world, "/modelhub/costs", params={"by": "customer"}),
        _get(world, "/reports/none"),
        _get(world, "/reports"),
        _get(world, "/realtime/snapshot"),
    ]
    assert {a.status_code for a in answers} >= {200, 400, 401, 403, 404}
    for answer in answers:
        text = answer.text + " ".join(f"{k}: {v}" for k, v in answer.headers.items())
        for secret in secrets:
            assert secret not in text, (answer.url, answer.status_code)


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
        for path in ("/health", "/openapi.json", "/docs", "/analytics/kpis"):
            assert "solo-token-1234" not in requests.get(f"{base}{path}", timeout=60).text
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


def test_a_role_without_the_dashboard_is_refused_and_audited(world: dict[str, str]) -> None:
    # mia's role (emea_manager) opens the business dashboard only
    assert _get(world, "/analytics/funnel", user="mia").status_code == 200
    for path in ("/modelhub/leaderboard", "/modelhub/costs", "/unified/insights"):
        refused = _get(world, path, user="mia")
        assert refused.status_code == 403, path
        assert "modelhub" in refused.json()["error"]
    denied = access.audit_trail(action="access.denied", user="mia", url=world["url"])
    paths = set(denied["object_id"])
    assert {"/api/modelhub/leaderboard", "/api/unified/insights"} <= paths


def test_cohorts_and_funnel_are_the_library_numbers_through_row_filters(
    world: dict[str, str],
) -> None:
    start, end = date.today() - timedelta(days=50), date.today() + timedelta(days=1)
    params = {"start": str(start), "end": str(end)}
    with metrics.acting_as("mia", url=world["url"]):
        funnel = business.funnel(start, end, url=world["url"])
        cohorts = business.cohort_retention(start, end, max_age=3, url=world["url"])
    got = _get(world, "/analytics/funnel", user="mia", params=params).json()["data"]
    assert [r["count"] for r in got] == pytest.approx(list(funnel["count"]))
    paged = _get(
        world, "/analytics/cohorts", user="mia", params={**params, "max_age": 3, "limit": 2}
    ).json()
    assert paged["meta"]["total"] == len(cohorts) and len(paged["data"]) == min(2, len(cohorts))
    first = cohorts.reset_index().iloc[0]
    assert paged["data"][0]["cohort"] == _json.json_value(first["cohort"])
    assert paged["data"][0]["size"] == first["size"]


def test_modelhub_routes_are_the_library_numbers(world: dict[str, str]) -> None:
    start, end = present.resolve_period("last_28_days", url=world["url"])
    url = world["url"]
    slo = _get(world, "/modelhub/slo").json()["data"]
    assert [r["model_id"] for r in slo] == list(
        modelhub.slo_report(start, end, url=url)["model_id"]
    )
    by_feature = _get(world, "/modelhub/costs", params={"by": "feature"}).json()["data"]
    expected = modelhub.cost_by_feature(start, end, url=url)
    assert sum(r["cost"] for r in by_feature) == pytest.approx(expected["cost"].sum())
    by_customer = _get(world, "/modelhub/costs", user="vic", params={"by": "customer"}).json()
    assert by_customer["meta"]["total"] >= len(by_customer["data"]) > 0
    assert _get(world, "/modelhub/costs", params={"by": "shoe"}).json()["parameter"] == "by"
    drift = _get(world, "/modelhub/drift", params={"start": str(start), "end": str(end)})
    length = end - start
    expected_drift = modelhub.drift((start - length, start), (start, end), url=url)
    assert len(drift.json()["data"]) == min(len(expected_drift), 100)
    savings = _get(world, "/modelhub/savings").json()
    assert savings["meta"]["total"] == len(modelhub.savings(start, end, url=url))


def test_forecast_and_anomalies_of_a_metric(world: dict[str, str]) -> None:
    params = {"horizon": 7, "start": str(date.today() - timedelta(days=55))}
    first = _get(world, "/unified/forecast/orders", params=params)
    assert first.status_code == 200, first.text
    body = first.json()["data"]
    assert len(body["forecast"]) == 7 and body["backtest"] is not None
    assert {"ds", "yhat", "yhat_lower", "yhat_upper"} <= set(body["forecast"][0])
    again = _get(world, "/unified/forecast/orders", params=params)  # the same worker or not
    assert again.json()["data"]["forecast"] == body["forecast"]
    too_far = _get(world, "/unified/forecast/orders", params={"horizon": 4000})
    assert too_far.status_code == 400 and too_far.json()["parameter"] == "horizon"
    unknown = _get(world, "/unified/forecast/shoe_sales", params={"horizon": 3})
    assert unknown.status_code == 400 and unknown.json()["parameter"] == "metric"
    found = _get(world, "/unified/anomalies/orders").json()["data"]
    assert found["metric"] == "orders" and found["causal"] is True
    assert isinstance(found["anomalies"], list)


def test_insight_cards_are_paged(world: dict[str, str]) -> None:
    short = _get(world, "/unified/insights", params={"start": str(date.today())})
    assert short.status_code == 400 and short.json()["parameter"] == "start"
    future = _get(world, "/unified/insights", params={"end": "2225-10-09"})  # schemathesis
    assert future.status_code == 400 and "no data" in future.json()["error"]
    cards = _get(world, "/unified/insights", params={"limit": 1})
    assert cards.status_code == 200, cards.text
    body = cards.json()
    assert len(body["data"]["cards"]) <= 1 and body["meta"]["total"] >= len(body["data"]["cards"])
    assert "skipped" in body["data"]


def test_report_runs_are_shown_to_who_may_see_them(world: dict[str, str]) -> None:
    from auterity import reports

    url = world["url"]
    before = _get(world, "/reports")  # new runs land without new data: never a stale list
    again = _get(world, "/reports", headers={"If-None-Match": before.headers["ETag"]})
    assert again.status_code == 304  # nothing changed yet
    env = {"AUTERITY_DB_URL": url, "AUTERITY_PII_KEY": "p" * 40}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        emea = reports.run("03-executive-summary", pdf=False, url=url, as_user="mia")
        whole = reports.run("03-executive-summary", pdf=False, url=url)  # unscoped: PII
    assert emea.ok and whole.ok
    seen = {
        user: {r["run_id"] for r in _get(world, "/reports", user=user).json()["data"]}
        for user in ("root", "mia", "vic")
    }
    assert {emea.run_id, whole.run_id} <= seen["root"]
    changed = _get(world, "/reports", headers={"If-None-Match": before.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != before.headers["ETag"]
    assert emea.run_id in seen["mia"] and whole.run_id not in seen["mia"]
    assert emea.run_id in seen["vic"] and whole.run_id not in seen["vic"]  # no PII, all rows
    refused = _get(world, f"/reports/{whole.run_id}", user="vic")
    assert refused.status_code == 403
    denied = access.audit_trail(action="access.denied", user="vic", url=url)
    assert whole.run_id in set(denied["object_id"])
    one = _get(world, f"/reports/{emea.run_id}", user="vic").json()["data"]
    assert one["read_as"] == "mia" and one["links"] == {"html": f"/api/reports/{emea.run_id}/html"}
    page = _get(world, one["links"]["html"].removeprefix("/api"), user="vic")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.content == Path(emea.outputs["html"]).read_bytes()
    exports = access.audit_trail(action="export", user="vic", url=url)
    assert emea.run_id in set(exports["object_id"])
    assert _get(world, "/reports/no-such-run").status_code == 404
    assert _get(world, f"/reports/{emea.run_id}/pdf").status_code == 404  # none was made


def _events(response: requests.Response) -> Iterator[tuple[str, str | None, dict[str, object]]]:
    """(event, id, data) of a Server-Sent Events response, as they come."""
    event, event_id, data = "message", None, []
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if data:
                yield event, event_id, json.loads("\n".join(data))
            event, event_id, data = "message", None, []
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data.append(line[6:])


def test_the_stream_pushes_a_landed_batch_and_resumes(
    world: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from auterity import ingest

    monkeypatch.setenv("AUTERITY_CACHE_URL", REDIS_URL)  # landing publishes on this Redis
    monkeypatch.setenv("AUTERITY_CACHE_KEY", "k" * 40)
    url = world["url"]
    with requests.get(
        f"{world['base']}/realtime/stream", auth=("vic", PASSWORD), stream=True, timeout=30
    ) as live:
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        events = _events(live)
        kind, _id, hello = next(events)
        assert kind == "heartbeat" and hello["state"] == "connected"
        kind, first_id, first = next(events)
        assert kind == "snapshot" and first_id
        before = {m["model_id"]: m["requests"] for m in first["models"]}  # type: ignore[union-attr]
        now = utcnow()
        rows = pd.DataFrame(
            {
                "request_id": [f"stream-{i}" for i in range(25)],
                "ts": [now - timedelta(seconds=i) for i in range(25)],
                "model_id": "gpt-4o",
                "latency_ms": 100.0,
                "input_tokens": 10,
                "output_tokens": 5,
                "status": "ok",
            }
        )
        landed = time.monotonic()
        ingest.load_many([ingest.Batch("inference_events", rows)], source="test", url=url)
        event_id = None
        for kind, an_id, data in events:
            if kind != "snapshot":
                continue
            event_id = an_id
            models = {m["model_id"]: m["requests"] for m in data["models"]}  # type: ignore[union-attr]
            if models.get("gpt-4o", 0) >= before.get("gpt-4o", 0) + 25:
                break
        assert time.monotonic() - landed < 10
        assert event_id and event_id.split(".")[0] != first_id.split(".")[0]  # a new version
    # a reconnect with the last id (to either worker: ids are the same in both) is not
    # sent that snapshot again; without it, the snapshot comes at once
    for last, expect_snapshot in ((event_id, False), (None, True)):
        headers = {"Last-Event-ID": last} if last else {}
        with requests.get(
            f"{world['base']}/realtime/stream",
            auth=("vic", PASSWORD),
            headers=headers,
            stream=True,
            timeout=(10, 6),
        ) as again:
            events = _events(again)
            assert next(events)[0] == "heartbeat"
            try:
                kind, got_id, _data = next(events)
            except requests.ConnectionError:  # read timeout: nothing sent for 6 s
                kind, got_id = "nothing", None
            if expect_snapshot:  # of the same data (its hash changes as the window moves on)
                assert kind == "snapshot" and got_id.split(".")[0] == event_id.split(".")[0]
            else:
                assert kind == "nothing" or (kind == "snapshot" and got_id != event_id)
    snap = _get(world, "/realtime/snapshot", user="vic")
    assert snap.status_code == 200 and snap.json()["data"]["window_minutes"] == 15
    assert snap.json()["meta"]["data_version"] == event_id.split(".")[0]  # the new data
    assert any(m["model_id"] == "gpt-4o" for m in snap.json()["data"]["models"])
    refused = _get(world, "/realtime/snapshot", user="mia")
    assert refused.status_code == 403


def test_a_user_over_their_roles_rate_limit_gets_429_shared_by_the_workers(
    world: dict[str, str],
) -> None:
    access.add_user("rita", "viewer", PASSWORD, url=world["url"], actor="root")
    per_minute = access.load_policy().role("viewer").limits["api_requests_per_minute"]
    session = requests.Session()
    session.auth = ("rita", PASSWORD)
    statuses = [
        session.get(f"{world['base']}/analytics/metrics", timeout=60).status_code
        for _ in range(per_minute)
    ]
    assert statuses == [200] * per_minute  # both workers counted them, in Redis
    over = session.get(f"{world['base']}/analytics/metrics", timeout=60)
    assert over.status_code == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert "120 a minute" in over.json()["error"] or str(per_minute) in over.json()["error"]
    assert _get(world, "/analytics/metrics", user="vic").status_code == 200  # per user
    assert _get(world, "/analytics/metrics", user="root").status_code == 200  # no limit


def test_prometheus_metrics_add_up_every_worker(world: dict[str, str]) -> None:
    for _ in range(6):
        assert _get(world, "/modelhub/leaderboard", user="vic").status_code == 200
    text = requests.get(world["base"].removesuffix("/api") + "/metrics", timeout=60).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = samples.get(name, 0.0) + float(value)
    route = 'route="/api/modelhub/leaderboard"'
    ok = [v for k, v in samples.items() if "auterity_api_requests_total" in k and route in k]
    assert sum(ok) >= 6
    assert any("auterity_api_request_duration_seconds_count" in k and route in k for k in samples)
    assert samples.get('auterity_api_cache_reads_total{outcome="hit"}', 0) >= 1
    # the refusal of the test before (the tests of a file run in order)
    assert samples.get('auterity_api_rate_limited_total{role="viewer"}', 0) >= 1
    assert "auterity_api_stream_subscribers" in text
    assert "rita" not in text and "vic" not in text  # no user names in labels


def test_a_disabled_user_is_out_within_seconds(world: dict[str, str]) -> None:
    from auterity.api import auth

    access.add_user("dora", "viewer", PASSWORD, url=world["url"], actor="root")
    for _ in range(4):  # signed in (and remembered) by both workers
        assert _get(world, "/analytics/metrics", user="dora").status_code == 200
    access.set_disabled("dora", url=world["url"], actor="root")
    deadline = time.monotonic() + auth.ACTIVE_S + 10
    statuses: list[int] = []
    while time.monotonic() < deadline:
        statuses = [_get(world, "/analytics/metrics", user="dora").status_code for _ in range(4)]
        if statuses == [401] * 4:
            break
        time.sleep(0.5)
    assert statuses == [401] * 4


def test_serve_runs_the_api_next_to_the_dashboards_with_one_sign_in(
    world: dict[str, str], tmp_path: Path
) -> None:
    from conftest import auterity_serve

    env = {**os.environ, "AUTERITY_DB_URL": world["url"], "AUTERITY_PII_KEY": "p" * 40}
    for name in ("AUTERITY_DASHBOARD_TOKEN", "AUTERITY_DASHBOARD_AUTH", "AUTERITY_USER"):
        env.pop(name, None)
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}/api"
    log_path = tmp_path / "serve.log"
    with auterity_serve(env, log_path, api_port=api_port) as (process, port):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                up = requests.get(f"{base}/login", timeout=2).status_code == 200
                if up and requests.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        assert f"{api}/health" in log_path.read_text()  # both URLs printed
        session = requests.Session()
        session.get(f"{base}/login", timeout=30)
        signed_in = session.post(
            f"{base}/login?next=/",
            data={"username": "mia", "password": PASSWORD, "_xsrf": session.cookies["_xsrf"]},
            allow_redirects=False,
            timeout=60,
        )
        assert signed_in.status_code in (302, 303), signed_in.text
        assert "auterity-session" in session.cookies
        # the dashboards' session cookie signs mia in at the API (cookies are per host)
        kpis = session.get(f"{api}/analytics/kpis", timeout=60)
        assert kpis.status_code == 200 and kpis.json()["meta"]["as_user"] == "mia"
        assert session.get(f"{api}/modelhub/leaderboard", timeout=60).status_code == 403
        forged = requests.get(
            f"{api}/analytics/kpis", cookies={"auterity-session": "2|1:0|10:1|x|y|z"}, timeout=30
        )
        assert forged.status_code == 401
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # stopping serve stops the API too
        try:
            requests.get(f"{api}/health", timeout=1)
        except requests.ConnectionError:
            break
        time.sleep(0.3)
    else:
        pytest.fail("the API outlived `auterity serve`")


def test_the_live_page_shows_a_span_from_the_otlp_receiver_within_10_s(
    world: dict[str, str], tmp_path: Path, chromium: str
) -> None:
    """Chromium on /api/realtime/live (subscribed to the stream, signed in as a viewer);
    the real OpenTelemetry SDK exports spans of a new model to a real `auterity collect`
    on the same warehouse; the page shows the model's count within 10 s of the export."""
    from playwright.sync_api import sync_playwright

    from auterity.reports import CHROMIUM_ARGS
    from test_collect import Receiver, exporter_provider, model_call

    env = {
        **os.environ,
        "AUTERITY_DB_URL": world["url"],
        "AUTERITY_CACHE_URL": REDIS_URL,  # the receiver's flush announces the batch here
        "AUTERITY_CACHE_KEY": "k" * 40,
    }
    receiver = Receiver(tmp_path, env)
    receiver.start()
    model, spans = f"live-{uuid.uuid4().hex[:8]}", 5
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(
                    http_credentials={"username": "vic", "password": PASSWORD}
                )
                context.route(
                    "**/*",
                    lambda route: (
                        route.continue_()
                        if route.request.url.startswith("http://127.0.0.1")
                        else route.abort()
                    ),
                )
                page = context.new_page()
                page.goto(f"{world['base']}/realtime/live", wait_until="domcontentloaded")
                page.wait_for_selector('tr[data-model="all"]', timeout=60_000)
                assert page.text_content("#state") == "connected"
                assert page.locator(f'tr[data-model="{model}"]').count() == 0
                provider = exporter_provider(receiver.endpoint, "chat_assistant")
                exported = time.monotonic()
                for _ in range(spans):
                    model_call(provider, model)
                provider.shutdown()
                left_ms = max(0.0, (exported + 10 - time.monotonic()) * 1000)
                page.wait_for_function(
                    """([model, n]) => {
                      const cell = document.querySelector(
                        `td[data-model="${model}"][data-metric="requests"]`);
                      return cell !== null && Number(cell.textContent) === n;
                    }""",
                    arg=[model, spans],
                    timeout=left_ms,
                    polling=100,
                )
                assert time.monotonic() - exported <= 10
                context.close()
            finally:
                browser.close()
    finally:
        receiver.stop()


def test_the_openapi_contract_holds(world: dict[str, str]) -> None:
    """schemathesis against the running API's own OpenAPI document: generated requests to
    every operation (the never-ending live stream left out), no 5xx, and every response
    (status, content type, headers, body) as the document says."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(f"{world['base']}/openapi.json")
    operations = [r.ok() for r in schema.exclude(path="/api/realtime/stream").get_all_operations()]
    assert len(operations) == 18  # every route but the stream (and /metrics, /live: no schema)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=4,
            deadline=None,
            derandomize=True,  # the same requests in every run: CI stays reproducible
            suppress_health_check=list(HealthCheck),
        )
        def holds(case: schemathesis.Case) -> None:
            # Constraints across values cannot be stated in OpenAPI (a metric name from the
            # catalogue, end after start, a horizon per grain): a 400 naming the parameter
            # is the right answer there (tested case by case above), not a contract breach.
            case.call_and_validate(
                auth=("root", PASSWORD), timeout=180, excluded_checks=[positive_data_acceptance]
            )

        holds()


# --------------------------------------------------------------------------- TCP_NODELAY


def test_every_connection_sends_at_once_even_from_a_pre_bound_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn's --workers N binds the listener itself with proto 0, and asyncio then
    leaves Nagle's algorithm on for the connections it accepts (each keep-alive answer
    waited ~40 ms for a delayed ACK); the server's protocol turns it off itself."""
    import asyncio
    import socket

    from uvicorn.protocols.http.h11_impl import H11Protocol

    from auterity.api import nodelay, server

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # as uvicorn binds it
    seen: list[tuple[int, int]] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            before = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            nodelay.set_nodelay(transport)
            seen.append((before, sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
            transport.close()

    async def accept_one() -> None:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        served = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        _reader, writer = await asyncio.open_connection(*listener.getsockname())
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        served.close()

    asyncio.run(accept_one())
    assert seen == [(0, 1)]  # asyncio left it off; the protocol turned it on
    assert issubclass(nodelay.NoDelayH11Protocol, H11Protocol)
    used: dict[str, object] = {}
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: used.update(kw))
    # serve() sets these for its workers: put back as they were for the tests after this
    for name in ("PROMETHEUS_MULTIPROC_DIR", "AUTERITY_DASHBOARD_AUTH", "AUTERITY_DASHBOARD_TOKEN"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    server.serve(port=free_port(), workers=2, echo=lambda _line: None)
    assert used["http"] == nodelay.IMPORT_PATH and used["workers"] == 2


def test_a_busy_worker_renews_the_data_version_in_the_background(
    _isolated_warehouse: str,
) -> None:
    """Past its time to live the known version is still used while one background read
    renews it (a crowd does not stall on that read); twice as old, or after a landed
    batch, it is not known until read again."""
    from auterity.api import common

    warehouse.ensure_schema(_isolated_warehouse)
    current = warehouse.data_version(_isolated_warehouse)
    api = common.ApiState(None, _isolated_warehouse, None, None)  # type: ignore[arg-type]
    assert api.known_version() == (False, None)  # never read
    ttl = common.VERSION_TTL_S
    api.version = (time.monotonic() - 1.5 * ttl, "older")
    assert api.known_version() == (True, "older")  # used while it is renewed
    for _ in range(200):
        if api.version is not None and api.version[1] == current:
            break
        time.sleep(0.01)
    assert api.known_version() == (True, current) and not api.renewing
    api.version = (time.monotonic() - 2.5 * ttl, "stale")
    assert api.known_version() == (False, None)
    api.landed()
    assert api.known_version() == (False, None) and api.data_version() == current
    # a renewal begun before a batch landed does not put back what it read
    api.version = (time.monotonic() - 1.5 * ttl, "before")
    assert api.known_version() == (True, "before")
    api.landed()
    for _ in range(200):
        if not api.renewing:
            break
        time.sleep(0.01)
    assert api.known_version() == (False, None)


def test_answers_are_computed_in_turn_once_per_question_and_not_for_who_hung_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker computes at most COMPUTE_SLOTS answers at once; with the cache on, the
    same question asked again while it is computed shares that computation (one per
    crowd), with it off every call computes; a caller who hung up is not computed for."""
    import asyncio
    from types import SimpleNamespace

    from fastapi import Request
    from fastapi.responses import Response

    from auterity.api import common, monitoring
    from auterity.api.auth import Caller

    api = common.ApiState(None, None, monitoring.new_metrics(), None)  # type: ignore[arg-type]
    app = SimpleNamespace(state=SimpleNamespace(api=api))
    who = Caller("ann", "analyst")

    def request(query: str, gone: bool = False) -> Request:
        async def receive() -> dict:
            return {"type": "http.disconnect"} if gone else {"type": "http.request"}

        scope = {"type": "http", "method": "GET", "path": "/api/x", "headers": [], "app": app}
        return Request({**scope, "query_string": query.encode()}, receive)

    running, peak, calls = [0], [0], []

    async def work(query: str) -> Response:
        calls.append(query)
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.05)
        running[0] -= 1
        return Response(query)

    async def ask(*queries: str, gone: bool = False) -> list[Response]:
        return list(
            await asyncio.gather(
                *(common._computed(request(q, gone), who, lambda q=q: work(q)) for q in queries)
            )
        )

    async def scenario() -> None:
        monkeypatch.setenv("AUTERITY_CACHE_TTL", "300")
        same = await ask("a=1", "a=1", "a=1")
        assert calls == ["a=1"] and all(r is same[0] for r in same)  # one computation, shared
        calls.clear()
        await ask(*(f"a={i}" for i in range(5)))
        assert len(calls) == 5 and peak[0] == common.COMPUTE_SLOTS  # in turn, two at a time
        calls.clear()
        monkeypatch.setenv("AUTERITY_CACHE_TTL", "0")
        await ask("a=1", "a=1", "a=1")
        assert calls == ["a=1"] * 3  # uncached: every call computes
        calls.clear()
        gone = await ask("b=1", gone=True)
        assert calls == [] and gone[0].status_code == 499

    asyncio.run(scenario())
    assert api.metrics.registry.get_sample_value("auterity_api_abandoned_total") == 1
    assert api.inflight == {}
