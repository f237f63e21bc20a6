"""``auterity users`` (who may sign in, with which role of parameters/access.yml) and
``auterity audit`` (the audit trail)."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta

import click
import pandas as pd

from auterity import access
from auterity._time import utcnow
from auterity.access.policy import grants
from auterity.cli.main import cli
from auterity.cli.output import AS_USER, FORMATS, echo_json, emit, require
from auterity.errors import ConfigError

AS_OPTION = click.option(
    "--as",
    "actor",
    metavar="USER",
    envvar="AUTERITY_USER",
    help="Act as this user (default AUTERITY_USER, else the OS user); their role must "
    "have manage_users once any user exists.",
)


def _password(from_stdin: bool, confirm: bool = True) -> str:
    """The new password: one line of standard input, or typed twice at a prompt (never
    an argument: command lines end up in shell history and process lists)."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise ConfigError("--password-stdin: no password on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for the password: pipe it in with --password-stdin")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))


@cli.group("users")
def users() -> None:
    """Users who may sign in to the dashboards and the API, and their roles.

    Roles and what they grant are in parameters/access.yml (AUTERITY_ACCESS_FILE).
    Passwords are read from a prompt or --password-stdin, never from arguments.
    """
    access.note_policy()  # a changed policy file is an audit row before anything else


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, help="A role of parameters/access.yml.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@AS_OPTION
def add_cmd(name: str, role: str, password_stdin: bool, actor: str | None) -> None:
    """Create user NAME with ROLE (the first user needs no --as: make them an admin)."""
    user = access.add_user(name, role, _password(password_stdin), actor=actor)
    click.echo(f"added {user.name} ({user.role})")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@AS_OPTION
def passwd_cmd(name: str, password_stdin: bool, actor: str | None) -> None:
    """Set NAME's password (and lift a lock from failed sign-ins)."""
    access.set_password(name, _password(password_stdin), actor=actor)
    click.echo(f"password of {name} changed")


@users.command("set-role")
@click.argument("name")
@click.argument("role")
@AS_OPTION
def set_role_cmd(name: str, role: str, actor: str | None) -> None:
    """Give NAME the role ROLE."""
    user = access.set_role(name, role, actor=actor)
    click.echo(f"{user.name} is now {user.role}")


@users.command("disable")
@click.argument("name")
@AS_OPTION
def disable_cmd(name: str, actor: str | None) -> None:
    """Stop NAME from signing in (their history stays in the audit log)."""
    access.set_disabled(name, True, actor=actor)
    click.echo(f"{name} disabled")


@users.command("enable")
@click.argument("name")
@AS_OPTION
def enable_cmd(name: str, actor: str | None) -> None:
    """Let a disabled user sign in again."""
    access.set_disabled(name, False, actor=actor)
    click.echo(f"{name} enabled")


@users.command("list")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def list_cmd(fmt: str) -> None:
    """Every user with role, state and who created and changed them (no hashes)."""
    emit(access.list_users(), fmt)


@users.command("roles")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def roles_cmd(fmt: str) -> None:
    """The roles of the access policy and what each grants."""
    policy = access.load_policy()
    rows = [grants(role) for role in policy.roles.values()]
    if fmt == "json":
        echo_json(rows)
        return
    emit(pd.DataFrame([{k: str(v) for k, v in row.items()} for row in rows]), fmt)


_DURATION = re.compile(r"^(\d+)\s*([smhd])$")


def _since(text: str | None) -> datetime | None:
    """``--since``: a duration back from now (``90m``, ``24h``, ``7d``) or a UTC date or
    time (``2026-12-01``, ``2026-12-01T08:00``)."""
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
        return utcnow() - timedelta(**{unit: int(match[1])})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: a duration (90m, 24h, 7d) or a UTC date/time (2026-12-01)"
        ) from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


@cli.command("audit")
@click.option("--since", metavar="WHEN", help="A duration back (24h, 7d) or a UTC date/time.")
@click.option("--user", help="Only this actor.")
@click.option("--action", help="Only this action (auth.login) or family (auth.).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@AS_USER
def audit_cmd(
    since: str | None,
    user: str | None,
    action: str | None,
    limit: int,
    fmt: str,
    as_user: str | None,
) -> None:
    """The audit trail, newest first: sign-ins, user and policy changes, report runs and
    emails, dashboard opens, access denials, data loads, GDPR actions.

    Reading it needs the audit permission once the warehouse has users (--as).
    """
    access.note_policy()
    require(as_user, "audit", "read the audit trail")
    trail = access.audit_trail(since=_since(since), user=user, action=action, limit=limit)
    if fmt == "json":
        echo_json(trail.to_dict("records"))
        return
    shown = trail.assign(details=trail["details"].map(lambda d: "" if d is None else json.dumps(d)))
    emit(shown.drop(columns=["audit_id"]), fmt)
