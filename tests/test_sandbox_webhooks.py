"""The sandbox's webhooks, event log and tasks, over real HTTP, with a receiver playing us."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from sandbox.app import SandboxSettings, create_app
from sandbox.server import serve_in_thread
from tests.conftest import SANDBOX_TOKEN

TOKEN = SANDBOX_TOKEN
PROFTEST_PIPELINE = 10350882
PROFTEST_NEW = 81854578
PROFTEST_CONSULTATION = 81854579
WON = 142
DELIVERY_WAIT_SECONDS = 3.0


@dataclass
class ReceivedHook:
    path: str
    headers: dict[str, str]
    body: str

    def decoded(self) -> dict[str, str]:
        return dict(parse_qsl(self.body, strict_parsing=True))


@dataclass
class Receiver:
    """Our side of the webhooks: an HTTP server that keeps every POST it gets."""

    url: str
    hooks: list[ReceivedHook] = field(default_factory=list)

    def wait_for(self, count: int) -> list[ReceivedHook]:
        wait_until(lambda: len(self.hooks) >= count)
        return self.hooks


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.01)


def receiver_app(hooks: list[ReceivedHook]) -> FastAPI:
    app = FastAPI()

    @app.post("/{path:path}")
    async def receive(path: str, request: Request) -> Response:
        hooks.append(ReceivedHook(path, dict(request.headers), (await request.body()).decode()))
        return Response(status_code=200)

    return app


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_in_thread(create_app(SandboxSettings(token=TOKEN, rate_limit=10_000))) as url:
        yield url


@pytest.fixture(scope="module")
def module_receiver() -> Iterator[Receiver]:
    hooks: list[ReceivedHook] = []
    with serve_in_thread(receiver_app(hooks)) as url:
        yield Receiver(url, hooks)


@pytest.fixture
def receiver(module_receiver: Receiver) -> Receiver:
    module_receiver.hooks.clear()
    return module_receiver


def subscribe(control: httpx.Client, url: str, **settings: object) -> None:
    response = control.post("/webhooks", json={"url": url, **settings})
    assert response.status_code == 200, response.text


def create_proftest_lead(api: httpx.Client, name: str = "Айгерим") -> dict[str, Any]:
    lead = {
        "name": f"Профтест: {name}",
        "price": 5000,
        "pipeline_id": PROFTEST_PIPELINE,
        "status_id": PROFTEST_NEW,
        "custom_fields_values": [
            {"field_id": 434731, "field_name": "utm_source", "values": [{"value": "fb"}]}
        ],
        "_embedded": {"contacts": [{"first_name": name}]},
    }
    response = api.post("/leads/complex", json=[lead])
    assert response.status_code == 200, response.text
    return read_lead(api, response.json()[0]["id"])


def read_lead(api: httpx.Client, lead_id: int) -> dict[str, Any]:
    response = api.get(f"/leads/{lead_id}", params={"with": "contacts"})
    assert response.status_code == 200, response.text
    return response.json()


def move(control: httpx.Client, lead_id: int, status_id: int, **options: object) -> None:
    response = control.post(f"/leads/{lead_id}/status", json={"status_id": status_id, **options})
    assert response.status_code == 200, response.text


def test_a_manager_move_sends_one_account_webhook_with_the_whole_lead(
    api: httpx.Client, control: httpx.Client, receiver: Receiver
) -> None:
    subscribe(control, f"{receiver.url}/funnel-sale?token=secret", subdomain="schoolkz")
    lead = create_proftest_lead(api)

    move(control, lead["id"], WON)

    [hook] = receiver.wait_for(1)
    moved = read_lead(api, lead["id"])
    assert hook.path == "funnel-sale"
    assert hook.headers["user-agent"] == "amoCRM-WebHook-client/1.0"
    assert hook.headers["content-type"] == "application/x-www-form-urlencoded"
    assert hook.body.startswith(f"leads%5Bstatus%5D%5B0%5D%5Bid%5D={lead['id']}&")
    prefix = "leads[status][0]"
    assert hook.decoded() == {
        f"{prefix}[id]": str(lead["id"]),
        f"{prefix}[name]": "Профтест: Айгерим",
        f"{prefix}[status_id]": str(WON),
        f"{prefix}[old_status_id]": str(PROFTEST_NEW),
        f"{prefix}[pipeline_id]": str(PROFTEST_PIPELINE),
        f"{prefix}[price]": "5000",
        f"{prefix}[responsible_user_id]": str(lead["responsible_user_id"]),
        f"{prefix}[last_modified]": str(moved["updated_at"]),
        f"{prefix}[modified_user_id]": str(lead["responsible_user_id"]),
        f"{prefix}[created_user_id]": str(lead["responsible_user_id"]),
        f"{prefix}[date_create]": str(lead["created_at"]),
        f"{prefix}[account_id]": "29000000",
        f"{prefix}[custom_fields][0][id]": "434731",
        f"{prefix}[custom_fields][0][name]": "utm_source",
        f"{prefix}[custom_fields][0][values][0][value]": "fb",
        "account[subdomain]": "schoolkz",
        "account[id]": "29000000",
        "account[_links][self]": "https://schoolkz.amocrm.ru",
    }
    assert moved["updated_at"] > lead["updated_at"]
    wait_until(lambda: control.get("/webhooks/deliveries").json()[0]["status_code"] == 200)
    assert len(control.get("/webhooks/deliveries").json()) == 1


def test_a_digital_pipeline_hook_gets_only_the_stage_move_of_an_api_patch(
    api: httpx.Client, control: httpx.Client, receiver: Receiver
) -> None:
    subscribe(
        control, receiver.url, style="digital-pipeline", subdomain="otherschool", account_id=7
    )
    lead = create_proftest_lead(api)

    response = api.patch(f"/leads/{lead['id']}", json={"status_id": PROFTEST_CONSULTATION})

    assert response.status_code == 200
    [hook] = receiver.wait_for(1)
    assert hook.decoded() == {
        "leads[status][0][id]": str(lead["id"]),
        "leads[status][0][status_id]": str(PROFTEST_CONSULTATION),
        "leads[status][0][pipeline_id]": str(PROFTEST_PIPELINE),
        "leads[status][0][old_status_id]": str(PROFTEST_NEW),
        "leads[status][0][old_pipeline_id]": str(PROFTEST_PIPELINE),
        "account[id]": "7",
        "account[subdomain]": "otherschool",
    }


def test_a_batch_patch_sends_its_moves_in_one_body_and_skips_unmoved_leads(
    api: httpx.Client, control: httpx.Client, receiver: Receiver
) -> None:
    subscribe(control, receiver.url, style="digital-pipeline")
    first, second, unmoved = (create_proftest_lead(api, name) for name in ("А", "Б", "В"))

    response = api.patch(
        "/leads",
        json=[
            {"id": first["id"], "status_id": WON},
            {"id": second["id"], "status_id": PROFTEST_CONSULTATION},
            {"id": unmoved["id"], "price": 1},
        ],
    )

    assert response.status_code == 200
    [hook] = receiver.wait_for(1)
    decoded = hook.decoded()
    assert decoded["leads[status][0][id]"] == str(first["id"])
    assert decoded["leads[status][0][status_id]"] == str(WON)
    assert decoded["leads[status][1][id]"] == str(second["id"])
    assert "leads[status][2][id]" not in decoded
    assert len(control.get("/webhooks/deliveries").json()) == 1


def test_redeliver_sends_the_identical_body_again(
    api: httpx.Client, control: httpx.Client, receiver: Receiver
) -> None:
    subscribe(control, receiver.url)
    lead = create_proftest_lead(api)
    move(control, lead["id"], WON)
    receiver.wait_for(1)

    response = control.post("/webhooks/redeliver", json={"index": 0})

    assert response.status_code == 200
    assert response.json()["redelivery_of"] == 0
    original, duplicate = receiver.wait_for(2)
    assert duplicate.body == original.body
    assert control.post("/webhooks/redeliver", json={"index": 5}).status_code == 404


def test_a_lost_webhook_is_never_sent_but_the_event_log_has_the_move(
    api: httpx.Client, control: httpx.Client, receiver: Receiver
) -> None:
    subscribe(control, receiver.url)
    lead = create_proftest_lead(api)

    move(control, lead["id"], PROFTEST_CONSULTATION, emit_webhook=False)

    # Deliveries are recorded before the move is answered, so none means none was sent.
    assert control.get("/webhooks/deliveries").json() == []
    moved = read_lead(api, lead["id"])
    response = api.get("/events", params={"filter[type]": "lead_status_changed"})
    assert response.status_code == 200
    [event] = response.json()["_embedded"]["events"]
    assert isinstance(event["id"], str)
    assert event["entity_id"] == lead["id"]
    assert event["entity_type"] == "lead"
    assert event["created_at"] == moved["updated_at"]
    assert event["value_before"] == [
        {"lead_status": {"id": PROFTEST_NEW, "pipeline_id": PROFTEST_PIPELINE}}
    ]
    assert event["value_after"] == [
        {"lead_status": {"id": PROFTEST_CONSULTATION, "pipeline_id": PROFTEST_PIPELINE}}
    ]
    # The next move is delivered, and it is the first webhook our side ever sees.
    move(control, lead["id"], WON)
    [hook] = receiver.wait_for(1)
    assert hook.decoded()["leads[status][0][old_status_id]"] == str(PROFTEST_CONSULTATION)


def test_events_filter_by_type_and_created_at_and_answer_204_when_empty(
    api: httpx.Client, control: httpx.Client
) -> None:
    kept, moved = create_proftest_lead(api, "А"), create_proftest_lead(api, "Б")
    api.patch(f"/leads/{moved['id']}", json={"status_id": WON}).raise_for_status()
    moved_at = read_lead(api, moved["id"])["updated_at"]

    def events(**params: object) -> list[tuple[str, object]]:
        response = api.get("/events", params=params)
        if response.status_code == 204:
            return []
        assert response.status_code == 200, response.text
        listed = response.json()["_embedded"]["events"]
        return [(event["type"], event["entity_id"]) for event in listed]

    # Newest first: the status change happened after both leads were added.
    assert events() == [
        ("lead_status_changed", moved["id"]),
        ("lead_added", moved["id"]),
        ("lead_added", kept["id"]),
    ]
    assert events(**{"filter[type][]": ["lead_added"], "filter[entity]": "lead"}) == [
        ("lead_added", moved["id"]),
        ("lead_added", kept["id"]),
    ]
    assert events(**{"filter[type]": "lead_status_changed,lead_added", "limit": 1}) == [
        ("lead_status_changed", moved["id"])
    ]
    assert events(**{"filter[created_at][from]": moved_at}) == [
        ("lead_status_changed", moved["id"])
    ]
    assert events(**{"filter[created_at][to]": moved_at - 1}) == [
        ("lead_added", moved["id"]),
        ("lead_added", kept["id"]),
    ]
    empty = api.get("/events", params={"filter[created_at][from]": moved_at + 1})
    assert empty.status_code == 204
    assert empty.content == b""
    assert api.get("/events", params={"limit": 101}).status_code == 400


def test_events_need_the_token_like_every_api_call(sandbox_url: str) -> None:
    assert httpx.get(f"{sandbox_url}/api/v4/events").status_code == 401


def test_tasks_are_created_on_known_leads_only(api: httpx.Client, control: httpx.Client) -> None:
    lead = create_proftest_lead(api)
    task = {
        "text": "Перезвонить",
        "complete_till": 1703300000,
        "entity_id": lead["id"],
        "entity_type": "leads",
        "task_type_id": 1,
        "request_id": "call-back",
    }

    created = api.post("/tasks", json=[task])
    unknown = api.post("/tasks", json=[{**task, "entity_id": 1}])

    assert created.status_code == 200
    [row] = created.json()["_embedded"]["tasks"]
    assert row["request_id"] == "call-back"
    assert row["_links"]["self"]["href"].endswith(f"/api/v4/tasks/{row['id']}")
    assert unknown.status_code == 400
    assert unknown.headers["content-type"] == "application/problem+json"
    [item_errors] = unknown.json()["validation-errors"]
    assert item_errors["errors"][0]["path"] == "entity_id"
    [stored] = control.get("/state").json()["tasks"]
    assert stored["id"] == row["id"]
    assert stored["entity_id"] == lead["id"]
    assert stored["complete_till"] == 1703300000


def test_a_lead_read_with_contacts_names_its_main_contact(api: httpx.Client) -> None:
    lead = create_proftest_lead(api)

    [contact] = lead["_embedded"]["contacts"]

    assert contact["id"] and contact["is_main"] is True
    response = api.get(f"/contacts/{contact['id']}")
    assert response.status_code == 200
    assert response.json()["name"] == "Айгерим"
