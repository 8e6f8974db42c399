"""Run daily by a schedule: refresh the amoCRM OAuth pair when it has gone unused too long."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.token_keepalive import TokenKeepAliveActivities
    from workflows import priorities
    from workflows.amocrm_calls import call_amocrm


@dataclass
class TokenKeepAliveInput:
    max_age_seconds: float


@workflow.defn
class TokenKeepAliveWorkflow:
    @workflow.run
    async def run(self, request: TokenKeepAliveInput) -> bool:
        # On the amoCRM queue like every request, so a refresh spends the shared budget.
        return await call_amocrm(
            TokenKeepAliveActivities.keep_token_alive,
            request.max_age_seconds,
            summary="refresh the OAuth pair if it is old",
            priority=priorities.BACKGROUND_READS,
        )
