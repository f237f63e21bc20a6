"""Auterity Analytics: business and AI/ML model analytics behind one SQL warehouse.

Importing the package is deliberately cheap: heavy libraries (Prophet, Altair, SciPy,
statsmodels) load only inside the functions that need them.
"""

from auterity.errors import AuterityError, ConfigError, DatabaseUnavailable

__version__ = "0.1.0"

__all__ = ["AuterityError", "ConfigError", "DatabaseUnavailable", "__version__"]

# Notebooks write ``from auterity import params``: the parameter contract lives with the
# reports (``auterity.reports.params``) and is imported only when asked for.
_ALIASES = {"params": "auterity.reports.params"}


def __getattr__(name: str) -> object:
    """Import the aliased submodules on first use (PEP 562)."""
    if name in _ALIASES:
        import importlib

        return importlib.import_module(_ALIASES[name])
    raise AttributeError(f"module 'auterity' has no attribute {name!r}")
