"""The warehouse: one SQLAlchemy engine, its schema, SQL dialect differences, the result cache.

The lowest layer above the base modules (``errors``, ``config``, ``escape``, ``redact``):

* :mod:`~auterity.warehouse.engine`: URLs, engines, connections and locking, schema
  upgrades;
* :mod:`~auterity.warehouse.writes`: every write (frames, metadata, the data version,
  audit rows, rebuilds) and the table summary;
* :mod:`~auterity.warehouse.schema`: the tables of the data contract;
* :mod:`~auterity.warehouse.custom`: your own tables, declared in ``parameters/sources.yml``;
* :mod:`~auterity.warehouse.dialect`: the few statements that differ between DuckDB and
  PostgreSQL;
* :mod:`~auterity.warehouse.cache`: the result cache every analytic query goes through;
* ``migrations/``: the Alembic revisions.

The engine and writes functions are re-exported here (``warehouse.connect(...)``).
"""

from auterity.warehouse.custom import (
    custom_tables,
    data_table,
    data_table_names,
    ensure_custom_tables,
    find_table,
)
from auterity.warehouse.engine import (
    CARRIED_OVER_TABLES,
    READ_IDLE_S,
    alembic_config,
    announce_write,
    check_writable_file,
    checkpoint,
    connect,
    current_revision,
    database_url,
    dispose_engines,
    duckdb_path,
    ensure_schema,
    get_engine,
    head_revision,
    is_duckdb,
)
from auterity.warehouse.writes import (
    DATA_UPDATED_KEY,
    DATA_VERSION_KEY,
    REBUILD_LOCK_KEY,
    LoadResult,
    ProgressCallback,
    append_data,
    audit,
    data_freshness,
    data_version,
    get_meta,
    mark_data_changed,
    replace_data,
    set_meta,
    table_summary,
    write_frame,
)

__all__ = [
    "CARRIED_OVER_TABLES",
    "DATA_UPDATED_KEY",
    "DATA_VERSION_KEY",
    "READ_IDLE_S",
    "REBUILD_LOCK_KEY",
    "LoadResult",
    "ProgressCallback",
    "alembic_config",
    "announce_write",
    "append_data",
    "audit",
    "check_writable_file",
    "checkpoint",
    "connect",
    "current_revision",
    "custom_tables",
    "data_freshness",
    "data_table",
    "data_table_names",
    "data_version",
    "database_url",
    "dispose_engines",
    "duckdb_path",
    "ensure_custom_tables",
    "ensure_schema",
    "find_table",
    "get_engine",
    "get_meta",
    "head_revision",
    "is_duckdb",
    "mark_data_changed",
    "replace_data",
    "set_meta",
    "table_summary",
    "write_frame",
]
