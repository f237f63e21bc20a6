"""Packaging promises: a light import, typed package data, migrations shipped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HEAVY = [
    "prophet",
    "altair",
    "statsmodels",
    "scipy",
    "vl_convert",
    "papermill",
    "voila",
    "matplotlib",
    "cmdstanpy",
]


def _modules_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout)}


def test_import_auterity_is_light() -> None:
    loaded = _modules_after("import auterity")
    assert not loaded & set(HEAVY)
    assert "pandas" not in loaded and "sqlalchemy" not in loaded


def test_cli_and_warehouse_do_not_pull_analytics_stacks() -> None:
    loaded = _modules_after("import auterity.cli, auterity.warehouse, auterity.demo")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_migrations_are_packaged() -> None:
    from importlib import resources

    versions = resources.files("auterity.warehouse") / "migrations" / "versions"
    assert any(p.name.startswith("0001") for p in versions.iterdir())


ENSURE_CHROMIUM = Path(__file__).resolve().parents[1] / ".ci" / "ensure-chromium"


def _fake_bin(tmp_path: Path, *, uid: int, sudo_ok: bool) -> Path:
    """A PATH folder whose id/sudo/apt-get stand in for the system's (apt-get is recorded)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    scripts = {
        "id": f"#!/bin/sh\necho {uid}\n",
        "sudo": "#!/bin/sh\n" + ('shift; exec "$@"\n' if sudo_ok else "exit 1\n"),
        # installing creates the browser where DEBIAN_CHROMIUM says Debian puts it
        "apt-get": '#!/bin/sh\necho "$@" >> "$APT_LOG"\n'
        'case "$1" in install) printf "#!/bin/sh\\n" > "$DEBIAN_CHROMIUM"; '
        'chmod +x "$DEBIAN_CHROMIUM";; esac\n',
    }
    for name, text in scripts.items():
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    return fake


def _ensure(tmp_path: Path, fake: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    env = {
        "PATH": f"{fake}:/usr/bin:/bin",
        "DEBIAN_CHROMIUM": str(tmp_path / "chromium"),
        "APT_LOG": str(tmp_path / "apt.log"),
    }
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ENSURE_CHROMIUM)], env=env, capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - started < 10  # stops in seconds, before any test runs
    return result, tmp_path / "apt.log"


def test_make_test_and_make_demo_make_sure_chromium_is_there_first() -> None:
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "\ntest: install chromium " in makefile
    assert "\ndemo: install chromium " in makefile
    assert "bash .ci/ensure-chromium" in makefile


def test_without_chromium_and_without_root_it_stops_at_once_with_the_command(
    tmp_path: Path,
) -> None:
    result, apt_log = _ensure(tmp_path, _fake_bin(tmp_path, uid=1000, sudo_ok=False))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "run 'sudo apt-get install -y chromium'" in line
    assert not apt_log.exists()


def test_without_chromium_as_root_or_with_sudo_it_installs_debians(tmp_path: Path) -> None:
    for uid, sudo_ok in ((0, False), (1000, True)):
        (tmp_path / "chromium").unlink(missing_ok=True)
        (tmp_path / "apt.log").unlink(missing_ok=True)
        fake = tmp_path / "bin"
        if fake.exists():
            for item in fake.iterdir():
                item.unlink()
            fake.rmdir()
        result, apt_log = _ensure(tmp_path, _fake_bin(tmp_path, uid=uid, sudo_ok=sudo_ok))
        assert result.returncode == 0, result.stderr
        assert apt_log.read_text().splitlines() == ["update -qq", "install -y -qq chromium"]
        assert (tmp_path / "chromium").is_file()


def test_with_chromium_present_nothing_is_installed(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    result, apt_log = _ensure(tmp_path, _fake_bin(tmp_path, uid=0, sudo_ok=False))
    assert result.returncode == 0 and result.stderr == ""
    assert not apt_log.exists()


def test_every_pre_commit_hook_runs_a_tool_that_make_install_provides() -> None:
    """The hooks are local: each entry is a file in .venv (no hook repository is fetched)."""
    import shlex

    import yaml

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    hooks = [hook for entry in config["repos"] for hook in entry["hooks"]]
    assert {entry["repo"] for entry in config["repos"]} == {"local"}
    assert {"ruff", "mypy", "import-linter", "check-yaml", "nbstripout"} <= {h["id"] for h in hooks}
    for hook in hooks:
        tool = shlex.split(hook["entry"])[0]
        assert tool.startswith(".venv/bin/"), hook["id"]
        assert Path(sys.executable).with_name(Path(tool).name).is_file(), hook["id"]
