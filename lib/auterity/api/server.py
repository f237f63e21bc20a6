"""``auterity api``: the API under uvicorn, with several worker processes."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from auterity import access, config
from auterity._process import stop_group
from auterity.api import monitoring, nodelay
from auterity.warehouse import cache

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8877


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    workers: int = 2,
    echo: Callable[[str], Any] = print,
) -> None:
    """Serve the API until interrupted.

    The sign-in mode is decided once (:func:`auterity.access.sign_in_mode`); in ``token``
    mode the token (``AUTERITY_DASHBOARD_TOKEN``, else a random one) is printed and handed
    to every worker through the environment.

    Parameters
    ----------
    host, port : str, int
        Where to listen (loopback by default).
    workers : int
        uvicorn worker processes (each runs the whole app; the result cache is shared
        when it is Redis).
    """
    import uvicorn

    cache.get_cache()  # a misconfigured cache stops the start, not every request
    mode = access.sign_in_mode()
    os.environ[config.ENV_DASHBOARD_AUTH] = mode
    base = f"http://{host}:{port}/api"
    if mode == "token":
        token = config.value(config.ENV_DASHBOARD_TOKEN) or secrets.token_urlsafe(24)
        os.environ[config.ENV_DASHBOARD_TOKEN] = token
        echo(
            "Single-token mode (the warehouse has no users): for one local person. "
            f"Send 'Authorization: Bearer {token}'."
        )
    else:
        echo("Sign-in with the warehouse's users: send HTTP Basic credentials.")
    echo(f"API: {base}/health  (OpenAPI: {base}/openapi.json, Prometheus: {base[:-4]}/metrics)")
    # workers are new processes: they count in files of one directory that /metrics adds up
    metrics_dir = _metrics_dir() if workers > 1 else None
    try:
        uvicorn.run(
            "auterity.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=False,  # a line per request costs ~10 % of a cached answer: /metrics counts
            proxy_headers=False,
            http=nodelay.IMPORT_PATH,  # --workers N would leave Nagle's algorithm on
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir() -> str:
    """A fresh directory for the workers' Prometheus files (``PROMETHEUS_MULTIPROC_DIR``)."""
    path = tempfile.mkdtemp(prefix="auterity-api-metrics-")
    os.environ[monitoring.MULTIPROC_ENV] = path
    return path


def start(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    workers: int = 2,
    new_session: bool = True,
    **popen: Any,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the API in the background (``auterity serve`` runs it next to the dashboards,
    in its own process group, so stopping ``auterity serve`` stops both).

    Returns
    -------
    tuple
        The process (its own process group) and the API's base URL.
    """
    command = [
        sys.executable,
        "-m",
        "auterity.api.server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(command, start_new_session=new_session, **popen)
    return process, f"http://{host}:{port}/api"


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Stop an API started by :func:`start` (its workers too)."""
    stop_group(process, timeout)


if __name__ == "__main__":  # the process of start()
    import argparse

    parser = argparse.ArgumentParser(prog="auterity-api")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    serve(args.host, args.port, workers=args.workers, echo=lambda line: print(line, flush=True))
