"""Live demo traffic: synthetic GenAI spans sent through the real OpenTelemetry exporter.

``auterity demo-traffic`` makes the real-time dashboard move next to ``auterity collect``.
It behaves like an instrumented application would: one ``TracerProvider`` per demo feature
(the feature is the resource's ``service.name``, the receiver's default mapping), a
``BatchSpanProcessor`` and the ``opentelemetry-exporter-otlp-proto-http`` exporter, and one
CLIENT span per model call with the GenAI semantic-convention attributes: models, token
counts, latencies, errors and timeouts drawn from the demo catalogue, customers from the
demo world's ids.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from auterity.demo.catalogue import FEATURES, MODELS

DEFAULT_ENDPOINT = "http://127.0.0.1:4318/v1/traces"

_MODELS = {m.model_id: m for m in MODELS}


def _providers(endpoint: str) -> dict[str, TracerProvider]:
    """One provider, processor and exporter per demo feature."""
    providers = {}
    for feature in FEATURES:
        provider = TracerProvider(resource=Resource.create({"service.name": feature}))
        exporter = OTLPSpanExporter(endpoint=endpoint, timeout=10)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        providers[feature] = provider
    return providers


def emit_span(provider: TracerProvider, feature: str, rng: random.Random) -> None:
    """One model call of ``feature`` as a GenAI span that ended just now."""
    spec = FEATURES[feature]
    model_id = rng.choices(list(spec.models), weights=list(spec.models.values()))[0]
    model = _MODELS[model_id]
    tokens_in = max(1, int(rng.lognormvariate(0, 0.5) * spec.input_tokens_median))
    typical_out = spec.output_tokens_median * model.verbosity
    tokens_out = max(1, int(rng.lognormvariate(0, 0.5) * typical_out))
    latency_ms = (model.base_latency_ms + model.ms_per_output_token * tokens_out) * rng.uniform(
        0.7, 1.4
    )
    outcome = rng.random()
    end_ns = time.time_ns()
    tracer = provider.get_tracer("auterity.demo.traffic")
    span = tracer.start_span(
        f"chat {model_id}",
        kind=SpanKind.CLIENT,
        start_time=end_ns - int(latency_ms * 1e6),
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": model.provider,
            "gen_ai.request.model": model_id,
            "gen_ai.response.model": model_id,
            "gen_ai.usage.input_tokens": tokens_in,
            "gen_ai.usage.output_tokens": tokens_out,
            "enduser.id": f"c{rng.randrange(0, 2000):09d}",
            "gen_ai.evaluation.score.value": round(
                min(1.0, max(0.0, rng.gauss(spec.quality[model_id], 0.08))), 3
            ),
        },
    )
    if outcome < model.timeout_rate * 5:
        span.set_attribute("error.type", "timeout")
        span.set_status(Status(StatusCode.ERROR, "request timed out"))
    elif outcome < (model.timeout_rate + model.error_rate) * 5:
        span.set_attribute("error.type", "500")
        span.set_status(Status(StatusCode.ERROR, "server error"))
    span.end(end_time=end_ns)


def send(
    endpoint: str = DEFAULT_ENDPOINT,
    rate: float = 20.0,
    duration_s: float = 0.0,
    *,
    seed: int | None = None,
    stop: threading.Event | None = None,
    on_tick: Callable[[int], None] | None = None,
) -> int:
    """Send GenAI spans at ``rate`` per second until ``duration_s`` passes or ``stop`` is set.

    Parameters
    ----------
    endpoint : str
        The OTLP/HTTP traces endpoint (``.../v1/traces``).
    rate : float
        Spans per second (over all features, in proportion to their demo shares).
    duration_s : float
        How long to send; 0 means until ``stop`` is set (or Ctrl-C).
    seed : int, optional
        Random seed, for reproducible traffic.
    stop : threading.Event, optional
        Ends sending early.
    on_tick : callable, optional
        Called with the number of spans made so far, about once a second.

    Returns
    -------
    int
        Spans made (the exporters are flushed and shut down before returning).
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    rng = random.Random(seed)
    providers = _providers(endpoint)
    features = list(FEATURES)
    shares = [FEATURES[f].share for f in features]
    stop = stop or threading.Event()
    start = time.monotonic()
    made = 0
    last_tick = start
    try:
        while not stop.is_set():
            now = time.monotonic()
            elapsed = min(now - start, duration_s) if duration_s else now - start
            # spans due by now; with a duration, exactly rate x duration in all (a slow
            # last wait must not cut the count short)
            due = (
                round(duration_s * rate)
                if duration_s and elapsed >= duration_s
                else (int(elapsed * rate) + 1)
            )
            while made < due:
                feature = rng.choices(features, weights=shares)[0]
                emit_span(providers[feature], feature, rng)
                made += 1
            if on_tick is not None and now - last_tick >= 1.0:
                on_tick(made)
                last_tick = now
            if duration_s and elapsed >= duration_s:
                break
            stop.wait(min(0.05, 1.0 / rate))
    finally:
        for provider in providers.values():
            provider.shutdown()
    return made
