"""One trace per lead: API → signal-with-start → workflow → activities → amoCRM HTTP.

The API and the worker are built as their processes build them, each with a `Tracing`
from the OTEL_* variables, exporting to an in-process OTLP receiver over `http/protobuf`
and over `grpc`. They run in a namespace of their own, so every span seen is theirs.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlencode

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from cli.admin import setup_search_attributes
from leadrelay.contact import lead_workflow_id
from leadrelay.events import entity_workflow_id
from leadrelay.logs import JsonFormatter
from leadrelay.settings import Settings
from leadrelay.tracing import Tracing
from tests.conftest import SANDBOX_TOKEN, WEBHOOK_TOKEN
from tests.isolated import Deployment, deployment, register_namespace
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support import eventually
from workflows.batcher import ANSWER_SIGNAL

NAMESPACE = "leadrelay-tracing"
LANDING_SPAN = "POST /api/landing/{form}"
PERSON_NAME = "Трассировка Тестовна"
# Attributes that may hold a workflow id, where a phone or an email is allowed.
WORKFLOW_ID_ATTRIBUTES = {"temporalWorkflowID", "leadrelay.workflow_id", "leadrelay.workflow_ids"}


@pytest.fixture(scope="module")
def otlp() -> Iterator[tuple[OtlpReceiver, dict[str, str]]]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
async def traced_settings(
    temporal_env: WorkflowEnvironment, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    await register_namespace(temporal_env, NAMESPACE)
    traced = settings.model_copy(
        update={
            "temporal_namespace": NAMESPACE,
            "leadrelay_outbox_path": tmp_path_factory.mktemp("traced") / "outbox.sqlite3",
        }
    )
    await setup_search_attributes(traced)
    return traced


@pytest.fixture
def traced_deployment(
    otlp: tuple[OtlpReceiver, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., AbstractAsyncContextManager[Deployment]]:
    """API and workers tracing to the receiver; their spans are flushed on exit."""

    @asynccontextmanager
    async def run(settings: Settings, protocol: str = "http/protobuf") -> AsyncIterator[Deployment]:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp[1][protocol])
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        api_tracing = Tracing.from_environment("leadrelay-api")
        worker_tracing = Tracing.from_environment("leadrelay-worker")
        try:
            async with deployment(
                settings,
                create_app(settings, tracing=api_tracing),
                interceptors=worker_tracing.temporal_interceptors(),
                amo_transport=worker_tracing.http_transport("amocrm"),
            ) as running:
                yield running
        finally:
            await asyncio.to_thread(api_tracing.shutdown)
            await asyncio.to_thread(worker_tracing.shutdown)

    return run


def one_span(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{name}: {len(found)} spans in {sorted(s.name for s in spans)}"
    return found[0]


async def answered(running: Deployment, workflow_id: str, count: int) -> None:
    """Waits until the lead workflow has had `count` answers from the batchers."""
    handle = running.client.get_workflow_handle(workflow_id)

    async def all_answered() -> bool:
        answers = [
            event
            async for event in handle.fetch_history_events()
            if event.workflow_execution_signaled_event_attributes.signal_name == ANSWER_SIGNAL
        ]
        return len(answers) >= count

    await eventually(all_answered)


def batch_request_for(
    collected: OtlpReceiver, trace_id: str, workflow_id: str, activity: str
) -> ReceivedSpan:
    """The amoCRM request of the one batch activity whose span links to this lead's trace."""
    linked = [
        span
        for span in collected.named(f"RunActivity:amocrm.{activity}")
        if any(
            link.trace_id == trace_id and link.attributes["leadrelay.workflow_id"] == workflow_id
            for link in span.links
        )
    ]
    assert len(linked) == 1, f"{activity}: {len(linked)} batch spans link to the lead's trace"
    batch = linked[0]
    assert batch.trace_id != trace_id  # the batcher's trace, reached only by the link
    assert workflow_id in batch.attributes["leadrelay.workflow_ids"]
    # and the lead's own trace names the batch its item went in
    kind = "creates" if activity == "create_leads_batch" else "notes"
    answer = one_span(collected.trace(trace_id), f"BatchAnswer:{kind}")
    assert answer.attributes["leadrelay.batch"] == batch.attributes["leadrelay.batch"]
    assert answer.attributes["leadrelay.outcome"] == "done"
    assert answer.attributes["temporalWorkflowID"] == workflow_id
    requests = [
        span
        for span in collected.trace(batch.trace_id)
        if span.parent_span_id == batch.span_id and span.name.startswith("amocrm ")
    ]
    assert len(requests) == 1, [span.name for span in requests]
    return requests[0]


def assert_nothing_private(spans: list[ReceivedSpan], *secrets: str) -> None:
    for span in spans:
        for name, value in span.attributes.items():
            text = json.dumps(value, ensure_ascii=False)
            for secret in (SANDBOX_TOKEN, WEBHOOK_TOKEN, "Bearer", PERSON_NAME, *secrets):
                if name not in WORKFLOW_ID_ATTRIBUTES or secret in (SANDBOX_TOKEN, "Bearer"):
                    assert secret not in text, f"{span.name}: {name}={text}"


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_one_lead_is_one_trace_from_the_form_to_amocrm(
    traced_settings, traced_deployment, otlp, protocol, new_phone: Callable[[], str]
):
    phone = new_phone()
    workflow_id = lead_workflow_id(phone)
    # A deadline no CI hiccup reaches, so this form is delivered in its request.
    direct = traced_settings.model_copy(update={"leadrelay_ack_deadline_ms": 10_000})
    async with traced_deployment(direct, protocol) as running:
        body = {"name": PERSON_NAME, "phone": phone, "comment": "перезвоните"}
        answer = await running.api.post("/api/landing/proftest", json=body)
        assert answer.status_code == 202, answer.text
        await running.lead_done(workflow_id)
        await answered(running, workflow_id, 2)  # the create's and the note's

    collected = otlp[0]
    landing = [
        span
        for span in collected.named(LANDING_SPAN)
        if span.attributes.get("leadrelay.workflow_id") == workflow_id
    ]
    assert len(landing) == 1
    request = landing[0]
    assert request.service == "leadrelay-api"
    assert request.attributes["leadrelay.form"] == "proftest"
    spans = collected.trace(request.trace_id)
    by_id = {span.span_id: span for span in spans}

    start = one_span(spans, "SignalWithStartWorkflow:LeadWorkflow")
    assert start.parent_span_id == request.span_id
    assert start.attributes["temporalWorkflowID"] == workflow_id
    run = one_span(spans, "RunWorkflow:LeadWorkflow")
    assert run.service == "leadrelay-worker" and run.parent_span_id == start.span_id
    http_spans = [span for span in spans if span.name.startswith("amocrm ")]
    # The person's search is this workflow's own request; the create and the note go in
    # batches, traced in their batcher's trace and linked to this one.
    search = one_span(http_spans, "amocrm GET /api/v4/contacts")
    created = batch_request_for(collected, request.trace_id, workflow_id, "create_leads_batch")
    assert created.name == "amocrm POST /api/v4/leads/complex"
    noted = batch_request_for(collected, request.trace_id, workflow_id, "add_notes_batch")
    assert noted.name == "amocrm POST /api/v4/leads/notes"
    assert search.attributes["http.status_code"] in (200, 204)
    for http in http_spans:
        method, path = http.name.split(" ")[1:]
        assert http.attributes["amocrm.method"] == method
        assert http.attributes["amocrm.path"] == path
        executed = by_id[http.parent_span_id]
        assert executed.name.startswith("RunActivity:amocrm.")
        assert executed.service == "leadrelay-worker"
        activity = executed.name.split(":", 1)[1]
        assert by_id[executed.parent_span_id].name == f"StartActivity:{activity}"
    # The search's query string held the phone's digits; spans never keep a query.
    assert_nothing_private(spans, phone, phone[-10:])


async def test_a_submission_from_the_outbox_keeps_its_trace(
    traced_settings, traced_deployment, otlp, new_phone: Callable[[], str]
):
    """An ack deadline no send can meet puts the form in the outbox; the drainer's
    delivery then joins the trace of the request that accepted it."""
    phone = new_phone()
    workflow_id = lead_workflow_id(phone)
    via_outbox = traced_settings.model_copy(update={"leadrelay_ack_deadline_ms": 0.001})
    async with traced_deployment(via_outbox) as running:
        answer = await running.api.post("/api/landing/proftest", json={"phone": phone})
        assert answer.json()["delivered_via"] == "outbox"
        await running.lead_done(workflow_id)

    collected = otlp[0]
    request = next(
        span
        for span in collected.named(LANDING_SPAN)
        if span.attributes.get("leadrelay.workflow_id") == workflow_id
    )
    spans = collected.trace(request.trace_id)
    redelivery = next(
        span
        for span in spans
        if span.name == "outbox redelivery"
        and span.attributes["leadrelay.workflow_id"] == workflow_id
    )
    assert redelivery.parent_span_id == request.span_id
    assert any(
        span.name == "SignalWithStartWorkflow:LeadWorkflow"
        and span.parent_span_id == redelivery.span_id
        for span in spans
    )
    names = {span.name for span in spans}
    assert "RunWorkflow:LeadWorkflow" in names
    assert "amocrm GET /api/v4/contacts" in names


async def test_a_webhook_is_one_trace_into_its_entity_workflow(
    traced_settings, traced_deployment, otlp
):
    lead_id = 70_000_001
    body = urlencode(
        {
            "leads[status][0][id]": lead_id,
            "leads[status][0][status_id]": 777,
            "leads[status][0][pipeline_id]": 555,
            "leads[status][0][last_modified]": 1_700_000_000,
        }
    )
    workflow_id = entity_workflow_id("leads", lead_id)
    async with traced_deployment(traced_settings) as running:
        answer = await running.api.post(
            "/api/amocrm/tracing",
            params={"token": WEBHOOK_TOKEN},
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.json()["events"] == 1, answer.text
        handle = running.client.get_workflow_handle(workflow_id)

        async def handled() -> bool:
            return (await handle.describe()).history_length > 3

        await eventually(handled)

    collected = otlp[0]
    request = next(
        span
        for span in collected.named("POST /api/amocrm/{hook}")
        if workflow_id in span.attributes.get("leadrelay.workflow_ids", [])
    )
    assert request.attributes["leadrelay.hook"] == "tracing"
    spans = collected.trace(request.trace_id)
    start = one_span(spans, "SignalWithStartWorkflow:AmoEntityWorkflow")
    assert start.parent_span_id == request.span_id
    assert one_span(spans, "RunWorkflow:AmoEntityWorkflow").parent_span_id == start.span_id
    assert_nothing_private(spans)  # the ?token= never reaches a span


def test_log_lines_carry_the_trace_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.tracing")
    log.addHandler(handler)
    log.propagate = False
    try:
        with Tracing(TracerProvider()).tracer("test").start_as_current_span("work") as span:
            log.warning("inside")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert outside["trace_id"] is None


def test_tracing_is_off_without_an_endpoint_and_refuses_unknown_protocols():
    assert not Tracing.from_environment("x", {}).enabled
    assert Tracing.from_environment("x", {}).temporal_interceptors() == []
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        Tracing.from_environment(
            "x",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            },
        )


def test_the_api_and_worker_processes_trace_from_their_environment(
    otlp: tuple[OtlpReceiver, dict[str, str]],
):
    """`python -m api` and `python worker.py` as `make run` and compose start them, with
    only the OTEL_* variables set: their spans make one trace per lead."""
    from bench import load
    from bench.stack import BENCH_FORM, BenchStack, StackConfig

    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp[1]["grpc"],
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    collected = otlp[0]
    with BenchStack(StackConfig(extra_env=otel)) as stack:
        national = load.new_national_numbers(1)[0]
        answer = httpx.post(
            f"{stack.api_url}/api/landing/{BENCH_FORM}",
            json=load.landing_body(national),
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        workflow_id = answer.json()["workflow_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            requests = [
                span
                for span in collected.named(LANDING_SPAN)
                if span.attributes.get("leadrelay.workflow_id") == workflow_id
            ]
            names = (
                {(s.service, s.name) for s in collected.trace(requests[0].trace_id)}
                if requests
                else set()
            )
            if ("leadrelay-worker", "amocrm GET /api/v4/contacts") in names:
                break
            time.sleep(0.3)
    assert ("leadrelay-api", "SignalWithStartWorkflow:LeadWorkflow") in names
    assert ("leadrelay-worker", "RunWorkflow:LeadWorkflow") in names
    assert ("leadrelay-worker", "amocrm GET /api/v4/contacts") in names
