"""``/api/realtime``: the live per-model view, as a snapshot or pushed as it changes.

``/api/realtime/stream`` is Server-Sent Events (:mod:`auterity.api.stream`): a
``snapshot`` event at once and whenever the view changes (at once when data lands, with
Redis; every few seconds otherwise), a ``heartbeat`` event after
:data:`~auterity.api.stream.HEARTBEAT_S` seconds of quiet (``{"state": "connected"}``: a
client that misses two knows its line is down), ``Last-Event-ID`` on reconnect. Clients
that cannot hold a stream poll ``/api/realtime/snapshot`` (ETag: 304 until the data
version changes).
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from auterity._time import utcnow
from auterity.api import stream
from auterity.api.auth import Caller
from auterity.api.common import API_PREFIX, ERRORS, Answer, answer, granted, state

router = APIRouter(prefix=f"{API_PREFIX}/realtime", tags=["realtime"], responses=ERRORS)
Live = Annotated[Caller, granted("realtime")]
Minutes = Annotated[int, Query(ge=1, le=180, description="Window length in minutes.")]
RETRY_MS = 3000
"""How long a browser's EventSource waits before reconnecting."""


def broadcaster(request: Request) -> stream.Broadcaster:
    """This worker's broadcaster (started on first use, inside the event loop)."""
    api = state(request)
    if api.broadcaster is None:
        api.broadcaster = stream.Broadcaster(api.url, on_count=api.metrics.subscribers.set)
    api.broadcaster.start()
    return api.broadcaster


@router.get("/snapshot", response_model=Answer)
def snapshot(request: Request, who: Live, minutes: Minutes = 15) -> Response:
    """Per model (and ``all``): requests/s, p95 latency and error rate over the last
    ``minutes``; the polling fallback of the stream."""
    url = state(request).url
    return answer(request, who, lambda: stream.snapshot(who.acting, minutes, url))


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def live(
    request: Request,
    who: Live,
    minutes: Minutes = 15,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-Sent Events: ``snapshot`` events (the same body as ``/snapshot``'s data) as
    the view changes, ``heartbeat`` events while it does not."""
    hub = broadcaster(request)
    feed, mailbox = hub.subscribe(who.acting, minutes)

    async def events() -> AsyncIterator[str]:
        try:
            hello = json.dumps({"state": "connected", "at": utcnow().isoformat()})
            yield stream.sse("heartbeat", hello, retry_ms=RETRY_MS)
            seen = last_event_id
            while True:
                try:
                    event_id, data = await asyncio.wait_for(
                        mailbox.get(), timeout=stream.HEARTBEAT_S
                    )
                except TimeoutError:
                    beat = json.dumps({"state": "connected", "at": utcnow().isoformat()})
                    yield stream.sse("heartbeat", beat)
                    continue
                if event_id == seen:
                    continue  # the client has this one (a reconnect)
                seen = event_id
                yield stream.sse("snapshot", data, event_id=event_id)
        finally:
            hub.unsubscribe(feed, mailbox)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
