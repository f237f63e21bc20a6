"""``auterity collect`` (the OTLP/HTTP receiver) and ``auterity demo-traffic`` (its sender)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from auterity.cli.main import cli
from auterity.demo import traffic
from auterity.errors import ConfigError
from auterity.ingest import receiver

_DEFAULTS = receiver.ReceiverConfig()


def _log_to_stderr() -> None:
    """Log lines with times to stderr (a long-running command's only output)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # the load path logs every table of every flush; the receiver logs a summary instead
    for noisy in ("tornado.access", "urllib3", "opentelemetry", "alembic", "auterity.ingest"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("auterity.ingest.receiver").setLevel(logging.INFO)


@cli.command("collect")
@click.option("--host", default=_DEFAULTS.host, show_default=True, help="Interface to listen on.")
@click.option(
    "--port", type=int, default=_DEFAULTS.port, show_default=True, help="Port (OTLP/HTTP: 4318)."
)
@click.option(
    "--spool",
    "spool_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Spool directory (acknowledged requests until they are in the warehouse). "
    "Default: data/spool/otlp.",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=_DEFAULTS.max_body,
    show_default=True,
    help="Largest request body in bytes, compressed or not (413 above it).",
)
@click.option(
    "--flush-interval",
    type=click.FloatRange(min=0.01),
    default=_DEFAULTS.flush_interval_s,
    show_default=True,
    help="Seconds an acknowledged span may wait before it is written to the warehouse.",
)
@click.option(
    "--flush-spans",
    type=click.IntRange(min=1),
    default=_DEFAULTS.flush_spans,
    show_default=True,
    help="Write at once when this many spans wait.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=1),
    default=_DEFAULTS.max_queue_spans,
    show_default=True,
    help="Spans that may wait for the warehouse before senders are told to retry (429).",
)
@click.option(
    "--decode-workers",
    type=click.IntRange(min=0, max=64),
    default=_DEFAULTS.decode_workers,
    show_default=True,
    help="Worker processes that parse and map request bodies (0: the server process does).",
)
def collect_cmd(
    host: str,
    port: int,
    spool_dir: Path | None,
    max_body: int,
    flush_interval: float,
    flush_spans: int,
    max_queue: int,
    decode_workers: int,
) -> None:
    """Receive OpenTelemetry GenAI spans over OTLP/HTTP into inference_events.

    Listens for POST /v1/traces (protobuf or JSON, gzip or not); point an application's
    exporter at it with OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:PORT. A 200 means the
    spans are on disk; they reach the warehouse within about --flush-interval seconds.
    The attribute mapping is the telemetry: section of parameters/sources.yml. Stop with
    Ctrl-C (what is queued is written first).
    """
    if port < 0 or port > 65535:
        raise ConfigError(f"--port {port}: not a TCP port (0..65535)")
    _log_to_stderr()
    cfg = receiver.ReceiverConfig(
        host=host,
        port=port,
        spool_dir=spool_dir,
        max_body=max_body,
        flush_interval_s=flush_interval,
        flush_spans=flush_spans,
        max_queue_spans=max_queue,
        decode_workers=decode_workers,
    )
    receiver.serve(cfg)


@cli.command("demo-traffic")
@click.option(
    "--endpoint",
    default=traffic.DEFAULT_ENDPOINT,
    show_default=True,
    help="OTLP/HTTP traces endpoint of `auterity collect`.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.01, max=100_000),
    default=20.0,
    show_default=True,
    help="Model calls (spans) per second.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to send; 0 sends until Ctrl-C.",
)
@click.option("--seed", type=int, help="Random seed (reproducible traffic).")
def demo_traffic_cmd(endpoint: str, rate: float, duration: float, seed: int | None) -> None:
    """Send synthetic GenAI spans through the real OpenTelemetry OTLP/HTTP exporter.

    Demo features, models and customers, so the real-time dashboard moves while
    `auterity collect` runs. Spans the receiver refuses are logged by the exporter.
    """
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"--endpoint {endpoint!r}: expected an http(s):// URL")
    _log_to_stderr()
    click.echo(f"sending {rate:g} spans/s to {endpoint} (Ctrl-C stops)", err=True)
    try:
        made = traffic.send(endpoint, rate, duration, seed=seed)
    except KeyboardInterrupt:
        return
    click.echo(f"sent {made} spans", err=True)
