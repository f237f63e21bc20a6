"""Dashboards in pre-heated kernels: start, meet the viewer, refresh data grown stale.

Voila's kernel pools run a dashboard's notebook long before anyone opens the page, so the
page comes at once; its data, though, can be hours old. :func:`launch` (what every
dashboard's notebook function calls) builds and shows a dashboard and, in a pooled
kernel, starts :func:`refresh_when_viewed`: a daemon thread that waits for the viewer
(:func:`wait_for_viewer`) and refreshes if the data is older than
``AUTERITY_DASHBOARD_FRESH_S`` (:data:`FRESH_ON_VIEW_S` by default).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable
from typing import Any

from auterity import config
from auterity._time import utcnow
from auterity.dashboards.widgets import (
    Dashboard,
    configure_logging,
    in_preheated_kernel,
    log,
    viewer_message,
)
from auterity.escape import html_text

FRESH_ON_VIEW_S = float(str(config.declared_default(config.ENV_DASHBOARD_FRESH)))
"""A pre-heated dashboard whose data is older than this refreshes when a viewer arrives
(``AUTERITY_DASHBOARD_FRESH_S`` overrides it)."""
ENV_FRESH = config.ENV_DASHBOARD_FRESH


def wait_for_viewer() -> dict[str, str] | None:
    """In a pre-heated kernel, block until Voila hands it to a viewer.

    Voila's own ``wait_for_request`` connects without credentials; the query socket of
    :class:`auterity.dashboards.serve.AuterityVoila` wants the server's token, which the
    kernel inherits (``JUPYTER_TOKEN``). Like Voila's, the request info lands in
    ``os.environ``.

    Returns
    -------
    dict or None
        The viewer's request info (path, query string, ...), or None outside a
        pre-heated kernel.
    """
    import websockets

    if os.environ.get("VOILA_PREHEAT", "False") == "False":
        return None
    server_url = os.environ.get("VOILA_SERVER_URL", "/")
    url = (
        f"{os.environ.get('VOILA_WS_PROTOCOL', 'ws')}://"
        f"{os.environ.get('VOILA_APP_IP', '127.0.0.1')}:{os.environ.get('VOILA_APP_PORT', '8866')}"
        f"{os.environ.get('VOILA_WS_BASE_URL', server_url)}voila/query/"
        f"{os.environ['VOILA_KERNEL_ID']}"
    )
    token = os.environ.get("JUPYTER_TOKEN", "")
    headers = {"Authorization": f"token {token}"} if token else {}

    async def receive() -> str | bytes:
        async with websockets.connect(url, open_timeout=10, additional_headers=headers) as ws:
            return await ws.recv()

    info: dict[str, str] = json.loads(asyncio.run(receive()))
    os.environ.update(info)
    return info


def refresh_when_viewed(
    dash: Dashboard,
    max_age_s: float | None = None,
    *,
    wait: Callable[[], Any] | None = None,
) -> threading.Thread | None:
    """In a pre-heated kernel, refresh stale data as soon as a viewer gets the kernel.

    A pooled kernel runs the notebook long before anyone looks at it; the page it serves
    is instant but its data can be hours old. This waits (on a daemon thread) for the
    request and refreshes if the data is older than ``max_age_s``; the viewer sees the
    page at once, then "Updating…" and current numbers.

    Parameters
    ----------
    dash : Dashboard
        The dashboard shown.
    max_age_s : float, optional
        Data younger than this is kept; default ``AUTERITY_DASHBOARD_FRESH_S`` or
        :data:`FRESH_ON_VIEW_S`.
    wait : callable, optional
        Blocks until the viewer arrives; default :func:`wait_for_viewer` (only in a
        pre-heated kernel: elsewhere nothing is started).

    Returns
    -------
    threading.Thread or None
        The waiting thread, or None outside a pre-heated kernel.
    """
    if wait is None:
        if not in_preheated_kernel():
            return None
        wait = wait_for_viewer
    if max_age_s is None:
        try:
            max_age_s = float(config.value(ENV_FRESH) or FRESH_ON_VIEW_S)
        except ValueError:
            log.warning("%s is not a number; using %g s", ENV_FRESH, FRESH_ON_VIEW_S)
            max_age_s = FRESH_ON_VIEW_S

    def run() -> None:
        try:
            wait()
        except Exception:
            log.warning("could not wait for the viewer of a pre-heated kernel", exc_info=True)
            return
        updated = dash.last_updated
        if updated is None or (utcnow() - updated).total_seconds() > max_age_s:
            dash.refresh()

    thread = threading.Thread(target=run, name=f"auterity-{dash.name}-viewed", daemon=True)
    thread.start()
    return thread


def launch(factory: Callable[[], Dashboard]) -> Any:
    """Build a dashboard and show it, or show a short message (details to the log).

    Parameters
    ----------
    factory : callable
        Builds the dashboard (its first refresh included).

    Returns
    -------
    Dashboard or None
        The dashboard, shown and, in a pre-heated kernel, set to refresh stale data when
        its viewer arrives (:func:`refresh_when_viewed`); None if it could not be built.
    """
    from IPython.display import HTML, display

    configure_logging()
    try:
        dash = factory()
    except Exception as exc:
        log.error("dashboard could not start", exc_info=True)
        display(
            HTML(
                f'<div class="au-error" style="color:#b42318;">'
                f"{html_text(viewer_message(exc))}</div>"
            )
        )
        return None
    dash.show()
    refresh_when_viewed(dash)
    return dash
