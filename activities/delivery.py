"""Activities that are not amoCRM requests, on their own queue so they spend none of its
budget: forwarding events downstream, and handing re-parsed webhooks to Temporal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from leadrelay.events import EntityEvent, ForwardRequest, RawWebhook
from leadrelay.settings import Settings
from webhooks.decoder import decode_webhook
from webhooks.entity_events import entity_event

SIGNATURE_HEADER = "X-Leadrelay-Signature"
EVENT_ID_HEADER = "X-Leadrelay-Event-Id"
FORWARD_FAILED = "ForwardFailed"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def events_of(raw: RawWebhook) -> list[EntityEvent]:
    """Decode a kept body with the decoder as it is now (after a fix, say)."""
    decoded = decode_webhook(base64.b64decode(raw.body_base64), raw.content_type)
    events = (
        entity_event(event, source=f"webhook:{raw.hook}", received_at=raw.received_at)
        for event in decoded.events
    )
    return [event for event in events if event is not None]


DeliverEntityEvent = Callable[[EntityEvent], Awaitable[None]]
"""Hands one event to its entity workflow; the worker injects it, so that activities need
not know the workflows that they feed."""


ResyncLeadsOf = Callable[[int], Awaitable[int]]
"""Signals `resync` to the running lead workflows that know this amoCRM lead id; how many.
Injected by the worker, like `DeliverEntityEvent`."""


class DeliveryActivities:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        deliver_event: DeliverEntityEvent,
        resync_leads_of: ResyncLeadsOf,
    ) -> None:
        self._settings = settings
        self._http = http
        self._deliver_event = deliver_event
        self._resync_leads_of = resync_leads_of

    @activity.defn(name="leadrelay.forward_event")
    async def forward_event(self, request: ForwardRequest) -> int:
        """POST the event, signed; anything but a 2xx is retried by the workflow's policy."""
        body = json.dumps(request.body, ensure_ascii=False, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: request.event_id}
        if self._settings.forward_signing_secret:
            headers[SIGNATURE_HEADER] = sign(self._settings.forward_signing_secret, body)
        try:
            response = await self._http.post(request.url, content=body, headers=headers)
        except httpx.TransportError as err:
            raise ApplicationError(
                f"forward to {request.url}: {err!r}", type="ForwardFailed"
            ) from err
        if not response.is_success:
            raise ApplicationError(
                f"forward to {request.url} answered {response.status_code}", type="ForwardFailed"
            )
        return response.status_code

    @activity.defn(name="leadrelay.announce_lead_deleted")
    async def announce_lead_deleted(self, lead_id: int) -> int:
        """Lead workflows that knew this (deleted) lead search amoCRM again; how many."""
        return await self._resync_leads_of(lead_id)

    @activity.defn(name="leadrelay.redeliver_raw_webhook")
    async def redeliver_raw_webhook(self, raw: RawWebhook) -> int:
        """Events found in a kept body, each handed to its entity workflow; how many."""
        events = events_of(raw)
        await self.deliver_entity_events(events)
        return len(events)

    @activity.defn(name="leadrelay.deliver_entity_events")
    async def deliver_entity_events(self, events: list[EntityEvent]) -> None:
        for event in events:
            await self._deliver_event(event)
