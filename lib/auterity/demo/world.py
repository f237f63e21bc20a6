"""The demo world's configuration, random streams, calendar and planted effects.

Random streams are independent per table and per month (``SeedSequence([seed, stream])``),
so chunked generation is deterministic and planting effects does not reshuffle the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from auterity._time import today_utc
from auterity.demo.catalogue import FEATURES, HOURLY, STREAM_EFFECTS
from auterity.errors import ConfigError


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


def stream_rng(seed: int, stream: int) -> np.random.Generator:
    """An independent random generator for one stream of one seed."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def make_ids(prefix: str, start: int, count: int, width: int = 9) -> np.ndarray:
    """Sequential string ids such as ``c000000042``."""
    numbers = np.arange(start, start + count).astype(f"U{width}")
    return np.char.add(prefix, np.char.zfill(numbers, width))


def weighted_choice(rng: np.random.Generator, weights: dict[str, float], size: int) -> np.ndarray:
    """Draw ``size`` keys of ``weights`` in proportion to their values."""
    keys = np.array(list(weights))
    p = np.array(list(weights.values()), dtype=float)
    return keys[rng.choice(len(keys), size=size, p=p / p.sum())]


def time_of_day(rng: np.random.Generator, size: int) -> np.ndarray:
    """Seconds into the day following the hourly traffic profile."""
    hours = rng.choice(24, size=size, p=HOURLY / HOURLY.sum())
    return hours * 3600 + rng.integers(0, 3600, size=size)


@dataclass
class Calendar:
    """Per-day arrays shared by all generators."""

    days: np.ndarray  # datetime64[D]
    weekday: np.ndarray
    yearly: np.ndarray
    holiday: np.ndarray  # multiplier, 1 on ordinary days

    @property
    def n(self) -> int:
        return len(self.days)


def build_calendar(cfg: DemoConfig) -> Calendar:
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
    return Calendar(days=days, weekday=weekday, yearly=yearly, holiday=holiday)


@dataclass
class Effects:
    """Per-day multipliers of the planted effects and their manifest entries."""

    conversion: np.ndarray
    latency: dict[str, np.ndarray]
    output_tokens: dict[str, np.ndarray]
    input_tokens: dict[str, np.ndarray]
    order_volume: np.ndarray
    order_amount: np.ndarray
    quality_override: dict[tuple[str, str], float]
    manifest: list[dict[str, Any]]


def plan_effects(cfg: DemoConfig, cal: Calendar) -> Effects:
    """Place the planted effects (or none) on the calendar."""
    n = cal.n
    ones = np.ones(n)
    effects = Effects(ones.copy(), {}, {}, {}, ones.copy(), ones.copy(), {}, [])
    if not cfg.effects:
        return effects
    rng = stream_rng(cfg.seed, STREAM_EFFECTS)
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
