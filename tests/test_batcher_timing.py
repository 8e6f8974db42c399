"""The batcher's timing, on Temporal's time-skipping test server: when a batch goes.

amoCRM's `leads/complex` is a double registered under the real activity name, so the
batcher runs unchanged; the real-stack tests (`test_batching.py`) prove the rest.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.amocrm_batches import LeadsBatch
from activities.fields import FieldCatalogueCache
from amocrm.models import CreatedLead, NewLead
from leadrelay.forms import FormsFile
from leadrelay.settings import AMOCRM_TASK_QUEUE, WORKFLOW_TASK_QUEUE
from tests.time_skipping import forms_file, time_skipping_env
from worker import workflow_worker
from workflows.batcher import (
    ANSWER_SIGNAL,
    FLOW_STOPPED,
    AmoBatcherWorkflow,
    BatchAnswer,
    BatcherConfig,
    BatcherStart,
    BatchKind,
    BatchRequest,
)

PIPELINE = 10350882
STATUS = 81854578
SINK_QUEUE = "batch-answers"


@workflow.defn(sandboxed=False)
class AnswerSink:
    """Stands in for the lead workflows: takes every batch answer, and runs until ended."""

    def __init__(self) -> None:
        self.answers = 0

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=ANSWER_SIGNAL)
    def answer(self, answer: BatchAnswer) -> None:
        self.answers += 1


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_env() as environment:
        yield environment


@pytest.fixture
def forms(tmp_path: Path) -> FormsFile:
    return forms_file(tmp_path, "")


@dataclass
class BatchesDouble:
    """amoCRM's `leads/complex` as the creates batcher sees it: each batch's workflow time
    and the forms of its items."""

    started: datetime
    sent: list[tuple[float, list[str]]]

    @activity.defn(name="amocrm.create_leads_batch")
    async def create_leads_batch(self, batch: LeadsBatch) -> list[CreatedLead]:
        at = (activity.info().scheduled_time - self.started).total_seconds()
        self.sent.append((at, [item.lead.tags[0] for item in batch.items]))
        return [
            CreatedLead(index, index, merged=False, request_id=item.lead.request_id)
            for index, item in enumerate(batch.items, start=1)
        ]


@dataclass
class BatcherRun:
    arrived: list[float]  # each item's workflow seconds, in order
    sent: list[tuple[float, list[str]]]  # each batch's workflow seconds and item forms


async def run_batcher(
    env: WorkflowEnvironment, forms: FormsFile, arrivals: list[tuple[float, str]]
) -> BatcherRun:
    """Feeds a creates batcher items of the given forms, each about the given workflow
    seconds after the first, and reports when they arrived and what was sent when."""
    run = BatcherRun([], [])
    with env.auto_time_skipping_disabled():
        started = await env.get_current_time()
        double = BatchesDouble(started, run.sent)
        with ThreadPoolExecutor(max_workers=2) as executor:
            async with (
                workflow_worker(env.client, forms, FieldCatalogueCache(3600), executor),
                Worker(
                    env.client,
                    task_queue=AMOCRM_TASK_QUEUE,
                    activities=[double.create_leads_batch],
                ),
                Worker(env.client, task_queue=SINK_QUEUE, workflows=[AnswerSink]),
            ):
                sink = await env.client.start_workflow(
                    AnswerSink.run, id=f"sink-{uuid.uuid4().hex}", task_queue=SINK_QUEUE
                )
                handle = await env.client.start_workflow(
                    AmoBatcherWorkflow.run,
                    BatcherStart(BatchKind.CREATES, BatcherConfig()),
                    id=f"batcher-{uuid.uuid4().hex}",
                    task_queue=WORKFLOW_TASK_QUEUE,
                )
                for at, form in arrivals:
                    now = (await env.get_current_time() - started).total_seconds()
                    if at > now:
                        await env.sleep(at - now)
                    lead = NewLead("lead", PIPELINE, STATUS, [form], request_id=uuid.uuid4().hex)
                    await handle.signal(
                        AmoBatcherWorkflow.submit, BatchRequest(sink.id, form, lead=lead)
                    )
                    run.arrived.append((await env.get_current_time() - started).total_seconds())
                    await asyncio.sleep(0.05)  # the signal's workflow task, before time moves
                # Until every item went; short steps, each a brief call to the test server.
                for _ in range(30):
                    if sum(len(items) for _, items in run.sent) == len(arrivals):
                        break
                    await env.sleep(1)
                await handle.terminate("test over")
                await sink.terminate("test over")
    return run


def flow(seconds_apart: float, count: int, form: str = "flood") -> list[tuple[float, str]]:
    return [(round(i * seconds_apart, 3), form) for i in range(count)]


async def test_the_batcher_sends_an_idle_item_at_once_and_fills_batches_in_a_slow_flow(
    env: WorkflowEnvironment, forms: FormsFile
) -> None:
    """2.5 people a second (each needed two searches): batches wait to hold `fill_items`
    instead of going one per linger, and the tail goes once the flow has stopped."""
    config = BatcherConfig()
    run = await run_batcher(env, forms, flow(0.4, 60))

    sizes = [len(items) for _, items in run.sent]
    assert sum(sizes) == 60 and sizes[0] == 1, run
    assert run.sent[0][0] - run.arrived[0] < 0.5, "idle: the first item went at once"
    assert all(size >= config.fill_items for size in sizes[1:-1]), sizes
    tail_wait = run.sent[-1][0] - run.arrived[-1]
    assert tail_wait <= FLOW_STOPPED[BatchKind.CREATES].total_seconds() + 0.5, run


async def test_a_trickle_waits_no_longer_than_the_longest_linger(
    env: WorkflowEnvironment, forms: FormsFile
) -> None:
    config = BatcherConfig()
    run = await run_batcher(env, forms, flow(1.2, 20))

    sizes = [len(items) for _, items in run.sent]
    assert sum(sizes) == 20 and max(sizes) < config.fill_items, sizes
    assert len(run.sent) < 20 / 2, "a trickle still shares requests"
    # Each batch went no later than the longest linger after its oldest item arrived.
    arrived = iter(run.arrived)
    for at, items in run.sent:
        oldest = next(arrived)
        for _ in items[1:]:
            next(arrived)
        assert at - oldest <= config.max_linger_seconds + 0.5, run
