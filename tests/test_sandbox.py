"""The amoCRM sandbox, exercised over real HTTP the way leadrelay's client will meet it."""

import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.app import SandboxSettings, create_app
from sandbox.server import serve_in_thread
from tests.conftest import SANDBOX_TOKEN

TOKEN = SANDBOX_TOKEN
PHONE = "+77771112233"


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    # A generous rate limit, so that only the tests about the limit ever meet it.
    with serve_in_thread(create_app(SandboxSettings(token=TOKEN, rate_limit=10_000))) as url:
        yield url


@pytest.fixture
def strict_url() -> Iterator[str]:
    """A fresh sandbox with amoCRM's own limits, except for a short block."""
    with serve_in_thread(create_app(SandboxSettings(token=TOKEN, block_seconds=1))) as url:
        yield url


def new_lead_with_contact(name: str = "Айгерим", **lead: object) -> dict[str, object]:
    contact = {
        "first_name": name,
        "custom_fields_values": [
            {"field_code": "PHONE", "values": [{"value": PHONE, "enum_code": "MOB"}]},
            {"field_code": "EMAIL", "values": [{"value": "a@example.kz", "enum_code": "WORK"}]},
        ],
    }
    return {
        "name": f"Заявка: {name}",
        "_embedded": {"contacts": [contact], "tags": [{"name": "proftest"}]},
        **lead,
    }


def create_leads(api: httpx.Client, count: int) -> list[int]:
    response = api.post("/leads", json=[{"name": f"lead {n}"} for n in range(count)])
    assert response.status_code == 200
    return [lead["id"] for lead in response.json()["_embedded"]["leads"]]


def test_api_needs_the_bearer_token(sandbox_url: str) -> None:
    without_token = httpx.get(f"{sandbox_url}/api/v4/leads")
    wrong_token = httpx.get(
        f"{sandbox_url}/api/v4/leads", headers={"Authorization": "Bearer stolen"}
    )

    for response in (without_token, wrong_token):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Unauthorized"


def test_search_without_match_is_204_with_an_empty_body(api: httpx.Client) -> None:
    response = api.get("/contacts", params={"query": "nobody@example.kz"})

    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize(
    ("pipeline_id", "expected_status_id"),
    [(None, 1002), (6344290, 54435014), (10350882, 81854578)],
)
def test_complex_create_answers_a_bare_array_and_picks_the_first_open_stage(
    api: httpx.Client, control: httpx.Client, pipeline_id: int | None, expected_status_id: int
) -> None:
    lead = new_lead_with_contact(request_id="form-1")
    if pipeline_id is not None:
        lead["pipeline_id"] = pipeline_id

    response = api.post("/leads/complex", json=[lead])

    assert response.status_code == 200
    [created] = response.json()
    assert created["request_id"] == ["form-1"]
    assert created["merged"] is False
    assert created["company_id"] is None
    [stored] = control.get("/state").json()["leads"]
    assert stored["id"] == created["id"]
    assert stored["pipeline_id"] == (pipeline_id or 1000)
    assert stored["status_id"] == expected_status_id
    assert stored["closed_at"] is None
    assert [tag["name"] for tag in stored["_embedded"]["tags"]] == ["proftest"]
    assert [contact["id"] for contact in stored["_embedded"]["contacts"]] == [created["contact_id"]]


def test_complex_reuses_a_known_contact_and_the_same_tag(
    api: httpx.Client, control: httpx.Client
) -> None:
    contact_id = control.post("/contacts", json={"name": "Ержан"}).json()["id"]
    known = {
        "name": "again",
        "_embedded": {"contacts": [{"id": contact_id}], "tags": [{"name": "t"}]},
    }

    answers = [api.post("/leads/complex", json=[known]).json()[0] for _ in range(2)]

    assert [answer["contact_id"] for answer in answers] == [contact_id, contact_id]
    tag_ids = {lead["_embedded"]["tags"][0]["id"] for lead in control.get("/state").json()["leads"]}
    assert len(tag_ids) == 1


def test_search_finds_a_phone_written_without_country_code(api: httpx.Client) -> None:
    lead_id = api.post("/leads/complex", json=[new_lead_with_contact()]).json()[0]["id"]

    response = api.get("/contacts", params={"query": "7771112233", "with": "leads"})

    assert response.status_code == 200
    [contact] = response.json()["_embedded"]["contacts"]
    assert contact["custom_fields_values"][0]["values"][0]["value"] == PHONE
    [stub] = contact["_embedded"]["leads"]
    assert stub["id"] == lead_id
    assert set(stub) == {"id", "_links"}  # stubs only: the status must be fetched separately


def test_search_matches_names_emails_and_phones_written_any_way(api: httpx.Client) -> None:
    api.post("/leads/complex", json=[new_lead_with_contact("Айгерим")])

    assert api.get("/contacts", params={"query": "айгерим"}).status_code == 200
    assert api.get("/contacts", params={"query": "A@EXAMPLE.KZ"}).status_code == 200
    assert api.get("/contacts", params={"query": "(777) 111-22-33"}).status_code == 200
    assert api.get("/contacts", params={"query": "77-71"}).status_code == 204  # too few digits


@pytest.mark.parametrize("style", ["brackets", "indexed", "single"])
def test_leads_filter_by_ids(api: httpx.Client, style: str) -> None:
    first, second, _third = create_leads(api, 3)
    params = {
        "brackets": [("filter[id][]", first), ("filter[id][]", second)],
        "indexed": [("filter[id][0]", first), ("filter[id][1]", second)],
        "single": [("filter[id]", first)],
    }[style]

    response = api.get("/leads", params=params)

    found = {lead["id"] for lead in response.json()["_embedded"]["leads"]}
    assert found == ({first, second} if style != "single" else {first})


def test_leads_list_pages_follow_next_links(api: httpx.Client) -> None:
    create_leads(api, 3)

    first_page = api.get("/leads", params={"limit": 2}).json()
    second_page = api.get(first_page["_links"]["next"]["href"]).json()

    assert len(first_page["_embedded"]["leads"]) == 2
    assert len(second_page["_embedded"]["leads"]) == 1
    assert "next" not in second_page["_links"]
    assert api.get("/leads", params={"limit": 251}).status_code == 400


def test_patch_adds_tags_and_closing_sets_closed_at(api: httpx.Client) -> None:
    [lead_id] = create_leads(api, 1)
    before = api.get(f"/leads/{lead_id}").json()

    response = api.patch(
        f"/leads/{lead_id}", json={"status_id": 142, "tags_to_add": [{"name": "repeat"}]}
    )

    assert response.status_code == 200
    after = api.get(f"/leads/{lead_id}").json()
    assert after["status_id"] == 142
    assert after["closed_at"] is not None
    assert after["updated_at"] > before["updated_at"]
    assert [tag["name"] for tag in after["_embedded"]["tags"]] == ["repeat"]
    assert response.json()["updated_at"] == after["updated_at"]


def test_patch_of_an_unknown_lead_is_404(api: httpx.Client) -> None:
    assert api.patch("/leads/1", json={"name": "ghost"}).status_code == 404
    assert api.patch("/leads", json=[{"id": 1, "name": "ghost"}]).status_code == 400


def test_notes_are_created_and_listed(api: httpx.Client) -> None:
    [lead_id] = create_leads(api, 1)
    assert api.get(f"/leads/{lead_id}/notes").status_code == 204

    created = api.post(
        "/leads/notes",
        json=[{"entity_id": lead_id, "note_type": "common", "params": {"text": "Повтор"}}],
    )
    api.post(f"/leads/{lead_id}/notes", json=[{"note_type": "common", "params": {"text": "2"}}])

    assert created.status_code == 200
    assert created.json()["_embedded"]["notes"][0]["entity_id"] == lead_id
    notes = api.get(f"/leads/{lead_id}/notes").json()["_embedded"]["notes"]
    assert [note["params"]["text"] for note in notes] == ["Повтор", "2"]
    unknown = api.post("/leads/notes", json=[{"entity_id": 1, "note_type": "common"}])
    assert unknown.status_code == 400


def test_unknown_pipeline_is_a_400_validation_problem_and_creates_nothing(
    api: httpx.Client, control: httpx.Client
) -> None:
    good = new_lead_with_contact()
    bad = new_lead_with_contact(pipeline_id=999)

    response = api.post("/leads/complex", json=[good, bad])

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    [item_errors] = response.json()["validation-errors"]
    assert item_errors["request_id"] == "1"
    assert item_errors["errors"][0]["path"] == "1.pipeline_id"
    assert control.get("/state").json() == {"contacts": [], "leads": [], "notes": [], "tasks": []}


def test_malformed_json_is_a_400_problem(api: httpx.Client) -> None:
    response = api.post("/leads", content=b"[{not json")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("style", "content_type", "retry_after_header"),
    [
        ("json", "application/problem+json", None),
        ("html", "text/html; charset=utf-8", "1"),
        ("html-no-header", "text/html; charset=utf-8", None),
    ],
)
def test_more_than_seven_requests_a_second_get_429(
    strict_url: str, style: str, content_type: str, retry_after_header: str | None
) -> None:
    httpx.post(f"{strict_url}/_sandbox/faults", json={"rate_limit_style": style})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"{strict_url}/api/v4", headers=headers) as api:
        statuses = [api.get("/leads/pipelines") for _ in range(8)]

    limited = [response for response in statuses if response.status_code == 429]
    assert limited
    assert limited[0].headers["content-type"] == content_type
    assert limited[0].headers.get("retry-after") == retry_after_header
    if style == "json":
        assert limited[0].json()["retry_after"] == 1


def test_repeated_429s_block_the_account_until_block_seconds_pass(strict_url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"{strict_url}/api/v4", headers=headers) as api:
        statuses = [api.get("/leads/pipelines").status_code for _ in range(14)]
        blocked = api.get("/leads/pipelines")
        time.sleep(1.1)
        after_block = api.get("/leads/pipelines")

    assert statuses[:7] == [200] * 7
    assert statuses.count(429) == 5
    assert statuses[-1] == 403
    assert blocked.status_code == 403
    assert blocked.headers["content-type"].startswith("text/html")
    assert "403 Forbidden" in blocked.text
    assert after_block.status_code == 200
    stats = httpx.get(f"{strict_url}/_sandbox/stats").json()
    assert stats["by_status"] == {"200": 8, "429": 5, "403": 3}


def test_block_now_blocks_at_once(api: httpx.Client, control: httpx.Client) -> None:
    control.post("/faults", json={"block_now_seconds": 30})
    assert api.get("/leads").status_code == 403

    control.delete("/faults")
    assert api.get("/leads").status_code == 204


def test_error_rate_answers_errors_without_applying(
    api: httpx.Client, control: httpx.Client
) -> None:
    control.post("/faults", json={"error_rate": 1, "seed": 1}).raise_for_status()

    response = api.post("/leads/complex", json=[new_lead_with_contact()])

    assert response.status_code == 503
    assert control.get("/state").json()["leads"] == []


def test_lost_answer_applies_the_write_but_answers_504(
    api: httpx.Client, control: httpx.Client
) -> None:
    control.post("/faults", json={"lost_answer_rate": 1}).raise_for_status()

    response = api.post("/leads/complex", json=[new_lead_with_contact()])

    assert response.status_code == 504
    assert response.headers["content-type"].startswith("text/html")
    assert len(control.get("/state").json()["leads"]) == 1
    assert api.get("/leads").status_code == 200  # reads are never lost


def test_fail_next_answers_as_scripted_then_recovers(
    api: httpx.Client, control: httpx.Client
) -> None:
    script = {"method": "POST", "path_prefix": "/api/v4/leads/complex", "status": 400, "times": 1}
    control.post("/faults", json={"fail_next": [script]}).raise_for_status()
    lead = new_lead_with_contact()

    assert api.get("/leads").status_code == 204  # not a match: untouched
    first = api.post("/leads/complex", json=[lead])
    second = api.post("/leads/complex", json=[lead])

    assert first.status_code == 400
    assert second.status_code == 200
    assert len(control.get("/state").json()["leads"]) == 1
    assert control.get("/faults").json()["fail_next"] == []


def test_manager_moves_are_not_counted_and_reach_the_leads_filter(
    api: httpx.Client, control: httpx.Client
) -> None:
    [lead_id] = create_leads(api, 1)

    moved = control.post(f"/leads/{lead_id}/status", json={"status_id": 143})

    assert moved.json()["closed_at"] is not None
    params = {"filter[statuses][0][pipeline_id]": 1000, "filter[statuses][0][status_id]": 143}
    [lead] = api.get("/leads", params=params).json()["_embedded"]["leads"]
    assert lead["id"] == lead_id
    assert control.get("/stats").json()["total"] == 2


def test_ledger_records_requests_and_the_one_second_peak(
    api: httpx.Client, control: httpx.Client
) -> None:
    for _ in range(3):
        api.get("/leads/pipelines")
    time.sleep(1.05)
    since = time.time()
    api.post("/leads", json=[{"name": "x"}])
    api.get("/contacts", params={"query": "x"})

    stats = control.get("/stats").json()
    recent = control.get("/requests", params={"since": since}).json()

    assert stats["total"] == 5
    assert stats["peak_1s"] == 3
    assert stats["by_route"] == {
        "GET /api/v4/leads/pipelines": 3,
        "POST /api/v4/leads": 1,
        "GET /api/v4/contacts": 1,
    }
    assert [(entry["method"], entry["status"]) for entry in recent] == [("POST", 200), ("GET", 204)]
    assert recent[0]["body"] == [{"name": "x"}]
    assert recent[1]["query"] == "query=x"
