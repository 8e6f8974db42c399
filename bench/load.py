"""Load generation and the sandbox ledger check, shared by `make bench`, `make drill` and CI.

The generator is open-loop: request i is due at t0 + i / rate and is sent then, as its own
asyncio task, whatever happened to earlier requests. A slow server therefore cannot slow
the sender down (a closed loop would hide exactly the queueing we want to see); how late
each send started against its schedule is recorded too, so an overloaded generator shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from bench.stack import BENCH_FORM, BENCH_PIPELINE, BENCH_STATUS, WEBHOOK_TOKEN
from leadrelay.contact import InvalidContact, normalize_phone

PHONE_REGION = "KZ"
# Spellings of one Kazakh mobile that must all become one contact key.
PHONE_FORMATS: tuple[Callable[[str], str], ...] = (
    lambda d: f"+7 {d[0:3]} {d[3:6]} {d[6:8]} {d[8:10]}",
    lambda d: f"8{d}",
    lambda d: d,
    lambda d: f"+7({d[0:3]}){d[3:6]}-{d[6:8]}-{d[8:10]}",
)


@dataclass
class Sample:
    """One request: when it was due, how late it left, how it ended."""

    index: int
    due: float  # seconds after the step started
    lateness: float  # actual send start minus due, seconds
    latency: float | None  # seconds from send to the full answer; None on a transport error
    status: int | None
    delivered_via: str | None = None
    error: str | None = None
    body: dict[str, Any] | None = None
    acked_at: float | None = None  # wall clock (time.time()) when the answer arrived


SendOne = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def open_loop(
    client: httpx.AsyncClient, send: SendOne, *, rate: float, count: int
) -> list[Sample]:
    """Send `count` requests at `rate` per second on a fixed schedule; gather every answer."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    tasks: list[asyncio.Task[Sample]] = []

    async def one(index: int, due: float) -> Sample:
        return await _timed(client, send, index, due - start, loop.time() - due)

    for index in range(count):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    return list(await asyncio.gather(*tasks))


async def all_at_once(client: httpx.AsyncClient, send: SendOne, count: int) -> list[Sample]:
    """A burst: every request is started in the same instant (an open loop at infinite rate)."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(index: int) -> Sample:
        return await _timed(client, send, index, 0.0, loop.time() - start)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _timed(
    client: httpx.AsyncClient, send: SendOne, index: int, due: float, lateness: float
) -> Sample:
    sent = time.monotonic()
    try:
        response = await send(client, index)
    except httpx.HTTPError as err:
        return Sample(index, due, lateness, None, None, error=repr(err))
    latency = time.monotonic() - sent
    acked_at = time.time()
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = None
    via = body.get("delivered_via") if body else None
    return Sample(index, due, lateness, latency, response.status_code, via, None, body, acked_at)


# ----- people and request bodies

_run_prefix = random.Random().randrange(10, 99)
_people = itertools.count(1)


def new_national_numbers(count: int) -> list[str]:
    """Fresh valid Kazakh mobile numbers (+7 777 ...), unique in this process.

    A random 2-digit run prefix keeps runs against one persistent server apart.
    """
    return [f"777{_run_prefix:02d}{next(_people):05d}" for _ in range(count)]


def e164(national: str) -> str:
    return f"+7{national}"


def landing_body(
    national: str, index: int = 0, *, spelling: int = 0, email: bool = True
) -> dict[str, Any]:
    body = {
        "name": f"Bench {national[-5:]}",
        "phone": PHONE_FORMATS[spelling % len(PHONE_FORMATS)](national),
        "email": f"bench{national}@example.com",
        "source": "bench",
        "utmParams": {"utm_source": "bench", "utm_campaign": "load"},
        "proftestAnswers": [{"question": "Q1", "answer": "A"}, {"question": "Q2", "answer": "B"}],
    }
    if not email:
        del body["email"]
    return body


def landing_sender(
    nationals: list[str], *, spellings: bool = False, email: bool = True, form: str = BENCH_FORM
) -> SendOne:
    def send(client: httpx.AsyncClient, index: int) -> Awaitable[httpx.Response]:
        national = nationals[index]
        body = landing_body(national, index, spelling=index if spellings else 0, email=email)
        return client.post(f"/api/landing/{form}", json=body)

    return send


_entity_ids = itertools.count(random.Random().randrange(10**6, 9 * 10**6) * 100)


def status_webhook_body(lead_id: int) -> str:
    """A Digital Pipeline stage webhook as amoCRM posts it (PHP-style form encoding)."""
    pairs = [
        ("leads[status][0][id]", str(lead_id)),
        ("leads[status][0][status_id]", str(BENCH_STATUS + 1)),
        ("leads[status][0][pipeline_id]", str(BENCH_PIPELINE)),
        ("leads[status][0][old_status_id]", str(BENCH_STATUS)),
        ("leads[status][0][old_pipeline_id]", str(BENCH_PIPELINE)),
        ("account[id]", "29000000"),
        ("account[subdomain]", "bench"),
    ]
    return urlencode(pairs)


def webhook_sender() -> SendOne:
    """Each request is about a new lead id, so each one starts a new entity workflow."""

    def send(client: httpx.AsyncClient, index: int) -> Awaitable[httpx.Response]:
        return client.post(
            "/api/amocrm/status",
            params={"token": WEBHOOK_TOKEN},
            content=status_webhook_body(next(_entity_ids)),
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "user-agent": "amoCRM-WebHook-client/1.0",
            },
        )

    return send


# ----- statistics


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: list[Sample], ok_status: int) -> dict[str, Any]:
    latencies_ms = [s.latency * 1000 for s in samples if s.latency is not None]
    lateness_ms = [s.lateness * 1000 for s in samples]
    errors = [s for s in samples if s.status != ok_status]
    return {
        "sent": len(samples),
        "ok": len(samples) - len(errors),
        "errors": len(errors),
        "error_examples": sorted({s.error or f"HTTP {s.status}" for s in errors})[:5],
        "outbox": sum(1 for s in samples if s.delivered_via == "outbox"),
        "p50_ms": _round(percentile(latencies_ms, 50)),
        "p90_ms": _round(percentile(latencies_ms, 90)),
        "p99_ms": _round(percentile(latencies_ms, 99)),
        "max_ms": _round(max(latencies_ms, default=None)),
        "send_lateness_p99_ms": _round(percentile(lateness_ms, 99)),
        "send_lateness_max_ms": _round(max(lateness_ms, default=None)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# ----- the sandbox ledger: who got a lead, and which submissions became notes


@dataclass
class LedgerCheck:
    people: int
    submissions: int
    leads_found: int  # people with at least one lead
    duplicate_leads: int  # leads beyond the first, summed over people
    lost: int  # people with no lead
    missing_notes: int  # accepted submissions whose note is on none of the person's leads
    duplicate_notes: int  # notes beyond the first for one submission
    leads_total: int
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.lost == 0 and self.missing_notes == 0

    @property
    def exactly_once(self) -> bool:
        return self.complete and self.duplicate_leads == 0 and self.duplicate_notes == 0


def check_ledger(state: dict[str, Any], expected: dict[str, set[str]]) -> LedgerCheck:
    """`expected` maps each person's E.164 phone to the submission ids accepted for them.

    A lead belongs to a person when one of its contacts has their phone (normalised). A
    submission is accounted for when a note on one of the person's leads names its id
    (the note text carries `id <first 12 hex digits>`).
    """
    contact_phones: dict[int, set[str]] = {}
    for contact in state["contacts"]:
        phones = set()
        for custom_field in contact.get("custom_fields_values") or []:
            if custom_field.get("field_code") != "PHONE":
                continue
            for value in custom_field.get("values") or []:
                with contextlib.suppress(InvalidContact):
                    phones.add(normalize_phone(str(value["value"]), PHONE_REGION))
        contact_phones[contact["id"]] = phones
    leads_of: dict[str, list[int]] = {}
    for lead in state["leads"]:
        owners = set()
        for contact in lead["_embedded"].get("contacts", []):
            owners |= contact_phones.get(contact["id"], set())
        for phone in owners:
            leads_of.setdefault(phone, []).append(lead["id"])
    notes_of: dict[int, list[str]] = {}
    for note in state["notes"]:
        notes_of.setdefault(note["entity_id"], []).append(str(note["params"].get("text", "")))

    check = LedgerCheck(len(expected), 0, 0, 0, 0, 0, 0, len(state["leads"]))
    for phone, submission_ids in expected.items():
        check.submissions += len(submission_ids)
        leads = leads_of.get(phone, [])
        if not leads:
            check.lost += 1
            check.missing_notes += len(submission_ids)
            continue
        check.leads_found += 1
        if len(leads) > 1:
            check.duplicate_leads += len(leads) - 1
            check.problems.append(f"{phone}: {len(leads)} leads {leads}")
        texts = [text for lead_id in leads for text in notes_of.get(lead_id, [])]
        for submission_id in submission_ids:
            hits = sum(1 for text in texts if f"id {submission_id[:12]}" in text)
            if hits == 0:
                check.missing_notes += 1
            elif hits > 1:
                check.duplicate_notes += hits - 1
                check.problems.append(f"{phone}: note for {submission_id[:12]} x{hits}")
    return check


def accepted(samples: list[Sample]) -> dict[str, set[str]]:
    """Person → submission ids of the 202s; a person with no 202 is not expected at all."""
    expected: dict[str, set[str]] = {}
    for sample in samples:
        if sample.status == 202 and sample.body:
            expected.setdefault(sample.body["lead_key"], set()).add(sample.body["submission_id"])
    return expected


async def wait_until_complete(
    sandbox_state: Callable[[], Awaitable[dict[str, Any]]],
    expected: dict[str, set[str]],
    *,
    within: float,
    interval: float = 1.0,
    settle: float = 3.0,
) -> tuple[LedgerCheck, float | None]:
    """Polls until every person has a lead and every submission its note; returns the final
    check (after `settle` seconds more, so that a late duplicate still shows) and the
    monotonic time completion was first seen, or None if it never was within `within`."""
    deadline = time.monotonic() + within
    done_at: float | None = None
    while time.monotonic() < deadline:
        check = check_ledger(await sandbox_state(), expected)
        if check.complete:
            done_at = time.monotonic()
            break
        await asyncio.sleep(interval)
    if done_at is not None and settle:
        await asyncio.sleep(settle)
    return check_ledger(await sandbox_state(), expected), done_at


# ----- speed to lead: from each 202 to the amoCRM request that made its lead, and its note


def speed_to_lead(samples: list[Sample], requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds from each accepted submission's 202 until the first successful amoCRM request
    that created its lead (matched by request_id) and its note (matched by its marker).

    The sandbox's ledger holds each request's arrival time and body, so this needs nothing
    from the worker; `leadrelay_speed_to_lead_seconds` is the worker's own view.
    """
    acked = {
        s.body["submission_id"]: s.acked_at
        for s in samples
        if s.status == 202 and s.body and s.acked_at is not None
    }
    lead_at: dict[str, float] = {}
    note_at: dict[str, float] = {}
    for request in requests:
        if request["method"] != "POST" or request["status"] != 200:
            continue
        items = request["body"] if isinstance(request["body"], list) else []
        if request["path"] == "/api/v4/leads/complex":
            for item in items:
                lead_at.setdefault(str(item.get("request_id")), request["t"])
        elif request["path"].endswith("/notes"):
            for item in items:
                text = str((item.get("params") or {}).get("text") or "")
                marker = text.rpartition("· id ")[2][:16]
                note_at.setdefault(marker, request["t"])
    leads = [lead_at[sid[:32]] - at for sid, at in acked.items() if sid[:32] in lead_at]
    notes = [note_at[sid[:16]] - at for sid, at in acked.items() if sid[:16] in note_at]
    landed = [lead_at.get(sid[:32]) for sid in acked] + [note_at.get(sid[:16]) for sid in acked]
    return {
        "lead": seconds_summary(leads, len(acked)),
        "note": seconds_summary(notes, len(acked)),
        # When the last of these leads and notes reached amoCRM (wall clock), if all did.
        "all_landed_at": None if None in landed else max(landed, default=None),
    }


def seconds_summary(values: list[float], expected: int) -> dict[str, Any]:
    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "n": len(values),
        "expected": expected,
        "p50_s": r(percentile(values, 50)),
        "p95_s": r(percentile(values, 95)),
        "max_s": r(max(values, default=None)),
    }
