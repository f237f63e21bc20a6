"""The metric layer: metrics declared in YAML, answered by one SQL statement each.

* :mod:`~auterity.metrics.catalog`: load and validate the metric definitions;
* :mod:`~auterity.metrics.query`: build and run the statements, compare periods.

Both are re-exported here, so ``from auterity import metrics; metrics.query(...)`` works.
"""

from auterity.metrics.catalog import (
    ADDITIVE,
    BASE_AGGREGATES,
    DERIVED_AGGREGATES,
    ENV_METRICS_FILES,
    GOOD,
    OPS,
    UNITS,
    Catalog,
    Dimension,
    Filter,
    Metric,
    default_files,
    describe,
    load_catalog,
)
from auterity.metrics.query import (
    build_statement,
    compare,
    comparison_windows,
    dimension_values,
    query,
    query_windows,
)
from auterity.metrics.scoping import acting_as, scope_for, user_scope

__all__ = [
    "ADDITIVE",
    "BASE_AGGREGATES",
    "DERIVED_AGGREGATES",
    "ENV_METRICS_FILES",
    "GOOD",
    "OPS",
    "UNITS",
    "Catalog",
    "Dimension",
    "Filter",
    "Metric",
    "acting_as",
    "build_statement",
    "compare",
    "comparison_windows",
    "default_files",
    "describe",
    "dimension_values",
    "load_catalog",
    "query",
    "query_windows",
    "scope_for",
    "user_scope",
]
