"""Report runs with real Papermill kernels: files, records, failures, retention, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa

from auterity import reports, warehouse
from auterity.errors import ConfigError
from auterity.reports import params
from auterity.warehouse import schema
from conftest import cell_started


def _notebook(path: Path, body: list[str], parameters: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Test report\n> A tiny report for tests."),
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("## First section"),
        *[nbformat.v4.new_code_cell(src) for src in body],
        nbformat.v4.new_markdown_cell("## Second section\nThe end."),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


PARAMS = (
    'greeting: str = "hello"  # what to say\n'
    "repeat: int = 2  # how many times\n"
    "ratio: float = 0.5  # a fraction\n"
    "loud: bool = False  # shout it"
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with one good and one failing notebook and parameter sets."""
    root = tmp_path / "project"
    monkeypatch.setenv("AUTERITY_HOME", str(root))
    _notebook(
        root / "notebooks" / "hello.ipynb",
        [
            "text = (greeting.upper() if loud else greeting) + ' ' + str(repeat * ratio)",
            "from IPython.display import Markdown\nMarkdown(f'**Result:** {text}')",
        ],
        PARAMS,
    )
    _notebook(
        root / "notebooks" / "broken.ipynb",
        [
            "x = 1",
            "raise ValueError(f'bad data for {greeting}')",
            "print('never reached')",
        ],
        PARAMS,
    )
    sets = root / "parameters" / "hello"
    sets.mkdir(parents=True)
    (sets / "loud.yml").write_text("greeting: hi\nloud: true\nrepeat: 4\n")
    (sets / "quiet.yml").write_text("greeting: psst\n")
    (root / "parameters" / "broken").mkdir()
    (root / "parameters" / "broken" / "daily.yml").write_text("repeat: 1\n")
    warehouse.ensure_schema()
    return root


def _rows() -> list[dict]:
    with warehouse.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(schema.report_runs))]


# --------------------------------------------------------------------------- parameters


def test_notebook_parameters_are_inspected(project: Path) -> None:
    accepted = params.notebook_parameters("hello")
    assert {k: v.type_name for k, v in accepted.items()} == {
        "greeting": "str",
        "repeat": "int",
        "ratio": "float",
        "loud": "bool",
    }
    assert accepted["repeat"].help == "how many times"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "greting: hi\n",
            "unknown parameter 'greting' for notebook hello; it accepts: "
            "greeting (str), repeat (int), ratio (float), loud (bool)",
        ),
        ("repeat: many\n", "parameter 'repeat' of notebook hello must be int"),
        ("loud: 1\n", "parameter 'loud' of notebook hello must be bool"),
        ("repeat: true\n", "parameter 'repeat' of notebook hello must be int"),
        ("- a\n- b\n", "a parameter set must be a mapping"),
    ],
)
def test_bad_parameter_files_are_refused_before_running(
    project: Path, content: str, message: str
) -> None:
    bad = project / "parameters" / "hello" / "bad.yml"
    bad.write_text(content)
    with pytest.raises(ConfigError) as err:
        reports.run("hello", params_file=bad, pdf=False)
    assert str(bad) in str(err.value) and message in str(err.value)
    assert _rows() == []  # nothing ran, nothing recorded


def test_overrides_are_typed_and_checked(project: Path) -> None:
    assert params.parse_overrides("hello", ["repeat=3", "ratio=2", "greeting=42"]) == {
        "repeat": 3,
        "ratio": 2,
        "greeting": "42",
    }
    with pytest.raises(ConfigError, match="-p: unknown parameter 'nope'"):
        params.parse_overrides("hello", ["nope=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        params.parse_overrides("hello", ["repeat"])
    with pytest.raises(ConfigError, match=r"no notebook 'missing' \(available: broken, hello\)"):
        params.resolve_notebook("missing")


def test_every_committed_parameter_set_matches_its_notebook() -> None:
    """The real parameters/ directory: every file is accepted by its notebook."""
    found = params.parameter_sets()
    for notebook, file in found:
        params.load_parameter_set(notebook, file)
    folders = {p.name for p in (Path(__file__).parents[1] / "parameters").iterdir() if p.is_dir()}
    notebooks = {p.stem for p in (Path(__file__).parents[1] / "notebooks").glob("*.ipynb")}
    assert folders <= notebooks, f"parameter folders without a notebook: {folders - notebooks}"


# --------------------------------------------------------------------------- runs


def test_run_produces_files_and_a_record(project: Path) -> None:
    record = reports.run(
        "hello",
        params_file=project / "parameters/hello/loud.yml",
        overrides=["ratio=0.25"],
        pdf=False,
    )
    assert record.ok and record.error_message is None
    executed = Path(record.outputs["notebook"])
    html_file = Path(record.outputs["html"])
    assert executed.is_file() and html_file.is_file()
    assert executed.parent.parent == project / "reports" / "hello"
    page = html_file.read_text()
    assert "<strong>Result:</strong> HI 1.0" in page  # 4 * 0.25, shouted
    assert "greeting.upper()" not in page  # no code cells
    assert "Test report" in page and "parameter set <strong>loud</strong>" in page
    assert 'href="#First-section"' in page and 'id="First-section"' in page  # TOC works
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs", "require.js"):
        assert cdn not in page
    (row,) = _rows()
    assert row["status"] == "ok" and row["notebook"] == "hello"
    assert row["parameter_set"] == "loud" and row["trigger"] == "manual"
    assert json.loads(row["parameters"]) == {
        "greeting": "hi",
        "loud": True,
        "repeat": 4,
        "ratio": 0.25,
    }
    assert row["duration_s"] > 0 and row["finished_at"] >= row["started_at"]
    assert row["acting_user"] and row["worker_pid"] == os.getpid()
    index = (project / "reports" / "index.html").read_text()
    assert (
        "hello" in index
        and "loud" in index
        and os.path.relpath(html_file, project / "reports") in index
    )


def test_failing_notebook_is_recorded_with_cell_and_message(project: Path) -> None:
    record = reports.run("broken", params_file=project / "parameters/broken/daily.yml", pdf=False)
    assert record.status == "failed"
    assert record.error_message == "ValueError: bad data for hello"
    # Execution count In [4]: parameters, injected parameters, `x = 1`, then the failing cell.
    assert record.error_cell == 4
    executed = nbformat.read(record.outputs["notebook"], as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert any(o.get("ename") == "ValueError" for c in code for o in c.get("outputs", []))
    assert all(not c.get("outputs") for c in code if "never reached" in c.source)
    assert "this run failed" in Path(record.outputs["html"]).read_text()
    (row,) = _rows()
    assert row["status"] == "failed" and row["error_cell"] == 4
    assert "bad data for hello" in row["error_message"]


def test_run_all_runs_every_set_and_reports_failures(project: Path) -> None:
    seen = []
    records = reports.run_all(
        parallel=2, pdf=False, on_done=lambda r, done, total: seen.append((done, total))
    )
    assert sorted((r.notebook, r.parameter_set, r.status) for r in records) == [
        ("broken", "daily", "failed"),
        ("hello", "loud", "ok"),
        ("hello", "quiet", "ok"),
    ]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert len(reports.list_runs()) == 3


def test_retention_prunes_old_runs(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTERITY_KEEP_RUNS", "2")
    quiet = project / "parameters/hello/quiet.yml"
    records = [reports.run("hello", params_file=quiet, pdf=False) for _ in range(3)]
    other = reports.run("hello", params_file=project / "parameters/hello/loud.yml", pdf=False)
    rows = {r["run_id"]: r for r in _rows()}
    assert rows[records[0].run_id]["pruned"] and not records[0].output_dir.exists()
    assert not rows[records[1].run_id]["pruned"] and records[1].output_dir.exists()
    assert not rows[other.run_id]["pruned"]
    index = (project / "reports" / "index.html").read_text()
    assert records[0].run_id[:6] not in index and records[2].run_id[:6] in index
    monkeypatch.setenv("AUTERITY_KEEP_RUNS", "zero")
    with pytest.raises(ConfigError, match="AUTERITY_KEEP_RUNS='zero'"):
        reports.run("hello", pdf=False)


def test_a_failure_streak_keeps_the_last_good_runs(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hourly job failing through an outage longer than AUTERITY_KEEP_RUNS runs: the last
    good reports of its parameter set stay (folders and records); failed runs are kept up to
    their own limit."""
    _notebook(
        project / "notebooks" / "flaky.ipynb",
        ["if fail:\n    raise RuntimeError('database unreachable')"],
        PARAMS + "\nfail: bool = False  # fail like an outage would",
    )
    hourly = project / "parameters" / "flaky" / "hourly.yml"
    hourly.parent.mkdir()
    hourly.write_text("repeat: 1\n")
    monkeypatch.setenv("AUTERITY_KEEP_RUNS", "2")
    monkeypatch.setenv("AUTERITY_KEEP_FAILED_RUNS", "1")
    good = [reports.run("flaky", params_file=hourly, pdf=False) for _ in range(2)]
    bad = [
        reports.run("flaky", params_file=hourly, overrides=["fail=true"], pdf=False)
        for _ in range(3)
    ]
    assert [r.status for r in good + bad] == ["ok", "ok", "failed", "failed", "failed"]
    rows = {r["run_id"]: r for r in _rows()}
    for record in good:  # the streak is longer than KEEP_RUNS: the good runs stay
        assert not rows[record.run_id]["pruned"] and record.output_dir.exists()
        assert Path(record.outputs["html"]).is_file()
    assert not rows[bad[-1].run_id]["pruned"] and bad[-1].output_dir.exists()
    for record in bad[:-1]:  # failed runs beyond their own limit go
        assert rows[record.run_id]["pruned"] and not record.output_dir.exists()
    index = (project / "reports" / "index.html").read_text()
    assert all(r.run_id[:6] in index for r in [*good, bad[-1]])
    # When the outage ends, a new good run pushes out the oldest good one only.
    back = reports.run("flaky", params_file=hourly, pdf=False)
    rows = {r["run_id"]: r for r in _rows()}
    assert rows[good[0].run_id]["pruned"] and not good[0].output_dir.exists()
    assert not any(rows[r.run_id]["pruned"] for r in (good[1], bad[-1], back))
    monkeypatch.setenv("AUTERITY_KEEP_FAILED_RUNS", "0")
    with pytest.raises(ConfigError, match="AUTERITY_KEEP_FAILED_RUNS='0'"):
        reports.run("flaky", pdf=False)


def test_kernel_death_is_a_failed_run(project: Path) -> None:
    _notebook(project / "notebooks" / "dies.ipynb", ["x = 1", "import os\nos._exit(3)"], PARAMS)
    record = reports.run("dies", pdf=False)
    assert record.status == "failed"
    assert "kernel died" in record.error_message.lower()
    assert record.error_cell == 3  # In [3]: parameters, x = 1, then the cell that died
    assert (_rows()[0]["status"], _rows()[0]["error_cell"]) == ("failed", 3)


def test_cell_timeout_is_a_failed_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell running past AUTERITY_RUN_TIMEOUT fails the run, recorded at that cell."""
    _notebook(
        project / "notebooks" / "slow.ipynb",
        ["x = 1", "import time\ntime.sleep(30)", "print('never')"],
        PARAMS,
    )
    monkeypatch.setenv("AUTERITY_RUN_TIMEOUT", "2")
    started = time.monotonic()
    record = reports.run("slow", params_file=None, overrides=["repeat=3"], pdf=False)
    assert time.monotonic() - started < 25
    assert record.status == "failed" and "timeout" in record.error_message.lower()
    # In [4]: parameters, injected parameters, x = 1, then the sleeping cell.
    assert record.error_cell == 4
    (row,) = _rows()
    assert (row["error_cell"], row["error_message"]) == (4, record.error_message)
    executed = nbformat.read(record.outputs["notebook"], as_version=4)
    (sleeping,) = [c for c in executed.cells if "sleep" in c.source]
    assert sleeping.execution_count == 4
    assert "this run failed" in Path(record.outputs["html"]).read_text()


def test_killed_runner_is_closed_by_the_next_listing(project: Path) -> None:
    _notebook(project / "notebooks" / "slow.ipynb", ["import time\ntime.sleep(60)"], PARAMS)
    runner = subprocess.Popen(
        [sys.executable, "-c", "from auterity import reports; reports.run('slow', pdf=False)"],
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r["status"] == "running" for r in _rows()):
        time.sleep(0.3)
    assert [r["status"] for r in _rows()] == ["running"]
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    (row,) = reports.list_runs()
    assert row["status"] == "failed" and "interrupted" in row["error_message"]
    assert row["worker_pid"] == runner.pid


def test_sigterm_records_an_interrupted_run(project: Path) -> None:
    _notebook(project / "notebooks" / "slow.ipynb", ["import time\ntime.sleep(60)"], PARAMS)
    runner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
            "from auterity import reports\nreports.run('slow', pdf=False)",
        ],
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r["status"] == "running" for r in _rows()):
        time.sleep(0.3)
    (running,) = _rows()
    while time.monotonic() < deadline and not cell_started(running["run_id"], "time.sleep(60)"):
        time.sleep(0.2)  # until the kernel is executing the slow cell (not a fixed wait)
    assert cell_started(running["run_id"], "time.sleep(60)")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 143
    (row,) = _rows()
    assert row["status"] == "failed" and "interrupted (SystemExit)" in row["error_message"]


# --------------------------------------------------------------------------- CLI


def test_cli_run_and_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from auterity.cli import main

    assert (
        main(
            [
                "run",
                "hello",
                "--params",
                str(project / "parameters/hello/quiet.yml"),
                "-p",
                "repeat=3",
                "--no-pdf",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "html" in out and "ok in" in out
    assert main(["run", "broken", "--no-pdf"]) == 1
    # No parameters given, so no injected-parameters cell: the failing cell is In [3].
    assert "failed at cell 3: ValueError: bad data for hello" in capsys.readouterr().err
    assert main(["runs", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert rows[1]["parameters"] == {"greeting": "psst", "repeat": 3}
    assert main(["runs"]) == 0
    table = capsys.readouterr().out
    assert "broken" in table
    assert {"job", "delivery_status"} <= set(table.splitlines()[0].split())
    assert "None" not in table and "nan" not in table.lower()  # blanks, not placeholders


def test_a_run_prints_only_what_concerns_the_user(project: Path) -> None:
    """No kernel or library chatter: the kernel talks over Unix sockets, so it does not
    warn that its traffic crosses TCP in plain text (it did on every run)."""
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("auterity")
    done = subprocess.run(
        [str(exe), "run", "hello", "--no-pdf"],
        capture_output=True,
        text=True,
        env={**os.environ, "AUTERITY_HOME": str(project)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "ok in" in done.stdout
    assert "WARNING" not in done.stderr and "encryption" not in done.stderr, done.stderr


def test_cli_run_all_exit_status_and_progress(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from auterity.cli import main

    before = os.getcwd()
    assert main(["run", "--all", "--parallel", "2", "--no-pdf"]) == 1
    # kernels start in their notebook's folder without moving this process (papermill's
    # cwd= did, and parallel runs in threads raced on it, leaving a run's folder behind)
    assert os.getcwd() == before
    captured = capsys.readouterr()
    assert "[3/3]" in captured.err and "2 ok, 1 failed" in captured.out
    assert main(["run", "--all", "hello", "--no-pdf"]) == 0
    assert main(["run", "--no-pdf"]) == 2
    assert "name a NOTEBOOK" in capsys.readouterr().err
    assert main(["run", "hello", "-p", "colour=red"]) == 2
    assert "-p: unknown parameter 'colour'" in capsys.readouterr().err


def test_split_list_reads_comma_separated_parameters() -> None:
    assert params.split_list(" orders, revenue,,conversion_rate ") == [
        "orders",
        "revenue",
        "conversion_rate",
    ]
    assert params.split_list("") == [] and params.split_list(" , ") == []


def test_mask_notebook_leaves_clean_notebooks_alone_and_masks_the_rest(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('url = "postgresql://u:pw-77@h/db"')]
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="postgresql://u:pw-77@h/db\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "cG9zdGdyZXNxbDovL3U6cHc="}),
    ]
    clean = nbformat.writes(nbformat.v4.new_notebook())
    assert reports.mask_notebook(clean) is clean  # nothing to mask: not even parsed
    masked = nbformat.reads(reports.mask_notebook(nbformat.writes(nb)), as_version=4)
    assert masked.cells[0].source == 'url = "postgresql://u:***@h/db"'
    assert masked.cells[0].outputs[0].text == "postgresql://u:***@h/db\n"
    assert masked.cells[0].outputs[1].data["image/png"] == "cG9zdGdyZXNxbDovL3U6cHc="
    # papermill's handler interface, through the masking prefix
    handler = reports.runner.MaskedNotebookWriter()
    target = tmp_path / "out.ipynb"
    handler.write(nbformat.writes(nb), reports.MASKED_SCHEME + str(target))
    assert "pw-77" not in handler.read(reports.MASKED_SCHEME + str(target))
    assert handler.listdir(reports.MASKED_SCHEME + str(tmp_path)) == [
        reports.MASKED_SCHEME + str(target)
    ]
    assert handler.pretty_path(reports.MASKED_SCHEME + str(target)) == str(target)
    warehouse.ensure_schema()
    with pytest.raises(ConfigError, match="no recorded run 'nope'"):
        reports.get_run("nope")
