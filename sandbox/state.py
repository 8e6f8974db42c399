"""The in-memory amoCRM account behind one sandbox app, and the ledger of requests it received."""

import itertools
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.faults import Faults
from sandbox.oauth_state import OAuthServer
from sandbox.traffic import TrafficControl
from sandbox.webhook_outbox import WebhookOutbox

ACCOUNT_ID = 29000000
DEFAULT_RESPONSIBLE_USER_ID = 8000001
INCOMING_STATUS_TYPE = 1
WON_STATUS_ID = 142
LOST_STATUS_ID = 143
CLOSED_STATUS_IDS = frozenset({WON_STATUS_ID, LOST_STATUS_ID})
LEAD_ADDED = "lead_added"
LEAD_STATUS_CHANGED = "lead_status_changed"

JSON = Any


@dataclass(frozen=True)
class Status:
    id: int
    name: str
    sort: int
    color: str
    type: int = 0
    is_editable: bool = True


@dataclass(frozen=True)
class Pipeline:
    id: int
    name: str
    sort: int
    is_main: bool
    statuses: tuple[Status, ...]

    def has_status(self, status_id: int) -> bool:
        return any(status.id == status_id for status in self.statuses)

    def default_status_id(self) -> int:
        """Where amoCRM puts a lead created without a status: the first stage after "incoming"."""
        by_sort = sorted(self.statuses, key=lambda status: status.sort)
        return next(status.id for status in by_sort if status.type != INCOMING_STATUS_TYPE)


@dataclass(frozen=True)
class EnumOption:
    id: int
    value: str
    sort: int


@dataclass(frozen=True)
class CustomField:
    """One field of an entity's catalogue. Multitext fields (PHONE, EMAIL) name their enums by
    code (WORK, MOB ...); select, radio and multiselect enums are the labels a manager sees."""

    id: int
    name: str
    type: str
    sort: int
    code: str | None = None
    enums: tuple[EnumOption, ...] = ()

    def enum_with_id(self, enum_id: int) -> EnumOption | None:
        return next((option for option in self.enums if option.id == enum_id), None)

    def enum_with_value(self, value: str) -> EnumOption | None:
        return next((option for option in self.enums if option.value == value), None)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str
    is_admin: bool = False


@dataclass
class Tag:
    id: int
    name: str


@dataclass
class Contact:
    id: int
    name: str
    first_name: str
    last_name: str
    responsible_user_id: int
    created_at: int
    updated_at: int
    custom_fields_values: list[dict[str, JSON]] | None
    tag_ids: list[int] = field(default_factory=list)
    lead_ids: list[int] = field(default_factory=list)

    def field_values(self, field_code: str | None = None) -> list[str]:
        return [
            str(value["value"])
            for custom_field in self.custom_fields_values or []
            if field_code is None or custom_field["field_code"] == field_code
            for value in custom_field["values"]
        ]


@dataclass
class Lead:
    id: int
    name: str
    price: int
    responsible_user_id: int
    pipeline_id: int
    status_id: int
    created_at: int
    updated_at: int
    closed_at: int | None
    custom_fields_values: list[JSON] | None
    tag_ids: list[int] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)


@dataclass
class Note:
    id: int
    entity_id: int
    note_type: str
    params: dict[str, JSON]
    created_at: int
    updated_at: int


@dataclass
class Task:
    id: int
    text: str
    complete_till: int
    entity_id: int
    entity_type: str
    task_type_id: int
    responsible_user_id: int
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Stage:
    pipeline_id: int
    status_id: int


@dataclass(frozen=True)
class Event:
    """A lead's entry in amoCRM's event log, which reconciliation reads when webhooks go missing."""

    id: str
    type: str
    entity_id: int
    created_at: int
    before: Stage | None
    after: Stage
    entity_type: str = "lead"  # the sandbox logs nothing but lead events


@dataclass
class LedgerEntry:
    t: float
    method: str
    path: str
    query: str
    body: JSON
    status: int | None = None  # filled in once the answer is known

    def as_json(self) -> dict[str, JSON]:
        return {
            "t": self.t,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "body": self.body,
        }


def unix_now() -> int:
    return int(time.time())


class SandboxAccount:
    def __init__(
        self,
        pipelines: Iterable[Pipeline],
        lead_fields: Iterable[CustomField],
        contact_fields: Iterable[CustomField],
        users: Iterable[User],
    ):
        self.pipelines = {pipeline.id: pipeline for pipeline in pipelines}
        self._seed_fields = {"leads": list(lead_fields), "contacts": list(contact_fields)}
        self.users = {user.id: user for user in users}
        self.rng = random.Random()
        # Ids keep growing across resets so that a stale id from an earlier test never resolves.
        self._contact_ids = itertools.count(20000001)
        self._lead_ids = itertools.count(30000001)
        self._note_ids = itertools.count(40000001)
        self._tag_ids = itertools.count(50001)
        self._task_ids = itertools.count(60000001)
        self._event_ids = itertools.count(1)
        # Kept across resets, so that webhook sends in flight during a reset are not dropped.
        self.webhooks = WebhookOutbox(ACCOUNT_ID)
        self.reset()

    def reset(self) -> None:
        # A test may delete fields, as a manager can in amoCRM's settings; reset restores them.
        self.custom_fields = {entity: list(fields) for entity, fields in self._seed_fields.items()}
        self.contacts: dict[int, Contact] = {}
        self.leads: dict[int, Lead] = {}
        # Leads a manager deleted: `GET /api/v4/leads/{id}` answers them with 204.
        self.deleted_lead_ids: set[int] = set()
        self.notes: dict[int, Note] = {}
        self.tags: dict[int, Tag] = {}
        self.tasks: dict[int, Task] = {}
        self.events: list[Event] = []
        self.webhooks.clear()
        self.ledger: list[LedgerEntry] = []
        self.faults = Faults()
        self.traffic = TrafficControl()
        self.oauth: OAuthServer | None = None  # seeded through POST /_sandbox/oauth

    @property
    def main_pipeline(self) -> Pipeline:
        return next(pipeline for pipeline in self.pipelines.values() if pipeline.is_main)

    def custom_field(
        self, entity: str, *, code: str | None, field_id: int | None
    ) -> CustomField | None:
        """The field an entry names by `field_id` or, for fields that have one, `field_code`."""
        return next(
            (
                custom_field
                for custom_field in self.custom_fields[entity]
                if (field_id is not None and custom_field.id == field_id)
                or (code is not None and custom_field.code == code)
            ),
            None,
        )

    def next_contact_id(self) -> int:
        return next(self._contact_ids)

    def next_lead_id(self) -> int:
        return next(self._lead_ids)

    def next_note_id(self) -> int:
        return next(self._note_ids)

    def next_task_id(self) -> int:
        return next(self._task_ids)

    def record_event(
        self, event_type: str, lead: Lead, before: Stage | None, after: Stage
    ) -> Event:
        # amoCRM's event ids are opaque 26-character strings, not numbers.
        event_id = f"01{next(self._event_ids):024x}"
        event = Event(event_id, event_type, lead.id, lead.updated_at, before, after)
        self.events.append(event)
        return event

    def tag_named(self, name: str) -> Tag:
        """The account's tag with this name, created on first use, as amoCRM does."""
        existing = next((tag for tag in self.tags.values() if tag.name == name), None)
        if existing is not None:
            return existing
        tag = Tag(next(self._tag_ids), name)
        self.tags[tag.id] = tag
        return tag

    def delete_lead(self, lead_id: int) -> None:
        """As a manager deleting it: it leaves every list and its contacts' links."""
        self.leads.pop(lead_id)
        self.deleted_lead_ids.add(lead_id)
        for contact in self.contacts.values():
            if lead_id in contact.lead_ids:
                contact.lead_ids.remove(lead_id)

    def notes_of_lead(self, lead_id: int) -> list[Note]:
        return [note for note in self.notes.values() if note.entity_id == lead_id]
