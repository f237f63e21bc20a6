"""The notebook parameter contract: parameter sets are checked before anything runs.

A notebook's first code cell, tagged ``parameters``, declares what it accepts: literal
values with a type annotation and a ``# what it means`` comment. Parameter sets live in
``parameters/<notebook>/<name>.yml``. Papermill alone only *warns* about an unknown name,
so a typo would silently run on defaults; here an unknown name, a value of the wrong type
or a value outside the declared choices is refused with a message naming the file, the
key and what the notebook accepts.

Declared choices
----------------
A text parameter's comment may begin with the values it accepts (papermill's
``--help-notebook`` shows the comment as it is)::

    period: str = "last_28_days"  # one of: last_7_days | last_28_days | custom; the period
    kinds: str = ""  # any of: anomaly | drift | mover; comma-separated, empty means all
    metrics: str = "orders"  # any of: <metric>; comma-separated metric names

``one of:`` takes exactly one option; ``any of:`` a comma-separated list of options (empty
means none chosen; the notebook says what that means). Options are separated by ``|`` and
end at the first ``;``. A name in angle brackets stands for a family of values
(:data:`VOCABULARIES`): ``<metric>`` any metric of the catalog, ``<timezone>`` an IANA
time zone, ``<date>`` a YYYY-MM-DD date. The notebook's default is always accepted (an
empty ``start``, say, meaning "not given").
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from auterity._yaml import read_yaml
from auterity.config import notebooks_dir, parameters_dir, validate_timezone
from auterity.errors import ConfigError
from auterity.metrics import load_catalog

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


_CHOICES = re.compile(r"^\s*(?P<kind>one|any) of:\s*(?P<options>[^;]*)")


def _metric_names() -> list[str]:
    """Every metric of the catalog."""

    return sorted(load_catalog().metrics)


def _is_date(value: str) -> bool:
    """True for a YYYY-MM-DD date."""
    try:
        return len(value) == 10 and date.fromisoformat(value) is not None
    except ValueError:
        return False


def _is_timezone(value: str) -> bool:
    """True for a known IANA time zone name."""

    try:
        validate_timezone(value)
    except ConfigError:
        return False
    return True


@dataclass(frozen=True)
class Vocabulary:
    """A family of values a choice declaration names as ``<name>``: its members are listed
    (``members``) or recognised one by one (``accepts``)."""

    describe: str
    """How messages name a member, e.g. 'a metric of the catalog'."""
    members: Callable[[], list[str]] | None = None
    accepts: Callable[[str], bool] | None = None


VOCABULARIES: dict[str, Vocabulary] = {
    "metric": Vocabulary("a metric of the catalog", members=_metric_names),
    "timezone": Vocabulary("an IANA time zone such as Europe/Berlin", accepts=_is_timezone),
    "date": Vocabulary("a date as YYYY-MM-DD", accepts=_is_date),
}
"""The ``<name>`` families a parameter comment may use in ``one of:`` / ``any of:``."""


@dataclass(frozen=True)
class Parameter:
    """One parameter a notebook accepts.

    ``choices`` are the options its comment declares (``one of:`` / ``any of:``), None if
    it declares none; ``many`` is True for a comma-separated ``any of:`` list.
    """

    name: str
    type_name: str
    default: str
    help: str
    choices: tuple[str, ...] | None = None
    many: bool = False

    def default_value(self) -> Any:
        """The default as a Python value (the literal text if it is not a literal)."""
        try:
            return ast.literal_eval(self.default)
        except (ValueError, SyntaxError):
            return self.default

    def refusal(self, value: Any) -> str | None:
        """Why ``value`` is not one of the declared choices, or None if it is (or if none
        are declared, or it is the default)."""
        if self.choices is None or not isinstance(value, str) or value == self.default_value():
            return None
        items = split_list(value) if self.many else [value]
        literal = {o for o in self.choices if not _is_family(o)}
        families = [VOCABULARIES[o[1:-1]] for o in self.choices if _is_family(o)]
        listed = {m for f in families if f.members for m in f.members()}  # read once
        wrong = [
            item
            for item in items
            if item not in literal
            and item not in listed
            and not any(f.accepts and f.accepts(item) for f in families)
        ]
        if not wrong:
            return None
        allowed = ", ".join(
            o if not _is_family(o) else _describe(VOCABULARIES[o[1:-1]]) for o in self.choices
        )
        if not self.many:
            return f"must be one of {allowed}, got {value!r}"
        return (
            f"must be a comma-separated list of {allowed}, got {value!r} "
            f"({', '.join(repr(w) for w in wrong)} not among them)"
        )


def _is_family(option: str) -> bool:
    """True for a ``<name>`` option."""
    return option.startswith("<") and option.endswith(">")


def _describe(family: Vocabulary) -> str:
    """A family for a message, its members listed where they can be."""
    if family.members is None:
        return family.describe
    return f"{family.describe} ({', '.join(family.members())})"


def parse_choices(help_text: str) -> tuple[tuple[str, ...] | None, bool]:
    """The ``(options, many)`` a parameter comment declares, ``(None, False)`` if none.

    Raises
    ------
    ConfigError
        If the comment names an unknown ``<family>``.
    """
    match = _CHOICES.match(help_text or "")
    if not match:
        return None, False
    options = tuple(o.strip() for o in match.group("options").split("|") if o.strip())
    for option in options:
        if _is_family(option) and option[1:-1] not in VOCABULARIES:
            raise ConfigError(
                f"unknown value family {option} in {help_text!r} "
                f"(known: {', '.join(f'<{n}>' for n in VOCABULARIES)})"
            )
    return options or None, match.group("kind") == "any"


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
    out = {}
    for name, spec in raw.items():
        try:
            choices, many = parse_choices(spec.get("help", ""))
        except ConfigError as exc:
            raise ConfigError(f"{path}: parameter {name!r}: {exc}") from None
        out[name] = Parameter(
            name,
            spec.get("inferred_type_name") or "None",
            spec.get("default", ""),
            spec.get("help", ""),
            choices,
            many,
        )
    return out


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
        refusal = spec.refusal(value)
        if refusal:
            raise ConfigError(f"{source}: parameter {key!r} of notebook {name} {refusal}")
    return values


def load_parameter_set(notebook: str | Path, path: str | Path) -> dict[str, Any]:
    """Read and validate a parameter set file (a YAML mapping of parameter values)."""

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
