"""Keep secrets out of messages and logs: URL passwords and registered literal secrets.

Installed once on import: a log-record factory masks every record's message, so no
logger (ours, SQLAlchemy's, Alembic's) can print a password that reached a message.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")
_secrets: set[str] = set()
_installed = False


def register_secret(value: str | None) -> None:
    """Add a literal secret (e.g. an SMTP password) that :func:`mask_secrets` must hide."""
    if value and len(value) >= 3:
        _secrets.add(value)


def mask_secrets(text: str) -> str:
    """Return ``text`` with URL passwords and registered secrets replaced by ``***``.

    Parameters
    ----------
    text : str
        Any message, e.g. a database error that may quote a URL.

    Returns
    -------
    str
        The same text, safe to print or log.
    """
    masked = _URL_PASSWORD.sub(r"\g<head>***\g<at>", text)
    for secret in _secrets:
        masked = masked.replace(secret, "***")
    return masked


def mask_url(url: str | URL) -> str:
    """Render a database URL with its password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return mask_secrets(url)


def install_log_masking() -> None:
    """Make every log record carry a masked message (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not ours
            return record
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    logging.setLogRecordFactory(factory)


install_log_masking()
