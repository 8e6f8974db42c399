"""Activities that are not amoCRM requests, on their own queue so they spend none of its
budget: forwarding events downstream, and handing re-parsed webhooks to Temporal."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from leadrelay.events import EntityEvent, ForwardRequest, RawWebhook
from leadrelay.settings import Settings
from leadrelay.signing import SIGNATURE_HEADER, signature_header
from webhooks.decoder import decode_webhook
from webhooks.entity_events import entity_event

EVENT_ID_HEADER = "X-Leadrelay-Event-Id"


class ForwardFailure:
    """Failure types of `forward_event`; the entity workflow parks the non-retryable ones."""

    FAILED = "ForwardFailed"
    """No answer, a 5xx, 408 or 429: retried with backoff."""
    REJECTED = "ForwardRejected"
    """Any other 4xx: the receiver refuses this event, so repeating it cannot help."""
    UNSIGNED = "ForwardUnsigned"
    """No FORWARD_SIGNING_SECRET and the rule does not say `allow_unsigned`."""


RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})


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
        """POST the event, signed over a fresh timestamp and the body (`leadrelay.signing`).

        A 2xx is done; no answer, a 5xx, 408 or 429 is retried by the workflow's policy; any
        other 4xx is final (`ForwardRejected`), and the workflow parks the event.
        """
        body = json.dumps(request.body, ensure_ascii=False, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: request.event_id}
        secret = self._settings.forward_signing_secret
        if secret:
            headers[SIGNATURE_HEADER] = signature_header(secret, body, int(time.time()))
        elif not request.allow_unsigned:
            raise ApplicationError(
                "FORWARD_SIGNING_SECRET is not set and the rule does not allow unsigned events",
                type=ForwardFailure.UNSIGNED,
                non_retryable=True,
            )
        try:
            response = await self._http.post(request.url, content=body, headers=headers)
        except httpx.TransportError as err:
            raise ApplicationError(
                f"forward to {request.url}: {err!r}", type=ForwardFailure.FAILED
            ) from err
        if response.is_success:
            return response.status_code
        status = response.status_code
        message = f"forward to {request.url} answered {status}"
        if 400 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS:
            raise ApplicationError(message, type=ForwardFailure.REJECTED, non_retryable=True)
        raise ApplicationError(
            message, type=ForwardFailure.FAILED, next_retry_delay=_retry_after(response)
        )

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


def _retry_after(response: httpx.Response) -> timedelta | None:
    """A receiver's `Retry-After` in seconds (on a 429 or 503), when it gives one."""
    value = response.headers.get("Retry-After", "")
    return timedelta(seconds=min(int(value), 3600)) if value.isascii() and value.isdigit() else None
