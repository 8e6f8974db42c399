"""Batched amoCRM writes: many leads, or many notes, in ONE request per activity.

The batcher workflows (`workflows/batcher.py`) call these. Each item carries its
`request_id` and amoCRM echoes it per item, so answers are matched by it, never by
position. An item missing from the answer is reported missing; its outcome is unknown.
The activity's span links to every member lead's trace (see `link_members`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio import activity

from activities.amocrm import LEADS_CREATED_METRIC, amocrm_request
from amocrm.client import AmoClient
from amocrm.models import CreatedLead, CreatedNote, NewLead, NewNote, complex_item
from leadrelay.telemetry import SPEED_TO_LEAD_METRIC
from leadrelay.tracing import link_members

MAX_BATCH_ITEMS = 50
"""amoCRM's limit for `leads/complex`, and its recommended size for notes."""


@dataclass
class LeadToCreate:
    lead: NewLead
    # When the API answered 202 for the submission (ISO 8601), for speed-to-lead.
    received_at: str | None = None
    # The lead workflow it is written for, and that workflow's trace (W3C traceparent).
    requester: str = ""
    traceparent: str | None = None


@dataclass
class NoteToAdd:
    note: NewNote
    received_at: str | None = None
    requester: str = ""
    traceparent: str | None = None


@dataclass
class LeadsBatch:
    items: list[LeadToCreate] = field(default_factory=list)
    label: str = ""  # `<batcher id>/<number>`, for its span


@dataclass
class NotesBatch:
    items: list[NoteToAdd] = field(default_factory=list)
    label: str = ""


class AmoBatchActivities:
    def __init__(self, client: AmoClient) -> None:
        self._client = client

    @activity.defn(name="amocrm.create_leads_batch")
    async def create_leads_batch(self, batch: LeadsBatch) -> list[CreatedLead]:
        leads = [item.lead for item in batch.items]
        assert 0 < len(leads) <= MAX_BATCH_ITEMS, len(leads)
        assert all(lead.request_id for lead in leads), "every batched lead needs a request_id"
        link_members(batch.label, [(item.requester, item.traceparent) for item in batch.items])
        # Alone, a 400 over optional parts (a field, the manager) names them, as
        # create_lead does, so the lead workflow can leave them out and create at once.
        body_of = (lambda: complex_item(leads[0])) if len(leads) == 1 else None
        created = await amocrm_request(self._client.create_leads_complex(leads), body_of)
        activity.metric_meter().create_counter(
            LEADS_CREATED_METRIC, "Leads created in amoCRM by create_lead"
        ).add(len(created))
        received = {item.lead.request_id: item.received_at for item in batch.items}
        _record_speed("lead", [received.get(answer.request_id) for answer in created])
        return created

    @activity.defn(name="amocrm.add_notes_batch")
    async def add_notes_batch(self, batch: NotesBatch) -> list[CreatedNote]:
        notes = [item.note for item in batch.items]
        assert 0 < len(notes) <= MAX_BATCH_ITEMS, len(notes)
        assert all(note.request_id for note in notes), "every batched note needs a request_id"
        link_members(batch.label, [(item.requester, item.traceparent) for item in batch.items])
        created = await amocrm_request(self._client.add_lead_notes(notes))
        received = {item.note.request_id: item.received_at for item in batch.items}
        _record_speed("note", [received.get(answer.request_id) for answer in created])
        return created


def _record_speed(milestone: str, received_at: list[str | None]) -> None:
    histogram = activity.metric_meter().create_histogram_float(
        SPEED_TO_LEAD_METRIC,
        "Seconds from the submission's 202 until its lead (or note) exists in amoCRM",
        "s",
    )
    now = datetime.now(UTC)
    for moment in received_at:
        seconds = _seconds_since(moment, now)
        if seconds is not None:
            histogram.record(seconds, {"milestone": milestone})


def _seconds_since(moment: str | None, now: datetime) -> float | None:
    try:
        then = datetime.fromisoformat(moment) if moment else None
    except ValueError:
        return None
    if then is None or then.tzinfo is None:
        return None
    return max(0.0, (now - then).total_seconds())
