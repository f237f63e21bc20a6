"""``auterity collect``: an OTLP/HTTP receiver that lands GenAI spans in the warehouse.

``POST /v1/traces`` takes an ``ExportTraceServiceRequest`` as ``application/x-protobuf`` or
``application/json`` (OTLP/JSON), optionally ``Content-Encoding: gzip``, and answers as the
OTLP/HTTP specification says:

* **200** with an ``ExportTraceServiceResponse`` in the request's encoding once the spans
  are durable; when some spans break the data contract (they go to the quarantine), its
  ``partial_success`` holds ``rejected_spans`` and an ``error_message`` naming the first
  reasons (a partial success is not retried);
* **400** for a body that is not such a request (truncated protobuf, bad JSON, bad ids),
  **413** for a body over the size limit (compressed or not), **415** for another content
  type or encoding: a ``google.rpc.Status`` body, not retryable;
* **429** when more spans wait for the warehouse than the queue holds, **503** while the
  warehouse is failing and a backlog builds up: both with ``Retry-After``, which OTLP
  exporters honour by retrying later (the load is shed, nothing acknowledged is lost).

Durability: a 200 means the request is in the fsynced spool (:mod:`auterity.ingest.spool`,
group-committed, so concurrent senders share an ``fsync``). A flush thread groups the
spooled requests into one warehouse transaction every :attr:`ReceiverConfig.flush_interval_s`
or :attr:`ReceiverConfig.flush_spans` spans (``load_many``: validation, quarantine, upsert
by request id, data version, audit row), marks them done in the spool, and publishes a
data-landed notification (:mod:`auterity.warehouse.notify`). A restart replays what the
spool still holds; rows upsert by request id, so nothing lands twice.

Decoding and mapping (protobuf parsing, the span -> row mapping: the receiver's CPU cost)
run in :attr:`ReceiverConfig.decode_workers` worker processes, so the event loop only
reads bodies, appends to the spool and answers, and the mapping runs beside the flush
thread's load instead of sharing one interpreter lock with it.

``GET /healthz`` answers the receiver's counters as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from auterity import config, warehouse
from auterity.errors import AuterityError, ConfigError
from auterity.ingest.load import Batch, load_many
from auterity.ingest.otlp import (
    JSON,
    PROTOBUF,
    MalformedPayload,
    Rows,
    TelemetryConfig,
    parse_request,
    read_telemetry_config,
    spans_to_rows,
)
from auterity.ingest.spool import Spool
from auterity.redact import mask_secrets

log = logging.getLogger("auterity.ingest.receiver")

SOURCE = "otlp"
"""The source name of the rows the receiver writes (audit rows, quarantine)."""

SUMMARY_EVERY_S = 30.0
"""How often the receiver logs its counters while data lands."""

CONTENT_TYPES = {"application/x-protobuf": PROTOBUF, "application/json": JSON}


def default_spool_dir() -> Path:
    """Where the spool lives unless ``--spool`` says otherwise: ``data/spool/otlp``."""
    return config.data_dir() / "spool" / "otlp"


@dataclass(frozen=True)
class ReceiverConfig:
    """How ``auterity collect`` runs.

    Attributes
    ----------
    host, port
        Where to listen (default 127.0.0.1:4318, the OTLP/HTTP port).
    spool_dir
        The spool directory; default :func:`default_spool_dir`.
    max_body
        Largest request body in bytes, compressed and decompressed (413 above it).
    flush_interval_s
        Longest time an acknowledged span waits before its flush starts.
    flush_spans
        A flush starts at once when this many spans wait.
    max_queue_spans
        Spans that may wait for the warehouse before requests get 429.
    url
        The warehouse; default from the settings.
    telemetry
        Attribute names; default the ``telemetry:`` section of ``parameters/sources.yml``.
    decode_workers
        Worker processes that parse and map request bodies; 0 does it on the event loop.
    """

    host: str = "127.0.0.1"
    port: int = 4318
    spool_dir: Path | None = None
    max_body: int = 16 << 20
    flush_interval_s: float = 0.5
    flush_spans: int = 20_000
    max_queue_spans: int = 400_000
    url: str | None = None
    telemetry: TelemetryConfig | None = None
    decode_workers: int = 2


# --------------------------------------------------------------------------- decode workers

_worker_telemetry = TelemetryConfig()


def _watch_parent(parent: int) -> None:
    """End this worker when the receiver is gone (even SIGKILLed: no orphans left)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _worker_init(telemetry: TelemetryConfig, parent: int) -> None:
    """A decode worker: its receiver handles Ctrl-C/SIGTERM and shuts the pool down."""
    global _worker_telemetry
    _worker_telemetry = telemetry
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _decode_job(body: bytes, encoding: str) -> tuple[Rows, bytes | None]:
    """In a worker: the rows of a request and, for OTLP/JSON, the protobuf to spool."""
    request = parse_request(body, encoding)
    rows = spans_to_rows(request, _worker_telemetry)
    return rows, None if encoding == PROTOBUF else request.SerializeToString()


def _ready_job() -> int:
    return os.getpid()


@dataclass
class _Item:
    """Acknowledged spans waiting for the warehouse."""

    segment: int
    rows: Rows
    received: float = field(default_factory=time.monotonic)


class Collector:
    """The receiver's core: spool, queue and flush thread (the HTTP layer sits on top).

    Parameters
    ----------
    cfg : ReceiverConfig
        Settings.
    """

    def __init__(self, cfg: ReceiverConfig) -> None:
        self.cfg = cfg
        self.telemetry = cfg.telemetry or read_telemetry_config()
        self.spool = Spool(cfg.spool_dir or default_spool_dir())
        self.stats: Counter[str] = Counter()
        self.last_error: str | None = None
        self._queue: deque[_Item] = deque()
        self._queued_spans = 0
        self._cond = threading.Condition()
        self._stop = False
        self._failing = False
        self._last_summary = 0.0
        self._thread = threading.Thread(target=self._flush_loop, name="auterity-flush", daemon=True)
        self._pool: ProcessPoolExecutor | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Create/upgrade the schema, queue what the spool holds, start flushing.

        Returns
        -------
        int
            Requests replayed from the spool.
        """
        warehouse.ensure_schema(self.cfg.url)
        replayed = 0
        for segment, body in self.spool.leftovers():
            try:
                rows = spans_to_rows(parse_request(body, PROTOBUF), self.telemetry)
            except MalformedPayload as exc:  # cannot happen for what we wrote; never loop
                log.error("spool: skipping an unreadable request: %s", exc)
                self.spool.done(Counter({segment: 1}))
                continue
            self._enqueue(_Item(segment, rows))
            replayed += 1
        self.stats["replayed_requests"] += replayed
        if replayed:
            log.info("replaying %d request(s) left in the spool", replayed)
        self._thread.start()
        self._start_pool()
        return replayed

    def _start_pool(self) -> None:
        """Start the decode workers (spawned: this process already runs threads)."""
        if self.cfg.decode_workers <= 0:
            return
        self._pool = ProcessPoolExecutor(
            max_workers=self.cfg.decode_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.telemetry, os.getpid()),
        )
        # start them all now (imports take a second), not on the first request
        for future in [self._pool.submit(_ready_job) for _ in range(self.cfg.decode_workers)]:
            future.result(timeout=120)

    def stop(self, timeout: float = 30.0) -> None:
        """Flush what is queued, then stop the workers, the flush thread and the spool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout)
        self.spool.close()

    # ------------------------------------------------------------------ intake

    def busy(self, spans: int) -> tuple[int, float] | None:
        """``(status, retry_after_s)`` if ``spans`` more cannot be taken now, else None."""
        with self._cond:
            backlog = self._queued_spans
        if self._failing and backlog >= self.cfg.flush_spans:
            return 503, 5.0
        if backlog + spans > self.cfg.max_queue_spans:
            return 429, 1.0
        return None

    def decode(self, body: bytes, encoding: str) -> tuple[Rows, bytes]:
        """The rows of a request and the bytes the spool keeps (binary protobuf)."""
        request = parse_request(body, encoding)
        rows = spans_to_rows(request, self.telemetry)
        return rows, body if encoding == PROTOBUF else request.SerializeToString()

    async def decode_async(self, body: bytes, encoding: str) -> tuple[Rows, bytes]:
        """:meth:`decode` in a worker process (on the loop when there are none).

        A worker that died (killed by hand, out of memory) costs no request: the pool is
        started again and this request is decoded here.
        """
        pool = self._pool
        if pool is None:
            return self.decode(body, encoding)
        try:
            rows, spooled = await asyncio.wrap_future(pool.submit(_decode_job, body, encoding))
        except BrokenProcessPool:
            if self._pool is pool:
                log.error("a decode worker died; starting the workers again")
                # the executor stops a broken pool's other workers itself, but one was seen
                # still running 30 s later (and holding up the receiver's stop): kill them
                leftovers = list((getattr(pool, "_processes", None) or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for process in leftovers:
                    with suppress(Exception):  # already gone
                        process.kill()
                self._pool = None
                self._start_pool()
            return self.decode(body, encoding)
        return rows, body if spooled is None else spooled

    def accepted(self, segment: int, rows: Rows) -> None:
        """Queue a spooled request's rows for the next flush."""
        self.stats["requests"] += 1
        self.stats["spans"] += rows.spans
        self.stats["ignored_spans"] += rows.ignored
        self.stats["rejected_spans"] += rows.rejected
        self._enqueue(_Item(segment, rows))

    def _enqueue(self, item: _Item) -> None:
        with self._cond:
            self._queue.append(item)
            self._queued_spans += len(item.rows.events)
            if self._queued_spans >= self.cfg.flush_spans:
                self._cond.notify_all()

    # ------------------------------------------------------------------ flushing

    def _take(self) -> list[_Item]:
        """Wait for a flush to be due and take its items (empty when stopping and done)."""
        with self._cond:
            while True:
                if self._queue:
                    due = self._queue[0].received + self.cfg.flush_interval_s
                    if (
                        self._stop
                        or self._queued_spans >= self.cfg.flush_spans
                        or time.monotonic() >= due
                    ):
                        break
                    self._cond.wait(max(0.0, due - time.monotonic()))
                elif self._stop:
                    return []
                else:
                    self._cond.wait(1.0)
            items: list[_Item] = []
            spans = 0
            while self._queue and spans < self.cfg.flush_spans * 2:
                item = self._queue.popleft()
                items.append(item)
                spans += len(item.rows.events)
            self._queued_spans -= spans
            return items

    def _flush_loop(self) -> None:
        """Flush thread: group queued requests into one warehouse transaction at a time."""
        delay = 0.5
        while True:
            items = self._take()
            if not items:
                return
            try:
                self.flush(items)
            except Exception as exc:
                self._failing = True
                self.last_error = mask_secrets(str(exc).splitlines()[0] if str(exc) else repr(exc))
                log.error("flush to the warehouse failed (will retry): %s", self.last_error)
                with self._cond:
                    self._queue.extendleft(reversed(items))
                    self._queued_spans += sum(len(i.rows.events) for i in items)
                    if self._stop:
                        return  # left in the spool: the next start replays them
                    self._cond.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._failing = False
            self.last_error = None
            delay = 0.5

    def flush(self, items: list[_Item]) -> dict[str, dict[str, int]]:
        """Write the items' rows in one transaction, mark them done, tell readers.

        Returns
        -------
        dict
            The load counts per table.
        """
        events: dict[str, tuple[Any, ...]] = {}
        models: dict[str, tuple[str, ...]] = {}
        for item in items:
            for row in item.rows.events:  # a span sent twice (a retry) counts once: the last
                events[row[0]] = row
            for model_id, model in item.rows.models.items():
                models.setdefault(model_id, model)
        counts: dict[str, dict[str, int]] = {}
        if events:
            merged = Rows(events=list(events.values()), models=models)
            batch_id = uuid.uuid4().hex
            results = load_many(
                [
                    Batch("models", merged.models_frame(), on_existing="keep"),
                    Batch("inference_events", merged.events_frame()),
                ],
                source=SOURCE,
                batch_id=batch_id,
                url=self.cfg.url,
            )
            counts = {r.table: r.counts() for r in results}
            new_models = counts.get("models", {}).get("inserted", 0)
            if new_models:
                log.warning(
                    "%d new model(s) added without prices: their cost shows as unknown until "
                    "input_price_per_1k/output_price_per_1k are set in models",
                    new_models,
                )
            ev = counts.get("inference_events", {})
            self.stats["flushes"] += 1
            for key, value in ev.items():
                self.stats[f"events_{key}"] += value
            self.stats["models_inserted"] += new_models
            if time.monotonic() - self._last_summary >= SUMMARY_EVERY_S:
                self._last_summary = time.monotonic()
                log.info("landed so far: %s", json.dumps(self.snapshot()))
        self.spool.done(Counter(item.segment for item in items))
        return counts

    def snapshot(self) -> dict[str, Any]:
        """The counters, queue depth and last error (``GET /healthz``)."""
        with self._cond:
            queued = self._queued_spans
        return {
            **dict(self.stats),
            "queued_spans": queued,
            "spool_pending_requests": self.spool.pending(),
            "failing": self._failing,
            "last_error": self.last_error,
        }


# --------------------------------------------------------------------------- HTTP


def status_body(code: int, message: str, encoding: str) -> bytes:
    """A ``google.rpc.Status`` in the request's encoding (the OTLP error body)."""
    status = status_pb2.Status(code=code, message=message)
    if encoding == JSON:
        return json_format.MessageToJson(status, indent=None).encode()
    return status.SerializeToString()


def export_response(rejected: int, message: str, encoding: str) -> bytes:
    """An ``ExportTraceServiceResponse`` (partial success when spans were rejected)."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding == JSON:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


@tornado.web.stream_request_body
class TracesHandler(tornado.web.RequestHandler):
    """``POST /v1/traces``."""

    collector: Collector
    max_body: int

    def initialize(self, collector: Collector) -> None:
        self.collector = collector
        self.max_body = collector.cfg.max_body
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_big = False

    def prepare(self) -> None:
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.max_body:
            self._too_big = True

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.max_body:
            self._too_big = True
        if self._too_big:
            self._chunks = []  # read and drop the rest, so the client gets the 413
        else:
            self._chunks.append(chunk)

    def _fail(self, http: int, code: int, message: str, encoding: str) -> None:
        self.set_status(http)
        self.set_header(
            "Content-Type", "application/json" if encoding == JSON else "application/x-protobuf"
        )
        self.collector.stats[f"http_{http}"] += 1
        self.finish(status_body(code, message, encoding))

    async def post(self) -> None:
        encoding = CONTENT_TYPES.get(_media_type(self.request.headers.get("Content-Type")))
        if encoding is None:
            self._fail(
                415,
                code_pb2.INVALID_ARGUMENT,
                "unsupported content type; send application/x-protobuf or application/json",
                JSON,
            )
            return
        if self._too_big:
            self._fail(
                413,
                code_pb2.INVALID_ARGUMENT,
                f"request body over the limit of {self.max_body} bytes",
                encoding,
            )
            return
        body = b"".join(self._chunks)
        content_encoding = (self.request.headers.get("Content-Encoding") or "").strip().lower()
        if content_encoding == "gzip":
            inflater = zlib.decompressobj(wbits=31)
            try:
                body = inflater.decompress(body, self.max_body + 1)
            except zlib.error as exc:
                self._fail(400, code_pb2.INVALID_ARGUMENT, f"bad gzip body: {exc}", encoding)
                return
            if len(body) > self.max_body or inflater.unconsumed_tail:
                self._fail(
                    413,
                    code_pb2.INVALID_ARGUMENT,
                    f"decompressed body over the limit of {self.max_body} bytes",
                    encoding,
                )
                return
        elif content_encoding not in ("", "identity"):
            self._fail(
                415,
                code_pb2.INVALID_ARGUMENT,
                f"unsupported Content-Encoding {content_encoding!r}; use gzip or none",
                encoding,
            )
            return
        try:
            rows, spooled = await self.collector.decode_async(body, encoding)
        except MalformedPayload as exc:
            self._fail(400, code_pb2.INVALID_ARGUMENT, str(exc), encoding)
            return
        shed = self.collector.busy(len(rows.events))
        if shed is not None:
            status, retry_after = shed
            self.set_header("Retry-After", str(int(retry_after)))
            self._fail(
                status,
                code_pb2.UNAVAILABLE if status == 503 else code_pb2.RESOURCE_EXHAUSTED,
                "the warehouse is unavailable; retry later"
                if status == 503
                else "too many spans waiting for the warehouse; retry later",
                encoding,
            )
            return
        try:
            segment = await asyncio.wrap_future(self.collector.spool.append(spooled))
        except (OSError, RuntimeError) as exc:
            self.set_header("Retry-After", "5")
            self._fail(503, code_pb2.UNAVAILABLE, f"spool write failed: {exc}", encoding)
            return
        self.collector.accepted(segment, rows)
        message = ""
        if rows.rejected:
            message = (
                f"{rows.rejected} span(s) break the data contract and were quarantined: "
                + "; ".join(rows.reasons)
            )
        self.set_header(
            "Content-Type", "application/json" if encoding == JSON else "application/x-protobuf"
        )
        self.finish(export_response(rows.rejected, message, encoding))


class HealthHandler(tornado.web.RequestHandler):
    """``GET /healthz``: the receiver's counters."""

    def initialize(self, collector: Collector) -> None:
        self.collector = collector

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.collector.snapshot()))


def make_app(collector: Collector) -> tornado.web.Application:
    """The tornado application of the receiver."""
    return tornado.web.Application(
        [
            (r"/v1/traces", TracesHandler, {"collector": collector}),
            (r"/healthz", HealthHandler, {"collector": collector}),
        ]
    )


def serve(cfg: ReceiverConfig, *, ready: threading.Event | None = None) -> int:
    """Run the receiver until SIGINT/SIGTERM; flush what is queued before returning.

    Parameters
    ----------
    cfg : ReceiverConfig
        Where to listen, the spool, the limits.
    ready : threading.Event, optional
        Set once the port is bound (tests, benchmarks).

    Returns
    -------
    int
        The exit status (0).

    Raises
    ------
    ConfigError
        The port is in use or cannot be bound, the spool directory is not usable.
    """
    collector = Collector(cfg)
    server = tornado.httpserver.HTTPServer(
        make_app(collector),
        # bodies stream through TracesHandler, which answers 413 itself; this only bounds
        # what tornado lets a client send at all
        max_body_size=max(cfg.max_body * 64, 1 << 30),
        idle_connection_timeout=120,
    )
    try:
        sockets = tornado.netutil.bind_sockets(cfg.port, cfg.host)
    except OSError as exc:
        collector.spool.close()
        raise ConfigError(
            f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}"
            + (" (is another collector running? choose --port)" if exc.errno == 98 else "")
        ) from None
    try:
        collector.start()
    except AuterityError:
        for sock in sockets:
            sock.close()
        collector.spool.close()
        raise
    log.info(
        "OTLP/HTTP receiver on http://%s:%d/v1/traces (spool %s, %d decode worker(s))",
        cfg.host,
        cfg.port,
        collector.spool.directory,
        max(cfg.decode_workers, 0),
    )

    async def main() -> None:
        server.add_sockets(sockets)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        if ready is not None:
            ready.set()
        await stopping.wait()
        server.stop()
        await server.close_all_connections()

    try:
        asyncio.run(main())
    finally:
        collector.stop()
        log.info("receiver stopped: %s", json.dumps(collector.snapshot()))
    return 0
