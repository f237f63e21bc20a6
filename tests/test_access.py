"""Access: the policy file, users with argon2id passwords and sign-in backoff, pseudonyms,
and `auterity users` (against a real DuckDB warehouse, and PostgreSQL for the users table)."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from auterity import access, warehouse
from auterity._time import utcnow
from auterity.access import policy as policies
from auterity.access import pseudonyms as pseudo
from auterity.access import users
from auterity.cli import main
from auterity.config import project_root
from auterity.errors import ConfigError

PASSWORD = "correct horse battery"


def _audit(url: str | None = None, action: str | None = None) -> list[dict]:
    with warehouse.connect(url) as conn:
        a = warehouse.schema.audit_log
        stmt = sa.select(a).order_by(a.c.ts)
        if action:
            stmt = stmt.where(a.c.action == action)
        return [dict(r) for r in conn.execute(stmt).mappings()]


# --- policy ----------------------------------------------------------------------------


def test_the_shipped_policy_reads_and_has_the_required_roles() -> None:
    policy = policies.load_policy(project_root() / "parameters" / "access.yml")
    assert set(policies.REQUIRED_ROLES) <= set(policy.roles)
    viewer, admin = policy.role("viewer"), policy.role("admin")
    assert not viewer.pii and admin.pii
    assert viewer.may_open("business") and not viewer.may_open("secret")
    assert admin.may_open("anything") and admin.may_run("anything")
    assert not viewer.may_run("01-business-overview")
    assert admin.can("manage_users") and not viewer.can("manage_users")
    manager = policy.role("emea_manager")
    assert manager.row_filters == {"region": ("EMEA",)}
    with pytest.raises(ValueError, match="unknown permission"):
        viewer.can("fly")
    with pytest.raises(ConfigError, match=r"no role 'boss'.*roles: admin, analyst"):
        policy.role("boss")


def _roles(**extra: dict) -> dict:
    base = {
        "viewer": {"dashboards": []},
        "analyst": {"dashboards": "*"},
        "admin": {"dashboards": "*", "may": ["manage_users"]},
    }
    return {"roles": {**base, **extra}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "exactly one key, roles"),
        ({"roles": {}}, "roles: must map"),
        ({"roles": {"viewer": {"dashboards": []}}}, r"missing role\(s\) analyst, admin"),
        (_roles(x={"dashboards": [], "colour": 1}), r"roles\.x: unknown key\(s\) colour"),
        (_roles(x={}), "dashboards: is required"),
        (_roles(x={"dashboards": "all"}), r'a list of names or "\*"'),
        (_roles(x={"dashboards": [], "pii": "yes"}), "pii: true or false"),
        (_roles(x={"dashboards": [], "may": ["fly"]}), r"unknown permission\(s\) fly"),
        (_roles(x={"dashboards": [], "row_filters": ["EMEA"]}), "a mapping of dimension"),
        (_roles(x={"dashboards": [], "row_filters": {"region": []}}), "non-empty list"),
        (_roles(x={"dashboards": [], "limits": {"kernels": 1}}), r"unknown limit\(s\) kernels"),
        (_roles(x={"dashboards": [], "limits": {"runs_per_minute": -1}}), "a whole number"),
        (_roles(**{"a b": {"dashboards": []}}), "a role name is letters"),
        (_roles(x="viewer"), "must be a mapping of grants"),
    ],
)
def test_policy_mistakes_are_one_line_errors(document: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        policies.parse_policy(document, "access.yml")


def test_policy_file_from_the_environment_and_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mine.yml"
    path.write_text(
        "roles:\n  viewer: {dashboards: []}\n  analyst: {dashboards: '*'}\n"
        "  admin: {dashboards: '*', row_filters: {region: EMEA}}\n"
    )
    monkeypatch.setenv(policies.ENV_ACCESS_FILE, str(path))
    assert policies.policy_file() == path
    policy = policies.load_policy()
    assert policy.role("admin").row_filters == {"region": ("EMEA",)}
    assert policies.grants(policy.role("analyst"))["dashboards"] == "*"
    monkeypatch.setenv(policies.ENV_ACCESS_FILE, str(tmp_path / "none.yml"))
    with pytest.raises(ConfigError, match="no access policy"):
        policies.load_policy()


# --- pseudonyms ------------------------------------------------------------------------


def test_pseudonyms_are_stable_keyed_and_kind_specific(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pseudo.ENV_PII_KEY, "k" * 40)
    first = access.pseudonym("ada@example.com", "email")
    assert first == access.pseudonym("ada@example.com", "email")
    assert first is not None and first.startswith("email-") and "ada" not in first
    assert access.pseudonym("ada@example.com", "name") != first.replace("email", "person")
    assert access.pseudonym(None) is None
    monkeypatch.setenv(pseudo.ENV_PII_KEY, "z" * 40)
    assert access.pseudonym("ada@example.com", "email") != first  # the key matters
    monkeypatch.setenv(pseudo.ENV_PII_KEY, "short")
    with pytest.raises(ConfigError, match="at least 32"):
        access.pseudonym("x")
    with pytest.raises(ValueError, match="kind"):
        access.pseudonym("x", "phone", key=b"k" * 32)


def test_without_a_key_one_is_generated_once_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(pseudo.ENV_PII_KEY, raising=False)
    monkeypatch.setenv("AUTERITY_HOME", str(tmp_path))
    (tmp_path / "pyproject.toml").write_text("")
    one = access.pseudonym("Ada Lovelace", "name")
    path = pseudo.key_file()
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    assert access.pseudonym("Ada Lovelace", "name") == one  # read back, not made again


# --- users -----------------------------------------------------------------------------


def test_first_user_needs_no_admin_then_only_managers_change_users(
    _isolated_warehouse: str,
) -> None:
    warehouse.ensure_schema()
    admin = access.add_user("root", "admin", PASSWORD, actor="installer")
    assert admin == access.User("root", "admin")
    with pytest.raises(access.AccessDenied, match="'nobody' is not an active user"):
        access.add_user("eve", "admin", PASSWORD, actor="nobody")
    access.add_user("vera", "viewer", PASSWORD, actor="root")
    with pytest.raises(access.AccessDenied, match=r"'vera' \(role viewer\) may not manage"):
        access.set_role("vera", "admin", actor="vera")
    assert access.set_role("vera", "analyst", actor="root").role == "analyst"
    access.set_password("vera", "another long one", actor="vera")  # their own: allowed
    with pytest.raises(access.AccessDenied):
        access.set_password("root", "another long one", actor="vera")
    assert access.set_disabled("vera", actor="root").disabled
    assert not access.set_disabled("vera", False, actor="root").disabled
    listed = access.list_users()
    assert list(listed["user_name"]) == ["root", "vera"]
    assert "password_hash" not in listed.columns
    assert listed.set_index("user_name").loc["vera", "changed_by"] == "root"
    actions = [(r["action"], r["actor"], r["object_id"]) for r in _audit()]
    assert actions == [
        ("user.add", "installer", "root"),
        ("user.add", "root", "vera"),
        ("user.set_role", "root", "vera"),
        ("user.passwd", "vera", "vera"),
        ("user.disable", "root", "vera"),
        ("user.enable", "root", "vera"),
    ]
    assert all(PASSWORD not in json.dumps(r, default=str) for r in _audit())


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("a b", "viewer", PASSWORD, "user name 'a b'"),
        ("", "viewer", PASSWORD, "user name ''"),
        ("x" * 65, "viewer", PASSWORD, "user name"),
        ("ok", "boss", PASSWORD, "no role 'boss'"),
        ("ok", "viewer", "short", "at least 10 characters"),
        ("ok", "viewer", " padded password ", "start or end with a space"),
    ],
)
def test_bad_users_are_refused_with_a_reason(
    name: str, role: str, password: str, message: str
) -> None:
    warehouse.ensure_schema()
    with pytest.raises(ConfigError, match=message):
        access.add_user(name, role, password, actor="root")
    assert access.list_users().empty


def test_unknown_and_duplicate_users() -> None:
    warehouse.ensure_schema()
    access.add_user("root", "admin", PASSWORD)
    with pytest.raises(ConfigError, match="exists already"):
        access.add_user("root", "admin", PASSWORD, actor="root")
    with pytest.raises(ConfigError, match="no user 'ghost'"):
        access.set_role("ghost", "viewer", actor="root")
    assert access.get_user("ghost") is None
    assert access.get_user("root") == access.User("root", "admin")


def test_sign_in_checks_argon2id_hashes_and_records_every_attempt() -> None:
    warehouse.ensure_schema()
    access.add_user("root", "admin", PASSWORD)
    with warehouse.connect() as conn:
        stored = conn.execute(sa.select(warehouse.schema.users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    good = access.authenticate("root", PASSWORD, client="10.0.0.7")
    assert good == access.SignIn(access.User("root", "admin"), "ok")
    assert access.authenticate("root", "wrong password!").reason == "wrong password"
    # an unknown user looks exactly like a wrong password to the caller
    assert access.authenticate("ghost", PASSWORD) == access.SignIn(None, "wrong password")
    assert access.authenticate("../etc", PASSWORD).reason == "wrong password"
    access.set_disabled("root", actor="root")
    assert access.authenticate("root", PASSWORD).reason == "disabled"
    rows = _audit()
    logins = [
        (r["action"], r["actor"], json.loads(r["details"])["outcome"])
        for r in rows
        if r["action"].startswith("auth.")
    ]
    assert logins == [
        ("auth.login", "root", "ok"),
        ("auth.login_failed", "root", "wrong password"),
        ("auth.login_failed", "ghost", "wrong password"),
        ("auth.login_failed", "../etc", "wrong password"),
        ("auth.login_failed", "root", "disabled"),
    ]
    assert json.loads(rows[1]["details"])["client"] == "10.0.0.7"
    assert all(PASSWORD not in (r["details"] or "") for r in rows)


def test_repeated_failures_lock_with_growing_backoff_and_a_good_login_resets() -> None:
    warehouse.ensure_schema()
    access.add_user("root", "admin", PASSWORD)
    now = utcnow()
    for _ in range(users.FREE_FAILURES - 1):
        assert access.authenticate("root", "nope nope nope", now=now).reason == "wrong password"
    assert access.authenticate("root", PASSWORD, now=now).reason == "ok"  # resets the count
    for _ in range(users.FREE_FAILURES):
        access.authenticate("root", "nope nope nope", now=now)
    locked = access.authenticate("root", PASSWORD, now=now)  # right password, but locked
    assert locked.reason == "locked" and locked.retry_after == pytest.approx(30)
    later = now + timedelta(seconds=31)
    assert access.authenticate("root", "nope nope nope", now=later).reason == "wrong password"
    again = access.authenticate("root", PASSWORD, now=later)
    assert again.reason == "locked" and again.retry_after == pytest.approx(60)
    assert users._lock_for(100) == users.MAX_LOCK
    access.set_password("root", "a brand new one", actor="root")  # an admin lifts the lock
    assert access.authenticate("root", "a brand new one", now=later).reason == "ok"
    failed = _audit(action="auth.login_failed")
    assert (
        json.loads(failed[users.FREE_FAILURES - 1 + users.FREE_FAILURES - 1]["details"])[
            "locked_for_s"
        ]
        == 30
    )


def test_users_table_on_postgresql(pg_url: str) -> None:
    warehouse.ensure_schema(pg_url)
    access.add_user("root", "admin", PASSWORD, url=pg_url)
    access.add_user("vera", "viewer", PASSWORD, actor="root", url=pg_url)
    assert access.authenticate("vera", PASSWORD, url=pg_url).user == access.User("vera", "viewer")
    assert list(access.list_users(pg_url)["user_name"]) == ["root", "vera"]
    assert [r["action"] for r in _audit(pg_url)] == ["user.add", "user.add", "auth.login"]


def test_users_survive_a_demo_data_rebuild(tmp_path: Path) -> None:
    assert "users" in warehouse.CARRIED_OVER_TABLES
    warehouse.ensure_schema()
    access.add_user("root", "admin", PASSWORD)
    assert main(["demo-data", "--events", "1000", "--months", "2", "--no-effects", "--quiet"]) == 0
    assert access.authenticate("root", PASSWORD).reason == "ok"


# --- the command line ------------------------------------------------------------------


def test_cli_users_round_trip(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTERITY_USER", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "root", "--role", "admin", "--password-stdin"]) == 0
    assert "added root (admin)" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert (
        main(["users", "add", "vera", "--role", "viewer", "--password-stdin", "--as", "root"]) == 0
    )
    assert main(["users", "set-role", "vera", "analyst", "--as", "root"]) == 0
    assert main(["users", "disable", "vera", "--as", "root"]) == 0
    capsys.readouterr()
    assert main(["users", "list", "--format", "json"]) == 0
    listed = {u["user_name"]: u for u in json.loads(capsys.readouterr().out)}
    assert listed["vera"]["role"] == "analyst" and listed["vera"]["disabled"] is True
    assert all("password_hash" not in u for u in listed.values())
    assert main(["users", "enable", "vera", "--as", "root"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another long one\n"))
    assert main(["users", "passwd", "vera", "--password-stdin", "--as", "root"]) == 0
    assert access.authenticate("vera", "another long one").reason == "ok"
    capsys.readouterr()
    assert main(["users", "roles", "--format", "json"]) == 0
    roles = {r["role"]: r for r in json.loads(capsys.readouterr().out)}
    assert roles["emea_manager"]["row_filters"] == {"region": ["EMEA"]}


def test_cli_users_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["users", "add", "root", "--role", "admin", "--password-stdin"]) == 2
    assert "no password on standard input" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    assert main(["users", "add", "root", "--role", "admin"]) == 2  # no terminal
    assert "--password-stdin" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "root", "--role", "admin", "--password-stdin"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("auterity: error: a password needs at least 10") and "short" not in err
    assert main(["users", "set-role", "ghost", "viewer"]) == 2
    assert "no user 'ghost'" in capsys.readouterr().err
    assert os.environ.get("AUTERITY_DB_URL")


# --- the audit trail -------------------------------------------------------------------


def test_audit_command_filters_and_prints_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTERITY_USER", raising=False)
    warehouse.ensure_schema()
    access.add_user("root", "admin", PASSWORD)
    access.add_user("vic", "viewer", PASSWORD, actor="root")
    access.authenticate("vic", PASSWORD)
    access.authenticate("vic", "wrong wrong wrong")
    assert main(["audit", "--action", "auth.", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["action"], r["actor"]) for r in rows] == [
        ("auth.login_failed", "vic"),
        ("auth.login", "vic"),
    ]
    assert rows[0]["details"] == {"outcome": "wrong password"}
    assert main(["audit", "--user", "vic", "--since", "1h", "--format", "json"]) == 0
    assert [r["action"] for r in json.loads(capsys.readouterr().out)] == [
        "auth.login_failed",
        "auth.login",
    ]
    assert main(["audit", "--since", "2999-01-01", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["audit", "--since", "yesterday"]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err
    assert main(["audit", "--as", "vic"]) == 2  # a viewer may not read the trail
    assert "may not read the audit trail" in capsys.readouterr().err
    assert main(["audit", "--as", "root", "--action", "policy.change"]) == 0
    assert "policy.change" in capsys.readouterr().out  # the commands note the policy first


def test_a_changed_policy_file_is_an_audit_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse.ensure_schema()
    path = tmp_path / "access.yml"
    path.write_text((project_root() / "parameters" / "access.yml").read_text())
    monkeypatch.setenv(policies.ENV_ACCESS_FILE, str(path))
    assert access.note_policy(actor="ops") is True
    assert access.note_policy() is False  # unchanged: nothing to note
    path.write_text(path.read_text().replace("region: [EMEA]", "region: [EMEA, APAC]"))
    assert access.note_policy(actor="ops") is True
    rows = _audit(action="policy.change")
    assert len(rows) == 2 and rows[1]["actor"] == "ops"
    details = json.loads(rows[1]["details"])
    assert details["before"] == json.loads(rows[0]["details"])["after"] != details["after"]
    assert details["roles"]["emea_manager"]["row_filters"] == {"region": ["EMEA", "APAC"]}
    path.write_text("roles: [")  # a broken file is refused, not noted
    with pytest.raises(ConfigError):
        access.note_policy()
    assert len(_audit(action="policy.change")) == 2


def test_the_audit_log_is_append_only_on_postgresql(pg_url: str) -> None:
    warehouse.ensure_schema(pg_url)
    access.add_user("root", "admin", PASSWORD, url=pg_url)
    a = warehouse.schema.audit_log
    for statement in (
        sa.update(a).values(actor="someone else"),
        sa.delete(a),
        sa.text("TRUNCATE audit_log"),
    ):
        with (
            pytest.raises(sa.exc.DBAPIError, match="audit_log is append-only"),
            warehouse.connect(pg_url, write=True) as conn,
        ):
            conn.execute(statement)
    assert [r["actor"] for r in _audit(pg_url)] == [access.users.get_settings().user]
    with pytest.raises(ConfigError, match="limit must be between"):
        access.audit_trail(limit=0, url=pg_url)


def test_sees_within_compares_what_two_roles_see() -> None:
    viewer = policies.Role("viewer")
    analyst = policies.Role("analyst", pii=True)
    emea = policies.Role("emea", row_filters={"region": ("EMEA",)})
    emea_de = policies.Role("emea_de", row_filters={"region": ("EMEA",), "country": ("DE",)})
    two = policies.Role("two", row_filters={"region": ("EMEA", "NA")})
    assert analyst.unrestricted and not viewer.unrestricted
    assert policies.sees_within(viewer, analyst) and not policies.sees_within(analyst, viewer)
    assert policies.sees_within(emea, viewer)  # fewer rows, no PII: within
    assert not policies.sees_within(viewer, emea)  # every region: outside EMEA's filter
    assert policies.sees_within(emea_de, emea) and not policies.sees_within(emea, emea_de)
    assert policies.sees_within(emea, two) and not policies.sees_within(two, emea)
    assert policies.sees_within(None, analyst) and policies.sees_within(viewer, None)
    assert not policies.sees_within(None, viewer)  # the local setup's artifacts: PII


def test_sessions_are_signed_expire_and_share_one_kept_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tornado.web import create_signed_value

    from auterity.access import keys, sessions

    monkeypatch.setenv("AUTERITY_HOME", str(tmp_path))
    monkeypatch.delenv("AUTERITY_SESSION_SECRET", raising=False)
    secret = sessions.session_secret()
    kept = tmp_path / "data" / sessions.SECRET_FILE
    assert kept.read_bytes().strip() == secret and kept.stat().st_mode & 0o777 == 0o600
    assert sessions.session_secret() == secret  # made once, then read

    def cookie(value: str, key: bytes = secret) -> str:
        return create_signed_value(key, sessions.SESSION_COOKIE, value).decode()

    assert sessions.session_user(cookie(sessions.session_value("mia"))) == "mia"
    old = sessions.session_value("mia", issued=time.time() - 9 * 3600)
    assert sessions.session_user(cookie(old)) is None  # past SESSION_HOURS
    assert sessions.session_user(cookie(sessions.session_value("mia"), b"x" * 32)) is None
    assert sessions.session_user(cookie("not json")) is None
    assert sessions.session_user(None) is None
    monkeypatch.setenv("AUTERITY_SESSION_SECRET", "short")
    with pytest.raises(ConfigError, match="AUTERITY_SESSION_SECRET is 5 characters"):
        sessions.session_secret()
    assert keys.MIN_KEY_LENGTH == 32
