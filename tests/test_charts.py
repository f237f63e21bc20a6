"""Charts: theme, number formats, builders on real library output, offline rendering."""

from __future__ import annotations

import ast
import json
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc

from auterity import business, charts, metrics
from auterity.errors import ConfigError

JUN, AUG, SEP, OCT, NOV = (date(2026, m, 1) for m in (6, 8, 9, 10, 11))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CDN_HOSTS = ("cdn.jsdelivr", "unpkg.com", "cdnjs", "esm.sh", "skypack", "googleapis")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _restore_altair() -> Iterator[None]:
    """Tests enable themes and renderers: put Altair's global state back afterwards."""
    theme, renderer = alt.theme.active, alt.renderers.active
    options = dict(alt.renderers.options)
    sent = charts.renderer_state["bundle_sent"]
    yield
    alt.theme.enable(theme)
    alt.renderers.enable(renderer, **options)
    charts.renderer_state["bundle_sent"] = sent


def compiled(chart: Any, theme: str | None = None) -> dict:
    """The chart's Vega-Lite spec, after checking that Vega-Lite compiles it to Vega."""
    spec = charts.to_dict(chart, theme=theme)
    vega = vlc.vegalite_to_vega(spec, vl_version=charts.vl_version())
    assert vega["marks"] or vega.get("data")
    return spec


def walk(node: Any) -> Iterator[dict]:
    """Every dict in a spec, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def units(spec: dict) -> list[dict]:
    """The unit specs (those with a mark) of a spec."""
    body = {k: v for k, v in spec.items() if k not in ("config", "datasets")}
    return [d for d in walk(body) if "mark" in d]


def params(spec: dict) -> dict[str, dict]:
    """Named parameters (selections) of a spec, by name."""
    return {p["name"]: p for d in walk(spec) for p in d.get("params", []) if "name" in p}


def mark_type(unit: dict) -> str:
    """A unit's mark type."""
    return unit["mark"] if isinstance(unit["mark"], str) else unit["mark"]["type"]


def rows(spec: dict) -> list[dict]:
    """All inlined data rows of a spec (every dataset)."""
    return [r for values in spec.get("datasets", {}).values() for r in values]


def dataset_of(spec: dict, unit: dict) -> list[dict]:
    """The rows a unit (or its enclosing layer) draws."""
    name = unit.get("data", spec.get("data", {})).get("name")
    return spec["datasets"][name]


def tooltip_fields(unit: dict) -> list[str]:
    """The fields of a unit's tooltip."""
    tip = unit.get("encoding", {}).get("tooltip", [])
    return [t["field"] for t in (tip if isinstance(tip, list) else [tip])]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #RRGGBB colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", png[16:24])


def svg_size(svg: str) -> tuple[float, float]:
    """Width and height of an SVG's root element."""
    root = re.search(r"<svg\b[^>]*>", svg).group(0)
    width = re.search(r'\bwidth="([\d.]+)"', root).group(1)
    height = re.search(r'\bheight="([\d.]+)"', root).group(1)
    return float(width), float(height)


def svg_texts(svg: str) -> list[str]:
    """The text of every <text> element of an SVG."""
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


@pytest.fixture(scope="module")
def real(analytics_duckdb: str) -> dict[str, Any]:
    """Library output from the demo warehouse (June..October 2026), computed once."""
    url = analytics_duckdb
    return {
        "kpi": business.kpi_summary(OCT, NOV, url=url),
        "daily": metrics.query(["revenue", "orders"], start=AUG, end=NOV, grain="day", url=url),
        "weekly_by_region": metrics.query(
            ["revenue"], start=AUG, end=NOV, grain="week", by=["region"], url=url
        ),
        "retention": business.cohort_retention(JUN, NOV, url=url),
        "funnel": business.funnel(OCT, NOV, url=url),
        "breakdown": business.breakdown("revenue", "region", OCT, NOV, url=url),
        "movers": business.top_movers("revenue", "country", (OCT, NOV), (SEP, OCT), url=url),
    }


@pytest.fixture(scope="module")
def models(analytics_duckdb: str) -> dict[str, pd.DataFrame]:
    """ModelHub output from the demo warehouse (skipped if the module is not there)."""
    modelhub = pytest.importorskip("auterity.modelhub")
    return {
        "leaderboard": modelhub.leaderboard(OCT, NOV, url=analytics_duckdb),
        "daily": modelhub.daily_trend(OCT, NOV, url=analytics_duckdb),
    }


def synthetic_series() -> tuple[pd.DataFrame, pd.DataFrame]:
    """An hourly latency series with one planted window and one single-point anomaly."""
    rng = np.random.default_rng(3)
    ts = pd.date_range("2026-09-01", periods=240, freq="h")
    series = pd.DataFrame({"ts": ts, "latency": 800 + rng.normal(0, 20, 240)})
    series.loc[100:110, "latency"] += 600
    anomalies = pd.DataFrame(
        {"start": [ts[100], ts[200]], "end": [ts[110], ts[200]], "score": [4.2, 3.1]}
    )
    return series, anomalies


def synthetic_forecast() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sixty days of history and a ninety-day forecast that overlaps it."""
    rng = np.random.default_rng(5)
    history = pd.DataFrame(
        {"ds": pd.date_range("2026-08-01", periods=60), "y": 1000 + rng.normal(0, 30, 60)}
    )
    yhat = 1000 + np.arange(90) * 5.0
    forecast = pd.DataFrame(
        {
            "ds": pd.date_range("2026-08-01", periods=90),
            "yhat": yhat,
            "yhat_lower": yhat - 40,
            "yhat_upper": yhat + 40,
        }
    )
    return history, forecast


# --------------------------------------------------------------------------- package


def test_import_is_light_and_auterity_does_not_import_charts() -> None:
    code = (
        "import sys, json; import auterity; before = 'auterity.charts' in sys.modules; "
        "import auterity.charts; print(json.dumps([before, sorted(sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, loaded = json.loads(out.stdout)
    assert before is False
    assert not {m.split(".")[0] for m in loaded} & {"altair", "vl_convert", "sqlalchemy"}


def test_units_and_directions_match_the_metric_layer() -> None:
    assert charts.UNITS == metrics.UNITS
    assert charts.GOOD == metrics.GOOD


def test_charts_import_only_base_modules_and_the_metric_layer() -> None:
    """charts sits low in the layers: analytics, reports and dashboards build on it."""
    allowed = ("charts", "errors", "config", "escape", "redact", "metrics")
    modules = list(Path(charts.__file__).parent.glob("*.py"))
    assert len(modules) >= 8
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "auterity":
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("auterity."):
                names = [node.module.split(".")[1]]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[1] for a in node.names if a.name.startswith("auterity.")]
            else:
                continue
            assert set(names) <= set(allowed), (path.name, names)


def test_load_altair_registers_the_themes_and_resolve_theme_follows_the_enabled_one() -> None:
    assert charts.load_altair() is alt
    assert {"auterity-light", "auterity-dark"} <= set(alt.theme.names())
    alt.theme.enable("default")
    assert charts.theme.resolve_theme(None) == "light"
    charts.use_theme("dark")
    assert charts.theme.resolve_theme(None) == "dark"
    assert charts.theme.resolve_theme("light") == "light"
    with pytest.raises(ConfigError, match="unknown chart theme 'sepia'"):
        charts.theme.resolve_theme("sepia")


# --------------------------------------------------------------------------- theme


@pytest.mark.parametrize("name", charts.THEMES)
def test_theme_config_is_valid_vega_lite(name: str) -> None:
    config = charts.theme_config(name)
    alt.Config.from_dict(config)  # validates against the Vega-Lite schema
    chart = alt.Chart(pd.DataFrame({"a": ["x", "y"], "b": [1, 2]})).mark_bar().encode(x="a", y="b")
    spec = compiled(chart, theme=name)
    assert spec["config"]["background"] == config["background"]
    assert len(set(config["range"]["category"])) == len(config["range"]["category"]) == 8


def test_dark_theme_differs_and_both_are_readable() -> None:
    light, dark = charts.theme_config("light"), charts.theme_config("dark")
    assert light["background"] != dark["background"]
    assert contrast(dark["background"], "#111111") < 1.1  # "#111-ish"
    for config in (light, dark):
        bg = config["background"]
        assert contrast(config["title"]["color"], bg) >= 7
        assert contrast(config["axis"]["labelColor"], bg) >= 4.5
        bad, _, good = config["range"]["diverging"]
        assert contrast(good, bg) >= 3 and contrast(bad, bg) >= 3
    # Lines and bars must stand out: every dark colour, and the light theme's first four.
    assert all(contrast(c, dark["background"]) >= 3 for c in dark["range"]["category"])
    assert all(contrast(c, light["background"]) >= 3 for c in light["range"]["category"][:4])


def test_use_theme_enables_an_altair_theme_and_unknown_names_fail() -> None:
    chart = alt.Chart(pd.DataFrame({"a": [1]})).mark_point().encode(x="a:Q")
    charts.use_theme("dark")
    assert alt.theme.active == "auterity-dark"
    assert chart.to_dict()["config"]["background"] == "#111111"
    assert charts.to_dict(chart)["config"]["background"] == "#111111"
    assert charts.to_dict(chart, theme="light")["config"]["background"] == "#FFFFFF"
    assert alt.theme.active == "auterity-dark"  # rendering does not switch themes
    configured = chart.configure_axis(labelFontSize=20)
    merged = charts.to_dict(configured, theme="light")["config"]
    assert merged["axis"]["labelFontSize"] == 20  # the chart's own settings win
    assert merged["axis"]["labelColor"] == charts.theme_config("light")["axis"]["labelColor"]
    alt.theme.enable("default")  # render functions still use the project theme
    assert charts.to_dict(chart)["config"]["font"] == charts.FONT
    for call in (
        lambda: charts.theme_config("solarized"),
        lambda: charts.use_theme("solarized"),
        lambda: charts.to_png(chart, theme="solarized"),
    ):
        with pytest.raises(ConfigError, match="unknown chart theme 'solarized'"):
            call()


@pytest.mark.parametrize(
    ("code", "symbol", "tick"),
    [("USD", "$", "$20,000"), ("EUR", "€", "€20,000"), ("CHF", "CHF ", "CHF 20,000")],
)
def test_currency_axis_uses_the_settings_currency(
    monkeypatch: pytest.MonkeyPatch, code: str, symbol: str, tick: str
) -> None:
    monkeypatch.setenv("AUTERITY_CURRENCY", code)
    assert charts.theme_config()["locale"]["number"]["currency"] == [symbol, ""]
    frame = pd.DataFrame({"region": ["NA", "EMEA"], "revenue": [130935.47, 20000.0]})
    svg = charts.to_svg(charts.breakdown_bars(frame, "revenue", "region", unit="currency"))
    texts = svg_texts(svg)
    assert tick in texts
    assert charts.format_value(130935.47, "currency") in texts  # the bar label
    assert f"Revenue ({code})" in texts


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("unit", "kwargs", "expected"),
    [
        ("currency", {}, "$,.0f"),
        ("currency", {"decimals": 2}, "$,.2f"),
        ("currency", {"compact": True}, "$.3~s"),
        ("percent", {}, ".1%"),
        ("percent", {"decimals": 2}, ".2%"),
        ("ms", {}, ",.0f"),
        ("ms", {"compact": True}, ",.0f"),
        ("count", {}, ",.0f"),
        ("count", {"compact": True}, ".3~s"),
        ("tokens", {}, ",.0f"),
        ("tokens", {"compact": True}, ".3~s"),
        ("number", {}, ",.3~f"),
        ("number", {"decimals": 1}, ",.1f"),
    ],
)
def test_d3_format(unit: str, kwargs: dict, expected: str) -> None:
    assert charts.d3_format(unit, **kwargs) == expected


def test_d3_formats_render_as_expected_in_vega() -> None:
    values = {
        "currency": (1234.5, "$1,235"),
        "percent": (0.0534, "5.3%"),
        "ms": (1834.2, "1,834"),
        "count": (12345, "12,345"),
        "number": (1.23456, "1.235"),
    }
    frame = pd.DataFrame([{"unit": u, "value": v} for u, (v, _) in values.items()])
    layers = [
        alt.Chart(frame)
        .transform_filter(alt.datum.unit == unit)
        .mark_text()
        .encode(y="unit:N", text=alt.Text("value:Q", format=charts.d3_format(unit)))
        for unit in values
    ]
    texts = svg_texts(charts.to_svg(alt.layer(*layers)))
    assert {text for _, text in values.values()} <= set(texts)
    big = alt.Chart(pd.DataFrame({"v": [2.5e9]})).mark_text()
    svg = charts.to_svg(
        big.encode(text=alt.Text("v:Q", format=charts.d3_format("tokens", compact=True)))
    )
    assert "2.5G" in svg_texts(svg)  # d3's SI prefix; text (format_value) says 2.5B


def test_unknown_unit_and_bad_decimals_fail() -> None:
    with pytest.raises(ConfigError, match="unknown unit 'euros'"):
        charts.d3_format("euros")
    with pytest.raises(ConfigError, match="unknown unit"):
        charts.format_value(1, "euros")
    with pytest.raises(ConfigError, match="decimals"):
        charts.d3_format("number", decimals=-1)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (1234567.8, "currency", "$1.23M"),
        (865.53, "currency", "$866"),
        (12.5, "currency", "$12.50"),
        (0.42, "currency", "$0.42"),
        (-1234.4, "currency", "−$1,234"),
        (999_999_999, "currency", "$1B"),
        (2.5e12, "currency", "$2.5T"),
        (0.0534, "percent", "5.3 %"),
        (-0.02, "percent", "−2.0 %"),
        (-0.0004, "percent", "0.0 %"),
        (12.5, "percent", "1,250.0 %"),
        (1834.2, "ms", "1,834 ms"),
        (3.26, "ms", "3.3 ms"),
        (12_345, "count", "12,345"),
        (274.2258, "count", "274"),
        (12_345_678, "count", "12.3M"),
        (np.int64(5), "count", "5"),
        (2.5e9, "tokens", "2.5B"),
        (1.23456, "number", "1.235"),
        (2.0, "number", "2"),
        (-0.0001, "number", "0"),
        (float("nan"), "currency", "–"),
        (None, "percent", "–"),
        (pd.NA, "count", "–"),
        (np.nan, "ms", "–"),
        (float("inf"), "count", "∞"),
        (float("-inf"), "number", "−∞"),
    ],
)
def test_format_value(value: Any, unit: str, expected: str) -> None:
    assert charts.format_value(value, unit, currency="USD") == expected


def test_format_value_currency_follows_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTERITY_CURRENCY", "eur")
    assert charts.format_value(1234567.8, "currency") == "€1.23M"
    assert charts.format_value(1234.6, "currency", currency="GBP") == "£1,235"
    assert charts.format_value(-1234.6, "currency", currency="CHF") == "−CHF 1,235"


@pytest.mark.parametrize(
    ("delta", "good", "expected"),
    [
        (0.125, "up", ("▲ 12.5 %", "good")),
        (0.125, "down", ("▲ 12.5 %", "bad")),
        (-0.032, "up", ("▼ 3.2 %", "bad")),
        (-0.032, "down", ("▼ 3.2 %", "good")),
        (0.2, "neutral", ("▲ 20.0 %", "neutral")),
        (-0.2, "neutral", ("▼ 20.0 %", "neutral")),
        (0.0, "up", ("0.0 %", "neutral")),
        (0.0004, "up", ("0.0 %", "neutral")),
        (float("nan"), "up", ("–", "neutral")),
        (None, "down", ("–", "neutral")),
        (float("inf"), "up", ("▲ ∞ %", "good")),
        (3.5, "up", ("▲ 350.0 %", "good")),
    ],
)
def test_format_delta(delta: Any, good: str, expected: tuple[str, str]) -> None:
    assert charts.format_delta(delta, good) == expected


def test_format_delta_rejects_unknown_direction() -> None:
    with pytest.raises(ConfigError, match="unknown good direction 'sideways'"):
        charts.format_delta(0.1, "sideways")


def test_kpi_tiles_agree_with_the_kpi_summary(real: dict) -> None:
    kpi = real["kpi"]
    tones = {True: "good", False: "bad", None: "neutral"}
    for row in kpi.itertuples(index=False):
        text, tone = charts.format_delta(row.previous_delta_pct, row.good)
        if text not in ("0.0 %", "–"):
            assert tone == tones[row.good_news], row.metric
        assert charts.format_value(row.current, row.unit)  # every KPI has a tile value
    revenue = kpi.set_index("metric").loc["revenue"]
    assert charts.format_value(revenue["current"], "currency", currency="USD").startswith("$")


# --------------------------------------------------------------------------- builders


@pytest.mark.parametrize(
    ("unit", "values", "axis", "tooltip"),
    [
        ("currency", [0.13, 3.2], "$,.2f", "$,.2f"),
        ("currency", [1234.5, 99.0], "$,.0f", "$,.2f"),
        ("currency", [2.5e6, 1e5], "$.3~s", "$,.2f"),
        ("percent", [0.004, 0.001], ".2%", ".2%"),
        ("percent", [0.05, 0.2], ".1%", ".1%"),
        ("ms", [3.5, 7.0], ",.1f", ",.1f"),
        ("tokens", [3e9, 1e6], ".3~s", ",.0f"),
        ("number", [float("nan")] * 2, ",.3~f", ",.3~f"),
    ],
)
def test_axis_and_tooltip_formats_adapt_to_magnitude(
    unit: str, values: list[float], axis: str, tooltip: str
) -> None:
    frame = pd.DataFrame({"feature": ["a", "b"], "value": values})
    spec = compiled(charts.breakdown_bars(frame, "value", "feature", unit=unit))
    bars = units(spec)[0]
    assert bars["encoding"]["x"]["axis"]["format"] == axis
    assert bars["encoding"]["tooltip"][1]["format"] == tooltip


def test_labels_come_from_the_catalog_and_a_broken_catalog_does_not_break_charts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    frame = pd.DataFrame({"event_type": ["visit", "signup"], "arpu": [10.0, 2.0]})
    spec = compiled(charts.breakdown_bars(frame, "arpu", "event_type", unit="currency"))
    assert spec["title"]["text"] == "ARPU by funnel step"
    broken = tmp_path / "broken.yml"
    broken.write_text("metrics: [this is not a mapping\n")
    monkeypatch.setenv("AUTERITY_METRICS_FILES", str(broken))
    spec = compiled(charts.breakdown_bars(frame, "arpu", "event_type", unit="currency"))
    assert spec["title"]["text"] == "Arpu by event type"  # column names, prettified


def test_trend_by_dimension_has_brush_hover_and_a_tooltip_per_line(real: dict) -> None:
    frame = real["weekly_by_region"]
    spec = compiled(charts.trend(frame, "revenue", unit="currency", by="region"))
    assert spec["title"]["text"] == "Revenue"
    found = params(spec)
    assert found["brush"]["select"] == {"type": "interval", "encodings": ["x"]}
    assert found["hover"]["select"]["nearest"] is True
    assert found["hover"]["select"]["on"] == "pointerover"
    line = next(u for u in units(spec) if mark_type(u) == "line")
    assert line["encoding"]["x"] == {"field": "period", "type": "temporal", "title": None}
    assert line["encoding"]["y"]["axis"]["format"] == "$,.0f"
    assert line["encoding"]["y"]["title"] == "Revenue (USD)"
    assert line["encoding"]["color"]["field"] == "region"
    rule = next(u for u in units(spec) if mark_type(u) == "rule")
    assert tooltip_fields(rule)[1:] == sorted(frame["region"].unique())
    assert {t.get("format") for t in rule["encoding"]["tooltip"][1:]} == {"$,.2f"}
    drawn = dataset_of(spec, line)
    assert len(drawn) == len(frame)
    assert sum(r["revenue"] for r in drawn) == pytest.approx(frame["revenue"].sum())


def test_trend_without_interaction_or_dimension(real: dict) -> None:
    spec = compiled(charts.trend(real["daily"], "orders", unit="count", interactive=False))
    assert params(spec) == {}
    assert [mark_type(u) for u in units(spec)] == ["line", "point"]
    points = units(spec)[1]
    assert tooltip_fields(points) == ["period", "orders"]
    assert points["encoding"]["tooltip"][1]["format"] == ",.0f"
    with pytest.raises(ConfigError, match=r"no column.*'churn'"):
        charts.trend(real["daily"], "churn", unit="percent")


def test_trend_of_big_values_uses_compact_axis_and_escapes_field_names() -> None:
    frame = pd.DataFrame(
        {
            "period": pd.date_range("2026-08-01", periods=4, freq="D", tz="Europe/Berlin"),
            "model": ["claude-3.5", "gpt-4o", "claude-3.5", "gpt-4o"],
            "tokens": [2e6, 3e6, 4e6, 5e6],
        }
    )
    spec = compiled(charts.trend(frame, "tokens", unit="tokens", by="model"))
    line = next(u for u in units(spec) if mark_type(u) == "line")
    assert line["encoding"]["y"]["axis"]["format"] == ".3~s"
    rule = next(u for u in units(spec) if mark_type(u) == "rule")
    assert "claude-3\\.5" in tooltip_fields(rule)
    assert rows(spec)[0]["period"].startswith("2026-08-01T00:00:00")  # wall-clock, no zone


def test_kpi_sparkline_is_tiny_and_marks_the_last_point(real: dict) -> None:
    frame = real["daily"]
    spec = compiled(charts.kpi_sparkline(frame, "revenue", unit="currency"))
    assert (spec["width"], spec["height"]) == (120, 32)
    assert [mark_type(u) for u in units(spec)] == ["area", "line", "point", "point"]
    for unit in units(spec):
        assert unit["encoding"]["x"]["axis"] is None
    last = dataset_of(spec, units(spec)[2])
    assert len(last) == 1 and last[0]["period"].startswith("2026-10-31")


def test_cohort_heatmap_from_cohort_retention(real: dict) -> None:
    retention = real["retention"]
    spec = compiled(charts.cohort_heatmap(retention))
    cells = units(spec)[0]
    assert mark_type(cells) == "rect"
    assert cells["encoding"]["color"]["field"] == "share"
    assert cells["encoding"]["x"]["field"] == "month"
    data = dataset_of(spec, cells)
    reached = int(retention.drop(columns="size").notna().sum().sum())
    assert len(data) == reached  # months not reached yet are blank, not zero
    assert all(r["share"] is not None for r in data)
    order = cells["encoding"]["y"]["sort"]
    assert order[0].startswith("Jun 2026") and order[-1].startswith("Oct 2026")
    assert f"(n={int(retention['size'].iloc[0]):,})" in order[0]
    texts = [u for u in units(spec) if mark_type(u) == "text"]
    assert {u["mark"]["style"] for u in texts} == {"auterity-on-strong", "auterity-on-weak"}
    assert all(u["encoding"]["text"]["format"] == ".0%" for u in texts)
    for empty in (retention.iloc[0:0], pd.DataFrame(columns=["size", *range(13)])):
        assert units(compiled(charts.cohort_heatmap(empty)))  # no signups: an empty chart


def test_funnel_chart_keeps_step_order_and_labels_conversions(real: dict) -> None:
    funnel = real["funnel"]
    spec = compiled(charts.funnel_chart(funnel))
    bars = units(spec)[0]
    assert bars["encoding"]["y"]["sort"] == ["visit", "signup", "activation", "purchase"]
    assert bars["encoding"]["x"]["field"] == "count"
    assert "conversion_from_previous" in tooltip_fields(bars)
    labels = [r["label"] for r in dataset_of(spec, bars)]
    signup = funnel.set_index("step").loc["signup"]
    assert labels[0] == f"{int(funnel['count'].iloc[0]):,}"
    assert labels[1] == (
        f"{int(signup['count']):,} · "
        f"{charts.format_value(signup['conversion_from_previous'], 'percent')} of previous"
    )


def test_breakdown_bars_are_sorted_and_clickable(real: dict) -> None:
    frame = real["breakdown"]
    spec = compiled(charts.breakdown_bars(frame, "revenue", "region", unit="currency"))
    pick = params(spec)["pick"]
    assert pick["select"]["type"] == "point" and pick["select"]["fields"] == ["region"]
    bars = units(spec)[0]
    revenue = frame.set_index("region")["revenue"]
    order = bars["encoding"]["y"]["sort"]
    assert [revenue[r] for r in order] == sorted(revenue, reverse=True)
    assert tooltip_fields(bars) == ["region", "revenue", "share"]
    assert spec["title"]["text"] == "Revenue by region"
    top = compiled(charts.breakdown_bars(frame, "revenue", "region", unit="currency", top=2))
    assert len(units(top)[0]["encoding"]["y"]["sort"]) == 2


def test_movers_chart_colours_contributions_by_good_direction(real: dict) -> None:
    movers = real["movers"]
    chart = charts.movers_chart(movers, "country", unit="currency", good="up")
    spec = compiled(chart)
    bars = units(spec)[0]
    assert bars["encoding"]["color"]["scale"] == {
        "domain": ["bad", "neutral", "good"],
        "range": "diverging",
    }
    data = dataset_of(spec, bars)
    assert len(data) == min(15, len(movers))
    assert [r["contribution"] for r in data] == sorted(
        (r["contribution"] for r in data), reverse=True
    )
    for r in data:
        assert r["tone"] == ("good" if r["contribution"] > 0 else "bad")
        assert r["label"].startswith("+" if r["contribution"] > 0 else "−")
    down = compiled(charts.movers_chart(movers, "country", good="down"))
    flipped = dataset_of(down, units(down)[0])
    assert {r["tone"] for r in flipped if r["contribution"] > 0} == {"bad"}
    # The theme's tones reach the pixels: good and bad fills in the SVG, in both themes.
    for name in charts.THEMES:
        good, bad = (charts.theme_config(name)["range"]["diverging"][i] for i in (2, 0))
        svg = charts.to_svg(chart, theme=name).upper()
        assert f'FILL="{good}"' in svg and f'FILL="{bad}"' in svg


def test_leaderboard_chart_orders_best_first(models: dict) -> None:
    board = models["leaderboard"]
    spec = compiled(charts.leaderboard_chart(board))
    bars = units(spec)[0]
    data = dataset_of(spec, bars)
    latencies = [r["p95_latency_ms"] for r in data]
    assert latencies == sorted(latencies)  # lower latency is better
    assert bars["encoding"]["y"]["sort"] == [r["model"] for r in data]
    assert bars["encoding"]["x"]["title"] == "p95 latency (ms)"
    assert bars["encoding"]["color"]["field"] == "provider"
    assert all(r["label"].endswith(" ms") for r in data)
    quality = compiled(charts.leaderboard_chart(board, "quality_mean"))
    assert "errorbar" in [mark_type(u) for u in units(quality)]
    scores = [r["quality_mean"] for r in dataset_of(quality, units(quality)[0])]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(ConfigError, match="unknown leaderboard measure 'speed'"):
        charts.leaderboard_chart(board, "speed")


def test_latency_percentiles_chart_has_a_panel_per_model(models: dict) -> None:
    daily = models["daily"]
    spec = compiled(charts.latency_percentiles_chart(daily))
    assert spec["facet"]["field"] == "model"
    assert spec["resolve"]["scale"]["y"] == "independent"
    data = rows(spec)
    assert {r["percentile"] for r in data} == {"p50", "p95"}
    assert {r["model"] for r in data} == set(daily["model_id"])
    assert len(data) == 2 * len(daily)


def test_quality_cost_scatter_is_the_trade_off_chart(models: dict) -> None:
    board = models["leaderboard"]
    spec = compiled(charts.quality_cost_scatter(board))
    kinds = [mark_type(u) for u in units(spec)]
    assert kinds == ["errorbar", "point", "text"]
    errorbar, points, _ = units(spec)
    assert errorbar["encoding"]["y"]["field"] == "quality_ci_low"
    assert errorbar["encoding"]["y2"]["field"] == "quality_ci_high"
    assert points["encoding"]["x"]["field"] == "cost_per_1k_ok"
    assert points["encoding"]["y"]["field"] == "quality_mean"
    cost = board["cost_per_1k_ok"]
    if cost.max() > 50 * cost.min():  # the demo's self-hosted model costs far more per call
        assert points["encoding"]["x"]["scale"]["type"] == "log"
    close = board.assign(cost_per_1k_ok=np.linspace(1, 2, len(board)))
    close.loc[0, "quality_mean"] = np.nan
    linear = compiled(charts.quality_cost_scatter(close))
    assert "type" not in units(linear)[1]["encoding"]["x"]["scale"]
    assert len(rows(linear)) == len(board) - 1  # models without quality are left out


def test_anomaly_chart_shades_windows_and_marks_points() -> None:
    series, anomalies = synthetic_series()
    spec = compiled(
        charts.anomaly_chart(series, anomalies, value_col="latency", time_col="ts", unit="ms")
    )
    kinds = [mark_type(u) for u in units(spec)]
    assert kinds == ["rect", "rule", "line", "point", "point"]
    shaded = units(spec)[0]
    assert shaded["mark"]["style"] == "auterity-highlight"
    assert shaded["encoding"]["x2"]["field"] == "end"
    assert "score" in tooltip_fields(shaded)
    line = units(spec)[2]
    assert line["encoding"]["y"]["title"] == "Latency (ms)"
    flagged = [r for r in dataset_of(spec, line) if r["anomalous"]]
    assert len(flagged) == 11 + 1  # hours 100..110 and hour 200
    with pytest.raises(ConfigError, match=r"anomalies.*'end'"):
        charts.anomaly_chart(
            series, anomalies[["start"]], value_col="latency", time_col="ts", unit="ms"
        )


def test_forecast_chart_draws_band_forecast_actuals_and_cutoff() -> None:
    history, forecast = synthetic_forecast()
    spec = compiled(charts.forecast_chart(history, forecast, unit="currency", label="Revenue"))
    layers = units(spec)
    assert [mark_type(u) for u in layers] == ["area", "rule", "line", "line", "point", "point"]
    band, cutoff = layers[0], layers[1]
    assert band["mark"]["style"] == "auterity-band"
    assert (band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == (
        "yhat_lower",
        "yhat_upper",
    )
    assert dataset_of(spec, cutoff)[0]["ds"].startswith("2026-09-29")
    assert layers[2]["mark"]["strokeDash"] == [6, 4]
    assert layers[3]["encoding"]["color"]["scale"]["domain"] == ["Actual", "Forecast"]
    assert spec["title"]["text"] == "Revenue forecast"


# --------------------------------------------------------------------------- rendering


def test_to_png_is_a_png_whose_size_is_the_chart_size_times_scale(real: dict) -> None:
    chart = charts.trend(real["daily"], "revenue", unit="currency")
    width, height = svg_size(charts.to_svg(chart))
    for scale in (1.0, 2.0):
        png = charts.to_png(chart, scale=scale)
        assert png.startswith(PNG_SIGNATURE)
        assert png_size(png) == (round(width * scale), round(height * scale))


def test_to_svg_keeps_text_and_the_theme_background(real: dict) -> None:
    chart = charts.funnel_chart(real["funnel"])
    light, dark = charts.to_svg(chart), charts.to_svg(chart, theme="dark")
    assert light.lstrip().startswith("<svg") and "<svg" in dark
    assert 'fill="#FFFFFF"' in light.upper().replace("FILL", "fill")
    assert 'fill="#111111"' in dark
    assert "Funnel" in svg_texts(light)


def test_offline_head_inlines_the_libraries_without_network() -> None:
    head = charts.offline_html_head()
    assert head is charts.offline_html_head()  # built once per process
    assert head.startswith("<script") and head.rstrip().endswith("</script>")
    assert head.count("</script>") == 1  # nothing inside ends the element early
    assert "window.vegaEmbed=" in head
    assert f"vega {vlc.get_vega_version()}" in head
    assert len(head) > 500_000
    lowered = head.lower()
    assert not re.search(r"<script[^>]*\bsrc\s*=", lowered)
    assert not any(host in lowered for host in CDN_HOSTS)
    assert not re.search(r"""(import\(|fetch\()\s*["'`]https?://""", head)


def test_chart_html_embeds_the_spec_and_fetches_nothing(real: dict) -> None:
    frame = real["breakdown"]
    chart = charts.breakdown_bars(frame, "revenue", "region", unit="currency")
    page = charts.chart_html(chart, div_id="revenue-by-region")
    assert page.startswith('<div id="revenue-by-region" class="auterity-chart"></div>')
    spec_json = re.search(r"var spec = (.*);\n", page).group(1)
    spec = json.loads(spec_json)
    assert spec == charts.to_dict(chart)
    assert repr(float(frame["revenue"].iloc[0])) in spec_json  # e.g. 130935.47
    lowered = page.lower()
    assert not re.search(r"\b(src|href)\s*=", lowered)
    assert not any(host in lowered for host in CDN_HOSTS)
    urls = set(re.findall(r"https?://[^\"'\s]+", page))
    assert urls <= {spec["$schema"]}  # an identifier vega-embed reads, never fetches
    assert '"editor":false' in page
    with pytest.raises(ConfigError, match="div_id"):
        charts.chart_html(chart, div_id="not an id")


def test_chart_html_cannot_be_broken_out_of_by_data() -> None:
    evil = "</script><script>alert(1)</script><!--"
    frame = pd.DataFrame({"feature": [evil, "ok"], "cost": [2.0, 1.0]})
    page = charts.chart_html(charts.breakdown_bars(frame, "cost", "feature", unit="currency"))
    assert page.count("</script>") == 1 and "<!--" not in page
    spec = json.loads(re.search(r"var spec = (.*);\n", page).group(1))
    assert evil in {r["feature"] for r in rows(spec)}


def test_standalone_html_is_a_complete_offline_page(real: dict) -> None:
    chosen = [
        charts.funnel_chart(real["funnel"]),
        charts.cohort_heatmap(real["retention"]),
    ]
    page = charts.standalone_html(chosen, "Q4 <draft>", theme="dark")
    outside = page.replace(charts.offline_html_head(), "")  # the page minus the library
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Q4 &lt;draft&gt;</title>" in page
    assert page.count('data-auterity="vega-bundle"') == 1
    assert page.count('class="auterity-chart"') == 2
    assert "background: #111111" in page
    assert '"tooltip":{"theme":"dark"}' in page
    assert not re.search(r"<(script|link|img)[^>]*\b(src|href)\s*=", outside.lower())
    single = charts.standalone_html(chosen[0])
    assert single.count('class="auterity-chart"') == 1


NODE_HARNESS = r"""
const vm = require("vm");
const [head, chart, id] = JSON.parse(require("fs").readFileSync(0, "utf8"));
const script = (html) => html.replace(/^[\s\S]*?<script[^>]*>/, "").replace(/<\/script>\s*$/, "");
const result = {};
// 1. The head alone, in a page without fetch or XMLHttpRequest: it defines vegaEmbed and
// leaks nothing else. (Browser APIs the bundle uses at load time are lent from node.)
const timers = { setTimeout, clearTimeout, setInterval, clearInterval, queueMicrotask,
  structuredClone, URL, URLSearchParams, TextEncoder, TextDecoder, performance, atob, btoa,
  console };
const page = { ...timers };
page.window = page;
vm.createContext(page);
vm.runInContext(script(head), page);
result.vegaEmbed = typeof page.vegaEmbed;
const expected = [...Object.keys(timers), "window", "vegaEmbed", "vega", "vegaLite"];
result.leaked = Object.keys(page).filter((k) => !expected.includes(k));
// 2. A chart whose script runs before the library arrives: it waits, then embeds.
const el = { textContent: "" };
const calls = [];
const late = { setTimeout, document: { getElementById: (x) => (x === id ? el : null) } };
late.window = late;
vm.createContext(late);
vm.runInContext(script(chart), late);
setTimeout(() => {
  late.vegaEmbed = (target, spec, options) => {
    calls.push({ same: target === el, spec, options });
    return Promise.resolve({});
  };
}, 120);
setTimeout(() => { result.calls = calls; console.log(JSON.stringify(result)); }, 400);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page scripts")
def test_offline_scripts_run_without_network_in_node(real: dict, tmp_path: Any) -> None:
    chart = charts.trend(real["weekly_by_region"], "revenue", unit="currency", by="region")
    html_chart = charts.chart_html(chart, div_id="trend")
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS)
    out = subprocess.run(
        ["node", str(harness)],
        input=json.dumps([charts.offline_html_head(), html_chart, "trend"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["vegaEmbed"] == "function"
    assert result["leaked"] == []  # the bundle's top-level names stay in its function
    [call] = result["calls"]
    assert call["same"] is True
    assert call["spec"] == charts.to_dict(chart)
    assert call["options"]["actions"]["editor"] is False
    assert call["options"]["renderer"] == "svg"


def test_notebook_renderer_sends_the_bundle_once_per_session(real: dict) -> None:
    chart = charts.funnel_chart(real["funnel"])
    charts.enable_offline_notebook_rendering()
    assert alt.renderers.active == charts.RENDERER
    assert alt.theme.active == "auterity-light"
    first, second = chart._repr_mimebundle_(), chart._repr_mimebundle_()
    head = charts.offline_html_head()
    assert first["text/html"].startswith(head)
    assert head not in second["text/html"]
    assert "window.vegaEmbed(el, spec, options)" in second["text/html"]
    assert len(second["text/html"]) < 20_000
    assert "image/png" not in second and "text/plain" in second
    charts.enable_offline_notebook_rendering("dark", png_fallback=True)
    again = chart._repr_mimebundle_()
    assert again["text/html"].startswith(head)  # enabling again re-sends the libraries
    assert '"background":"#111111"' in again["text/html"]
    assert again["image/png"].startswith(PNG_SIGNATURE)


def test_nbconvert_html_report_draws_charts_offline(real: dict) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    charts.enable_offline_notebook_rendering()
    outputs = [
        chart._repr_mimebundle_()
        for chart in (
            charts.funnel_chart(real["funnel"]),
            charts.breakdown_bars(real["breakdown"], "revenue", "region", unit="currency"),
        )
    ]
    notebook = nbformat.v4.new_notebook()
    for bundle in outputs:
        cell = nbformat.v4.new_code_cell("chart")
        cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
        notebook.cells.append(cell)
    body, _ = nbconvert.HTMLExporter().from_notebook_node(notebook)
    assert body.count('data-auterity="vega-bundle"') == 1
    assert body.count('class="auterity-chart"') == 2
    assert body.index('data-auterity="vega-bundle"') < body.index('class="auterity-chart"')
    lowered = body.lower()
    assert not re.search(r"<script[^>]*src\s*=\s*[\"'][^\"']*vega", lowered)
    assert "cdn.jsdelivr.net/npm/vega" not in lowered


def test_vega_bundle_is_cached_on_disk(tmp_path, monkeypatch) -> None:
    """Report kernels reuse the bundle built once instead of rebuilding it every run."""
    import vl_convert

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    charts.offline_html_head.cache_clear()
    first = charts.offline_html_head()
    cached = list((tmp_path / "auterity").glob("vega-bundle-*.js"))
    assert len(cached) == 1 and cached[0].stat().st_size > 500_000

    def refuse(**_: object) -> str:
        raise AssertionError("the bundle should come from the disk cache")

    monkeypatch.setattr(vl_convert, "javascript_bundle", refuse)
    charts.offline_html_head.cache_clear()
    assert charts.offline_html_head() == first
    charts.offline_html_head.cache_clear()


def test_from_spec_rebuilds_unit_and_layered_charts(real: dict) -> None:
    layered = charts.cohort_heatmap(real["retention"], title="Cohorts")
    unit = charts.trend(real["daily"], "revenue", unit="currency", title="Revenue")
    for chart in (layered, unit):
        spec = charts.to_dict(chart, theme="light")
        again = charts.from_spec(spec)
        assert type(again) is type(chart)
        assert charts.to_dict(again, theme="light") == spec
        assert 'class="marks"' in charts.to_svg(again)
    bar = alt.Chart(pd.DataFrame({"a": [1, 2]})).mark_bar().encode(x="a:Q")
    concat = charts.from_spec(charts.to_dict(alt.vconcat(bar, bar)))
    assert isinstance(concat, alt.VConcatChart)
    with pytest.raises(ConfigError, match="not a Vega-Lite chart"):
        charts.from_spec({"mark": "no-such-mark", "data": {"values": []}})
