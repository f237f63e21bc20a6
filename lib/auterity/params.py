"""The notebook parameter contract: parameter sets are checked before anything runs.

A notebook's first code cell, tagged ``parameters``, declares what it accepts: literal
values with a type annotation and a ``# what it means`` comment. Parameter sets live in
``parameters/<notebook>/<name>.yml``. Papermill alone only *warns* about an unknown name,
so a typo would silently run on defaults; here an unknown name or a value of the wrong
type is refused with a message naming the file, the key and what the notebook accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from auterity.config import notebooks_dir, parameters_dir
from auterity.errors import ConfigError

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class Parameter:
    """One parameter a notebook accepts."""

    name: str
    type_name: str
    default: str
    help: str


def split_list(value: str) -> list[str]:
    """A comma-separated string parameter (e.g. ``"orders, revenue"``) as a list of names,
    blanks dropped; notebooks take lists this way because parameters are literals."""
    return [item.strip() for item in value.split(",") if item.strip()]


def resolve_notebook(name: str | Path) -> Path:
    """The notebook file for a name (``01-business-overview``) or a path.

    Raises
    ------
    ConfigError
        If there is no such notebook; the message lists the available ones.
    """
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    candidate = notebooks_dir() / f"{path.stem}.ipynb"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))) or "none"
    raise ConfigError(f"no notebook {str(name)!r} (available: {known})")


@lru_cache(maxsize=64)
def _inspect(path: str, mtime: float) -> dict[str, Parameter]:
    """Papermill's view of a notebook's parameters cell (cached per file version)."""
    import papermill

    raw = papermill.inspect_notebook(path)
    return {
        name: Parameter(
            name,
            spec.get("inferred_type_name") or "None",
            spec.get("default", ""),
            spec.get("help", ""),
        )
        for name, spec in raw.items()
    }


def notebook_parameters(notebook: str | Path) -> dict[str, Parameter]:
    """The parameters a notebook accepts, from its ``parameters`` cell."""
    path = resolve_notebook(notebook)
    return _inspect(str(path), path.stat().st_mtime)


def _type_ok(value: Any, type_name: str) -> bool:
    """True if ``value`` fits the declared type (bools are not ints here)."""
    accepted = _TYPES.get(type_name)
    if accepted is None:  # untyped or None default: accept scalars
        return value is None or isinstance(value, str | int | float | bool)
    if isinstance(value, bool) and bool not in accepted:
        return False
    return isinstance(value, accepted)


def validate(notebook: str | Path, values: dict[str, Any], source: str) -> dict[str, Any]:
    """Check parameter values against a notebook's parameters cell.

    Parameters
    ----------
    notebook : str or Path
        Notebook name or path.
    values : dict
        Parameter values to pass to papermill.
    source : str
        Where the values come from (a file path, or ``-p`` for the command line), for messages.

    Returns
    -------
    dict
        The same values.

    Raises
    ------
    ConfigError
        Naming the source, the key and what the notebook accepts.
    """
    accepted = notebook_parameters(notebook)
    name = resolve_notebook(notebook).stem
    for key, value in values.items():
        if key not in accepted:
            listing = ", ".join(f"{p.name} ({p.type_name})" for p in accepted.values())
            raise ConfigError(
                f"{source}: unknown parameter {key!r} for notebook {name}; it accepts: {listing}"
            )
        spec = accepted[key]
        if not _type_ok(value, spec.type_name):
            raise ConfigError(
                f"{source}: parameter {key!r} of notebook {name} must be {spec.type_name} "
                f"(e.g. {spec.default}), got {type(value).__name__} {value!r}"
            )
    return values


def load_parameter_set(notebook: str | Path, path: str | Path) -> dict[str, Any]:
    """Read and validate a parameter set file (a YAML mapping of parameter values)."""
    from auterity.metrics import read_yaml

    file = Path(path)
    data = read_yaml(file) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a parameter set must be a mapping of name: value")
    return validate(notebook, data, str(file))


def parse_overrides(notebook: str | Path, items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``-p key=value`` options, with values typed as the notebook declares them."""
    import yaml

    accepted = notebook_parameters(notebook)
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"-p {item!r}: expected KEY=VALUE")
        key, text = item.split("=", 1)
        key = key.strip()
        spec = accepted.get(key)
        value: Any = text
        if spec is not None and spec.type_name != "str":
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                value = text
        out[key] = value
    return validate(notebook, out, "-p")


def parameter_sets(notebook: str | Path | None = None) -> list[tuple[Path, Path]]:
    """Every committed parameter set as ``(notebook, file)``, in a stable order.

    A directory ``parameters/<notebook>/`` must match a notebook; its ``*.yml`` files are
    the sets.
    """
    notebooks = (
        [resolve_notebook(notebook)] if notebook else sorted(notebooks_dir().glob("*.ipynb"))
    )
    out = []
    for nb in notebooks:
        folder = parameters_dir() / nb.stem
        for file in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
            out.append((nb, file))
    return out
