"""One YAML reader for every committed configuration file (metrics, SLOs, schedule, params).

PyYAML keeps the last of two equal keys silently, so a copy-pasted block in
``parameters/*.yml`` would override the first without a word. :func:`read_yaml` refuses
duplicate keys and names the file and line of any mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from auterity.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    """Construct a mapping, raising on a duplicate key."""
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ConfigError(
                f"{loader.name}: line {key_node.start_mark.line + 1}: duplicate key {key!r}"
            )
        seen[key] = loader.construct_object(value_node, deep=True)
    return seen


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def parse_yaml(text: str, name: str) -> Any:
    """Parse YAML text, refusing duplicate keys.

    Parameters
    ----------
    text
        The YAML document.
    name
        What errors call the document (usually its file path).

    Returns
    -------
    Any
        The parsed document; a :class:`~auterity.errors.ConfigError` names ``name`` and the
        line of a syntax error or duplicate key.
    """
    loader = _UniqueKeyLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f": line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{name}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, refusing duplicate keys.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    Any
        The parsed document; a :class:`~auterity.errors.ConfigError` names the file and line
        of any mistake, or why the file cannot be read.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_yaml(text, str(path))
