"""Row filters and pseudonyms: a role's scope applied to every statement read, on DuckDB and
PostgreSQL (warehouse.scope, metrics.scoping, `--as` on the CLI)."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import date
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import sqlalchemy as sa

from auterity import access, metrics, modelhub, reports, warehouse
from auterity._time import utcnow
from auterity.access.policy import Role, parse_policy
from auterity.access.pseudonyms import ENV_PII_KEY
from auterity.cli import main
from auterity.errors import ConfigError
from auterity.warehouse import cache, schema
from auterity.warehouse import scope as scopes

START, END = date(2026, 6, 1), date(2026, 11, 1)
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PII_KEY, "test-key-" + "x" * 32)


def _role(name: str = "r", **grants: object) -> Role:
    return Role(name=name, dashboards=None, notebooks=None, **grants)  # type: ignore[arg-type]


def _raw(url: str, sql: str) -> pd.DataFrame:
    with warehouse.connect(url) as conn:
        return pd.read_sql(sa.text(sql), conn)


def test_a_region_filter_limits_every_table_that_reaches_customers(analytics_url: str) -> None:
    everything = metrics.query(
        ["revenue", "orders"], start=START, end=END, grain=None, by=["region"], url=analytics_url
    ).set_index("region")
    assert len(everything) >= 3 and "EMEA" in everything.index
    emea = metrics.scope_for(_role(row_filters={"region": ("EMEA",)}))
    # the rollups aggregate every customer's requests: no row filter can reach them
    assert emea is not None and emea.deny == set(schema.ROLLUP_TABLES)
    with scopes.scoped(emea):
        mine = metrics.query(
            ["revenue", "orders"],
            start=START,
            end=END,
            grain=None,
            by=["region"],
            url=analytics_url,
        )
        asked_for_na = metrics.query(
            ["revenue"], start=START, end=END, grain=None, where={"region": "NA"}, url=analytics_url
        )
        board = modelhub.leaderboard(start=START, end=END, url=analytics_url)
        rollup_rows = cache.fetch(
            sa.select(sa.func.count()).select_from(schema.inference_daily), url=analytics_url
        )
        regions = metrics.dimension_values("region", url=analytics_url)
    assert list(mine["region"]) == ["EMEA"]
    assert mine.iloc[0]["revenue"] == pytest.approx(everything.loc["EMEA", "revenue"])
    assert asked_for_na.iloc[0]["revenue"] == 0  # asking outside the scope finds nothing
    assert regions == ["EMEA"]
    expected = _raw(
        analytics_url,
        "SELECT count(*) AS n FROM inference_events e JOIN customers c USING (customer_id) "
        f"WHERE c.region = 'EMEA' AND e.ts >= '{START}' AND e.ts < '{END}'",
    ).iloc[0]["n"]
    assert int(board["requests"].sum()) == int(expected) > 0  # from raw events, filtered
    assert rollup_rows.iloc[0, 0] == 0  # read directly, the rollups are empty
    assert _raw(analytics_url, "SELECT count(*) AS n FROM inference_daily").iloc[0]["n"] > 0
    # the same statement unscoped again: the cache kept the two answers apart
    again = metrics.query(["revenue"], start=START, end=END, grain=None, url=analytics_url)
    assert again.iloc[0]["revenue"] == pytest.approx(everything["revenue"].sum())


def test_a_filter_that_cannot_reach_a_table_hides_it(analytics_url: str) -> None:
    scope = metrics.scope_for(_role(row_filters={"feature": ("chat_assistant",)}))
    assert scope is not None
    assert scope.deny == {"customers", "orders", "product_events", *schema.ROLLUP_TABLES}
    with scopes.scoped(scope):
        revenue = metrics.query(["revenue"], start=START, end=END, grain=None, url=analytics_url)
        features = metrics.dimension_values("feature", url=analytics_url)
    assert revenue.iloc[0]["revenue"] == 0
    assert features == ["chat_assistant"]


def test_pseudonyms_are_computed_by_the_database_and_match_python(analytics_url: str) -> None:
    raw = cache.fetch(
        sa.select(schema.customers.c.customer_id, schema.customers.c.email, schema.customers.c.name)
        .order_by(schema.customers.c.customer_id)
        .limit(20),
        url=analytics_url,
    )
    assert raw["email"].str.contains("@").all()
    viewer = metrics.scope_for(_role(pii=False))
    analyst = metrics.scope_for(_role(pii=True))
    assert analyst is None  # sees everything: no scope at all
    with scopes.scoped(viewer):
        masked = cache.fetch(
            sa.select(
                schema.customers.c.customer_id, schema.customers.c.email, schema.customers.c.name
            )
            .order_by(schema.customers.c.customer_id)
            .limit(20),
            url=analytics_url,
        )
    assert list(masked["customer_id"]) == list(raw["customer_id"])  # ids are not PII here
    assert masked["email"].tolist() == [access.pseudonym(e, "email") for e in raw["email"]]
    assert masked["name"].tolist() == [access.pseudonym(n, "name") for n in raw["name"]]
    assert not set(masked["email"]) & set(raw["email"])


def test_scopes_do_not_nest_into_another_and_unknown_dimensions_are_refused() -> None:
    one, two = scopes.Scope("one"), scopes.Scope("two")
    with (
        scopes.scoped(one),
        pytest.raises(PermissionError, match="already reading as one"),
        scopes.scoped(two),
    ):
        pass
    with scopes.scoped(one), scopes.scoped(None) as kept:
        assert kept is one and scopes.current() is one
    assert scopes.current() is None
    with pytest.raises(ConfigError, match="unknown dimension 'galaxy'"):
        metrics.scope_for(_role(row_filters={"galaxy": ("milky way",)}))


def _policy_users(url: str | None = None) -> None:
    access.add_user("root", "admin", PASSWORD, url=url)
    access.add_user("mia", "emea_manager", PASSWORD, actor="root", url=url)
    access.add_user("vic", "viewer", PASSWORD, actor="root", url=url)


def test_acting_as_a_user_applies_their_role() -> None:
    warehouse.ensure_schema()
    _policy_users()
    with metrics.acting_as("mia") as user:
        assert user == access.User("mia", "emea_manager")
        current = scopes.current()
        assert current is not None and current.name == "emea_manager"
    with metrics.acting_as("root"):
        assert scopes.current() is None  # an admin sees everything, PII included
    with metrics.acting_as(None):
        assert scopes.current() is None
    with (
        pytest.raises(access.AccessDenied, match="'ghost' is not a user"),
        metrics.acting_as("ghost"),
    ):
        pass
    access.set_disabled("vic", actor="root")
    with pytest.raises(access.AccessDenied, match="'vic' is disabled"), metrics.acting_as("vic"):
        pass


def test_cli_as_user_sees_their_rows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["demo-data", "--events", "2000", "--months", "3", "--no-effects", "--quiet"]) == 0
    capsys.readouterr()
    query = [
        "metrics",
        "query",
        "revenue",
        "--grain",
        "total",
        "--by",
        "region",
        "--format",
        "json",
    ]
    query += ["--start", "2020-01-01"]
    assert main(query) == 0  # no users yet: the local one-person setup reads everything
    everything = {r["region"] for r in json.loads(capsys.readouterr().out)}
    assert {"EMEA", "NA"} <= everything
    _policy_users()
    assert main([*query, "--as", "mia"]) == 0
    assert {r["region"] for r in json.loads(capsys.readouterr().out)} == {"EMEA"}
    monkeypatch.setenv("AUTERITY_USER", "mia")  # the default once there are users
    assert main(query) == 0
    assert {r["region"] for r in json.loads(capsys.readouterr().out)} == {"EMEA"}
    assert main([*query, "--as", "root"]) == 0
    assert {r["region"] for r in json.loads(capsys.readouterr().out)} == everything
    assert main([*query, "--as", "ghost"]) == 2
    assert "'ghost' is not a user" in capsys.readouterr().err
    # CSV and JSON for a user are exports: audited, and only for roles that may export
    exports = access.audit_trail(action="export")
    assert {"mia", "root"} <= set(exports["actor"])
    first = exports[exports["actor"] == "mia"].iloc[-1]
    assert (first["object_type"], first["object_id"]) == ("cli", "metrics query")
    assert first["details"]["formats"] == ["json"]
    assert first["details"]["parameters"]["metric_names"] == ["revenue"]
    assert main(["anomalies", "revenue", "--format", "json", "--as", "mia"]) == 0
    assert json.loads(capsys.readouterr().out)["metric"] == "revenue"
    assert "anomalies" in set(access.audit_trail(action="export")["object_id"])
    shipped = access.policy_file().read_text()
    strict = tmp_path / "access.yml"  # the shipped roles, but a viewer may not export
    strict.write_text(
        shipped.replace(
            "may: [export]\n    limits: {dashboard_kernels: 2, runs_per_minute: 0,",
            "may: []\n    limits: {dashboard_kernels: 2, runs_per_minute: 0,",
            1,
        )
    )
    assert strict.read_text() != shipped
    monkeypatch.setenv("AUTERITY_ACCESS_FILE", str(strict))
    assert main([*query, "--as", "vic"]) == 2
    assert "'vic' (role viewer) may not export" in capsys.readouterr().err
    table = [a for a in query if a not in ("--format", "json")]
    assert main([*table, "--as", "vic"]) == 0  # a table for a person is no export
    denied = access.audit_trail(action="access.denied", user="vic").iloc[0]
    assert denied["details"]["action"] == "export"
    monkeypatch.setenv("AUTERITY_USER", "ghost")
    assert main(["modelhub", "leaderboard", "--format", "json"]) == 2


def test_every_role_of_the_shipped_policy_builds_a_scope() -> None:
    policy = access.load_policy()
    for role in policy.roles.values():
        scope = metrics.scope_for(role)
        assert (scope is None) == (role.pii and not role.row_filters)
    assert (
        parse_policy(
            {
                "roles": {
                    "viewer": {"dashboards": []},
                    "analyst": {"dashboards": []},
                    "admin": {"dashboards": "*"},
                }
            }
        )
        .role("viewer")
        .pii
        is False
    )


def _probe_notebook(root: Path) -> Path:
    """A report that records which regions it can see and who it reads as."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            'label: str = "probe"  # a name', metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell(
            "import os\nfrom datetime import date\nfrom auterity import metrics, reports\n"
            "seen = metrics.query(['revenue'], start=date(2020, 1, 1), end=date(2030, 1, 1),\n"
            "                     grain=None, by=['region'])\n"
            "reports.record_value('regions', sorted(seen['region']))\n"
            "reports.record_value('reads_as', os.environ.get('AUTERITY_AS'))"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = root / "notebooks" / "probe.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_a_report_run_as_a_user_reads_through_their_scope_in_its_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "access.yml"
    policy.write_text(
        "roles:\n  viewer: {dashboards: [], notebooks: []}\n"
        "  analyst: {dashboards: '*', notebooks: '*'}\n"
        "  admin: {dashboards: '*', notebooks: '*', pii: true, may: [manage_users]}\n"
        "  probe_emea: {dashboards: [], notebooks: [probe], row_filters: {region: EMEA}}\n"
    )
    monkeypatch.setenv("AUTERITY_ACCESS_FILE", str(policy))
    assert main(["demo-data", "--events", "2000", "--months", "3", "--no-effects", "--quiet"]) == 0
    notebook = _probe_notebook(tmp_path / "project")
    access.add_user("root", "admin", PASSWORD)
    access.add_user("pia", "probe_emea", PASSWORD, actor="root")
    access.add_user("vic", "viewer", PASSWORD, actor="root")
    everyone = reports.run(notebook, pdf=False)
    assert everyone.ok, everyone.error_message
    assert {"EMEA", "NA"} <= set(everyone.values["regions"]) and everyone.values["reads_as"] is None
    mine = reports.run(notebook, pdf=False, as_user="pia")
    assert mine.ok, mine.error_message
    assert mine.values == {"regions": ["EMEA"], "reads_as": "pia"}
    with warehouse.connect() as conn:
        runs = schema.report_runs
        who = dict(conn.execute(sa.select(runs.c.run_id, runs.c.acting_user)).all())
    assert who[mine.run_id] == "pia"
    with pytest.raises(access.AccessDenied, match=r"'vic' \(role viewer\) may not run probe"):
        reports.run(notebook, pdf=False, as_user="vic")
    assert main(["run", str(notebook), "--no-pdf", "--as", "vic"]) == 2  # the CLI passes it on
    with pytest.raises(access.AccessDenied, match="'ghost' is not a user"):
        reports.run(notebook, pdf=False, as_user="ghost")


def test_a_process_reading_as_a_user_is_scoped_and_fails_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warehouse.ensure_schema()
    _policy_users()
    monkeypatch.setenv("AUTERITY_AS", "mia")
    assert scopes.current() is not None and scopes.current().name == "emea_manager"
    with (
        pytest.raises(PermissionError, match="already reading as emea_manager"),
        scopes.scoped(scopes.Scope("wider")),
    ):
        pass
    monkeypatch.setenv("AUTERITY_AS", "ghost")
    with pytest.raises(access.AccessDenied, match="'ghost' is not a user"):
        scopes.current()
    monkeypatch.setenv("AUTERITY_AS", "mia")
    # as in a kernel whose notebook imported no metric layer: it is loaded by name
    monkeypatch.setattr(scopes, "_resolver", None)
    monkeypatch.setattr(scopes, "_process", None)
    monkeypatch.delitem(sys.modules, scopes.RESOLVER_MODULE)
    loaded = scopes.current()
    assert loaded is not None and loaded.name == "emea_manager"
    # and with no metric layer to load, nothing is read
    monkeypatch.setattr(scopes, "_resolver", None)
    monkeypatch.setattr(scopes, "_process", None)
    monkeypatch.setattr(scopes, "RESOLVER_MODULE", "auterity.no_such_layer")
    with pytest.raises(PermissionError, match="nothing can apply their role"):
        scopes.current()


def test_report_runs_per_minute_are_limited_by_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "access.yml"
    policy.write_text(
        "roles:\n  viewer: {dashboards: [], notebooks: [probe], limits: {runs_per_minute: 0}}\n"
        "  analyst: {dashboards: '*', notebooks: '*', limits: {runs_per_minute: 2}}\n"
        "  admin: {dashboards: '*', notebooks: '*', pii: true, may: [manage_users]}\n"
    )
    monkeypatch.setenv("AUTERITY_ACCESS_FILE", str(policy))
    warehouse.ensure_schema()
    notebook = _probe_notebook(tmp_path / "project")
    access.add_user("root", "admin", PASSWORD)
    access.add_user("ann", "analyst", PASSWORD, actor="root")
    access.add_user("vic", "viewer", PASSWORD, actor="root")
    with pytest.raises(
        access.AccessDenied, match=r"may not start report runs \(runs_per_minute: 0\)"
    ):
        reports.run(notebook, pdf=False, as_user="vic")
    for _ in range(2):  # two runs of ann's in the last minute (recorded, as a run records them)
        reports.runs.record_start(
            reports.RunRecord(
                uuid.uuid4().hex, "probe", None, {}, "manual", "ok", utcnow(), acting_user="ann"
            ),
            None,
        )
    with pytest.raises(
        access.AccessDenied, match=r"may start 2 report run\(s\) a minute; try again in \d+ s"
    ):
        reports.run(notebook, pdf=False, as_user="ann")
