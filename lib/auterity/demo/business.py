"""The demo world's business: visits, the funnel, customers, and orders with churning cohorts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from auterity.config import get_settings
from auterity.demo.catalogue import (
    ACTIVATION_RATE,
    CHANNELS_BY_SEGMENT,
    COUNTRIES,
    CUSTOMERS_PER_EVENT,
    FIRST_NAMES,
    LAST_NAMES,
    MONTHLY_CHURN_BY_PLAN,
    ORDER_MEDIAN_BY_SEGMENT,
    ORDERS_PER_MONTH_BY_SEGMENT,
    PLANS_BY_SEGMENT,
    PURCHASE_PROB_BY_PLAN,
    SECONDS_PER_DAY,
    SEGMENTS,
    SIGNUP_RATE,
    STREAM_FUNNEL,
    STREAM_ORDERS,
    WEEKLY_ORDERS,
    WEEKLY_VISITS,
)
from auterity.demo.world import (
    Calendar,
    DemoConfig,
    Effects,
    make_ids,
    stream_rng,
    time_of_day,
    weighted_choice,
)


@dataclass
class BusinessWorld:
    """The business tables, plus what inference generation needs from them."""

    customers: pd.DataFrame
    product_events: pd.DataFrame
    orders: pd.DataFrame
    customers_before_day: np.ndarray  # customers signed up before each day starts


def to_ts(cal: Calendar, day_index: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """UTC timestamps (datetime64[us]) from day indexes and seconds into the day."""
    base = cal.days[0].astype("datetime64[s]").astype(np.int64)
    secs = base + day_index.astype(np.int64) * SECONDS_PER_DAY + seconds.astype(np.int64)
    return secs.astype("datetime64[s]").astype("datetime64[us]")


def simulate_business(cfg: DemoConfig, cal: Calendar, fx: Effects) -> BusinessWorld:
    """Visits, the funnel, customers and orders."""
    rng = stream_rng(cfg.seed, STREAM_FUNNEL)
    n = cal.n
    t = np.arange(n) / n
    intensity = (
        np.exp(0.9 * t)
        * WEEKLY_VISITS[cal.weekday]
        * cal.yearly
        * cal.holiday
        * rng.lognormal(0, 0.05, n)
    )
    target_customers = max(200, int(cfg.events * CUSTOMERS_PER_EVENT))
    visits_per_day = rng.poisson(intensity / intensity.sum() * target_customers / SIGNUP_RATE)
    signups_per_day = rng.binomial(visits_per_day, SIGNUP_RATE * fx.conversion)

    total_visits = int(visits_per_day.sum())
    visit_day = np.repeat(np.arange(n), visits_per_day)
    visit_sec = time_of_day(rng, total_visits)
    day_start = np.cumsum(visits_per_day) - visits_per_day
    rank_in_day = np.arange(total_visits) - np.repeat(day_start, visits_per_day)
    signed_up = rank_in_day < np.repeat(signups_per_day, visits_per_day)
    visit_ts = to_ts(cal, visit_day, visit_sec)
    visit_session = make_ids("s", 0, total_visits)

    # Customers, ordered by signup time so "signed up before day d" is a prefix.
    signup_ts = visit_ts[signed_up] + rng.integers(60, 900, signed_up.sum()).astype(
        "timedelta64[s]"
    )
    order = np.argsort(signup_ts, kind="stable")
    signup_ts = signup_ts[order]
    signup_session = visit_session[signed_up][order]
    n_customers = len(signup_ts)
    customer_id = make_ids("c", 0, n_customers)
    countries = weighted_choice(rng, {k: v[1] for k, v in COUNTRIES.items()}, n_customers)
    regions = np.vectorize(lambda c: COUNTRIES[c][0], otypes=["U8"])(countries)
    segments = weighted_choice(rng, SEGMENTS, n_customers)
    plans = np.empty(n_customers, dtype="U16")
    for segment, weights in PLANS_BY_SEGMENT.items():
        mask = segments == segment
        plans[mask] = weighted_choice(rng, weights, int(mask.sum()))
    first = np.array(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), n_customers)]
    last = np.array(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), n_customers)]
    domain = np.array(["example.com", "example.org", "example.net"])[
        rng.integers(0, 3, n_customers)
    ]
    email = np.char.add(
        np.char.add(np.char.add(np.char.lower(first), "."), np.char.lower(last)),
        np.char.add(np.char.add(np.arange(n_customers).astype("U9"), "@"), domain),
    )
    customers = pd.DataFrame(
        {
            "customer_id": customer_id,
            "signup_ts": signup_ts,
            "country": countries,
            "region": regions,
            "segment": segments,
            "plan": plans,
            "email": email,
            "name": np.char.add(np.char.add(first, " "), last),
        }
    )

    # Funnel after signup: activation, then the first purchase.
    end_ts = np.datetime64(cfg.end, "us")
    activated = rng.random(n_customers) < ACTIVATION_RATE
    activation_ts = signup_ts + (rng.exponential(1.5, n_customers) * SECONDS_PER_DAY).astype(
        "timedelta64[s]"
    )
    activated &= activation_ts < end_ts
    purchase_p = np.vectorize(PURCHASE_PROB_BY_PLAN.get, otypes=[float])(plans)
    purchased = activated & (rng.random(n_customers) < purchase_p)
    purchase_ts = activation_ts + (rng.exponential(4.0, n_customers) * SECONDS_PER_DAY).astype(
        "timedelta64[s]"
    )
    purchased &= purchase_ts < end_ts

    n_act, n_pur = int(activated.sum()), int(purchased.sum())
    events = pd.DataFrame(
        {
            "customer_id": np.concatenate(
                [
                    np.full(total_visits, None, dtype=object),
                    customer_id,
                    customer_id[activated],
                    customer_id[purchased],
                ]
            ),
            "session_id": np.concatenate(
                [
                    visit_session,
                    signup_session,
                    make_ids("s", total_visits, n_act),
                    make_ids("s", total_visits + n_act, n_pur),
                ]
            ),
            "ts": np.concatenate(
                [visit_ts, signup_ts, activation_ts[activated], purchase_ts[purchased]]
            ),
            "event_type": np.repeat(
                ["visit", "signup", "activation", "purchase"],
                [total_visits, n_customers, n_act, n_pur],
            ),
        }
    )
    # A signed-up visitor is known from the visit on: attribute the visit to them.
    visit_customer = np.full(total_visits, None, dtype=object)
    visit_customer[np.flatnonzero(signed_up)[order]] = customer_id
    events.loc[: total_visits - 1, "customer_id"] = visit_customer
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    events.insert(0, "event_id", make_ids("e", 0, len(events)))

    orders = order_rows(cfg, cal, fx, customers, purchased, purchase_ts)
    day_of_signup = (signup_ts.astype("datetime64[D]") - cal.days[0]).astype(np.int64)
    customers_before_day = np.searchsorted(day_of_signup, np.arange(n), side="left")
    return BusinessWorld(customers, events, orders, customers_before_day)


def order_rows(
    cfg: DemoConfig,
    cal: Calendar,
    fx: Effects,
    customers: pd.DataFrame,
    purchased: np.ndarray,
    purchase_ts: np.ndarray,
) -> pd.DataFrame:
    """First orders at purchase time, then repeat orders until each customer churns."""
    rng = stream_rng(cfg.seed, STREAM_ORDERS)
    buyers = np.flatnonzero(purchased)
    segment = customers["segment"].to_numpy()[buyers]
    plan = customers["plan"].to_numpy()[buyers]
    # Churn propensity varies between customers (Beta), so cohort retention flattens.
    mean_churn = np.vectorize(MONTHLY_CHURN_BY_PLAN.get, otypes=[float])(plan)
    churn = rng.beta(0.9, 0.9 * (1 - mean_churn) / mean_churn)
    lifetime_months = rng.geometric(np.clip(churn, 0.01, 0.99))
    rate = np.vectorize(ORDERS_PER_MONTH_BY_SEGMENT.get, otypes=[float])(segment)
    owner = np.repeat(np.arange(len(buyers)), lifetime_months)
    month_no = np.arange(len(owner)) - np.repeat(
        np.cumsum(lifetime_months) - lifetime_months, lifetime_months
    )
    repeat_count = rng.poisson(rate[owner])
    repeat_owner = np.repeat(owner, repeat_count)
    repeat_offset = (np.repeat(month_no, repeat_count) + rng.random(len(repeat_owner))) * 30.44
    first_ts = purchase_ts[buyers]
    ts = np.concatenate(
        [
            first_ts,
            first_ts[repeat_owner] + (repeat_offset * SECONDS_PER_DAY).astype("timedelta64[s]"),
        ]
    )
    who = np.concatenate([np.arange(len(buyers)), repeat_owner])
    is_first = np.arange(len(ts)) < len(buyers)

    day = (ts.astype("datetime64[D]") - cal.days[0]).astype(np.int64)
    inside = day < cal.n
    # Repeat orders follow the weekly/yearly rhythm and skip holidays (thinning).
    accept = np.ones(len(ts), dtype=bool)
    d = np.clip(day, 0, cal.n - 1)
    season = WEEKLY_ORDERS[cal.weekday[d]] * cal.yearly[d] * cal.holiday[d]
    accept[~is_first] = rng.random(int((~is_first).sum())) < (season / season.max())[~is_first]
    keep = inside & accept
    ts, who, day = ts[keep], who[keep], day[keep]

    seg = segment[who]
    median = np.vectorize(ORDER_MEDIAN_BY_SEGMENT.get, otypes=[float])(seg)
    amount = median * rng.lognormal(0, 0.45, len(ts)) * fx.order_amount[day]
    channel = np.empty(len(ts), dtype="U8")
    for s, weights in CHANNELS_BY_SEGMENT.items():
        mask = seg == s
        channel[mask] = weighted_choice(rng, weights, int(mask.sum()))
    status = weighted_choice(rng, {"completed": 0.93, "refunded": 0.04, "failed": 0.03}, len(ts))
    frame = pd.DataFrame(
        {
            "customer_id": customers["customer_id"].to_numpy()[buyers][who],
            "ts": ts,
            "amount": np.round(amount, 2),
            "currency": currency_code(),
            "channel": channel,
            "status": status,
            "_day": day,
        }
    )

    # Point anomalies: make one day's order count `factor` times a typical day's (the median
    # of the same weekday one to three weeks around it), by adding or removing orders.
    for d_idx in np.flatnonzero(fx.order_volume != 1):
        f = fx.order_volume[d_idx]
        counts = np.bincount(frame["_day"].to_numpy(), minlength=cal.n)
        neighbours = [d_idx + 7 * k for k in (-3, -2, -1, 1, 2, 3) if 0 <= d_idx + 7 * k < cal.n]
        target = round(f * float(np.median(counts[neighbours])))
        day_of = frame["_day"].to_numpy()
        on_day = np.flatnonzero(day_of == d_idx)
        if target > len(on_day):
            pool = on_day if len(on_day) else np.flatnonzero(np.isin(day_of, neighbours))
            extra = frame.iloc[rng.choice(pool, target - len(on_day))].copy()
            extra["ts"] = to_ts(cal, np.full(len(extra), d_idx), time_of_day(rng, len(extra)))
            frame = pd.concat([frame, extra], ignore_index=True)
        elif target < len(on_day):
            drop = rng.choice(on_day, len(on_day) - target, replace=False)
            frame = frame.drop(index=frame.index[drop]).reset_index(drop=True)
    frame = frame.drop(columns="_day").sort_values("ts", kind="stable").reset_index(drop=True)
    frame.insert(0, "order_id", make_ids("o", 0, len(frame)))
    return frame


def currency_code() -> str:
    """The reporting currency that demo order amounts are in."""

    return get_settings().currency
