"""``auterity serve``: the Voila dashboard server, configured by files, protected by a token.

Everything about the server (pre-heated kernel pools per dashboard, kernel cap and idle
culling, no tracebacks, which dashboards have pools) lives in
``notebooks/dashboards/voila.json``; this module only picks host, port and token, starts
Voila with the dashboards folder as its working directory (so it reads that file) and
prints the URL that lets the local user in.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Int

from auterity.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8866
ENV_TOKEN = "AUTERITY_DASHBOARD_TOKEN"
ENV_DIR = "AUTERITY_DASHBOARDS_DIR"


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

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        """Start a kernel unless the cap is reached (then HTTP 503 for the viewer)."""
        if self.max_kernels and len(self.list_kernel_ids()) + self._starting >= self.max_kernels:
            self.log.warning("kernel cap of %d reached; refusing a new kernel", self.max_kernels)
            raise web.HTTPError(503, CAP_MESSAGE, reason="Too many dashboards open")
        self._starting += 1
        try:
            return await super().start_kernel(*args, **kwargs)
        finally:
            self._starting -= 1

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        """Shut a kernel down, then top up pre-heated pools that the cap left short."""
        await super().shutdown_kernel(kernel_id, *args, **kwargs)
        if not self._stopping:
            self.refill_pools()

    async def shutdown_all(self, *args: Any, **kwargs: Any) -> None:
        """Shut every kernel down (no pool refills any more)."""
        self._stopping = True
        await super().shutdown_all(*args, **kwargs)

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
    from auterity.config import project_root

    configured = os.environ.get(ENV_DIR)
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
    return os.environ.get(ENV_TOKEN) or secrets.token_urlsafe(24)


def dashboard_url(host: str, port: int, token: str, path: str = "") -> str:
    """The URL a local user opens (token in the query string; a cookie keeps them in)."""
    shown = f"[{host}]" if ":" in host else host
    query = f"?token={token}" if token else ""
    return f"http://{shown}:{port}/{path.lstrip('/')}{query}"


def voila_command(host: str, port: int) -> list[str]:
    """The Voila command line (everything else comes from ``voila.json``)."""
    return [
        sys.executable,
        "-m",
        "voila",
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
    process = subprocess.Popen(
        voila_command(host, port),
        cwd=folder,
        env=voila_env(token, folder=folder),
        start_new_session=new_session,
        **popen,
    )
    return process, dashboard_url(host, port, token)


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop a server from :func:`start` and its kernels (its process group)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:  # pragma: no cover - already gone
        pass


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None) -> int:
    """Run the server in the foreground until Ctrl-C; returns its exit status."""
    process, url = start(host, port, token=token, new_session=False)
    print(f"Auterity dashboards: {url}", file=sys.stderr, flush=True)

    def _terminate(_signum: int, _frame: Any) -> None:
        process.terminate()

    signal.signal(signal.SIGTERM, _terminate)
    try:
        return process.wait()
    except KeyboardInterrupt:
        stop(process)
        return 0
