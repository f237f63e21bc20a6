"""Secrets never reach messages or logs."""

from __future__ import annotations

import logging

import pytest

from auterity import redact


def test_mask_url_hides_password() -> None:
    url = "postgresql+psycopg://alice:s3cr3t!@db.example:5432/analytics"
    masked = redact.mask_url(url)
    assert "s3cr3t" not in masked
    assert masked == "postgresql+psycopg://alice:***@db.example:5432/analytics"


def test_mask_secrets_in_free_text_and_registered_values() -> None:
    redact.register_secret("hunter2-smtp")
    text = (
        "failed: postgresql://bob:pa55word@host/db and redis://:tok3n@cache:6379/0, "
        "smtp password hunter2-smtp"
    )
    masked = redact.mask_secrets(text)
    for secret in ("pa55word", "tok3n", "hunter2-smtp"):
        assert secret not in masked
    assert "postgresql://bob:***@host/db" in masked


def test_log_records_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("auterity.test")
    with caplog.at_level(logging.INFO, logger="auterity"):
        logger.info("connecting to %s", "postgresql://u:topsecret@h/db")
    assert "topsecret" not in caplog.text
    assert "postgresql://u:***@h/db" in caplog.text


def test_mask_url_of_url_object_and_garbage() -> None:
    import sqlalchemy as sa

    url = sa.make_url("postgresql://a:b1b2b3@h/d")
    assert redact.mask_url(url) == "postgresql://a:***@h/d"
    assert redact.mask_url("not a url x://u:pw123@h") == "not a url x://u:***@h"


def test_sqlalchemy_and_other_loggers_are_masked_too(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("sqlalchemy.engine.test").info("url=%s", "postgresql://x:pw999@h/db")
    assert "pw999" not in caplog.text
