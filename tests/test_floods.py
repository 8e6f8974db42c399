"""Floods at intake: one person, one client address, and bots that fill a honeypot. Real
HTTP against the running stack."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from api.app import create_app as create_api
from api.throttle import TokenBuckets, client_address, parse_networks
from leadrelay import limits
from sandbox.server import serve_in_thread
from tests.support import Stack
from tests.test_pipeline import leads_of, wait_processed


async def test_one_person_past_the_bound_gets_429_with_retry_after(
    stack: Stack, new_phone: Callable[[], str]
) -> None:
    phone = new_phone()
    body = {"phone": phone, "comment": "нажимаю снова и снова"}  # repeats: one note
    answers = [
        await stack.api.post("/api/landing/proftest", json=body)
        for _ in range(limits.PERSON_SUBMISSIONS_PER_WINDOW + 3)
    ]
    codes = [a.status_code for a in answers]
    assert codes == [202] * limits.PERSON_SUBMISSIONS_PER_WINDOW + [429] * 3
    retry_after = int(answers[-1].headers["Retry-After"])
    per_token = limits.PERSON_WINDOW_SECONDS / limits.PERSON_SUBMISSIONS_PER_WINDOW
    assert 1 <= retry_after <= per_token + 1
    other_phone = new_phone()
    other = await stack.api.post("/api/landing/proftest", json={"phone": other_phone})
    assert other.status_code == 202, "another person is not held back"
    metrics = (await stack.api.get("/metrics")).text
    assert 'leadrelay_intake_throttled_total{limit="person"}' in metrics
    # Leave no work behind for the tests that count amoCRM requests.
    await wait_processed(stack, phone, 1)
    await wait_processed(stack, other_phone, 1)


def test_token_buckets_refill_and_forget_the_oldest_keys() -> None:
    now = [0.0]
    buckets = TokenBuckets(2, 10.0, max_keys=2, clock=lambda: now[0])
    assert buckets.take("a") is None and buckets.take("a") is None
    assert buckets.take("a") == pytest.approx(5.0)
    now[0] = 5.0
    assert buckets.take("a") is None
    buckets.take("b")
    buckets.take("c")  # "a" is forgotten: a flood of new keys costs fixed memory
    assert buckets.take("a") is None and buckets.take("a") is None


def test_client_address_believes_only_trusted_proxies() -> None:
    trusted = parse_networks("10.0.0.0/8, 127.0.0.1")
    assert client_address("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"
    assert client_address("127.0.0.1", "1.2.3.4", trusted) == "1.2.3.4"
    # A forged left part is ignored: the first untrusted hop from the right is the client.
    assert client_address("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1", trusted) == "1.2.3.4"
    assert client_address("127.0.0.1", "", trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "1.2.3.4", []) == "127.0.0.1"


@pytest.fixture
async def limited_api(tmp_path: Path, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    settings = stack.settings.model_copy(
        update={
            "leadrelay_ip_limit_per_minute": 5,
            "leadrelay_trusted_proxies": "127.0.0.1",
            "leadrelay_outbox_path": tmp_path / "outbox.sqlite3",
        }
    )
    with serve_in_thread(create_api(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            yield api


async def test_per_client_limit_answers_429_per_forwarded_address(
    limited_api: httpx.AsyncClient, stack: Stack
) -> None:
    async def post(address: str) -> httpx.Response:
        return await limited_api.post(
            "/api/landing/proftest", json={"name": "no phone"}, headers={"X-Forwarded-For": address}
        )

    flood = [await post("198.51.100.7") for _ in range(7)]
    assert [a.status_code for a in flood] == [422] * 5 + [429] * 2
    assert 1 <= int(flood[-1].headers["Retry-After"]) <= 12
    assert (await post("198.51.100.8")).status_code == 422, "a neighbour has its own budget"
    hook = await limited_api.post(
        "/api/amocrm/funnel", params={"token": "wrong"}, headers={"X-Forwarded-For": "198.51.100.7"}
    )
    assert hook.status_code == 429
    amocrm = await limited_api.post(
        "/api/amocrm/funnel",
        params={"token": stack.settings.webhook_token},
        data={},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert amocrm.status_code == 200, "amoCRM itself, with the token, is never limited"


async def test_honeypot_submissions_are_answered_202_and_dropped(
    clean_sandbox: Stack, new_phone: Callable[[], str]
) -> None:
    stack = clean_sandbox
    text = f'{stack.forms_text}\n[forms.trap]\nhoneypot = "website"\n'
    await asyncio.to_thread(stack.forms_path.write_text, text, encoding="utf-8")
    try:
        bot, human = new_phone(), new_phone()
        caught = await stack.api.post(
            "/api/landing/trap", json={"phone": bot, "website": "http://spam.example"}
        )
        passed = await stack.api.post("/api/landing/trap", json={"phone": human, "website": ""})
        assert caught.status_code == passed.status_code == 202

        await wait_processed(stack, human, 1)
        await asyncio.sleep(1)
        assert leads_of(await stack.sandbox_state(), human[1:])
        assert not leads_of(await stack.sandbox_state(), bot[1:])
        metrics = (await stack.api.get("/metrics")).text
        assert "leadrelay_honeypot_dropped_total 1.0" in metrics
    finally:
        await asyncio.to_thread(stack.forms_path.write_text, stack.forms_text, encoding="utf-8")
