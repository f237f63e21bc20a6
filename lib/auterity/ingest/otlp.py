"""OpenTelemetry GenAI spans -> ``inference_events`` and ``models`` rows.

An LLM application instrumented under the OpenTelemetry GenAI semantic conventions emits
one span per model call. :func:`parse_request` reads an OTLP ``ExportTraceServiceRequest``
in either encoding the OTLP/HTTP specification defines (binary protobuf, and OTLP/JSON:
hex trace and span ids, lowerCamelCase keys, enums as integers, 64-bit integers as
strings), with the ``opentelemetry-proto`` messages; :func:`spans_to_rows` maps its spans:

=====================  ================================================================
column                 from
=====================  ================================================================
``request_id``         ``<trace id hex>-<span id hex>`` (stable: a resent span upserts)
``ts``                 the span's start time (UTC)
``model_id``           ``gen_ai.response.model``, else ``gen_ai.request.model``
``latency_ms``         end time minus start time
``input_tokens``       ``gen_ai.usage.input_tokens`` (older: ``gen_ai.usage.prompt_tokens``)
``output_tokens``      ``gen_ai.usage.output_tokens`` (older: ``completion_tokens``)
``status``             ``timeout`` if ``error.type`` (or the status message) names a
                       timeout; ``error`` if the span status is ERROR or ``error.type``
                       is set; else ``ok``
``cost``               ``gen_ai.usage.cost`` when the instrumentation reports one, else
                       NULL (computed from the model's prices)
``feature``            the configured attribute (default the resource's ``service.name``)
``customer_id``        the configured attribute (default ``enduser.id``)
``quality``            the configured attribute (default ``gen_ai.evaluation.score.value``)
=====================  ================================================================

A model not yet in ``models`` gets a row (``provider`` from ``gen_ai.provider.name``, older
``gen_ai.system``) with its prices left NULL: ModelHub then shows its cost as unknown (NaN,
with a warning), never as $0, until someone sets the prices. Spans without any ``gen_ai.*``
attribute are counted and ignored. Attribute names come from the span first, then from
its resource. Token counts missing on a span count as 0 (failed calls often report none).

:func:`spans_to_rows` also pre-checks each row against the contract's rules (the warehouse
load checks them again, authoritatively, and quarantines what fails) so the receiver can
answer with partial-success counts before the batch is written.

The ``telemetry:`` section of ``parameters/sources.yml`` names the attributes
(:func:`read_telemetry_config`).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from auterity import config
from auterity._yaml import read_yaml
from auterity.errors import AuterityError, ConfigError
from auterity.ingest.validate import FUTURE_TOLERANCE
from auterity.warehouse import schema

SOURCES_FILE = "sources.yml"
"""The file under ``parameters/`` whose ``telemetry:`` section configures the mapping."""

PROTOBUF = "protobuf"
JSON = "json"

EVENT_COLUMNS = (
    "request_id",
    "ts",
    "model_id",
    "customer_id",
    "feature",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost",
    "status",
    "quality",
)
"""The ``inference_events`` columns a span fills (``feedback`` is not part of a span)."""

MODEL_COLUMNS = ("model_id", "name", "provider", "pricing_kind", "hosting")
"""The ``models`` columns a new model gets (prices stay NULL: unknown, not $0)."""

_TIMEOUT_WORDS = ("timeout", "timedout", "timed out", "deadline")


class MalformedPayload(AuterityError):
    """The request body is not an OTLP ExportTraceServiceRequest in the declared encoding."""


@dataclass(frozen=True)
class TelemetryConfig:
    """Which span or resource attributes fill the columns a GenAI span has no standard for.

    Attributes
    ----------
    feature_attribute : str
        Fills ``feature`` (the product feature or workflow); default ``service.name``.
    customer_attribute : str
        Fills ``customer_id``; default ``enduser.id``.
    quality_attribute : str
        Fills ``quality`` (a 0..1 evaluation score); default
        ``gen_ai.evaluation.score.value``.
    """

    feature_attribute: str = "service.name"
    customer_attribute: str = "enduser.id"
    quality_attribute: str = "gen_ai.evaluation.score.value"


def read_telemetry_config(path: Path | None = None) -> TelemetryConfig:
    """The ``telemetry:`` section of ``parameters/sources.yml`` (defaults when absent).

    Other top-level sections of the file (sources, tables) belong to other readers and
    are left alone.

    Parameters
    ----------
    path : Path, optional
        The YAML file; default ``parameters/sources.yml``.

    Returns
    -------
    TelemetryConfig

    Raises
    ------
    ConfigError
        The section is not a mapping, names an unknown key, or a value is not text.
    """
    path = path or config.parameters_dir() / SOURCES_FILE
    if not path.is_file():
        return TelemetryConfig()
    document = read_yaml(path) or {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top")
    section = document.get("telemetry") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: telemetry: expected a mapping of attribute names")
    known = TelemetryConfig.__dataclass_fields__
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ConfigError(
            f"{path}: telemetry: unknown key(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(known)}"
        )
    for key, value in section.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: telemetry: {key} must be an attribute name")
    return TelemetryConfig(**{k: v.strip() for k, v in section.items()})


# --------------------------------------------------------------------------- parsing


def _hex_to_b64(value: Any, where: str, size: int) -> str:
    """An OTLP/JSON hex id as the base64 protobuf's JSON mapping expects."""
    if not isinstance(value, str):
        raise MalformedPayload(f"{where}: expected a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise MalformedPayload(f"{where}: {value[:40]!r} is not hex") from None
    if raw and len(raw) != size:
        raise MalformedPayload(f"{where}: expected {size} bytes, got {len(raw)}")
    return base64.b64encode(raw).decode("ascii")


_ID_FIELDS = (("traceId", "trace_id", 16), ("spanId", "span_id", 8))


def _fix_ids(obj: dict[str, Any], where: str, parent: bool) -> None:
    """Rewrite a span's or link's hex ids in place (OTLP/JSON differs from proto3 JSON here)."""
    fields = [*_ID_FIELDS, ("parentSpanId", "parent_span_id", 8)] if parent else _ID_FIELDS
    for camel, snake, size in fields:
        for key in (camel, snake):
            if key in obj:
                obj[key] = _hex_to_b64(obj[key], f"{where}.{camel}", size)


def _otlp_json_to_proto_json(document: Any) -> Any:
    """Turn hex trace/span ids into base64 so :mod:`json_format` can parse the rest."""
    if not isinstance(document, dict):
        raise MalformedPayload("expected a JSON object (an ExportTraceServiceRequest)")
    for r, resource_spans in enumerate(_list(document, "resourceSpans", "resource_spans")):
        scopes = _list(resource_spans, "scopeSpans", "scope_spans")
        for s, scope_spans in enumerate(scopes):
            for n, span in enumerate(_list(scope_spans, "spans", "spans")):
                if not isinstance(span, dict):
                    raise MalformedPayload(f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]")
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                _fix_ids(span, where, parent=True)
                for k, link in enumerate(_list(span, "links", "links")):
                    if isinstance(link, dict):
                        _fix_ids(link, f"{where}.links[{k}]", parent=False)
    return document


def _list(obj: Any, camel: str, snake: str) -> list[Any]:
    """A repeated field of an OTLP/JSON object under either key spelling ([] if absent)."""
    if not isinstance(obj, dict):
        raise MalformedPayload(f"expected an object holding {camel!r}")
    value = obj.get(camel, obj.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{camel}: expected a list")
    return value


def parse_request(body: bytes, encoding: str) -> ExportTraceServiceRequest:
    """Parse an OTLP/HTTP trace export body.

    Parameters
    ----------
    body : bytes
        The (already decompressed) request body.
    encoding : str
        :data:`PROTOBUF` (``application/x-protobuf``) or :data:`JSON` (``application/json``).

    Returns
    -------
    ExportTraceServiceRequest

    Raises
    ------
    MalformedPayload
        The body is not a request in that encoding (one line saying what is wrong).
    """
    request = ExportTraceServiceRequest()
    if encoding == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise MalformedPayload(f"not an OTLP protobuf trace request: {exc}") from None
        return request
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"not JSON: {exc}") from None
    try:
        json_format.ParseDict(
            _otlp_json_to_proto_json(document), request, ignore_unknown_fields=True
        )
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedPayload(f"not an OTLP/JSON trace request: {_one_line(exc)}") from None
    return request


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# --------------------------------------------------------------------------- mapping


@dataclass
class Rows:
    """What :func:`spans_to_rows` made of a request.

    Attributes
    ----------
    events : list of tuple
        ``inference_events`` rows, one per GenAI span, in :data:`EVENT_COLUMNS` order
        (raw values: the warehouse load validates them and quarantines what fails).
    models : dict
        ``model_id -> (model_id, name, provider, 'per_token', 'api')`` of the models the
        spans name.
    spans : int
        Spans in the request.
    ignored : int
        Spans without ``gen_ai.*`` attributes (not model calls).
    rejected : int
        GenAI spans whose row breaks the data contract (they go to the quarantine).
    reasons : list of str
        The first few rejection reasons, for the response's error message.
    """

    events: list[tuple[Any, ...]] = field(default_factory=list)
    models: dict[str, tuple[str, ...]] = field(default_factory=dict)
    spans: int = 0
    ignored: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def events_frame(self) -> pd.DataFrame:
        """The events as a DataFrame with :data:`EVENT_COLUMNS`."""
        return pd.DataFrame.from_records(self.events, columns=list(EVENT_COLUMNS))

    def models_frame(self) -> pd.DataFrame:
        """The models as a DataFrame with :data:`MODEL_COLUMNS`."""
        return pd.DataFrame.from_records(list(self.models.values()), columns=list(MODEL_COLUMNS))


_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})

_READ = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.cost",
    "error.type",
)
"""The attributes :func:`_row` reads (besides the configured three)."""


def _attributes(key_values: Any, wanted: frozenset[str]) -> tuple[dict[str, Any], bool]:
    """The ``wanted`` attributes as Python scalars (arrays, maps and bytes as None: no
    column takes them), and whether any attribute is a ``gen_ai.*`` one.

    Only wanted values are converted: instrumentations put prompts and completions in
    attributes, kilobytes that no column takes. The hot loop of the receiver (protobuf
    field access is what costs), so written out flat.
    """
    out: dict[str, Any] = {}
    genai = False
    for kv in key_values:
        key = kv.key
        if key in wanted:
            value = kv.value
            kind = value.WhichOneof("value")
            out[key] = getattr(value, kind) if kind in _SCALARS else None
        if not genai and key.startswith("gen_ai."):
            genai = True
    return out, genai


def _number(value: Any) -> Any:
    """A token count or score as a number when it is one; text stays text (the check says)."""
    if type(value) is int or type(value) is float:
        return value
    if isinstance(value, bool) or value is None:
        return None if value is None else int(value)
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _lengths(table: Any) -> dict[str, int]:
    """The text columns of a table and their lengths."""
    return {c.name: c.type.length for c in table.columns if getattr(c.type, "length", None)}


_LIMITS = _lengths(schema.inference_events)
_MODEL_LIMITS = _lengths(schema.models)


def _problem(row: tuple[Any, ...], provider: str, limit_ts: datetime) -> str | None:
    """Why a row would be quarantined by the contract's checks (None if it passes)."""
    _request_id, ts, model_id, customer, feature, latency, tokens_in, tokens_out = row[:8]
    cost, _status, quality = row[8:]
    if not model_id:
        return "no gen_ai.response.model or gen_ai.request.model"
    for name, value in (("model_id", model_id), ("customer_id", customer), ("feature", feature)):
        if value is not None and len(str(value)) > _LIMITS[name]:
            return f"{name} longer than {_LIMITS[name]} characters"
    if len(provider) > _MODEL_LIMITS["provider"]:
        return f"provider longer than {_MODEL_LIMITS['provider']} characters"
    if ts is None or ts.year < 1900:
        return "start time not set or not a usable time"
    if ts > limit_ts:
        return "start time in the future"
    if latency < 0:
        return "end time before start time"
    for name, value in (("input_tokens", tokens_in), ("output_tokens", tokens_out)):
        if not isinstance(value, int | float) or value != value:
            return f"{name} not a number"
        if value < 0 or value % 1 or abs(value) > 2**31 - 1:
            return f"{name} not a non-negative whole number"
    if cost is not None and (
        not isinstance(cost, int | float) or not math.isfinite(cost) or cost < 0
    ):
        return "cost not a non-negative number"
    if quality is not None and (
        not isinstance(quality, int | float) or not 0 <= quality <= 1 or quality != quality
    ):
        return "quality not between 0 and 1"
    return None


def spans_to_rows(
    request: ExportTraceServiceRequest,
    telemetry: TelemetryConfig | None = None,
    *,
    now: datetime | None = None,
) -> Rows:
    """Map the GenAI spans of a request to warehouse rows (see the module docstring).

    Parameters
    ----------
    request : ExportTraceServiceRequest
        A parsed request (:func:`parse_request`).
    telemetry : TelemetryConfig, optional
        Attribute names of feature, customer and quality; default :class:`TelemetryConfig`.
    now : datetime, optional
        Naive UTC now, for the future-timestamp pre-check.

    Returns
    -------
    Rows
        Events, models and the counts: ``spans == ignored + len(events)``, and
        ``rejected`` of the events are expected to land in the quarantine.
    """
    cfg = telemetry or TelemetryConfig()
    out = Rows()
    limit_ts = (now or datetime.now(UTC).replace(tzinfo=None)) + FUTURE_TOLERANCE
    epoch = datetime(1970, 1, 1)
    wanted = frozenset(
        {*_READ, cfg.feature_attribute, cfg.customer_attribute, cfg.quality_attribute}
    )
    for resource_spans in request.resource_spans:
        resource, _ = _attributes(resource_spans.resource.attributes, wanted)
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            out.spans += len(spans)
            for span in spans:
                attrs, genai = _attributes(span.attributes, wanted)
                if not genai:
                    out.ignored += 1
                    continue
                merged = {**resource, **attrs} if resource else attrs
                row, provider = _row(span, merged, cfg, epoch)
                problem = _problem(row, provider, limit_ts)
                if problem:
                    out.rejected += 1
                    if len(out.reasons) < 5:
                        out.reasons.append(f"span {row[0]}: {problem}")
                out.events.append(row)
                model_id = row[2]
                if model_id and model_id not in out.models:
                    out.models[model_id] = (model_id, model_id, provider, "per_token", "api")
    return out


def _text(value: Any) -> str | None:
    """An attribute as text (None stays None)."""
    return None if value is None else str(value)


def _row(
    span: Any, attrs: dict[str, Any], cfg: TelemetryConfig, epoch: datetime
) -> tuple[tuple[Any, ...], str]:
    """One span's ``inference_events`` row and its model's provider."""
    request_id = f"{span.trace_id.hex()}-{span.span_id.hex()}"
    start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
    try:
        ts: datetime | None = epoch + timedelta(microseconds=start_ns // 1000)
    except OverflowError:  # past year 9999: not a time the warehouse can hold
        ts = None
    latency_ms = (end_ns - start_ns) / 1e6
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    provider = _text(attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")) or "unknown"
    tokens_in = attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens"))
    tokens_out = attrs.get(
        "gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens")
    )
    error_type = _text(attrs.get("error.type"))
    span_status = span.status
    failed = span_status.code == Status.STATUS_CODE_ERROR or bool(error_type)
    status = "ok"
    if failed:
        said = f"{error_type or ''} {span_status.message}".lower().replace("_", " ")
        status = "timeout" if any(w in said for w in _TIMEOUT_WORDS) else "error"
    cost = attrs.get("gen_ai.usage.cost")
    row = (
        request_id,
        ts,
        _text(model) or None,
        _text(attrs.get(cfg.customer_attribute)),
        _text(attrs.get(cfg.feature_attribute)),
        latency_ms,
        0 if tokens_in is None else _number(tokens_in),
        0 if tokens_out is None else _number(tokens_out),
        None if cost is None else _number(cost),
        status,
        None if attrs.get(cfg.quality_attribute) is None else _number(attrs[cfg.quality_attribute]),
    )
    return row, provider
