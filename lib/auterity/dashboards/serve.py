"""``auterity serve``: the Voila dashboard server, configured by files, behind sign-in.

Everything about the server (pre-heated kernel pools per dashboard, kernel cap and idle
culling, no tracebacks, which dashboards have pools) lives in
``notebooks/dashboards/voila.json``; this module only picks host, port and token, starts
Voila with the dashboards folder as its working directory (so it reads that file) and
prints the URL that lets the local user in.

Access
------
Who signs in and what they may open is :mod:`auterity.dashboards.auth` (the warehouse's
users and their roles, or one token for a local person). The server is
:class:`AuterityVoila`, Voila with every route behind the sign-in except
:data:`PUBLIC_ROUTES` (static assets and the login form). Voila leaves doors open that it
closes: the ``/voila/query/<kernel_id>`` websocket, through which a pre-heated kernel
learns its viewer's request (query string and URL included), the file route
``/voila/files/`` and the contents API ``/voila/api/contents/`` (every file of the folder
for any signed-in user; now the server's token only); any other route Voila may add that
is not a Jupyter handler is closed the same way (fail closed). A page opened with
``?token=`` logs the browser in (a cookie) and is redirected at once to the same URL
without the token, so the token does not stay in the address bar, the history, the
request info handed to kernels or a Referer header.
Pre-heated kernels authenticate their own query socket with the server's token
(:func:`auterity.dashboards.preheat.wait_for_viewer`).

Monitoring
----------
``/metrics`` serves Prometheus series (:mod:`auterity.dashboards.monitoring`) without
sign-in, as the JSON API's does: they are counts by dashboard, route template, status
and limit, never a user name or an id, and a scraper has no browser session.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from jupyter_core.utils import ensure_async
from jupyter_server import __version__ as jupyter_server_version
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler, PrometheusMetricsHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.prometheus import metrics as jupyter_metrics
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.log import access_log, app_log
from tornado.websocket import WebSocketHandler
from traitlets import Int, Unicode, default
from voila.app import Voila
from voila.request_info_handler import RequestInfoSocketHandler
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.static_file_handler import MultiStaticFileHandler, TemplateStaticFileHandler
from voila.tornado.contentshandler import VoilaContentsHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.treehandler import TornadoVoilaTreeHandler

from auterity import access, config
from auterity._process import stop_group
from auterity.access import sessions
from auterity.config import project_root
from auterity.dashboards import auth, monitoring
from auterity.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8866
ENV_TOKEN = config.ENV_DASHBOARD_TOKEN
ENV_DIR = config.ENV_DASHBOARDS_DIR

DASHBOARD: ContextVar[str | None] = ContextVar("auterity_dashboard", default=None)
"""The dashboard (notebook stem) whose page request is running (its kernels count
under that name in ``auterity_dashboard_kernels``)."""


class CappedKernelManager(AsyncMappingKernelManager):
    """A kernel manager that refuses to start more than ``max_kernels`` kernels.

    Set in ``voila.json`` as ``VoilaConfiguration.multi_kernel_manager_class``; Voila builds
    its pre-heating manager on top of it, so pooled kernels count too. Kernels still
    starting count as well, so a crowd arriving at once cannot overshoot the cap. A pool
    refill refused at the cap is retried whenever a kernel goes away (a viewer left or an
    idle kernel was culled), so the pools come back by themselves.
    """

    max_kernels = Int(
        16, config=True, help="Most kernels alive at once (pools included); 0 means no cap."
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._starting = 0
        self._stopping = False
        self.owners: dict[str, str] = {}
        """Kernel id -> the signed-in user whose page started it (``users`` mode)."""
        self._starting_for: dict[str, int] = {}
        self.dashboard_of: dict[str, str] = {}
        """Kernel id -> the dashboard whose page started it (pool kernels: Voila knows)."""

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        """Start a kernel unless the cap is reached (then HTTP 503 for the viewer).

        A kernel started for a signed-in viewer (:data:`auth.VIEWER`) reads as them
        (``AUTERITY_AS`` in its environment) and is theirs alone; past their role's
        ``dashboard_kernels`` they get HTTP 429 with a message instead.
        """
        kind = "pool" if (kwargs.get("env") or {}).get("VOILA_PREHEAT") == "True" else "viewer"
        refused = monitoring.metrics().kernels_refused
        if self.max_kernels and len(self.list_kernel_ids()) + self._starting >= self.max_kernels:
            self.log.warning("kernel cap of %d reached; refusing a new kernel", self.max_kernels)
            refused.labels("server", kind).inc()
            raise web.HTTPError(503, CAP_MESSAGE, reason="Too many dashboards open")
        viewer = auth.VIEWER.get()
        if viewer is not None:
            limit = auth.kernel_limit(viewer)
            mine = sum(1 for owner in self.owners.values() if owner == viewer)
            mine += self._starting_for.get(viewer, 0)
            if limit is not None and mine >= limit:
                refused.labels("role", kind).inc()
                raise web.HTTPError(
                    429,
                    f"You have {limit} live dashboard(s) open, the most your role allows: "
                    "close one (or wait for it to time out) and reload.",
                    reason="Too many dashboards open for you",
                )
            kwargs["env"] = {**(kwargs.get("env") or os.environ), config.ENV_AS: viewer}
            self._starting_for[viewer] = self._starting_for.get(viewer, 0) + 1
        self._starting += 1
        try:
            kernel_id: str = await super().start_kernel(*args, **kwargs)
        finally:
            self._starting -= 1
            if viewer is not None:
                self._starting_for[viewer] -= 1
        if viewer is not None:
            self.owners[kernel_id] = viewer
        dashboard = DASHBOARD.get()
        if dashboard is not None:
            self.dashboard_of[kernel_id] = dashboard
        return kernel_id

    async def shutdown_kernel(  # type: ignore[override]
        self, kernel_id: str, *args: Any, **kwargs: Any
    ) -> None:
        """Shut a kernel down, then top up pre-heated pools that the cap left short."""
        await super().shutdown_kernel(kernel_id, *args, **kwargs)
        self.owners.pop(kernel_id, None)
        self.dashboard_of.pop(kernel_id, None)
        if not self._stopping:
            self.refill_pools()

    async def shutdown_all(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Shut every kernel down (no pool refills any more)."""
        self._stopping = True
        await super().shutdown_all(*args, **kwargs)

    def kernel_counts(self) -> dict[tuple[str, str], int]:
        """Kernels alive by (dashboard, state): ``pooled`` if waiting in a pre-heated
        pool, else ``open``; the dashboard is a notebook's stem (``""`` if unknown)."""
        pooled: set[str] = set()
        for pool in (getattr(self, "_pools", None) or {}).values():
            for task in pool:
                if task.done() and not task.cancelled() and task.exception() is None:
                    pooled.add(task.result()["kernel_id"])
        find = getattr(self, "_get_notebook_from_kernel", None)
        counts: dict[tuple[str, str], int] = {}
        for kernel_id in self.list_kernel_ids():
            notebook = self.dashboard_of.get(kernel_id) or (find and find(kernel_id)) or ""
            key = (Path(notebook).stem, "pooled" if kernel_id in pooled else "open")
            counts[key] = counts.get(key, 0) + 1
        return counts

    def refill_pools(self) -> int:
        """Drop pool entries whose kernel could not start and refill those pools.

        Returns
        -------
        int
            How many failed entries were dropped (0 without pre-heating).
        """
        pools: dict[str, list[Any]] = getattr(self, "_pools", None) or {}
        fill = getattr(self, "fill_if_needed", None)
        dropped = 0
        for name, pool in list(pools.items()):
            kept = [t for t in pool if not (t.done() and (t.cancelled() or t.exception()))]
            dropped += len(pool) - len(kept)
            pool[:] = kept
            if fill is not None:
                fill(notebook_name=name)
        return dropped


CAP_MESSAGE = "Too many dashboards are open; try again in a minute."
"""What a viewer reads when the kernel cap is reached (HTTP 503)."""


def dashboards_dir() -> Path:
    """The folder served: ``AUTERITY_DASHBOARDS_DIR`` or ``notebooks/dashboards``."""
    configured = config.value(ENV_DIR)
    folder = Path(configured) if configured else project_root() / "notebooks" / "dashboards"
    if not (folder / "voila.json").is_file():
        raise ConfigError(f"{folder} has no voila.json: not a dashboards folder")
    return folder


def read_config(folder: Path) -> dict[str, Any]:
    """The parsed ``voila.json`` of a dashboards folder (ConfigError if malformed)."""
    path = folder / "voila.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def dashboards(folder: Path) -> list[str]:
    """Notebooks chosen in ``voila.json`` (the pools in ``kernel_pools_config``).

    Every chosen notebook must exist; the landing page lists exactly these, since
    ``voila.json`` hides every other file of the folder.
    """
    pools = read_config(folder).get("VoilaKernelManager", {}).get("kernel_pools_config", {})
    chosen = [name for name in pools if name != "default"]
    missing = [name for name in chosen if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"voila.json names dashboards that do not exist: {', '.join(missing)}")
    template = read_config(folder).get("VoilaConfiguration", {}).get("template")
    if template and template not in ("lab", "classic", "reveal"):
        for app in ("voila", "nbconvert"):
            if not (folder / TEMPLATES / app / "templates" / template).is_dir():
                raise ConfigError(
                    f"voila.json selects the template {template!r} but "
                    f"{folder / TEMPLATES / app / 'templates' / template} does not exist"
                )
    return chosen


def new_token() -> str:
    """The access token: ``AUTERITY_DASHBOARD_TOKEN`` if set, else a random one."""
    return config.value(ENV_TOKEN) or secrets.token_urlsafe(24)


def dashboard_url(host: str, port: int, token: str, path: str = "") -> str:
    """The URL a local user opens (token in the query string; a cookie keeps them in)."""
    shown = f"[{host}]" if ":" in host else host
    query = f"?token={token}" if token else ""
    return f"http://{shown}:{port}/{path.lstrip('/')}{query}"


def voila_command(host: str, port: int) -> list[str]:
    """The server's command line: :class:`AuterityVoila` (everything else from ``voila.json``)."""
    return [
        sys.executable,
        "-m",
        "auterity.dashboards.serve",
        f"--Voila.ip={host}",
        f"--Voila.port={port}",
        "--Voila.open_browser=False",
        "--no-browser",
    ]


TEMPLATES = "_share"
"""Folder of a dashboards folder holding ``voila/templates/auterity`` (the landing page)."""


def voila_env(
    token: str, base: dict[str, str] | None = None, folder: Path | None = None
) -> dict[str, str]:
    """The server's environment: the token, and the dashboards' Voila template on the path.

    Parameters
    ----------
    token : str
        Access token (required: anonymous access is not allowed).
    base : dict, optional
        Environment to start from; default ``os.environ``.
    folder : Path, optional
        Dashboards folder; its ``_share`` folder goes first on ``JUPYTER_PATH`` so Voila
        finds the ``auterity`` template that ``voila.json`` selects.
    """
    env = dict(os.environ if base is None else base)
    if not token:
        raise ConfigError("an access token is required (anonymous access is not allowed)")
    env["JUPYTER_TOKEN"] = token
    env.setdefault("PYTHONUNBUFFERED", "1")
    if folder is not None:
        share = str((folder / TEMPLATES).resolve())
        rest = env.get("JUPYTER_PATH", "")
        env["JUPYTER_PATH"] = share + (os.pathsep + rest if rest else "")
    return env


def start(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    folder: Path | None = None,
    new_session: bool = True,
    **popen: Any,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start Voila in the background.

    Parameters
    ----------
    host, port : str, int
        Where to listen (default loopback only).
    token : str, optional
        Access token; default :func:`new_token`.
    folder : Path, optional
        Dashboards folder; default :func:`dashboards_dir`.
    **popen
        Passed to :class:`subprocess.Popen` (e.g. ``stdout``).

    Returns
    -------
    tuple
        The process (its own process group: stop it with :func:`stop`) and the URL.
    """
    folder = folder or dashboards_dir()
    dashboards(folder)
    token = token or new_token()
    mode = auth.auth_mode()
    if mode == "users":
        access.note_policy()  # the grants the server will enforce, in the audit trail
    env = voila_env(token, folder=folder)
    env[auth.ENV_AUTH] = mode
    process = subprocess.Popen(
        voila_command(host, port),
        cwd=folder,
        env=env,
        start_new_session=new_session,
        **popen,
    )
    # in users mode the token is the server's own (its kernels'): never shown
    return process, dashboard_url(host, port, token if mode == "token" else "")


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop a server from :func:`start` and its kernels (its process group)."""
    stop_group(process, timeout)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None) -> int:
    """Run the server in the foreground until Ctrl-C; returns its exit status."""
    process, url = start(host, port, token=token, new_session=False)
    print(f"Auterity dashboards: {url}", file=sys.stderr, flush=True)
    if "?token=" in url:
        print(
            "Single-token mode, for one local person: anyone with this address sees every "
            "dashboard and all data. Add users (auterity users add NAME --role ROLE) and "
            "restart to require sign-in with roles.",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(
            "Sign-in with the warehouse's users; each sees the dashboards and rows their "
            "role grants (parameters/access.yml).",
            file=sys.stderr,
            flush=True,
        )

    def _terminate(_signum: int, _frame: Any) -> None:
        process.terminate()

    signal.signal(signal.SIGTERM, _terminate)
    try:
        return process.wait()
    except KeyboardInterrupt:
        stop(process)
        return 0


# --------------------------------------------------------------------------- access


PUBLIC_ROUTES: dict[str, str] = {
    "/voila/static/": "Voila's scripts, styles and fonts (the login page uses them too)",
    "/voila/templates/": "static files of the page templates",
    "/voila/labextensions/": "scripts of the JupyterLab widget extensions",
    "/voila/api/themes/": "JupyterLab theme stylesheets",
    "/login": "the login form (its password is the token)",
    "/logout": "ends the session",
    "/metrics": "Prometheus series: counts by dashboard, route template and status, "
    "never a user or an id (a scraper has no session; as the JSON API's /metrics)",
}
"""Routes that answer without the token: package assets, the login form and counters,
never data."""

_PUBLIC_HANDLERS = (TemplateStaticFileHandler, MultiStaticFileHandler)
"""Plain tornado handlers left open: they serve the files behind :data:`PUBLIC_ROUTES`."""

_PAGES = (TornadoVoilaTreeHandler, TornadoVoilaHandler)
"""Handlers of the pages a person opens (landing page, dashboards)."""


class TemplateAssetHandler(TemplateStaticFileHandler):
    """Voila's template assets (``<template>/static/<file>``); any other path is a 404.

    Voila's handler unpacks the path without checking it, so ``/voila/templates/x``
    answered 500 with a traceback in the log for anybody.
    """

    def parse_url_path(self, url_path: str) -> str:
        """The file's path, or HTTP 404 for a path of another form."""
        parts = os.path.normpath(url_path).split(os.path.sep, 2)
        if len(parts) < 3 or parts[1] != "static" or not parts[0] or parts[0] == "..":
            raise web.HTTPError(404)
        return super().parse_url_path(url_path)


class _CleanUrlMixin:
    """After a ``?token=`` login (the cookie is set), send the browser to the URL without it."""

    async def prepare(self) -> None:
        """Authenticate as Jupyter does, then redirect a token-bearing page request."""
        await super().prepare()  # type: ignore[misc]
        handler: web.RequestHandler = self  # type: ignore[assignment]
        request = handler.request
        if (
            handler._finished
            or request.method not in ("GET", "HEAD")
            or "token" not in request.query_arguments
            or handler.current_user is None
        ):
            return
        kept = [
            (name, value.decode("utf-8", "replace"))
            for name, values in request.query_arguments.items()
            if name != "token"
            for value in values
        ]
        handler.redirect(request.path + (f"?{urlencode(kept)}" if kept else ""))


class _VoilaStaticUrls:
    """Jupyter's error, login and logout pages link static files; Voila serves them here.

    Without this, every error page of a Jupyter handler (a 403 for a visitor without the
    token, a 404) and the logout page fail to render (standalone Voila has no
    ``static_path``): a traceback in the log and an empty 500 for ``/logout``.
    """

    def static_url(self, path: str, include_host: bool | None = None, **kwargs: Any) -> str:
        """The URL of a file under Voila's static route."""
        return url_path_join(self.base_url, "voila/static", path)  # type: ignore[attr-defined]


class AuthenticatedRequestInfoHandler(
    _VoilaStaticUrls, WebSocketMixin, RequestInfoSocketHandler, JupyterHandler
):
    """Voila's ``/voila/query/<kernel_id>`` socket, for authenticated clients only.

    Voila hands a pre-heated kernel its viewer's request info (path, query string) over
    this socket; Voila's own handler answers anybody. Here a client without the token (or
    the login cookie) gets HTTP 403 before the socket opens.
    """

    auth_resource = "kernels"

    def set_default_headers(self) -> None:
        """No page headers on a websocket (as jupyter_server's kernel socket)."""

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Open the socket for an authenticated, authorized client."""
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", "kernels")
        )
        if not allowed:
            raise web.HTTPError(403)
        await super().get(*args, **kwargs)  # type: ignore[misc]  # tornado: Awaitable | None


class _GrantedPageMixin:
    """A dashboard opens only for a user whose role grants it (else 403 and an audit row);
    the kernel it starts reads as that user and is theirs alone."""

    async def get(self, path: str = "", *args: Any, **kwargs: Any) -> Any:
        """Check the grant, then render with the viewer known to the kernel manager."""
        handler: JupyterHandler = self  # type: ignore[assignment]
        user = handler.current_user
        if user is None:  # not signed in: Voila's own handler sends them to the login page
            return await super().get(path, *args, **kwargs)  # type: ignore[misc]
        name = Path(path).stem
        if not auth.granted(user, name):
            auth.record("access.denied", user.username, path[:256], resource="dashboard")
            monitoring.metrics().denied.labels("dashboard").inc()
            raise web.HTTPError(403, f"{name} is not one of your dashboards")
        viewer = None if user.username == auth.SERVER_USER else user.username
        if viewer is not None:
            auth.record("dashboard.open", viewer, name)
        token = auth.VIEWER.set(viewer)
        shown = DASHBOARD.set(name)
        try:
            return await super().get(path, *args, **kwargs)  # type: ignore[misc]
        finally:
            DASHBOARD.reset(shown)
            auth.VIEWER.reset(token)


class _GrantedTreeMixin:
    """The landing page lists only the dashboards the signed-in user may open."""

    def render_template(self, name: str, **ns: Any) -> str:
        """Jupyter's render, the listing cut to the user's grants first."""
        handler: JupyterHandler = self  # type: ignore[assignment]
        role = auth.role_of(handler.current_user)
        contents = ns.get("contents")
        if role is not None and contents is not None:
            contents["content"] = [
                item
                for item in contents["content"]
                if item["type"] == "notebook" and role.may_open(Path(item["name"]).stem)
            ]
        return str(super().render_template(name, **ns))  # type: ignore[misc]


class _OwnKernelShutdownMixin:
    """``/voila/api/shutdown/<kernel_id>`` (a page closing) for the kernel's own viewer
    only: Voila's handler shut down any kernel for any signed-in user."""

    async def post(self, kernel_id: str) -> Any:
        """Shut the kernel down if the authorizer lets this user write to it."""
        handler: JupyterHandler = self  # type: ignore[assignment]
        handler.path_kwargs.setdefault("kernel_id", kernel_id)
        allowed = await ensure_async(
            handler.authorizer.is_authorized(handler, handler.current_user, "write", "kernels")
        )
        if not allowed:
            raise web.HTTPError(403)
        return await super().post(kernel_id)  # type: ignore[misc]


class _AuthorizedContentsMixin:
    """``/voila/api/contents/<path>`` only for whom the authorizer lets read contents (the
    server's token): Voila's handler gave any signed-in user every file of the dashboards
    folder, an ungranted dashboard's notebook included (the landing page is rendered by
    the server and does not need it)."""

    async def get(self, path: str = "") -> Any:
        """The contents model if the authorizer allows it, else HTTP 403 (audited)."""
        handler: JupyterHandler = self  # type: ignore[assignment]
        user = handler.current_user
        if user is not None:  # not signed in: Voila's handler refuses them (authenticated)
            allowed = await ensure_async(
                handler.authorizer.is_authorized(handler, user, "read", "contents")
            )
            if not allowed:
                raise web.HTTPError(403)
        return await super().get(path)  # type: ignore[misc]


def _closed(handler: type) -> type:
    """``handler`` behind the login: Jupyter's authentication in front of a plain handler."""
    if issubclass(handler, WebSocketHandler):
        bases: tuple[type, ...] = (_VoilaStaticUrls, WebSocketMixin, handler, JupyterHandler)
        extra: dict[str, Any] = {"set_default_headers": lambda self: None}
    else:
        bases, extra = (_VoilaStaticUrls, JupyterHandler, handler), {}
    return type(f"Authenticated{handler.__name__}", bases, {"__doc__": handler.__doc__, **extra})


def secure_handler(handler: type) -> type:
    """The handler class to serve instead of one of Voila's (fail closed).

    Parameters
    ----------
    handler : type
        A tornado handler class from Voila's route table.

    Returns
    -------
    type
        The query socket authenticated; the public static handlers as they are; Jupyter
        handlers (which authenticate every method not marked ``allow_unauthenticated``)
        with working error pages, pages also with the clean-URL redirect; any other plain
        tornado handler behind the login.
    """
    if handler is RequestInfoSocketHandler:
        return AuthenticatedRequestInfoHandler
    if handler is TemplateStaticFileHandler:
        return TemplateAssetHandler
    if issubclass(handler, _PUBLIC_HANDLERS):
        return handler
    if not issubclass(handler, JupyterHandler):
        return _closed(handler)
    mixins: tuple[type, ...] = (_CleanUrlMixin,) if issubclass(handler, _PAGES) else ()
    if issubclass(handler, TornadoVoilaHandler):
        mixins += (_GrantedPageMixin,)
    elif issubclass(handler, VoilaShutdownKernelHandler):
        mixins += (_OwnKernelShutdownMixin,)
    elif issubclass(handler, TornadoVoilaTreeHandler):
        mixins += (_GrantedTreeMixin,)
    elif issubclass(handler, VoilaContentsHandler):
        mixins += (_AuthorizedContentsMixin,)
    return type(
        handler.__name__, (*mixins, _VoilaStaticUrls, handler), {"__doc__": handler.__doc__}
    )


def route_table(app: web.Application) -> list[dict[str, Any]]:
    """Every route a tornado application serves: pattern, handler class, websocket or not.

    Walks the application's routers as tornado matches them, so it shows what the
    running server answers, not what was meant to be registered.
    """
    routes: list[dict[str, Any]] = []

    def walk(rules: list[Any]) -> None:
        for rule in rules:
            target = rule.target
            if hasattr(target, "rules"):
                walk(target.rules)
                continue
            pattern = getattr(rule.matcher, "regex", None)
            if pattern is None or not isinstance(target, type):
                continue
            routes.append(
                {
                    "pattern": pattern.pattern,
                    "handler": f"{target.__module__}.{target.__qualname__}",
                    "websocket": issubclass(target, WebSocketHandler),
                }
            )

    walk(app.default_router.rules)
    return routes


SERVER_PAGES = "server"
"""Folder of the dashboards' Voila template with pages that replace Jupyter server's own
(the login page: Jupyter's links to its online documentation)."""


def server_page_loader(template_paths: list[str], template: str, jupyter: Any) -> Any:
    """The loader of Jupyter server's pages: the template's :data:`SERVER_PAGES` first.

    Parameters
    ----------
    template_paths : list of str
        Voila's template folders (``Voila.template_paths``).
    template : str
        The template ``voila.json`` selects; only its folders are searched.
    jupyter : jinja2.BaseLoader
        Jupyter server's own loader; a page here may extend Jupyter's as
        ``jupyter_server/<name>``.

    Returns
    -------
    jinja2.BaseLoader
        ``jupyter`` itself if the template has no such folder.
    """
    folders = [
        str(Path(path) / SERVER_PAGES)
        for path in template_paths
        if Path(path).name == template and (Path(path) / SERVER_PAGES).is_dir()
    ]
    if not folders:
        return jupyter
    return jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(folders),
            jinja2.PrefixLoader({"jupyter_server": jupyter}),
            jupyter,
        ]
    )


class AuterityVoila(Voila):
    """Voila with every route behind the token except :data:`PUBLIC_ROUTES`.

    Reads ``voila.json`` as Voila does (the application is still named ``voila``). Jupyter
    server's pages (login, logout, its error pages) come from the template's
    :data:`SERVER_PAGES` folder where it has one (:func:`server_page_loader`).
    """

    route_table_file = Unicode(
        "",
        config=True,
        help="Write the served route table as JSON to this file at startup (for tests).",
    )

    @default("identity_provider_class")
    def _default_identity_provider_class(self) -> type:
        return auth.AuterityIdentityProvider

    @default("cookie_secret")
    def _default_cookie_secret(self) -> bytes:
        """The setup's session secret: one sign-in for the dashboards and the API, and
        sessions that outlive a restart."""
        return sessions.session_secret()

    @default("authorizer_class")
    def _default_authorizer_class(self) -> type:
        return auth.AuterityAuthorizer

    def init_settings(self) -> dict[str, Any]:
        """Voila's settings, Jupyter server's pages looked up in the template first; in
        ``users`` mode no pre-heated kernels (they would render before the viewer is
        known) and sign-in with the warehouse's users."""
        users_mode = auth.auth_mode() == "users"
        if users_mode:
            self.voila_configuration.preheat_kernel = False
        settings: dict[str, Any] = super().init_settings()
        self.identity_provider.users_mode = users_mode
        # /metrics is public: counts only (see the module's docstring)
        settings["authenticate_prometheus"] = False
        settings["log_function"] = self.log_request
        try:
            chosen = dashboards(Path(self.root_dir))
        except ConfigError:  # not a dashboards folder: every name counts as "other"
            chosen = []
        self._dashboards = frozenset(Path(name).stem for name in chosen)
        if isinstance(self.kernel_manager, CappedKernelManager):
            monitoring.metrics().watch_kernels(self._kernel_counts)
        started = time.time()
        self._last_request = started
        jupyter_metrics.SERVER_INFO.info({"version": jupyter_server_version})
        jupyter_metrics.SERVER_STARTED.set(started)
        jupyter_metrics.LAST_ACTIVITY.set_function(lambda: self._last_request)
        jupyter_metrics.ACTIVE_DURATION.set_function(lambda: self._last_request - started)
        env = settings["jinja2_env"]
        if env is not settings["voila_jinja2_env"]:  # Jupyter's pages have their own
            template = self.voila_configuration.template
            env.loader = server_page_loader(self.template_paths, template, env.loader)
        return settings

    def init_handlers(self) -> list[Any]:
        """Voila's routes and ``/metrics``, each with the handler :func:`secure_handler`
        chooses (a class of its own per route, so requests count by route template)."""
        metrics_route = (url_path_join(self.server_url, "/metrics"), PrometheusMetricsHandler)
        handlers: list[Any] = []
        self._route_of: dict[type, str] = {}
        for spec in [*super().init_handlers(), metrics_route]:
            handler = secure_handler(spec[1])
            if handler in self._route_of:  # shared by two routes: a subclass for this one
                handler = type(handler.__name__, (handler,), {"__doc__": handler.__doc__})
            self._route_of[handler] = monitoring.route_template(spec[0])
            handlers.append((spec[0], handler, *spec[2:]))
        return handlers

    def log_request(self, handler: web.RequestHandler) -> None:
        """Count a finished request (:mod:`auterity.dashboards.monitoring`), then log it
        as tornado does."""
        try:
            self._count(handler)
        except Exception:  # a metrics fault must not break a response
            app_log.exception("could not count a request in the metrics")
        status = handler.get_status()
        log = access_log.info if status < 400 else access_log.warning
        log = access_log.error if status >= 500 else log
        summary = handler._request_summary()  # tornado's own line
        log("%d %s %.2fms", status, summary, 1000.0 * handler.request.request_time())

    def _count(self, handler: web.RequestHandler) -> None:
        status, seconds = handler.get_status(), handler.request.request_time()
        self._last_request = time.time()
        cls = type(handler)
        method = monitoring.method_label(handler.request.method)
        series = monitoring.metrics()
        series.request(self._route_of.get(cls, "unmatched"), method, status, seconds)
        jupyter_metrics.HTTP_REQUEST_DURATION_SECONDS.labels(
            method=method, handler=f"{cls.__module__}.{cls.__name__}", status_code=status
        ).observe(seconds)
        if isinstance(handler, TornadoVoilaHandler) and method == "GET":
            name = Path(handler.path_args[0] if handler.path_args else "").stem
            label = monitoring.dashboard_label(name, self._dashboards)
            series.opens.labels(label, str(status)).inc()

    def _kernel_counts(self) -> dict[tuple[str, str], int]:
        """Kernels alive by (dashboard, state), unknown dashboard names as ``other``."""
        counts: dict[tuple[str, str], int] = {}
        for (name, state), count in self.kernel_manager.kernel_counts().items():
            key = (monitoring.dashboard_label(name, self._dashboards), state)
            counts[key] = counts.get(key, 0) + count
        return counts

    def listen(self) -> None:
        """Write the route table if asked, then serve."""
        if self.route_table_file:
            Path(self.route_table_file).write_text(json.dumps(route_table(self.app), indent=1))
        super().listen()


if __name__ == "__main__":  # `python -m auterity.dashboards.serve`: the process of start()
    # the class of the importable module (voila.json names it), not of __main__
    from auterity.dashboards.serve import AuterityVoila as _Server

    _Server.launch_instance()
