"""A requester's side of the batchers: signal a write, wait for the answer by signal.

The requesting workflow holds a `BatchReplies` and forwards its `batch_answer` signal to
`receive`. A batch's failure comes back as the `ActivityError` of the batch activity (its
cause keeps amoCRM's failure type and details), so `write_once`, `rejection_of` and the
parking treat a batched write exactly like a write of its own. When no batcher runs (an
operator ended it), each write goes alone: one amoCRM request per item.
A request carries its workflow's traceparent, so the batch's span links back to each
requester's trace; each answer shows in that trace as a `BatchAnswer:<kind>` span naming
its batch.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.amocrm import AmoActivities, LeadNote, MarkerLookup
    from amocrm.models import CreatedLead, NewLead, NewNote
    from leadrelay.settings import AMOCRM_TASK_QUEUE
    from leadrelay.tracing import current_traceparent, workflow_span
    from workflows.amocrm_calls import (
        AMOCRM_ATTEMPT_TIMEOUT,
        WRITE_ONCE,
        call_amocrm,
        write_once,
    )
    from workflows.batcher import (
        BATCHER_IDS,
        AmoBatcherWorkflow,
        BatchAnswer,
        BatchKind,
        BatchRequest,
        Outcome,
    )

# The batcher is durable and always answers; this only guards against one that was ended.
ANSWER_PATIENCE = timedelta(hours=6)
ANSWERS_KEPT = 20


class BatchReplies:
    def __init__(self) -> None:
        self._answers: dict[str, BatchAnswer] = {}

    def receive(self, answer: BatchAnswer) -> None:
        self._answers[answer.request_id] = answer
        while len(self._answers) > ANSWERS_KEPT:
            del self._answers[next(iter(self._answers))]

    async def ask(self, kind: BatchKind, request: BatchRequest) -> BatchAnswer | None:
        """The batcher's answer, or None when there is no batcher to ask."""
        request_id = request.request_id
        while True:
            earlier = self._answers.pop(request_id, None)
            if earlier is not None and earlier.outcome == Outcome.DONE:
                return earlier  # a late answer to an ask that had timed out
            batcher = workflow.get_external_workflow_handle(BATCHER_IDS[kind])
            try:
                await batcher.signal(AmoBatcherWorkflow.submit, request)
            except FailureError as err:
                workflow.logger.warning("no %s batcher, writing alone: %s", kind, err)
                return None
            try:
                await workflow.wait_condition(
                    lambda: request_id in self._answers, timeout=ANSWER_PATIENCE
                )
            except TimeoutError:
                silence = "the batcher never answered"
                return BatchAnswer(request_id, Outcome.UNKNOWN, message=silence)
            answer = self._answers.pop(request_id)
            workflow_span(
                f"BatchAnswer:{kind}", outcome=str(answer.outcome), batch=answer.batch or ""
            )
            if answer.outcome != Outcome.RESEND:
                return answer


def answer_error(answer: BatchAnswer, activity_type: str) -> ActivityError:
    """A batch's failure as its activity's error: amoCRM's failure type and details kept."""
    cause = ApplicationError(
        answer.message or "amoCRM did not confirm the write",
        *([answer.details] if answer.details is not None else []),
        type=answer.failure_type or "AmoOutcomeUnknown",
        non_retryable=answer.outcome == Outcome.FAILED,
    )
    error = ActivityError(
        f"batched {activity_type} failed",
        scheduled_event_id=0,
        started_event_id=0,
        identity="",
        activity_type=activity_type,
        activity_id="",
        retry_state=None,
    )
    error.__cause__ = cause
    return error


async def batched_create(
    replies: BatchReplies, lead: NewLead, form: str, received_at: str | None
) -> CreatedLead | None:
    """The lead created in a batch, None when no batcher runs; a failure is raised."""
    request = BatchRequest(
        workflow.info().workflow_id,
        form,
        received_at,
        lead=lead,
        traceparent=current_traceparent(),
    )
    answer = await replies.ask(BatchKind.CREATES, request)
    if answer is None:
        return None
    if answer.outcome == Outcome.DONE and answer.lead is not None:
        return answer.lead
    raise answer_error(answer, "amocrm.create_leads_batch")


async def add_note_batched(
    replies: BatchReplies,
    note: LeadNote,
    marker: str,
    *,
    form: str,
    received_at: str | None,
    priority: Priority,
    summary: str,
) -> None:
    """`add_note_once` through the notes batcher: a note whose answer was lost is looked
    for by its marker before it is written again."""
    request = BatchRequest(
        requester=workflow.info().workflow_id,
        form=form,
        received_at=received_at,
        note=NewNote(note.lead_id, note.text, request_id=marker),
        traceparent=current_traceparent(),
    )

    async def write() -> bool:
        answer = await replies.ask(BatchKind.NOTES, request)
        if answer is None:
            await workflow.execute_activity_method(
                AmoActivities.add_lead_note,
                note,
                task_queue=AMOCRM_TASK_QUEUE,
                start_to_close_timeout=AMOCRM_ATTEMPT_TIMEOUT,
                retry_policy=WRITE_ONCE,
                summary=summary,
                priority=priority,
            )
        elif answer.outcome != Outcome.DONE:
            raise answer_error(answer, "amocrm.add_notes_batch")
        return True

    async def find() -> bool | None:
        lookup = MarkerLookup(note.lead_id, marker)
        found = await call_amocrm(
            AmoActivities.lead_has_note, lookup, summary="find note", priority=priority
        )
        return True if found else None

    await write_once(write, find)
