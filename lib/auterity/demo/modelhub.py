"""The demo world's model traffic: the models table and inference events per chunk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from auterity.demo.business import BusinessWorld, to_ts
from auterity.demo.catalogue import (
    FEATURES,
    MODEL_INDEX,
    MODELS,
    STREAM_AI_DAYS,
    STREAM_AI_MONTH,
    TIMEOUT_MS,
    WEEKLY_AI,
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


def events_per_day(cfg: DemoConfig, cal: Calendar, biz: BusinessWorld) -> np.ndarray:
    """Inference requests per day: follows the customer base, weekdays and holidays."""
    rng = stream_rng(cfg.seed, STREAM_AI_DAYS)
    base = np.maximum(biz.customers_before_day, 1) ** 0.85
    intensity = base * WEEKLY_AI[cal.weekday] * np.sqrt(cal.holiday) * rng.lognormal(0, 0.04, cal.n)
    return rng.multinomial(cfg.events, intensity / intensity.sum())


def inference_chunk(
    cfg: DemoConfig,
    cal: Calendar,
    fx: Effects,
    biz: BusinessWorld,
    day_counts: np.ndarray,
    days: np.ndarray,
    chunk_no: int,
    first_id: int,
) -> pd.DataFrame:
    """Inference events for the given days (one month), from that month's own stream."""
    rng = stream_rng(cfg.seed, STREAM_AI_MONTH + chunk_no)
    counts = day_counts[days]
    size = int(counts.sum())
    day = np.repeat(days, counts)
    ts = to_ts(cal, day, time_of_day(rng, size))

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
        chosen = weighted_choice(rng, spec.models, int(mask.sum()))
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
            "request_id": make_ids("r", first_id, size, 10),
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
    frame["request_id"] = make_ids("r", first_id, size, 10)
    return frame
