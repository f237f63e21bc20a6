"""The layering of the package is a checked contract (import-linter, in pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the package under ``root/lib`` with ``root/pyproject.toml``."""
    env = {**os.environ, "PYTHONPATH": str(root / "lib")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_layers_contract_is_kept() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_build(tmp_path: Path) -> None:
    """The warehouse (a low layer) importing the CLI (the top) is refused, naming both."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        REPO / "lib" / "auterity",
        tmp_path / "lib" / "auterity",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    schema = tmp_path / "lib" / "auterity" / "warehouse" / "schema.py"
    schema.write_text(schema.read_text() + "\n\nfrom auterity import cli  # noqa: E402,F401\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert "auterity.warehouse.schema -> auterity.cli" in result.stdout


def test_own_modules_are_imported_at_the_top_of_files() -> None:
    """Lazy imports are for heavy third-party libraries only (one documented exception)."""
    import ast

    allowed = {
        ("cli/serve.py", "auterity.dashboards"),  # the server module loads Voila (see there)
        ("cli/serve.py", "auterity.api"),  # FastAPI and uvicorn, for `auterity api` only
        ("charts/columns.py", "auterity"),  # the metric layer pulls SQLAlchemy (see there)
    }
    found = []
    for source in sorted((REPO / "lib" / "auterity").rglob("*.py")):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                module = None
                if isinstance(inner, ast.ImportFrom):
                    module = inner.module or ""
                elif isinstance(inner, ast.Import):
                    module = inner.names[0].name
                if module is not None and module.split(".")[0] == "auterity":
                    where = str(source.relative_to(REPO / "lib" / "auterity"))
                    if (where, module) not in allowed:
                        found.append(f"{where}:{inner.lineno}: {module}")
    assert found == []
