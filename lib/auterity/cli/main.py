"""The ``auterity`` command group and its entry point.

Every command has ``--help``; configuration problems print one line (``auterity: error:
...``) and exit with status 2, never a traceback. Each command group lives in its own
module of this package and registers itself on :data:`cli`.
"""

from __future__ import annotations

import click

from auterity import __version__
from auterity.errors import AuterityError
from auterity.redact import mask_secrets


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="auterity")
def cli() -> None:
    """Auterity Analytics: business and AI/ML model analytics, reports and dashboards.

    The warehouse is AUTERITY_DB_URL (default: the DuckDB file data/auterity.duckdb).
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn library errors into one line and exit status 2."""
    try:
        cli.main(args=argv, prog_name="auterity", standalone_mode=False)
    except AuterityError as exc:
        click.echo(f"auterity: error: {mask_secrets(str(exc))}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("auterity: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
