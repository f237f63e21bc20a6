"""Paths and settings come from one root and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from auterity import config
from auterity.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_project_root_is_the_checkout() -> None:
    assert config.project_root() == REPO
    assert config.data_dir() == REPO / "data"
    assert config.reports_dir() == REPO / "reports"
    assert config.parameters_dir() == REPO / "parameters"
    assert config.notebooks_dir() == REPO / "notebooks"


def test_home_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTERITY_HOME", str(tmp_path))
    assert config.project_root() == tmp_path
    assert config.default_db_url() == f"duckdb:///{tmp_path / 'data' / 'auterity.duckdb'}"


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTERITY_DB_URL", "AUTERITY_CURRENCY", "AUTERITY_USER"):
        monkeypatch.delenv(name, raising=False)
    settings = config.get_settings()
    assert settings.db_url == config.default_db_url()
    assert settings.timezone == "UTC" and settings.currency == "USD"
    assert settings.user and settings.lock_timeout_s == 60
    assert (settings.keep_runs, settings.keep_failed_runs) == (10, 10)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTERITY_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("AUTERITY_CURRENCY", "eur")
    monkeypatch.setenv("AUTERITY_USER", "ana")
    monkeypatch.setenv("AUTERITY_DB_LOCK_TIMEOUT", "2.5")
    s = config.get_settings()
    assert (s.timezone, s.currency, s.user, s.lock_timeout_s) == (
        "Europe/Berlin",
        "EUR",
        "ana",
        2.5,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AUTERITY_TIMEZONE", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("AUTERITY_DB_LOCK_TIMEOUT", "soon", "AUTERITY_DB_LOCK_TIMEOUT='soon' is not a number"),
    ],
)
def test_bad_settings(name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        config.get_settings()


def test_dotenv_file_is_read_but_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("AUTERITY_CURRENCY=GBP\nAUTERITY_USER=from-dotenv\n")
    monkeypatch.setenv("AUTERITY_HOME", str(tmp_path))
    monkeypatch.setenv("AUTERITY_USER", "from-env")
    monkeypatch.delenv("AUTERITY_CURRENCY", raising=False)
    monkeypatch.setattr(config, "_dotenv_loaded", False)
    try:
        s = config.get_settings()
        assert s.currency == "GBP" and s.user == "from-env"
    finally:
        import os

        os.environ.pop("AUTERITY_CURRENCY", None)


def test_root_found_from_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "clone"
    (checkout / "lib" / "auterity").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    (checkout / "notebooks").mkdir()
    monkeypatch.setattr(config, "__file__", str(tmp_path / "site" / "a" / "b" / "config.py"))
    monkeypatch.chdir(checkout / "notebooks")
    assert config.project_root() == checkout
    monkeypatch.chdir(tmp_path)
    assert config.project_root() == tmp_path


def test_readme_configuration_table_lists_every_setting_the_code_reads() -> None:
    """Every AUTERITY_* variable named in the library has a row in the README's table."""
    import re

    named = set()
    for source in (REPO / "lib" / "auterity").rglob("*.py"):
        named |= set(re.findall(r"\bAUTERITY_[A-Z0-9_]*[A-Z0-9]\b", source.read_text()))
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {
        name
        for line in table.splitlines()
        if line.startswith("| `AUTERITY_")
        for name in re.findall(r"`(AUTERITY_[A-Z0-9_]+)`", line.split(" | ")[0])
    }
    assert named, "no settings found: the scan is broken"
    assert sorted(named - rows) == []
