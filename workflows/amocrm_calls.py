"""How workflows call amoCRM: on the rate-limited queue, with one retry policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.amocrm import AmoFailure
    from leadrelay.settings import AMOCRM_TASK_QUEUE

T = TypeVar("T")

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


async def call_amocrm(activity: Callable[..., Awaitable[T]], *args: Any, summary: str) -> T:
    return await workflow.execute_activity_method(
        activity,
        *args,
        task_queue=AMOCRM_TASK_QUEUE,
        start_to_close_timeout=AMOCRM_ATTEMPT_TIMEOUT,
        schedule_to_close_timeout=AMOCRM_PATIENCE,
        retry_policy=AMOCRM_RETRY,
        summary=summary,
    )


def failure_type(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "ApplicationError"
    return type(cause).__name__ if cause else "ActivityError"
