"""Rate limits per user of the JSON API (the ``limits`` library).

A role's ``limits.api_requests_per_minute`` in ``parameters/access.yml`` caps the calls
each of its users makes per minute (a sliding window). Past it the API answers ``429
Too Many Requests`` with ``Retry-After``. With Redis configured (``AUTERITY_CACHE_URL``)
the counts live there, so every worker (and every API server on the same Redis) shares
them; otherwise each worker counts alone. A role without the limit (and the token's one
local person) is not limited.

If Redis stops answering, calls are let through (and a warning is logged once a minute):
an outage of the limiter must not become an outage of the API.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from auterity import access, config
from auterity.redact import mask_url
from auterity.warehouse import notify

log = logging.getLogger("auterity.api.ratelimit")

LIMIT_KEY = "api_requests_per_minute"
_QUIET_S = 60.0


@dataclass(frozen=True)
class Refusal:
    """A call over its role's limit."""

    limit: int
    role: str
    retry_after: int
    """Whole seconds until a call is let through again."""


class RateLimiter:
    """Counts each user's calls against their role's per-minute limit."""

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage if storage is not None else _storage()
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self._items: dict[int, RateLimitItemPerMinute] = {}
        self._last_warning = 0.0

    def needs_io(self, role: access.Role | None) -> bool:
        """Whether counting a call of ``role`` reads another process (Redis)."""
        limited = role is not None and LIMIT_KEY in role.limits
        return limited and not isinstance(self.storage, MemoryStorage)

    def check(self, user: str, role: access.Role | None) -> Refusal | None:
        """Count one call of ``user``; a :class:`Refusal` if it is over the limit."""
        if role is None or LIMIT_KEY not in role.limits:
            return None
        per_minute = role.limits[LIMIT_KEY]
        item = self._items.setdefault(per_minute, RateLimitItemPerMinute(per_minute))
        try:
            if self.limiter.hit(item, "api", user):
                return None
            stats = self.limiter.get_window_stats(item, "api", user)
        except Exception as exc:  # Redis down: let the call through
            if time.monotonic() - self._last_warning >= _QUIET_S:
                self._last_warning = time.monotonic()
                log.warning("rate limit not checked (%s): letting calls through", exc)
            return None
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return Refusal(per_minute, role.name, wait)


def _storage() -> Storage:
    """Redis when configured (shared by workers), else this process's memory."""
    url = notify.redis_url()
    if url is None:
        return MemoryStorage()
    options: dict[str, float | str | bool] = {
        "socket_timeout": 0.5,
        "socket_connect_timeout": 0.5,
    }
    ca_file = config.value(config.ENV_CACHE_CA_FILE)
    if ca_file and url.startswith("rediss://"):
        options["ssl_ca_certs"] = ca_file
    storage = storage_from_string(url.replace("unix://", "redis+unix://", 1), **options)
    assert isinstance(storage, Storage)  # a synchronous storage for a sync scheme
    log.info("API rate limits counted in Redis at %s", mask_url(url))
    return storage
