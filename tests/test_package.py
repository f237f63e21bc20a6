"""Packaging promises: a light import, typed package data, migrations shipped."""

from __future__ import annotations

import json
import subprocess
import sys

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
    loaded = _modules_after("import auterity.cli, auterity.warehouse, auterity.demo_data")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_migrations_are_packaged() -> None:
    from importlib import resources

    versions = resources.files("auterity") / "migrations" / "versions"
    assert any(p.name.startswith("0001") for p in versions.iterdir())
