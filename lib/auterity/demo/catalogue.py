"""The demo world's catalogue: models, features, markets, plans, and the shape of traffic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SECONDS_PER_DAY = 86_400


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
STREAM_EFFECTS, STREAM_FUNNEL, STREAM_ORDERS, STREAM_AI_DAYS = 1, 2, 3, 4
STREAM_AI_MONTH = 1000
