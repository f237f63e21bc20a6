"""Project paths and settings.

Every path derives from one project root; every setting comes from the environment
(optionally a git-ignored ``.env`` file at the project root). Notebooks never hold
paths or secrets: they ask this module.

Environment variables
---------------------
AUTERITY_DB_URL      SQLAlchemy URL of the warehouse (default: ``data/auterity.duckdb``).
AUTERITY_HOME        Project root override (default: the checkout this package lives in, else cwd).
AUTERITY_TIMEZONE    Business time zone for day/week/month boundaries (default ``UTC``).
AUTERITY_CURRENCY    Reporting currency of order amounts (default ``USD``).
AUTERITY_USER        Acting user recorded on runs and audit rows (default: the OS user).
AUTERITY_DB_LOCK_TIMEOUT  Seconds to wait for a DuckDB file held by another process (default 60).
AUTERITY_CACHE_URL   ``redis://...`` (or ``rediss://`` for TLS) to share the query-result cache
                     (default: in-process).
AUTERITY_CACHE_KEY   Secret (at least 32 characters) that signs cache entries; required with Redis.
AUTERITY_CACHE_CA_FILE  CA certificate(s) that the ``rediss://`` cache's certificate must chain to.
AUTERITY_CACHE_TTL   Seconds a cached result may be served (default 300; 0 turns caching off).
AUTERITY_KEEP_RUNS   Successful report runs kept per notebook and parameter set (default 10).
AUTERITY_KEEP_FAILED_RUNS  Failed report runs kept per notebook and parameter set, on top of
                     the successful ones (default 10).
AUTERITY_RUN_TIMEOUT Seconds a notebook cell may run before the run fails (default: no limit).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from auterity.errors import ConfigError

ENV_DB_URL = "AUTERITY_DB_URL"
ENV_HOME = "AUTERITY_HOME"
ENV_TIMEZONE = "AUTERITY_TIMEZONE"
ENV_CURRENCY = "AUTERITY_CURRENCY"
ENV_USER = "AUTERITY_USER"
ENV_LOCK_TIMEOUT = "AUTERITY_DB_LOCK_TIMEOUT"
ENV_CACHE_URL = "AUTERITY_CACHE_URL"
ENV_CACHE_TTL = "AUTERITY_CACHE_TTL"
ENV_CACHE_KEY = "AUTERITY_CACHE_KEY"
ENV_CACHE_CA_FILE = "AUTERITY_CACHE_CA_FILE"
CACHE_KEY_MIN_LENGTH = 32
ENV_KEEP_RUNS = "AUTERITY_KEEP_RUNS"
ENV_KEEP_FAILED_RUNS = "AUTERITY_KEEP_FAILED_RUNS"
ENV_RUN_TIMEOUT = "AUTERITY_RUN_TIMEOUT"

_dotenv_loaded = False


def _looks_like_root(path: Path) -> bool:
    """True if ``path`` is an Auterity checkout (has our pyproject and lib/auterity)."""
    return (path / "pyproject.toml").is_file() and (path / "lib" / "auterity").is_dir()


def project_root() -> Path:
    """Return the project root.

    Returns
    -------
    Path
        ``AUTERITY_HOME`` if set; else the checkout that holds this package (editable
        install); else the nearest parent of the working directory that is a checkout;
        else the working directory.
    """
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parents[2]
    if _looks_like_root(here):
        return here
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if _looks_like_root(candidate):
            return candidate
    return cwd


def load_env_file() -> None:
    """Load ``.env`` from the project root once; real environment variables win."""
    global _dotenv_loaded
    if _dotenv_loaded:
        return
    _dotenv_loaded = True
    env_file = project_root() / ".env"
    if env_file.is_file():
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)


def data_dir() -> Path:
    """Directory for generated data (the embedded warehouse, manifests); git-ignored."""
    return project_root() / "data"


def reports_dir() -> Path:
    """Directory for rendered reports; git-ignored."""
    return project_root() / "reports"


def parameters_dir() -> Path:
    """Directory of committed parameter sets and YAML configuration."""
    return project_root() / "parameters"


def notebooks_dir() -> Path:
    """Directory of the committed (output-free) notebooks."""
    return project_root() / "notebooks"


def default_db_url() -> str:
    """URL of the embedded DuckDB warehouse under ``data/``."""
    return f"duckdb:///{data_dir() / 'auterity.duckdb'}"


@dataclass(frozen=True)
class Settings:
    """Settings resolved from the environment.

    Attributes
    ----------
    db_url : str
        SQLAlchemy URL of the warehouse (may contain a password: print it only masked).
    timezone : str
        IANA name of the business time zone.
    currency : str
        ISO code of the reporting currency.
    user : str
        Acting user recorded on runs and audit rows.
    lock_timeout_s : float
        How long to wait for a DuckDB file locked by another process.
    cache_url : str or None
        Redis URL of the shared result cache; None for the in-process cache.
    cache_ttl_s : float
        Seconds a cached result may be served; 0 disables caching.
    cache_key : str or None
        Secret that signs cache entries (HMAC-SHA256); required with a Redis cache. Never
        print it.
    cache_ca_file : str or None
        CA bundle for a ``rediss://`` cache whose certificate is not in the system store.
    keep_runs : int
        Successful report runs kept per notebook and parameter set (at least 1).
    keep_failed_runs : int
        Failed report runs kept per notebook and parameter set (at least 1), counted apart
        from the successful ones so a failure streak never deletes the last good reports.
    run_timeout_s : float or None
        Seconds a notebook cell may run (at least 1); None for no limit.
    """

    db_url: str
    timezone: str
    currency: str
    user: str
    lock_timeout_s: float
    cache_url: str | None = None
    cache_ttl_s: float = 300.0
    cache_key: str | None = None
    cache_ca_file: str | None = None
    keep_runs: int = 10
    keep_failed_runs: int = 10
    run_timeout_s: float | None = None


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is a known IANA time zone, else raise :class:`ConfigError`."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {name!r} (use an IANA name such as 'UTC' or 'Europe/Berlin')"
        ) from None
    return name


def get_settings() -> Settings:
    """Resolve the settings from the environment (and ``.env``).

    Returns
    -------
    Settings
        The current settings; read anew on each call so tests can change the environment.
    """
    load_env_file()
    lock_timeout = _seconds(ENV_LOCK_TIMEOUT, "60")
    cache_ttl = _seconds(ENV_CACHE_TTL, "300")
    keep_runs = _count(ENV_KEEP_RUNS, "10", "runs")
    keep_failed_runs = _count(ENV_KEEP_FAILED_RUNS, "10", "runs")
    run_timeout = (
        max(1.0, _seconds(ENV_RUN_TIMEOUT, "")) if os.environ.get(ENV_RUN_TIMEOUT) else None
    )
    try:
        default_user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        default_user = "unknown"
    return Settings(
        db_url=os.environ.get(ENV_DB_URL) or default_db_url(),
        timezone=validate_timezone(os.environ.get(ENV_TIMEZONE) or "UTC"),
        currency=(os.environ.get(ENV_CURRENCY) or "USD").upper(),
        user=os.environ.get(ENV_USER) or default_user,
        lock_timeout_s=lock_timeout,
        cache_url=os.environ.get(ENV_CACHE_URL) or None,
        cache_ttl_s=cache_ttl,
        cache_key=_cache_key(),
        cache_ca_file=os.environ.get(ENV_CACHE_CA_FILE) or None,
        keep_runs=keep_runs,
        keep_failed_runs=keep_failed_runs,
        run_timeout_s=run_timeout,
    )


def _seconds(name: str, default: str) -> float:
    """A non-negative number of seconds from the environment variable ``name``."""
    raw = os.environ.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds")
    return value


def _count(name: str, default: str, what: str) -> int:
    """A whole number, at least 1, from the environment variable ``name``."""
    raw = os.environ.get(name, default)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name}={raw!r} must be a whole number of {what}, at least 1")
    return value


def _cache_key() -> str | None:
    """The cache signing secret, if set; too short a secret is refused (without echoing it)."""
    value = os.environ.get(ENV_CACHE_KEY) or None
    if value is not None and len(value) < CACHE_KEY_MIN_LENGTH:
        raise ConfigError(
            f"{ENV_CACHE_KEY} is {len(value)} characters long; it signs the cache entries and "
            f"needs at least {CACHE_KEY_MIN_LENGTH} (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return value
