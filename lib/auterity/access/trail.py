"""The audit trail: who did what, when, with which parameters and outcome.

Every action that matters appends an ``audit_log`` row where it happens (sign-ins and
failed sign-ins, user changes, report runs and their emails, dashboard opens and
exports, access denials, data loads, GDPR actions, policy changes). The table is
append-only: the code has no update or delete path, and on PostgreSQL a trigger
(migration 0007) refuses UPDATE, DELETE and TRUNCATE for everyone.

:func:`audit_trail` reads it (``auterity audit``); :func:`note_policy` appends a
``policy.change`` row when the access policy file differs from the one last noted.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL

from auterity._time import utcnow
from auterity.access.policy import grants, load_policy, policy_file
from auterity.access.users import AccessDenied, active_user
from auterity.errors import ConfigError
from auterity.warehouse import schema, scope
from auterity.warehouse.engine import connect, ensure_schema
from auterity.warehouse.writes import audit

POLICY_KEY = "access_policy_sha256"
"""``warehouse_meta`` key holding the hash of the policy file last noted."""

MAX_ROWS = 100_000


def audit_trail(
    *,
    since: datetime | None = None,
    user: str | None = None,
    action: str | None = None,
    limit: int = 1000,
    url: str | URL | None = None,
) -> pd.DataFrame:
    """The newest audit rows, newest first.

    Parameters
    ----------
    since : datetime, optional
        Only rows at or after this naive UTC time.
    user : str, optional
        Only rows of this actor.
    action : str, optional
        Only this action (``auth.login``) or, ending in ``.``, this family (``auth.``).
    limit : int
        At most this many rows (1..100,000).
    url : str or URL, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        ``audit_id, ts, actor, action, object_type, object_id, details`` (details parsed
        from JSON).
    """
    if not 1 <= limit <= MAX_ROWS:
        raise ConfigError(f"limit must be between 1 and {MAX_ROWS:,}, not {limit}")
    a = schema.audit_log
    stmt = sa.select(a).order_by(a.c.ts.desc(), a.c.audit_id).limit(limit)
    if since is not None:
        stmt = stmt.where(a.c.ts >= since)
    if user:
        stmt = stmt.where(a.c.actor == user)
    if action:
        stmt = stmt.where(
            a.c.action.startswith(action, autoescape=True)
            if action.endswith(".")
            else a.c.action == action
        )
    ensure_schema(url)
    with connect(url) as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    for row in rows:
        row["details"] = json.loads(row["details"]) if row["details"] else None
    return pd.DataFrame(rows, columns=list(a.c.keys()))


def note_policy(
    path: Path | None = None, *, actor: str | None = None, url: str | URL | None = None
) -> bool:
    """Append a ``policy.change`` row if the policy file changed since last noted.

    The first time, the row records the policy as found. The row holds the file's hash
    before and after and its roles with their grants.

    Returns
    -------
    bool
        True if a row was written.
    """
    path = path or policy_file()
    policy = load_policy(path)  # a broken file is refused before anything is noted
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    meta = schema.warehouse_meta
    ensure_schema(url)
    with connect(url) as conn:
        known = conn.execute(sa.select(meta.c.value).where(meta.c.key == POLICY_KEY)).scalar()
    if known == digest:
        return False
    with connect(url, write=True) as conn:
        known = conn.execute(sa.select(meta.c.value).where(meta.c.key == POLICY_KEY)).scalar()
        if known == digest:  # another process noted it meanwhile
            return False
        values = {"value": digest, "updated_at": utcnow()}
        if known is None:
            conn.execute(sa.insert(meta).values(key=POLICY_KEY, **values))
        else:
            conn.execute(sa.update(meta).where(meta.c.key == POLICY_KEY).values(**values))
        audit(
            conn,
            "policy.change",
            actor=actor,
            object_type="policy",
            object_id=str(path)[:256],
            details={
                "before": known,
                "after": digest,
                "roles": {name: grants(role) for name, role in policy.roles.items()},
            },
        )
    return True


def note_denied(
    user: str | None,
    object_type: str,
    object_id: str,
    *,
    details: dict[str, object] | None = None,
    url: str | URL | None = None,
) -> str:
    """Append an ``access.denied`` row: ``user`` was refused ``object_type`` ``object_id``.

    Returns the row's id.
    """
    ensure_schema(url)
    with connect(url, write=True) as conn:
        return audit(
            conn,
            "access.denied",
            actor=user,
            object_type=object_type,
            object_id=object_id[:256],
            details=details,
        )


def note_export(
    kind: str,
    name: str,
    formats: list[str],
    *,
    user: str | None = None,
    details: dict[str, object] | None = None,
    url: str | URL | None = None,
) -> str:
    """Check that ``user`` may export and append an ``export`` audit row.

    Call it when an export's content is handed over (a dashboard's download links, a
    CLI command's CSV or JSON), before it is.

    Parameters
    ----------
    kind : str
        What is exported from: ``dashboard`` or ``cli``.
    name : str
        Which one (``business``, ``metrics query``).
    formats : list of str
        ``csv``, ``json``, ``png``.
    user : str, optional
        The user exporting; default: the user this process reads as (``AUTERITY_AS``).
        Nobody (the local one-person setup) may export; the row names the OS user.
    details : dict, optional
        Parameters of the export (filters, rows), recorded as given.
    url : str or URL, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    str
        The audit row's id.

    Raises
    ------
    AccessDenied
        The user's role may not ``export`` (an ``access.denied`` row is written), or the
        user is unknown or disabled.
    """
    user = user if user is not None else scope.process_user()
    ensure_schema(url)
    if user is not None:
        _found, role = active_user(user, url=url)
        if not role.can("export"):
            note_denied(user, kind, name, details={"action": "export", "formats": formats}, url=url)
            raise AccessDenied(f"{user!r} (role {role.name}) may not export")
    with connect(url, write=True) as conn:
        return audit(
            conn,
            "export",
            actor=user,
            object_type=kind,
            object_id=name[:256],
            details={"formats": formats, **(details or {})},
        )
