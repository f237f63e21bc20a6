"""Exceptions with messages meant for people: one clear line, secrets masked."""

from __future__ import annotations


class AuterityError(Exception):
    """Base class for errors the CLI reports as one line (no traceback)."""


class ConfigError(AuterityError):
    """A setting, file or URL is wrong; the message says which and how to fix it."""


class DatabaseUnavailable(AuterityError):
    """The warehouse cannot be reached (server down, file locked for too long)."""
