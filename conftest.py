"""Root pytest configuration: notebooks run (nbval) against a small demo warehouse.

``make test`` collects ``tests/`` and, with ``--nbval-lax``, every notebook in
``notebooks/``. The notebook kernels inherit this process's environment, so before the
first notebook runs we build a small deterministic demo warehouse in a temporary
directory and point ``AUTERITY_DB_URL`` (and ``AUTERITY_HOME`` for reports) at it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import date

import pytest

NOTEBOOK_WORLD = {"seed": 5, "events": 40_000, "months": 14, "end": date(2026, 11, 1)}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the notebooks' warehouse if any notebook was collected."""
    if not any(str(item.fspath).endswith(".ipynb") for item in session.items):
        return
    from auterity import warehouse
    from auterity.demo import generate as demo_data

    folder = tempfile.mkdtemp(prefix="auterity-notebooks-")
    session.config._auterity_notebook_dir = folder  # type: ignore[attr-defined]
    url = f"duckdb:///{folder}/notebooks.duckdb"
    demo_data.build(demo_data.DemoConfig(**NOTEBOOK_WORLD), url=url)
    warehouse.dispose_engines()
    os.environ["AUTERITY_DB_URL"] = url


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the notebooks' warehouse."""
    folder = getattr(config, "_auterity_notebook_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
