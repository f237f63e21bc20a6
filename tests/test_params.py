"""Declared parameter choices: the committed notebooks say what they accept, and the
pre-check refuses anything else before a kernel starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from auterity import anomaly, charts, insights, present, reports, warehouse
from auterity.errors import ConfigError
from auterity.reports import params
from auterity.warehouse import dialect, schema

REPO = Path(__file__).parents[1]
BUSINESS, MODELHUB, EXECUTIVE, ANOMALIES, INSIGHTS = (
    "01-business-overview",
    "02-modelhub",
    "03-executive-summary",
    "04-anomalies",
    "05-insights",
)
ALL = (BUSINESS, MODELHUB, EXECUTIVE, ANOMALIES, INSIGHTS)


def test_committed_notebooks_declare_what_they_accept() -> None:
    """Each declaration matches the constants the library checks at run time."""
    for name in ALL:
        accepted = params.notebook_parameters(name)
        assert set(accepted["period"].choices or ()) <= set(present.PERIODS), name
        assert accepted["theme"].choices == charts.THEMES, name
        assert accepted["timezone"].choices == ("<timezone>",), name
        assert accepted["start"].choices == accepted["end"].choices == ("<date>",), name
        if "grain" in accepted:
            assert accepted["grain"].choices == dialect.GRAINS, name
        for spec in accepted.values():  # a notebook's defaults pass its own check
            assert spec.refusal(spec.default_value()) is None, (name, spec.name)
            if spec.choices and spec.default_value():  # on their own merit, not as defaults
                plain = params.Parameter("x", "str", '""', spec.help, spec.choices, spec.many)
                assert plain.refusal(spec.default_value()) is None, (name, spec.name)
    for name in (BUSINESS, MODELHUB, EXECUTIVE, ANOMALIES):
        assert params.notebook_parameters(name)["period"].choices == present.PERIODS
    # insights need at least 8 weeks: only the periods that can be that long
    assert params.notebook_parameters(INSIGHTS)["period"].choices == ("last_90_days", "custom")
    found = params.notebook_parameters(ANOMALIES)
    assert found["method"].choices == anomaly.METHODS and not found["method"].many
    assert found["metrics"].choices == found["log_metrics"].choices == ("<metric>",)
    assert found["metrics"].many and found["log_metrics"].many
    kinds = params.notebook_parameters(INSIGHTS)["kinds"]
    assert kinds.choices == insights.KINDS and kinds.many


def test_every_committed_parameter_set_still_validates() -> None:
    sets = params.parameter_sets()
    assert {nb.stem for nb, _ in sets} == set(ALL)
    for notebook, file in sets:
        params.load_parameter_set(notebook, file)


PERIOD_LIST = ", ".join(present.PERIODS)


@pytest.mark.parametrize(
    ("notebook", "item", "message"),
    [
        (BUSINESS, "period=yesterday", f"must be one of {PERIOD_LIST}, got 'yesterday'"),
        (EXECUTIVE, "period=Last_7_Days", "got 'Last_7_Days'"),
        (INSIGHTS, "period=last_7_days", "must be one of last_90_days, custom, got"),
        (BUSINESS, "grain=hour", "'grain' of notebook 01-business-overview must be one of day,"),
        (MODELHUB, "theme=solarized", "must be one of light, dark, got 'solarized'"),
        (MODELHUB, "timezone=Mars/Olympus", "must be one of an IANA time zone"),
        (BUSINESS, "start=2026-13-01", "must be one of a date as YYYY-MM-DD, got '2026-13-01'"),
        (EXECUTIVE, "end=1 Nov 2026", "got '1 Nov 2026'"),
        (ANOMALIES, "method=prophet,stl_mad", "must be one of stl_mad, rolling_z, prophet"),
        (
            ANOMALIES,
            "metrics=orders,revnue",
            "must be a comma-separated list of a metric of the catalog (activations, "
            "active_customers",
        ),
        (ANOMALIES, "metrics=orders,revnue", "got 'orders,revnue' ('revnue' not among them)"),
        (ANOMALIES, "log_metrics=revenue,profit", "('profit' not among them)"),
        (
            INSIGHTS,
            "kinds=anomaly,forecast,movers",
            "must be a comma-separated list of correlation, anomaly, level_shift, forecast_risk, "
            "drift, savings, mover, got 'anomaly,forecast,movers' ('forecast', 'movers' not "
            "among them)",
        ),
    ],
)
def test_values_outside_the_declared_choices_are_refused_before_anything_runs(
    notebook: str, item: str, message: str, tmp_path: Path
) -> None:
    warehouse.ensure_schema()
    key = item.split("=", 1)[0]
    before = sorted((REPO / "reports").rglob("*")) if (REPO / "reports").is_dir() else []
    with pytest.raises(ConfigError) as err:
        reports.run(notebook, overrides=[item], pdf=False)
    assert str(err.value).startswith(f"-p: parameter {key!r} of notebook {notebook} ")
    assert message in str(err.value)
    # the same value in a parameter set file: refused naming the file
    bad = tmp_path / "bad.yml"
    bad.write_text(f"{key}: '{item.split('=', 1)[1]}'\n")
    with pytest.raises(ConfigError, match=f"^{bad}: parameter '{key}'"):
        reports.run(notebook, params_file=bad, pdf=False)
    # nothing ran: no run recorded, no report folder made
    with warehouse.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(schema.report_runs)).scalar() == 0
        )
    after = sorted((REPO / "reports").rglob("*")) if (REPO / "reports").is_dir() else []
    assert after == before


@pytest.mark.parametrize(
    ("notebook", "values"),
    [
        (ANOMALIES, {"metrics": " orders, revenue ,error_rate", "log_metrics": ""}),
        (ANOMALIES, {"method": "rolling_z", "start": "2026-10-01", "period": "custom"}),
        (INSIGHTS, {"kinds": "anomaly,drift", "period": "custom", "end": "2026-11-01"}),
        (INSIGHTS, {"kinds": ""}),
        (BUSINESS, {"timezone": "Europe/Berlin", "grain": "month", "theme": "dark"}),
        (BUSINESS, {"timezone": "", "start": ""}),
    ],
)
def test_declared_values_are_accepted(notebook: str, values: dict) -> None:
    assert params.validate(notebook, values, "test") == values


def test_parse_choices() -> None:
    assert params.parse_choices("one of: a | b|c ; the rest | not options") == (
        ("a", "b", "c"),
        False,
    )
    assert params.parse_choices("any of: <metric>; comma-separated") == (("<metric>",), True)
    assert params.parse_choices("chart theme: light | dark") == (None, False)
    assert params.parse_choices("") == (None, False)
    with pytest.raises(ConfigError, match="unknown value family <colour>"):
        params.parse_choices("one of: <colour> | red")


def test_a_notebook_with_an_unknown_family_is_refused(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            'colour: str = "red"  # one of: <colour>; a colour', metadata={"tags": ["parameters"]}
        )
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "paint.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ConfigError, match=r"paint.ipynb: parameter 'colour': unknown value family"):
        params.notebook_parameters(path)


def test_help_notebook_shows_the_declarations() -> None:
    """papermill --help-notebook prints each declaration as written."""
    exe = Path(sys.executable).parent / "papermill"
    shown = subprocess.run(
        [str(exe), "--help-notebook", str(REPO / "notebooks" / f"{INSIGHTS}.ipynb")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "one of: last_90_days | custom" in shown
    assert "any of: correlation | anomaly | level_shift" in shown
