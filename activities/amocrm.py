"""amoCRM activities: one HTTP request each, on the rate-limited amoCRM task queue.

They translate the client's errors into Temporal failures whose type tells the retry
policy (and the workflow) what to do; see `AmoFailure`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from amocrm.client import AmoClient
from amocrm.errors import (
    AmoAuthError,
    AmoBlocked,
    AmoError,
    AmoOutcomeUnknown,
    AmoRateLimited,
    AmoRejected,
)
from amocrm.models import (
    Contact,
    CreatedLead,
    Lead,
    LeadChange,
    MultitextValue,
    NewLead,
    Pipeline,
    Rejection,
    complex_item,
    parse_lead,
    rejected_parts,
)
from leadrelay.contact import national_digits, same_phone
from leadrelay.custom_fields import CatalogueRequest, CustomField, FieldCatalogue
from leadrelay.events import RECONCILIATION, EntityEvent
from leadrelay.models import FailureKind
from webhooks.decoder import WebhookEvent
from webhooks.entity_events import entity_event

T = TypeVar("T")

AMOCRM_REQUESTS_METRIC = "leadrelay_amocrm_requests"
LEADS_CREATED_METRIC = "leadrelay_leads_created"


class AmoFailure:
    """Groups of the failure types (FailureKind) the workflows' retry policies name."""

    NON_RETRYABLE = (FailureKind.AUTH, FailureKind.REJECTED)
    # amoCRM refused these before doing anything, so a write that failed so was not applied.
    NOT_APPLIED = (FailureKind.RATE_LIMITED, FailureKind.BLOCKED)


@dataclass
class ContactQuery:
    phone: str | None
    email: str | None


@dataclass
class ContactSearch:
    query: ContactQuery
    next_page: str | None = None
    """The link a previous page gave; None reads the first page."""


@dataclass
class ContactsPage:
    contacts: list[Contact]
    next_page: str | None


@dataclass
class LeadsRead:
    lead_ids: list[int]
    next_page: str | None = None


@dataclass
class LeadsPage:
    leads: list[Lead]
    next_page: str | None


@dataclass
class CataloguePageRead:
    request: CatalogueRequest
    page: int = 1


@dataclass
class CataloguePage:
    """The requested fields found on one page of a catalogue, and the next page's number."""

    fields: list[CustomField]
    next_page: int | None


@dataclass
class UsersPage:
    user_ids: list[int]
    next_page: int | None


@dataclass
class LeadTags:
    lead_id: int
    tags: list[str]


@dataclass
class ContactPhone:
    """A phone to add to a contact that keeps `current`, the phones it has."""

    contact_id: int
    phone: str
    current: list[MultitextValue]


@dataclass
class LeadNote:
    lead_id: int
    text: str


@dataclass
class MarkerLookup:
    """A note or task on a lead whose text contains `marker`."""

    lead_id: int
    marker: str


@dataclass
class LeadTask:
    lead_id: int
    text: str
    complete_till: int


@dataclass
class CurrentLead:
    """The lead re-read from amoCRM: `raw` goes downstream, `lead` is what we check."""

    lead: Lead
    raw: dict[str, Any]


@dataclass
class EventsWindow:
    created_from: int
    page: int = 1


@dataclass
class EventsPage:
    events: list[EntityEvent]
    has_next: bool


def to_application_error(err: AmoError, rejection: Rejection | None = None) -> ApplicationError:
    """`rejection`: the optional parts of the request that a 400 refused, if only those."""
    status = {"status": err.status, "request_id": err.request_id}
    if isinstance(err, AmoRateLimited):
        delay = timedelta(seconds=err.retry_after) if err.retry_after else None
        return ApplicationError(
            str(err), status, type=FailureKind.RATE_LIMITED, next_retry_delay=delay
        )
    if isinstance(err, AmoBlocked):
        return ApplicationError(
            str(err),
            status,
            type=FailureKind.BLOCKED,
            next_retry_delay=timedelta(seconds=max(err.retry_after, 1.0)),
        )
    if isinstance(err, AmoAuthError):
        return ApplicationError(str(err), status, type=FailureKind.AUTH, non_retryable=True)
    if isinstance(err, AmoRejected):
        return ApplicationError(
            str(err),
            {
                **status,
                "problems": err.problems,
                "rejection": asdict(rejection) if rejection else None,
                "rejected_items": err.rejected_items,
            },
            type=FailureKind.REJECTED,
            non_retryable=True,
        )
    assert isinstance(err, AmoOutcomeUnknown), err
    return ApplicationError(str(err), status, type=FailureKind.OUTCOME_UNKNOWN)


def _status_change(raw: dict[str, Any], received_at: str) -> EntityEvent | None:
    after = _lead_status(raw.get("value_after"))
    before = _lead_status(raw.get("value_before"))
    change = WebhookEvent(
        entity="leads",
        action="status",
        entity_id=_int_or_none(raw.get("entity_id")),
        status_id=after.get("id"),
        pipeline_id=after.get("pipeline_id"),
        old_status_id=before.get("id"),
        old_pipeline_id=before.get("pipeline_id"),
        last_modified=_int_or_none(raw.get("created_at")),
        item=raw,
    )
    return entity_event(change, source=RECONCILIATION, received_at=received_at)


def _lead_status(values: Any) -> dict[str, int]:
    for value in values or []:
        status = value.get("lead_status") if isinstance(value, dict) else None
        if isinstance(status, dict):
            return {k: int(v) for k, v in status.items() if k in ("id", "pipeline_id")}
    return {}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class AmoActivities:
    def __init__(self, client: AmoClient, *, phone_region: str) -> None:
        self._client = client
        self._phone_region = phone_region

    @activity.defn(name="amocrm.search_contacts_page")
    async def search_contacts_page(self, search: ContactSearch) -> ContactsPage:
        """One page of contacts whose PHONE (or, without a phone, EMAIL) really is this
        person's, and the link to the next page.

        amoCRM's `query` is full-text over every field, so each hit is re-checked.
        """
        query = search.query
        text = national_digits(query.phone) if query.phone else query.email
        assert text, "a contact query needs a phone or an email"
        found, next_page = await self._call(self._client.search_contacts(text, search.next_page))
        if query.phone:
            phone = query.phone
            mine = [
                c for c in found if any(same_phone(p, phone, self._phone_region) for p in c.phones)
            ]
        else:
            email = query.email or ""
            mine = [c for c in found if any(e.strip().lower() == email for e in c.emails)]
        return ContactsPage(mine, next_page)

    @activity.defn(name="amocrm.search_contacts")
    async def search_contacts(self, query: ContactQuery) -> list[Contact]:
        """The first page only; workflows recorded before paging still call it."""
        return (await self.search_contacts_page(ContactSearch(query))).contacts

    @activity.defn(name="amocrm.create_lead")
    async def create_lead(self, lead: NewLead) -> CreatedLead:
        """A 400 over optional parts names them in the failure's `rejection` detail."""
        created = await self._call(
            self._client.create_leads_complex([lead]), body_of=lambda: complex_item(lead)
        )
        activity.metric_meter().create_counter(
            LEADS_CREATED_METRIC, "Leads created in amoCRM by create_lead"
        ).add(1)
        return created[0]

    @activity.defn(name="amocrm.read_leads_page")
    async def read_leads_page(self, read: LeadsRead) -> LeadsPage:
        """One page of these leads (deleted ones are missing), and the next page's link."""
        leads, next_page = await self._call(self._client.get_leads(read.lead_ids, read.next_page))
        return LeadsPage(leads, next_page)

    @activity.defn(name="amocrm.read_leads")
    async def read_leads(self, lead_ids: list[int]) -> list[Lead]:
        """The first page only; workflows recorded before paging still call it."""
        return (await self.read_leads_page(LeadsRead(lead_ids))).leads

    @activity.defn(name="amocrm.add_lead_tags")
    async def add_lead_tags(self, request: LeadTags) -> None:
        await self._call(self._client.add_lead_tags(request.lead_id, request.tags))

    @activity.defn(name="amocrm.update_lead")
    async def update_lead(self, change: LeadChange) -> None:
        """Tags and field values in one PATCH; a 400 over fields names them, as create does."""
        await self._call(self._client.update_lead(change), body_of=change.body)

    @activity.defn(name="amocrm.add_contact_phone")
    async def add_contact_phone(self, request: ContactPhone) -> None:
        phones = [*request.current, MultitextValue(request.phone, "MOB")]
        await self._call(self._client.set_contact_phones(request.contact_id, phones))

    @activity.defn(name="amocrm.read_field_catalogue_page")
    async def read_field_catalogue_page(self, read: CataloguePageRead) -> CataloguePage:
        """The requested fields on one page (250) of an entity's catalogue."""
        request = read.request
        found, more = await self._call(self._client.custom_fields_page(request.entity, read.page))
        wanted = set(request.field_ids)
        fields = [custom_field for custom_field in found if custom_field.id in wanted]
        return CataloguePage(fields, read.page + 1 if more else None)

    @activity.defn(name="amocrm.read_field_catalogue")
    async def read_field_catalogue(self, request: CatalogueRequest) -> FieldCatalogue:
        """The first page only; workflows recorded before catalogue paging still call it."""
        page = await self.read_field_catalogue_page(CataloguePageRead(request))
        return FieldCatalogue(request.entity, page.fields, covers=sorted(set(request.field_ids)))

    @activity.defn(name="amocrm.read_pipelines")
    async def read_pipelines(self) -> list[Pipeline]:
        return await self._call(self._client.pipelines())

    @activity.defn(name="amocrm.read_users_page")
    async def read_users_page(self, page: int) -> UsersPage:
        """The ids of one page (250) of the account's users, and the next page's number."""
        users, more = await self._call(self._client.users_page(page))
        return UsersPage([user.id for user in users], page + 1 if more else None)

    @activity.defn(name="amocrm.add_lead_note")
    async def add_lead_note(self, request: LeadNote) -> None:
        await self._call(self._client.add_lead_note(request.lead_id, request.text))

    @activity.defn(name="amocrm.lead_has_note")
    async def lead_has_note(self, lookup: MarkerLookup) -> bool:
        texts = await self._call(self._client.lead_note_texts(lookup.lead_id))
        return any(lookup.marker in text for text in texts)

    @activity.defn(name="amocrm.lead_has_task")
    async def lead_has_task(self, lookup: MarkerLookup) -> bool:
        texts = await self._call(self._client.lead_task_texts(lookup.lead_id))
        return any(lookup.marker in text for text in texts)

    @activity.defn(name="amocrm.read_current_lead")
    async def read_current_lead(self, lead_id: int) -> CurrentLead | None:
        """The lead as amoCRM has it now; None when it was deleted."""
        raw = await self._call(self._client.get_lead_with_contacts(lead_id))
        return None if raw is None else CurrentLead(lead=parse_lead(raw), raw=raw)

    @activity.defn(name="amocrm.add_lead_task")
    async def add_lead_task(self, request: LeadTask) -> None:
        await self._call(
            self._client.add_lead_task(request.lead_id, request.text, request.complete_till)
        )

    @activity.defn(name="amocrm.read_status_events")
    async def read_status_events(self, window: EventsWindow) -> EventsPage:
        """Status changes amoCRM recorded, keyed exactly as their webhooks would be."""
        raw_events, has_next = await self._call(
            self._client.lead_status_events(window.created_from, window.page)
        )
        received_at = datetime.now(UTC).isoformat()
        events = [
            entity_event
            for raw in raw_events
            if (entity_event := _status_change(raw, received_at)) is not None
        ]
        return EventsPage(events=events, has_next=has_next)

    @activity.defn(name="amocrm.main_pipeline_id")
    async def main_pipeline_id(self) -> int:
        return await self._call(self._client.main_pipeline_id())

    async def _call(
        self, request: Awaitable[T], body_of: Callable[[], dict[str, Any]] | None = None
    ) -> T:
        return await amocrm_request(request, body_of)


async def amocrm_request(
    request: Awaitable[T], body_of: Callable[[], dict[str, Any]] | None = None
) -> T:
    """Awaits one client call inside an activity: counted, and failed as an `AmoFailure`.

    `body_of`: the request's body, to tell which optional parts amoCRM refused."""
    try:
        result = await request
    except AmoError as err:
        _count_request(type(err).__name__)
        activity.logger.warning("amoCRM request failed: %s", err)
        rejection = None
        if isinstance(err, AmoRejected) and body_of is not None:
            rejection = rejected_parts(body_of(), err.paths)
        raise to_application_error(err, rejection) from err
    _count_request("success")
    return result


def _count_request(outcome: str) -> None:
    # The activity's meter already labels activity_type, namespace and task_queue.
    activity.metric_meter().create_counter(
        AMOCRM_REQUESTS_METRIC, "amoCRM requests by outcome: success or the AmoError type"
    ).add(1, {"outcome": outcome})
