"""Tell readers that new data landed, so they need not wait for their timers.

When Redis is configured (``AUTERITY_CACHE_URL=redis://...``, the Redis the result cache
shares), every writer that lands a batch calls :func:`publish`, which sends one small JSON
message on the pub/sub channel :data:`CHANNEL`; readers such as the real-time dashboard
:func:`subscribe` and refresh at once. Without Redis both are no-ops and readers keep
polling. A notification only says "look again": the result cache needs no flush, because
its keys carry the data version every write bumps, so a fresh read is never answered from
an older entry.

Publishing never fails a write: a Redis error is logged (once per minute) and ignored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from auterity.config import get_settings
from auterity.redact import mask_secrets, mask_url

log = logging.getLogger("auterity.warehouse.notify")

CHANNEL = "auterity:data-landed"
"""The Redis pub/sub channel of data-landed messages."""

_QUIET_S = 60.0
_last_warning = 0.0
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def redis_url() -> str | None:
    """The Redis URL notifications go through, or None when Redis is not configured."""
    url = get_settings().cache_url
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return url
    return None


def _client(url: str) -> Any:
    """A Redis client for ``url`` (one per process and URL)."""
    import redis

    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(
                url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        return _clients[url]


def _warn(what: str, exc: BaseException) -> None:
    """Log a Redis failure, at most once per minute."""
    global _last_warning
    if time.monotonic() - _last_warning >= _QUIET_S:
        _last_warning = time.monotonic()
        log.warning("data-landed notification %s failed: %s", what, mask_secrets(str(exc)))


def publish(source: str, tables: dict[str, int], **details: Any) -> bool:
    """Announce that a batch landed (a no-op without Redis).

    Parameters
    ----------
    source : str
        Who wrote (e.g. ``otlp``).
    tables : dict
        Rows written (inserted or updated) per table.
    **details
        More JSON-safe fields for the message (e.g. ``batch_id``).

    Returns
    -------
    bool
        True if the message was handed to Redis.
    """
    url = redis_url()
    if url is None:
        return False
    message = json.dumps({"source": source, "tables": tables, "ts": time.time(), **details})
    try:
        _client(url).publish(CHANNEL, message)
    except Exception as exc:
        _warn(f"to {mask_url(url)}", exc)
        return False
    return True


def subscribe(
    callback: Callable[[dict[str, Any]], None], stop: threading.Event
) -> threading.Thread | None:
    """Call ``callback(message)`` for every data-landed message until ``stop`` is set.

    Parameters
    ----------
    callback : callable
        Receives the decoded message; its exceptions are logged, not raised.
    stop : threading.Event
        Ends the listening thread (within about a second).

    Returns
    -------
    threading.Thread or None
        The daemon thread listening, or None when Redis is not configured.
    """
    url = redis_url()
    if url is None:
        return None

    def listen() -> None:
        import redis

        while not stop.is_set():
            pubsub = None
            try:
                # its own connection without a read timeout: it waits for messages
                client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                while not stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        callback(json.loads(message["data"]))
                    except Exception:
                        log.warning("data-landed callback failed", exc_info=True)
            except Exception as exc:
                _warn(f"subscription at {mask_url(url)}", exc)
                stop.wait(5.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        log.debug("closing the subscription failed", exc_info=True)

    thread = threading.Thread(target=listen, name="auterity-notify", daemon=True)
    thread.start()
    return thread
