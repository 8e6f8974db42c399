"""A requester's side of the batchers: signal a write, wait for the answer by signal.

The requesting workflow holds a `BatchReplies` and forwards its `batch_answer` signal to
`receive`. When no batcher runs (an operator ended it), `ask` returns None and the caller
writes on its own, one request per item.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.amocrm import AmoActivities, LeadNote, MarkerLookup
    from amocrm.models import NewNote
    from workflows.amocrm_calls import add_note_once, call_amocrm, write_backoff
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
            if answer.outcome != Outcome.RESEND:
                return answer


def refused(answer: BatchAnswer) -> ApplicationError:
    """A write amoCRM refused for good, raised so the workflow parks it for an operator."""
    return ApplicationError(
        answer.message or "amoCRM refused the write",
        type=answer.failure_type or "AmoRejected",
        non_retryable=True,
    )


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
    )
    failures = 0
    while True:
        answer = await replies.ask(BatchKind.NOTES, request)
        if answer is None:
            await add_note_once(note, marker, summary=summary, priority=priority)
            return
        if answer.outcome == Outcome.DONE:
            return
        if answer.outcome == Outcome.FAILED:
            raise refused(answer)
        failures += 1
        await workflow.sleep(write_backoff(None, failures))
        lookup = MarkerLookup(note.lead_id, marker)
        if await call_amocrm(
            AmoActivities.lead_has_note, lookup, summary="find note", priority=priority
        ):
            return
