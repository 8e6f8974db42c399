"""How workflows call amoCRM: on the rate-limited queue, with one retry policy.

Writes whose answer can be lost after amoCRM applied them (a create, a note, a task) are the
exception: they are tried once at a time, and looked for before they are written again
(`write_once`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.amocrm import (
        AmoActivities,
        AmoFailure,
        CataloguePageRead,
        ContactQuery,
        ContactSearch,
        LeadNote,
        LeadsRead,
        LeadTask,
        MarkerLookup,
    )
    from amocrm.models import Contact, Lead, Rejection
    from leadrelay.bounded import cut_text
    from leadrelay.custom_fields import CatalogueRequest, FieldCatalogue
    from leadrelay.limits import AMOCRM_PAGES_MAX, ERROR_MESSAGE_CHARS
    from leadrelay.models import FailureKind, LeadError
    from leadrelay.settings import AMOCRM_TASK_QUEUE

T = TypeVar("T")
A = TypeVar("A")
W = TypeVar("W")
F = TypeVar("F")
Input = TypeVar("Input")
P = TypeVar("P", bound="Page[Any]")
Cursor = TypeVar("Cursor", covariant=True)

AMOCRM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=list(AmoFailure.NON_RETRYABLE),
)
# A lead must survive an amoCRM outage of hours, so transient failures retry for a week.
AMOCRM_PATIENCE = timedelta(days=7)
AMOCRM_ATTEMPT_TIMEOUT = timedelta(seconds=30)
ROUTING_RETRY = RetryPolicy(maximum_attempts=3)
# A create, a note or a task is never retried blindly: its answer may have been lost after amoCRM
# applied it, so the workflow looks for it before writing again.
WRITE_ONCE = RetryPolicy(maximum_attempts=1)
WRITE_BACKOFF_CAP = timedelta(minutes=5)


async def call_amocrm(
    activity: Callable[..., Awaitable[T]],
    *args: Any,
    summary: str,
    priority: Priority = Priority.default,
) -> T:
    """`priority`: see workflows/priorities.py; the default inherits the workflow's."""
    return await workflow.execute_activity_method(
        activity,
        *args,
        task_queue=AMOCRM_TASK_QUEUE,
        start_to_close_timeout=AMOCRM_ATTEMPT_TIMEOUT,
        schedule_to_close_timeout=AMOCRM_PATIENCE,
        retry_policy=AMOCRM_RETRY,
        summary=summary,
        priority=priority,
    )


# Workflows recorded before list reads followed `_links.next` replay the one-page reads.
PAGED_READS_PATCH = "paged-reads"


class Page(Protocol[Cursor]):
    """An activity's answer for one page of a list: `next_page` is None on the last one."""

    @property
    def next_page(self) -> Cursor | None: ...


async def read_pages(
    read_page: Callable[[AmoActivities, Input], Awaitable[P]],
    page_at: Callable[[Any], Input],
    items_of: Callable[[P], list[T]],
    *,
    summary: str,
    priority: Priority = Priority.default,
) -> list[T]:
    """A list amoCRM pages, one `read_page` activity a page, at most `AMOCRM_PAGES_MAX`.

    `page_at(cursor)` is the activity's input for the page at a cursor a previous page gave
    (None: the first page)."""
    items: list[T] = []
    cursor = None
    for page_number in range(1, AMOCRM_PAGES_MAX + 1):
        page = await call_amocrm(
            read_page, page_at(cursor), summary=_paged(summary, page_number), priority=priority
        )
        items.extend(items_of(page))
        cursor = page.next_page
        if cursor is None:
            return items
    workflow.logger.warning("%s: more than %d pages, the rest unread", summary, AMOCRM_PAGES_MAX)
    return items


async def find_contacts(
    query: ContactQuery, *, summary: str, priority: Priority = Priority.default
) -> list[Contact]:
    """The person's contacts, page after page (one request each)."""
    if not workflow.patched(PAGED_READS_PATCH):
        return await call_amocrm(
            AmoActivities.search_contacts, query, summary=summary, priority=priority
        )
    return await read_pages(
        AmoActivities.search_contacts_page,
        lambda link: ContactSearch(query, link),
        lambda page: page.contacts,
        summary=summary,
        priority=priority,
    )


async def read_leads(
    lead_ids: list[int], *, summary: str, priority: Priority = Priority.default
) -> list[Lead]:
    """These leads as amoCRM has them (deleted ones are missing), page after page."""
    if not workflow.patched(PAGED_READS_PATCH):
        return await call_amocrm(
            AmoActivities.read_leads, lead_ids, summary=summary, priority=priority
        )
    return await read_pages(
        AmoActivities.read_leads_page,
        lambda link: LeadsRead(lead_ids, link),
        lambda page: page.leads,
        summary=summary,
        priority=priority,
    )


async def read_field_catalogue(
    request: CatalogueRequest, *, priority: Priority = Priority.default
) -> FieldCatalogue:
    """The requested fields of an entity's catalogue, page after page."""
    fields = await read_pages(
        AmoActivities.read_field_catalogue_page,
        lambda number: CataloguePageRead(request, number or 1),
        lambda page: page.fields,
        summary=f"read {request.entity} field catalogue",
        priority=priority,
    )
    return FieldCatalogue(request.entity, fields, covers=sorted(set(request.field_ids)))


def _paged(summary: str, page_number: int) -> str:
    return summary if page_number == 1 else f"{summary} (page {page_number})"


def failure_type(err: ActivityError | ApplicationError) -> str:
    """The amoCRM failure type of a failed activity, or of a refusal a batcher reported."""
    if isinstance(err, ApplicationError):
        return err.type or "ApplicationError"
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "ApplicationError"
    return type(cause).__name__ if cause else "ActivityError"


def rejection_of(err: ActivityError) -> Rejection | None:
    """The optional parts (fields, a manager) that amoCRM's 400 refused, if only those."""
    cause = err.cause
    if not isinstance(cause, ApplicationError) or cause.type != FailureKind.REJECTED:
        return None
    details = cause.details[0] if cause.details else None
    found = details.get("rejection") if isinstance(details, dict) else None
    return Rejection(**found) if isinstance(found, dict) else None


def write_backoff(err: ActivityError | None, failures: int) -> timedelta:
    """What amoCRM asked for (Retry-After, a block), else capped exponential."""
    cause = err.cause if err is not None else None
    asked = cause.next_retry_delay if isinstance(cause, ApplicationError) else None
    return asked or min(timedelta(seconds=2 ** min(failures, 10)), WRITE_BACKOFF_CAP)


async def write_once(
    write: Callable[[], Awaitable[W]],
    find: Callable[[], Awaitable[F | None]],
    *,
    on_failure: Callable[[ActivityError], None] | None = None,
    refusal_patch: str | None = None,
) -> W | F:
    """Performs a write whose answer can be lost after amoCRM applied it, exactly once.

    `write` runs its activity with WRITE_ONCE. After a failure that retrying may fix, the
    workflow waits (what amoCRM asked for, else capped exponential) and then looks with
    `find`: what it finds is the outcome; if nothing, the write is tried again. A write that
    amoCRM refused before doing anything (429, 403) is tried again without looking; with
    `refusal_patch` set, only where `workflow.patched(refusal_patch)` (histories recorded
    before that rule looked every time). A failure retrying cannot fix is raised.
    """
    failures = 0
    while True:
        try:
            return await write()
        except ActivityError as err:
            kind = failure_type(err)
            if kind in AmoFailure.NON_RETRYABLE:
                raise
            if on_failure is not None:
                on_failure(err)
            failures += 1
            await workflow.sleep(write_backoff(err, failures))
            if kind in AmoFailure.NOT_APPLIED and (
                refusal_patch is None or workflow.patched(refusal_patch)
            ):
                continue
            found = await find()
            if found is not None:
                return found


async def add_note_once(
    note: LeadNote, marker: str, *, summary: str, priority: Priority = Priority.default
) -> None:
    """Writes `note`, whose text contains `marker`, once: a retry leaves no second copy."""
    await _add_marked_once(
        AmoActivities.add_lead_note,
        note,
        AmoActivities.lead_has_note,
        MarkerLookup(note.lead_id, marker),
        summaries=(summary, "find note"),
        priority=priority,
    )


async def add_task_once(
    task: LeadTask, marker: str, *, summary: str, priority: Priority = Priority.default
) -> None:
    """Writes `task`, whose text contains `marker`, once: a retry leaves no second copy."""
    await _add_marked_once(
        AmoActivities.add_lead_task,
        task,
        AmoActivities.lead_has_task,
        MarkerLookup(task.lead_id, marker),
        summaries=(summary, "find task"),
        priority=priority,
    )


async def _add_marked_once(
    add: Callable[[AmoActivities, A], Awaitable[None]],
    item: A,
    has: Callable[[AmoActivities, MarkerLookup], Awaitable[bool]],
    lookup: MarkerLookup,
    *,
    summaries: tuple[str, str],
    priority: Priority,
) -> None:
    """`summaries`: the UI's names of the write and of the lookup."""

    async def write() -> bool:
        await _write_activity(add, item, summaries[0], priority)
        return True

    async def find() -> bool | None:
        found = await call_amocrm(has, lookup, summary=summaries[1], priority=priority)
        return True if found else None

    await write_once(write, find)


async def _write_activity(
    activity: Callable[[AmoActivities, A], Awaitable[T]],
    arg: A,
    summary: str,
    priority: Priority,
) -> T:
    return await workflow.execute_activity_method(
        activity,
        arg,
        task_queue=AMOCRM_TASK_QUEUE,
        start_to_close_timeout=AMOCRM_ATTEMPT_TIMEOUT,
        retry_policy=WRITE_ONCE,
        summary=summary,
        priority=priority,
    )


def lead_error(err: ActivityError, *, submission_id: str | None = None) -> LeadError:
    """What a lead's state shows of a failed activity: its kind, its cause, and when; a
    failure of another kind than ours names its type in the message."""
    failure = failure_type(err)
    kind = FailureKind(failure)
    message = str(err.cause or err)
    if kind is FailureKind.OTHER:
        message = f"{failure}: {message}"
    return LeadError(
        kind=kind,
        message=cut_text(message, ERROR_MESSAGE_CHARS) or "",
        at=workflow.now().isoformat(),
        submission_id=submission_id,
    )
