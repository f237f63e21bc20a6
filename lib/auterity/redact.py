"""Keep secrets out of messages, logs and run records: URL passwords and known secrets.

What is masked: the password of any ``scheme://user:password@host`` URL in the text, every
literal secret registered with :func:`register_secret`, and every secret the environment
(or ``.env``) holds for us - the value of any ``AUTERITY_*PASSWORD``, ``*SECRET``,
``*TOKEN`` or ``*KEY`` variable and the password inside any ``AUTERITY_*_URL`` - whether
or not the code that reads it has run yet in this process. A literal secret is also
masked as a Python ``repr`` or JSON string shows it (a notebook displaying a dict holding
a password with a quote or backslash in it), HTML-escaped and URL-encoded.

Installed once on import: a log-record factory masks every record's message, so no
logger (ours, SQLAlchemy's, Alembic's) can print a password that reached a message.
"""

from __future__ import annotations

import json
import logging
import os
import re
from html import escape
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import URL

# Matched only where "://" follows a scheme character (found with str.find, which is fast):
# a regex that had to try every position of a large text (a notebook with a chart or an
# image inside) would take seconds.
_URL_CREDENTIALS = re.compile(r"://[^:/@\s]*:(?P<pw>[^@\s]+)@")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-_")
_SECRET_VARIABLE = re.compile(r"^AUTERITY_\w*(PASSWORD|SECRET|TOKEN|KEY)$")
_MIN_SECRET = 3
_secrets: set[str] = set()
_installed = False


def register_secret(value: str | None) -> None:
    """Add a literal secret (e.g. an SMTP password) that :func:`mask_secrets` must hide."""
    if value and len(value) >= _MIN_SECRET:
        _secrets.add(value)


def _environment_secrets() -> set[str]:
    """Secret values the environment holds (read anew: tests and .env may change it)."""
    found: set[str] = set()
    for name, value in os.environ.items():
        if not name.startswith("AUTERITY_") or not value:
            continue
        if _SECRET_VARIABLE.match(name):
            found.add(value)
        elif name.endswith("_URL") and "@" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                continue
            if password:
                found.update({password, unquote(password)})
    return {value for value in found if len(value) >= _MIN_SECRET}


def _spellings(secret: str) -> set[str]:
    """``secret`` and the ways a message may spell it: inside a Python ``repr`` (either
    quote) or a JSON string, HTML-escaped, URL-encoded."""
    backslashed = secret.replace("\\", "\\\\")
    return {
        secret,
        repr(secret)[1:-1],
        backslashed.replace("'", "\\'"),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        escape(secret),
        escape(secret, quote=False),
        quote(secret),
        quote(secret, safe=""),
        quote_plus(secret),
    }


def known_secrets() -> list[str]:
    """Every literal secret :func:`mask_secrets` hides (with its other spellings: repr,
    JSON, HTML, URL-encoded), longest first."""
    found = _secrets | _environment_secrets()
    spelled = {form for secret in found for form in _spellings(secret)}
    return sorted(spelled, key=len, reverse=True)


def _url_password_spans(text: str) -> list[tuple[int, int]]:
    """Where the passwords of ``scheme://user:password@host`` URLs sit in ``text``."""
    spans = []
    pos = text.find("://")
    while pos != -1:
        if pos and text[pos - 1] in _SCHEME_CHARS:
            match = _URL_CREDENTIALS.match(text, pos)
            if match:
                spans.append(match.span("pw"))
        pos = text.find("://", pos + 3)
    return spans


def may_hold_secret(text: str) -> bool:
    """True if :func:`mask_secrets` could change ``text`` or its JSON-escaped form.

    A quick test for large texts (an executed notebook's JSON) that are usually clean.
    """
    if _url_password_spans(text):
        return True
    return any(s in text or json.dumps(s)[1:-1] in text for s in known_secrets())


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
    parts, last = [], 0
    for start, end in _url_password_spans(text):
        parts += [text[last:start], "***"]
        last = end
    masked = "".join(parts) + text[last:]
    for secret in known_secrets():  # longest first: a secret containing another goes whole
        masked = masked.replace(secret, "***")
    return masked


def mask_values(value: Any) -> Any:
    """``value`` with :func:`mask_secrets` applied to every string inside it.

    For parameter values and other JSON-like data (str, list, tuple, dict; other
    types are returned as they are), e.g. before they are stored or shown.
    """
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {mask_values(k): mask_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_values(v) for v in value)
    return value


def first_line(exc: BaseException) -> str:
    """The first line of an error (a database driver's own, without SQLAlchemy's
    decorations), secrets masked: what a one-line message quotes."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return mask_secrets(lines[0] if lines else type(orig).__name__)


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
