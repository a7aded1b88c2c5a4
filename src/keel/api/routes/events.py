"""`/events/stream`: a session's journal as server-sent events, live, with the trading state's changes.

    GET /api/v1/events/stream?session=NAME[&after=SEQ]      Accept: text/event-stream

Each committed journal record is one event `journal` whose `id` is its seq, so a client that reconnects with
`Last-Event-ID` (or `after=`) resumes right after the last record it got; without either, the stream starts at the
journal's committed head (what is appended from now on). `after=0` replays the whole journal first. The trading
state is sent when the stream opens and whenever it changes (event `trading_state`, no id: it does not move the
resume point). A comment line is sent every `HEARTBEAT_SECONDS` so that proxies keep the connection open and a client
can tell a quiet session from a dead link. When the session has ended and every record is sent, the stream sends
`end` and closes.

Only committed records are sent (up to the head the database committed): a record on disk past it may still be cut
by a recovery, and a client must never have seen it. The stream is bounded: records are read `BATCH` at a time and
only when the client took the previous ones (the server's write buffer applies back-pressure), so a slow client
holds a batch, never the journal; at most `MAX_STREAMS` are served at once (then 503). A client that disconnects
ends its generator at its next write or poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from keel.api import journal as j
from keel.api.auth import Caller, require
from keel.api.context import ApiContext, context_of
from keel.api.problems import Problem, documented
from keel.api.roles import Permission

router = APIRouter(tags=["events"])
MEDIA = "text/event-stream"
#: how often the stream looks for new records and trading-state changes, and sends a comment when quiet
POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 15.0
#: how often a quiet stream asks the registry whether its session still runs
LIVE_CHECK_SECONDS = 1.0
#: records read and sent at a time
BATCH = 200
#: the browser's reconnect delay the stream asks for
RETRY_MS = 2_000


def frame(event: str, data: Any, *, id: int | None = None) -> bytes:
    """One server-sent event: `id:` (when given), `event:`, one `data:` line of JSON, a blank line."""
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


@router.get(
    "/events/stream",
    summary="A session's journal records as they are committed, and trading-state changes (server-sent events)",
    responses={
        200: {"description": "an event stream", "content": {MEDIA: {"schema": {"type": "string"}}}},
        **documented(400, 401, 403, 404, 422, 503),
    },
    response_class=StreamingResponse,
)
async def stream(
    request: Request,
    caller: Caller = Depends(require(Permission.READ)),
    session: str = Query(min_length=1, max_length=64, description="the session whose journal to stream"),
    after: int | None = Query(None, ge=0, description="start after this seq (0: the whole journal)"),
    last_event_id: str | None = Header(None, max_length=32, description="the id of the last event received"),
) -> StreamingResponse:
    ctx = context_of(request)
    ref = await run_in_threadpool(_session_ref, ctx, session)
    start = after
    if start is None and last_event_id is not None:
        try:
            start = int(last_event_id)
        except ValueError:
            raise Problem(
                "bad-request",
                f"Last-Event-ID '{last_event_id[:32]}' is not a journal seq",
                hint="send the id of the last `journal` event received, or none",
            ) from None
        if start < 0:
            raise Problem("bad-request", f"Last-Event-ID {start} is not a journal seq")
    if start is None:
        start = await run_in_threadpool(_head, ctx, ref)
    if not ctx.streams.take():
        raise Problem(
            "unavailable",
            f"{ctx.streams.limit} event streams are open already",
            hint="close one, or poll GET /api/v1/sessions/{name}/events",
        )
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return EventStream(_events(ctx, ref, start), on_close=ctx.streams.give, media_type=MEDIA, headers=headers)


class EventStream(StreamingResponse):
    """A streaming response that closes its generator and gives its slot back however the stream ends: its last
    event, an error, or the client going away (which cancels the response while the generator waits to be resumed,
    so the generator's own `finally` would only run when it is collected)."""

    def __init__(self, content: AsyncIterator[bytes], *, on_close: Callable[[], None], **kw: Any) -> None:
        super().__init__(content, **kw)
        self._on_close: Callable[[], None] | None = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            body = self.body_iterator
            try:
                if hasattr(body, "aclose"):
                    await body.aclose()
            finally:
                done, self._on_close = self._on_close, None
                if done is not None:
                    done()


def _session_ref(ctx: ApiContext, name: str) -> j.RunRef:
    with ctx.store() as store:
        rec = store.session_record(name)
    return j.find_session(rec, name)


def _head(ctx: ApiContext, ref: j.RunRef) -> int:
    with ctx.journals.reading(ref) as reader:
        return reader.head()


def _state(ctx: ApiContext) -> dict[str, Any]:
    with ctx.store() as store:
        rec = store.trading_state()
    return {
        "state": rec.state.value,
        "reason": rec.reason,
        "actor": rec.actor,
        "since": rec.ts.isoformat() if rec.ts is not None else None,
        "change_id": rec.change_id,
    }


def _live(ctx: ApiContext, name: str) -> bool:
    with ctx.store() as store:
        rec = store.session_record(name)
    return rec is not None and rec.status.is_live


class _Tail:
    """Where the stream is in the log: the last seq sent, the byte offset after it, the log's size when last read."""

    def __init__(self, ref: j.RunRef, after: int) -> None:
        self.ref = ref
        self.seq = after
        self.offset = 0
        self.size = -1

    def grew(self) -> bool:
        try:
            size = self.ref.events.stat().st_size
        except OSError:
            return False
        if size == self.size:
            return False
        self.size = size
        return True

    def read(self, ctx: ApiContext) -> list[dict[str, Any]]:
        head = _head(ctx, self.ref)
        if head <= self.seq:
            return []
        batch, self.offset = j.read_events(
            self.ref.events, after=self.seq, upto=head, limit=BATCH, offset_hint=self.offset
        )
        if batch:
            self.seq = batch[-1]["seq"]
            self.size = -1  # more may be waiting: look again at once
        return batch


async def _events(ctx: ApiContext, ref: j.RunRef, after: int) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    state = await run_in_threadpool(_state, ctx)
    yield frame("trading_state", state)
    tail = _Tail(ref, after)
    beat = checked = time.monotonic()
    while True:
        sent = False
        if tail.grew():
            for record in await run_in_threadpool(tail.read, ctx):
                yield frame("journal", record, id=record["seq"])
                sent = True
        now = await run_in_threadpool(_state, ctx)
        if now["change_id"] != state["change_id"] or now["state"] != state["state"]:
            state = now
            yield frame("trading_state", state)
            sent = True
        if sent:
            beat = time.monotonic()
            continue
        if time.monotonic() - checked >= LIVE_CHECK_SECONDS:
            checked = time.monotonic()
            if not await run_in_threadpool(_live, ctx, ref.session or ""):
                # ended: send what it committed last, then say so
                last = await run_in_threadpool(tail.read, ctx)
                for record in last:
                    yield frame("journal", record, id=record["seq"])
                if not last:
                    yield frame("end", {"session": ref.session, "last_seq": tail.seq, "why": "the session ended"})
                    return
                continue
        if time.monotonic() - beat >= HEARTBEAT_SECONDS:
            yield b": keep-alive\n\n"
            beat = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
