"""``auterity serve``: the dashboards; ``auterity lab``: JupyterLab on the notebooks."""

from __future__ import annotations

import os

import click

from auterity import config
from auterity.cli.main import cli


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8866, show_default=True, help="Port to listen on.")
@click.option("--api-port", type=int, default=8877, show_default=True, help="Port of the JSON API.")
@click.option(
    "--api-workers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Processes of the JSON API.",
)
@click.option("--no-api", is_flag=True, help="Serve the dashboards only.")
def serve_cmd(host: str, port: int, api_port: int, api_workers: int, no_api: bool) -> None:
    """Serve the Voila dashboards (notebooks/dashboards, configured by its voila.json) and,
    next to them, the JSON API (as `auterity api`), printing both URLs.

    Once the warehouse has users, each signs in on the login page; the same sign-in holds
    for the API (one session cookie). With no users yet, single-token mode for one local
    person: AUTERITY_DASHBOARD_TOKEN, else a random one; the printed URL carries it.
    Stop with Ctrl-C.
    """
    # The server module subclasses Voila's application, so importing it loads Voila and
    # jupyter_server: only this command pays for that (tests/test_package.py guards it).
    from auterity.dashboards import serve

    api_process = None
    if not no_api:
        from auterity.api import server as api_server

        token = config.value(config.ENV_DASHBOARD_TOKEN) or serve.new_token()
        os.environ[config.ENV_DASHBOARD_TOKEN] = token  # one token for both servers
        api_process, api_url = api_server.start(
            host, api_port, workers=api_workers, new_session=False
        )
        click.echo(f"Auterity JSON API: {api_url}/health (OpenAPI: {api_url}/openapi.json)")
    try:
        code = serve.serve(host, port)
    finally:
        if api_process is not None:
            api_server.stop(api_process)
    if code:
        raise SystemExit(code)


@cli.command("lab")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8888, show_default=True, help="Port to listen on.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option(
    "--allow-root",
    is_flag=True,
    help="Start even as root (Jupyter refuses by default: every kernel would run as root).",
)
def lab_cmd(host: str, port: int, no_browser: bool, allow_root: bool) -> None:
    """Open JupyterLab on notebooks/ behind the same sign-in as the dashboards.

    Once the warehouse has users, each signs in with their name and password and needs a
    role with the lab permission (parameters/access.yml); their kernels read as them.
    With no users yet, single-token mode for one local person (the printed URL carries
    the token). AUTERITY_DASHBOARD_AUTH (auto, users, token) chooses as for serve. Stop
    with Ctrl-C.
    """
    from auterity.dashboards import lab  # loads JupyterLab and jupyter_server

    lab.run(host, port, open_browser=not no_browser, allow_root=allow_root)


@cli.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8877, show_default=True, help="Port to listen on.")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Processes."
)
def api_cmd(host: str, port: int, workers: int) -> None:
    """Serve the JSON API (/api/health, /api/analytics/..., /api/modelhub/...).

    Callers sign in as the warehouse's users with HTTP Basic (their role's row filters
    and PII rule apply), or, with no users, with the printed token (Bearer). The
    OpenAPI document is /api/openapi.json. Stop with Ctrl-C.
    """
    # FastAPI and uvicorn are loaded by this command only
    from auterity.api import serve as serve_api

    serve_api(host, port, workers=workers, echo=click.echo)
