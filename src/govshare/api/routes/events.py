"""What this department is told: ``GET /v1/events`` (Server-Sent Events) and
``GET /v1/notifications`` (the same log, as pages of JSON). See docs/events.md.

The stream starts with a ``ready`` event whose ``id:`` is where it starts, so a
client that reconnects before anything happened resumes from there too; then one
event per notification (``id:`` its id, ``event:`` its kind, ``data:`` its JSON),
and a ``: keep-alive`` comment after a quiet ``heartbeat``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from govshare.api.deps import CurrentUser, ServicesDep
from govshare.api.errors import problem_responses
from govshare.api.schemas import MAX_INT64, NotificationOut
from govshare.broker.notifications import Notifications, NotificationView, parse_cursor

router = APIRouter(prefix="/v1", tags=["events"])

EVENT_STREAM = "text/event-stream"
#: Milliseconds an EventSource waits before it reconnects.
RETRY_MS = 3000
#: What parse_cursor takes: an event id (surrounding blanks ignored; empty: none).
CURSOR_PATTERN = r"^\s*[0-9]{0,19}\s*$"
#: The same in a header (whose value HTTP strips of blanks).
CURSOR_HEADER_PATTERN = r"^[0-9]{0,19}$"
#: One event of the stream, as a client parses it.
EVENT_SCHEMA = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The event id"},
        "event": {
            "type": "string",
            "description": "ready (the first event), else the notification's kind",
        },
        "data": {
            "type": "string",
            "description": "JSON: a NotificationOut; for ready, {after, department}",
        },
        "retry": {"type": "integer", "description": "Milliseconds before reconnecting"},
    },
}


def _event(event_id: int, kind: str, data: object) -> bytes:
    # json.dumps escapes newlines: one data line, whatever a value holds
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def _render(feed: Notifications, start: int) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n".encode() + _event(
        start, "ready", {"after": start, "department": feed.svc.dept}
    )
    async for item in feed.follow(start):
        if item is None:
            yield b": keep-alive\n\n"
        else:
            yield _event(item.id, item.kind, item.to_json())


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "A stream of notifications (text/event-stream)",
            # OpenAPI before 3.2: the schema of a stream's media type is one event's
            "content": {EVENT_STREAM: {"schema": EVENT_SCHEMA}},
        },
        **problem_responses(400, 401, 403, 422, 500, 503),
    },
)
def stream_events(
    _user: CurrentUser,
    svc: ServicesDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            # the rule parse_cursor enforces (with events.bad_cursor, as EventSource
            # clients expect of a stream's own errors), stated for the document
            json_schema_extra={"pattern": CURSOR_HEADER_PATTERN},
            description="Resume after this event id (what an EventSource sends on reconnect)",
        ),
    ] = None,
    after: Annotated[
        str | None,
        Query(
            max_length=64,
            json_schema_extra={"pattern": CURSOR_PATTERN},
            description="Resume after this event id, for clients that cannot set headers "
            "(Last-Event-ID wins); 0 replays every notification",
        ),
    ] = None,
) -> StreamingResponse:
    """Follow this department's notifications as Server-Sent Events: incoming
    requests, decisions on its requests, revocations, reminders, escalations,
    deadlines approaching. Without a cursor, from now on; with one, nothing is
    lost and nothing repeated."""
    feed = svc.notifications
    cursor = parse_cursor(last_event_id, "Last-Event-ID header")
    if cursor is None:
        cursor = parse_cursor(after, "after parameter")
    start = feed.start_at(cursor)
    feed.check_capacity()
    return StreamingResponse(
        _render(feed, start),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/notifications",
    response_model=list[NotificationOut],
    responses=problem_responses(401, 403, 422, 500),
)
def list_notifications(
    _user: CurrentUser,
    svc: ServicesDep,
    after: Annotated[int, Query(ge=0, le=MAX_INT64, description="Only ids above this")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[NotificationOut]:
    """This department's notifications with ids above ``after``, oldest first:
    the stream's log, for scripts that page through it."""
    items: list[NotificationView] = svc.notifications.read_after(after, limit)
    return [NotificationOut(**n.to_json()) for n in items]
