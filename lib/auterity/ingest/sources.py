"""Where data comes from: ``parameters/sources.yml``, parsed and checked up front.

The file (``AUTERITY_SOURCES_FILE``; see the commented example in ``parameters/``) has
these sections, every one optional:

``tables:``
    your own tables (name, columns and types, primary key, time column); parsed by
    :mod:`auterity.warehouse.custom`, which creates them in the warehouse.
``files:``
    per warehouse table, how the columns of files map to the table's
    (``columns: {file column: table column}``), for ``auterity ingest``.
``databases:``
    source databases for ``auterity sync``: per source the environment variable holding its
    SQLAlchemy URL (``url_env``, so no secret sits in the file) and, per warehouse table,
    a ``table:`` or a ``query:``, the incremental ``cursor:`` column, the ``columns:`` map
    (source -> warehouse; default: the warehouse's own names), the ``key:`` source
    column(s) identifying a row (default: those mapped to the primary key) and an optional
    ``deleted:`` soft-delete flag (a column, or ``{column: ..., value: ...}``).
``telemetry:``
    the OpenTelemetry receiver's settings; read by its own module, ignored here.

Every mistake is one line naming the file, the key and what is expected; unknown keys are
refused (a typo never silently means "not set").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from auterity import config
from auterity.errors import ConfigError
from auterity.warehouse import custom, schema

SECTIONS = ("tables", "files", "databases", "telemetry")
"""The top-level sections of the sources file."""

_FILE_FIELDS = {"columns"}
_DATABASE_FIELDS = {"url_env", "tables", "description"}
_TABLE_SOURCE_FIELDS = {"table", "query", "cursor", "key", "columns", "deleted"}
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Deleted:
    """A soft-delete flag: rows whose ``column`` equals ``value`` are deleted in the warehouse."""

    column: str
    value: Any = True


@dataclass(frozen=True)
class TableSource:
    """Where one warehouse table comes from in a source database.

    Attributes
    ----------
    table : str
        The warehouse table.
    source_table : str or None
        The source table (``schema.table`` allowed), or None when ``query`` is set.
    query : str or None
        A SELECT whose result is read instead of a table.
    cursor : str
        The source column that grows with every change (e.g. ``updated_at``, a sequence).
    key : tuple of str
        The source columns that identify a row.
    columns : dict of str to str
        Source column -> warehouse column.
    deleted : Deleted or None
        The soft-delete flag, if the source marks deletions.
    """

    table: str
    source_table: str | None
    query: str | None
    cursor: str
    key: tuple[str, ...]
    columns: dict[str, str]
    deleted: Deleted | None = None

    @property
    def source_columns(self) -> list[str]:
        """Every source column read: mapped ones, the cursor, the key, the delete flag."""
        wanted = [*self.columns, self.cursor, *self.key]
        if self.deleted is not None:
            wanted.append(self.deleted.column)
        return list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class Database:
    """One source database: its URL's environment variable and the tables it feeds."""

    name: str
    url_env: str
    tables: dict[str, TableSource]
    description: str = ""

    def url(self) -> str:
        """The source's SQLAlchemy URL, from the environment variable it names (or ``.env``).

        Raises
        ------
        ConfigError
            When the variable is not set.
        """
        config.load_env_file()
        value = os.environ.get(self.url_env, "").strip()
        if not value:
            raise ConfigError(
                f"source {self.name!r}: the environment variable {self.url_env} is not set "
                "(it holds the source database's SQLAlchemy URL)"
            )
        return value


@dataclass(frozen=True)
class Sources:
    """Everything the sources file declares."""

    path: Path
    tables: dict[str, sa.Table] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    databases: dict[str, Database] = field(default_factory=dict)

    def database(self, name: str) -> Database:
        """The source called ``name``; ConfigError naming the known ones."""
        try:
            return self.databases[name]
        except KeyError:
            known = ", ".join(self.databases) or "none"
            raise ConfigError(
                f"{self.path}: databases: no source {name!r} (declared: {known})"
            ) from None


def _names(value: Any, where: str) -> tuple[str, ...]:
    """A column name or a non-empty list of them."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise custom.fail(where, "expected a column name or a list of column names")
    return tuple(names)


def _column_map(value: Any, target: sa.Table, where: str) -> dict[str, str]:
    """A ``{source column: table column}`` mapping onto ``target``'s columns."""
    if not isinstance(value, dict) or not value:
        raise custom.fail(where, "expected a mapping of source column to table column")
    seen: dict[str, str] = {}
    for src, dst in value.items():
        if not isinstance(src, str) or not isinstance(dst, str):
            raise custom.fail(where, f"{src!r}: {dst!r}: expected column names (text)")
        if dst not in target.c:
            raise custom.fail(
                f"{where}: {src}",
                f"{target.name} has no column {dst!r} (columns: {', '.join(target.c.keys())})",
            )
        if dst in seen:
            raise custom.fail(where, f"{seen[dst]!r} and {src!r} both map to {dst!r}")
        seen[dst] = src
    return dict(value)


def _required(target: sa.Table) -> list[str]:
    """Columns a row must have (not nullable, no server default)."""
    return [c.name for c in target.columns if not c.nullable and c.server_default is None]


def _table_source(table: str, spec: Any, target: sa.Table, where: str) -> TableSource:
    """One ``databases: <source>: tables: <table>`` entry."""
    if not isinstance(spec, dict):
        raise custom.fail(where, "expected a mapping with table or query, and cursor")
    custom.refuse_unknown(spec, _TABLE_SOURCE_FIELDS, where)
    source_table, query = spec.get("table"), spec.get("query")
    if (source_table is None) == (query is None):
        raise custom.fail(where, "give exactly one of table (a source table) or query (a SELECT)")
    for name, value in (("table", source_table), ("query", query)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise custom.fail(f"{where}: {name}", "expected text")
    cursor = spec.get("cursor")
    if not isinstance(cursor, str) or not cursor:
        raise custom.fail(
            f"{where}: cursor",
            "expected the source column that grows with every change (e.g. updated_at)",
        )
    if "columns" in spec:
        columns = _column_map(spec["columns"], target, f"{where}: columns")
    else:
        columns = {col.name: col.name for col in target.columns}
    mapped = set(columns.values())
    missing = [c for c in _required(target) if c not in mapped]
    if missing:
        raise custom.fail(
            f"{where}: columns",
            f"nothing maps to the required column(s) {', '.join(missing)} of {table}",
        )
    primary = [c.name for c in target.primary_key.columns]
    if "key" in spec:
        key = _names(spec["key"], f"{where}: key")
    else:
        by_target = {dst: src for src, dst in columns.items()}
        key = tuple(by_target[c] for c in primary)
    deleted = None
    if "deleted" in spec:
        raw = spec["deleted"]
        if isinstance(raw, str) and raw:
            deleted = Deleted(raw)
        elif isinstance(raw, dict) and isinstance(raw.get("column"), str) and raw["column"]:
            custom.refuse_unknown(raw, {"column", "value"}, f"{where}: deleted")
            deleted = Deleted(raw["column"], raw.get("value", True))
        else:
            raise custom.fail(
                f"{where}: deleted",
                "expected a boolean column, or {column: <name>, value: <value meaning deleted>}",
            )
    return TableSource(
        table=table,
        source_table=source_table.strip() if source_table else None,
        query=query.strip().rstrip(";") if query else None,
        cursor=cursor,
        key=key,
        columns=columns,
        deleted=deleted,
    )


def _database(name: Any, spec: Any, tables: dict[str, sa.Table], where: str) -> Database:
    """One ``databases: <source>`` entry."""
    if not isinstance(name, str) or not _SOURCE_NAME.match(name):
        raise custom.fail(where, "a source name is letters, digits, _ . - (at most 40)")
    if not isinstance(spec, dict):
        raise custom.fail(where, "expected a mapping with url_env and tables")
    custom.refuse_unknown(spec, _DATABASE_FIELDS, where)
    url_env = spec.get("url_env")
    if not isinstance(url_env, str) or not _ENV_NAME.match(url_env):
        raise custom.fail(
            f"{where}: url_env",
            "expected the name of the environment variable holding the source's URL "
            "(e.g. SHOP_DATABASE_URL; the URL itself never goes in this file)",
        )
    raw_tables = spec.get("tables")
    if not isinstance(raw_tables, dict) or not raw_tables:
        raise custom.fail(f"{where}: tables", "expected a mapping of warehouse table to its source")
    parsed: dict[str, TableSource] = {}
    for table, table_spec in raw_tables.items():
        target = tables.get(table)
        if target is None:
            raise custom.fail(
                f"{where}: tables: {table}",
                f"not a data table of the warehouse (one of: {', '.join(tables)})",
            )
        parsed[table] = _table_source(table, table_spec, target, f"{where}: tables: {table}")
    return Database(name, url_env, parsed, str(spec.get("description") or ""))


def parse_sources(data: Any, path: Path) -> Sources:
    """Check a parsed sources file and build what it declares.

    Parameters
    ----------
    data : Any
        The parsed YAML document (a mapping; None or empty for nothing declared).
    path : Path
        The file, for error messages.

    Returns
    -------
    Sources

    Raises
    ------
    ConfigError
        One line naming the file, the key and what is expected.
    """
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    custom.refuse_unknown(data, set(SECTIONS), str(path))
    declared = custom.parse_tables(data.get("tables"), str(path))
    tables: dict[str, sa.Table] = {
        **{name: schema.metadata.tables[name] for name in schema.DATA_TABLES},
        **declared,
    }
    files: dict[str, dict[str, str]] = {}
    raw_files = data.get("files") or {}
    if not isinstance(raw_files, dict):
        raise custom.fail(
            f"{path}: files", "expected a mapping of warehouse table to {columns: ...}"
        )
    for table, spec in raw_files.items():
        where = f"{path}: files: {table}"
        if table not in tables:
            raise custom.fail(
                where, f"not a data table of the warehouse (one of: {', '.join(tables)})"
            )
        if not isinstance(spec, dict):
            raise custom.fail(where, "expected a mapping with columns")
        custom.refuse_unknown(spec, _FILE_FIELDS, where)
        files[table] = _column_map(spec.get("columns"), tables[table], f"{where}: columns")
    databases: dict[str, Database] = {}
    raw_databases = data.get("databases") or {}
    if not isinstance(raw_databases, dict):
        raise custom.fail(f"{path}: databases", "expected a mapping of source name to its settings")
    for name, spec in raw_databases.items():
        databases[name] = _database(name, spec, tables, f"{path}: databases: {name}")
    return Sources(path=path, tables=declared, files=files, databases=databases)


def load_sources(path: Path | None = None) -> Sources:
    """Read and check the sources file (nothing declared when it does not exist).

    Parameters
    ----------
    path : Path, optional
        Default :func:`auterity.config.sources_file` (``AUTERITY_SOURCES_FILE``).

    Returns
    -------
    Sources
    """
    found, data = custom.read_sources(path)
    return parse_sources(data, found)


def file_column_map(table: str, path: Path | None = None) -> dict[str, str]:
    """How columns of files for ``table`` map to its columns (``files:`` section).

    Parameters
    ----------
    table : str
        A warehouse data table.
    path : Path, optional
        The sources file; default :func:`auterity.config.sources_file`.

    Returns
    -------
    dict of str to str
        ``{file column: table column}``; empty when the file maps nothing for ``table``.
    """
    return dict(load_sources(path).files.get(table, {}))
