"""Metrics and logs: the API's /metrics over real HTTP, the worker runtime's Prometheus
endpoint against the dev server, and JSON logs that never show a person's phone or email."""

from __future__ import annotations

import io
import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.worker import Worker

from activities.amocrm import AmoActivities
from activities.amocrm_batches import AmoBatchActivities, LeadsBatch, LeadToCreate
from amocrm.models import NewContact, NewLead
from api.app import create_app as create_api
from leadrelay.logs import JsonFormatter, MaskingFilter, mask
from leadrelay.settings import Settings
from leadrelay.telemetry import worker_runtime
from leadrelay.temporal import connect
from sandbox.server import serve_in_thread
from tests.conftest import WEBHOOK_TOKEN
from tests.support import Stack
from worker import amo_client

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
LANDING = "/api/landing/{form}"
UNKNOWN_LEAD_ID = 999_999_999


def parse_metrics(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(api: httpx.AsyncClient) -> Samples:
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse_metrics(response.text)


# --- the API's /metrics ---------------------------------------------------------------


async def test_landing_post_and_refused_webhook_are_counted(
    stack: Stack, new_phone: Callable[[], str]
) -> None:
    before = await scrape(stack.api)
    accepted = await stack.api.post(
        "/api/landing/proftest", json={"name": "Айгерим", "phone": new_phone()}
    )
    refused = await stack.api.post("/api/amocrm/funnel-sale", params={"token": "wrong"})
    after = await scrape(stack.api)
    assert accepted.status_code == 202
    assert refused.status_code == 401

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    landing = {"route": LANDING, "method": "POST"}
    assert delta("leadrelay_api_requests_total", **landing, status="202") == 1
    assert delta("leadrelay_api_request_seconds_count", **landing) == 1
    assert 0 < delta("leadrelay_api_request_seconds_sum", **landing) < 5
    route = accepted.json()["delivered_via"]
    assert delta("leadrelay_leads_accepted_total", delivered_via=route) == 1
    assert delta("leadrelay_webhooks_total", hook="", outcome="unauthorized") == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert "/api/landing/proftest" not in routes, "the raw path must never be a label"
    assert {LANDING, "/api/amocrm/{hook}", "/metrics"} <= routes


async def test_outbox_depth_and_webhook_outcomes_of_an_app_without_temporal(
    settings: Settings, tmp_path: Path, new_phone: Callable[[], str]
) -> None:
    """Nothing listens on port 1, so every delivery goes to this app's own outbox; its
    registry is its own, so the counts start from zero beside the stack's app."""
    cut_off = settings.model_copy(
        update={
            "temporal_address": "127.0.0.1:1",
            "leadrelay_outbox_path": tmp_path / "outbox.sqlite3",
        }
    )
    hook_url = "/api/amocrm/funnel-sale"
    status_change = b"leads[status][0][id]=25399013&leads[status][0][status_id]=142"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with serve_in_thread(create_api(cut_off)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            assert sample(await scrape(api), "leadrelay_outbox_depth") == 0
            landing = await api.post("/api/landing/proftest", json={"phone": new_phone()})
            token = {"token": WEBHOOK_TOKEN}
            events = await api.post(hook_url, params=token, content=status_change, headers=form)
            garbage = await api.post(hook_url, params=token, content=b"\xff[[", headers=form)
            refused = await api.post(hook_url)
            samples = await scrape(api)
    assert landing.json()["delivered_via"] == "outbox"
    assert events.json()["events"] == 1 and garbage.json()["kept_raw"] is True
    assert refused.status_code == 401
    assert sample(samples, "leadrelay_outbox_depth") == 3, "a form, an event, a raw body"
    assert sample(samples, "leadrelay_leads_accepted_total", delivered_via="outbox") == 1
    webhooks = "leadrelay_webhooks_total"
    assert sample(samples, webhooks, hook="funnel-sale", outcome="events") == 1
    assert sample(samples, webhooks, hook="funnel-sale", outcome="raw") == 1
    assert sample(samples, webhooks, hook="", outcome="unauthorized") == 1


# --- masking and JSON lines -----------------------------------------------------------


@contextmanager
def json_lines(*logger_names: str) -> Iterator[io.StringIO]:
    """What these loggers write through the production filter and formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("spelling", "masked"),
    [
        ("+77771112233", "+7777***2233"),
        ("87771112233", "8777***2233"),
        ("8 (777) 111-22-33", "8777***2233"),
        ("+7 777 111 22 33", "+7777***2233"),
        ("+7(777)111-22-33", "+7777***2233"),
        ("7771112233", "7771***2233"),
        ("+996 555 123 456", "+9965***3456"),
    ],
)
def test_phones_are_masked_in_message_and_args(spelling: str, masked: str) -> None:
    with json_lines("leadrelay.test.masking") as stream:
        logging.getLogger("leadrelay.test.masking").warning(
            "Заявка с формы proftest: телефон %s, перезвонить до 18:00", spelling
        )
        logging.getLogger("leadrelay.test.masking").warning(f"Клиент {spelling} не отвечает")
    [first, second] = parsed(stream)
    assert first["message"] == f"Заявка с формы proftest: телефон {masked}, перезвонить до 18:00"
    assert second["message"] == f"Клиент {masked} не отвечает"


def test_emails_and_non_string_args_are_masked() -> None:
    with json_lines("leadrelay.test.masking") as stream:
        logging.getLogger("leadrelay.test.masking").error(
            "не удалось создать сделку для %s: %s",
            "Aigerim.K@Example.com",
            ValueError("contact aigerim@example.com +77771112233 exists"),
        )
    [line] = parsed(stream)
    assert line["message"] == (
        "не удалось создать сделку для A***@Example.com: "
        "contact a***@example.com +7777***2233 exists"
    )


def test_what_is_not_a_phone_is_left_alone() -> None:
    text = (
        "lead 25399013, leads [25399013, 25399014] at 2026-01-01 12:00:00+00:00, "
        "run 01a20419-6533-7767-93f1-171093112650"
    )
    assert mask(text) == text


def test_webhook_token_in_a_url_is_masked() -> None:
    line = '127.0.0.1:5000 - "POST /api/amocrm/funnel-sale?token=hook-secret HTTP/1.1" 200'
    assert mask(line) == '127.0.0.1:5000 - "POST /api/amocrm/funnel-sale?token=*** HTTP/1.1" 200'


def test_json_line_fields_with_temporal_extras() -> None:
    with json_lines("leadrelay.test.json") as stream:
        logging.getLogger("leadrelay.test.json").info(
            "amoCRM request failed",
            extra={
                "temporal_activity": {
                    "activity_type": "amocrm.create_lead",
                    "workflow_id": "lead-+77771112233",
                    "workflow_run_id": "01a20419-6533-7767-93f1-1710931c650b",
                }
            },
        )
        try:
            raise RuntimeError("answer for aigerim@example.com lost")
        except RuntimeError:
            logging.getLogger("leadrelay.test.json").exception("Сбой")
    [info, failure] = parsed(stream)
    assert info["level"] == "INFO" and info["logger"] == "leadrelay.test.json"
    assert info["time"].endswith("+00:00") and info["message"] == "amoCRM request failed"
    assert info["activity_type"] == "amocrm.create_lead"
    assert info["workflow_id"] == "lead-+7777***2233"
    assert info["run_id"] == "01a20419-6533-7767-93f1-1710931c650b"
    assert failure["level"] == "ERROR" and failure["message"] == "Сбой"
    assert "a***@example.com" in failure["exception"]
    assert "aigerim@" not in failure["exception"]
    assert "workflow_id" not in failure


# --- the worker's runtime -------------------------------------------------------------


# Not sandboxed: the sandbox would re-import this test module, pytest and all.
@workflow.defn(sandboxed=False)
class MetricsProbeWorkflow:
    """Four amoCRM activities: one succeeds, one is rejected, one creates a lead, and one
    creates a lead in a batch, submitted a minute ago."""

    @workflow.run
    async def run(self, phone: str) -> None:
        workflow.logger.warning("probe for %s", phone)
        once = RetryPolicy(maximum_attempts=1)
        timeout = timedelta(seconds=30)
        await workflow.execute_activity_method(
            AmoActivities.main_pipeline_id, start_to_close_timeout=timeout
        )
        with suppress(ActivityError):
            await workflow.execute_activity_method(
                AmoActivities.read_current_lead,
                UNKNOWN_LEAD_ID,
                start_to_close_timeout=timeout,
                retry_policy=once,
            )
        new_lead = NewLead("Метрики", None, None, [], new_contact=NewContact(None, phone, None))
        await workflow.execute_activity_method(
            AmoActivities.create_lead, new_lead, start_to_close_timeout=timeout, retry_policy=once
        )
        batched = NewLead("Метрики", None, None, [], new_contact=NewContact(None, phone, None))
        batched.request_id = "probe"
        received = (workflow.now() - timedelta(minutes=1)).isoformat()
        await workflow.execute_activity_method(
            AmoBatchActivities.create_leads_batch,
            LeadsBatch([LeadToCreate(batched, received)]),
            start_to_close_timeout=timeout,
            retry_policy=once,
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_worker_runtime_serves_temporal_and_amocrm_metrics(
    stack: Stack, new_phone: Callable[[], str]
) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = stack.settings.model_copy(update={"leadrelay_worker_metrics_address": address})
    client = await connect(settings, runtime=worker_runtime(address))
    task_queue = f"metrics-probe-{uuid.uuid4()}"
    phone = new_phone()
    workflow_id = f"metrics-probe-{uuid.uuid4().hex[:8]}-{phone}"
    with json_lines("temporalio.workflow", "temporalio.activity") as stream:
        async with amo_client(settings) as amo:
            activities = AmoActivities(amo, phone_region=settings.leadrelay_phone_region)
            batches = AmoBatchActivities(amo)
            async with Worker(
                client,
                task_queue=task_queue,
                workflows=[MetricsProbeWorkflow],
                activities=[
                    activities.main_pipeline_id,
                    activities.read_current_lead,
                    activities.create_lead,
                    batches.create_leads_batch,
                ],
            ):
                await client.execute_workflow(
                    MetricsProbeWorkflow.run,
                    phone,
                    id=workflow_id,
                    task_queue=task_queue,
                )
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"http://{address}/metrics")
    assert response.status_code == 200
    # The SDK writes counters without `_total`; the parser names their samples with it.
    assert "\ntemporal_workflow_completed{" in response.text
    samples = parse_metrics(response.text)
    ours = {"namespace": settings.temporal_namespace, "task_queue": task_queue}

    def total(name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(
            value for (found, got), value in samples.items() if found == name and wanted <= got
        )

    completed = "temporal_workflow_completed_total"
    assert total(completed, **ours, workflow_type="MetricsProbeWorkflow") == 1
    requests = "leadrelay_amocrm_requests_total"
    assert total(requests, **ours, activity_type="amocrm.main_pipeline_id", outcome="success") == 1
    rejected = total(
        requests, **ours, activity_type="amocrm.read_current_lead", outcome="AmoRejected"
    )
    assert rejected == 1
    assert total("leadrelay_leads_created_total", **ours, activity_type="amocrm.create_lead") == 1
    speed = "leadrelay_speed_to_lead_seconds"
    assert total(f"{speed}_count", **ours, milestone="lead") == 1
    assert 60 <= total(f"{speed}_sum", **ours, milestone="lead") < 120
    assert total(f"{speed}_bucket", **ours, milestone="lead", le="45") == 0
    assert total(f"{speed}_bucket", **ours, milestone="lead", le="90") == 1

    lines = parsed(stream)
    assert phone not in stream.getvalue()
    masked_id = workflow_id.replace(phone, mask(phone))
    probe = next(line for line in lines if line["logger"] == "temporalio.workflow")
    assert probe["workflow_id"] == masked_id and probe["run_id"]
    assert probe["message"].startswith(f"probe for {mask(phone)}")
    failed = next(line for line in lines if line["logger"] == "temporalio.activity")
    assert failed["activity_type"] == "amocrm.read_current_lead"
    assert failed["workflow_id"] == masked_id
