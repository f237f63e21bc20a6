"""Data in: batches checked against the data contract before they are written.

* :mod:`~auterity.ingest.validate`: :func:`check` splits a batch into valid rows
  (converted to the contract's types) and rejected rows with every reason.

Files, source-database sync and the OpenTelemetry receiver (issue 14) build on it.
"""

from auterity.ingest.validate import FUTURE_TOLERANCE, Checked, check, required_columns

__all__ = ["FUTURE_TOLERANCE", "Checked", "check", "required_columns"]
