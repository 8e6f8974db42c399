"""A webhook body that could not be understood, kept where an operator finds it.

It waits, visible in the Temporal UI, for a `reparse` signal (after a decoder fix, for
instance), then hands whatever events the current decoder finds to their entity
workflows. Those drop events they have already seen, so re-parsing is always safe.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.delivery import DeliveryActivities
    from leadrelay.events import RawWebhook
    from leadrelay.settings import IO_TASK_QUEUE


@workflow.defn
class RawWebhookWorkflow:
    def __init__(self) -> None:
        self._reparse_requested = False
        self._reparses = 0
        self._events_found = 0

    @workflow.run
    async def run(self, raw: RawWebhook) -> int:
        workflow.set_current_details(
            f"**hook** {raw.hook} · **received** {raw.received_at}\n\n**problems** "
            + "; ".join(raw.problems)
        )
        while not self._events_found:
            await workflow.wait_condition(lambda: self._reparse_requested)
            self._reparse_requested = False
            self._reparses += 1
            self._events_found = await workflow.execute_activity_method(
                DeliveryActivities.redeliver_raw_webhook,
                raw,
                task_queue=IO_TASK_QUEUE,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
                summary="re-parse and deliver",
            )
        return self._events_found

    @workflow.signal
    def reparse(self) -> None:
        self._reparse_requested = True

    @workflow.query
    def status(self) -> dict[str, int]:
        return {"reparses": self._reparses, "events_found": self._events_found}
