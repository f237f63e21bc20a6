"""The OTLP receiver under a bounded loopback load: spans per minute, ack latency, memory, loss.

Starts ``auterity collect`` on a fresh DuckDB warehouse and spool, then runs several senders
(threads with keep-alive HTTP connections) that each post ``ExportTraceServiceRequest``
bodies of 512 GenAI spans (the SDK's default batch size) one after another for the given
duration, recording every acknowledgement's latency. Each request has its own trace id, so
every span is a new row. Afterwards it waits until the receiver has written everything and
counts the rows: the number in the warehouse must equal the number of acknowledged spans
(zero loss, each once). The receiver's resident memory is sampled throughout.

Figures: spans acknowledged per minute while sending, spans landed per minute including the
final drain, p50/p99 acknowledgement latency, peak RSS (the receiver and its decode workers).
Goal (issue 14): >= 1M spans/min.

Prints a table and writes benchmarks/results/receiver.json.
Run: ``.venv/bin/python benchmarks/bench_receiver.py [--duration 120] [--senders 4]
[--decode-workers N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

OUT = Path(__file__).resolve().parent / "results" / "receiver.json"
GOAL_PER_MIN = 1_000_000
BATCH = 512
MARKER = b"\xab\xcd" * 8  # the template's trace id, replaced per request
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "gemini-1.5-flash")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def template() -> bytes:
    """A request of BATCH GenAI spans with the trace id MARKER, started a minute ago."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "chat_assistant"
    scope = rs.scope_spans.add()
    start = time.time_ns() - 60 * 10**9
    for n in range(BATCH):
        span = scope.spans.add()
        span.trace_id, span.span_id = MARKER, (n + 1).to_bytes(8, "big")
        span.name = "chat"
        span.start_time_unix_nano = start + n * 1000
        span.end_time_unix_nano = span.start_time_unix_nano + (200 + n % 700) * 10**6
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": MODELS[n % len(MODELS)],
            "gen_ai.usage.input_tokens": 100 + n,
            "gen_ai.usage.output_tokens": 20 + n % 50,
            "enduser.id": f"c{n % 300:09d}",
        }
        for key, value in attrs.items():
            a = span.attributes.add()
            a.key = key
            if isinstance(value, int):
                a.value.int_value = value
            else:
                a.value.string_value = value
    return request.SerializeToString()


class Sender(threading.Thread):
    """Posts requests back to back on one keep-alive connection until told to stop."""

    def __init__(self, number: int, port: int, body: bytes, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.number, self.port, self.body, self.stop = number, port, body, stop
        self.latencies: list[float] = []
        self.acked = 0
        self.refused: dict[int, int] = {}

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sequence = 0
        while not self.stop.is_set():
            sequence += 1
            trace = self.number.to_bytes(4, "big") + sequence.to_bytes(12, "big")
            body = self.body.replace(MARKER, trace)
            started = time.perf_counter()
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                self.latencies.append(time.perf_counter() - started)
                self.acked += BATCH
            else:
                self.refused[response.status] = self.refused.get(response.status, 0) + 1
                time.sleep(float(response.getheader("Retry-After") or 1))
        conn.close()


def _health(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    state = json.loads(conn.getresponse().read())
    conn.close()
    return state


def _rss(proc: psutil.Process) -> int:
    """Resident memory of the receiver and its decode workers."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a worker that just went away
            total += child.memory_info().rss
    return total


def run(duration_s: float, senders: int, decode_workers: int | None = None) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-receiver-"))
    db = root / "warehouse.duckdb"
    port = _port()
    env = {**os.environ, "AUTERITY_DB_URL": f"duckdb:///{db}"}
    env.pop("AUTERITY_CACHE_URL", None)
    cli = "import sys; from auterity.cli import main; sys.exit(main())"
    log = (root / "collect.log").open("wb")
    args = ["collect", "--port", str(port), "--spool", str(root / "s")]
    if decode_workers is not None:
        args += ["--decode-workers", str(decode_workers)]
    process = subprocess.Popen(
        [sys.executable, "-c", cli, *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            _health(port)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit((root / "collect.log").read_text()) from None
            time.sleep(0.1)
    proc = psutil.Process(process.pid)
    body = template()
    stop = threading.Event()
    threads = [Sender(n, port, body, stop) for n in range(senders)]
    peak_rss = 0
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while time.perf_counter() - started < duration_s:
        peak_rss = max(peak_rss, _rss(proc))
        time.sleep(0.25)
    stop.set()
    for thread in threads:
        thread.join()
    sending_s = time.perf_counter() - started
    acked = sum(t.acked for t in threads)
    while True:
        state = _health(port)
        peak_rss = max(peak_rss, _rss(proc))
        if state["queued_spans"] == 0 and state["spool_pending_requests"] == 0:
            break
        time.sleep(0.1)
    landed_s = time.perf_counter() - started
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)
    engine = sa.create_engine(f"duckdb:///{db}", connect_args={"read_only": True})
    with engine.connect() as conn:
        rows, distinct = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT request_id) FROM inference_events")
        ).one()
    engine.dispose()
    latencies = sorted(x for t in threads for x in t.latencies)
    refused: dict[str, int] = {}
    for t in threads:
        for status, count in t.refused.items():
            refused[str(status)] = refused.get(str(status), 0) + count
    return {
        "duration_s": round(sending_s, 1),
        "senders": senders,
        "decode_workers": decode_workers,
        "batch_spans": BATCH,
        "acked_spans": acked,
        "rows_in_warehouse": int(rows),
        "distinct_request_ids": int(distinct),
        "zero_loss": int(rows) == acked == int(distinct),
        "acked_per_min": round(acked / sending_s * 60),
        "landed_per_min": round(acked / landed_s * 60),
        "ack_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "ack_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
        if latencies
        else None,
        "refused": refused,
        "receiver_peak_rss_mb": round(peak_rss / 2**20),
        "flushes": state.get("flushes"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--senders", type=int, default=4, help="concurrent senders")
    parser.add_argument(
        "--decode-workers", type=int, help="the receiver's --decode-workers (default: its own)"
    )
    args = parser.parse_args()
    result = run(args.duration, args.senders, args.decode_workers)
    result["goal_per_min"] = GOAL_PER_MIN
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
