"""Roles' row filters and PII rules, turned into the row scope every statement is read through.

A role's ``row_filters`` name dimensions of the metric catalogue (``region: [EMEA]``).
:func:`scope_for` resolves each to its table and column and builds a
:class:`~auterity.warehouse.scope.Scope`:

* the dimension's own table keeps only rows with an allowed value;
* a data table holding the dimension table's join key (``customer_id`` for ``customers``)
  keeps only rows whose key is one of those rows' keys: orders, product events and model
  requests of EMEA customers;
* a reference table with no customer data (``models``) is read as it is;
* any other data table is read as **empty**: a filter that cannot be applied hides the
  table rather than showing it whole (fail closed).

Without PII permission, personal columns (``comment="PII"`` in the contract, or ``pii:
true`` on a declared table's column) read as keyed pseudonyms computed by the database.

:func:`acting_as` runs a block as a user: everything it reads - metric questions,
ModelHub and business queries, report cells, dashboard callbacks, exports - goes through
:func:`auterity.warehouse.cache.fetch`, which applies the scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity import access
from auterity.access.policy import Policy, Role
from auterity.access.pseudonyms import pseudonym_sql
from auterity.errors import ConfigError
from auterity.metrics.catalog import Catalog, load_catalog
from auterity.warehouse import custom, schema
from auterity.warehouse import scope as scopes

REFERENCE_TABLES = ("models",)
"""Data tables that hold no customer's rows (a catalogue every role may read whole)."""

PII_KINDS = {("customers", "email"): "email", ("customers", "name"): "name"}
"""Personal columns of the contract and the pseudonym kind each gets."""


def _data_tables() -> dict[str, sa.Table]:
    tables = {name: schema.metadata.tables[name] for name in schema.DATA_TABLES}
    tables.update(custom.custom_tables())
    return tables


def _pii_columns(tables: dict[str, sa.Table]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for name, table in tables.items():
        for column in table.c:
            kind = PII_KINDS.get((name, column.name))
            if kind is None and (column.comment == "PII" or column.info.get("pii")):
                kind = "name"
            if kind is not None:
                found.setdefault(name, {})[column.name] = kind
    return found


def scope_for(role: Role, catalog: Catalog | None = None) -> scopes.Scope | None:
    """The row scope of a role (None when it sees everything).

    Raises
    ------
    ConfigError
        A row filter names a dimension the catalogue does not have.
    """
    tables = _data_tables()
    masked = {} if role.pii else _pii_columns(tables)
    if not role.row_filters and not masked:
        return None
    catalog = catalog or load_catalog()
    conditions: dict[str, list[scopes.Condition]] = {}
    deny: set[str] = set()
    for dimension, values in role.row_filters.items():
        dim = catalog.dimensions.get(dimension)
        if dim is None:
            raise ConfigError(
                f"role {role.name}: row filter on unknown dimension {dimension!r} "
                f"(dimensions: {', '.join(catalog.dimensions)})"
            )
        home = tables[dim.table] if dim.table in tables else custom.find_table(dim.table)
        if home is None:
            raise ConfigError(f"role {role.name}: dimension {dimension!r} has no table")
        allowed = list(values)
        key = catalog.joins.get(dim.table)

        def own(
            t: sa.FromClause, column: str = dim.column, ok: list = allowed
        ) -> ColumnElement[bool]:
            return t.c[column].in_(ok)

        conditions.setdefault(dim.table, []).append(own)
        for name, table in tables.items():
            if name == dim.table or name in REFERENCE_TABLES:
                continue
            if key is not None and key in table.c:
                keys = sa.select(home.c[key]).where(home.c[dim.column].in_(allowed))

                def via(
                    t: sa.FromClause, k: str = key, sub: sa.Select = keys
                ) -> ColumnElement[bool]:
                    return t.c[k].in_(sub)

                conditions.setdefault(name, []).append(via)
            else:
                deny.add(name)

    if role.row_filters:  # aggregates of every customer's rows, with no key to filter on
        deny.update(schema.ROLLUP_TABLES)

    def all_of(parts: list[scopes.Condition]) -> scopes.Condition:
        return lambda t: sa.and_(*(p(t) for p in parts))

    def mask(kind: str) -> scopes.Masker:
        return lambda col: pseudonym_sql(col, kind)

    return scopes.Scope(
        name=role.name,
        rows={name: all_of(parts) for name, parts in conditions.items()},
        masked={
            name: {column: mask(kind) for column, kind in columns.items()}
            for name, columns in masked.items()
        },
        deny=frozenset(deny),
    )


def user_scope(
    user: str,
    *,
    policy: Policy | None = None,
    catalog: Catalog | None = None,
    url: str | None = None,
) -> tuple[access.User, scopes.Scope | None]:
    """An active user and their role's scope.

    Raises
    ------
    AccessDenied
        No such user, or a disabled one.
    """
    found, role = access.active_user(user, url=url, policy=policy)
    return found, scope_for(role, catalog)


scopes.register_resolver(lambda user: user_scope(user)[1])


@contextmanager
def acting_as(
    user: str | None,
    *,
    policy: Policy | None = None,
    catalog: Catalog | None = None,
    url: str | None = None,
) -> Iterator[access.User | None]:
    """Read everything inside the block as ``user`` (their role's rows and PII rule).

    Parameters
    ----------
    user : str or None
        A user of the warehouse; None runs unrestricted (the local one-person setup).
    policy, catalog, url : optional
        Defaults: the policy file, the metric catalogue, the warehouse URL.

    Raises
    ------
    AccessDenied
        No such user, or a disabled one.
    """
    if user is None:
        yield None
        return
    found, scope = user_scope(user, policy=policy, catalog=catalog, url=url)
    with scopes.scoped(scope):
        yield found
