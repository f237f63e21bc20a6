"""Who is calling: the warehouse's users with HTTP Basic, or the server's token.

* ``users`` mode (the warehouse has users, as for the dashboard server: ``auth.auth_mode``):
  ``Authorization: Basic`` with a user name and password, checked by
  :func:`auterity.access.authenticate` (argon2id, backoff, an audit row per check). A
  right password is remembered for :data:`VERIFIED_S` seconds (by a hash of it, never the
  password), so a polling program does not pay argon2 and an audit row on every call; a
  wrong one is checked, and counted towards the lockout, every time.
* ``token`` mode (no users: one local person): ``Authorization: Bearer <token>`` with the
  token ``auterity api`` prints (or ``AUTERITY_DASHBOARD_TOKEN``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from auterity import access
from auterity.access import sessions

VERIFIED_S = 300.0
"""Seconds a right password is trusted before it is checked (and audited) again."""
ACTIVE_S = 5.0
"""Seconds a user's active role is trusted before the users table is read again: a
disabled user (or a new role) takes effect within this long. Reading it on every call
cost ~55 ms (a warehouse connection and a schema check)."""


@dataclass(frozen=True)
class Caller:
    """A signed-in caller: a user of the warehouse, or the token's one local person."""

    name: str
    role: str | None
    """The access-policy role (None for the token's user: everything)."""

    @property
    def acting(self) -> str | None:
        """Whom the metric layer reads as (None: unrestricted)."""
        return self.name if self.role is not None else None


class Unauthorized(Exception):
    """No or wrong credentials (HTTP 401); ``retry_after`` set when the user is locked."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


TOKEN_USER = "auterity-token"


def _basic(value: str) -> tuple[str, str] | None:
    """User name and password of HTTP Basic credentials, or None when malformed."""
    try:
        name, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return name, password


class Authenticator:
    """Checks an ``Authorization`` header for one mode (``users`` or ``token``)."""

    def __init__(self, mode: str, token: str | None = None, url: str | None = None) -> None:
        if mode not in ("users", "token"):
            raise ValueError(f"mode must be users or token, not {mode!r}")
        self.mode = mode
        self.token = token or secrets.token_urlsafe(24)
        self.url = url
        self._verified: dict[tuple[str, bytes], tuple[float, str]] = {}
        self._active_until: dict[str, tuple[float, Caller]] = {}
        self._salt = secrets.token_bytes(16)
        self._lock = threading.Lock()

    def caller(
        self, header: str | None, client: str | None = None, cookie: str | None = None
    ) -> Caller:
        """The caller an ``Authorization`` header names, else the dashboards' session
        cookie (one sign-in for both: :mod:`auterity.access.sessions`).

        Raises
        ------
        Unauthorized
            No header or session, another scheme, or credentials that do not sign in.
        """
        if not header and cookie:
            return self._session(cookie)
        if not header:
            raise Unauthorized("sign in: send Authorization: " + self.scheme_hint())
        scheme, _, value = header.partition(" ")
        if self.mode == "token":
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), self.token.encode()
            ):
                raise Unauthorized("wrong token: send Authorization: " + self.scheme_hint())
            return Caller(TOKEN_USER, None)
        if scheme.lower() != "basic":
            raise Unauthorized("send Authorization: " + self.scheme_hint())
        credentials = _basic(value)
        if credentials is None:
            raise Unauthorized("malformed Basic credentials")
        name, password = credentials
        if self._recently_verified(name, password):
            return self._active(name)
        digest = self._digest(password)
        outcome = access.authenticate(name, password, url=self.url, client=client)
        if outcome.user is None:
            if outcome.reason == "locked":
                raise Unauthorized(
                    f"too many failed sign-ins: try again in {int(outcome.retry_after) + 1} s",
                    retry_after=outcome.retry_after,
                )
            raise Unauthorized("wrong user name or password")
        with self._lock:
            self._verified[(name, digest)] = (time.monotonic() + VERIFIED_S, outcome.user.role)
        return Caller(name, outcome.user.role)

    def known_caller(self, header: str | None, cookie: str | None = None) -> Caller | None:
        """The caller, when deciding it reads nothing (the token; a password or session of
        a user checked within :data:`ACTIVE_S`), else None: then :meth:`caller` decides,
        refusals included."""
        if not header:
            if not cookie:
                return None
            name = sessions.session_user(cookie)
            if name is None:
                return None
            if self.mode == "token":
                return Caller(TOKEN_USER, None) if name == sessions.SERVER_USER else None
            return None if name == sessions.SERVER_USER else self._remembered(name)
        scheme, _, value = header.partition(" ")
        if self.mode == "token":
            right = scheme.lower() == "bearer" and hmac.compare_digest(
                value.strip().encode(), self.token.encode()
            )
            return Caller(TOKEN_USER, None) if right else None
        credentials = _basic(value) if scheme.lower() == "basic" else None
        if credentials is None or not self._recently_verified(*credentials):
            return None
        return self._remembered(credentials[0])

    def _digest(self, password: str) -> bytes:
        """What the verified-passwords memo keeps of a password (salted, this process's)."""
        return hashlib.sha256(self._salt + password.encode()).digest()

    def _recently_verified(self, name: str, password: str) -> bool:
        """Whether this password of ``name`` was verified within :data:`VERIFIED_S`."""
        with self._lock:
            known = self._verified.get((name, self._digest(password)))
        return known is not None and time.monotonic() < known[0]

    def _remembered(self, name: str) -> Caller | None:
        """A user checked active within :data:`ACTIVE_S`, else None."""
        with self._lock:
            known = self._active_until.get(name)
        return known[1] if known is not None and time.monotonic() < known[0] else None

    def _session(self, cookie: str) -> Caller:
        """The user of a dashboard sign-in session (the token's person in token mode)."""
        name = sessions.session_user(cookie)
        if name is None:
            raise Unauthorized("the session has ended: sign in again")
        if self.mode == "token":
            if name != sessions.SERVER_USER:
                raise Unauthorized("sign in with the token")
            return Caller(TOKEN_USER, None)
        if name == sessions.SERVER_USER:
            raise Unauthorized("sign in with your user name and password")
        return self._active(name)

    def _active(self, name: str) -> Caller:
        """A remembered user, if still active (a disabled user is out within
        :data:`ACTIVE_S` seconds)."""
        with self._lock:
            known = self._active_until.get(name)
        if known is not None and time.monotonic() < known[0]:
            return known[1]
        try:
            user, _role = access.active_user(name, url=self.url)
        except access.AccessDenied:
            with self._lock:
                for key in [k for k in self._verified if k[0] == name]:
                    del self._verified[key]
                self._active_until.pop(name, None)
            raise Unauthorized("wrong user name or password") from None
        who = Caller(user.name, user.role)
        with self._lock:
            self._active_until[name] = (time.monotonic() + ACTIVE_S, who)
        return who

    def scheme_hint(self) -> str:
        """What a caller should send."""
        return "Basic <user:password>" if self.mode == "users" else "Bearer <token>"
