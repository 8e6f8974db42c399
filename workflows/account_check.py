"""What the forms file refers to in the amoCRM account, read on the rate-limited queue.

The worker starts it when it starts and checks the forms file against what it returns
(`leadrelay.forms_check`): the pipelines, the fields the forms file names and the users, in
four requests (one more for each further page), each its own activity at background priority.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.amocrm import AmoActivities
    from amocrm.models import Pipeline
    from leadrelay.custom_fields import CatalogueRequest, CustomField, FieldCatalogue, FieldEntity
    from leadrelay.forms_check import AccountFacts
    from workflows import priorities
    from workflows.amocrm_calls import call_amocrm, read_field_catalogue, read_pages

ACCOUNT_CHECK_WORKFLOW_ID = "account-check"


@dataclass
class AccountRead:
    catalogues: list[CatalogueRequest]


@dataclass
class AccountSnapshot:
    pipelines: list[Pipeline]
    catalogues: list[FieldCatalogue]
    user_ids: list[int]

    def facts(self) -> AccountFacts:
        fields: dict[FieldEntity, dict[int, CustomField]] = {"leads": {}, "contacts": {}}
        for catalogue in self.catalogues:
            fields[catalogue.entity].update({f.id: f for f in catalogue.fields})
        return AccountFacts(
            statuses={pipeline.id: set(pipeline.status_ids) for pipeline in self.pipelines},
            fields=fields,
            user_ids=set(self.user_ids),
        )


@workflow.defn
class AccountCheckWorkflow:
    @workflow.run
    async def run(self, read: AccountRead) -> AccountSnapshot:
        background = priorities.BACKGROUND_READS
        pipelines = await call_amocrm(
            AmoActivities.read_pipelines, summary="read pipelines", priority=background
        )
        catalogues = [
            await read_field_catalogue(request, priority=background) for request in read.catalogues
        ]

        user_ids = await read_pages(
            AmoActivities.read_users_page,
            lambda number: number or 1,
            lambda page: page.user_ids,
            summary="read users",
            priority=background,
        )
        return AccountSnapshot(pipelines, catalogues, user_ids)
