"""What crosses the Temporal boundary on the webhook side: entity events and their state."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

RECONCILIATION = "reconciliation"
_SINGULAR = {
    "leads": "lead",
    "contacts": "contact",
    "companies": "company",
    "customers": "customer",
}


@dataclass
class EntityEvent:
    """One change of one amoCRM entity, from a webhook or from reconciliation."""

    dedup_key: str
    source: str
    entity: str
    action: str
    entity_id: int
    status_id: int | None = None
    pipeline_id: int | None = None
    old_status_id: int | None = None
    last_modified: int | None = None
    received_at: str = ""
    item: dict[str, Any] = field(default_factory=dict)

    @property
    def workflow_id(self) -> str:
        return entity_workflow_id(self.entity, self.entity_id)


def entity_workflow_id(entity: str, entity_id: int) -> str:
    """Readable in the UI: `amocrm-lead-25399013`."""
    return f"amocrm-{_SINGULAR.get(entity, entity)}-{entity_id}"


@dataclass
class EntityStart:
    entity: str
    entity_id: int
    memory_seconds: float
    carried: EntityState | None = None


class ActionKind(StrEnum):
    """What a rule's action does: `forward` the event, or write a `note` or a `task`."""

    FORWARD = "forward"
    NOTE = "note"
    TASK = "task"


class Outcome(StrEnum):
    """How `ActionTaken.outcome` starts; details may follow it."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_CONFIRMED = "not confirmed"
    LEAD_DELETED = "lead deleted"
    DEAD_LETTER = "dead letter"


WHOLE_EVENT: Final = "-"
"""`ActionTaken.rule` and `.action` of a record about the whole event, not one action."""


@dataclass
class ActionTaken:
    dedup_key: str
    # A rule's name, or WHOLE_EVENT.
    rule: str
    # An ActionKind, or WHOLE_EVENT.
    action: str
    # An Outcome, then details.
    outcome: str
    at: str


@dataclass
class EntityState:
    entity: str
    entity_id: int
    pending: list[EntityEvent] = field(default_factory=list)
    handled_keys: list[str] = field(default_factory=list)
    events_seen: int = 0
    events_handled: int = 0
    duplicates_dropped: int = 0
    # Events that did not fit the pending budget even without their raw item.
    events_refused: int = 0
    last_status_id: int | None = None
    actions: list[ActionTaken] = field(default_factory=list)
    runs: int = 1
    # The newest events set aside by `skip`, without their raw item (at most
    # `limits.SKIPPED_KEPT`); all are counted.
    skipped: list[EntityEvent] = field(default_factory=list)
    events_skipped: int = 0
    # Forwards whose receiver did not take them within their rule's `give_up_after_hours`
    # (the newest `limits.DEAD_LETTERS_KEPT`); all are counted.
    dead_letters: list[ForwardDeadLetter] = field(default_factory=list)
    forwards_dead_lettered: int = 0
    # The pending event waiting for an operator's retry or skip, across continue-as-new.
    parked_event_key: str | None = None


@dataclass
class ForwardDeadLetter:
    """A forward that was given up on: its event is kept (without the raw item) to resend."""

    rule: str
    url: str
    reason: str
    at: str
    event: EntityEvent


@dataclass
class PlannedAction:
    """One action of one matching rule, as the forms file says it at the time."""

    rule: str
    kind: ActionKind
    url: str | None = None
    text: str | None = None
    due_in_hours: float = 24.0
    allow_unsigned: bool = False
    give_up_after_hours: float = 72.0


@dataclass
class ForwardRequest:
    url: str
    event_id: str
    body: dict[str, Any]
    allow_unsigned: bool = False


@dataclass
class RawWebhook:
    """A webhook body that could not be (fully) understood, kept byte for byte."""

    hook: str
    body_base64: str
    content_type: str | None
    received_at: str
    problems: list[str]
