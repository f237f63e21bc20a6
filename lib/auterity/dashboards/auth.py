"""Who may open what on ``auterity serve``: sign-in with the warehouse's users, grants
enforced in the server through jupyter_server's identity provider and authorizer.

Two modes (``AUTERITY_DASHBOARD_AUTH``, default ``auto``):

* ``users`` (``auto`` once the warehouse has users): a login page asks for a user name
  and password (:func:`auterity.access.authenticate`: argon2id, backoff, audit rows); a
  signed session cookie keeps the browser in for :data:`SESSION_HOURS`; the user's role
  (``parameters/access.yml``) decides which dashboards open (others: HTTP 403, an
  ``access.denied`` audit row), the landing page lists only those, and each dashboard's
  kernel reads as the user (``AUTERITY_AS``: their row filters and PII rule). The files,
  contents, kernels, sessions and terminals APIs answer 403, except a user's own
  dashboard kernel's channels. Pre-heated kernels are off in this mode: they render
  before anyone signs in, so their first paint could not be the viewer's.
* ``token`` (``auto`` with no users): the single-token setup for one local person; the
  token URL opens everything, and the server says so when it starts.

The server's token stays valid in both modes for the server's own kernels (their
request-info socket); in ``users`` mode it is random per start and never printed.
"""

from __future__ import annotations

import json
import time
from contextvars import ContextVar
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import PasswordIdentityProvider, User
from tornado import web
from traitlets import Bool, Float, default
from voila.voila_identity_provider import VoilaLoginHandler

from auterity import access, config
from auterity.access import sessions
from auterity.dashboards import monitoring
from auterity.warehouse import connect
from auterity.warehouse.writes import audit

ENV_AUTH = config.ENV_DASHBOARD_AUTH
MODES = access.SIGN_IN_MODES
SERVER_USER = sessions.SERVER_USER
"""Who the server's token signs in as: the one-person setup, and the server's kernels."""
SESSION_HOURS = sessions.SESSION_HOURS
USER_CACHE_S = 10.0
"""How long a signed-in user's role and state are trusted before the warehouse is asked
again (a disabled user is out within this many seconds)."""

VIEWER: ContextVar[str | None] = ContextVar("auterity_dashboard_viewer", default=None)
"""The signed-in user whose page request is running (kernels it starts read as them)."""


def auth_mode(value: str | None = None) -> str:
    """``users`` or ``token`` (:func:`auterity.access.sign_in_mode`: the API uses the
    same rule).

    Raises
    ------
    ConfigError
        A value other than auto, users or token.
    """
    return access.sign_in_mode(value)


def record(event: str, actor: str, object_id: str | None, **details: Any) -> None:
    """An audit row for something the server decided (a dashboard opened, a denial)."""
    with connect(write=True) as conn:
        audit(
            conn,
            event,
            actor=actor[:128],
            object_type="dashboard",
            object_id=object_id,
            details=details or None,
        )


class AuterityUser(User):
    """A jupyter_server user with the role of the access policy."""

    role: str = ""


class AuterityLoginHandler(VoilaLoginHandler):
    """The login page: user name and password in ``users`` mode, the token otherwise."""

    def _render(self, message: dict[str, str] | None = None) -> None:
        provider = self.identity_provider
        users_mode = bool(getattr(provider, "users_mode", False))
        error = getattr(self, "_auterity_login_error", None)
        if error is not None:
            message = {"error": error}
        self.write(
            self.render_template(
                "login.html",
                next=web.escape.url_escape(self.get_argument("next", default=self.base_url)),
                message=message,
                users_mode=users_mode,
            )
        )

    @allow_unauthenticated
    def post(self) -> None:
        """Check the form; a locked user gets 429 with Retry-After, others 401."""
        super().post()
        retry = getattr(self, "_auterity_retry_after", None)
        if retry is not None and self.get_status() == 401:
            self.set_status(429)
            self.set_header("Retry-After", str(int(retry) + 1))


class AuterityIdentityProvider(PasswordIdentityProvider):
    """Sign-in with the warehouse's users (``users_mode``) or the server's token."""

    users_mode = Bool(False, config=True, help="Sign in with the warehouse's users.")
    session_hours = Float(SESSION_HOURS, config=True, help="Hours a sign-in lasts.")

    @default("cookie_name")
    def _default_cookie_name(self) -> str:
        return sessions.SESSION_COOKIE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.login_handler_class = AuterityLoginHandler  # Voila passes its own: ours wins
        self._known: dict[str, tuple[float, access.User | None]] = {}
        self.get_secure_cookie_kwargs = {"max_age_days": self.session_hours / 24}

    def generate_anonymous_user(self, handler: web.RequestHandler) -> User:
        """The token's user (the name Jupyter gives a token or an open server)."""
        return AuterityUser(SERVER_USER, SERVER_USER, SERVER_USER)

    def user_to_cookie(self, user: User) -> str:
        """The session: who and since when (signed by tornado with the session secret,
        :func:`auterity.access.sessions.session_secret`, shared with the API)."""
        return sessions.session_value(user.username)

    def user_from_cookie(self, cookie_value: str) -> User | None:
        """The session's user while it lasts and they are still an active user."""
        data = json.loads(cookie_value)
        name, issued = str(data["u"]), float(data["t"])
        if time.time() - issued > self.session_hours * 3600:
            return None
        if name == SERVER_USER:
            return self.generate_anonymous_user(None)  # type: ignore[arg-type]
        if not self.users_mode:
            return None
        found = self._user(name)
        if found is None or found.disabled:
            return None
        user = AuterityUser(name, name, name)
        user.role = found.role
        return user

    def _user(self, name: str) -> access.User | None:
        cached = self._known.get(name)
        if cached is not None and time.monotonic() - cached[0] < USER_CACHE_S:
            return cached[1]
        found = access.get_user(name)
        self._known[name] = (time.monotonic(), found)
        return found

    def process_login_form(self, handler: web.RequestHandler) -> User | None:
        """The user the form names if the password is right (every attempt audited)."""
        if not self.users_mode:
            return super().process_login_form(handler)
        name = handler.get_argument("username", default="").strip()
        password = handler.get_argument("password", default="")
        outcome = access.authenticate(name, password, client=handler.request.remote_ip)
        if outcome.user is None:
            messages = {
                "locked": "Too many failed sign-ins: try again in "
                f"{int(outcome.retry_after) + 1} s.",
                "disabled": "Wrong user name or password.",
                "wrong password": "Wrong user name or password.",
            }
            handler._auterity_login_error = messages[outcome.reason]  # type: ignore[attr-defined]
            if outcome.reason == "locked":
                handler._auterity_retry_after = outcome.retry_after  # type: ignore[attr-defined]
            return None
        self._known.pop(name, None)
        user = AuterityUser(name, name, name)
        user.role = outcome.user.role
        return user


def role_of(user: User | None) -> access.Role | None:
    """The access-policy role of a signed-in user (None for the server's token user)."""
    if user is None or user.username == SERVER_USER:
        return None
    role = getattr(user, "role", "")
    return access.load_policy().role(role)


class AuterityAuthorizer(Authorizer):
    """The server's own token may do anything; a signed-in user only their dashboards
    (the page handlers check the grant) and their own dashboard kernels' channels."""

    def is_authorized(
        self, handler: web.RequestHandler, user: User, action: str, resource: str
    ) -> bool:
        """Whether ``user`` may ``action`` on ``resource`` (jupyter_server's question)."""
        if user.username == SERVER_USER:
            return True
        if resource == "kernels":
            kernel_id = handler.path_kwargs.get("kernel_id")
            owners = getattr(handler.settings.get("kernel_manager"), "owners", {})
            if kernel_id is not None and owners.get(kernel_id) == user.username:
                return True
        record(
            "access.denied",
            user.username,
            handler.request.path[:256],
            resource=resource,
            action=action,
        )
        monitoring.metrics().denied.labels(resource).inc()
        return False


def kernel_limit(user_name: str) -> int | None:
    """How many live dashboard kernels the user's role allows at once (None: no limit)."""
    try:
        _user, role = access.active_user(user_name)
    except access.AccessDenied:  # gone or disabled since they signed in: no new kernel
        return 0
    return role.limits.get("dashboard_kernels")


def granted(user: User | None, dashboard: str) -> bool:
    """Whether ``user`` may open the dashboard ``dashboard`` (a notebook's stem)."""
    role = role_of(user)
    return role is None or role.may_open(dashboard)
