"""`POST /api/amocrm/{hook}`: amoCRM webhooks, always answered 2xx within the deadline.

amoCRM disables a hook after 100 bad answers in 2 hours and waits only 2 seconds, so
whatever the body, a caller with the right token gets a 2xx. Nothing is lost: parsed
events go to their entity workflows, and any body with problems is kept raw as well.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse

from api.auth import same_secret
from api.delivery import Parcel, event_parcel, raw_webhook_parcel
from api.deps import DeliveryDep, FormsDep, MetricsDep, SettingsDep, Slug
from api.throttle import client_throttled
from leadrelay.events import EntityEvent, RawWebhook
from leadrelay.forms import FormsFile
from leadrelay.limits import MAX_WEBHOOK_BYTES
from leadrelay.settings import Settings
from leadrelay.tracing import annotate_span
from webhooks.decoder import CHAT_MESSAGE, DecodedWebhook, decode_webhook
from webhooks.entity_events import entity_event as to_entity_event

router = APIRouter(tags=["amocrm webhooks"])


@router.post("/api/amocrm/{hook}")
async def receive_webhook(
    hook: Slug,
    request: Request,
    settings: SettingsDep,
    delivery: DeliveryDep,
    metrics: MetricsDep,
    forms: FormsDep,
    token: Annotated[str, Query()] = "",
) -> JSONResponse:
    if not same_secret(token, settings.webhook_token):
        # The per-address limit applies to callers without the token only: amoCRM sends
        # from few addresses, and a 429 counts toward disabling its hook.
        throttled = client_throttled(request)
        if throttled is not None:
            return throttled
        # Unauthenticated callers choose the hook name: it is not theirs to label.
        metrics.webhooks.labels("", "unauthorized").inc()
        return JSONResponse(
            status_code=status.HTTP_401_UNAUTHORIZED,
            content={"detail": "wrong or missing ?token= (WEBHOOK_TOKEN)"},
        )
    raw, truncated = await _read_capped(request)
    decoded = decode_webhook(raw, request.headers.get("content-type"))
    received_at = datetime.now(UTC).isoformat()
    problems = list(decoded.problems)
    if truncated:
        problems.append(f"body longer than {MAX_WEBHOOK_BYTES} bytes; kept the first part")
    foreign = _foreign_account(decoded, settings)
    if foreign:
        problems.append(foreign)

    parcels: list[Parcel] = []
    events = [] if foreign else _entity_events(decoded, hook, received_at, problems)
    chat_messages = sum(event.action == CHAT_MESSAGE for event in events)
    if chat_messages:
        wanted = _chat_messages_wanted(forms)
        metrics.chat_messages.labels(hook, "delivered" if wanted else "counted").inc(chat_messages)
        if not wanted:
            events = [event for event in events if event.action != CHAT_MESSAGE]
    parcels.extend(event_parcel(event) for event in events)
    if problems:
        kept = RawWebhook(
            hook=hook,
            body_base64=base64.b64encode(raw).decode(),
            content_type=request.headers.get("content-type"),
            received_at=received_at,
            problems=problems,
        )
        parcels.append(raw_webhook_parcel(kept))
    annotate_span(
        hook=hook, workflow_ids=[parcel.workflow_id for parcel in parcels], kept_raw=bool(problems)
    )
    route = await delivery.deliver(parcels) if parcels else None
    metrics.webhooks.labels(hook, "raw" if problems else "events").inc()
    return JSONResponse(
        status_code=status.HTTP_200_OK,
        content={
            "events": len(events),
            "chat_messages": chat_messages,
            "kept_raw": bool(problems),
            "problems": problems,
            "delivered_via": route,
        },
    )


def _entity_events(
    decoded: DecodedWebhook, hook: str, received_at: str, problems: list[str]
) -> list[EntityEvent]:
    events = []
    for event in decoded.events:
        entity_event = to_entity_event(event, source=f"webhook:{hook}", received_at=received_at)
        if entity_event is None:
            problems.append(f"{event.entity}[{event.action}] item without an id")
        else:
            events.append(entity_event)
    return events


def _chat_messages_wanted(forms: FormsFile) -> bool:
    """Chat messages are many and rarely acted on: each starts a workflow only when a rule
    asks for action `message`. A forms file that cannot be read delivers them, to lose none."""
    try:
        return forms.current().acts_on(CHAT_MESSAGE)
    except Exception:
        logging.getLogger(__name__).exception("forms file unreadable; delivering chat messages")
        return True


def _foreign_account(decoded: DecodedWebhook, settings: Settings) -> str | None:
    """A reason not to act on the webhook, when it names another account than ours."""
    subdomain, account_id = settings.amocrm_account_subdomain, settings.amocrm_account_id
    if subdomain and decoded.account_subdomain not in (None, subdomain):
        return f"account subdomain {decoded.account_subdomain!r} is not {subdomain!r}"
    if account_id and decoded.account_id not in (None, account_id):
        return f"account id {decoded.account_id} is not {account_id}"
    return None


async def _read_capped(request: Request) -> tuple[bytes, bool]:
    """Never refuse a webhook for its size: keep the first megabyte and say so."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            return b"".join(chunks)[:MAX_WEBHOOK_BYTES], True
    return b"".join(chunks), False
