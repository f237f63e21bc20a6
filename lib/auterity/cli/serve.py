"""``auterity serve``: the dashboards."""

from __future__ import annotations

import click

from auterity.cli.main import cli


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8866, show_default=True, help="Port to listen on.")
def serve_cmd(host: str, port: int) -> None:
    """Serve the Voila dashboards (notebooks/dashboards, configured by its voila.json).

    Access needs a token: AUTERITY_DASHBOARD_TOKEN, else a random one; the printed URL
    carries it. Stop with Ctrl-C.
    """
    # The server module subclasses Voila's application, so importing it loads Voila and
    # jupyter_server: only this command pays for that (tests/test_package.py guards it).
    from auterity.dashboards import serve

    code = serve.serve(host, port)
    if code:
        raise SystemExit(code)
