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


def test_secrets_the_environment_holds_are_masked_before_anyone_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Secrets in AUTERITY_*PASSWORD/SECRET/TOKEN/KEY variables and the passwords inside
    AUTERITY_*_URL variables are masked even if no code registered them in this process."""
    monkeypatch.setenv("AUTERITY_SMTP_PASSWORD", "smtp-env-pw-1")
    monkeypatch.setenv("AUTERITY_DASHBOARD_TOKEN", "tok-env-2")
    monkeypatch.setenv("AUTERITY_CACHE_KEY", "hmac-env-3")
    monkeypatch.setenv("AUTERITY_CACHE_URL", "redis://:redis%40pw4@cache:6379/0")
    monkeypatch.setenv("AUTERITY_CURRENCY", "EUR")  # not a secret
    text = "smtp-env-pw-1 tok-env-2 hmac-env-3 redis@pw4 redis%40pw4 in EUR"
    assert redact.mask_secrets(text) == "*** *** *** *** *** in EUR"
    assert {"smtp-env-pw-1", "redis@pw4"} <= set(redact.known_secrets())
    monkeypatch.delenv("AUTERITY_SMTP_PASSWORD")
    assert redact.mask_secrets("smtp-env-pw-1") == "smtp-env-pw-1"  # read anew each time


def test_mask_values_walks_json_like_data() -> None:
    redact.register_secret("walk-secret-9")
    value = {"a": ["x://u:pw1@h", ("walk-secret-9", 3)], "walk-secret-9": True, "n": None}
    assert redact.mask_values(value) == {"a": ["x://u:***@h", ("***", 3)], "***": True, "n": None}


def test_may_hold_secret_sees_json_escaped_secrets() -> None:
    import json

    redact.register_secret('quote"d\\pw')
    assert redact.may_hold_secret(json.dumps({"v": 'a quote"d\\pw b'}))
    assert redact.may_hold_secret('{"url": "postgresql://u:p@h/db"}')
    assert not redact.may_hold_secret('{"url": "https://vega.github.io/schema/v5.json"}')


def test_masking_a_large_text_is_fast() -> None:
    """A notebook's JSON with a large image or chart is scanned in linear time."""
    import time

    for text in ("A" * 5_000_000, "a://b:" + "A" * 3_000_000, "x" * 2_000_000 + "s://u:pw@h"):
        started = time.perf_counter()
        masked = redact.mask_secrets(text)
        assert time.perf_counter() - started < 1.0
        assert "pw@" not in masked


def test_a_secret_is_masked_however_a_message_spells_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook displaying ``{'smtp': password}`` shows the password as ``repr`` spells
    it (a quote escaped): that spelling, and JSON, HTML and URL-encoded ones, are masked
    too (the repr one leaked into an executed notebook: tests/test_credentials_scan.py)."""
    import html
    import json
    from urllib.parse import quote

    secret = "pw-9f3c&<\"'\\x"
    monkeypatch.setenv("AUTERITY_SMTP_PASSWORD", secret)
    spellings = [
        repr({"smtp": secret}),
        json.dumps(secret),
        html.escape(secret),
        quote(secret, safe=""),
        f"'{secret}'",
    ]
    for text in spellings:
        masked = redact.mask_secrets(text)
        assert "pw-9f3c" not in masked and "***" in masked, (text, masked)
    # an executed notebook holding the repr in its JSON is found and masked as a whole
    notebook_json = json.dumps({"text": repr({"smtp": secret})})
    assert redact.may_hold_secret(notebook_json)
