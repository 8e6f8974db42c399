"""`make drill` family `abuse`: hostile traffic against the real stack (issue 8).

Each scenario sends what an attacker or a broken client would, then one normal lead, and
reports: requests sent; answered 202 / 4xx / 5xx; accepted submissions that reached
amoCRM (a note naming their id); dead-lettered (the API's outbox dead letters plus the
lead workflows' own); lost (accepted, neither in amoCRM nor dead-lettered: must be 0);
and the seconds from posting the normal lead to its note in amoCRM.

Scenarios: bad-bodies, outbox-poison, person-flood, phone-flood, phone-flood-ip-limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.outbox import Kind, NewEntry, Outbox
from bench import load
from bench.stack import BENCH_FORM, WEBHOOK_TOKEN, BenchStack, SandboxClient
from leadrelay.models import Submission

ABUSE_SCENARIOS = (
    "bad-bodies",
    "outbox-poison",
    "person-flood",
    "phone-flood",
    "phone-flood-ip-limit",
)
BOT_ADDRESS = "203.0.113.66"
PERSON_ADDRESS = "198.51.100.20"
IP_LIMIT_PER_MINUTE = 30


@dataclass
class AbuseRow:
    scenario: str
    sent: int
    answered_2xx: int  # 202 on the landing route, 200 on the webhook route
    answered_4xx: int
    answered_5xx: int
    transport_errors: int
    accepted_submissions: int
    reached_amocrm: int
    dead_lettered: int
    lost: int
    next_lead_s: float | None
    notes: list[str] = field(default_factory=list)


@dataclass
class Abuse:
    stack: BenchStack
    api: httpx.AsyncClient
    sandbox: SandboxClient
    within: float

    async def health(self) -> dict[str, Any]:
        return await self.stack.healthz()

    async def lead_view(self, key: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/leads/{key}")
        return response.json() if response.status_code == 200 else {}

    async def workflow_dead_letters(self, keys: list[str]) -> int:
        views = [await self.lead_view(key) for key in keys]
        return sum(int(view.get("dead_lettered", 0)) for view in views)

    async def next_lead(self, headers: dict[str, str] | None = None) -> tuple[float | None, str]:
        """A normal person's form right after the attack: seconds until its note is in amoCRM."""
        [national] = load.new_national_numbers(1)
        started = time.monotonic()
        answer = await self.api.post(
            f"/api/landing/{BENCH_FORM}", json=load.landing_body(national), headers=headers
        )
        if answer.status_code != 202:
            return None, f"normal lead answered {answer.status_code}"
        expected = load.accepted([_sample(answer)])
        _, done_at = await load.wait_until_complete(
            self.sandbox.state, expected, within=self.within, settle=0
        )
        return (round(done_at - started, 1) if done_at else None), (
            "" if done_at else f"normal lead not in amoCRM within {self.within:g} s"
        )

    async def finish(
        self,
        name: str,
        answers: list[httpx.Response | BaseException],
        expected: dict[str, set[str]],
        dead_before: int,
        notes: list[str],
        next_lead_headers: dict[str, str] | None = None,
    ) -> AbuseRow:
        statuses = [a.status_code for a in answers if isinstance(a, httpx.Response)]
        next_s, problem = await self.next_lead(next_lead_headers)
        if problem:
            notes.append(problem)
        check, _ = await load.wait_until_complete(
            self.sandbox.state, expected, within=self.within, settle=2
        )
        submissions = sum(len(ids) for ids in expected.values())
        workflow_dead = await self.workflow_dead_letters(list(expected))
        outbox_dead = int((await self.health()).get("dead_letters", 0)) - dead_before
        reached = submissions - check.missing_notes
        return AbuseRow(
            scenario=name,
            sent=len(answers),
            answered_2xx=sum(1 for s in statuses if 200 <= s < 300),
            answered_4xx=sum(1 for s in statuses if 400 <= s < 500),
            answered_5xx=sum(1 for s in statuses if s >= 500),
            transport_errors=sum(1 for a in answers if not isinstance(a, httpx.Response)),
            accepted_submissions=submissions,
            reached_amocrm=reached,
            dead_lettered=outbox_dead + workflow_dead,
            lost=max(0, submissions - reached - workflow_dead),
            next_lead_s=next_s,
            notes=notes,
        )


def _sample(response: httpx.Response) -> load.Sample:
    body = response.json() if response.status_code == 202 else None
    return load.Sample(0, 0.0, 0.0, None, response.status_code, None, None, body)


def accepted_of(answers: list[httpx.Response | BaseException]) -> dict[str, set[str]]:
    return load.accepted([_sample(a) for a in answers if isinstance(a, httpx.Response)])


async def gather(requests: list[Awaitable[httpx.Response]]) -> list[httpx.Response | BaseException]:
    return list(await asyncio.gather(*requests, return_exceptions=True))


# ----- scenarios


def _bad_bodies(national: str) -> list[tuple[str, bytes | str, dict[str, str]]]:
    """(route, body, headers) of what bots, broken browsers and attackers post."""
    phone = f"+7{national}"
    json_type = {"Content-Type": "application/json"}
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    landing = f"/api/landing/{BENCH_FORM}"
    hook = f"/api/amocrm/abuse?token={WEBHOOK_TOKEN}"
    bodies: list[tuple[str, bytes | str, dict[str, str]]] = [
        (landing, f'{{"phone": "{phone}", "n": {"9" * 5000}}}', json_type),
        (
            landing,
            '{"phone": "' + phone + '", "x": ' + "[" * 30_000 + "]" * 30_000 + "}",
            json_type,
        ),
        # A lone surrogate: accepted, with U+FFFD in its place.
        (landing, f'{{"phone": "{phone}", "name": "Айгерим \\ud83d"}}', json_type),
        (landing, json.dumps({"phone": phone, **{f"f{n}": n for n in range(500)}}), json_type),
        (landing, json.dumps({"phone": phone, "name": "x" * 5000}), json_type),
        (landing, json.dumps({"email": "a" * 65 + "@example.com"}), json_type),
        (landing, b"\xff\xfe\x00garbage", json_type),
        (landing, "phone=%ED%A0%BD&name=%FF", form_type),
        (landing, "{" * 10, json_type),
        (landing, json.dumps([phone]), json_type),
        (landing, "x" * 70_000, json_type),
        (hook, '{"leads": {"status": [{"id": "\\ud83d", "n": ' + "1" * 5000 + "}]}}", json_type),
        (hook, "[" * 30_000, json_type),
        (hook, b"\x00\xff" * 1000, form_type),
        ("/api/amocrm/abuse?token=%D1%82%D0%BE%D0%BA%D0%B5%D0%BD", "a=1", form_type),
    ]
    # 120 forms whose email is 1,100 characters (issue 8, failure 3).
    bodies += [
        (landing, json.dumps({"email": f"{n}{'x' * 1090}@example.com"}), json_type)
        for n in range(120)
    ]
    return bodies


async def bad_bodies(a: Abuse) -> AbuseRow:
    await a.sandbox.reset()
    dead_before = int((await a.health()).get("dead_letters", 0))
    [national] = load.new_national_numbers(1)
    plan = _bad_bodies(national)
    answers = await gather(
        [a.api.post(route, content=body, headers=headers) for route, body, headers in plan]
    )
    notes = [
        "hostile bodies: 5,000-digit number, 30,000-deep nesting, lone surrogate, 500 "
        "fields, 5,000-char name, long local part, non-UTF-8, 70 KB, bad webhooks, a "
        "non-ASCII token, and 120 forms with 1,100-char emails"
    ]
    landing = [x for x, (route, _, _) in zip(answers, plan, strict=True) if "landing" in route]
    return await a.finish("bad-bodies", answers, accepted_of(landing), dead_before, notes)


async def outbox_poison(a: Abuse) -> AbuseRow:
    """What an older version let in: 120 entries Temporal refuses for good (workflow ids over
    1,000 characters) at the head of the outbox, and 5 real people queued behind them."""
    await a.sandbox.reset()
    stack = a.stack
    await asyncio.to_thread(stack.procs["api"].stop)
    outbox = Outbox(stack.outbox_path)
    dead_before = outbox.dead_letters
    nationals = load.new_national_numbers(5)
    real = [_queued_submission(f"+7{n}", n) for n in nationals]
    poison = [
        _entry(f"{n}{'x' * 1090}@example.com", Submission(f"poison{n:04d}", BENCH_FORM, "t"))
        for n in range(120)
    ]
    await outbox.append(poison + [entry for entry, _ in real])
    outbox.close()
    started = time.monotonic()
    await asyncio.to_thread(stack.start_api)
    expected = {submission.phone or "": {submission.submission_id} for _, submission in real}

    async def drained() -> bool:
        return int((await a.health()).get("outbox_depth", 1)) == 0

    deadline = started + a.within
    while time.monotonic() < deadline:
        if await drained():
            break
        await asyncio.sleep(0.2)
    notes = [
        f"outbox drained {time.monotonic() - started:.1f} s after the API started "
        "(120 poison entries, 5 real behind them)"
    ]
    answers: list[httpx.Response | BaseException] = []
    row = await a.finish("outbox-poison", answers, expected, dead_before, notes)
    row.sent = 125
    row.answered_2xx = 5  # the real ones had been answered 202 before the restart
    return row


def _queued_submission(phone: str, national: str) -> tuple[NewEntry, Submission]:
    submission = Submission(
        submission_id=f"queued{national}".ljust(64, "0"),
        form=BENCH_FORM,
        received_at="2026-01-01T00:00:00+00:00",
        name=f"Queued {national[-4:]}",
        phone=phone,
    )
    return _entry(phone, submission), submission


def _entry(key: str, submission: Submission) -> NewEntry:
    return NewEntry(
        Kind.SUBMISSION,
        f"lead-{key}",
        {"lead_key": key, "submission": dataclasses.asdict(submission)},
    )


async def person_flood(a: Abuse) -> AbuseRow:
    """Issue 8, failure 4: 40 different 56 KB forms for one phone."""
    await a.sandbox.reset()
    dead_before = int((await a.health()).get("dead_letters", 0))
    [national] = load.new_national_numbers(1)

    def body(n: int) -> dict[str, Any]:
        fields = {f"answer{k}": f"{n}-{k} " + "ж" * 1990 for k in range(14)}
        return {"phone": f"+7{national}", "comment": f"форма {n}", **fields}

    answers = await gather(
        [a.api.post(f"/api/landing/{BENCH_FORM}", json=body(n)) for n in range(40)]
    )
    expected = accepted_of(answers)
    notes = [
        "40 different forms of 56 KB (14 fields of 2,000 Cyrillic letters) for one phone, at once"
    ]
    return await a.finish("person-flood", answers, expected, dead_before, notes)


async def phone_flood(a: Abuse, *, limited: bool) -> AbuseRow:
    """One bot address posts forms for 100 made-up phones; then a person posts one."""
    name = "phone-flood-ip-limit" if limited else "phone-flood"
    env = (
        {
            "LEADRELAY_IP_LIMIT_PER_MINUTE": str(IP_LIMIT_PER_MINUTE),
            "LEADRELAY_TRUSTED_PROXIES": "127.0.0.1",
        }
        if limited
        else {}
    )
    await asyncio.to_thread(a.stack.restart_api, env)
    await a.sandbox.reset()
    dead_before = int((await a.health()).get("dead_letters", 0))
    nationals = load.new_national_numbers(100)
    bot = {"X-Forwarded-For": BOT_ADDRESS}
    answers = await gather(
        [
            a.api.post(f"/api/landing/{BENCH_FORM}", json=load.landing_body(n), headers=bot)
            for n in nationals
        ]
    )
    notes = [
        "100 random phones from one address; per-address limit "
        + (f"{IP_LIMIT_PER_MINUTE}/min" if limited else "off")
        + "; the normal lead comes from another address"
    ]
    row = await a.finish(
        name,
        answers,
        accepted_of(answers),
        dead_before,
        notes,
        next_lead_headers={"X-Forwarded-For": PERSON_ADDRESS},
    )
    if limited:
        await asyncio.to_thread(a.stack.restart_api, {})
    return row


RUNNERS: dict[str, Callable[[Abuse], Awaitable[AbuseRow]]] = {
    "bad-bodies": bad_bodies,
    "outbox-poison": outbox_poison,
    "person-flood": person_flood,
    "phone-flood": lambda a: phone_flood(a, limited=False),
    "phone-flood-ip-limit": lambda a: phone_flood(a, limited=True),
}


def table(rows: list[AbuseRow]) -> str:
    lines = [
        "| abuse | sent | 202 (200 webhooks) | 4xx | 5xx | reached amoCRM | dead-lettered | lost "
        "| normal lead after, s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        after = r.next_lead_s if r.next_lead_s is not None else "—"
        lines.append(
            f"| {r.scenario} | {r.sent} | {r.answered_2xx} | {r.answered_4xx} "
            f"| {r.answered_5xx} | {r.reached_amocrm} of {r.accepted_submissions} "
            f"| {r.dead_lettered} | {r.lost} | {after} |"
        )
    lines.append("")
    for r in rows:
        extra = f"; {r.transport_errors} transport errors" if r.transport_errors else ""
        lines.append(f"- **{r.scenario}**: " + "; ".join(r.notes) + extra)
    return "\n".join(lines)
