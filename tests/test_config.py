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


def test_every_setting_the_code_names_is_declared_once_and_the_readme_shows_the_declaration() -> (
    None
):
    """config.SETTINGS is the one declaration: the README's table is exactly it, row by row."""
    import re

    named = set()
    for source in (REPO / "lib" / "auterity").rglob("*.py"):
        named |= set(re.findall(r"\bAUTERITY_[A-Z0-9_]*[A-Z0-9]\b", source.read_text()))
    declared = [s.name for s in config.SETTINGS]
    assert len(declared) == len(set(declared)), "a setting is declared twice"
    assert sorted(named - set(declared)) == []
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `AUTERITY_")]
    expected = [f"| `{s.name}` | {s.shown_default} | {s.meaning} |" for s in config.SETTINGS]
    assert rows == expected


def test_only_config_reads_auterity_variables_from_the_environment() -> None:
    """Modules ask config.value() (or seconds/count) instead of reading os.environ."""
    import re

    offenders = []
    for source in (REPO / "lib" / "auterity").rglob("*.py"):
        if source.name == "config.py" and source.parent.name == "auterity":
            continue
        text = source.read_text()
        for match in re.finditer(r"(os\.environ(\.get)?|os\.getenv)\s*[\(\[]\s*([A-Z_\"']+)", text):
            argument = match.group(3)
            if "AUTERITY" in argument or argument.startswith("ENV_"):
                offenders.append(f"{source.relative_to(REPO)}: {match.group(0)}")
    assert offenders == []


def test_value_reads_the_environment_then_the_declared_default(monkeypatch) -> None:
    monkeypatch.delenv("AUTERITY_SMTP_HOST", raising=False)
    assert config.value("AUTERITY_SMTP_HOST") == "localhost"
    monkeypatch.setenv("AUTERITY_SMTP_HOST", "mail.example.org")
    assert config.value("AUTERITY_SMTP_HOST") == "mail.example.org"
    monkeypatch.setenv("AUTERITY_SMTP_HOST", "")
    assert config.value("AUTERITY_SMTP_HOST") == ""  # set but empty stays empty
    with pytest.raises(KeyError):
        config.value("AUTERITY_NOT_DECLARED")
    assert config.declared_default("AUTERITY_CHROMIUM") == "/usr/bin/chromium"
    monkeypatch.setenv("AUTERITY_SCHEDULE_GRACE", "soon")
    with pytest.raises(ConfigError, match="AUTERITY_SCHEDULE_GRACE='soon' is not a number"):
        config.seconds("AUTERITY_SCHEDULE_GRACE")
    monkeypatch.setenv("AUTERITY_SCHEDULE_MAX_PARALLEL", "0")
    with pytest.raises(ConfigError, match="at least 1"):
        config.count("AUTERITY_SCHEDULE_MAX_PARALLEL", "concurrent runs")
