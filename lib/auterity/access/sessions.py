"""Sign-in sessions shared by the servers: one sign-in for the dashboards and the API.

The dashboard server's login page sets the cookie :data:`SESSION_COOKIE`: tornado's
signed value of ``{"u": user, "t": issued}`` under the session secret
(:func:`session_secret`: ``AUTERITY_SESSION_SECRET``, else ``data/.session_secret``
made once). Every server of the setup signs and checks with the same secret, so a
browser signed in to the dashboards calls the API with the same cookie (cookies are
per host, not per port), and a restart does not sign everyone out.
"""

from __future__ import annotations

import json
import time

from auterity import config
from auterity.access.keys import stored_secret

SESSION_COOKIE = "auterity-session"
SESSION_HOURS = 8.0
"""Hours a sign-in lasts."""
SECRET_FILE = ".session_secret"
SERVER_USER = "auterity-server"
"""Whom a server's token signs a browser in as (the single-token setup's one person)."""


def session_secret() -> bytes:
    """The secret that signs session cookies (the environment's, else the kept file's)."""
    return stored_secret(
        config.ENV_SESSION_SECRET,
        config.value(config.ENV_SESSION_SECRET),
        config.data_dir() / SECRET_FILE,
    )


def session_value(user: str, issued: float | None = None) -> str:
    """The (unsigned) value of a session cookie for ``user``."""
    return json.dumps({"u": user, "t": time.time() if issued is None else issued})


def session_user(
    signed: str | None, *, hours: float = SESSION_HOURS, secret: bytes | None = None
) -> str | None:
    """The user a signed session cookie names, or None (missing, forged, expired).

    Parameters
    ----------
    signed : str
        The cookie as the browser sent it.
    hours : float
        How long a session lasts.
    secret : bytes, optional
        Default :func:`session_secret`.
    """
    if not signed:
        return None
    from tornado.web import decode_signed_value

    raw = decode_signed_value(
        secret or session_secret(), SESSION_COOKIE, signed, max_age_days=hours / 24
    )
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        name, issued = str(data["u"]), float(data["t"])
    except (ValueError, KeyError, TypeError):
        return None
    if time.time() - issued > hours * 3600:
        return None
    return name
