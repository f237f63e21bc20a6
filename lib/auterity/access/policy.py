"""Roles and grants as policy in code: ``parameters/access.yml``.

Each role says which dashboards it may open, which report notebooks it may run, whether
it sees personal data (customer emails and names), which rows it sees (**row filters**:
dimension -> allowed values, applied by the metric layer to every question the role
asks) and what it may administer. The file is committed and reviewed like code; users
and their roles live in the warehouse (:mod:`auterity.access.users`).

.. code-block:: yaml

    roles:
      viewer:
        description: Stakeholders who read dashboards and reports.
        dashboards: [business, modelhub, realtime]
        notebooks: []
        pii: false
      emea_manager:
        dashboards: [business]
        notebooks: [01-business-overview]
        row_filters:
          region: [EMEA]
      admin:
        dashboards: "*"
        notebooks: "*"
        pii: true
        may: [manage_users, gdpr, audit, lab, terminals]

Names are checked when the file is read: an unknown key, a role without ``dashboards``,
a permission that does not exist are one-line errors naming the file and the role. The
row filters' dimension names are checked by the metric layer, which knows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auterity import config
from auterity._yaml import read_yaml
from auterity.errors import ConfigError
from auterity.warehouse.custom import refuse_unknown

ENV_ACCESS_FILE = config.ENV_ACCESS_FILE
"""Environment variable naming another policy file (default ``parameters/access.yml``)."""

REQUIRED_ROLES = ("viewer", "analyst", "admin")
"""Roles every policy must define."""

PERMISSIONS = ("manage_users", "gdpr", "audit", "export", "lab", "terminals")
"""What a role's ``may:`` list can grant besides dashboards, notebooks and PII (``lab``:
JupyterLab, ``auterity lab``; ``terminals``: its terminals, a shell with the server's
rights, besides ``lab``)."""

ALL = "*"

_ROLE_KEYS = {"description", "dashboards", "notebooks", "pii", "row_filters", "may", "limits"}
_LIMIT_KEYS = {"dashboard_kernels", "runs_per_minute", "api_requests_per_minute"}


@dataclass(frozen=True)
class Role:
    """One role of the policy.

    Attributes
    ----------
    name : str
    description : str
    dashboards, notebooks : tuple of str or None
        What it may open / run; None means every one (``"*"`` in the file).
    pii : bool
        Sees customer emails and names (else stable pseudonyms).
    row_filters : mapping
        Dimension -> allowed values: the only rows this role's questions see.
    may : frozenset of str
        Permissions from :data:`PERMISSIONS`.
    limits : mapping
        ``dashboard_kernels`` (live dashboards at once), ``runs_per_minute``
        (report runs) and ``api_requests_per_minute`` (calls to the JSON API); absent
        means no limit of its own.
    """

    name: str
    description: str = ""
    dashboards: tuple[str, ...] | None = ()
    notebooks: tuple[str, ...] | None = ()
    pii: bool = False
    row_filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    may: frozenset[str] = frozenset()
    limits: Mapping[str, int] = field(default_factory=dict)

    def may_open(self, dashboard: str) -> bool:
        """Whether the role may open the dashboard ``dashboard`` (its notebook's stem)."""
        return self.dashboards is None or dashboard in self.dashboards

    def may_run(self, notebook: str) -> bool:
        """Whether the role may run the report notebook ``notebook`` (its stem)."""
        return self.notebooks is None or notebook in self.notebooks

    def can(self, permission: str) -> bool:
        """Whether the role holds ``permission`` (one of :data:`PERMISSIONS`)."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        return permission in self.may

    @property
    def unrestricted(self) -> bool:
        """Sees every row and the PII (what the local setup, acting as nobody, sees)."""
        return self.pii and not self.row_filters


def sees_within(inner: Role | None, outer: Role | None) -> bool:
    """Whether everything a reader with role ``inner`` sees is visible to ``outer``.

    None stands for the local setup acting as nobody (every row, PII). An artifact made
    as ``inner`` (a kept report run, say) may be shown to ``outer`` only if this holds:
    no PII ``outer`` may not see, and no row outside ``outer``'s row filters.
    """
    if outer is None or outer.unrestricted:
        return True
    if inner is None:
        return False
    if inner.pii and not outer.pii:
        return False
    for dimension, allowed in outer.row_filters.items():
        narrower = inner.row_filters.get(dimension)
        if narrower is None or not set(narrower) <= set(allowed):
            return False
    return True


@dataclass(frozen=True)
class Policy:
    """Every role of a policy file."""

    roles: Mapping[str, Role]
    path: Path | None = None

    def role(self, name: str) -> Role:
        """The role ``name``, or a ConfigError naming the roles there are."""
        try:
            return self.roles[name]
        except KeyError:
            raise ConfigError(
                f"no role {name!r} in {self.path or 'the access policy'} "
                f"(roles: {', '.join(sorted(self.roles))})"
            ) from None


def policy_file() -> Path:
    """The policy file: ``AUTERITY_ACCESS_FILE`` or ``parameters/access.yml``."""
    named = (config.value(ENV_ACCESS_FILE) or "").strip()
    return Path(named).expanduser() if named else config.parameters_dir() / "access.yml"


_CACHE: dict[tuple[str, float], Policy] = {}


def load_policy(path: Path | None = None) -> Policy:
    """Read and check a policy file (cached until the file changes).

    Parameters
    ----------
    path : Path, optional
        Default :func:`policy_file`.

    Returns
    -------
    Policy

    Raises
    ------
    ConfigError
        A missing file, a YAML mistake, an unknown key or permission, a required role
        missing: one line naming the file and the role.
    """
    path = path or policy_file()
    try:
        stamp = path.stat().st_mtime
    except OSError:
        raise ConfigError(
            f"{path}: no access policy (copy parameters/access.yml from the project, or set "
            f"{ENV_ACCESS_FILE})"
        ) from None
    key = (str(path.resolve()), stamp)
    if key not in _CACHE:
        _CACHE[key] = Policy(parse_policy(read_yaml(path), str(path)).roles, path)
    return _CACHE[key]


def parse_policy(document: Any, where: str = "access policy") -> Policy:
    """Check a policy document (the parsed YAML) and build its :class:`Policy`."""
    if not isinstance(document, dict) or set(document) != {"roles"}:
        raise ConfigError(f"{where}: expected exactly one key, roles: (a mapping of roles)")
    roles_spec = document["roles"]
    if not isinstance(roles_spec, dict) or not roles_spec:
        raise ConfigError(f"{where}: roles: must map role names to their grants")
    roles = {
        str(name): _role(str(name), spec, f"{where}: roles.{name}")
        for name, spec in roles_spec.items()
    }
    missing = [r for r in REQUIRED_ROLES if r not in roles]
    if missing:
        raise ConfigError(f"{where}: missing role(s) {', '.join(missing)} (every policy has them)")
    return Policy(roles)


def _role(name: str, spec: Any, where: str) -> Role:
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{where}: a role name is letters, digits, '_' and '-'")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a mapping of grants")
    refuse_unknown(spec, _ROLE_KEYS, where)
    if "dashboards" not in spec:
        raise ConfigError(f'{where}: dashboards: is required (a list, [] or "*")')
    pii = spec.get("pii", False)
    if not isinstance(pii, bool):
        raise ConfigError(f"{where}.pii: true or false")
    may = _names(spec.get("may", []), f"{where}.may")
    assert may is not None
    bad = [p for p in may if p not in PERMISSIONS]
    if bad:
        raise ConfigError(
            f"{where}.may: unknown permission(s) {', '.join(bad)} (known: {', '.join(PERMISSIONS)})"
        )
    if "terminals" in may and "lab" not in may:
        raise ConfigError(f"{where}.may: terminals needs lab (terminals are part of JupyterLab)")
    return Role(
        name=name,
        description=str(spec.get("description", "")),
        dashboards=_names(spec["dashboards"], f"{where}.dashboards", star=True),
        notebooks=_names(spec.get("notebooks", []), f"{where}.notebooks", star=True),
        pii=pii,
        row_filters=_row_filters(spec.get("row_filters", {}), f"{where}.row_filters"),
        may=frozenset(may),
        limits=_limits(spec.get("limits", {}), f"{where}.limits"),
    )


def _names(value: Any, where: str, *, star: bool = False) -> tuple[str, ...] | None:
    if star and value == ALL:
        return None
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        hint = ' or "*"' if star else ""
        raise ConfigError(f"{where}: a list of names{hint}")
    return tuple(value)


def _row_filters(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: a mapping of dimension -> allowed values")
    filters = {}
    for dimension, allowed in value.items():
        values = [allowed] if isinstance(allowed, str | int | float) else allowed
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values)
        ):
            raise ConfigError(f"{where}.{dimension}: one value or a non-empty list of values")
        filters[str(dimension)] = tuple(str(v) for v in values)
    return filters


def _limits(value: Any, where: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: a mapping ({', '.join(sorted(_LIMIT_KEYS))})")
    unknown = set(value) - _LIMIT_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown limit(s) {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(sorted(_LIMIT_KEYS))})"
        )
    for key, number in value.items():
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise ConfigError(f"{where}.{key}: a whole number, 0 or more")
    return dict(value)


def grants(role: Role) -> dict[str, Any]:
    """A role as plain data (for ``auterity users list`` and audit rows)."""
    return {
        "role": role.name,
        "dashboards": ALL if role.dashboards is None else list(role.dashboards),
        "notebooks": ALL if role.notebooks is None else list(role.notebooks),
        "pii": role.pii,
        "row_filters": {k: list(v) for k, v in role.row_filters.items()},
        "may": sorted(role.may),
        "limits": dict(role.limits),
    }
