"""The ``auterity`` command line: a thin wrapper over the library.

:mod:`~auterity.cli.main` holds the group and the entry point; each command group is a
module that registers itself on it (:mod:`~auterity.cli.data`, :mod:`~auterity.cli.metrics`,
:mod:`~auterity.cli.modelhub`, :mod:`~auterity.cli.reports`, :mod:`~auterity.cli.analysis`,
:mod:`~auterity.cli.serve`, :mod:`~auterity.cli.ingest`, :mod:`~auterity.cli.sync`,
:mod:`~auterity.cli.collect`, :mod:`~auterity.cli.users`, :mod:`~auterity.cli.privacy`);
:mod:`~auterity.cli.output` is what they share.
"""

from auterity.cli import (  # noqa: F401 (register)
    analysis,
    collect,
    data,
    ingest,
    metrics,
    modelhub,
    privacy,
    reports,
    serve,
    sync,
    users,
)
from auterity.cli.main import cli, main
from auterity.cli.output import (
    ANOMALY_DAYS,
    DRIFT_DAYS,
    DRIFT_REFERENCE_DAYS,
    FORECAST_HISTORY_DAYS,
    INSIGHTS_DAYS,
    PERIOD_DAYS,
    SAVINGS_DAYS,
)

__all__ = [
    "ANOMALY_DAYS",
    "DRIFT_DAYS",
    "DRIFT_REFERENCE_DAYS",
    "FORECAST_HISTORY_DAYS",
    "INSIGHTS_DAYS",
    "PERIOD_DAYS",
    "SAVINGS_DAYS",
    "cli",
    "main",
]
