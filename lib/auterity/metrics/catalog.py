"""The metric catalogue: metrics declared in YAML, loaded and validated up front.

Definitions live in ``parameters/metrics.yml`` (plus any files listed in
``AUTERITY_METRICS_FILES``); see that file for the fields. :func:`load_catalog` validates
everything at once and names the file, the metric and the field of any mistake;
:func:`describe` lists what is there.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, TypeGuard

import pandas as pd

from auterity import config
from auterity._yaml import read_yaml
from auterity.config import ENV_METRICS_FILES, parameters_dir
from auterity.errors import ConfigError
from auterity.warehouse import custom

BASE_AGGREGATES = ("sum", "count", "count_distinct", "avg", "min", "max", "percentile")


DERIVED_AGGREGATES = ("ratio", "difference")


ADDITIVE = ("sum", "count", "count_distinct")


UNITS = ("currency", "percent", "ms", "count", "tokens", "number")


GOOD = ("up", "down", "neutral")


OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null")


_METRIC_FIELDS = {
    "label",
    "description",
    "table",
    "time_column",
    "aggregate",
    "column",
    "percentile",
    "numerator",
    "denominator",
    "minuend",
    "subtrahend",
    "filters",
    "dimensions",
    "unit",
    "good",
}


_OPERANDS = {"ratio": ("numerator", "denominator"), "difference": ("minuend", "subtrahend")}


@dataclass(frozen=True)
class Filter:
    """A row filter of a metric: ``column op value``."""

    column: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Dimension:
    """A column a metric can be broken down or filtered by."""

    name: str
    table: str
    column: str
    label: str


@dataclass(frozen=True)
class Metric:
    """One metric definition (base: table + aggregate; derived: ratio or difference)."""

    name: str
    label: str
    description: str
    aggregate: str
    unit: str
    good: str
    source: str
    table: str | None = None
    time_column: str | None = None
    column: str | None = None
    percentile: float | None = None
    operands: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    dimensions: tuple[str, ...] = ()

    @property
    def derived(self) -> bool:
        """True for ratio and difference metrics."""
        return self.aggregate in DERIVED_AGGREGATES

    @property
    def additive(self) -> bool:
        """True if a period without rows means zero (sums and counts)."""
        return self.aggregate in ADDITIVE


@dataclass
class Catalog:
    """All metrics and dimensions, validated."""

    metrics: dict[str, Metric]
    dimensions: dict[str, Dimension]
    joins: dict[str, str]
    files: list[str] = field(default_factory=list)

    def metric(self, name: str) -> Metric:
        """The metric called ``name``; ConfigError with suggestions if there is none."""
        try:
            return self.metrics[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.metrics, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"unknown metric {name!r}{hint}; `auterity metrics list` shows them"
            ) from None

    def base_metrics(self, name: str) -> list[Metric]:
        """The base metrics a metric is computed from (itself if it is a base metric)."""
        metric = self.metric(name)
        if not metric.derived:
            return [metric]
        out: list[Metric] = []
        for operand in metric.operands:
            out.extend(m for m in self.base_metrics(operand) if m not in out)
        return out

    def filterable(self, name: str, dimensions: Iterable[str] | None) -> bool:
        """Whether a metric can be filtered (or broken down) by every one of ``dimensions``."""
        return set(dimensions or ()) <= set(self.allowed_dimensions(name))

    def allowed_dimensions(self, name: str) -> tuple[str, ...]:
        """Dimensions valid for a metric (for derived ones: those all components allow)."""
        bases = self.base_metrics(name)
        allowed = set(bases[0].dimensions)
        for base in bases[1:]:
            allowed &= set(base.dimensions)
        return tuple(d for d in bases[0].dimensions if d in allowed)


def default_files() -> list[Path]:
    """``parameters/metrics.yml`` plus the files in ``AUTERITY_METRICS_FILES``."""
    files = [parameters_dir() / "metrics.yml"]
    extra = config.value(ENV_METRICS_FILES) or ""
    files.extend(Path(p).expanduser() for p in extra.split(os.pathsep) if p.strip())
    return files


def _columns_of(table: str) -> set[str]:
    """Column names of a warehouse table (contract or declared in the sources file)."""
    found = custom.find_table(table)
    return set(found.c.keys()) if found is not None else set()


def _is_table(name: Any) -> TypeGuard[str]:
    """Whether ``name`` names a warehouse table (contract or declared in the sources file)."""
    return custom.find_table(name) is not None


class _CommonFields(TypedDict):
    """The fields every metric has, base or derived."""

    name: str
    label: str
    description: str
    aggregate: str
    unit: str
    good: str
    source: str


class _Checker:
    """Validation helpers that name the file, the metric and the field."""

    def __init__(self, source: str, metric: str) -> None:
        self.source, self.metric = source, metric

    def fail(self, fieldname: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: metric {self.metric!r}: {fieldname}: {problem}")

    def table(self, fieldname: str, name: Any) -> str:
        if not _is_table(name):
            known = ", ".join(sorted(custom.data_table_names()))
            raise self.fail(
                fieldname,
                f"{name!r} is not a warehouse table (known: {known}; declare your own under "
                "tables: in the sources file, AUTERITY_SOURCES_FILE)",
            )
        return name

    def column(self, fieldname: str, table: str, name: Any) -> str:
        if name not in _columns_of(table):
            known = ", ".join(sorted(_columns_of(table)))
            raise self.fail(fieldname, f"{table} has no column {name!r} (columns: {known})")
        return name

    def choice(self, fieldname: str, value: Any, options: Sequence[str]) -> str:
        if value not in options:
            raise self.fail(fieldname, f"{value!r} is not one of {', '.join(options)}")
        return value


def _parse_metric(
    name: str, spec: Any, source: str, dimensions: dict[str, Dimension], joins: dict[str, str]
) -> Metric:
    """Validate one metric's own fields (references to other metrics are checked later)."""
    check = _Checker(source, name)
    if not isinstance(spec, dict):
        raise check.fail("definition", "must be a mapping of fields")
    unknown = set(spec) - _METRIC_FIELDS
    if unknown:
        raise check.fail(
            ", ".join(sorted(unknown)),
            f"unknown field (known: {', '.join(sorted(_METRIC_FIELDS))})",
        )
    aggregate = check.choice(
        "aggregate", spec.get("aggregate"), BASE_AGGREGATES + DERIVED_AGGREGATES
    )
    common: _CommonFields = {
        "name": name,
        "label": str(spec.get("label") or name.replace("_", " ").capitalize()),
        "description": str(spec.get("description") or ""),
        "aggregate": aggregate,
        "unit": check.choice("unit", spec.get("unit", "number"), UNITS),
        "good": check.choice("good", spec.get("good", "up"), GOOD),
        "source": source,
    }
    if aggregate in DERIVED_AGGREGATES:
        operands = []
        for fieldname in _OPERANDS[aggregate]:
            value = spec.get(fieldname)
            if not isinstance(value, str) or not value:
                raise check.fail(fieldname, f"a {aggregate} needs the name of a metric here")
            if value == name:
                raise check.fail(fieldname, "a metric cannot refer to itself")
            operands.append(value)
        for forbidden in ("table", "column", "filters", "dimensions", "percentile"):
            if forbidden in spec:
                raise check.fail(forbidden, f"not allowed on a {aggregate} (set it on its parts)")
        return Metric(**common, operands=tuple(operands))

    table = check.table("table", spec.get("table"))
    time_column = check.column("time_column", table, spec.get("time_column"))
    column = None
    if aggregate != "count" or "column" in spec:
        column = check.column("column", table, spec.get("column"))
    percentile = None
    if aggregate == "percentile":
        p = spec.get("percentile")
        if not isinstance(p, int | float) or not 0 < p <= 100:
            raise check.fail("percentile", f"must be a number in (0, 100], got {p!r}")
        percentile = float(p)
    elif "percentile" in spec:
        raise check.fail("percentile", "only allowed with aggregate: percentile")
    filters = []
    raw_filters = spec.get("filters") or []
    if not isinstance(raw_filters, list):
        raise check.fail("filters", "must be a list of {column, op, value}")
    for i, raw in enumerate(raw_filters):
        where = f"filters[{i}]"
        if not isinstance(raw, dict) or set(raw) - {"column", "op", "value"}:
            raise check.fail(where, "must be a mapping with column, op and value")
        op = check.choice(f"{where}.op", raw.get("op", "="), OPS)
        if op in ("in", "not_in") and not isinstance(raw.get("value"), list):
            raise check.fail(f"{where}.value", f"op {op} needs a list")
        if op not in ("is_null", "not_null") and "value" not in raw:
            raise check.fail(f"{where}.value", "missing")
        filters.append(
            Filter(check.column(f"{where}.column", table, raw.get("column")), op, raw.get("value"))
        )
    dims = spec.get("dimensions") or []
    if not isinstance(dims, list):
        raise check.fail("dimensions", "must be a list of dimension names")
    for dim in dims:
        if dim not in dimensions:
            raise check.fail(
                "dimensions", f"unknown dimension {dim!r} (known: {', '.join(sorted(dimensions))})"
            )
        d = dimensions[dim]
        if d.table != table:
            key = joins.get(d.table)
            if key is None or key not in _columns_of(table):
                raise check.fail(
                    "dimensions",
                    f"dimension {dim!r} lives on {d.table}, which "
                    f"{table} cannot reach (no join key in `joins`)",
                )
    return Metric(
        **common,
        table=table,
        time_column=time_column,
        column=column,
        percentile=percentile,
        filters=tuple(filters),
        dimensions=tuple(dims),
    )


def _check_references(catalog: Catalog) -> None:
    """Derived metrics refer to existing metrics, without cycles."""
    for metric in catalog.metrics.values():
        for fieldname, operand in zip(
            _OPERANDS.get(metric.aggregate, ()), metric.operands, strict=False
        ):
            if operand not in catalog.metrics:
                raise _Checker(metric.source, metric.name).fail(
                    fieldname, f"refers to unknown metric {operand!r}"
                )

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            metric = catalog.metrics[trail[0]]
            cycle = " -> ".join((*trail, name))
            raise _Checker(metric.source, metric.name).fail(
                "/".join(_OPERANDS[metric.aggregate]), f"refers to itself ({cycle})"
            )
        for operand in catalog.metrics[name].operands:
            visit(operand, (*trail, name))

    for name in catalog.metrics:
        visit(name, ())


def load_catalog(files: Sequence[Path] | None = None) -> Catalog:
    """Load and validate metric definitions (cached until a file or the declared tables
    change).

    Parameters
    ----------
    files : sequence of Path, optional
        YAML files, merged in order; default :func:`default_files`. Each may have
        ``joins``, ``dimensions`` and ``metrics`` sections.

    Returns
    -------
    Catalog
        The validated metrics and dimensions.

    Raises
    ------
    ConfigError
        Naming the file, the metric and the field of the first problem found.
    """
    paths = list(files) if files is not None else default_files()
    tables = custom.custom_tables()
    key = (tuple(_stamp(p) for p in paths), tuple(sorted((n, id(t)) for n, t in tables.items())))
    cached = _CATALOGS.get(key)
    if cached is not None:
        return cached[1]
    catalog = _load_catalog(paths)
    if len(_CATALOGS) >= 8:
        _CATALOGS.clear()
    _CATALOGS[key] = (tables, catalog)  # the tables held, so their ids stay theirs
    return catalog


_CATALOGS: dict[tuple[Any, ...], tuple[dict[str, Any], Catalog]] = {}
"""Catalogs by the version of their files and declared tables: loading one parses and
checks YAML (~15 ms), and the metric layer asks for it on every question."""


def _stamp(path: Path) -> tuple[str, int, int] | tuple[str]:
    """A file's identity and version (its size and modification time)."""
    try:
        stat = path.stat()
    except OSError:
        return (str(path),)
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _load_catalog(paths: Sequence[Path]) -> Catalog:
    """Parse and check the metric definitions of ``paths`` (see :func:`load_catalog`)."""
    joins: dict[str, str] = {}
    dimensions: dict[str, Dimension] = {}
    raw_metrics: list[tuple[str, Any, str]] = []
    for path in paths:
        data = read_yaml(path) or {}
        source = str(path)
        if not isinstance(data, dict) or set(data) - {"joins", "dimensions", "metrics"}:
            raise ConfigError(f"{source}: expected top-level sections joins, dimensions, metrics")
        for table, spec in (data.get("joins") or {}).items():
            if (
                not _is_table(table)
                or not isinstance(spec, dict)
                or (spec.get("key") not in _columns_of(table))
            ):
                raise ConfigError(f"{source}: joins: {table!r} needs a table and its key column")
            joins[table] = spec["key"]
        for name, spec in (data.get("dimensions") or {}).items():
            if not isinstance(spec, dict):
                raise ConfigError(f"{source}: dimension {name!r}: must be a mapping")
            table = spec.get("table")
            if not _is_table(table) or spec.get("column") not in _columns_of(table):
                raise ConfigError(
                    f"{source}: dimension {name!r}: table/column "
                    f"{table}.{spec.get('column')} does not exist"
                )
            if name in dimensions:
                raise ConfigError(f"{source}: dimension {name!r} is defined twice")
            dimensions[name] = Dimension(name, table, spec["column"], str(spec.get("label", name)))
        for name, spec in (data.get("metrics") or {}).items():
            raw_metrics.append((name, spec, source))
    metrics: dict[str, Metric] = {}
    for name, spec, source in raw_metrics:
        if name in metrics:
            raise ConfigError(
                f"{source}: metric {name!r}: name: already defined in {metrics[name].source}"
            )
        metrics[name] = _parse_metric(name, spec, source, dimensions, joins)
    catalog = Catalog(metrics, dimensions, joins, [str(p) for p in paths])
    _check_references(catalog)
    return catalog


def describe(catalog: Catalog | None = None) -> pd.DataFrame:
    """A table of every metric: name, label, unit, good direction, aggregate, source, dims."""
    catalog = catalog or load_catalog()
    return pd.DataFrame(
        [
            {
                "name": m.name,
                "label": m.label,
                "aggregate": m.aggregate,
                "unit": m.unit,
                "good": m.good,
                "table": m.table or "(derived)",
                "dimensions": ", ".join(catalog.allowed_dimensions(m.name)),
                "description": m.description,
            }
            for m in catalog.metrics.values()
        ]
    )
