"""Users in the warehouse: who may sign in, with which role, and how sign-in is checked.

Passwords are stored as argon2id hashes (``argon2-cffi``, its recommended parameters);
the plain password never reaches a log, an audit row or an error message. Every change
(a user added, a password, a role, disabled or enabled again) is an ``audit_log`` row
naming who made it; so is every sign-in and failed sign-in.

Repeated failures slow an attacker down: after :data:`FREE_FAILURES` wrong passwords in a
row a user is locked for a time that doubles with each further failure (30 s, 60 s ...
up to :data:`MAX_LOCK`); the right password during a lock is refused too, and a good
sign-in resets the count. A disabled user cannot sign in; their rows stay for the audit.

Who may change users: anyone holding the warehouse while it has no user yet (the first
admin is created so), then only a user whose role has ``manage_users``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import URL, Connection

from auterity import config
from auterity._time import utcnow
from auterity.access.policy import Policy, Role, load_policy
from auterity.config import get_settings
from auterity.errors import ConfigError
from auterity.warehouse import schema
from auterity.warehouse.engine import connect, ensure_schema
from auterity.warehouse.writes import audit

MIN_PASSWORD_LENGTH = 10
FREE_FAILURES = 5
"""Wrong passwords in a row before each further one locks the user for a while."""
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=30)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password of anyone")
"""Verified against when the user does not exist, so timing does not tell who exists."""


class AccessDenied(ConfigError):
    """The acting user may not do this (a one-line message naming what is missing)."""


@dataclass(frozen=True)
class User:
    """A user as the rest of the product sees them (never the password hash)."""

    name: str
    role: str
    disabled: bool = False


@dataclass(frozen=True)
class SignIn:
    """The outcome of :func:`authenticate`.

    Attributes
    ----------
    user : User or None
        The user when the password was right and they may sign in now.
    reason : str
        ``ok``, ``wrong password`` (also for an unknown user: the caller must not tell
        the two apart), ``disabled`` or ``locked``.
    retry_after : float
        Seconds until a locked user may try again (0 otherwise).
    """

    user: User | None
    reason: str
    retry_after: float = 0.0


def check_name(name: str) -> str:
    """A valid user name (letters, digits, ``._@-``; up to 64), or a ConfigError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    """A password long enough to keep (at least :data:`MIN_PASSWORD_LENGTH` characters)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise ConfigError("a password may not start or end with a space")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of a checked password."""
    return _HASHER.hash(check_password(password))


def _row(conn: Connection, name: str) -> Any:
    u = schema.users
    return conn.execute(sa.select(u).where(u.c.user_name == name)).mappings().first()


def _require_admin(conn: Connection, actor: str, policy: Policy) -> None:
    """Refuse a user change by ``actor`` unless there is no user yet or they may manage."""
    u = schema.users
    if conn.execute(sa.select(sa.func.count()).select_from(u)).scalar_one() == 0:
        return
    row = _row(conn, actor)
    if row is None or row["disabled"]:
        raise AccessDenied(
            f"{actor!r} is not an active user: only a user whose role may manage_users "
            "changes users (act as one with --as USER or AUTERITY_USER)"
        )
    role = policy.role(row["role"])
    if not role.can("manage_users"):
        raise AccessDenied(f"{actor!r} (role {role.name}) may not manage users")


def _actor(actor: str | None) -> str:
    return actor or get_settings().user


def add_user(
    name: str,
    role: str,
    password: str,
    *,
    actor: str | None = None,
    url: str | URL | None = None,
    policy: Policy | None = None,
) -> User:
    """Create a user with a role of the policy.

    Raises
    ------
    ConfigError
        A bad name or short password, an unknown role, a name already taken.
    AccessDenied
        ``actor`` may not manage users.
    """
    policy = policy or load_policy()
    check_name(name)
    policy.role(role)
    hashed = hash_password(password)
    by = _actor(actor)
    now = utcnow()
    ensure_schema(url)
    with connect(url, write=True) as conn:
        _require_admin(conn, by, policy)
        if _row(conn, name) is not None:
            raise ConfigError(f"user {name!r} exists already (change it with passwd / set-role)")
        conn.execute(
            sa.insert(schema.users).values(
                user_name=name,
                role=role,
                password_hash=hashed,
                disabled=False,
                failed_logins=0,
                created_at=now,
                created_by=by,
                changed_at=now,
                changed_by=by,
            )
        )
        audit(
            conn, "user.add", actor=by, object_type="user", object_id=name, details={"role": role}
        )
    return User(name, role)


def _change(
    name: str,
    values: dict[str, Any],
    action: str,
    details: dict[str, Any] | None,
    actor: str | None,
    url: str | URL | None,
    policy: Policy | None,
    *,
    self_service: bool = False,
) -> User:
    policy = policy or load_policy()
    by = _actor(actor)
    ensure_schema(url)
    with connect(url, write=True) as conn:
        if not (self_service and by == name):
            _require_admin(conn, by, policy)
        row = _row(conn, name)
        if row is None:
            raise ConfigError(f"no user {name!r} (auterity users list shows them)")
        u = schema.users
        conn.execute(
            sa.update(u)
            .where(u.c.user_name == name)
            .values(**values, changed_at=utcnow(), changed_by=by)
        )
        audit(conn, action, actor=by, object_type="user", object_id=name, details=details)
        row = _row(conn, name)
    return User(row["user_name"], row["role"], bool(row["disabled"]))


def set_password(
    name: str,
    password: str,
    *,
    actor: str | None = None,
    url: str | URL | None = None,
    policy: Policy | None = None,
) -> User:
    """Give a user a new password (and lift a lock from failed sign-ins); a user may
    change their own."""
    hashed = hash_password(password)
    values = {"password_hash": hashed, "failed_logins": 0, "locked_until": None}
    return _change(name, values, "user.passwd", None, actor, url, policy, self_service=True)


def set_role(
    name: str,
    role: str,
    *,
    actor: str | None = None,
    url: str | URL | None = None,
    policy: Policy | None = None,
) -> User:
    """Give a user another role of the policy."""
    policy = policy or load_policy()
    policy.role(role)
    return _change(name, {"role": role}, "user.set_role", {"role": role}, actor, url, policy)


def set_disabled(
    name: str,
    disabled: bool = True,
    *,
    actor: str | None = None,
    url: str | URL | None = None,
    policy: Policy | None = None,
) -> User:
    """Disable a user (no sign-in; rows kept for the audit) or enable them again."""
    action = "user.disable" if disabled else "user.enable"
    return _change(name, {"disabled": disabled}, action, None, actor, url, policy)


def list_users(url: str | URL | None = None) -> pd.DataFrame:
    """Every user: name, role, disabled, failed sign-ins, lock, last sign-in, who
    created and last changed them (never the password hash)."""
    u = schema.users
    columns = [c for c in u.c if c.name != "password_hash"]
    ensure_schema(url)
    with connect(url) as conn:
        rows = conn.execute(sa.select(*columns).order_by(u.c.user_name)).mappings().all()
    return pd.DataFrame(rows, columns=[c.name for c in columns])


def active_user(
    name: str, *, url: str | URL | None = None, policy: Policy | None = None
) -> tuple[User, Role]:
    """An active user and their role of the access policy.

    Raises
    ------
    AccessDenied
        No such user, or a disabled one.
    """
    found = get_user(name, url=url)
    if found is None or found.disabled:
        state = "disabled" if found is not None else "not a user"
        raise AccessDenied(f"{name!r} is {state} (auterity users list shows the users)")
    return found, (policy or load_policy()).role(found.role)


def has_users(url: str | URL | None = None) -> bool:
    """Whether the warehouse has any user (none: the local one-person setup)."""
    ensure_schema(url)
    with connect(url) as conn:
        return bool(conn.execute(sa.select(sa.func.count()).select_from(schema.users)).scalar_one())


SIGN_IN_MODES = ("auto", "users", "token")


def sign_in_mode(value: str | None = None, url: str | URL | None = None) -> str:
    """How the servers (dashboards, JupyterLab, the API) sign people in: ``users`` or
    ``token``, from ``AUTERITY_DASHBOARD_AUTH`` (``auto``, the default, is ``users`` once
    the warehouse has users, else ``token``: one local person).

    Raises
    ------
    ConfigError
        A value other than auto, users or token.
    """
    asked = (value if value is not None else config.value(config.ENV_DASHBOARD_AUTH)) or "auto"
    if asked not in SIGN_IN_MODES:
        raise ConfigError(
            f"{config.ENV_DASHBOARD_AUTH}={asked!r}: one of {', '.join(SIGN_IN_MODES)}"
        )
    if asked == "auto":
        return "users" if has_users(url) else "token"
    return asked


def get_user(name: str, url: str | URL | None = None) -> User | None:
    """The user ``name`` (disabled ones too), or None."""
    ensure_schema(url)
    with connect(url) as conn:
        row = _row(conn, name)
    return None if row is None else User(row["user_name"], row["role"], bool(row["disabled"]))


def _lock_for(failures: int) -> timedelta:
    """How long the ``failures``-th wrong password in a row locks the user."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    doublings = min(failures - FREE_FAILURES, 20)  # past MAX_LOCK long before 2**20
    return min(FIRST_LOCK * 2**doublings, MAX_LOCK)


def authenticate(
    name: str,
    password: str,
    *,
    url: str | URL | None = None,
    now: datetime | None = None,
    client: str | None = None,
) -> SignIn:
    """Check a sign-in; record it (``auth.login`` or ``auth.login_failed``) either way.

    Parameters
    ----------
    name, password : str
        As typed.
    url : str or URL, optional
        Warehouse URL; default from the settings.
    now : datetime, optional
        Naive UTC now (tests).
    client : str, optional
        Where the attempt came from (an IP address), for the audit row.

    Returns
    -------
    SignIn
    """
    now = now or utcnow()
    details: dict[str, Any] = {"client": client} if client else {}
    ensure_schema(url)
    with connect(url, write=True) as conn:
        row = _row(conn, name) if _NAME.match(name or "") else None
        if row is None:
            _verify(_DUMMY_HASH, password)
            outcome = SignIn(None, "wrong password")
        elif row["disabled"]:
            _verify(_DUMMY_HASH, password)
            outcome = SignIn(None, "disabled")
        elif row["locked_until"] is not None and row["locked_until"] > now:
            wait = (row["locked_until"] - now).total_seconds()
            outcome = SignIn(None, "locked", retry_after=wait)
        elif _verify(row["password_hash"], password):
            outcome = SignIn(User(row["user_name"], row["role"]), "ok")
        else:
            outcome = SignIn(None, "wrong password")
        u = schema.users
        if row is not None and outcome.reason == "ok":
            conn.execute(
                sa.update(u)
                .where(u.c.user_name == name)
                .values(failed_logins=0, locked_until=None, last_login_at=now)
            )
        elif row is not None and outcome.reason == "wrong password":
            failures = int(row["failed_logins"]) + 1
            lock = _lock_for(failures)
            conn.execute(
                sa.update(u)
                .where(u.c.user_name == name)
                .values(failed_logins=failures, locked_until=now + lock if lock else None)
            )
            if lock:
                details["locked_for_s"] = lock.total_seconds()
        audit(
            conn,
            "auth.login" if outcome.reason == "ok" else "auth.login_failed",
            actor=name[:128] if name else "(empty)",
            object_type="user",
            object_id=name[:256] if name else None,
            details={**details, "outcome": outcome.reason},
        )
    return outcome


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
