"""``/api/realtime``: the live per-model view, as a snapshot or pushed as it changes.

``/api/realtime/stream`` is Server-Sent Events (:mod:`auterity.api.stream`): a
``snapshot`` event at once and whenever the view changes (at once when data lands, with
Redis; every few seconds otherwise), a ``heartbeat`` event after
:data:`~auterity.api.stream.HEARTBEAT_S` seconds of quiet (``{"state": "connected"}``: a
client that misses two knows its line is down), ``Last-Event-ID`` on reconnect. Clients
that cannot hold a stream poll ``/api/realtime/snapshot`` (its ETag is of its content:
304 while the view is unchanged).
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

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


LIVE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Auterity - live models</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="{nonce}">
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #1f2937; }}
table {{ border-collapse: collapse; min-width: 36rem; }}
th, td {{ padding: .35rem .7rem; border-bottom: 1px solid #e5e7eb; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
#state {{ display: inline-block; padding: .1rem .5rem; border-radius: .6rem; }}
#state.connected {{ background: #d1fae5; }} #state.reconnecting {{ background: #fee2e2; }}
</style></head>
<body>
<h1>Live models</h1>
<p>Stream: <span id="state" class="connecting">connecting</span>
 &middot; newest event <span id="newest">-</span> &middot; last heartbeat
 <span id="beat">-</span></p>
<table><thead><tr><th>model</th><th>requests</th><th>requests/s</th>
<th>p95 latency (ms)</th><th>error rate</th></tr></thead><tbody id="rows"></tbody></table>
<script nonce="{nonce}">
const state = document.getElementById("state");
function show(text) {{ state.textContent = text; state.className = text; }}
function cell(row, text, model, metric) {{
  const td = document.createElement("td");
  td.textContent = text;
  td.dataset.model = model; td.dataset.metric = metric;
  row.appendChild(td);
}}
const fmt = (v, d) => (v === null || v === undefined) ? "-" : Number(v).toFixed(d);
const source = new EventSource("stream?minutes={minutes}");
source.onopen = () => show("connected");
source.onerror = () => show("reconnecting");
source.addEventListener("heartbeat", (e) => {{
  show("connected");
  document.getElementById("beat").textContent = JSON.parse(e.data).at;
}});
source.addEventListener("snapshot", (e) => {{
  const data = JSON.parse(e.data);
  document.getElementById("newest").textContent = data.newest_event || "-";
  const body = document.getElementById("rows");
  body.replaceChildren();
  for (const m of data.models) {{
    const row = document.createElement("tr");
    row.dataset.model = m.model_id;
    cell(row, m.model_id, m.model_id, "model");
    cell(row, String(m.requests), m.model_id, "requests");
    cell(row, fmt(m.requests_per_s, 2), m.model_id, "requests_per_s");
    cell(row, fmt(m.p95_latency_ms, 0), m.model_id, "p95_latency_ms");
    cell(row, fmt(m.error_rate, 3), m.model_id, "error_rate");
    body.appendChild(row);
  }}
}});
</script></body></html>
"""


@router.get("/live", response_class=HTMLResponse, include_in_schema=False)
def live_page(who: Live, minutes: Minutes = 15) -> HTMLResponse:
    """A small page subscribed to the stream (no scripts from elsewhere): per-model
    numbers as they change and the connection's state."""
    nonce = secrets.token_urlsafe(16)
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return HTMLResponse(
        LIVE_PAGE.format(nonce=nonce, minutes=int(minutes)),
        headers={"Content-Security-Policy": policy, "Cache-Control": "no-store"},
    )


@router.get("/snapshot", response_model=Answer)
def snapshot(request: Request, who: Live, minutes: Minutes = 15) -> Response:
    """Per model (and ``all``): requests/s, p95 latency and error rate over the last
    ``minutes``; the polling fallback of the stream."""
    url = state(request).url
    return answer(request, who, lambda: stream.snapshot(who.acting, minutes, url), data_only=False)


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
