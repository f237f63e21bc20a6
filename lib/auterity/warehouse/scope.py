"""Row scopes: what the reader of a statement may see, applied to every statement read.

A :class:`Scope` maps warehouse tables to the part of them a reader may see: a condition
on the table's rows and, for personal-data columns, an expression shown instead of the
value (a pseudonym). :func:`apply` rewrites a SQLAlchemy Core statement so that every
reference to such a table - in FROM, in a join, under an alias, in a subquery - reads a
filtered sub-select instead, the way PostgreSQL's row-level security policies work, but
on every database the warehouse runs on. :func:`auterity.warehouse.cache.fetch`, the one
door analytic statements go through, applies the scope of the running context
(:func:`current`), so no question (metric, ModelHub query, report cell, dashboard,
export) can go around it. The access layer (:mod:`auterity.access`) builds scopes from
roles; this module only knows tables and conditions.

A table the scope does not name is read as it is; a table named with ``deny`` is read as
empty (fail closed: a row filter that cannot be applied to a table hides the table).

A kernel that runs a report or a dashboard for a user (another process) gets the user's
name in ``AUTERITY_AS``: its whole process then reads as that user, through the
resolver the metric layer registers (:func:`register_resolver`; loaded by name when
the process has not imported it, e.g. a notebook that uses only ModelHub). If no
resolver can be had when such a process reads, the read is refused rather than
unscoped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement

from auterity import config

Condition = Callable[[sa.FromClause], ColumnElement[bool]]
"""Builds the condition on a table's rows (given the table or an alias of it)."""
Masker = Callable[[ColumnElement[Any]], ColumnElement[Any]]
"""Builds the expression shown instead of a column's value."""


@dataclass(frozen=True)
class Scope:
    """What one reader may see.

    Attributes
    ----------
    name : str
        Who or what the scope is for (a role), for messages.
    rows : mapping
        Table name -> :data:`Condition`: only rows where it holds are read.
    masked : mapping
        Table name -> {column name -> :data:`Masker`}: the column reads as the expression.
    deny : frozenset of str
        Tables read as empty.
    """

    name: str
    rows: Mapping[str, Condition] = field(default_factory=dict)
    masked: Mapping[str, Mapping[str, Masker]] = field(default_factory=dict)
    deny: frozenset[str] = frozenset()

    @property
    def tables(self) -> set[str]:
        """The tables this scope changes."""
        return set(self.rows) | set(self.masked) | set(self.deny)


_CURRENT: ContextVar[Scope | None] = ContextVar("auterity_scope", default=None)

Resolver = Callable[[str], "Scope | None"]
"""A user's name -> their scope (raises when they may not read at all)."""

RESOLVER_MODULE = "auterity.metrics.scoping"
"""The module that registers the resolver on import (the metric layer knows roles and
dimensions; this layer must not import it, so it is named here and loaded by name)."""

_resolver: Resolver | None = None
_process: tuple[str, Scope | None] | None = None


def register_resolver(resolver: Resolver) -> None:
    """Set how a user's name becomes their scope (the metric layer does, on import)."""
    global _resolver
    _resolver = resolver


def process_user() -> str | None:
    """The user this whole process reads as (``AUTERITY_AS``), if any."""
    return config.value(config.ENV_AS) or None


def current() -> Scope | None:
    """The scope of the running context (None: everything is visible).

    Raises
    ------
    PermissionError
        The process reads as a user (``AUTERITY_AS``) whose scope cannot be built.
    """
    scope = _CURRENT.get()
    if scope is not None:
        return scope
    user = process_user()
    if user is None:
        return None
    global _process
    if _process is None or _process[0] != user:
        if _resolver is None:  # a kernel whose notebook imported no metric layer (yet)
            with suppress(ImportError):
                importlib.import_module(RESOLVER_MODULE)
        if _resolver is None:
            raise PermissionError(
                f"this process reads as {user!r} ({config.ENV_AS}) but nothing can apply "
                "their role here: import auterity.metrics first"
            )
        _process = (user, _resolver(user))
    return _process[1]


@contextmanager
def scoped(scope: Scope | None) -> Iterator[Scope | None]:
    """Read everything inside the ``with`` block through ``scope`` (None lifts nothing:
    an outer scope cannot be widened from inside)."""
    outer = current()
    if scope is None:
        yield outer
        return
    if outer is not None and outer.name != scope.name:
        raise PermissionError(f"already reading as {outer.name}; cannot switch to {scope.name}")
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        _CURRENT.reset(token)


def _view(scope: Scope, table: sa.Table, name: str) -> sa.Subquery:
    """The part of ``table`` the scope shows, as a sub-select called ``name``."""
    masks = scope.masked.get(table.name, {})
    columns = [
        masks[c.name](c).label(c.name) if c.name in masks else c.label(c.name) for c in table.c
    ]
    select = sa.select(*columns)
    if table.name in scope.deny:
        select = select.where(sa.false())
    elif table.name in scope.rows:
        select = select.where(scope.rows[table.name](table))
    return select.subquery(name)


def apply(statement: Any, scope: Scope | None = None) -> Any:
    """``statement`` with every table the scope names replaced by what it may see.

    Parameters
    ----------
    statement : sqlalchemy Executable
        A Core statement built on the warehouse's tables.
    scope : Scope, optional
        Default :func:`current`; None returns the statement unchanged.

    Returns
    -------
    The rewritten statement (the original is not modified).
    """
    scope = scope or current()
    if scope is None or not scope.tables:
        return statement
    views: dict[tuple[str, str], sa.Subquery] = {}

    def view_of(table: sa.Table, name: str) -> sa.Subquery:
        key = (table.name, name)
        if key not in views:
            views[key] = _view(scope, table, name)
        return views[key]

    def scoped_view(element: Any) -> sa.Subquery | None:
        """The view replacing a scoped table or an alias of one (under the same name)."""
        if isinstance(element, sa.Table) and element.name in tables:
            return view_of(element, element.name)
        if isinstance(element, sa.Alias):
            inner = element.element
            if isinstance(inner, sa.Table) and inner.name in tables:
                return view_of(inner, element.name)
        return None

    def replace(element: Any, **_kw: Any) -> Any:
        view = scoped_view(element)
        if view is not None:
            return view
        if isinstance(element, sa.Column) and element.table is not None:
            parent_view = scoped_view(element.table)
            if parent_view is not None:
                return parent_view.c[element.name]
        return None

    tables = scope.tables
    traversable = cast(visitors.ExternallyTraversible, statement)
    return visitors.replacement_traverse(traversable, {}, replace)
