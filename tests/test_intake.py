"""The edge: contact normalisation, body decoding and the API's answers to bad forms."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from api.intake import InvalidForm, build_submission, decode_body
from leadrelay.contact import InvalidContact, contact_key, normalize_email, normalize_phone
from tests.support import Stack

RECEIVED = "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    "spelling",
    ["+7 777 111 22 33", "87771112233", "7771112233", "+7(777)111-22-33", "8 777 111 22 33"],
)
def test_kazakh_phone_spellings_are_one_number(spelling: str) -> None:
    assert normalize_phone(spelling, "KZ") == "+77771112233"


@pytest.mark.parametrize("bad", ["12", "not a phone", "+7 000 000 00 00"])
def test_invalid_phone_is_named(bad: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        normalize_phone(bad, "KZ")
    assert caught.value.field == "phone"


def test_email_is_lowercased_and_checked() -> None:
    assert normalize_email(" Aigerim@Example.COM ") == "aigerim@example.com"
    with pytest.raises(InvalidContact):
        normalize_email("aigerim@")


def test_contact_key_prefers_phone() -> None:
    assert contact_key("+77771112233", "a@b.kz") == "+77771112233"
    assert contact_key(None, "a@b.kz") == "a@b.kz"


def test_urlencoded_plain_html_form() -> None:
    raw = "name=Ержан&phone=8+701+123+45+67&email=&utm_source=google&utm_campaign=brand"
    body = decode_body(raw.encode(), "application/x-www-form-urlencoded; charset=UTF-8")
    submission = build_submission("quiz", body, region="KZ", received_at=RECEIVED)
    assert submission.phone == "+77011234567"
    assert submission.email is None
    assert submission.utm == {"utm_source": "google", "utm_campaign": "brand"}


def test_nested_utm_and_extras_are_kept() -> None:
    body = {
        "phone": "87011234567",
        "utmParams": {"utm_source": "fb", "fbclid": "IwAR0abc"},
        "metadata": {"quizAnswers": [{"q": "Q", "a": "A"}]},
    }
    submission = build_submission("quiz", body, region="KZ", received_at=RECEIVED)
    assert submission.utm == {"utm_source": "fb"}
    assert submission.extras == {
        "utmParams": {"fbclid": "IwAR0abc"},
        "metadata": {"quizAnswers": [{"q": "Q", "a": "A"}]},
    }


def test_same_content_same_id_whatever_the_phone_spelling() -> None:
    one = build_submission("f", {"phone": "87771112233"}, region="KZ", received_at=RECEIVED)
    two = build_submission("f", {"phone": "+7 777 111 22 33"}, region="KZ", received_at="later")
    three = build_submission("f", {"phone": "87771112233", "x": 1}, region="KZ", received_at="")
    assert one.submission_id == two.submission_id != three.submission_id


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(InvalidForm) as caught:
        build_submission("f", {"phone": "123", "email": "nope"}, region="KZ", received_at="")
    assert [p.field for p in caught.value.problems] == ["phone", "email"]


# --- the API's answers ----------------------------------------------------------------


async def test_form_without_phone_or_email_is_422_naming_the_field(stack: Stack) -> None:
    response = await stack.api.post("/api/landing/proftest", json={"name": "Аноним"})
    assert response.status_code == 422
    body = response.json()
    assert body["errors"] == [{"field": "phone", "reason": "a phone or an email is required"}]


async def test_invalid_phone_is_422_with_reason(stack: Stack) -> None:
    response = await stack.api.post("/api/landing/proftest", json={"phone": "12345"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "phone" and "12345" in error["reason"]


async def test_malformed_json_and_non_object_are_422(stack: Stack) -> None:
    broken = await stack.api.post(
        "/api/landing/proftest", content=b"{", headers={"Content-Type": "application/json"}
    )
    listed = await stack.api.post("/api/landing/proftest", json=["phone"])
    assert broken.status_code == listed.status_code == 422
    assert broken.json()["errors"][0]["field"] == "body"


async def test_body_over_64_kib_is_413(stack: Stack, new_phone: Callable[[], str]) -> None:
    big = json.dumps({"phone": new_phone(), "comment": "x" * 70_000})
    response = await stack.api.post(
        "/api/landing/proftest", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "65536" in response.json()["detail"]


async def test_unknown_lead_is_404(stack: Stack, new_phone: Callable[[], str]) -> None:
    response = await stack.lead_response(new_phone())
    assert response.status_code == 404


async def test_readyz_reports_temporal_and_healthz_the_drainer(stack: Stack) -> None:
    ready = await stack.api.get("/readyz", headers=stack.admin_headers)
    assert ready.status_code == 200
    temporal = ready.json()["temporal"]
    assert temporal["reachable"] is True and ready.json()["via"] == "temporal"
    assert temporal["address"] == stack.settings.temporal_address
    assert temporal["namespace"] == stack.settings.temporal_namespace
    assert temporal["server_version"]
    live = await stack.api.get("/healthz")
    assert live.status_code == 200
    assert live.json()["drainer_alive"] is True
    assert "dead_letters" in live.json()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "admin-secret"])
async def test_readyz_tells_others_only_ready_and_the_counts(
    stack: Stack, authorization: str | None
) -> None:
    """Where Temporal runs, its version and its errors are for the admin token only."""
    headers = {"Authorization": authorization} if authorization else {}
    ready = await stack.api.get("/readyz", headers=headers)
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "outbox_depth": ready.json()["outbox_depth"],
        "outbox_oldest_age_seconds": ready.json()["outbox_oldest_age_seconds"],
        "dead_letters": ready.json()["dead_letters"],
        "drainer_alive": True,
    }
    assert stack.settings.temporal_address not in ready.text
