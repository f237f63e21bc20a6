"""Business analytics against independent pandas computations, on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from auterity import business
from auterity.errors import ConfigError
from conftest import read_table

TZ = "America/New_York"
START, END = date(2026, 9, 1), date(2026, 10, 1)
PREVIOUS = (date(2026, 8, 2), START)


def _local(ts: pd.Series) -> pd.Series:
    return pd.to_datetime(ts).dt.tz_localize("UTC").dt.tz_convert(TZ).dt.tz_localize(None)


def _between(frame: pd.DataFrame, col: str, start: date, end: date) -> pd.DataFrame:
    local = _local(frame[col])
    return frame[(local >= pd.Timestamp(start)) & (local < pd.Timestamp(end))]


@pytest.fixture
def tables(analytics_url: str) -> dict[str, pd.DataFrame]:
    out = {
        t: read_table(analytics_url, t)
        for t in ("orders", "customers", "product_events", "inference_events")
    }
    out["orders"]["amount"] = out["orders"]["amount"].astype(float)
    return out


def test_kpi_summary_matches_pandas(analytics_url: str, tables: dict[str, pd.DataFrame]) -> None:
    kpis = business.kpi_summary(START, END, tz=TZ, url=analytics_url).set_index("metric")
    assert list(kpis.index) == [
        "revenue",
        "orders",
        "average_order_value",
        "dau",
        "wau",
        "mau",
        "new_customers",
        "conversion_rate",
        "arpu",
        "churn_rate",
    ]
    done = tables["orders"][tables["orders"]["status"] == "completed"]
    now, before = _between(done, "ts", START, END), _between(done, "ts", *PREVIOUS)
    assert kpis.loc["revenue", "current"] == pytest.approx(now["amount"].sum())
    assert kpis.loc["revenue", "previous"] == pytest.approx(before["amount"].sum())
    assert kpis.loc["orders", "previous_delta"] == len(now) - len(before)

    events = tables["inference_events"].assign(local=_local(tables["inference_events"]["ts"]))
    in_period = events[
        (events["local"] >= pd.Timestamp(START)) & (events["local"] < pd.Timestamp(END))
    ]
    daily = in_period.groupby(in_period["local"].dt.normalize())["customer_id"].nunique()
    daily = daily.reindex(pd.date_range(START, END, inclusive="left"), fill_value=0)
    assert kpis.loc["dau", "current"] == pytest.approx(daily.mean())
    earlier = _between(events, "ts", *PREVIOUS)
    daily_before = earlier.groupby(earlier["local"].dt.normalize())["customer_id"].nunique()
    daily_before = daily_before.reindex(pd.date_range(*PREVIOUS, inclusive="left"), fill_value=0)
    assert kpis.loc["dau", "previous"] == pytest.approx(daily_before.mean())
    for name, days in (("wau", 7), ("mau", 30)):
        recent = in_period[in_period["local"] >= pd.Timestamp(END) - pd.Timedelta(days=days)]
        assert kpis.loc[name, "current"] == recent["customer_id"].nunique()
    assert kpis.loc["arpu", "current"] == pytest.approx(
        now["amount"].sum() / in_period["customer_id"].nunique()
    )

    before_ids, now_ids = set(before["customer_id"]), set(now["customer_id"])
    assert kpis.loc["churn_rate", "current"] == pytest.approx(
        len(before_ids - now_ids) / len(before_ids)
    )
    length = START - PREVIOUS[0]
    oldest_ids = set(_between(done, "ts", PREVIOUS[0] - length, PREVIOUS[0])["customer_id"])
    assert kpis.loc["churn_rate", "previous"] == pytest.approx(
        len(oldest_ids - before_ids) / len(oldest_ids)
    )
    revenue = kpis.loc["revenue"]
    assert revenue["good_news"] == (revenue["previous_delta"] > 0)
    assert kpis.loc["churn_rate", "good"] == "down"


def test_kpi_summary_of_a_period_longer_than_half_a_year(
    analytics_url: str, tables: dict[str, pd.DataFrame]
) -> None:
    """Its previous period overlaps last year's: DAU reads their union, once."""
    start = date(2026, 3, 1)  # 214 days to END; the data begins in June 2026
    kpis = business.kpi_summary(start, END, tz=TZ, url=analytics_url).set_index("metric")
    events = _between(tables["inference_events"], "ts", start, END)
    daily = events.groupby(_local(events["ts"]).dt.normalize())["customer_id"].nunique()
    assert kpis.loc["dau", "current"] == pytest.approx(daily.sum() / (END - start).days)
    assert kpis.loc["dau", "previous"] == 0 and kpis.loc["dau", "last_year"] == 0
    done = tables["orders"][tables["orders"]["status"] == "completed"]
    assert kpis.loc["revenue", "current"] == pytest.approx(
        _between(done, "ts", start, END)["amount"].sum()
    )


def test_kpi_summary_filtered_by_region(analytics_duckdb: str) -> None:
    all_regions = business.kpi_summary(START, END, tz=TZ, url=analytics_duckdb)
    emea = business.kpi_summary(START, END, tz=TZ, where={"region": "EMEA"}, url=analytics_duckdb)
    revenue = lambda f: f.set_index("metric").loc["revenue", "current"]  # noqa: E731
    assert 0 < revenue(emea) < revenue(all_regions)
    filtered = emea.set_index("metric")
    assert np.isnan(filtered.loc["churn_rate", "current"])  # no breakdown for churn
    assert np.isnan(filtered.loc["conversion_rate", "current"])  # visits are anonymous
    assert filtered.loc["new_customers", "current"] > 0


def test_kpi_summary_filtered_by_sales_channel(
    analytics_duckdb: str, tables: dict[str, pd.DataFrame]
) -> None:
    """Order KPIs follow a channel; KPIs with no channel (product use, visits) show none."""
    channel = sorted(tables["orders"]["channel"].dropna().unique())[0]
    kpis = business.kpi_summary(
        START, END, tz=TZ, where={"channel": channel}, url=analytics_duckdb
    ).set_index("metric")
    done = tables["orders"][
        (tables["orders"]["status"] == "completed") & (tables["orders"]["channel"] == channel)
    ]
    now = _between(done, "ts", START, END)
    assert kpis.loc["revenue", "current"] == pytest.approx(now["amount"].sum())
    assert kpis.loc["orders", "current"] == len(now)
    assert kpis.loc["average_order_value", "current"] == pytest.approx(now["amount"].mean())
    for metric in ("dau", "wau", "mau", "new_customers", "conversion_rate", "arpu", "churn_rate"):
        assert np.isnan(kpis.loc[metric, "current"]), metric
        assert np.isnan(kpis.loc[metric, "previous_delta_pct"]), metric


def _active_ids(events: pd.DataFrame, lo: date, hi: date) -> set:
    """Customers with a model request in the local days ``[lo, hi)``."""
    return set(_between(events, "ts", lo, hi)["customer_id"].dropna())


def _churn_by_hand(done: pd.DataFrame, as_of: date) -> float:
    """Of the customers with a completed order in the 30 days before the last 30 days up to
    ``as_of``, the share without one in those last 30 days."""
    month = pd.Timedelta(days=30)
    before = set(_between(done, "ts", as_of - 2 * month, as_of - month)["customer_id"])
    after = set(_between(done, "ts", as_of - month, as_of)["customer_id"])
    return len(before - after) / len(before) if before else float("nan")


@pytest.mark.parametrize("days", [7, 28, 90])
def test_wau_mau_and_churn_keep_their_definition_whatever_the_period(
    days: int, analytics_url: str, tables: dict[str, pd.DataFrame]
) -> None:
    """WAU/MAU: the 7/30 days ending at the period end (data before the period counts);
    churn: 30-day windows as of the period end; deltas: the same KPIs as of the previous
    period's end and last year's end. By hand, with pandas over the raw rows."""
    end = date(2026, 10, 15)
    start = end - pd.Timedelta(days=days).to_pytimedelta()
    kpis = business.kpi_summary(start, end, tz=TZ, url=analytics_url).set_index("metric")
    assert kpis.loc["wau", "label"] == "WAU (last 7 days)"
    assert kpis.loc["mau", "label"] == "MAU (last 30 days)"
    assert kpis.loc["churn_rate", "label"] == "Churn (30-day)"
    events = tables["inference_events"]
    done = tables["orders"][tables["orders"]["status"] == "completed"]
    anchors = {"current": end, "previous": start, "last_year": date(2025, 10, 15)}
    for which, as_of in anchors.items():
        for kpi, window in (("wau", 7), ("mau", 30)):
            lo = as_of - pd.Timedelta(days=window).to_pytimedelta()
            assert kpis.loc[kpi, which] == len(_active_ids(events, lo, as_of)), (kpi, which)
        churn = _churn_by_hand(done, as_of)
        got = kpis.loc["churn_rate", which]
        assert (np.isnan(got) and np.isnan(churn)) or got == pytest.approx(churn), which
    assert kpis.loc["mau", "current"] > 0 and kpis.loc["churn_rate", "current"] > 0
    for kpi in ("wau", "mau", "churn_rate"):
        row = kpis.loc[kpi]
        assert row["previous_delta"] == pytest.approx(row["current"] - row["previous"])


def test_the_7_and_28_day_reports_show_the_same_point_in_time_kpis(
    analytics_duckdb: str,
) -> None:
    """The weekly email and the 28-day dashboard ending the same day agree on WAU, MAU and
    churn (they used to show MAU = WAU and a weekly 'churn' in the email)."""
    end = date(2026, 10, 15)
    weekly, monthly = (
        business.kpi_summary(
            end - pd.Timedelta(days=d).to_pytimedelta(), end, tz=TZ, url=analytics_duckdb
        ).set_index("metric")
        for d in (7, 28)
    )
    for kpi in ("wau", "mau", "churn_rate"):
        assert weekly.loc[kpi, "current"] == monthly.loc[kpi, "current"], kpi
        assert weekly.loc[kpi, "label"] == monthly.loc[kpi, "label"]
    assert weekly.loc["mau", "current"] > weekly.loc["wau", "current"]
    same = business.churn_as_of(end, tz=TZ, url=analytics_duckdb)
    assert same["churn_rate"] == pytest.approx(weekly.loc["churn_rate", "current"])
    with pytest.raises(ConfigError, match="days must be a positive integer"):
        business.churn_as_of(end, days=0, url=analytics_duckdb)


def test_kpi_daily_matches_pandas(analytics_url: str, tables: dict[str, pd.DataFrame]) -> None:
    daily = business.kpi_daily(START, END, tz=TZ, url=analytics_url)
    assert list(daily.columns) == list(business.SPARKLINE_METRICS)
    assert len(daily) == (END - START).days  # every day, also days without orders
    done = tables["orders"][tables["orders"]["status"] == "completed"]
    now = _between(done, "ts", START, END)
    revenue = now.groupby(_local(now["ts"]).dt.normalize())["amount"].sum()
    assert daily["revenue"].reindex(revenue.index).to_numpy() == pytest.approx(revenue.to_numpy())
    assert daily["revenue"].sum() == pytest.approx(now["amount"].sum())
    events = _between(tables["inference_events"], "ts", START, END)
    dau = events.groupby(_local(events["ts"]).dt.normalize())["customer_id"].nunique()
    assert daily["dau"].reindex(dau.index).to_numpy() == pytest.approx(dau.to_numpy())
    # the KPI summary's DAU is the mean of these days
    kpis = business.kpi_summary(START, END, tz=TZ, url=analytics_url).set_index("metric")
    assert kpis.loc["dau", "current"] == pytest.approx(daily["dau"].mean())
    # filtered by channel: only the order KPIs have a daily series
    channel = sorted(tables["orders"]["channel"].dropna().unique())[0]
    by_channel = business.kpi_daily(
        START, END, tz=TZ, where={"channel": channel}, url=analytics_url
    )
    assert list(by_channel.columns) == ["revenue", "orders", "average_order_value"]
    assert by_channel["orders"].sum() == (now["channel"] == channel).sum()
    nothing = business.kpi_daily(START, END, where={"event_type": "visit"}, url=analytics_url)
    assert nothing.empty and list(nothing.columns) == []


def test_cohort_retention_matches_hand_written_pandas(
    analytics_url: str, tables: dict[str, pd.DataFrame]
) -> None:
    start, end = date(2026, 6, 1), date(2026, 11, 1)
    got = business.cohort_retention(start, end, max_age=4, tz=TZ, url=analytics_url)
    customers = tables["customers"].assign(
        cohort=_local(tables["customers"]["signup_ts"]).dt.to_period("M")
    )
    customers = customers[(customers["cohort"] >= pd.Period("2026-06", "M"))]
    orders = tables["orders"][tables["orders"]["status"] == "completed"]
    orders = orders.assign(month=_local(orders["ts"]).dt.to_period("M")).merge(
        customers[["customer_id", "cohort"]], on="customer_id"
    )
    orders["age"] = (orders["month"] - orders["cohort"]).apply(lambda d: d.n)
    active = orders.groupby(["cohort", "age"])["customer_id"].nunique().unstack()
    size = customers.groupby("cohort").size()
    expected = active.div(size, axis=0)
    assert list(got["size"]) == list(size)
    for i, cohort in enumerate(size.index):
        for age in range(5):
            value = got.iloc[i][age]
            if cohort + age > pd.Period("2026-10", "M"):
                assert np.isnan(value)  # not reached yet
            else:
                want = expected.loc[cohort].get(age, np.nan)
                assert value == pytest.approx(0.0 if np.isnan(want) else want)


def test_funnel_matches_pandas(analytics_url: str, tables: dict[str, pd.DataFrame]) -> None:
    got = business.funnel(START, END, tz=TZ, url=analytics_url).set_index("step")
    counts = _between(tables["product_events"], "ts", START, END)["event_type"].value_counts()
    assert list(got.index) == ["visit", "signup", "activation", "purchase"]
    for step in got.index:
        assert got.loc[step, "count"] == counts[step]
    assert got.loc["signup", "conversion_from_previous"] == pytest.approx(
        counts["signup"] / counts["visit"]
    )
    assert got.loc["purchase", "conversion_from_start"] == pytest.approx(
        counts["purchase"] / counts["visit"]
    )
    assert got.loc["activation", "drop_off"] == pytest.approx(
        1 - counts["activation"] / counts["signup"]
    )


def test_breakdown_shares(analytics_url: str) -> None:
    got = business.breakdown("orders", "channel", START, END, tz=TZ, url=analytics_url)
    assert got["share"].sum() == pytest.approx(1.0)
    assert list(got["orders"]) == sorted(got["orders"], reverse=True)
    ratio = business.breakdown(
        "average_order_value", "channel", START, END, tz=TZ, url=analytics_url
    )
    assert ratio["share"].isna().all()  # shares of a ratio mean nothing


def test_top_movers_additive(analytics_url: str, tables: dict[str, pd.DataFrame]) -> None:
    got = business.top_movers(
        "revenue", "segment", (START, END), PREVIOUS, tz=TZ, url=analytics_url
    ).set_index("segment")
    orders = tables["orders"].merge(
        tables["customers"][["customer_id", "segment"]], on="customer_id"
    )
    done = orders[orders["status"] == "completed"]
    now = _between(done, "ts", START, END).groupby("segment")["amount"].sum()
    before = _between(done, "ts", *PREVIOUS).groupby("segment")["amount"].sum()
    delta = now.sub(before, fill_value=0)
    np.testing.assert_allclose(got["contribution"].sort_index(), delta.sort_index())
    assert got["share_of_change"].sum() == pytest.approx(1.0)
    assert got["contribution"].abs().is_monotonic_decreasing


def test_top_movers_ratio_rate_and_mix_add_up(
    analytics_url: str, tables: dict[str, pd.DataFrame]
) -> None:
    got = business.top_movers(
        "average_order_value", "channel", (START, END), PREVIOUS, tz=TZ, url=analytics_url
    ).set_index("channel")
    done = tables["orders"][tables["orders"]["status"] == "completed"]
    now, before = _between(done, "ts", START, END), _between(done, "ts", *PREVIOUS)
    total_change = now["amount"].mean() - before["amount"].mean()
    assert got["contribution"].sum() == pytest.approx(total_change)
    assert (got["rate_effect"] + got["mix_effect"]).to_numpy() == pytest.approx(
        got["contribution"].to_numpy()
    )
    by_now = now.groupby("channel")["amount"].agg(["sum", "count"])
    by_before = before.groupby("channel")["amount"].agg(["sum", "count"])
    for channel in got.index:
        weight = by_now.loc[channel, "count"] / len(now)
        rate_change = (
            by_now.loc[channel, "sum"] / by_now.loc[channel, "count"]
            - by_before.loc[channel, "sum"] / by_before.loc[channel, "count"]
        )
        assert got.loc[channel, "rate_effect"] == pytest.approx(weight * rate_change)
        assert got.loc[channel, "delta"] == pytest.approx(rate_change)


def test_top_movers_refuses_non_additive(analytics_duckdb: str) -> None:
    with pytest.raises(ConfigError, match="top movers need a sum, count or ratio"):
        business.top_movers("p95_latency_ms", "model", (START, END), PREVIOUS, url=analytics_duckdb)
    with pytest.raises(ConfigError, match="is a difference"):
        business.top_movers("net_revenue", "segment", (START, END), PREVIOUS, url=analytics_duckdb)


def test_empty_ranges(analytics_duckdb: str) -> None:
    empty = business.cohort_retention(date(2030, 1, 1), date(2030, 3, 1), url=analytics_duckdb)
    assert empty.empty
    churn = business.churn_rate(date(2030, 1, 1), date(2030, 2, 1), url=analytics_duckdb)
    assert churn["base"] == 0 and np.isnan(churn["churn_rate"])
    funnel = business.funnel(date(2030, 1, 1), date(2030, 2, 1), url=analytics_duckdb)
    assert (funnel["count"] == 0).all() and np.isnan(funnel.loc[1, "conversion_from_previous"])


def test_top_customers_match_pandas_and_are_pseudonymised_without_pii(
    analytics_url: str, tables: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    from auterity import access, metrics
    from auterity.access.policy import Role
    from auterity.warehouse import scope as scopes

    top = business.top_customers(
        START, END, n=5, where={"region": "EMEA"}, tz=TZ, url=analytics_url
    )
    orders, customers = tables["orders"], tables["customers"]
    done = _between(orders[orders["status"] == "completed"], "ts", START, END)
    done = done.merge(customers, on="customer_id")
    done = done[done["region"] == "EMEA"]
    expected = (
        done.groupby(["customer_id", "name", "email"])["amount"]
        .agg(["sum", "count"])
        .reset_index()
        .sort_values(["sum", "customer_id"], ascending=[False, True])
        .head(5)
    )
    assert list(top["customer_id"]) == list(expected["customer_id"])
    assert top["revenue"].tolist() == pytest.approx(expected["sum"].astype(float).tolist())
    assert list(top["orders"]) == list(expected["count"])
    assert list(top["email"]) == list(expected["email"])
    monkeypatch.setenv("AUTERITY_PII_KEY", "t" * 40)
    viewer = Role("viewer", dashboards=None, notebooks=None, pii=False)
    with scopes.scoped(metrics.scope_for(viewer)):
        hidden = business.top_customers(
            START, END, n=5, where={"region": "EMEA"}, tz=TZ, url=analytics_url
        )
    assert list(hidden["customer_id"]) == list(top["customer_id"])  # same ranking
    assert list(hidden["email"]) == [access.pseudonym(e, "email") for e in top["email"]]
    assert list(hidden["name"]) == [access.pseudonym(n, "name") for n in top["name"]]
    with pytest.raises(ConfigError, match="top customers filter by"):
        business.top_customers(START, END, where={"model": "x"}, url=analytics_url)
    with pytest.raises(ConfigError, match="n must be between"):
        business.top_customers(START, END, n=0, url=analytics_url)
