"""A short form of `make bench` and `make drill`, run by `make test`.

It drives the same code (bench.stack, bench.load, bench.run_bench, bench.drill) against
the stack as real processes, so that a regression in the bench code or in the system fails
CI. It asserts counts, the rate ceiling and exactly-once delivery, never timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bench import drill
from bench.run_bench import burst_drain
from bench.stack import BenchStack, StackConfig

AMOCRM_RPS = 5.0
BURST_PEOPLE = 30
LOST_ANSWER_PEOPLE = 15


@pytest.fixture(scope="module")
async def bench_stack() -> AsyncIterator[BenchStack]:
    stack = BenchStack(StackConfig(amocrm_rps=AMOCRM_RPS, block_backoff_seconds=5))
    await asyncio.to_thread(stack.start)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


async def test_burst_makes_one_lead_each_within_the_rate_budget(bench_stack: BenchStack) -> None:
    result = await burst_drain(bench_stack, BURST_PEOPLE, AMOCRM_RPS)

    ledger = result["ledger"]
    assert result["acks"]["errors"] == 0, result["acks"]
    assert ledger["leads_found"] == BURST_PEOPLE, ledger
    assert ledger["duplicate_leads"] == ledger["lost"] == 0, ledger
    assert ledger["missing_notes"] == ledger["duplicate_notes"] == 0, ledger
    # One search per new person; creates and notes go in batches of several people.
    routes = result["by_route"]
    assert routes["GET /api/v4/contacts"] == BURST_PEOPLE, routes
    writes = routes["POST /api/v4/leads/complex"] + routes["POST /api/v4/leads/notes"]
    assert writes < BURST_PEOPLE, routes
    assert result["speed_to_lead"]["lead"]["n"] == BURST_PEOPLE, result["speed_to_lead"]
    assert result["http_429"] == 0, result["by_status"]
    # The rate ceiling, first second of the burst included. The first request after an idle
    # spell opens a new connection and arrives late; spacing alone once let 6 in here.
    assert result["peak_1s"] <= AMOCRM_RPS, result["request_offsets_s"][:10]


async def test_lost_answers_never_make_a_second_lead(bench_stack: BenchStack) -> None:
    args = drill.parse_args(
        [
            "--scenarios",
            "lost-answers",
            "--small-leads",
            str(LOST_ANSWER_PEOPLE),
            "--lost-rate",
            "0.5",
        ]
    )
    [row], _ = await drill.run_scenarios(bench_stack, args)

    assert row.leads_expected == LOST_ANSWER_PEOPLE, row
    assert row.leads_found == LOST_ANSWER_PEOPLE, row
    assert row.duplicates == 0 and row.lost == 0, row
    assert row.missing_notes == 0, row
    assert row.by_status.get("504", 0) >= 1, row.by_status  # the fault really happened
    assert row.by_status.get("429", 0) == 0, row.by_status
    assert row.peak_1s <= AMOCRM_RPS, row.peak_1s


async def test_abuse_drill_bad_bodies_and_poison_lose_nothing(bench_stack: BenchStack) -> None:
    args = drill.parse_args(["--scenarios", "bad-bodies,outbox-poison", "--abuse-within", "120"])
    _, rows = await drill.run_scenarios(bench_stack, args)

    bodies, poison = rows
    assert bodies.answered_5xx == 0 and bodies.transport_errors == 0, bodies
    assert bodies.lost == 0 and bodies.reached_amocrm == bodies.accepted_submissions == 1, bodies
    assert poison.dead_lettered == 120 and poison.reached_amocrm == 5 and poison.lost == 0, poison
    assert bodies.next_lead_s is not None and poison.next_lead_s is not None
