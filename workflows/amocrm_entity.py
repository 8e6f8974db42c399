"""One workflow per amoCRM entity (`amocrm-lead-25399013`): each change acted on once.

Webhooks and reconciliation both signal-with-start it. It drops an event key it has
seen, so amoCRM's own retries and duplicate deliveries do nothing twice, and it stays
open for `memory_seconds` after the last event so that late duplicates still meet it.
Rules from the forms file decide what an event does. Webhooks are unsigned and may be
stale, so a lead is re-read through the rate-limited amoCRM queue before acting.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from datetime import timedelta
from typing import assert_never

import temporalio.exceptions
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, RetryState

with workflow.unsafe.imports_passed_through():
    from activities.amocrm import AmoActivities, CurrentLead, LeadNote, LeadTask
    from activities.delivery import DeliveryActivities
    from activities.routing import RoutingActivities
    from leadrelay.custom_fields import named_values
    from leadrelay.events import (
        RECONCILIATION,
        WHOLE_EVENT,
        ActionKind,
        ActionTaken,
        EntityEvent,
        EntityStart,
        EntityState,
        ForwardDeadLetter,
        ForwardRequest,
        Outcome,
        PlannedAction,
    )
    from leadrelay.limits import DEAD_LETTERS_KEPT, ENTITY_PENDING_BYTES, SKIPPED_KEPT
    from leadrelay.notes import rule_marker, rule_text
    from leadrelay.settings import IO_TASK_QUEUE
    from workflows import priorities
    from workflows.amocrm_calls import (
        ROUTING_RETRY,
        add_note_once,
        add_task_once,
        call_amocrm,
        failure_type,
    )
    from workflows.inbox import (
        Inbox,
        Offered,
        continue_as_new_now,
        history_is_full,
        next_run,
    )
    from workflows.parking import OperatorSignals, Parking

# The downstream must hear about a sale however long it is down.
FORWARD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)


FORWARD_ATTEMPT_TIMEOUT = timedelta(seconds=30)
FORWARDS_DEAD_LETTERED = (
    "leadrelay_forwards_dead_lettered",
    "Forwarded events given up on after their rule's give_up_after_hours",
)


class _GaveUp(Exception):
    """A forward ran out of time and became a dead letter."""


class _Gone(enum.Enum):
    LEAD = "gone"


LEAD_GONE = _Gone.LEAD
"""A re-read answered 204: the lead was deleted in amoCRM."""
EVENTS_PER_RUN = 200
EVENT_KEYS_KEPT = 1000
ACTIONS_KEPT = 50


@workflow.defn
class AmoEntityWorkflow(OperatorSignals):
    @workflow.init
    def __init__(self, start: EntityStart) -> None:
        self._state = start.carried or EntityState(start.entity, start.entity_id)
        self._memory = timedelta(seconds=start.memory_seconds)
        self._inbox = Inbox(
            self._state.pending,
            self._state.handled_keys,
            _event_key,
            remember=EVENT_KEYS_KEPT,
            budget_bytes=ENTITY_PENDING_BYTES,
            cut=_without_item,
        )
        self._parking = Parking()

    @workflow.run
    async def run(self, start: EntityStart) -> EntityState:
        while True:
            event = await self._inbox.next(self._memory, wake_also=history_is_full)
            if event is None:
                if history_is_full():  # repeated deliveries alone can fill it
                    await continue_as_new_now(next_run(start, self._state))
                break
            await self._parking.take_turn(
                functools.partial(self._handle, event),
                functools.partial(self._park, event),
                functools.partial(self._finish, event),
                parked=self._state.parked_event_key == event.dedup_key,
                next_run=lambda: next_run(start, self._state),
                per_run=EVENTS_PER_RUN,
            )
        return self._state

    @workflow.signal
    def event(self, event: EntityEvent) -> None:
        self._state.events_seen += 1
        offered = self._inbox.offer(event)
        if offered is Offered.REPEAT:
            self._state.duplicates_dropped += 1
        elif offered is Offered.REFUSED:
            self._state.events_refused += 1
            workflow.logger.error(
                "%s: event %s refused", workflow.info().workflow_id, event.dedup_key
            )

    @workflow.query
    def state(self) -> EntityState:
        return self._state

    def _park(self, event: EntityEvent, err: ActivityError) -> None:
        """A failure retrying cannot fix: the event waits for `retry` or `skip`."""
        self._state.parked_event_key = event.dedup_key
        outcome = f"{Outcome.FAILED} ({failure_type(err)}): {err.cause or err}"
        self._record(event, WHOLE_EVENT, WHOLE_EVENT, outcome)
        workflow.logger.error("%s needs an operator: %s", workflow.info().workflow_id, err)

    def _finish(self, event: EntityEvent, done: bool) -> None:
        self._state.parked_event_key = None
        self._inbox.done(event)
        if done:
            self._state.events_handled += 1
        else:
            self._set_aside(event)

    def _set_aside(self, event: EntityEvent) -> None:
        self._state.skipped.append(_without_item(event))
        del self._state.skipped[:-SKIPPED_KEPT]
        self._state.events_skipped += 1
        self._record(event, WHOLE_EVENT, WHOLE_EVENT, f"{Outcome.SKIPPED} by an operator")

    async def _handle(self, event: EntityEvent) -> None:
        if self._already_seen_through_webhook(event):
            outcome = f"{Outcome.SKIPPED}: its webhook was already handled"
            self._record(event, WHOLE_EVENT, WHOLE_EVENT, outcome)
            return
        actions = await workflow.execute_local_activity_method(
            RoutingActivities.plan_actions,
            event,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=ROUTING_RETRY,
        )
        current = await self._current_lead(event) if actions else None
        if current is LEAD_GONE:
            self._record(event, WHOLE_EVENT, WHOLE_EVENT, Outcome.LEAD_DELETED)
            await workflow.execute_activity_method(
                DeliveryActivities.announce_lead_deleted,
                event.entity_id,
                task_queue=IO_TASK_QUEUE,
                start_to_close_timeout=timedelta(seconds=30),
                summary="tell lead workflows the lead was deleted",
            )
            return
        if isinstance(current, CurrentLead) and not _confirms(current, event):
            lead = current.lead
            outcome = f"{Outcome.NOT_CONFIRMED}: lead is in {lead.pipeline_id}/{lead.status_id}"
            self._record(event, WHOLE_EVENT, WHOLE_EVENT, outcome)
        else:
            for action in actions:
                if not self._done_before(event, action):
                    try:
                        await self._perform(action, event, current)
                    except _GaveUp:
                        self._record(event, action.rule, action.kind, Outcome.DEAD_LETTER)
                        continue
                    self._record(event, action.rule, action.kind, Outcome.DONE)
        if event.action == "status":
            self._state.last_status_id = event.status_id

    def _already_seen_through_webhook(self, event: EntityEvent) -> bool:
        """Reconciliation finds changes whose webhook may have come; the status says so."""
        return (
            event.source == RECONCILIATION
            and event.action == "status"
            and event.status_id == self._state.last_status_id
        )

    async def _current_lead(self, event: EntityEvent) -> CurrentLead | _Gone | None:
        """The lead re-read from amoCRM, `LEAD_GONE` if it was deleted, None if the event
        is not about a lead."""
        if event.entity != "leads":
            return None
        current = await call_amocrm(
            AmoActivities.read_current_lead,
            event.entity_id,
            summary="re-read lead",
            priority=priorities.WEBHOOKS,
        )
        return LEAD_GONE if current is None else current

    async def _perform(
        self, action: PlannedAction, event: EntityEvent, current: CurrentLead | None
    ) -> None:
        marker = rule_marker(event.dedup_key, action.rule)
        match action.kind:
            case ActionKind.FORWARD:
                assert action.url is not None
                body = {
                    "rule": action.rule,
                    "event": dataclasses.asdict(event),
                    "lead": current.raw if current else None,
                    # The fields by name, e.g. the first-touch UTM a sale is attributed to.
                    "custom_fields": named_values(current.raw.get("custom_fields_values"))
                    if current
                    else {},
                }
                request = ForwardRequest(
                    action.url,
                    f"{event.dedup_key}/{action.rule}",
                    body,
                    allow_unsigned=action.allow_unsigned,
                )
                await self._forward(request, action, event)
            case ActionKind.NOTE:
                await add_note_once(
                    LeadNote(event.entity_id, rule_text(action.text or "", marker)),
                    marker,
                    summary=f"add note ({action.rule})",
                    priority=priorities.WEBHOOKS,
                )
            case ActionKind.TASK:
                due = workflow.now() + timedelta(hours=action.due_in_hours)
                task = LeadTask(
                    event.entity_id, rule_text(action.text or "", marker), int(due.timestamp())
                )
                await add_task_once(
                    task, marker, summary=f"add task ({action.rule})", priority=priorities.WEBHOOKS
                )
            case unknown:
                assert_never(unknown)

    async def _forward(
        self, request: ForwardRequest, action: PlannedAction, event: EntityEvent
    ) -> None:
        """Retried with backoff for `give_up_after_hours`, then a dead letter; a receiver's
        refusal (4xx) is not retried and parks the event (see `Parking`)."""
        give_up_after = timedelta(hours=action.give_up_after_hours)
        try:
            await workflow.execute_activity_method(
                DeliveryActivities.forward_event,
                request,
                task_queue=IO_TASK_QUEUE,
                start_to_close_timeout=min(FORWARD_ATTEMPT_TIMEOUT, give_up_after),
                schedule_to_close_timeout=give_up_after,
                retry_policy=FORWARD_RETRY,
                summary=f"forward ({action.rule})",
            )
        except ActivityError as err:
            # Out of time: the last attempt's failure comes back with retry state TIMEOUT.
            out_of_time = err.retry_state == RetryState.TIMEOUT or isinstance(
                err.cause, temporalio.exceptions.TimeoutError
            )
            if not out_of_time:
                raise
            self._dead_letter(action, event, f"no 2xx within {give_up_after}: {err.cause}")
            raise _GaveUp from err

    def _dead_letter(self, action: PlannedAction, event: EntityEvent, reason: str) -> None:
        state = self._state
        state.forwards_dead_lettered += 1
        letter = ForwardDeadLetter(
            action.rule, action.url or "", reason, workflow.now().isoformat(), _without_item(event)
        )
        state.dead_letters.append(letter)
        del state.dead_letters[:-DEAD_LETTERS_KEPT]
        workflow.metric_meter().create_counter(*FORWARDS_DEAD_LETTERED).add(1)
        workflow.logger.error("%s: forward dead-lettered: %s", workflow.info().workflow_id, reason)

    def _done_before(self, event: EntityEvent, action: PlannedAction) -> bool:
        return any(
            taken.dedup_key == event.dedup_key
            and (taken.rule, taken.action, taken.outcome)
            == (action.rule, action.kind, Outcome.DONE)
            for taken in self._state.actions
        )

    def _record(self, event: EntityEvent, rule: str, action: str, outcome: str) -> None:
        self._state.actions.append(
            ActionTaken(event.dedup_key, rule, action, outcome, workflow.now().isoformat())
        )
        del self._state.actions[:-ACTIONS_KEPT]
        details = f"**last** {event.dedup_key}: {rule} {action} → {outcome}"
        if self._state.forwards_dead_lettered:
            details += (
                f"\n\n**dead letters** {self._state.forwards_dead_lettered} forwards given up on "
                "(see `dead_letters` in the `state` query)"
            )
        if self._state.events_skipped:
            details += (
                f"\n\n**skipped** {self._state.events_skipped} set aside by an operator "
                "(see `skipped` in the `state` query)"
            )
        workflow.set_current_details(details)


def _event_key(event: EntityEvent) -> str:
    return event.dedup_key


def _without_item(event: EntityEvent) -> EntityEvent:
    """What routing and rules need; the raw item stays in the signal's history event."""
    return dataclasses.replace(event, item={})


def _confirms(current: CurrentLead, event: EntityEvent) -> bool:
    """A status event is acted on only if amoCRM still shows that status."""
    if event.action != "status":
        return True
    lead = current.lead
    return lead.status_id == event.status_id and event.pipeline_id in (None, lead.pipeline_id)
