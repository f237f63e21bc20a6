"""``auterity lab``: JupyterLab on ``notebooks/`` behind the dashboard server's sign-in.

The same two modes as ``auterity serve`` (:func:`auterity.dashboards.auth.auth_mode`):

* ``users`` (``auto`` once the warehouse has users): the login page asks for a user name
  and password and checks them as the dashboard server does (the same identity provider:
  argon2id, backoff, audit rows, 8-hour sessions), with a cookie of its own
  (``auterity-lab-session``). There is no token at all in this mode, so no page can hand
  one out. A role needs the ``lab`` permission (``parameters/access.yml``): without it
  every route but the login form and package files answers 403 and leaves an
  ``access.denied`` audit row. With it, the user's kernels read as them
  (``AUTERITY_AS``: their row filters and pseudonyms), are theirs alone (another user's
  kernels and sessions answer 403 and are left out of the lists), terminals need the
  ``terminals`` permission too, and nobody signed in may shut the server down.
* ``token`` (``auto`` with no users): one random token for one local person, as
  ``jupyter lab`` does; the server says so when it starts.

The server is :class:`AuterityLab`, Jupyter server with JupyterLab and terminals as its
only extensions (a newly installed server extension adds no route by itself), every route
except :data:`PUBLIC_HANDLERS` behind the ``lab`` permission (:func:`gated`), and
jupyter_server's own identity provider, authorizer, kernel and session managers replaced
by the classes below. A kernel runs code with this server's rights (it can read any file
the server can), so ``lab`` is for trusted data people: row filters in Lab are a
convenience, not a security boundary.
"""

from __future__ import annotations

import inspect
import os
import secrets
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import jinja2
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import User
from jupyter_server.auth.login import LoginFormHandler
from jupyter_server.auth.logout import LogoutHandler
from jupyter_server.base.handlers import (
    APIVersionHandler,
    FileFindHandler,
    JupyterHandler,
    MainHandler,
    PublicStaticFileHandler,
    RedirectWithParams,
    TrailingSlashHandler,
)
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.serverapp import ServerApp
from jupyter_server.services.api.handlers import IdentityHandler
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.services.sessions.sessionmanager import SessionManager
from jupyter_server.utils import url_path_join
from jupyterlab_server.handlers import LabHandler, NotFoundHandler
from tornado import web
from tornado.websocket import WebSocketHandler
from traitlets import Unicode, default
from traitlets.config import Config

from auterity import access, config
from auterity.config import project_root
from auterity.dashboards import auth
from auterity.errors import ConfigError
from auterity.warehouse import connect
from auterity.warehouse.writes import audit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888
LAB = "lab"
"""The permission that opens JupyterLab (``may:`` in ``parameters/access.yml``)."""
TERMINALS = "terminals"
"""The permission that opens terminals in JupyterLab (besides :data:`LAB`)."""
COOKIE = "auterity-lab-session"
"""The session cookie (not the dashboard server's: both may run on one host)."""
SERVER_EXTENSIONS = {"jupyterlab": True, "jupyter_server_terminals": True}
"""The only server extensions loaded (Voila's, for one, would serve dashboards ungated)."""


def notebooks_dir() -> Path:
    """The folder JupyterLab opens: the project's ``notebooks/``."""
    return project_root() / "notebooks"


def record(event: str, actor: str, path: str, **details: Any) -> None:
    """An audit row for something the Lab server decided (an open, a denial)."""
    with connect(write=True) as conn:
        audit(
            conn,
            event,
            actor=actor[:128],
            object_type="lab",
            object_id=path[:256],
            details=details or None,
        )


def permitted(user: User | None, permission: str) -> bool:
    """Whether a signed-in user's role holds ``permission`` (the token's user holds all).

    A user whose role is no longer in the policy holds nothing.
    """
    if user is None:
        return False
    if user.username == auth.SERVER_USER:
        return True
    try:
        role = auth.role_of(user)
    except ConfigError:
        return False
    return role is not None and role.can(permission)


# --------------------------------------------------------------------------- sign-in

LOGIN_PAGE = """\
{#- The login page of `auterity lab` (instead of Jupyter server's): user name and password
    in users mode; in single-token mode Jupyter's form with this server's instructions
    instead of links to Jupyter's online documentation. -#}
{% extends "jupyter_server/login.html" %}
{% block title %}Auterity Lab: sign in{% endblock %}
{% block site %}
{% if users_mode %}
<div id="jupyter-main-app" class="container">
  <h3>Auterity Lab</h3>
  <form action="{{base_url}}login?next={{next}}" method="post" class="navbar-form">
    {{ xsrf_form_html() | safe }}
    <div class="form-group">
      <label for="username_input"><strong>User name</strong></label>
      <input type="text" name="username" id="username_input" class="form-control"
             autocomplete="username" autofocus required>
    </div>
    <div class="form-group">
      <label for="password_input"><strong>Password</strong></label>
      <input type="password" name="password" id="password_input" class="form-control"
             autocomplete="current-password" required>
    </div>
    <button type="submit" class="btn btn-default" id="login_submit">Sign in</button>
  </form>
  {% if message %}
  {% for key in message %}
  <div class="message {{key}}" role="alert">{{message[key]}}</div>
  {% endfor %}
  {% endif %}
  <p>JupyterLab is open to roles with the <code>lab</code> permission. Ask an
     administrator for an account (<code>auterity users add</code>). Cookies are
     required: they keep this browser signed in for a working day, or until you log out.</p>
</div>
{% else %}
{{ super() }}
{% endif %}
{% endblock site %}
{% block token_message %}
<div class="col-sm-6 col-sm-offset-3 text-left rendered_html">
  <h3>Auterity Lab</h3>
  <p>Single-token mode, for one local person. Open the address that
     <code>auterity lab</code> printed when it started: the token in it logs this browser
     in. Or paste the token above (the part of that address after <code>?token=</code>).</p>
  <p>Cookies are required: they keep this browser logged in until you log out.</p>
</div>
{% endblock token_message %}
"""
"""Jinja template of the login page (it extends Jupyter server's ``login.html``)."""


def page_loader(jupyter: jinja2.BaseLoader) -> jinja2.BaseLoader:
    """Jupyter server's template loader with :data:`LOGIN_PAGE` as ``login.html``.

    Jupyter's own pages stay reachable as ``jupyter_server/<name>`` (the login page
    extends Jupyter's).
    """
    return jinja2.ChoiceLoader(
        [
            jinja2.DictLoader({"login.html": LOGIN_PAGE}),
            jinja2.PrefixLoader({"jupyter_server": jupyter}),
            jupyter,
        ]
    )


class LabLoginHandler(auth.AuterityLoginHandler):
    """The dashboard server's login form and checks, with Jupyter server's static files
    (the dashboard server's handler points them at Voila's)."""

    def static_url(self, path: str, include_host: bool | None = None, **kwargs: Any) -> str:
        """The URL of one of Jupyter server's static files."""
        return str(LoginFormHandler.static_url(self, path, include_host, **kwargs))


class LabIdentityProvider(auth.AuterityIdentityProvider):
    """The dashboard server's sign-in, for JupyterLab.

    In users mode the server has no token: authentication stays on without one, and a
    session cookie of the token's user (from an earlier single-token run with the same
    cookie secret) signs nobody in.
    """

    @default("cookie_name")
    def _default_cookie_name(self) -> str:
        return COOKIE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.login_handler_class = LabLoginHandler

    @property
    def auth_enabled(self) -> bool:
        """Always on: the warehouse's users in users mode, else the token."""
        return bool(self.users_mode) or bool(super().auth_enabled)

    def user_from_cookie(self, cookie_value: str) -> User | None:
        """The session's user; in users mode never the token's user."""
        user = super().user_from_cookie(cookie_value)
        if user is not None and self.users_mode and user.username == auth.SERVER_USER:
            return None
        return user


# --------------------------------------------------------------------------- kernels


class LabKernelManager(AsyncMappingKernelManager):
    """Kernels that belong to the user whose request started them.

    A kernel started during a signed-in user's request (:data:`auth.VIEWER`) reads as
    them (``AUTERITY_AS`` in its environment, kept across restarts) and is listed for
    them only; asking to start a kernel under another user's kernel id is HTTP 403. No
    kernel gets the server's token in its environment.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owners: dict[str, str] = {}
        """Kernel id -> the signed-in user it belongs to."""

    def owned_by(self, kernel_id: str | None, user_name: str) -> bool:
        """Whether the kernel ``kernel_id`` belongs to ``user_name``."""
        return kernel_id is not None and self.owners.get(kernel_id) == user_name

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        """Start a kernel for the signed-in user (or return their existing one)."""
        viewer = auth.VIEWER.get()
        kernel_id = kwargs.get("kernel_id")
        if kernel_id is not None and kernel_id in self:
            if viewer is not None and not self.owned_by(kernel_id, viewer):
                raise web.HTTPError(403, "not your kernel")
            return str(await super().start_kernel(*args, **kwargs))
        env = dict(kwargs.get("env") or os.environ)
        env.pop("JUPYTER_TOKEN", None)
        if viewer is not None:
            env[config.ENV_AS] = viewer
        kwargs["env"] = env
        started = str(await super().start_kernel(*args, **kwargs))
        if viewer is not None:
            self.owners[started] = viewer
        return started

    def update_env(self, *, kernel_id: str, env: dict[str, str]) -> None:
        """Update a kernel's environment for its next restart; it still reads as its owner."""
        env = {k: v for k, v in env.items() if k != "JUPYTER_TOKEN"}
        owner = self.owners.get(kernel_id)
        if owner is not None:
            env[config.ENV_AS] = owner
        super().update_env(kernel_id=kernel_id, env=env)

    def list_kernels(self) -> list[dict[str, Any]]:
        """The running kernels; for a signed-in user, theirs only."""
        kernels: list[dict[str, Any]] = super().list_kernels()
        viewer = auth.VIEWER.get()
        if viewer is None:
            return kernels
        return [k for k in kernels if self.owned_by(k["id"], viewer)]

    async def shutdown_kernel(  # type: ignore[override]
        self, kernel_id: str, *args: Any, **kwargs: Any
    ) -> None:
        """Shut a kernel down and forget its owner."""
        await super().shutdown_kernel(kernel_id, *args, **kwargs)
        self.owners.pop(kernel_id, None)


class LabSessionManager(SessionManager):
    """Sessions (a notebook's link to its kernel) that belong to their kernel's owner.

    A signed-in user sees and finds only their own sessions, so two users opening the same
    notebook get a kernel each; binding a session to another user's kernel is HTTP 403.
    """

    def _mine(self, kernel_id: str | None) -> bool:
        viewer = auth.VIEWER.get()
        kernels: LabKernelManager = self.kernel_manager
        return viewer is None or kernels.owned_by(kernel_id, viewer)

    def kernel_of(self, session_id: str) -> str | None:
        """The kernel id of a session (None if there is no such session)."""
        row = self.cursor.execute(
            "SELECT kernel_id FROM session WHERE session_id=?", (session_id,)
        ).fetchone()
        return None if row is None else str(row["kernel_id"])

    def _own_rows(self, **where: Any) -> list[Any]:
        for column in where:
            if column not in self._columns:
                raise TypeError(f"No such column: {column}")
        query = "SELECT session_id, kernel_id FROM session WHERE " + " AND ".join(
            f"{column}=?" for column in where
        )
        rows = self.cursor.execute(query, list(where.values())).fetchall()
        return [row for row in rows if self._mine(row["kernel_id"])]

    async def session_exists(self, path: str) -> bool:
        """Whether the signed-in user has a live session on ``path``."""
        if auth.VIEWER.get() is None:
            return bool(await super().session_exists(path))
        return any(row["kernel_id"] in self.kernel_manager for row in self._own_rows(path=path))

    async def get_session(self, **kwargs: Any) -> dict[str, Any]:
        """A session by its id, or the signed-in user's own session found by other columns."""
        if auth.VIEWER.get() is None or "session_id" in kwargs or not kwargs:
            return dict(await super().get_session(**kwargs))
        for row in self._own_rows(**kwargs):
            return dict(await super().get_session(session_id=row["session_id"]))
        raise web.HTTPError(404, "Session not found")

    async def list_sessions(self) -> list[dict[str, Any]]:
        """The sessions; for a signed-in user, theirs only."""
        sessions: list[dict[str, Any]] = await super().list_sessions()
        return [s for s in sessions if self._mine(s["kernel"]["id"])]

    async def create_session(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A new session, on a kernel of the user's own if it names one (the authorizer
        refuses that first: Jupyter's handler turns an error here into HTTP 500)."""
        kernel_id = kwargs.get("kernel_id")
        if kernel_id is not None and kernel_id in self.kernel_manager and not self._mine(kernel_id):
            raise web.HTTPError(403, "not your kernel")
        return dict(await super().create_session(*args, **kwargs))

    async def update_session(self, session_id: str, **kwargs: Any) -> None:
        """Change a session; moving it to another user's kernel is refused."""
        if "kernel_id" in kwargs and not self._mine(kwargs["kernel_id"]):
            raise web.HTTPError(403, "not your kernel")
        await super().update_session(session_id, **kwargs)


# --------------------------------------------------------------------------- authorization


class LabAuthorizer(Authorizer):
    """What a signed-in user may do in JupyterLab.

    The token's user (single-token mode) may do anything. A signed-in user needs the
    ``lab`` permission for anything, ``terminals`` for terminals, may use only their
    own kernels and sessions, and may not shut the server down (it is shared). Each
    refusal is an ``access.denied`` audit row (not the identity API's questions about
    permissions, which refuse nothing).
    """

    def is_authorized(
        self, handler: web.RequestHandler, user: User, action: str, resource: str
    ) -> bool:
        """Whether ``user`` may ``action`` on ``resource`` (jupyter_server's question)."""
        if user.username == auth.SERVER_USER:
            return True
        refusal = self.refusal(handler, user, resource)
        if refusal is None:
            return True
        if not isinstance(handler, IdentityHandler):
            record(
                "access.denied",
                user.username,
                handler.request.path,
                resource=resource,
                action=action,
                reason=refusal,
            )
        return False

    def refusal(self, handler: web.RequestHandler, user: User, resource: str) -> str | None:
        """Why ``user`` may not touch ``resource`` through ``handler`` (None: they may)."""
        if not permitted(user, LAB):
            return "the role has no lab permission"
        if resource == TERMINALS and not permitted(user, TERMINALS):
            return "the role has no terminals permission"
        if resource == "server":
            return "the server is shared: stop it where it runs"
        kernels: LabKernelManager = handler.settings["kernel_manager"]
        if resource == "kernels":
            kernel_id = handler.path_kwargs.get("kernel_id")
            if kernel_id is not None and not kernels.owned_by(kernel_id, user.username):
                return "another user's kernel"
        if resource == "sessions":
            session_id = handler.path_kwargs.get("session_id")
            if session_id is not None:
                sessions: LabSessionManager = handler.settings["session_manager"]
                if not kernels.owned_by(sessions.kernel_of(session_id), user.username):
                    return "another user's session"
            elif handler.request.method == "POST":  # a new session on a running kernel?
                body = handler.get_json_body()  # type: ignore[attr-defined]
                kernel = body.get("kernel") if isinstance(body, dict) else None
                kernel_id = kernel.get("id") if isinstance(kernel, dict) else None
                taken = isinstance(kernel_id, str) and kernel_id in kernels
                if taken and not kernels.owned_by(kernel_id, user.username):
                    return "another user's kernel"
        return None


PUBLIC_HANDLERS: tuple[type, ...] = (
    LoginFormHandler,
    LogoutHandler,
    FileFindHandler,
    PublicStaticFileHandler,
    TrailingSlashHandler,
    RedirectWithParams,
    MainHandler,
    APIVersionHandler,
)
"""Handlers served as they are: the login form, logging out, package files (scripts,
styles, themes, icons), redirects and the API's version number; never data."""


class _LabGate:
    """Jupyter's authentication first; then a signed-in user without the ``lab``
    permission gets 403 (and an audit row), and one with it is the user whose kernels
    this request starts."""

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        """Authenticate as Jupyter does, then check the ``lab`` permission."""
        handler: JupyterHandler = self  # type: ignore[assignment]
        prepared = super().prepare(*args, **kwargs)  # type: ignore[misc]
        if inspect.isawaitable(prepared):
            await prepared
        user = handler.current_user
        if handler._finished or user is None or user.username == auth.SERVER_USER:
            return
        request = handler.request
        if not permitted(user, LAB):
            record(
                "access.denied",
                user.username,
                request.path,
                resource=LAB,
                action=request.method,
                reason="the role has no lab permission",
            )
            raise web.HTTPError(403, "JupyterLab is not part of your role")
        # each request runs in its own asyncio task: this is this request's user only
        auth.VIEWER.set(user.username)
        page = isinstance(handler, LabHandler) and not isinstance(handler, NotFoundHandler)
        if page and request.method == "GET":
            record("lab.open", user.username, request.path)


def gated(handler: type) -> type:
    """The handler class to serve instead of ``handler`` (fail closed).

    Parameters
    ----------
    handler : type
        A tornado handler class from the server's route table.

    Returns
    -------
    type
        :data:`PUBLIC_HANDLERS` as they are; any other handler behind :class:`_LabGate`
        (a handler that is not a Jupyter handler is put behind Jupyter's sign-in too).
    """
    if issubclass(handler, PUBLIC_HANDLERS):
        return handler
    extra: dict[str, Any] = {"__doc__": handler.__doc__}
    bases: tuple[type, ...]
    if issubclass(handler, JupyterHandler):
        bases = (_LabGate, handler)
    elif issubclass(handler, WebSocketHandler):
        bases = (_LabGate, WebSocketMixin, handler, JupyterHandler)
        extra["set_default_headers"] = lambda self: None
    else:
        bases = (_LabGate, JupyterHandler, handler)
    return type(f"Gated{handler.__name__}", bases, extra)


def gate_routes(app: web.Application) -> int:
    """Put every route of ``app`` behind :func:`gated`; returns how many were replaced."""
    replaced = 0

    def walk(rules: list[Any]) -> None:
        nonlocal replaced
        for rule in rules:
            if hasattr(rule.target, "rules"):
                walk(rule.target.rules)
            elif isinstance(rule.target, type):
                target = gated(rule.target)
                if target is not rule.target:
                    rule.target = target
                    replaced += 1

    walk(app.default_router.rules)
    return replaced


def page_config(handler: JupyterHandler, data: dict[str, Any]) -> dict[str, Any]:
    """JupyterLab's page settings for the signed-in user: no terminal launcher for a
    role without ``terminals`` (its requests would only be refused)."""
    if permitted(handler.current_user, TERMINALS):
        return data
    return {**data, "terminalsAvailable": False}


# --------------------------------------------------------------------------- the server


class AuterityLab(ServerApp):
    """Jupyter server with JupyterLab behind the warehouse's users and their roles.

    Fails to start if configuration replaced the identity provider, authorizer, kernel
    or session manager with classes that do not enforce the roles.
    """

    _REQUIRED: ClassVar[dict[str, type]] = {
        "identity_provider": LabIdentityProvider,
        "authorizer": LabAuthorizer,
        "kernel_manager": LabKernelManager,
        "session_manager": LabSessionManager,
    }

    auth_mode = Unicode(
        "",
        config=True,
        help="users or token (empty: as auterity.dashboards.auth.auth_mode() decides).",
    )

    @default("identity_provider_class")
    def _default_identity_provider_class(self) -> type:
        return LabIdentityProvider

    @default("authorizer_class")
    def _default_authorizer_class(self) -> type:
        return LabAuthorizer

    @default("kernel_manager_class")
    def _default_kernel_manager_class(self) -> type:
        return LabKernelManager

    @default("session_manager_class")
    def _default_session_manager_class(self) -> type:
        return LabSessionManager

    @default("allow_unauthenticated_access")
    def _default_allow_unauthenticated_access(self) -> bool:
        return False

    @default("default_url")
    def _default_default_url(self) -> str:
        return "/lab"

    @default("answer_yes")
    def _default_answer_yes(self) -> bool:
        return True  # one Ctrl-C stops the server, no prompt

    @default("port_retries")
    def _default_port_retries(self) -> int:
        return 0  # the address printed is the address served

    def find_server_extensions(self) -> None:
        """Only :data:`SERVER_EXTENSIONS`, whatever else is installed and enabled."""
        self.jpserver_extensions = dict(SERVER_EXTENSIONS)

    def init_configurables(self) -> None:
        """Jupyter's, checked; sign-in with the warehouse's users in users mode (no token)."""
        super().init_configurables()
        for name, cls in self._REQUIRED.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(
                    f"auterity lab needs {cls.__name__} as its {name}; configuration set "
                    f"{type(getattr(self, name)).__name__}"
                )
        provider: LabIdentityProvider = self.identity_provider  # type: ignore[assignment]
        provider.users_mode = auth.auth_mode(self.auth_mode or None) == "users"
        if provider.users_mode:
            provider.token = ""
        else:
            provider.token  # noqa: B018 (read JUPYTER_TOKEN before it leaves the environment)
        os.environ.pop("JUPYTER_TOKEN", None)  # kernels and terminals do not inherit it

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        """Jupyter's server, then: the login page, each route behind the ``lab``
        permission, and JupyterLab's page settings per user."""
        super().initialize(*args, **kwargs)
        if self._dispatching:
            return
        settings = self.web_app.settings
        settings["jinja2_env"].loader = page_loader(settings["jinja2_env"].loader)
        settings["page_config_hook"] = page_config
        gate_routes(self.web_app)

    def launch_browser(self) -> None:
        """In users mode, open the login page (Jupyter's would carry no token and fail)."""
        provider: LabIdentityProvider = self.identity_provider  # type: ignore[assignment]
        if not provider.users_mode:
            super().launch_browser()
            return
        query = urlencode({"next": url_path_join(self.base_url, "lab")})
        url = url_path_join(self.connection_url, "login") + "?" + query
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()


def server_config() -> Config:
    """Settings of the Lab server besides the command line: no extension installs from the
    UI, no news or update checks against the internet, kernels over Unix sockets."""
    return Config(
        {
            "LabApp": {
                "extension_manager": "readonly",
                "news_url": None,
                "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
            },
            "KernelManager": {"transport": "ipc"},
        }
    )


# --------------------------------------------------------------------------- starting it


def lab_argv(
    host: str, port: int, folder: Path, *, open_browser: bool = False, allow_root: bool = False
) -> list[str]:
    """The server's command-line settings (the token, if any, goes by :func:`server_config`)."""
    return [
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        f"--ServerApp.root_dir={folder}",
        f"--ServerApp.open_browser={open_browser}",
        f"--ServerApp.allow_root={allow_root}",
    ]


def lab_url(host: str, port: int, token: str = "") -> str:
    """The address a person opens (with the token in single-token mode)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/lab" + (f"?token={token}" if token else "")


MODE_MESSAGES = {
    "users": (
        "Sign-in with the warehouse's users: roles with the lab permission "
        "(parameters/access.yml) may use JupyterLab, and each kernel reads as its user. A "
        "kernel runs code with this server's rights: give lab to trusted data people only."
    ),
    "token": (
        "Single-token mode, for one local person: anyone with this address can run code and "
        "read all data. Add users (auterity users add NAME --role ROLE) and restart to "
        "require sign-in with roles."
    ),
}
"""What :func:`run` says about each mode when the server starts."""


def run(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    open_browser: bool = True,
    allow_root: bool = False,
    folder: Path | None = None,
) -> None:
    """Run JupyterLab in this process until Ctrl-C (or SIGTERM) stops it and its kernels.

    Parameters
    ----------
    host, port : str, int
        Where to listen (default loopback only).
    open_browser : bool
        Open a browser at the login page (users mode) or the token address.
    allow_root : bool
        Start even as root (Jupyter refuses: every kernel would run as root).
    folder : Path, optional
        The folder Lab opens; default :func:`notebooks_dir`.
    """
    folder = folder or notebooks_dir()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no notebooks folder to open")
    mode = auth.auth_mode()
    token = secrets.token_urlsafe(24) if mode == "token" else ""
    if mode == "users":
        access.note_policy()  # the grants the server will enforce, in the audit trail
    settings = server_config()
    settings.AuterityLab.auth_mode = mode
    settings.IdentityProvider.token = token
    print(f"Auterity Lab: {lab_url(host, port, token)}", file=sys.stderr, flush=True)
    print(MODE_MESSAGES[mode], file=sys.stderr, flush=True)
    argv = lab_argv(host, port, folder, open_browser=open_browser, allow_root=allow_root)
    AuterityLab.launch_instance(argv=argv, config=settings)
