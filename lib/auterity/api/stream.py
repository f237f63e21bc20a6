"""The live stream behind ``/api/realtime/stream``: one computation, many subscribers.

Each API worker keeps one :class:`Broadcaster`. Subscribers that read as the same user
with the same window share one feed: its snapshot (per-model requests/s, p95 latency
and error rate, :func:`auterity.modelhub.realtime_snapshot`) is computed once, in a
thread, and handed to every subscriber's one-slot mailbox (a slow client only ever
misses superseded snapshots, never blocks the others). A feed is recomputed

* at once when data lands (the ingest path's data-landed message on Redis,
  :mod:`auterity.warehouse.notify`, when Redis is configured), and
* every :data:`REFRESH_S` seconds otherwise (the window moves even when nothing lands:
  the documented fallback for setups without Redis).

Feeds without subscribers are dropped. Every event carries an id
``<data version>.<hash of the snapshot>`` (the same in every worker); a client
reconnecting with ``Last-Event-ID`` gets the current snapshot at once only if it differs
from the one it last saw (a newer snapshot supersedes any it missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auterity import _json, metrics, modelhub
from auterity.warehouse import notify, writes

log = logging.getLogger("auterity.api.stream")

REFRESH_S = 5.0
"""Seconds between recomputations of a feed when no data-landed message comes."""
HEARTBEAT_S = 15.0
"""Seconds of quiet after which a subscriber gets a heartbeat event."""
MIN_GAP_S = 0.5
"""Least time between two recomputations of one feed (bursts of landed batches)."""


@dataclass
class Feed:
    """The shared snapshot of one (user, window) and its subscribers' mailboxes."""

    user: str | None
    minutes: int
    mailboxes: set[asyncio.Queue[tuple[str, str]]] = field(default_factory=set)
    latest: tuple[str, str] | None = None
    """The last event: (id, JSON data)."""
    computed_at: float = 0.0


class Broadcaster:
    """Computes each feed once and fans its snapshots out to the subscribers."""

    def __init__(self, url: str | None, on_count: Callable[[int], None] | None = None) -> None:
        self.url = url
        self.on_count = on_count
        """Told the number of subscribers whenever it changes (a Prometheus gauge)."""
        self.feeds: dict[tuple[str | None, int], Feed] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_listening = threading.Event()
        self.landed_messages = 0

    @property
    def subscribers(self) -> int:
        """Subscribers connected to this worker."""
        return sum(len(feed.mailboxes) for feed in self.feeds.values())

    def start(self) -> None:
        """Start the refresh loop and the data-landed listener (inside the event loop)."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        wake = self._wake

        def landed(_message: dict[str, Any]) -> None:
            self.landed_messages += 1
            loop.call_soon_threadsafe(wake.set)

        notify.subscribe(landed, self._stop_listening)
        self._task = loop.create_task(self._run(), name="auterity-api-stream")

    async def stop(self) -> None:
        """Stop the loop and the listener."""
        self._stop_listening.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def subscribe(
        self, user: str | None, minutes: int
    ) -> tuple[Feed, asyncio.Queue[tuple[str, str]]]:
        """A new subscriber's feed and mailbox (the feed computes at once if it is new)."""
        key = (user, minutes)
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = Feed(user, minutes)
            if self._wake is not None:
                self._wake.set()
        mailbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=1)
        feed.mailboxes.add(mailbox)
        if feed.latest is not None:
            mailbox.put_nowait(feed.latest)
        self._counted()
        return feed, mailbox

    def unsubscribe(self, feed: Feed, mailbox: asyncio.Queue[tuple[str, str]]) -> None:
        """Forget a subscriber; a feed nobody follows is dropped."""
        feed.mailboxes.discard(mailbox)
        if not feed.mailboxes:
            self.feeds.pop((feed.user, feed.minutes), None)
        self._counted()

    def _counted(self) -> None:
        if self.on_count is not None:
            self.on_count(self.subscribers)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=REFRESH_S)
            self._wake.clear()
            for feed in list(self.feeds.values()):
                if time.monotonic() - feed.computed_at < MIN_GAP_S:
                    continue
                try:
                    event = await asyncio.to_thread(
                        snapshot_event, feed.user, feed.minutes, self.url
                    )
                except Exception:
                    log.warning("live snapshot failed", exc_info=True)
                    continue
                feed.computed_at = time.monotonic()
                if feed.latest is not None and event[1] == feed.latest[1]:
                    continue  # nothing changed: the heartbeat keeps the line alive
                feed.latest = event
                for mailbox in list(feed.mailboxes):
                    _deliver(mailbox, event)


def _deliver(mailbox: asyncio.Queue[tuple[str, str]], event: tuple[str, str]) -> None:
    """Put ``event`` in a one-slot mailbox, replacing a snapshot not yet read."""
    if mailbox.full():
        mailbox.get_nowait()  # one event loop: nothing empties it in between
    mailbox.put_nowait(event)


def snapshot(user: str | None, minutes: int, url: str | None) -> dict[str, Any]:
    """The live view as ``user`` sees it: per model requests/s, p95 latency, error rate."""
    with metrics.acting_as(user, url=url):
        per_model, _per_minute, newest = modelhub.realtime_snapshot(minutes, url=url)
    return {
        "window_minutes": minutes,
        "newest_event": newest,
        "models": _json.records(per_model),
    }


def snapshot_event(user: str | None, minutes: int, url: str | None) -> tuple[str, str]:
    """A stream event: (id, JSON data) of the current snapshot."""
    version = writes.data_version(url)
    data = _json.dumps(_json.json_value(snapshot(user, minutes, url)))
    return f"{version}.{hashlib.sha256(data.encode()).hexdigest()[:16]}", data


def sse(event: str, data: str, event_id: str | None = None, retry_ms: int | None = None) -> str:
    """One Server-Sent Events message."""
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


def same_data(last_event_id: str | None, current: tuple[str, str] | None) -> bool:
    """Whether a reconnecting client's ``Last-Event-ID`` is the current snapshot's."""
    return bool(last_event_id) and current is not None and current[0] == last_event_id
