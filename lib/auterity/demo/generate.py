"""Deterministic, realistic synthetic data for every system the platform analyses.

The same seed and end date give the same rows, whatever the database. What is generated:

* **Business**: visits with weekly and yearly seasonality, a growth trend and holiday dips;
  a visit -> signup -> activation -> purchase funnel; customers with country/region,
  segment and plan; orders whose signup cohorts churn with realistic, flattening decay.
* **ModelHub**: models from several providers (per-token, tiered and flat-rate
  self-hosted pricing) called by product features, with distinct latency, token, cost,
  error, timeout and quality profiles; traffic follows the active customer base.
* **Planted effects** (unless ``effects=False``), listed in the manifest so tests and the
  insight engine can check that the analytics find them: latency degradations of one
  model followed one day later by conversion dips, a cost spike, an input-token drift,
  point anomalies and a level shift in business metrics, and a savings opportunity.

Random streams are independent per table and per month (``SeedSequence([seed, stream])``),
so chunked generation is deterministic and planting effects does not reshuffle the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import URL

from auterity import __version__, warehouse
from auterity._time import today_utc
from auterity.config import get_settings
from auterity.errors import ConfigError

SECONDS_PER_DAY = 86_400

# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class ModelSpec:
    """A model's identity, pricing and behaviour in the demo world."""

    model_id: str
    name: str
    provider: str
    version: str
    input_price_per_1k: float | None
    output_price_per_1k: float | None
    base_latency_ms: float
    ms_per_output_token: float
    error_rate: float
    timeout_rate: float
    verbosity: float = 1.0
    pricing_kind: str = "per_token"
    pricing_config: dict[str, Any] | None = None
    hosting: str = "api"
    reports_cost: bool = True


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("gpt-4o", "GPT-4o", "openai", "2024-08-06", 0.0025, 0.01, 420, 9.0, 0.006, 0.002),
    ModelSpec(
        "gpt-4o-mini",
        "GPT-4o mini",
        "openai",
        "2024-07-18",
        0.00015,
        0.0006,
        260,
        4.5,
        0.004,
        0.001,
        0.9,
    ),
    ModelSpec(
        "claude-3-5-sonnet",
        "Claude 3.5 Sonnet",
        "anthropic",
        "20241022",
        0.003,
        0.015,
        650,
        10.0,
        0.008,
        0.002,
        1.15,
    ),
    ModelSpec(
        "claude-3-5-haiku",
        "Claude 3.5 Haiku",
        "anthropic",
        "20241022",
        0.0008,
        0.004,
        330,
        5.0,
        0.005,
        0.001,
        0.95,
    ),
    ModelSpec(
        "gemini-1.5-pro",
        "Gemini 1.5 Pro",
        "google",
        "002",
        0.00125,
        0.005,
        560,
        8.0,
        0.012,
        0.004,
        1.05,
    ),
    ModelSpec(
        "gemini-1.5-flash",
        "Gemini 1.5 Flash",
        "google",
        "002",
        0.000075,
        0.0003,
        210,
        3.2,
        0.010,
        0.002,
        0.9,
    ),
    ModelSpec(
        "mistral-large",
        "Mistral Large",
        "mistral",
        "2411",
        0.002,
        0.006,
        520,
        8.5,
        0.015,
        0.003,
        reports_cost=False,
    ),
    ModelSpec(
        "command-r-plus",
        "Command R+",
        "cohere",
        "08-2024",
        0.0025,
        0.01,
        480,
        8.0,
        0.009,
        0.002,
        0.8,
        pricing_kind="tiered",
        pricing_config={
            "period": "month",
            "tiers": [
                {
                    "up_to_tokens": 50_000_000,
                    "input_price_per_1k": 0.0025,
                    "output_price_per_1k": 0.01,
                },
                {"up_to_tokens": None, "input_price_per_1k": 0.002, "output_price_per_1k": 0.008},
            ],
        },
    ),
    ModelSpec(
        "llama-3.1-70b",
        "Llama 3.1 70B (self-hosted)",
        "self-hosted",
        "instruct-fp8",
        None,
        None,
        700,
        14.0,
        0.02,
        0.006,
        1.1,
        pricing_kind="flat",
        pricing_config={
            "monthly_cost": 2400.0,
            "currency": "USD",
            "note": "one GPU node, amortised over requests",
        },
        hosting="self_hosted",
        reports_cost=False,
    ),
)
MODEL_INDEX = {m.model_id: i for i, m in enumerate(MODELS)}


@dataclass(frozen=True)
class FeatureSpec:
    """A product feature (workflow) that calls models."""

    share: float
    input_tokens_median: float
    output_tokens_median: float
    models: dict[str, float]
    quality: dict[str, float]


# Within a feature a cheaper model is always clearly (>= 0.06) worse, so the only savings
# opportunity in the data is the planted one.
FEATURES: dict[str, FeatureSpec] = {
    "chat_assistant": FeatureSpec(
        0.30,
        900,
        280,
        {"gpt-4o": 0.45, "claude-3-5-sonnet": 0.35, "gemini-1.5-pro": 0.20},
        {"claude-3-5-sonnet": 0.92, "gpt-4o": 0.86, "gemini-1.5-pro": 0.79},
    ),
    "summarization": FeatureSpec(
        0.20,
        2400,
        220,
        {"gpt-4o": 0.55, "claude-3-5-haiku": 0.30, "gemini-1.5-flash": 0.15},
        {"gpt-4o": 0.88, "claude-3-5-haiku": 0.81, "gemini-1.5-flash": 0.73},
    ),
    "support_triage": FeatureSpec(
        0.15,
        600,
        40,
        {"gpt-4o-mini": 0.6, "gemini-1.5-flash": 0.4},
        {"gpt-4o-mini": 0.85, "gemini-1.5-flash": 0.77},
    ),
    "code_review": FeatureSpec(
        0.12,
        3200,
        450,
        {"claude-3-5-sonnet": 0.7, "gpt-4o": 0.3},
        {"claude-3-5-sonnet": 0.90, "gpt-4o": 0.83},
    ),
    "email_drafting": FeatureSpec(
        0.13,
        500,
        350,
        {"mistral-large": 0.5, "llama-3.1-70b": 0.5},
        # The self-hosted model is fine-tuned for this and clearly better; it also costs more
        # per request at demo volumes, so neither direction is a savings opportunity.
        {"llama-3.1-70b": 0.86, "mistral-large": 0.78},
    ),
    "search_rerank": FeatureSpec(0.10, 1500, 60, {"command-r-plus": 1.0}, {"command-r-plus": 0.80}),
}

COUNTRIES: dict[str, tuple[str, float]] = {
    "US": ("NA", 0.33),
    "CA": ("NA", 0.05),
    "GB": ("EMEA", 0.08),
    "DE": ("EMEA", 0.09),
    "FR": ("EMEA", 0.06),
    "NL": ("EMEA", 0.03),
    "ES": ("EMEA", 0.03),
    "SE": ("EMEA", 0.03),
    "IN": ("APAC", 0.07),
    "JP": ("APAC", 0.05),
    "AU": ("APAC", 0.04),
    "SG": ("APAC", 0.03),
    "BR": ("LATAM", 0.06),
    "MX": ("LATAM", 0.05),
}
SEGMENTS: dict[str, float] = {
    "self_serve": 0.55,
    "smb": 0.28,
    "mid_market": 0.12,
    "enterprise": 0.05,
}
PLANS_BY_SEGMENT: dict[str, dict[str, float]] = {
    "self_serve": {"free": 0.5, "starter": 0.4, "pro": 0.1},
    "smb": {"starter": 0.5, "pro": 0.5},
    "mid_market": {"pro": 0.7, "enterprise": 0.3},
    "enterprise": {"enterprise": 1.0},
}
PURCHASE_PROB_BY_PLAN = {"free": 0.25, "starter": 0.55, "pro": 0.7, "enterprise": 0.85}
MONTHLY_CHURN_BY_PLAN = {"free": 0.30, "starter": 0.14, "pro": 0.08, "enterprise": 0.04}
ORDERS_PER_MONTH_BY_SEGMENT = {"self_serve": 0.9, "smb": 1.4, "mid_market": 2.2, "enterprise": 3.5}
ORDER_MEDIAN_BY_SEGMENT = {
    "self_serve": 29.0,
    "smb": 89.0,
    "mid_market": 450.0,
    "enterprise": 2400.0,
}
CHANNELS_BY_SEGMENT: dict[str, dict[str, float]] = {
    "self_serve": {"web": 0.7, "mobile": 0.3},
    "smb": {"web": 0.6, "mobile": 0.2, "partner": 0.2},
    "mid_market": {"sales": 0.5, "web": 0.3, "partner": 0.2},
    "enterprise": {"sales": 0.85, "partner": 0.15},
}
FIRST_NAMES = (
    "Ada",
    "Alan",
    "Amara",
    "Ana",
    "Arjun",
    "Ben",
    "Carla",
    "Chen",
    "Dara",
    "Diego",
    "Elena",
    "Emeka",
    "Eva",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Ivan",
    "Jonas",
    "Julia",
    "Kai",
    "Lars",
    "Lea",
    "Leila",
    "Luca",
    "Maya",
    "Mateo",
    "Mina",
    "Noah",
    "Nora",
    "Omar",
    "Priya",
    "Rafael",
    "Rosa",
    "Sam",
    "Sofia",
    "Tariq",
    "Uma",
    "Yara",
    "Zoe",
)
LAST_NAMES = (
    "Adeyemi",
    "Alvarez",
    "Andersen",
    "Bauer",
    "Becker",
    "Costa",
    "Das",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Gupta",
    "Hansen",
    "Ito",
    "Jansen",
    "Kim",
    "Kowalski",
    "Laurent",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Patel",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Tanaka",
    "Taylor",
    "Weber",
    "Wilson",
    "Yilmaz",
    "Zhang",
)

# Visits and AI traffic by weekday (Monday first) and hour of day (UTC).
WEEKLY_VISITS = np.array([1.0, 1.04, 1.03, 1.0, 0.93, 0.68, 0.62])
WEEKLY_ORDERS = np.array([1.0, 1.02, 1.02, 1.0, 0.97, 0.75, 0.70])
WEEKLY_AI = np.array([1.0, 1.03, 1.03, 1.0, 0.94, 0.55, 0.50])
HOURLY = np.array(
    [
        0.25,
        0.2,
        0.18,
        0.18,
        0.22,
        0.35,
        0.6,
        0.9,
        1.2,
        1.4,
        1.5,
        1.5,
        1.45,
        1.5,
        1.5,
        1.45,
        1.35,
        1.2,
        1.0,
        0.9,
        0.8,
        0.65,
        0.5,
        0.35,
    ]
)

SIGNUP_RATE = 0.06
ACTIVATION_RATE = 0.62
CUSTOMERS_PER_EVENT = 1 / 40
TIMEOUT_MS = 30_000.0

# Stream numbers for SeedSequence: fixed forever, so data stays stable across versions.
_STREAM_EFFECTS, _STREAM_FUNNEL, _STREAM_ORDERS, _STREAM_AI_DAYS = 1, 2, 3, 4
_STREAM_AI_MONTH = 1000


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class DemoConfig:
    """What to generate.

    Attributes
    ----------
    seed : int
        Random seed; same seed and end date give the same data.
    events : int
        Approximate number of inference events; business volume scales with it.
    months : int
        Length of the history, ending at ``end``.
    end : date
        First day *after* the data (UTC midnight); default today.
    effects : bool
        Plant the effects listed in the manifest.
    """

    seed: int = 42
    events: int = 1_000_000
    months: int = 18
    end: date = field(default_factory=today_utc)
    effects: bool = True

    def __post_init__(self) -> None:
        if self.events < 1_000:
            raise ConfigError(f"--events must be at least 1000 (got {self.events})")
        if not 2 <= self.months <= 120:
            raise ConfigError(f"--months must be between 2 and 120 (got {self.months})")
        if self.seed < 0:
            raise ConfigError(f"--seed must be a non-negative integer (got {self.seed})")

    @property
    def start(self) -> date:
        """First day of the data."""
        return (pd.Timestamp(self.end) - pd.DateOffset(months=self.months)).date()


def _rng(seed: int, stream: int) -> np.random.Generator:
    """An independent random generator for one stream of one seed."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def _ids(prefix: str, start: int, count: int, width: int = 9) -> np.ndarray:
    """Sequential string ids such as ``c000000042``."""
    numbers = np.arange(start, start + count).astype(f"U{width}")
    return np.char.add(prefix, np.char.zfill(numbers, width))


def _choice(rng: np.random.Generator, weights: dict[str, float], size: int) -> np.ndarray:
    """Draw ``size`` keys of ``weights`` in proportion to their values."""
    keys = np.array(list(weights))
    p = np.array(list(weights.values()), dtype=float)
    return keys[rng.choice(len(keys), size=size, p=p / p.sum())]


def _time_of_day(rng: np.random.Generator, size: int) -> np.ndarray:
    """Seconds into the day following the hourly traffic profile."""
    hours = rng.choice(24, size=size, p=HOURLY / HOURLY.sum())
    return hours * 3600 + rng.integers(0, 3600, size=size)


# --------------------------------------------------------------------------- calendar


@dataclass
class _Calendar:
    """Per-day arrays shared by all generators."""

    days: np.ndarray  # datetime64[D]
    weekday: np.ndarray
    yearly: np.ndarray
    holiday: np.ndarray  # multiplier, 1 on ordinary days

    @property
    def n(self) -> int:
        return len(self.days)


def _calendar(cfg: DemoConfig) -> _Calendar:
    """Days of the range with weekday, yearly seasonality and US holiday multipliers."""
    import holidays

    days = np.arange(np.datetime64(cfg.start, "D"), np.datetime64(cfg.end, "D"))
    index = pd.DatetimeIndex(days)
    weekday = index.day_of_week.to_numpy()
    yearly = 1 + 0.12 * np.cos(2 * np.pi * (index.day_of_year.to_numpy() - 320) / 365.25)
    us = holidays.country_holidays("US", years=sorted(set(index.year)))
    holiday = np.ones(len(days))
    for i, day in enumerate(index.date):
        if day in us:
            holiday[i] = 0.55
        elif (day.month, day.day) in ((12, 24), (12, 31)):
            holiday[i] = 0.75
    return _Calendar(days=days, weekday=weekday, yearly=yearly, holiday=holiday)


# --------------------------------------------------------------------------- effects


@dataclass
class _Effects:
    """Per-day multipliers of the planted effects and their manifest entries."""

    conversion: np.ndarray
    latency: dict[str, np.ndarray]
    output_tokens: dict[str, np.ndarray]
    input_tokens: dict[str, np.ndarray]
    order_volume: np.ndarray
    order_amount: np.ndarray
    quality_override: dict[tuple[str, str], float]
    manifest: list[dict[str, Any]]


def _plan_effects(cfg: DemoConfig, cal: _Calendar) -> _Effects:
    """Place the planted effects (or none) on the calendar."""
    n = cal.n
    ones = np.ones(n)
    effects = _Effects(ones.copy(), {}, {}, {}, ones.copy(), ones.copy(), {}, [])
    if not cfg.effects:
        return effects
    rng = _rng(cfg.seed, _STREAM_EFFECTS)
    iso = lambda i: str(cal.days[i])  # noqa: E731 - tiny local formatter
    taken = np.zeros(n, dtype=bool)

    def place(fraction: float, length: int) -> int:
        """First day of a window near ``fraction`` of the range, clear of other effects
        (two days apart) and of holidays."""
        target = int(fraction * n) + int(rng.integers(-3, 4))
        candidates = sorted(range(7, n - length - 2), key=lambda c: (abs(c - target), c))
        for start in candidates:
            if (
                not taken[max(0, start - 2) : start + length + 2].any()
                and (cal.holiday[max(0, start - 1) : start + length + 1] == 1).all()
            ):
                taken[start : start + length] = True
                return start
        raise ConfigError(
            f"{cfg.months} months are too short to plant every effect apart from the others; "
            "use more --months or --no-effects"
        )

    # 1. gpt-4o slows down; one day later visitors convert less.
    model, factor, dip = "gpt-4o", 2.5, -0.30
    latency = ones.copy()
    conversion_windows, latency_windows = [], []
    for fraction in (0.35, 0.55, 0.78):
        s = place(fraction, 6)
        latency[s : s + 5] = factor
        effects.conversion[s + 1 : s + 6] = 1 + dip
        latency_windows.append([iso(s), iso(s + 5)])
        conversion_windows.append([iso(s + 1), iso(s + 6)])
    effects.latency[model] = latency
    effects.manifest.append(
        {
            "type": "latency_degradation",
            "model_id": model,
            "metric": "p95_latency_ms",
            "factor": factor,
            "windows": latency_windows,
            "description": f"{model} latency x{factor} (all percentiles) on these days",
        }
    )
    effects.manifest.append(
        {
            "type": "conversion_dip",
            "metric": "conversion_rate",
            "relative_change": dip,
            "lag_days": 1,
            "caused_by": "latency_degradation",
            "windows": conversion_windows,
            "description": "visit->signup conversion drops 30% the day after the slowdown starts",
        }
    )

    # 2. A prompt bug makes claude-3-5-sonnet write 4x longer answers for 3 days.
    s = place(0.45, 3)
    tokens = ones.copy()
    tokens[s : s + 3] = 4.0
    effects.output_tokens["claude-3-5-sonnet"] = tokens
    effects.manifest.append(
        {
            "type": "cost_spike",
            "model_id": "claude-3-5-sonnet",
            "metric": "cost",
            "output_tokens_factor": 4.0,
            "windows": [[iso(s), iso(s + 3)]],
            "description": "output tokens x4 (and so cost and latency up) for three days",
        }
    )

    # 3. Longer tickets reach support triage: gpt-4o-mini input tokens x1.8 from a date on.
    s = place(0.66, 1)
    drift = ones.copy()
    drift[s:] = 1.8
    effects.input_tokens["gpt-4o-mini"] = drift
    effects.manifest.append(
        {
            "type": "drift",
            "model_id": "gpt-4o-mini",
            "metric": "input_tokens",
            "factor": 1.8,
            "start": iso(s),
            "description": "input-token lengths shift up 80% from this day on",
        }
    )

    # 4. Point anomalies in orders (and so revenue): two spikes, two drops.
    for fraction, f in ((0.22, 3.0), (0.50, 0.35), (0.62, 2.5), (0.87, 0.3)):
        d = place(fraction, 1)
        effects.order_volume[d] = f
        effects.manifest.append(
            {
                "type": "point_anomaly",
                "metric": "orders",
                "also": ["revenue"],
                "date": iso(d),
                "factor": f,
                "direction": "up" if f > 1 else "down",
                "description": f"orders x{f} of a typical {cal.days[d].astype(object):%A} "
                "on this day only",
            }
        )

    # 5. A price increase: order amounts +25% from a date on (revenue level shift).
    s = place(0.71, 1)
    effects.order_amount[s:] = 1.25
    effects.manifest.append(
        {
            "type": "level_shift",
            "metric": "revenue",
            "also": ["average_order_value"],
            "date": iso(s),
            "relative_change": 0.25,
            "description": "order amounts +25% from this day on (price increase)",
        }
    )

    # 6. claude-3-5-haiku summarises as well as gpt-4o at a fraction of the price.
    gap = 0.005
    base = FEATURES["summarization"].quality["gpt-4o"]
    effects.quality_override[("summarization", "claude-3-5-haiku")] = base - gap
    effects.manifest.append(
        {
            "type": "savings_opportunity",
            "feature": "summarization",
            "current_model": "gpt-4o",
            "cheaper_model": "claude-3-5-haiku",
            "quality_current": base,
            "quality_cheaper": base - gap,
            "quality_gap": gap,
            "description": "switching summarization from gpt-4o to claude-3-5-haiku keeps quality",
        }
    )
    return effects


# --------------------------------------------------------------------------- business


@dataclass
class _Business:
    """The business tables, plus what inference generation needs from them."""

    customers: pd.DataFrame
    product_events: pd.DataFrame
    orders: pd.DataFrame
    customers_before_day: np.ndarray  # customers signed up before each day starts


def _to_ts(cal: _Calendar, day_index: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """UTC timestamps (datetime64[us]) from day indexes and seconds into the day."""
    base = cal.days[0].astype("datetime64[s]").astype(np.int64)
    secs = base + day_index.astype(np.int64) * SECONDS_PER_DAY + seconds.astype(np.int64)
    return secs.astype("datetime64[s]").astype("datetime64[us]")


def _business(cfg: DemoConfig, cal: _Calendar, fx: _Effects) -> _Business:
    """Visits, the funnel, customers and orders."""
    rng = _rng(cfg.seed, _STREAM_FUNNEL)
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
    visit_sec = _time_of_day(rng, total_visits)
    day_start = np.cumsum(visits_per_day) - visits_per_day
    rank_in_day = np.arange(total_visits) - np.repeat(day_start, visits_per_day)
    signed_up = rank_in_day < np.repeat(signups_per_day, visits_per_day)
    visit_ts = _to_ts(cal, visit_day, visit_sec)
    visit_session = _ids("s", 0, total_visits)

    # Customers, ordered by signup time so "signed up before day d" is a prefix.
    signup_ts = visit_ts[signed_up] + rng.integers(60, 900, signed_up.sum()).astype(
        "timedelta64[s]"
    )
    order = np.argsort(signup_ts, kind="stable")
    signup_ts = signup_ts[order]
    signup_session = visit_session[signed_up][order]
    n_customers = len(signup_ts)
    customer_id = _ids("c", 0, n_customers)
    countries = _choice(rng, {k: v[1] for k, v in COUNTRIES.items()}, n_customers)
    regions = np.vectorize(lambda c: COUNTRIES[c][0], otypes=["U8"])(countries)
    segments = _choice(rng, SEGMENTS, n_customers)
    plans = np.empty(n_customers, dtype="U16")
    for segment, weights in PLANS_BY_SEGMENT.items():
        mask = segments == segment
        plans[mask] = _choice(rng, weights, int(mask.sum()))
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
                    _ids("s", total_visits, n_act),
                    _ids("s", total_visits + n_act, n_pur),
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
    events.insert(0, "event_id", _ids("e", 0, len(events)))

    orders = _orders(cfg, cal, fx, customers, purchased, purchase_ts)
    day_of_signup = (signup_ts.astype("datetime64[D]") - cal.days[0]).astype(np.int64)
    customers_before_day = np.searchsorted(day_of_signup, np.arange(n), side="left")
    return _Business(customers, events, orders, customers_before_day)


def _orders(
    cfg: DemoConfig,
    cal: _Calendar,
    fx: _Effects,
    customers: pd.DataFrame,
    purchased: np.ndarray,
    purchase_ts: np.ndarray,
) -> pd.DataFrame:
    """First orders at purchase time, then repeat orders until each customer churns."""
    rng = _rng(cfg.seed, _STREAM_ORDERS)
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
        channel[mask] = _choice(rng, weights, int(mask.sum()))
    status = _choice(rng, {"completed": 0.93, "refunded": 0.04, "failed": 0.03}, len(ts))
    frame = pd.DataFrame(
        {
            "customer_id": customers["customer_id"].to_numpy()[buyers][who],
            "ts": ts,
            "amount": np.round(amount, 2),
            "currency": _currency(),
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
            extra["ts"] = _to_ts(cal, np.full(len(extra), d_idx), _time_of_day(rng, len(extra)))
            frame = pd.concat([frame, extra], ignore_index=True)
        elif target < len(on_day):
            drop = rng.choice(on_day, len(on_day) - target, replace=False)
            frame = frame.drop(index=frame.index[drop]).reset_index(drop=True)
    frame = frame.drop(columns="_day").sort_values("ts", kind="stable").reset_index(drop=True)
    frame.insert(0, "order_id", _ids("o", 0, len(frame)))
    return frame


def _currency() -> str:
    """The reporting currency that demo order amounts are in."""

    return get_settings().currency


# --------------------------------------------------------------------------- ModelHub


def models_frame() -> pd.DataFrame:
    """The ``models`` table of the demo world."""
    return pd.DataFrame(
        [
            {
                "model_id": m.model_id,
                "name": m.name,
                "provider": m.provider,
                "version": m.version,
                "input_price_per_1k": m.input_price_per_1k,
                "output_price_per_1k": m.output_price_per_1k,
                "pricing_kind": m.pricing_kind,
                "pricing_config": json.dumps(m.pricing_config, sort_keys=True)
                if m.pricing_config
                else None,
                "hosting": m.hosting,
            }
            for m in MODELS
        ]
    )


def _events_per_day(cfg: DemoConfig, cal: _Calendar, biz: _Business) -> np.ndarray:
    """Inference requests per day: follows the customer base, weekdays and holidays."""
    rng = _rng(cfg.seed, _STREAM_AI_DAYS)
    base = np.maximum(biz.customers_before_day, 1) ** 0.85
    intensity = base * WEEKLY_AI[cal.weekday] * np.sqrt(cal.holiday) * rng.lognormal(0, 0.04, cal.n)
    return rng.multinomial(cfg.events, intensity / intensity.sum())


def _inference_chunk(
    cfg: DemoConfig,
    cal: _Calendar,
    fx: _Effects,
    biz: _Business,
    day_counts: np.ndarray,
    days: np.ndarray,
    chunk_no: int,
    first_id: int,
) -> pd.DataFrame:
    """Inference events for the given days (one month), from that month's own stream."""
    rng = _rng(cfg.seed, _STREAM_AI_MONTH + chunk_no)
    counts = day_counts[days]
    size = int(counts.sum())
    day = np.repeat(days, counts)
    ts = _to_ts(cal, day, _time_of_day(rng, size))

    feature_names = list(FEATURES)
    feature_idx = rng.choice(
        len(feature_names),
        size=size,
        p=np.array([f.share for f in FEATURES.values()]) / sum(f.share for f in FEATURES.values()),
    )
    model_idx = np.empty(size, dtype=np.int64)
    quality_mean = np.empty(size)
    in_median = np.empty(size)
    out_median = np.empty(size)
    for k, (fname, spec) in enumerate(FEATURES.items()):
        mask = feature_idx == k
        chosen = _choice(rng, spec.models, int(mask.sum()))
        model_idx[mask] = (
            np.vectorize(MODEL_INDEX.get, otypes=[np.int64])(chosen)
            if len(chosen)
            else chosen.astype(np.int64)
        )
        qualities = {m: fx.quality_override.get((fname, m), q) for m, q in spec.quality.items()}
        quality_mean[mask] = (
            np.vectorize(qualities.get, otypes=[float])(chosen) if len(chosen) else 0.0
        )
        in_median[mask] = spec.input_tokens_median
        out_median[mask] = spec.output_tokens_median

    def per_model(values: list[float]) -> np.ndarray:
        return np.asarray(values, dtype=float)[model_idx]

    verbosity = per_model([m.verbosity for m in MODELS])
    input_tokens = in_median * rng.lognormal(0, 0.55, size)
    output_tokens = out_median * verbosity * rng.lognormal(0, 0.45, size)
    latency_factor = np.ones(size)
    for model_id, factors in fx.input_tokens.items():
        sel = model_idx == MODEL_INDEX[model_id]
        input_tokens[sel] *= factors[day[sel]]
    for model_id, factors in fx.output_tokens.items():
        sel = model_idx == MODEL_INDEX[model_id]
        output_tokens[sel] *= factors[day[sel]]
    for model_id, factors in fx.latency.items():
        sel = model_idx == MODEL_INDEX[model_id]
        latency_factor[sel] = factors[day[sel]]
    input_tokens = np.maximum(1, np.round(input_tokens)).astype(np.int64)
    output_tokens = np.maximum(1, np.round(output_tokens)).astype(np.int64)

    latency = (
        per_model([m.base_latency_ms for m in MODELS])
        + per_model([m.ms_per_output_token for m in MODELS]) * output_tokens
        + 0.02 * input_tokens
    ) * rng.lognormal(0, 0.25, size)
    slow_tail = rng.random(size) < 0.02
    latency[slow_tail] *= rng.uniform(2, 4, int(slow_tail.sum()))
    latency *= latency_factor

    u = rng.random(size)
    error = u < per_model([m.error_rate for m in MODELS])
    timeout = ~error & (
        (u > 1 - per_model([m.timeout_rate for m in MODELS])) | (latency > TIMEOUT_MS)
    )
    latency[timeout] = TIMEOUT_MS
    latency[error] *= 0.3
    output_tokens[error | timeout] = 0
    status = np.where(error, "error", np.where(timeout, "timeout", "ok"))

    in_price = per_model([m.input_price_per_1k or 0.0 for m in MODELS])
    out_price = per_model([m.output_price_per_1k or 0.0 for m in MODELS])
    cost = input_tokens / 1000 * in_price + output_tokens / 1000 * out_price
    cost[error] = 0.0
    reports = per_model([1.0 if m.reports_cost else 0.0 for m in MODELS]).astype(bool)
    cost = np.where(reports, np.round(cost, 8), np.nan)

    ok = status == "ok"
    scored = ok & (rng.random(size) < 0.35)
    quality = np.where(scored, np.clip(rng.normal(quality_mean, 0.07), 0, 1), np.nan)
    has_feedback = ok & (rng.random(size) < 0.08)
    thumbs_up = rng.random(size) < (0.2 + 0.75 * quality_mean)
    feedback = pd.array(np.where(thumbs_up, 1, -1), dtype="Int16")
    feedback[~has_feedback] = pd.NA

    before = biz.customers_before_day[day]
    pick = (rng.random(size) * before).astype(np.int64)
    customer = np.where(
        before > 0,
        biz.customers["customer_id"].to_numpy()[np.minimum(pick, len(biz.customers) - 1)],
        None,
    )

    frame = pd.DataFrame(
        {
            "request_id": _ids("r", first_id, size, 10),
            "ts": ts,
            "model_id": np.array([m.model_id for m in MODELS])[model_idx],
            "customer_id": customer,
            "feature": np.array(feature_names)[feature_idx],
            "latency_ms": np.round(latency, 1),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost": cost,
            "status": status,
            "quality": np.round(quality, 4),
            "feedback": feedback,
        }
    )
    order = np.argsort(frame["ts"].to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    frame["request_id"] = _ids("r", first_id, size, 10)
    return frame


# --------------------------------------------------------------------------- public API


@dataclass
class DemoWorld:
    """A generated demo world: what to write, and the manifest describing it."""

    config: DemoConfig
    manifest: dict[str, Any]
    expected_rows: dict[str, int]
    _chunks: Iterator[tuple[str, pd.DataFrame]]

    def chunks(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """Yield ``(table, DataFrame)`` chunks in load order (inference events by month)."""
        return self._chunks


def generate(cfg: DemoConfig) -> DemoWorld:
    """Generate a demo world.

    Business tables are built up front (they are small); inference events are produced
    month by month when :meth:`DemoWorld.chunks` is iterated, so memory stays bounded
    even for tens of millions of events.

    Parameters
    ----------
    cfg : DemoConfig
        Seed, size, range and whether to plant effects.

    Returns
    -------
    DemoWorld
        Manifest, expected row counts and the chunk iterator.
    """
    cal = _calendar(cfg)
    fx = _plan_effects(cfg, cal)
    biz = _business(cfg, cal, fx)
    day_counts = _events_per_day(cfg, cal, biz)
    months = pd.DatetimeIndex(cal.days).to_period("M").asi8
    month_groups = [np.flatnonzero(months == m) for m in np.unique(months)]

    expected = {
        "models": len(MODELS),
        "customers": len(biz.customers),
        "product_events": len(biz.product_events),
        "orders": len(biz.orders),
        "inference_events": int(day_counts.sum()),
    }
    manifest = {
        "generator": f"auterity {__version__}",
        "seed": cfg.seed,
        "events": cfg.events,
        "months": cfg.months,
        "start": str(cfg.start),
        "end": str(cfg.end),
        "effects_planted": cfg.effects,
        "timezone_of_timestamps": "UTC",
        "rows": expected,
        "models": [m.model_id for m in MODELS],
        "features": list(FEATURES),
        "effects": fx.manifest,
    }

    def chunks() -> Iterator[tuple[str, pd.DataFrame]]:
        yield "models", models_frame()
        yield "customers", biz.customers
        step = 500_000
        for start in range(0, len(biz.product_events), step):
            yield "product_events", biz.product_events.iloc[start : start + step]
        yield "orders", biz.orders
        next_id = 0
        for chunk_no, days in enumerate(month_groups):
            frame = _inference_chunk(cfg, cal, fx, biz, day_counts, days, chunk_no, next_id)
            next_id += len(frame)
            yield "inference_events", frame

    return DemoWorld(cfg, manifest, expected, chunks())


def build(
    world: DemoWorld | DemoConfig,
    *,
    url: str | URL | None = None,
    progress: Any = None,
    manifest_path: Path | None = None,
) -> dict[str, Any]:
    """Replace the warehouse's data with a generated demo world.

    Parameters
    ----------
    world : DemoWorld or DemoConfig
        A world from :func:`generate`, or the config to generate one from.
    url : str or URL, optional
        Warehouse URL; default from the settings.
    progress : callable, optional
        ``progress(table, rows)`` after each written chunk.
    manifest_path : Path, optional
        Also write the manifest there as JSON (it is always stored in the warehouse).

    Returns
    -------
    dict
        The manifest, including the rows written per table and the new data version.
    """

    if isinstance(world, DemoConfig):
        world = generate(world)
    cfg = world.config
    result = warehouse.replace_data(
        world.chunks(),
        url=url,
        meta={"demo_manifest": json.dumps(world.manifest)},
        action="demo_data.build",
        details={"seed": cfg.seed, "events": cfg.events, "effects": cfg.effects},
        progress=progress,
    )
    manifest = {**world.manifest, "rows": result.rows, "data_version": result.data_version}
    if manifest_path is not None:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_manifest(url: str | None = None) -> dict[str, Any] | None:
    """The manifest of the demo data currently in the warehouse, if it holds demo data."""

    text = warehouse.get_meta("demo_manifest", url)
    return json.loads(text) if text else None


__all__ = [
    "FEATURES",
    "MODELS",
    "DemoConfig",
    "DemoWorld",
    "build",
    "generate",
    "load_manifest",
    "models_frame",
]
