"""Handing accepted work to Temporal within the ack deadline, or else to the outbox.

Every kind of delivery is a signal-with-start that is safe to repeat, so a delivery
that timed out here but reached Temporal anyway does no harm when the drainer repeats it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from enum import StrEnum
from typing import Any, assert_never

from opentelemetry import trace
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.outbox import Failure, Kind, NewEntry, Outbox, OutboxEntry
from leadrelay import limits
from leadrelay.contact import lead_workflow_id
from leadrelay.events import EntityEvent, RawWebhook
from leadrelay.models import Submission
from leadrelay.payloads import DATA_CONVERTER
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


@dataclasses.dataclass
class Parcel:
    """One delivery: what the outbox stores when Temporal cannot take it now."""

    kind: Kind
    workflow_id: str
    payload: dict[str, Any]


# Refusals that no retry can change: a bad id or payload, an unknown namespace.
_PERMANENT_STATUSES = frozenset(
    {
        RPCStatusCode.INVALID_ARGUMENT,
        RPCStatusCode.NOT_FOUND,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.OUT_OF_RANGE,
        RPCStatusCode.UNIMPLEMENTED,
    }
)
# A wrong or rotated credential refuses every entry alike: wait for the fix, bury nothing.
_UNREACHABLE_STATUSES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.PERMISSION_DENIED,
        RPCStatusCode.UNAUTHENTICATED,
    }
)


def classify_failure(err: BaseException) -> Failure:
    """PERMANENT errors go to the dead letters at once; an outbox entry whose payload no
    longer fits our types (TypeError, KeyError, ValueError) is permanent too, until a fix
    and a re-delivery from the dead letters."""
    if isinstance(err, RPCError):
        if err.status in _PERMANENT_STATUSES:
            return Failure.PERMANENT
        if err.status in _UNREACHABLE_STATUSES:
            return Failure.UNREACHABLE
        return Failure.RETRY
    if isinstance(err, WorkflowAlreadyStartedError):
        return Failure.RETRY
    if isinstance(err, TypeError | KeyError | ValueError):
        return Failure.PERMANENT
    if isinstance(err, RuntimeError | TimeoutError | ConnectionError):
        # RuntimeError is how a lazy client reports that it cannot connect.
        return Failure.UNREACHABLE
    return Failure.RETRY


def payload_bytes(parcel: Parcel) -> int:
    """The size Temporal would see, through our own data converter."""
    [payload] = DATA_CONVERTER.payload_converter.to_payloads([parcel.payload])
    return payload.ByteSize()


def refusal(parcel: Parcel, max_payload_bytes: int = limits.MAX_PARCEL_PAYLOAD_BYTES) -> str | None:
    """Why Temporal would refuse this parcel for good, or None."""
    if len(parcel.workflow_id) > limits.TEMPORAL_MAX_ID_CHARS:
        return f"workflow id longer than {limits.TEMPORAL_MAX_ID_CHARS} characters"
    size = payload_bytes(parcel)
    if size > max_payload_bytes:
        return f"payload of {size} bytes is over {max_payload_bytes}"
    return None


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
    def outbox(self) -> Outbox:
        return self._outbox

    @property
    def outbox_depth(self) -> int:
        return self._outbox.depth

    async def outbox_entries(self, limit: int = 100) -> list[OutboxEntry]:
        return await self._outbox.oldest(limit)

    async def deliver(self, parcels: list[Parcel]) -> Route:
        """All parcels reach Temporal within the deadline, or all go to the outbox.

        While the outbox holds anything, new parcels queue behind it, so that a person's
        submissions still arrive in order, and answers under load or during an outage do
        not wait on Temporal. That holds nobody back for long: the drainer holds back only
        a failing entry's own workflow, and moves what Temporal refuses for good to the
        dead letters. A parcel Temporal would refuse for good goes to the dead letters
        here too (callers that can answer 4xx check `refusal` first).
        """
        sendable: list[Parcel] = []
        for parcel in parcels:
            reason = refusal(parcel)
            if reason is None:
                sendable.append(parcel)
            else:
                await self._outbox.bury_new(_entry_of(parcel), f"refused before sending: {reason}")
        if not self._outbox.depth:
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(self._send(parcel) for parcel in sendable)), self._deadline
                )
                return Route.TEMPORAL
            except (TimeoutError, RPCError, RuntimeError):
                # RuntimeError is how a lazy client reports that it cannot connect.
                pass
        # The request's trace goes with the entry, so its delivery later joins that trace.
        traceparent = current_traceparent()
        await self._outbox.append([_entry_of(parcel, traceparent) for parcel in sendable])
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
            await self._send(Parcel(entry.kind, entry.workflow_id, entry.payload))

    def _send(self, parcel: Parcel) -> Awaitable[None]:
        match parcel.kind:
            case Kind.SUBMISSION:
                return self._send_submission(parcel.payload)
            case Kind.ENTITY_EVENT:
                return self._send_event(parcel.payload)
            case Kind.RAW_WEBHOOK:
                return self._send_raw(parcel.payload)
            case unknown:
                assert_never(unknown)

    async def _send_submission(self, payload: dict[str, Any]) -> None:
        submission = Submission(**payload["submission"])
        await deliver_submission(self._client, self._settings, payload["lead_key"], submission)

    async def _send_event(self, payload: dict[str, Any]) -> None:
        await deliver_entity_event(self._client, self._settings, EntityEvent(**payload))

    async def _send_raw(self, payload: dict[str, Any]) -> None:
        await deliver_raw_webhook(self._client, RawWebhook(**payload))


def _entry_of(parcel: Parcel, traceparent: str | None = None) -> NewEntry:
    return NewEntry(parcel.kind, parcel.workflow_id, parcel.payload, traceparent)
