"""Files in: CSV, Parquet and JSON Lines, read by DuckDB and loaded through the one path.

Each file is one batch (:func:`auterity.ingest.load.load_many`): checked, quarantined,
upserted and audited in one transaction, so a file is either in or not, and loading it
again changes nothing. DuckDB reads the files itself (in parallel, column by column), so a
Parquet file of ten million rows never becomes Python objects.

* **CSV**: header row; every value read as text and converted by the data contract. Lines
  the reader cannot split into the header's columns (too many or too few values, bytes
  that are not in the file's encoding) are quarantined with their line number and text.
* **Parquet**: read with its own types; the contract converts and checks them the same way.
* **JSON Lines**: one object per line; a line that is not a JSON object is quarantined
  with its line number; blank lines are not records. Nested values are kept as JSON text.

Column names that differ from the table's are mapped with ``column_map`` (``src -> dst``,
from ``--map`` or ``parameters/sources.yml``); columns of the file that the table does
not have are refused, naming them (map them or leave them out of the file).
"""

from __future__ import annotations

import glob
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import duckdb
import pandas as pd
from sqlalchemy.engine import URL

from auterity.errors import ConfigError
from auterity.ingest import sources
from auterity.ingest.load import Batch, BatchResult, load_many
from auterity.ingest.validate import literal, quote
from auterity.redact import first_line

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
"""File suffix -> format (a ``.gz`` suffix after it is read compressed)."""

ENCODINGS = ("utf-8", "utf-16", "latin-1")
"""Text encodings a CSV or JSON Lines file may be in."""


def expand(paths: Sequence[str]) -> list[Path]:
    """Files named by ``paths`` (paths or glob patterns), each once, in the order given.

    Raises
    ------
    ConfigError
        A path that does not exist or a pattern that matches nothing (all of them named).
    """
    found: list[Path] = []
    missing: list[str] = []
    for given in paths:
        matches = sorted(glob.glob(given, recursive=True)) if glob.has_magic(given) else [given]
        files = [Path(m) for m in matches if Path(m).is_file()]
        if not files:
            missing.append(given)
        found.extend(f for f in files if f not in found)
    if missing:
        raise ConfigError(f"no such file(s): {', '.join(missing)}")
    return found


def file_format(path: Path, given: str | None = None) -> str:
    """The format of a file: ``given``, else from its suffix (``csv``, ``parquet``, ``jsonl``)."""
    if given:
        if given not in set(FORMATS.values()):
            raise ConfigError(f"format {given!r}: one of csv, parquet, jsonl")
        return given
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".zst")]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    raise ConfigError(
        f"{path}: cannot tell the format from the name; give --input-format csv, parquet or jsonl"
    )


def _mapped(columns: Sequence[str], column_map: Mapping[str, str]) -> str:
    """A select list renaming ``src`` columns to ``dst`` (the others as they are).

    A ``src`` the file does not have is an error when it was given for this load
    (``--map``); a map declared in ``sources.yml`` for every file of a table applies where
    it fits (:class:`_DeclaredMap` marks those).
    """
    strict = column_map.given if isinstance(column_map, _DeclaredMap) else set(column_map)
    unknown = [src for src in column_map if src not in columns and src in strict]
    if unknown:
        raise ConfigError(
            f"--map names column(s) {', '.join(unknown)} that the file does not have "
            f"(it has: {', '.join(columns)})"
        )
    return ", ".join(
        f"{quote(c)} AS {quote(column_map[c])}" if c in column_map else quote(c) for c in columns
    )


def _stage_file(
    duck: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str,
    column_map: Mapping[str, str],
    encoding: str,
    name: str,
) -> pd.DataFrame:
    """Read a file into the temp table ``name`` (with ``_row``); return prerejected lines."""
    where = literal(str(path))
    rejected = pd.DataFrame(columns=["row", "reason", "raw"])
    if fmt == "parquet":
        relation = f"read_parquet({where}, file_row_number = true)"
        columns = [c for c in _columns(duck, relation) if c != "file_row_number"]
        duck.execute(
            f"CREATE TEMP VIEW {name} AS SELECT file_row_number AS _row, "
            f"{_mapped(columns, column_map)} FROM {relation}"
        )
        return rejected
    if encoding not in ENCODINGS:
        raise ConfigError(f"encoding {encoding!r}: one of {', '.join(ENCODINGS)}")
    scan = f"_scan_{uuid.uuid4().hex[:8]}"
    errors = f"_errors_{uuid.uuid4().hex[:8]}"
    if fmt == "csv":
        relation = (
            f"read_csv({where}, all_varchar = true, header = true, encoding = "
            f"{literal(encoding)}, store_rejects = true, rejects_scan = '{scan}', "
            f"rejects_table = '{errors}')"
        )
        # Read as it comes into a table whose rowid is the file's order (a row_number()
        # over ten million rows would cost as much as the read), then name the columns.
        duck.execute(f"CREATE TEMP TABLE {name}_file AS SELECT * FROM {relation}")
        columns = _columns(duck, f"{name}_file")
        duck.execute(
            f"CREATE TEMP VIEW {name} AS SELECT rowid - {_first_rowid(duck, name + '_file')} "
            f"AS _row, {_mapped(columns, column_map)} FROM {name}_file"
        )
    else:
        relation = (
            f"read_csv({where}, columns = {{'line': 'VARCHAR'}}, header = false, "
            f"delim = chr(31), quote = '', escape = '', auto_detect = false, encoding = "
            f"{literal(encoding)}, store_rejects = true, rejects_scan = '{scan}', "
            f"rejects_table = '{errors}')"
        )
        duck.execute(f"CREATE TEMP TABLE {name}_read AS SELECT line FROM {relation}")
        first = _first_rowid(duck, f"{name}_read")
        duck.execute(
            f"CREATE TEMP VIEW {name}_lines AS SELECT rowid - {first} + 1 AS line_no, line "
            f"FROM {name}_read"
        )
        good = "CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END"
        keys = [
            str(k)
            for (k,) in duck.execute(
                f"SELECT DISTINCT unnest(json_keys(line)) FROM {name}_lines WHERE {good} ORDER BY 1"
            ).fetchall()
        ]
        _mapped(keys, column_map)  # names unknown --map sources
        fields = ", ".join(
            f"json_extract_string(line, {literal('$.' + _json_key(k))}) "
            f"AS {quote(column_map.get(k, k))}"
            for k in keys
        )
        duck.execute(
            f"CREATE TEMP TABLE {name} AS SELECT line_no - 1 AS _row"
            f"{', ' + fields if fields else ''} FROM {name}_lines "
            f"WHERE nullif(trim(line), '') IS NOT NULL AND {good}"
        )
        bad = duck.execute(
            f"SELECT line_no, line FROM {name}_lines WHERE nullif(trim(line), '') IS NOT NULL "
            f"AND NOT coalesce({good}, false) ORDER BY line_no"
        ).fetchall()
        duck.execute(f"DROP VIEW {name}_lines")
        duck.execute(f"DROP TABLE {name}_read")
        rejected = pd.DataFrame(
            {
                "row": [int(n) - 1 for n, _ in bad],
                "reason": [f"line {n}: not a JSON object" for n, _ in bad],
                "raw": [{"line": text} for _, text in bad],
            },
            columns=["row", "reason", "raw"],
        )
    lines = duck.execute(
        f"SELECT line, min(csv_line), string_agg(error_type || ': ' || error_message, '; ') "
        f"FROM {errors} GROUP BY line ORDER BY line"
    ).fetchall()
    for table in (errors, scan):
        duck.execute(f"DROP TABLE IF EXISTS {table}")
    if lines:
        unreadable = pd.DataFrame(
            {
                "row": [-int(line) for line, _, _ in lines],
                "reason": [f"line {line}: {why}" for line, _, why in lines],
                "raw": [{"line": text} for _, text, _ in lines],
            }
        )
        rejected = pd.concat([rejected, unreadable], ignore_index=True)
    return rejected


class _DeclaredMap(dict[str, str]):
    """A column map of sources.yml merged with the ``--map`` given (``given``: those keys)."""

    def __init__(self, declared: Mapping[str, str], given: Mapping[str, str]) -> None:
        super().__init__({**declared, **given})
        self.given = set(given)


def _per_file(
    path: Path, on_stage: Callable[[Path, str, float], None] | None
) -> Callable[[str, str, float], None] | None:
    """A load_many stage callback that names the file."""
    if on_stage is None:
        return None

    def called(_table: str, stage: str, seconds: float) -> None:
        on_stage(path, stage, seconds)

    return called


def _first_rowid(duck: duckdb.DuckDBPyConnection, table: str) -> int:
    """The rowid of a fresh table's first row (inside a transaction rowids start high)."""
    found = duck.execute(f"SELECT coalesce(min(rowid), 0) FROM {table}").fetchone()
    return int(found[0]) if found else 0


def _json_key(key: str) -> str:
    """A JSON path step for a key, quoted when it is not a plain name."""
    return key if key.isidentifier() else '"' + key.replace('"', '\\"') + '"'


def _columns(duck: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [str(r[0]) for r in duck.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def _read_error(path: Path, exc: duckdb.Error) -> ConfigError:
    """A one-line message for a file DuckDB could not read at all."""
    first = first_line(exc)
    if "No files found" in first or "could not be opened" in first.lower():
        return ConfigError(f"{path}: cannot be read ({first})")
    if path.stat().st_size == 0:
        return ConfigError(f"{path}: the file is empty")
    return ConfigError(f"{path}: not a readable file of this format ({first})")


def load_files(
    table: str,
    paths: Sequence[str],
    *,
    column_map: Mapping[str, str] | None = None,
    input_format: str | None = None,
    encoding: str = "utf-8",
    deleted_column: str | None = None,
    url: str | URL | None = None,
    on_file: Callable[[Path, BatchResult], None] | None = None,
    on_stage: Callable[[Path, str, float], None] | None = None,
) -> list[BatchResult]:
    """Load files into ``table``, one batch (one transaction) per file.

    Parameters
    ----------
    table : str
        The target data table.
    paths : sequence of str
        Files or glob patterns (``data/orders-*.csv``).
    column_map : mapping, optional
        File column -> table column, where the names differ; on top of the ``files:`` map
        of ``parameters/sources.yml`` for ``table`` (which applies where a file has the
        column).
    input_format : str, optional
        ``csv``, ``parquet`` or ``jsonl``; default from each file's suffix.
    encoding : str
        Text encoding of CSV and JSON Lines files.
    deleted_column : str, optional
        A (mapped) column that is true where the row is to be deleted.
    url : str or URL, optional
        Warehouse URL; default from the settings.
    on_file : callable, optional
        Called with each file and its result when it is loaded (progress).
    on_stage : callable, optional
        Called as ``on_stage(file, stage, seconds)`` as each stage of a file's load is
        done (``check``, ``merge``, ``commit``...): progress within a big file.

    Returns
    -------
    list of BatchResult
        One per file, in order.

    Raises
    ------
    ConfigError
        No such file, an unknown format, a file that cannot be read, columns that do not
        fit the table: one line naming the file. Files before it stay loaded.
    """
    files = expand(paths)
    mapping = _DeclaredMap(sources.file_column_map(table), column_map or {})
    results = []
    for path in files:
        fmt = file_format(path, input_format)
        if path.stat().st_size == 0:
            raise ConfigError(f"{path}: the file is empty")

        def stager(
            duck: duckdb.DuckDBPyConnection, name: str, path: Path = path, fmt: str = fmt
        ) -> pd.DataFrame:
            try:
                return _stage_file(duck, path, fmt, mapping, encoding, name)
            except duckdb.Error as exc:
                raise _read_error(path, exc) from None

        batch = Batch(table, stager=stager, deleted_column=deleted_column)
        try:
            result = load_many(
                [batch],
                source=str(path.resolve()),
                url=url,
                on_stage=_per_file(path, on_stage),
            )[0]
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(message if str(path) in message else f"{path}: {message}") from None
        results.append(result)
        if on_file is not None:
            on_file(path, result)
    return results
