"""Project paths and settings.

Every path derives from one project root; every setting comes from the environment
(optionally a git-ignored ``.env`` file at the project root). Notebooks never hold
paths or secrets: they ask this module.

Every ``AUTERITY_*`` setting is declared once in :data:`SETTINGS` (name, default, meaning);
modules ask :func:`value` (or :func:`seconds`, :func:`count`) instead of reading
``os.environ``, and a test holds the README's configuration table to the declaration.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from auterity.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """One setting: its environment variable, its default, and what it means.

    Attributes
    ----------
    name
        The environment variable (``AUTERITY_*``).
    default
        The value used when the variable is unset, as text (None: no value).
    shown_default
        How the documentation shows the default (e.g. "the OS user").
    meaning
        One sentence for the README's configuration table (Markdown).
    """

    name: str
    default: str | None
    shown_default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AUTERITY_DB_URL",
        None,
        "`duckdb:///<root>/data/auterity.duckdb`",
        "SQLAlchemy URL of the warehouse, e.g. `postgresql+psycopg://user:pw@host:5432/db`",
    ),
    Setting(
        "AUTERITY_DB_KEY",
        None,
        "(not encrypted)",
        "key (at least 32 characters) that encrypts the DuckDB warehouse file at rest; "
        "masked everywhere; see Encryption at rest",
    ),
    Setting(
        "AUTERITY_DB_CRYPTO",
        "openssl",
        "`openssl`",
        "`openssl` (DuckDB's httpfs extension) or `builtin` (DuckDB's own crypto, weaker "
        "nonces) for writing the encrypted warehouse",
    ),
    Setting(
        "AUTERITY_TIMEZONE",
        "UTC",
        "`UTC`",
        "business time zone for day/week/month boundaries (timestamps are stored in UTC)",
    ),
    Setting("AUTERITY_CURRENCY", "USD", "`USD`", "reporting currency of order amounts"),
    Setting("AUTERITY_USER", None, "the OS user", "acting user recorded on runs and audit rows"),
    Setting(
        "AUTERITY_DB_LOCK_TIMEOUT",
        "60",
        "`60`",
        "seconds to wait for a DuckDB file another process is writing",
    ),
    Setting(
        "AUTERITY_CACHE_URL",
        None,
        "(in-process)",
        "`redis://host:6379/0` to share the query-result cache between processes; "
        "`redis://:password@host...`, `redis://user:password@host...` (ACL), `rediss://...` "
        "for TLS",
    ),
    Setting(
        "AUTERITY_CACHE_KEY",
        None,
        "(none; required with Redis)",
        "secret of at least 32 characters that signs cache entries (HMAC-SHA256); the same "
        "in every process sharing the cache",
    ),
    Setting(
        "AUTERITY_CACHE_CA_FILE",
        None,
        "(system CAs)",
        "CA bundle the `rediss://` cache's certificate must chain to (or "
        "`?ssl_ca_certs=/path` in the URL)",
    ),
    Setting(
        "AUTERITY_CACHE_TTL",
        "300",
        "`300`",
        "seconds a cached result may be served; `0` turns the cache off",
    ),
    Setting(
        "AUTERITY_METRICS_FILES",
        None,
        "",
        "extra metric definition files, separated by `:`",
    ),
    Setting(
        "AUTERITY_SOURCES_FILE",
        None,
        "`parameters/sources.yml`",
        "where data comes from: your own tables, file column maps, source databases to sync",
    ),
    Setting(
        "AUTERITY_KEEP_RUNS",
        "10",
        "`10`",
        "successful runs kept per notebook and parameter set; older outputs are deleted",
    ),
    Setting(
        "AUTERITY_KEEP_FAILED_RUNS",
        "10",
        "`10`",
        "failed runs kept per notebook and parameter set, counted apart from the successful ones",
    ),
    Setting(
        "AUTERITY_RUN_TIMEOUT",
        None,
        "(none)",
        "seconds a notebook cell may run before the run fails",
    ),
    Setting(
        "AUTERITY_CHROMIUM",
        "/usr/bin/chromium",
        "`/usr/bin/chromium`",
        "the browser that prints PDF reports",
    ),
    Setting(
        "AUTERITY_SCHEDULE_GRACE",
        "3600",
        "`3600`",
        "seconds a missed or cut-short scheduled run may be late and still run (once); a "
        "cut-short run past it is reported to `failure_to`",
    ),
    Setting(
        "AUTERITY_SCHEDULE_MAX_PARALLEL",
        "2",
        "`2`",
        "reports the scheduler runs at once",
    ),
    Setting(
        "AUTERITY_SMTP_HOST",
        "localhost",
        "`localhost`",
        "SMTP server that delivers report emails",
    ),
    Setting(
        "AUTERITY_SMTP_PORT",
        None,
        "`25`, `587` with `starttls`, `465` with `ssl`",
        "its port",
    ),
    Setting(
        "AUTERITY_SMTP_SECURITY",
        "none",
        "`none`",
        "`none`, `starttls` or `ssl` (certificates are always verified)",
    ),
    Setting("AUTERITY_SMTP_USER", None, "(no login)", "SMTP login user"),
    Setting(
        "AUTERITY_SMTP_PASSWORD",
        None,
        "(no login)",
        "SMTP login password; masked everywhere",
    ),
    Setting(
        "AUTERITY_SMTP_CA_FILE",
        None,
        "(system CAs)",
        "PEM bundle to trust for a private CA",
    ),
    Setting(
        "AUTERITY_MAIL_FROM",
        "auterity@localhost",
        "`auterity@localhost`",
        "sender address of report emails",
    ),
    Setting("AUTERITY_MAIL_REPLY_TO", None, "(none)", "Reply-To address of report emails"),
    Setting(
        "AUTERITY_DASHBOARD_TOKEN",
        None,
        "(random per start)",
        "the token of `auterity serve` (URL `?token=`, login password, `Authorization: token ...`)",
    ),
    Setting(
        "AUTERITY_DASHBOARD_AUTH",
        "auto",
        "`auto`",
        "`users` (sign-in with the warehouse's users), `token` (one local person), `auto`",
    ),
    Setting(
        "AUTERITY_DASHBOARDS_DIR",
        None,
        "`notebooks/dashboards`",
        "the folder `auterity serve` serves (it holds `voila.json`)",
    ),
    Setting(
        "AUTERITY_DASHBOARD_FRESH_S",
        "300",
        "`300`",
        "a pre-heated dashboard whose data is older than this refreshes when a viewer gets it",
    ),
    Setting(
        "AUTERITY_ACCESS_FILE",
        None,
        "`parameters/access.yml`",
        "the access policy: roles, their grants and row filters",
    ),
    Setting(
        "AUTERITY_PII_KEY",
        None,
        "(generated into `data/.pii_key`)",
        "key of the personal-data pseudonyms (at least 32 characters); masked everywhere",
    ),
    Setting(
        "AUTERITY_SESSION_SECRET",
        None,
        "(generated into `data/.session_secret`)",
        "signs sign-in cookies, so one sign-in serves the dashboards and the API and "
        "survives restarts (at least 32 characters)",
    ),
    Setting(
        "AUTERITY_AS",
        None,
        "(unset)",
        "the user a report or dashboard kernel reads as (set by `auterity run --as`, the server)",
    ),
    Setting(
        "AUTERITY_RETENTION_DAYS",
        None,
        "(keep everything)",
        "raw events (product, model requests) older than this many days are purged",
    ),
    Setting(
        "AUTERITY_ROLLUPS",
        "on",
        "on",
        "`off`: ModelHub questions read raw events, never the daily rollups",
    ),
    Setting(
        "AUTERITY_HOME",
        None,
        "the checkout",
        "project root override (data/, reports/, parameters/)",
    ),
    Setting(
        "AUTERITY_TEST_PG_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "`postgresql+psycopg://postgres@127.0.0.1:5432/test`",
        "PostgreSQL server the tests create scratch databases on (tests only)",
    ),
)
"""Every setting, declared once; the README's configuration table is tested against it."""

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

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
ENV_METRICS_FILES = "AUTERITY_METRICS_FILES"
ENV_SOURCES_FILE = "AUTERITY_SOURCES_FILE"
ENV_CHROMIUM = "AUTERITY_CHROMIUM"
ENV_SCHEDULE_GRACE = "AUTERITY_SCHEDULE_GRACE"
ENV_SCHEDULE_MAX_PARALLEL = "AUTERITY_SCHEDULE_MAX_PARALLEL"
ENV_SMTP_HOST = "AUTERITY_SMTP_HOST"
ENV_SMTP_PORT = "AUTERITY_SMTP_PORT"
ENV_SMTP_SECURITY = "AUTERITY_SMTP_SECURITY"
ENV_SMTP_USER = "AUTERITY_SMTP_USER"
ENV_SMTP_PASSWORD = "AUTERITY_SMTP_PASSWORD"
ENV_SMTP_CA_FILE = "AUTERITY_SMTP_CA_FILE"
ENV_MAIL_FROM = "AUTERITY_MAIL_FROM"
ENV_MAIL_REPLY_TO = "AUTERITY_MAIL_REPLY_TO"
ENV_DASHBOARD_TOKEN = "AUTERITY_DASHBOARD_TOKEN"
ENV_DASHBOARDS_DIR = "AUTERITY_DASHBOARDS_DIR"
ENV_DASHBOARD_AUTH = "AUTERITY_DASHBOARD_AUTH"
ENV_DASHBOARD_FRESH = "AUTERITY_DASHBOARD_FRESH_S"
ENV_ACCESS_FILE = "AUTERITY_ACCESS_FILE"
ENV_PII_KEY = "AUTERITY_PII_KEY"
ENV_SESSION_SECRET = "AUTERITY_SESSION_SECRET"
ENV_AS = "AUTERITY_AS"
ENV_RETENTION_DAYS = "AUTERITY_RETENTION_DAYS"
ENV_ROLLUPS = "AUTERITY_ROLLUPS"

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


def sources_file() -> Path:
    """``parameters/sources.yml``, or the file ``AUTERITY_SOURCES_FILE`` names."""
    named = value(ENV_SOURCES_FILE)
    return Path(named).expanduser() if named else parameters_dir() / "sources.yml"


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
    lock_timeout = seconds(ENV_LOCK_TIMEOUT)
    cache_ttl = seconds(ENV_CACHE_TTL)
    keep_runs = count(ENV_KEEP_RUNS, "runs")
    keep_failed_runs = count(ENV_KEEP_FAILED_RUNS, "runs")
    run_timeout = max(1.0, seconds(ENV_RUN_TIMEOUT)) if value(ENV_RUN_TIMEOUT) else None
    try:
        default_user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        default_user = "unknown"
    return Settings(
        db_url=value(ENV_DB_URL) or default_db_url(),
        timezone=validate_timezone(value(ENV_TIMEZONE) or "UTC"),
        currency=(value(ENV_CURRENCY) or "USD").upper(),
        user=value(ENV_USER) or default_user,
        lock_timeout_s=lock_timeout,
        cache_url=value(ENV_CACHE_URL) or None,
        cache_ttl_s=cache_ttl,
        cache_key=_cache_key(),
        cache_ca_file=value(ENV_CACHE_CA_FILE) or None,
        keep_runs=keep_runs,
        keep_failed_runs=keep_failed_runs,
        run_timeout_s=run_timeout,
    )


def value(name: str) -> str | None:
    """The raw value of a declared setting: the environment (or ``.env``), else its default.

    Parameters
    ----------
    name
        A name declared in :data:`SETTINGS` (anything else is a programming error).

    Returns
    -------
    str or None
        The variable's text as set (an empty value stays empty), else the declared default.
    """
    setting = SETTINGS_BY_NAME[name]
    load_env_file()
    raw = os.environ.get(name)
    return setting.default if raw is None else raw


def declared_default(name: str) -> str | None:
    """The default a setting is declared with in :data:`SETTINGS` (None: no value).

    Parameters
    ----------
    name
        A declared setting.

    Returns
    -------
    str or None
        The declaration's ``default``, for code that needs it when a value is set empty.
    """
    return SETTINGS_BY_NAME[name].default


def seconds(name: str, default: str | None = None) -> float:
    """A non-negative number of seconds from the declared setting ``name``.

    Parameters
    ----------
    name
        The setting.
    default
        Text used when the setting is unset and declares no default.

    Returns
    -------
    float
        The number; a :class:`ConfigError` names the variable when it is not one.
    """
    raw = value(name)
    raw = default if raw is None else raw
    raw = "" if raw is None else raw
    try:
        number = float(raw)
    except ValueError:
        number = -1.0
    if number < 0:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds")
    return number


def count(name: str, what: str) -> int:
    """A whole number, at least 1, from the declared setting ``name``.

    Parameters
    ----------
    name
        The setting.
    what
        What is counted, for the error message ("runs").

    Returns
    -------
    int
        The number; a :class:`ConfigError` names the variable when it is not one.
    """
    raw = value(name) or ""
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{name}={raw!r} must be a whole number of {what}, at least 1")
    return number


def _cache_key() -> str | None:
    """The cache signing secret, if set; too short a secret is refused (without echoing it)."""
    secret = value(ENV_CACHE_KEY) or None
    if secret is not None and len(secret) < CACHE_KEY_MIN_LENGTH:
        raise ConfigError(
            f"{ENV_CACHE_KEY} is {len(secret)} characters long; it signs the cache entries and "
            f"needs at least {CACHE_KEY_MIN_LENGTH} (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return secret
