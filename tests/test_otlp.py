"""OTLP requests -> rows (auterity.ingest.otlp) and the receiver's spool, without a server."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from auterity.errors import ConfigError
from auterity.ingest import otlp
from auterity.ingest.spool import Spool, read_segment

NOW = datetime(2026, 11, 1, 12, 0)
START_NS = int((NOW - datetime(1970, 1, 1)).total_seconds() * 1e9) - 60_000_000_000


def span_request(
    spans: list[dict], resource: dict | None = None, trace: bytes = b"\x01" * 16
) -> ExportTraceServiceRequest:
    """A request with one resource and the given spans (attrs, duration, status...)."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for key, value in (resource or {"service.name": "chat"}).items():
        set_value(rs.resource.attributes.add(), key, value)
    scope = rs.scope_spans.add()
    for n, spec in enumerate(spans):
        span = scope.spans.add()
        span.trace_id = trace
        span.span_id = spec.get("span_id", (n + 1).to_bytes(8, "big"))
        span.name = "chat"
        span.start_time_unix_nano = spec.get("start", START_NS + n * 1000)
        end = span.start_time_unix_nano + spec.get("duration_ms", 250) * 10**6
        span.end_time_unix_nano = min(max(0, end), 2**64 - 1)
        span.status.code = spec.get("status", 0)
        span.status.message = spec.get("message", "")
        for key, value in spec.get("attrs", {}).items():
            set_value(span.attributes.add(), key, value)
    return request


def set_value(kv, key: str, value) -> None:
    """Set a KeyValue from a Python value."""
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """The OTLP/JSON encoding of a request (hex ids, camelCase, int64 as strings)."""
    document = json_format.MessageToDict(request)
    for rs in document.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


GENAI = {
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 20,
}


def test_span_maps_to_an_inference_event_and_a_model() -> None:
    request = span_request(
        [
            {
                "attrs": {
                    **GENAI,
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "enduser.id": "c000000001",
                    "gen_ai.evaluation.score.value": 0.75,
                    "gen_ai.usage.cost": 0.0012,
                },
                "duration_ms": 340,
            }
        ],
        resource={"service.name": "chat_assistant"},
    )
    rows = otlp.spans_to_rows(request, now=NOW)
    assert (rows.spans, rows.ignored, rows.rejected) == (1, 0, 0)
    event = dict(zip(otlp.EVENT_COLUMNS, rows.events[0], strict=True))
    assert event["request_id"] == "01" * 16 + "-" + "0000000000000001"
    assert event["model_id"] == "gpt-4o-2024-08-06"  # the response model wins
    assert event["feature"] == "chat_assistant"  # service.name from the resource
    assert event["customer_id"] == "c000000001"
    assert event["latency_ms"] == pytest.approx(340.0)
    assert (event["input_tokens"], event["output_tokens"]) == (100, 20)
    assert event["status"] == "ok" and event["quality"] == 0.75 and event["cost"] == 0.0012
    assert event["ts"] == datetime(1970, 1, 1) + (NOW - datetime(1970, 1, 1)) - (
        datetime(2026, 11, 1, 12, 1) - datetime(2026, 11, 1, 12, 0)
    )
    model = "gpt-4o-2024-08-06"
    assert rows.models == {model: (model, model, "openai", "per_token", "api")}


def test_older_attribute_names_status_and_timeouts() -> None:
    old = {
        "gen_ai.request.model": "claude",
        "gen_ai.system": "anthropic",
        "gen_ai.usage.prompt_tokens": 7,
        "gen_ai.usage.completion_tokens": 3,
    }
    request = span_request(
        [
            {"attrs": old},
            {"attrs": {**old, "error.type": "timeout"}, "status": 2},
            {"attrs": {**old, "error.type": "openai.APITimeoutError"}},
            {"attrs": old, "status": 2, "message": "DEADLINE_EXCEEDED"},
            {"attrs": {**old, "error.type": "500"}, "status": 2},
            {"attrs": {"gen_ai.request.model": "x"}},  # no usage: 0 tokens, provider unknown
        ]
    )
    rows = otlp.spans_to_rows(request, now=NOW)
    statuses = [r[9] for r in rows.events]
    assert statuses == ["ok", "timeout", "timeout", "timeout", "error", "ok"]
    assert rows.events[0][6:8] == (7, 3)
    assert rows.events[5][6:8] == (0, 0)
    assert rows.models["claude"][2] == "anthropic" and rows.models["x"][2] == "unknown"


def test_configured_attributes_and_non_genai_spans() -> None:
    cfg = otlp.TelemetryConfig(
        feature_attribute="app.feature", customer_attribute="tenant", quality_attribute="score"
    )
    request = span_request(
        [
            {"attrs": {**GENAI, "app.feature": "search", "tenant": "t1", "score": 1}},
            {"attrs": {"http.method": "GET"}},  # not a model call
            {"attrs": {}},
        ],
        resource={"service.name": "api", "tenant": "from-resource"},
    )
    rows = otlp.spans_to_rows(request, cfg, now=NOW)
    assert (rows.spans, rows.ignored, len(rows.events)) == (3, 2, 1)
    event = dict(zip(otlp.EVENT_COLUMNS, rows.events[0], strict=True))
    assert (event["feature"], event["customer_id"], event["quality"]) == ("search", "t1", 1)


def test_contract_breaking_spans_are_counted_as_rejected() -> None:
    request = span_request(
        [
            {"attrs": {**GENAI, "gen_ai.usage.input_tokens": -5}},
            {"attrs": {**GENAI, "gen_ai.evaluation.score.value": 3.0}},
            {"attrs": {"gen_ai.operation.name": "chat"}},  # no model
            {"attrs": GENAI, "start": START_NS + 3600 * 10**9},  # an hour in the future
            {"attrs": GENAI},
        ]
    )
    rows = otlp.spans_to_rows(request, now=NOW)
    assert rows.rejected == 4 and len(rows.events) == 5  # rejected rows still go to the load
    assert any("input_tokens" in r for r in rows.reasons)
    assert any("future" in r for r in rows.reasons)


def test_json_encoding_parses_to_the_same_request() -> None:
    request = span_request([{"attrs": GENAI}, {"attrs": {"x": 1.5, "y": True}}])
    assert otlp.parse_request(otlp_json(request), otlp.JSON) == request
    assert otlp.parse_request(request.SerializeToString(), otlp.PROTOBUF) == request
    # enums as integers and snake_case keys are accepted too; unknown fields ignored
    body = json.loads(otlp_json(request))
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["status"] = {"code": 2}
    body["somethingNew"] = 1
    parsed = otlp.parse_request(json.dumps(body).encode(), otlp.JSON)
    assert parsed.resource_spans[0].scope_spans[0].spans[0].status.code == 2


@pytest.mark.parametrize(
    ("body", "encoding", "says"),
    [
        (b"\x0a\xff\xff\xff\x0f", otlp.PROTOBUF, "protobuf"),
        (b"{not json", otlp.JSON, "not JSON"),
        (b"[]", otlp.JSON, "JSON object"),
        (
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}',
            otlp.JSON,
            "not hex",
        ),
        (
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"00"}]}]}]}',
            otlp.JSON,
            "8 bytes",
        ),
        (b'{"resourceSpans":{"a":1}}', otlp.JSON, "list"),
        (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}', otlp.JSON, "OTLP/JSON"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body: bytes, encoding: str, says: str) -> None:
    with pytest.raises(otlp.MalformedPayload, match=says):
        otlp.parse_request(body, encoding)


def test_telemetry_section_of_sources_yml(tmp_path: Path) -> None:
    path = tmp_path / "sources.yml"
    assert otlp.read_telemetry_config(path) == otlp.TelemetryConfig()  # no file: defaults
    path.write_text(
        "telemetry:\n  customer_attribute: user.id\n"
        "tables:\n  tickets: {columns: {id: text}}\n"  # other sections are not ours
    )
    assert otlp.read_telemetry_config(path) == otlp.TelemetryConfig(customer_attribute="user.id")
    path.write_text("telemetry:\n  customer: user.id\n")
    with pytest.raises(ConfigError, match=r"unknown key.*customer"):
        otlp.read_telemetry_config(path)
    path.write_text("telemetry:\n  feature_attribute: 5\n")
    with pytest.raises(ConfigError, match="feature_attribute must be an attribute name"):
        otlp.read_telemetry_config(path)
    # the committed file parses, and keeps the defaults
    assert otlp.read_telemetry_config() == otlp.TelemetryConfig()


# --------------------------------------------------------------------------- spool


def test_spool_keeps_records_until_done_and_replays_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_age_s=60)
    segments = [spool.append(f"request {n}".encode()).result(timeout=5) for n in range(3)]
    spool.done(Counter(segments[:1]))
    spool.close()  # a crash would leave the same files: they were fsynced before the result
    again = Spool(tmp_path)
    replayed = list(again.leftovers())
    assert [body for _, body in replayed] == [b"request 0", b"request 1", b"request 2"]
    assert again.pending() == 3
    again.done(Counter(seg for seg, _ in replayed))
    assert list(tmp_path.glob("segment-*")) == []
    again.close()


def test_spool_skips_a_torn_last_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_age_s=60)
    spool.append(b"complete").result(timeout=5)
    spool.close()
    (segment,) = tmp_path.glob("segment-*")
    with segment.open("ab") as f:
        f.write(b"OTS1\x00\x00\x10\x00")  # a header cut short by a crash
    assert list(read_segment(segment)) == [b"complete"]


def test_spool_refuses_an_unusable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"spool directory .* is not usable"):
        Spool(blocker / "spool")


def test_spool_deletes_segments_once_closed_and_done(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_age_s=0.05)
    first = spool.append(b"a").result(timeout=5)
    spool.done(Counter([first]))
    time.sleep(0.3)  # the first segment is rolled by age, and deleted: all of it is done
    assert not any(tmp_path.glob(f"segment-{first:012d}.otlp"))
    second = spool.append(b"b").result(timeout=5)
    assert second != first
    spool.done(Counter([second]))
    spool.close()
    assert list(tmp_path.glob("segment-*")) == []


# --------------------------------------------------------------------------- properties

attribute_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.booleans(),
)
attribute_keys = st.sampled_from(
    [
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.provider.name",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.cost",
        "gen_ai.evaluation.score.value",
        "error.type",
        "enduser.id",
        "service.name",
        "other",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spans=st.lists(
        st.fixed_dictionaries(
            {
                "attrs": st.dictionaries(attribute_keys, attribute_values, max_size=8),
                "start": st.integers(min_value=0, max_value=2**64 - 1),
                "duration_ms": st.integers(min_value=-1000, max_value=10**6),
                "status": st.sampled_from([0, 1, 2]),
            }
        ),
        max_size=6,
    )
)
def test_any_attribute_values_are_accounted_for(spans: list[dict]) -> None:
    for spec in spans:
        spec["start"] = min(spec["start"], 2**64 - 1 - 10**15)
    rows = otlp.spans_to_rows(span_request(spans), now=NOW)
    assert rows.spans == len(spans) == rows.ignored + len(rows.events)
    assert 0 <= rows.rejected <= len(rows.events)
    again = otlp.parse_request(otlp_json(span_request(spans)), otlp.JSON)  # (NaN != NaN)
    assert otlp.spans_to_rows(again, now=NOW).events == rows.events or any(
        isinstance(v, float) and v != v for spec in spans for v in spec["attrs"].values()
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([otlp.PROTOBUF, otlp.JSON]))
def test_garbage_bodies_parse_or_are_malformed(body: bytes, encoding: str) -> None:
    try:
        request = otlp.parse_request(body, encoding)
    except otlp.MalformedPayload:
        return
    rows = otlp.spans_to_rows(request, now=NOW)
    assert rows.spans == rows.ignored + len(rows.events)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=200))
def test_truncated_protobuf_is_malformed_or_fewer_spans(cut: int) -> None:
    body = span_request([{"attrs": GENAI}] * 5).SerializeToString()
    try:
        request = otlp.parse_request(body[: max(0, len(body) - cut)], otlp.PROTOBUF)
    except otlp.MalformedPayload:
        return
    assert otlp.spans_to_rows(request, now=NOW).spans <= 5
