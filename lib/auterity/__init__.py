"""Auterity Analytics: business and AI/ML model analytics behind one SQL warehouse.

Importing the package is deliberately cheap: heavy libraries (Prophet, Altair, SciPy,
statsmodels) load only inside the functions that need them.
"""

from auterity.errors import AuterityError, ConfigError, DatabaseUnavailable

__version__ = "0.1.0"

__all__ = ["AuterityError", "ConfigError", "DatabaseUnavailable", "__version__"]
