"""The committed notebooks keep the house rules (their execution is nbval's job)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    names = {p.stem for p in NOTEBOOKS}
    assert {
        "01-business-overview",
        "02-modelhub",
        "03-executive-summary",
        "04-anomalies",
        "05-insights",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_shape_title_purpose_and_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert "\n> " in first.source, "a one-line `>` purpose follows the title"
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [code[0]], "the first code cell, and only it, is tagged parameters"
    lines = [ln for ln in code[0].source.splitlines() if ln.strip()]
    tree = ast.parse(code[0].source)
    assert all(isinstance(node, ast.AnnAssign) for node in tree.body), "typed assignments only"
    for node in tree.body:
        assert isinstance(node.value, ast.Constant), "literal defaults only"
    assert all(" # " in ln for ln in lines), "every parameter has a comment"
    # papermill must understand every line (it silently skips lines it cannot parse)
    assert len(papermill.inspect_notebook(str(path))) == len(tree.body)
    assert {"period", "timezone", "theme"} <= set(papermill.inspect_notebook(str(path)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_thin(path: Path) -> None:
    """No functions or classes in notebooks; logic lives in lib/auterity."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        assert not any(isinstance(n, ast.FunctionDef | ast.ClassDef) for n in ast.walk(tree))
        assert len(cell.source.splitlines()) <= 12, cell.source[:60]
        assert "AUTERITY_DB_URL" not in cell.source and "duckdb:///" not in cell.source
