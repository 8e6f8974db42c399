"""Handing accepted work to Temporal within the ack deadline, or else to the outbox.

Every kind of delivery is a signal-with-start that is safe to repeat, so a delivery
that timed out here but reached Temporal anyway does no harm when the drainer repeats it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from opentelemetry import trace
from temporalio.client import Client
from temporalio.service import RPCError

from api.outbox import NewEntry, Outbox, OutboxEntry
from leadrelay.contact import lead_workflow_id
from leadrelay.events import EntityEvent, RawWebhook
from leadrelay.models import Submission
from leadrelay.settings import Settings
from leadrelay.tracing import continued_trace, current_traceparent
from workflows.starts import (
    deliver_entity_event,
    deliver_raw_webhook,
    deliver_submission,
    raw_webhook_workflow_id,
)


class Route(StrEnum):
    TEMPORAL = "temporal"
    OUTBOX = "outbox"


class Kind(StrEnum):
    SUBMISSION = "submission"
    ENTITY_EVENT = "entity-event"
    RAW_WEBHOOK = "raw-webhook"


@dataclasses.dataclass
class Parcel:
    """One delivery: what the outbox stores when Temporal cannot take it now."""

    kind: Kind
    workflow_id: str
    payload: dict[str, Any]


def submission_parcel(lead_key: str, submission: Submission) -> Parcel:
    return Parcel(
        Kind.SUBMISSION,
        lead_workflow_id(lead_key),
        {"lead_key": lead_key, "submission": dataclasses.asdict(submission)},
    )


def event_parcel(event: EntityEvent) -> Parcel:
    return Parcel(Kind.ENTITY_EVENT, event.workflow_id, dataclasses.asdict(event))


def raw_webhook_parcel(raw: RawWebhook) -> Parcel:
    return Parcel(Kind.RAW_WEBHOOK, raw_webhook_workflow_id(raw), dataclasses.asdict(raw))


class Delivery:
    def __init__(
        self,
        client: Client,
        settings: Settings,
        outbox: Outbox,
        *,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._client = client
        self._tracer = tracer or trace.NoOpTracer()
        self._settings = settings
        self._outbox = outbox
        self._deadline = settings.leadrelay_ack_deadline_ms / 1000

    @property
    def outbox_depth(self) -> int:
        return self._outbox.depth

    async def outbox_entries(self, limit: int = 100) -> list[OutboxEntry]:
        return await self._outbox.oldest(limit)

    async def deliver(self, parcels: list[Parcel]) -> Route:
        """All parcels reach Temporal within the deadline, or all go to the outbox.

        While the outbox holds anything, new parcels queue behind it, so that a person's
        submissions still arrive in order.
        """
        if not self._outbox.depth:
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(self._send(parcel) for parcel in parcels)), self._deadline
                )
                return Route.TEMPORAL
            except (TimeoutError, RPCError, RuntimeError):
                # RuntimeError is how a lazy client reports that it cannot connect.
                pass
        # The request's trace goes with the entry, so its delivery later joins that trace.
        traceparent = current_traceparent()
        await self._outbox.append(
            [
                NewEntry(parcel.kind, parcel.workflow_id, parcel.payload, traceparent)
                for parcel in parcels
            ]
        )
        return Route.OUTBOX

    async def redeliver(self, entry: OutboxEntry) -> None:
        """What the outbox drainer calls: the same send, with no deadline of ours, in the
        trace of the request that accepted it."""
        with (
            continued_trace(entry.traceparent),
            self._tracer.start_as_current_span(
                "outbox redelivery",
                attributes={
                    "leadrelay.workflow_id": entry.workflow_id,
                    "leadrelay.outbox_attempts": entry.attempts,
                },
            ),
        ):
            await self._send(Parcel(Kind(entry.kind), entry.workflow_id, entry.payload))

    def _send(self, parcel: Parcel) -> Awaitable[Any]:
        senders: dict[Kind, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            Kind.SUBMISSION: self._send_submission,
            Kind.ENTITY_EVENT: self._send_event,
            Kind.RAW_WEBHOOK: self._send_raw,
        }
        return senders[parcel.kind](parcel.payload)

    async def _send_submission(self, payload: dict[str, Any]) -> None:
        submission = Submission(**payload["submission"])
        await deliver_submission(self._client, self._settings, payload["lead_key"], submission)

    async def _send_event(self, payload: dict[str, Any]) -> None:
        await deliver_entity_event(self._client, self._settings, EntityEvent(**payload))

    async def _send_raw(self, payload: dict[str, Any]) -> None:
        await deliver_raw_webhook(self._client, RawWebhook(**payload))
