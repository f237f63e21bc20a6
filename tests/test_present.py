"""Presentation helpers: periods, KPI tiles, tables and the ModelHub narrative."""

from __future__ import annotations

import html
import re
from datetime import date

import pandas as pd
import pytest

from auterity import business, charts, modelhub, present
from auterity.errors import ConfigError

END = "2026-11-01"  # a Sunday-after: the data's last day is Saturday 31 October 2026


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("last_7_days", (date(2026, 10, 25), date(2026, 11, 1))),
        ("last_28_days", (date(2026, 10, 4), date(2026, 11, 1))),
        ("last_90_days", (date(2026, 8, 3), date(2026, 11, 1))),
        ("last_week", (date(2026, 10, 19), date(2026, 10, 26))),
        ("last_month", (date(2026, 10, 1), date(2026, 11, 1))),
        ("month_to_date", (date(2026, 10, 1), date(2026, 11, 1))),
    ],
)
def test_resolve_period(period: str, expected: tuple[date, date]) -> None:
    assert present.resolve_period(period, end=END) == expected


def test_resolve_period_custom_and_errors() -> None:
    assert present.resolve_period("custom", "2026-09-01", "2026-09-15") == (
        date(2026, 9, 1),
        date(2026, 9, 15),
    )
    assert present.resolve_period("month_to_date", end="2026-10-15") == (
        date(2026, 10, 1),
        date(2026, 10, 15),
    )
    with pytest.raises(ConfigError, match="not one of"):
        present.resolve_period("fortnight", end=END)
    with pytest.raises(ConfigError, match="needs start"):
        present.resolve_period("custom", end=END)
    with pytest.raises(ConfigError, match="is not a date"):
        present.resolve_period("custom", "yesterday", END)
    with pytest.raises(ConfigError, match="must be after start"):
        present.resolve_period("custom", "2026-11-05", END)


def test_period_defaults_to_the_newest_data(analytics_duckdb: str) -> None:
    # The analytics world ends on 31 October 2026 (UTC); in Tokyo that is already 1 November.
    assert present.data_end(analytics_duckdb, "UTC") == date(2026, 11, 1)
    assert present.resolve_period("last_7_days", url=analytics_duckdb, tz="UTC") == (
        date(2026, 10, 25),
        date(2026, 11, 1),
    )
    assert present.data_end(analytics_duckdb, "Asia/Tokyo") == date(2026, 11, 2)
    assert present.describe_period(date(2026, 10, 1), date(2026, 11, 1)) == (
        "1 Oct 2026 – 31 Oct 2026 (31 days)"
    )


def test_kpi_tiles_show_library_values(analytics_duckdb: str) -> None:
    from auterity import charts

    kpis = business.kpi_summary(date(2026, 10, 1), date(2026, 11, 1), url=analytics_duckdb)
    tiles = present.kpi_tiles_html(kpis)
    for _, row in kpis.iterrows():
        assert f'data-metric="{row["metric"]}"' in tiles
        assert charts.format_value(row["current"], row["unit"]).replace("'", "&#x27;") in tiles
    assert "<script" not in tiles and "vs previous period" in tiles
    assert "vs last year" in present.kpi_tiles_html(kpis, compare="last_year")


def test_sparkline_svg_draws_the_series() -> None:
    svg = present.sparkline_svg([1.0, 3.0, 2.0], width=104, height=24)
    assert svg.startswith('<svg class="au-spark" width="104" height="24"')
    # x from 2 to 102 in equal steps; y: the highest value at the top (2), the lowest at 22
    assert 'points="2.0,22.0 52.0,2.0 102.0,12.0"' in svg
    gap = present.sparkline_svg([1.0, 2.0, float("nan"), 2.0, 1.0, float("nan"), 5.0])
    assert gap.count("<polyline") == 2  # the lone last point draws no line
    flat = present.sparkline_svg([4.0, 4.0])
    assert "<polyline" in flat  # a flat series is a line, not a division by zero
    assert present.sparkline_svg([1.0]) == ""
    assert present.sparkline_svg([1.0, float("nan")]) == ""


def test_kpi_tiles_with_sparklines(analytics_duckdb: str) -> None:
    start, end = date(2026, 10, 1), date(2026, 11, 1)
    kpis = business.kpi_summary(start, end, url=analytics_duckdb)
    daily = business.kpi_daily(start, end, url=analytics_duckdb)
    tiles = present.kpi_tiles_html(kpis, sparklines=daily)
    assert tiles.count('class="au-spark"') == len(business.SPARKLINE_METRICS)
    assert present.kpi_tiles_html(kpis).count("<svg") == 0  # email keeps plain tiles
    channel = business.kpi_daily(start, end, where={"channel": "web"}, url=analytics_duckdb)
    by_channel = business.kpi_summary(start, end, where={"channel": "web"}, url=analytics_duckdb)
    tiles = present.kpi_tiles_html(by_channel, sparklines=channel)
    assert tiles.count('class="au-spark"') == 3  # revenue, orders, average order value


def test_insight_table_keeps_the_ranking() -> None:
    from types import SimpleNamespace

    cards = [
        SimpleNamespace(kind="correlation", title="A <b>", sentence="s", importance=0.914),
        SimpleNamespace(kind="savings", title="B", sentence="s", importance=0.5),
        SimpleNamespace(kind="new_kind", title="C", sentence="s", importance=0.1),
    ]
    table = present.insight_table(cards)
    assert table.to_dict("records") == [
        {"rank": 1, "kind": "Goes together", "finding": "A <b>", "importance": 0.91},
        {"rank": 2, "kind": "Savings", "finding": "B", "importance": 0.5},
        {"rank": 3, "kind": "new_kind", "finding": "C", "importance": 0.1},
    ]
    assert "A &lt;b&gt;" in present.table_html(table, {"importance": "number"})
    empty = present.insight_table([])
    assert empty.empty and list(empty.columns) == ["rank", "kind", "finding", "importance"]


def test_table_html_formats_and_escapes() -> None:
    frame = pd.DataFrame({"name": ["<b>x</b>"], "cost": [1234.5], "rate": [0.25]})
    out = present.table_html(
        frame, {"cost": "currency", "rate": "percent"}, labels={"cost": "Cost"}
    )
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "<th" in out and "Cost" in out
    assert ("25" in out and "1,234" in out) or "1.23K" in out


def _rendered(markdown: str) -> tuple[str, str]:
    """Markdown rendered as a report renders it: (HTML, the text a reader sees)."""
    from nbconvert.filters.markdown import markdown2html

    markup = markdown2html(markdown)
    return markup, html.unescape(re.sub(r"<[^>]+>", "", markup))


def test_modelhub_narrative_uses_the_frames(analytics_duckdb: str) -> None:
    # The narrative is checked as a reader sees it (rendered), not by its Markdown source,
    # whose values are written as character references (auterity.escape.md_text).
    start, end = date(2026, 10, 1), date(2026, 11, 1)
    board = modelhub.leaderboard(start, end, url=analytics_duckdb)
    slo = modelhub.slo_report(start, end, url=analytics_duckdb)
    markup, text = _rendered(present.modelhub_narrative(board, slo, pd.DataFrame()))
    assert f"<strong>{len(board)} models</strong>" in markup and "$" in text
    assert "\\$" not in text  # the dollar is text, not an escaped math delimiter
    fastest = board.loc[board["p95_latency_ms"].idxmin(), "model_id"]
    assert f"<code>{fastest}</code> answers 95 %" in markup
    assert f"{fastest} answers 95 %" in text
    assert "SLO" in text or "met its SLOs" in text
    assert present.modelhub_narrative(board.iloc[0:0]) == "No model traffic in this period."
    saving = pd.DataFrame(
        [
            {
                "feature": "summarization",
                "current_model": "gpt-4o",
                "candidate_model": "claude-3-5-haiku",
                "candidate_quality": 0.874,
                "current_quality": 0.878,
                "est_monthly_savings": 70.3,
            }
        ]
    )
    markup, text = _rendered(present.modelhub_narrative(board, savings=saving))
    assert "Biggest saving: move <strong>summarization</strong>" in markup
    assert "from gpt-4o to claude-3-5-haiku (quality 0.874 vs 0.878), about $70.30 a month" in text


def test_top_movers_default_previous_period(analytics_duckdb: str) -> None:
    current = (date(2026, 10, 1), date(2026, 10, 15))
    implicit = business.top_movers("orders", "channel", current, url=analytics_duckdb)
    explicit = business.top_movers(
        "orders", "channel", current, (date(2026, 9, 17), date(2026, 10, 1)), url=analytics_duckdb
    )
    pd.testing.assert_frame_equal(implicit, explicit)


def test_skipped_table_names_kinds_in_words() -> None:
    table = present.skipped_table({"forecast_risk": "needs 112 days", "new_kind": "<why>"})
    assert table.to_dict("records") == [
        {"kind": "Forecast risk", "why": "needs 112 days"},
        {"kind": "new_kind", "why": "<why>"},
    ]
    assert "&lt;why&gt;" in present.table_html(table)
    assert list(present.skipped_table({}).columns) == ["kind", "why"]


def test_period_line_and_insight_cards_show_values_as_text() -> None:
    from types import SimpleNamespace

    start, end = date(2026, 10, 1), date(2026, 11, 1)
    line = present.period_markdown(
        start,
        end,
        {
            "filters": {"region": "<img src=x onerror=alert(3)>", "segment": "*smb*"},
            "looking for": ["drift", "`x`"],
            "method": "$a$",
            "empty": "",
            "none": None,
            "no filters": {},
        },
    )
    markup, text = _rendered(line)
    assert text.strip() == (
        "Period: 1 Oct 2026 – 31 Oct 2026 (31 days) · filters: region <img src=x "
        "onerror=alert(3)>, segment *smb* · looking for: drift, `x` · method: $a$"
    )
    assert set(re.findall(r"<(\w+)", markup)) == {"p", "strong"}
    card = SimpleNamespace(title="Save on <script>alert(1)</script>", sentence="Move `x` [a](b)")
    markup, text = _rendered(present.insight_markdown(2, card))
    assert markup.startswith("<h3") and set(re.findall(r"<(\w+)", markup)) == {"h3", "a", "p"}
    assert "2. Save on <script>alert(1)</script>" in text and "Move `x` [a](b)" in text


def test_table_html_formats_by_the_column_table_unless_given_units() -> None:
    frame = pd.DataFrame(
        {"model_id": ["m"], "cost": [1234.5], "error_rate": [0.05], "quality_mean": [0.8766]}
    )
    out = present.table_html(frame)
    assert "$1,234" in out and "5.0 %" in out and "0.877" in out  # units from charts.columns
    assert ">Model<" in out and ">Quality (mean score)<" in out  # labels from the table too
    assert ">model_id<" in present.table_html(frame, labels={})  # {} keeps the names
    only = present.table_html(frame, {"error_rate": "percent"})
    assert "1234.5" in only and "0.8766" in only and "5.0 %" in only
    headed = present.table_html(frame, labels=charts.columns.labels(frame))
    assert ">Model<" in headed and ">Quality (mean score)<" in headed
