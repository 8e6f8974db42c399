"""The workflow sandbox, shared by the worker and the replayer."""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Our own data and activity modules are deterministic at import time and hold no state,
# so workflows share them instead of re-importing them per run (which also keeps their
# dataclasses' type hints resolvable inside the sandbox).
PASSED_THROUGH = ("activities", "amocrm", "leadrelay", "webhooks")


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
    )
