"""What every API route shares: the answer envelope, the caller, periods, pages, grants.

Every data route answers ``{"data": ..., "meta": {...}}`` through :func:`answer`: read as
the caller (:func:`auterity.metrics.acting_as`), with the data's freshness and version,
whether every read came from the result cache, and for lists the page. The same facts go
in headers: ``ETag`` (a hash of the data version, the caller and the request, so a
polling client sending ``If-None-Match`` gets ``304 Not Modified`` until new data lands),
``X-Data-Freshness`` and ``X-Cache: hit|miss``.
"""

# no `from __future__ import annotations`: FastAPI reads the dependencies' annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from auterity import _json, access, metrics, present
from auterity._time import utcnow
from auterity.access import sessions
from auterity.api.auth import Authenticator, Caller
from auterity.api.monitoring import ApiMetrics
from auterity.api.ratelimit import RateLimiter, Refusal
from auterity.config import get_settings
from auterity.errors import AuterityError
from auterity.warehouse import cache, writes

log = logging.getLogger("auterity.api")

API_PREFIX = "/api"
MAX_LIMIT = 1000
"""The largest page a list returns."""
DEFAULT_LIMIT = 100
COMPUTE_SLOTS = 2
"""Answers one worker computes at once: more would only share its cores (and the GIL),
so later callers wait in order instead."""
VERSION_TTL_S = 1.0
"""Longest time a worker answers from a data version it read before (new data is seen
at once when Redis announces it; within this bound otherwise)."""


class Meta(BaseModel):
    """What every data answer says about itself."""

    as_user: str | None = Field(description="Whose role shaped the answer (None: unrestricted).")
    freshness: datetime | None = Field(description="Newest event time in the warehouse (UTC).")
    data_version: str | None = Field(description="Changes whenever data lands.")
    cached: bool = Field(description="Every read came from the result cache.")
    total: int | None = Field(None, description="Rows in the whole list (lists only).")
    limit: int | None = None
    offset: int | None = None


class Answer(BaseModel):
    """A data answer: rows (or an object) and what it is."""

    data: Any
    meta: Meta


class Problem(BaseModel):
    """An error."""

    error: str
    parameter: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "A bad parameter (named in `parameter`)."},
    401: {"model": Problem, "description": "No or wrong credentials."},
    403: {"model": Problem, "description": "The caller's role does not grant this."},
    404: {"model": Problem, "description": "No such route or report run."},
    429: {"model": Problem, "description": "Too many requests (see `Retry-After`)."},
    503: {"model": Problem, "description": "The database is unreachable."},
}


class BadParameter(AuterityError):
    """A request parameter the API refuses (HTTP 400 naming it)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class Forbidden(Exception):
    """The caller's role does not grant what they asked for (HTTP 403, audited)."""


class TooMany(Exception):
    """The caller is over their role's rate limit (HTTP 429 with ``Retry-After``)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(
            f"too many requests: role {refusal.role!r} may make {refusal.limit} a minute; "
            f"try again in {refusal.retry_after} s"
        )
        self.retry_after = refusal.retry_after


@dataclass
class ApiState:
    """What the routes of one application share (``app.state.api``)."""

    authenticator: Authenticator
    url: str | None
    metrics: ApiMetrics
    limiter: RateLimiter
    freshness: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    version: tuple[float, str | None] | None = None
    """The data version last read and when (``time.monotonic``): see :meth:`data_version`."""
    slots: Any = None
    """The worker's :data:`COMPUTE_SLOTS` (an ``asyncio.Semaphore``, made on first use)."""
    inflight: dict[str, Any] = field(default_factory=dict)
    """Answers being computed, by question (:func:`_computed`)."""
    landings: int = 0
    """Data-landed messages seen (a renewal begun before one is not kept)."""
    renewing: bool = False
    """A background read of the data version is running (:meth:`known_version`)."""
    listening: threading.Event = field(default_factory=threading.Event)
    """Set to stop the data-landed listener."""
    broadcaster: Any = None
    """The live stream's :class:`auterity.api.stream.Broadcaster` (made on first use)."""

    def data_version(self) -> str | None:
        """The warehouse's data version, read at most once per :data:`VERSION_TTL_S` per
        worker and at once after a data-landed message (Redis): a cached answer then costs
        no warehouse connection (reading the version took ~5 ms of a ~14 ms cached call)."""
        with self.lock:
            known, seen = self.version, self.landings
        if known is not None and time.monotonic() - known[0] < VERSION_TTL_S:
            return known[1]
        value = writes.data_version(self.url)
        with self.lock:
            if self.landings == seen:  # else a batch landed while reading: read again next time
                self.version = (time.monotonic(), value)
        return value

    def known_version(self) -> tuple[bool, str | None]:
        """``(True, version)`` when the data version is known without reading the warehouse
        now, else ``(False, None)``.

        A version read within :data:`VERSION_TTL_S` is known. One older than that (but
        younger than twice as much) is still used while a single background read renews
        it, so a busy worker never stalls a crowd of calls on that read; after a
        data-landed message (Redis) nothing is known until it is read again.
        """
        now = time.monotonic()
        with self.lock:
            known = self.version
            if known is None:
                return False, None
            age = now - known[0]
            if age < VERSION_TTL_S:
                return True, known[1]
            if age >= 2 * VERSION_TTL_S:
                return False, None
            renew = not self.renewing
            self.renewing = True
            seen = self.landings
        if renew:
            threading.Thread(
                target=self._renew_version, args=(seen,), name="api-version", daemon=True
            ).start()
        return True, known[1]

    def _renew_version(self, seen: int) -> None:
        """Read the data version; keep it unless a batch landed since the read began (a
        version read before a landing must not replace one read after it)."""
        try:
            value = writes.data_version(self.url)
        except Exception:  # the next call reads it itself, and says what went wrong
            log.debug("renewing the data version failed", exc_info=True)
            with self.lock:
                self.renewing = False
            return
        with self.lock:
            if self.landings == seen:
                self.version = (time.monotonic(), value)
            self.renewing = False

    def known_freshness(self, version: str | None) -> tuple[bool, Any]:
        """``(True, newest event time)`` when :meth:`freshness_for` would answer without
        reading the warehouse, else ``(False, None)``."""
        with self.lock:
            key = version or ""
            return (True, self.freshness[key]) if key in self.freshness else (False, None)

    def landed(self, _message: dict[str, Any] | None = None) -> None:
        """New data landed: the next answer reads the version again."""
        with self.lock:
            self.version = None
            self.landings += 1

    def freshness_for(self, version: str | None) -> Any:
        """The newest event time for a data version (computed once per version)."""
        key = version or ""
        with self.lock:
            if key not in self.freshness:
                self.freshness.clear()  # only the current version matters
                self.freshness[key] = writes.data_freshness(self.url)
            return self.freshness[key]


def state(request: Request) -> ApiState:
    """The application's shared state."""
    return request.app.state.api


async def caller(request: Request) -> Caller:
    """The signed-in caller (401 otherwise; 429 over their role's rate limit).

    Decided on the event loop when that reads nothing (the token, a user signed in
    within the last seconds, a rate limit counted in this process); otherwise in the
    thread pool (a password to verify, a user to look up, a limit counted in Redis).
    """
    api = state(request)
    who = api.authenticator.known_caller(
        request.headers.get("authorization"), request.cookies.get(sessions.SESSION_COOKIE)
    )
    if who is None or api.limiter.needs_io(role_of(who)):
        return await run_in_threadpool(_caller, request)
    _count(api, who)
    return who


def _caller(request: Request) -> Caller:
    """:func:`caller`, reading what it must."""
    api = state(request)
    client = request.client.host if request.client else None
    who = api.authenticator.caller(
        request.headers.get("authorization"),
        client,
        cookie=request.cookies.get(sessions.SESSION_COOKIE),
    )
    _count(api, who)
    return who


def _count(api: ApiState, who: Caller) -> None:
    """Count the call against the caller's rate limit (429 when over it)."""
    refusal = api.limiter.check(who.name, role_of(who))
    if refusal is not None:
        api.metrics.rate_limited.labels(refusal.role).inc()
        raise TooMany(refusal)


Signed = Annotated[Caller, Depends(caller)]


def role_of(who: Caller) -> access.Role | None:
    """The caller's role of the access policy (None: the token's unrestricted person)."""
    return None if who.role is None else access.load_policy().role(who.role)


def require_dashboards(request: Request, who: Caller, *dashboards: str) -> None:
    """403 (and an ``access.denied`` row) unless the role may open every dashboard named:
    the API shows what those dashboards show, so the same grants decide."""
    role = role_of(who)
    missing = [d for d in dashboards if role is not None and not role.may_open(d)]
    if missing:
        access.note_denied(
            who.name,
            "api",
            request.url.path,
            details={"needs": [f"dashboard {d}" for d in missing], "role": who.role},
            url=state(request).url,
        )
        raise Forbidden(
            f"role {who.role!r} may not open the {', '.join(missing)} dashboard(s) whose "
            "numbers these are"
        )


def granted(*dashboards: str) -> Any:
    """A dependency: the caller, once their role may open ``dashboards``."""

    async def check(request: Request, who: Signed) -> Caller:
        role = role_of(who)  # the policy is cached until its file changes
        if role is not None and not all(role.may_open(d) for d in dashboards):
            # the refusal writes an audit row: off the event loop
            await run_in_threadpool(require_dashboards, request, who, *dashboards)
        return who

    return Depends(check)


Start = Annotated[date | None, Query(description="First local date (default: 28 days ago).")]
End = Annotated[
    date | None, Query(description="Local date after the last one (default: tomorrow).")
]


@dataclass(frozen=True)
class Period:
    """A checked period: ``start`` inclusive, ``end`` exclusive (local dates)."""

    start: date
    end: date


FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2999, 12, 31)
"""Dates the API accepts (a comparison a year back from year 1 would not exist)."""


def check_dates(**dates: date | None) -> None:
    """400 naming the first date outside :data:`FIRST_DATE` .. :data:`LAST_DATE`."""
    for name, value in dates.items():
        if value is not None and not FIRST_DATE <= value <= LAST_DATE:
            raise BadParameter(
                name, f"{name} ({value}) must be between {FIRST_DATE} and {LAST_DATE}"
            )


async def period(request: Request, start: Start = None, end: End = None) -> Period:
    """The period asked for (default: the last 28 days); 400 when end is not after start."""
    check_dates(start=start, end=end)
    if start is None or end is None:  # the defaults need the newest data's day
        default_start, default_end = await run_in_threadpool(
            present.resolve_period, "last_28_days", url=state(request).url
        )
        start, end = start or default_start, end or default_end
    if end <= start:
        raise BadParameter("end", f"end ({end}) must be after start ({start})")
    return Period(start, end)


Dates = Annotated[Period, Depends(period)]


@dataclass(frozen=True)
class Page:
    """A page of a list."""

    limit: int
    offset: int


async def page(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Rows per page (at most {MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, description="Rows to skip.")] = 0,
) -> Page:
    """The page asked for (``limit`` capped at :data:`MAX_LIMIT`)."""
    return Page(limit, offset)


Paged = Annotated[Page, Depends(page)]


def utc_instant(value: Any) -> str | None:
    """A naive UTC time (the warehouse's) as RFC 3339 text with its zone (``...Z``), as the
    OpenAPI ``date-time`` format requires."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return str(stamp.tz_convert("UTC").isoformat().replace("+00:00", "Z"))


def etag_for(request: Request, who: Caller, version: str | None) -> str:
    """The entity tag of an answer: data version, caller, role and the request."""
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
    digest = hashlib.sha256(f"{version}|{who.name}|{who.role}|{request.url.path}?{query}".encode())
    return f'"{digest.hexdigest()[:32]}"'


def answer(
    request: Request,
    who: Caller,
    compute: Callable[[], Any],
    *,
    paged: Page | None = None,
    paged_key: str | None = None,
    data_only: bool = True,
) -> Response:
    """Compute as ``who`` unless the client already has this version (304) or the answer
    is in the cache.

    ``paged``: the page of a list answer (or of the list under ``paged_key`` of an object).
    Finished answers are kept in the result cache (Redis when configured: every worker)
    under their entity tag, which names the data version, the caller, their role and the
    request; so a repeated question costs a data-version read and a cache lookup.
    ``data_only=False`` for answers that change without new data (report runs, the live
    window that moves with the clock): computed every time, tagged by their content.
    """
    api = state(request)
    version = api.data_version()
    asked = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    etag = etag_for(request, who, version)
    if data_only and etag in asked:
        return Response(status_code=304, headers={"ETag": etag})
    key = f"{api.url or ''}|{etag}"
    kept = cache.recall(key) if data_only else None
    if kept is not None:
        total, rows_json = _unpack(kept)
        hit = True
        api.metrics.cache.labels("hit").inc()
    else:
        with cache.tally() as counts, metrics.acting_as(who.acting, url=api.url):
            data = compute()
        total = None
        if paged is not None:
            if isinstance(data, pd.DataFrame):
                total = len(data)
                data = data.iloc[paged.offset : paged.offset + paged.limit]
            elif isinstance(data, list):
                total = len(data)
                data = data[paged.offset : paged.offset + paged.limit]
            elif isinstance(data, dict) and paged_key is not None:
                total = len(data[paged_key])
                page = data[paged_key][paged.offset : paged.offset + paged.limit]
                data = {**data, paged_key: page}
        rows = _json.records(data) if isinstance(data, pd.DataFrame) else _json.json_value(data)
        rows_json = _json.dumps(rows)
        if data_only:
            cache.remember(key, f"{'' if total is None else total}\n{rows_json}".encode())
        else:
            content = hashlib.sha256(f"{etag}|{total}|{rows_json}".encode()).hexdigest()
            etag = f'"{content[:32]}"'
            if etag in asked:
                return Response(status_code=304, headers={"ETag": etag})
        hit = counts["misses"] == 0 and counts["hits"] > 0
        for counted, outcome in (("hits", "hit"), ("misses", "miss")):
            if counts[counted]:
                api.metrics.cache.labels(outcome).inc(counts[counted])
    return _respond(
        api, who, etag, version, api.freshness_for(version), hit, total, rows_json, paged
    )


async def answer_async(
    request: Request,
    who: Caller,
    compute: Callable[[], Any],
    *,
    paged: Page | None = None,
    paged_key: str | None = None,
) -> Response:
    """:func:`answer` for routes of data answers, from the event loop: an answer this
    worker can send without reading anything (the data version known, the answer kept in
    this process) goes out at once; anything else (computing, a warehouse or Redis read)
    runs in the thread pool. A crowd asking what was asked before then costs no thread
    hand-over per call."""
    api = state(request)
    known, version = api.known_version()
    if known:
        asked = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
        etag = etag_for(request, who, version)
        if etag in asked:
            return Response(status_code=304, headers={"ETag": etag})
        kept = cache.recall_near(f"{api.url or ''}|{etag}")
        has_freshness, fresh = api.known_freshness(version)
        if kept is not None and has_freshness:
            total, rows_json = _unpack(kept)
            api.metrics.cache.labels("hit").inc()
            return _respond(api, who, etag, version, fresh, True, total, rows_json, paged)
    return await _computed(
        request,
        who,
        lambda: run_in_threadpool(answer, request, who, compute, paged=paged, paged_key=paged_key),
    )


async def _computed(
    request: Request, who: Caller, work: Callable[[], Awaitable[Response]]
) -> Response:
    """Run ``work`` (an answer to compute) in one of this worker's :data:`COMPUTE_SLOTS`.

    Callers wait their turn in order, and one who hung up meanwhile is not computed for
    (a crowd that gave up must not keep the worker busy). With the result cache on, the
    same question from the same caller asked again while it is being computed waits for
    that answer instead of computing it again (a crowd arriving as new data lands costs
    one computation per worker); with the cache off (``AUTERITY_CACHE_TTL=0``) every
    call computes.
    """
    api = state(request)
    if api.slots is None:
        api.slots = asyncio.Semaphore(COMPUTE_SLOTS)
    shared = get_settings().cache_ttl_s > 0
    key = (
        f"{who.name}|{who.role}|{request.url.path}?{request.url.query}|"
        f"{request.headers.get('if-none-match', '')}"
    )
    if shared and key in api.inflight:
        return await asyncio.shield(api.inflight[key])
    future: asyncio.Future[Response] | None = None
    if shared:
        future = asyncio.get_running_loop().create_future()
        api.inflight[key] = future
    try:
        async with api.slots:
            if await request.is_disconnected():
                api.metrics.abandoned.inc()
                response = Response(status_code=499)  # nginx's "client closed request"
            else:
                response = await work()
    except BaseException as exc:
        if future is not None:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without joiners
        raise
    finally:
        if future is not None:
            api.inflight.pop(key, None)
    if future is not None:
        future.set_result(response)
    return response


def _unpack(kept: bytes) -> tuple[int | None, str]:
    """A kept answer's list length (None: not a list) and its JSON (see :func:`answer`)."""
    total_text, _, rows_json = kept.decode().partition("\n")
    return (None if total_text == "" else int(total_text)), rows_json


def _respond(
    api: ApiState,
    who: Caller,
    etag: str,
    version: str | None,
    fresh: Any,
    hit: bool,
    total: int | None,
    rows_json: str,
    paged: Page | None,
) -> Response:
    """The answer's body (data and meta) and headers."""
    if isinstance(fresh, datetime):
        api.metrics.freshness.set(max(0.0, (utcnow() - fresh).total_seconds()))
    meta = {
        "as_user": who.acting,
        "freshness": utc_instant(fresh),
        "data_version": version,
        "cached": hit,
        "total": total,
        "limit": paged.limit if paged else None,
        "offset": paged.offset if paged else None,
    }
    body = '{"data":' + rows_json + ',"meta":' + _json.dumps(_json.json_value(meta)) + "}"
    headers = {
        "ETag": etag,
        "X-Cache": "hit" if hit else "miss",
        "Cache-Control": "private, no-cache",
    }
    if fresh is not None:
        headers["X-Data-Freshness"] = str(utc_instant(fresh))
    return Response(body, media_type="application/json", headers=headers)
