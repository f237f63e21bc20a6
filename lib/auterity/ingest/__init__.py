"""Data in: batches checked against the data contract, quarantined, upserted, audited.

* :mod:`~auterity.ingest.validate`: :func:`check` splits a batch into valid rows
  (converted to the contract's types) and rejected rows with every reason; the checks are
  one DuckDB statement (:func:`~auterity.ingest.validate.checked_select`).
* :mod:`~auterity.ingest.load`: :func:`load_many` / :func:`load` write batches in one
  transaction: rejected rows to ``quarantine``, valid rows upserted by key, counts
  ``read = inserted + updated + unchanged + quarantined``, data version, audit row.
"""

from auterity.ingest.load import COUNTS, Batch, BatchResult, load, load_many
from auterity.ingest.validate import FUTURE_TOLERANCE, Checked, check, required_columns

__all__ = [
    "COUNTS",
    "FUTURE_TOLERANCE",
    "Batch",
    "BatchResult",
    "Checked",
    "check",
    "load",
    "load_many",
    "required_columns",
]
