"""Every workflow type the worker runs; the replayer checks histories against the same list."""

from __future__ import annotations

from workflows.account_check import AccountCheckWorkflow
from workflows.amocrm_entity import AmoEntityWorkflow
from workflows.batcher import AmoBatcherWorkflow
from workflows.lead import LeadWorkflow
from workflows.raw_webhook import RawWebhookWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.token_keepalive import TokenKeepAliveWorkflow

WORKFLOWS: list[type] = [
    LeadWorkflow,
    AmoEntityWorkflow,
    RawWebhookWorkflow,
    ReconcileWorkflow,
    TokenKeepAliveWorkflow,
    AmoBatcherWorkflow,
    AccountCheckWorkflow,
]
