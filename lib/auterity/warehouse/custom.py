"""Your own tables: declared in ``parameters/sources.yml``, created by migration-safe DDL.

The data contract (:mod:`~auterity.warehouse.schema`) has five data tables. A team's other
systems hold other data (support tickets, subscriptions, feature flags); the ``tables:``
section of the sources file (``AUTERITY_SOURCES_FILE``, default ``parameters/sources.yml``)
declares such tables, and this module turns each into an ``sa.Table``::

    tables:
      support_tickets:
        description: One row per support ticket.
        primary_key: ticket_id            # or a list for a composite key
        time_column: opened_at            # what metrics count periods by
        columns:
          ticket_id: {type: string, required: true}
          customer_id: string             # a join key to customers (region, segment...)
          opened_at: {type: timestamp, required: true}
          priority: {type: string, allowed: [low, normal, high, urgent]}
          minutes_to_resolve: {type: float, min: 0}

Types: ``string`` (optionally ``string(64)``), ``text``, ``integer``, ``float``,
``decimal`` (optionally ``decimal(14,2)``), ``boolean``, ``timestamp`` (stored as UTC),
``date``. Validation rules live in each column's ``info`` (``min``, ``max``, ``allowed``),
where ingest validation reads them; ``required: true`` makes a column NOT NULL.

The tables live on their own ``sa.MetaData`` (not the contract's, which migrations must
match exactly). :func:`ensure_custom_tables` creates missing tables and adds missing
columns (always nullable), and refuses what would lose or reinterpret data: a changed
type, a changed primary key, a new required column on an existing table, a name taken by
the contract. Columns no longer declared are left in place (never dropped).

:func:`data_table` resolves a loadable table by name, the contract's first; the metric
layer and ingest both resolve tables through it (or :func:`find_table`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from auterity import config
from auterity._yaml import read_yaml
from auterity.errors import ConfigError
from auterity.warehouse import schema
from auterity.warehouse.engine import connect, ensure_schema

TYPES = ("string", "text", "integer", "float", "decimal", "boolean", "timestamp", "date")
"""The column types a declared table may use."""

RULES = ("min", "max", "allowed")
"""Validation rules a column may carry (kept in ``column.info``)."""

_TABLE_FIELDS = {"description", "columns", "primary_key", "time_column"}
_COLUMN_FIELDS = {"type", "required", "description", *RULES}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TYPE = re.compile(r"^(?P<name>[a-z]+)\s*(?:\((?P<args>[0-9,\s]*)\))?$")
_RESERVED = {"alembic_version", "quarantine"}
"""Names the warehouse uses or will use besides the contract's tables."""


@dataclass(frozen=True)
class _Parsed:
    """The tables of one version of the sources file."""

    key: tuple[str, int, int]
    tables: dict[str, sa.Table]


_cache: dict[str, _Parsed] = {}


def fail(where: str, problem: str) -> ConfigError:
    """A one-line mistake in the sources file: where (file and keys), then what is wrong."""
    return ConfigError(f"{where}: {problem}")


def refuse_unknown(spec: dict[str, Any], known: set[str], where: str) -> None:
    """Refuse keys of a configuration mapping (sources.yml, access.yml) that are not in
    ``known``, naming both."""
    unknown = set(spec) - known
    if unknown:
        raise fail(
            where,
            f"unknown key(s) {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(sorted(known))})",
        )


def _sa_type(spec: str, where: str) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type of a declared type name (``string(64)``, ``decimal(14,2)``)."""
    match = _TYPE.match(spec.strip().lower()) if isinstance(spec, str) else None
    if match is None or match["name"] not in TYPES:
        raise fail(where, f"{spec!r} is not a type (one of: {', '.join(TYPES)})")
    name = match["name"]
    args = [int(a) for a in (match["args"] or "").replace(" ", "").split(",") if a]
    if name == "string" and len(args) <= 1:
        return sa.String(args[0]) if args else sa.String()
    if name == "decimal" and len(args) in (0, 2):
        return sa.Numeric(args[0], args[1]) if args else sa.Numeric(18, 4)
    if args:
        raise fail(where, f"{spec!r}: only string(N) and decimal(P,S) take arguments")
    simple: dict[str, sa.types.TypeEngine[Any]] = {
        "text": sa.Text(),
        "integer": sa.BigInteger(),
        "float": sa.Double(),
        "boolean": sa.Boolean(),
        "timestamp": sa.DateTime(),
        "date": sa.Date(),
    }
    if name not in simple:
        raise fail(where, f"{spec!r}: string takes one length, decimal a precision and scale")
    return simple[name]


def _column(name: str, spec: Any, where: str, primary: bool) -> sa.Column[Any]:
    """One declared column: a type name, or a mapping with ``type`` and rules."""
    if not _NAME.match(str(name)):
        raise fail(where, "a column name is lower case letters, digits and _ (at most 63)")
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise fail(where, "expected a type name or a mapping with type (and rules)")
    refuse_unknown(spec, _COLUMN_FIELDS, where)
    if "type" not in spec:
        raise fail(f"{where}: type", f"missing (one of: {', '.join(TYPES)})")
    kind = _sa_type(spec["type"], f"{where}: type")
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise fail(f"{where}: required", f"expected true or false, not {required!r}")
    info: dict[str, Any] = {}
    for rule in ("min", "max"):
        if rule in spec:
            bound = spec[rule]
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise fail(f"{where}: {rule}", f"expected a number, not {bound!r}")
            if type_family(kind) not in ("integer", "float", "decimal"):
                raise fail(f"{where}: {rule}", "only numeric columns have a range")
            info[rule] = bound
    if "min" in info and "max" in info and info["min"] > info["max"]:
        raise fail(where, f"min {info['min']} is above max {info['max']}")
    if "allowed" in spec:
        allowed = spec["allowed"]
        if not isinstance(allowed, list) or not allowed:
            raise fail(f"{where}: allowed", "expected a non-empty list of values")
        info["allowed"] = tuple(allowed)
    return sa.Column(
        name,
        kind,
        primary_key=primary,
        nullable=not (required or primary),
        comment=str(spec["description"]) if spec.get("description") else None,
        info=info,
    )


def parse_tables(section: Any, source: str) -> dict[str, sa.Table]:
    """Turn the ``tables:`` section of a sources file into tables on their own MetaData.

    Parameters
    ----------
    section : Any
        The parsed section (a mapping of table name to declaration), or None.
    source : str
        The file it came from, for error messages.

    Returns
    -------
    dict of str to sqlalchemy.Table
        In declaration order; each table's ``info`` holds ``time_column`` (or None).

    Raises
    ------
    ConfigError
        One line naming the file, the table, the key and what is expected.
    """
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise fail(f"{source}: tables", "expected a mapping of table name to its declaration")
    metadata = sa.MetaData()
    tables: dict[str, sa.Table] = {}
    for name, spec in section.items():
        where = f"{source}: tables: {name}"
        if not _NAME.match(str(name)):
            raise fail(where, "a table name is lower case letters, digits and _ (at most 63)")
        if name in schema.metadata.tables or name in _RESERVED:
            raise fail(where, "is a table of the data contract; choose another name")
        if not isinstance(spec, dict):
            raise fail(where, "expected a mapping with columns, primary_key and time_column")
        refuse_unknown(spec, _TABLE_FIELDS, where)
        columns = spec.get("columns")
        if not isinstance(columns, dict) or not columns:
            raise fail(f"{where}: columns", "expected a mapping of column name to type")
        key = spec.get("primary_key")
        keys = [key] if isinstance(key, str) else key
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise fail(f"{where}: primary_key", "expected a column name or a list of them")
        for k in keys:
            if k not in columns:
                raise fail(f"{where}: primary_key", f"{k!r} is not one of its columns")
        time_column = spec.get("time_column")
        if time_column is not None and time_column not in columns:
            raise fail(f"{where}: time_column", f"{time_column!r} is not one of its columns")
        built = [
            _column(str(c), s, f"{where}: columns: {c}", primary=c in keys)
            for c, s in columns.items()
        ]
        by_name = {c.name: c for c in built}
        if time_column is not None and type_family(by_name[time_column].type) != "timestamp":
            raise fail(f"{where}: time_column", f"{time_column!r} must be a timestamp column")
        tables[name] = sa.Table(
            name,
            metadata,
            *built,
            comment=str(spec["description"]) if spec.get("description") else None,
            info={"time_column": time_column, "custom": True},
        )
    return tables


def read_sources(path: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The sources file as parsed YAML (an empty mapping when the file does not exist).

    Parameters
    ----------
    path : Path, optional
        Default :func:`auterity.config.sources_file`.

    Returns
    -------
    tuple of (Path, dict)
        The file and its top-level mapping.
    """
    path = Path(path) if path is not None else config.sources_file()
    if not path.is_file():
        return path, {}
    data = read_yaml(path)
    if data is None:
        return path, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with sections tables, files, databases")
    return path, data


def custom_tables(path: Path | None = None) -> dict[str, sa.Table]:
    """The tables declared in the sources file (none when it does not exist).

    Parsed once per version of the file (its size and modification time), so callers may
    ask as often as they like and get the same ``sa.Table`` objects back.

    Parameters
    ----------
    path : Path, optional
        Default :func:`auterity.config.sources_file`.

    Returns
    -------
    dict of str to sqlalchemy.Table
    """
    path = Path(path) if path is not None else config.sources_file()
    try:
        stat = path.stat()
    except OSError:
        return {}
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(key[0])
    if cached is not None and cached.key == key:
        return cached.tables
    _, data = read_sources(path)
    tables = parse_tables(data.get("tables"), str(path))
    _cache[key[0]] = _Parsed(key, tables)
    return tables


def data_table_names() -> list[str]:
    """The loadable tables: the contract's data tables, then the declared ones."""
    return [*schema.DATA_TABLES, *custom_tables()]


def find_table(name: Any) -> sa.Table | None:
    """Any warehouse table by name (the contract's, then the declared ones), else None."""
    if not isinstance(name, str):
        return None
    if name in schema.metadata.tables:
        return schema.metadata.tables[name]
    return custom_tables().get(name)


def data_table(name: str) -> sa.Table:
    """A loadable table by name: a data table of the contract, or a declared one.

    Parameters
    ----------
    name : str
        The table.

    Returns
    -------
    sqlalchemy.Table

    Raises
    ------
    ConfigError
        Naming the tables that can be loaded and where to declare more.
    """
    if name in schema.DATA_TABLES:
        return schema.metadata.tables[name]
    table = custom_tables().get(name)
    if table is None:
        raise ConfigError(
            f"{name!r} is not a data table of the warehouse; one of: "
            f"{', '.join(data_table_names())} (declare your own under tables: in "
            f"{config.sources_file()})"
        )
    return table


def time_column(name: str) -> str | None:
    """The time column of a data table (contract or declared), or None."""
    if name in schema.metadata.tables:
        return schema.TIME_COLUMNS.get(name)
    table = custom_tables().get(name)
    return None if table is None else table.info.get("time_column")


def type_family(kind: sa.types.TypeEngine[Any] | str) -> str:
    """``text``, ``integer``, ``float``, ``decimal``, ``boolean``, ``timestamp`` or ``date``.

    Of a SQLAlchemy type, or of the ``data_type`` text ``information_schema`` reports
    (DuckDB and PostgreSQL spell them differently); ``other`` for anything else.
    """
    if not isinstance(kind, str):
        for family, types in (
            ("boolean", (sa.Boolean,)),
            ("timestamp", (sa.DateTime,)),
            ("date", (sa.Date,)),
            ("integer", (sa.Integer,)),
            ("float", (sa.Float,)),
            ("decimal", (sa.Numeric,)),
            ("text", (sa.String,)),
        ):
            if isinstance(kind, types):
                return family
        return "other"
    text = kind.strip().lower()
    prefixes = (
        ("timestamp", "timestamp"),
        ("date", "date"),
        ("bool", "boolean"),
        ("double", "float"),
        ("real", "float"),
        ("float", "float"),
        ("decimal", "decimal"),
        ("numeric", "decimal"),
        ("character", "text"),
        ("varchar", "text"),
        ("text", "text"),
        ("char", "text"),
        ("string", "text"),
    )
    for prefix, family in prefixes:
        if text.startswith(prefix):
            return family
    if "int" in text:
        return "integer"
    return "other"


def _existing(conn: Connection, table: str) -> tuple[dict[str, str], list[str]]:
    """Columns (name -> data_type) and primary key of a table in the current schema."""
    columns = conn.execute(
        sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :t "
            "ORDER BY ordinal_position"
        ),
        {"t": table},
    ).fetchall()
    keys = conn.execute(
        sa.text(
            "SELECT k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k ON k.constraint_name = "
            "c.constraint_name AND k.table_schema = c.table_schema AND k.table_name = "
            "c.table_name WHERE c.table_schema = current_schema() AND c.table_name = :t "
            "AND c.constraint_type = 'PRIMARY KEY' ORDER BY k.ordinal_position"
        ),
        {"t": table},
    ).fetchall()
    return {str(n): str(t) for n, t in columns}, [str(k) for (k,) in keys]


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def ensure_custom_tables(
    url: str | URL | None = None, *, path: Path | None = None
) -> dict[str, list[str]]:
    """Create the declared tables and add their new columns; refuse unsafe changes.

    Upgrades the contract's schema first (:func:`~auterity.warehouse.ensure_schema`), so a
    load path may call this instead. Idempotent and safe to run from several processes at
    once (DuckDB's file lock, a PostgreSQL advisory lock).

    Parameters
    ----------
    url : str or URL, optional
        The warehouse; default from the settings.
    path : Path, optional
        The sources file; default :func:`auterity.config.sources_file`.

    Returns
    -------
    dict of str to list of str
        ``{table: [what was done]}`` for each table changed (``created`` or
        ``added column X``); empty when everything was in place.

    Raises
    ------
    ConfigError
        One line per refusal: a column's type changed, the primary key changed, a new
        required column on an existing table.
    """
    ensure_schema(url)
    tables = custom_tables(path)
    if not tables:
        return {}
    source = str(path or config.sources_file())
    done: dict[str, list[str]] = {}
    with connect(url, write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('auterity_schema'))"))
        for name, table in tables.items():
            columns, keys = _existing(conn, name)
            if not columns:
                table.create(conn)
                done[name] = ["created"]
                continue
            declared_keys = [c.name for c in table.primary_key.columns]
            if keys != declared_keys:
                raise ConfigError(
                    f"{source}: tables: {name}: primary_key: the warehouse table's key is "
                    f"({', '.join(keys) or 'none'}), not ({', '.join(declared_keys)}); a key "
                    "cannot change in place (load into a new table instead)"
                )
            for column in table.columns:
                if column.name in columns:
                    had, wants = type_family(columns[column.name]), type_family(column.type)
                    if had != wants:
                        raise ConfigError(
                            f"{source}: tables: {name}: columns: {column.name}: the warehouse "
                            f"column is {columns[column.name]} ({had}), not {wants}; a type "
                            "cannot change in place (add a new column instead)"
                        )
                    continue
                if not column.nullable:
                    raise ConfigError(
                        f"{source}: tables: {name}: columns: {column.name}: a new column of an "
                        "existing table cannot be required (its rows have no value); drop "
                        "`required: true`"
                    )
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {_quote(conn, name)} ADD COLUMN "
                        f"{_quote(conn, column.name)} {kind}"
                    )
                )
                done.setdefault(name, []).append(f"added column {column.name}")
    return done
