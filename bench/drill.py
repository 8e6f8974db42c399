"""`make drill`: fault scenarios against the real stack, each ending with a ledger check.

Every scenario submits new people, breaks something, mends it, and then reads the sandbox
(the amoCRM stand-in): each person must have exactly one lead, and each accepted
submission exactly one note naming its id. Nothing lost, nothing doubled.

Scenarios (choose with --scenarios): worker-kill, temporal-restart, amocrm-down,
429-storm, 403-block, lost-answers, two-workers; and the family `abuse` (bench/abuse.py):
bad-bodies, outbox-poison, person-flood, phone-flood, phone-flood-ip-limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import abuse, load
from bench.stack import BenchStack, SandboxClient, StackConfig

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = (
    "worker-kill",
    "temporal-restart",
    "amocrm-down",
    "429-storm",
    "403-block",
    "lost-answers",
    "two-workers",
)


@dataclass
class Row:
    scenario: str
    submissions: int
    leads_expected: int
    leads_found: int
    duplicates: int  # leads beyond one per person
    lost: int  # people without a lead
    duplicate_notes: int
    missing_notes: int
    recover_s: float | None  # from the end of the fault to a complete ledger
    requests: int
    peak_1s: int
    by_status: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def exactly_once(self) -> bool:
        return (
            self.leads_found == self.leads_expected
            and self.duplicates == 0
            and self.lost == 0
            and self.duplicate_notes == 0
            and self.missing_notes == 0
        )


@dataclass
class Drill:
    """What a scenario works with: the stack and open clients to the API and the sandbox."""

    stack: BenchStack
    api: httpx.AsyncClient
    sandbox: SandboxClient
    args: argparse.Namespace

    @property
    def rps(self) -> float:
        return self.stack.config.amocrm_rps

    def drain_budget(self, people: int) -> float:
        """A hang guard, not a target: 4 requests per person at AMOCRM_RPS, twice, plus slack."""
        return 4 * people / self.rps * 2 + 180

    async def submit(self, people: int) -> list[load.Sample]:
        nationals = load.new_national_numbers(people)
        return await load.all_at_once(self.api, load.landing_sender(nationals), people)

    async def wait_leads(self, at_least: int, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if len((await self.sandbox.state())["leads"]) >= at_least:
                return
            await asyncio.sleep(0.5)

    async def finish(
        self,
        name: str,
        samples: list[load.Sample],
        since: float,
        fault_ended: float | None,
        notes: list[str],
    ) -> Row:
        expected = load.accepted(samples)
        rejected = sum(1 for s in samples if s.status != 202)
        if rejected:
            notes.append(f"{rejected} submissions not accepted (no 202): not expected")
        outboxed = sum(1 for s in samples if s.delivered_via == "outbox")
        if outboxed:
            notes.append(f"{outboxed} acks via the API outbox")
        check, done_at = await load.wait_until_complete(
            self.sandbox.state, expected, within=self.drain_budget(len(expected)), settle=5
        )
        stats = await self.sandbox.stats(since)
        if check.problems:
            notes.append("; ".join(check.problems[:3]))
        if done_at is None:
            notes.append("ledger not complete within the hang guard")
            await self._explain_lost(expected, check, notes)
        return Row(
            scenario=name,
            submissions=len(samples),
            leads_expected=len(expected),
            leads_found=check.leads_found,
            duplicates=check.duplicate_leads,
            lost=check.lost,
            duplicate_notes=check.duplicate_notes,
            missing_notes=check.missing_notes,
            recover_s=(
                round(done_at - fault_ended, 1)
                if done_at is not None and fault_ended is not None
                else None
            ),
            requests=stats["total"],
            peak_1s=stats["peak_1s"],
            by_status=stats["by_status"],
            notes=notes,
        )

    async def _explain_lost(
        self, expected: dict[str, set[str]], check: load.LedgerCheck, notes: list[str]
    ) -> None:
        """For people still without a lead, what their workflow says (step, last error)."""
        state = await self.sandbox.state()
        missing = [key for key in expected if load.check_ledger(state, {key: expected[key]}).lost]
        for key in missing[:3]:
            try:
                view = (await self.api.get(f"/api/leads/{key}")).json()
                notes.append(f"{key}: step {view.get('step')}, error {view.get('last_error')}")
            except (httpx.HTTPError, ValueError) as err:
                notes.append(f"{key}: no state ({err!r})")


Scenario = Callable[[Drill], Awaitable[Row]]


async def worker_kill(d: Drill) -> Row:
    """kill -9 the worker while a burst is being written, then start it again."""
    people = d.args.leads
    await d.sandbox.reset()
    since = time.time()
    samples = await d.submit(people)
    await d.wait_leads(max(1, people // 5))
    d.stack.procs["worker"].kill9()
    await asyncio.sleep(d.args.down_worker_seconds)
    fault_ended = time.monotonic()
    await asyncio.to_thread(d.stack.start_worker)
    notes = [
        f"worker SIGKILLed after {people // 5} leads, restarted {d.args.down_worker_seconds:g} s "
        "later; its activities in flight time out (start_to_close 30 s) before they retry"
    ]
    return await d.finish("worker-kill", samples, since, fault_ended, notes)


async def temporal_restart(d: Drill) -> Row:
    """Stop the (persistent) dev server mid-stream while the API keeps answering."""
    await d.sandbox.reset()
    since = time.time()
    rate, seconds = d.args.temporal_rate, d.args.temporal_seconds
    nationals = load.new_national_numbers(round(rate * seconds))
    stream = asyncio.create_task(
        load.open_loop(d.api, load.landing_sender(nationals), rate=rate, count=len(nationals))
    )
    await asyncio.sleep(min(5.0, seconds / 4))
    temporal = d.stack.procs["temporal"]
    await asyncio.to_thread(temporal.stop)
    await asyncio.sleep(d.args.temporal_down_seconds)
    await asyncio.to_thread(d.stack.start_temporal)
    fault_ended = time.monotonic()
    samples = await stream
    notes = [
        f"Temporal stopped (SIGTERM) {d.args.temporal_down_seconds:g} s, submissions at "
        f"{rate:g}/s throughout"
    ]
    row = await d.finish("temporal-restart", samples, since, fault_ended, notes)
    worker = d.stack.procs["worker"]
    if not worker.alive:
        row.notes.append("the worker exited while Temporal was down; restarted it")
        await asyncio.to_thread(d.stack.start_worker)
    row.notes.append(f"outbox depth after: {(await d.stack.healthz()).get('outbox_depth')}")
    errors = [s for s in samples if s.status != 202]
    row.notes.append(f"ack errors during the outage: {len(errors)}")
    return row


async def amocrm_down(d: Drill) -> Row:
    """Every amoCRM request answers 503 for a while, then amoCRM comes back."""
    await d.sandbox.reset()
    since = time.time()
    await d.sandbox.faults(error_rate=1.0, error_status=503)
    samples = await d.submit(d.args.small_leads)
    await asyncio.sleep(d.args.down_seconds)
    await d.sandbox.clear_faults()
    fault_ended = time.monotonic()
    during = await d.sandbox.stats(since)
    notes = [
        f"amoCRM 503 for {d.args.down_seconds:g} s: {during['total']} requests during the outage "
        "(exponential backoff 1 s doubling); recovery waits for the next retry of each activity"
    ]
    return await d.finish("amocrm-down", samples, since, fault_ended, notes)


async def rate_limit_storm(d: Drill) -> Row:
    """amoCRM's limit drops below ours: a storm of 429s (no block, see 403-block for that)."""
    await d.sandbox.reset()
    since = time.time()
    # block_seconds 0 keeps this a pure 429 storm: the sandbox would otherwise block after
    # five 429s, which is the next scenario.
    await d.sandbox.faults(rate_limit=d.args.storm_rate_limit, block_seconds=0, retry_after=1)
    samples = await d.submit(d.args.small_leads)
    await asyncio.sleep(d.args.storm_seconds)
    await d.sandbox.clear_faults()
    fault_ended = time.monotonic()
    during = await d.sandbox.stats(since)
    notes = [
        f"sandbox limit {d.args.storm_rate_limit}/s for {d.args.storm_seconds:g} s: "
        f"{during['by_status'].get('429', 0)} × 429 of {during['total']} requests"
    ]
    return await d.finish("429-storm", samples, since, fault_ended, notes)


async def block_403(d: Drill) -> Row:
    """amoCRM blocks us (403 on everything) for a while; the worker must go quiet."""
    people = d.args.small_leads
    await d.sandbox.reset()
    since = time.time()
    samples = await d.submit(people)
    await d.wait_leads(max(1, people // 5))
    block_start = time.time()
    await d.sandbox.faults(block_now_seconds=d.args.block_seconds)
    await asyncio.sleep(d.args.block_seconds)
    fault_ended = time.monotonic()
    block_end = time.time()
    row = await d.finish("403-block", samples, since, fault_ended, [])
    requests = await d.sandbox.requests(since)
    during = [r for r in requests if block_start <= r["t"] < block_end]
    after = [r for r in requests if r["t"] >= block_end and r["status"] != 403]
    first_ok = round(after[0]["t"] - block_end, 1) if after else None
    row.notes.insert(
        0,
        f"block {d.args.block_seconds:g} s, worker pause {d.stack.config.block_backoff_seconds:g}"
        f" s: {len(during)} requests during the block "
        f"({sum(1 for r in during if r['status'] == 403)} × 403); first admitted request "
        f"{first_ok} s after it lifted",
    )
    return row


async def lost_answers(d: Drill) -> Row:
    """A share of writes is applied by amoCRM but the answer is lost (504 after commit)."""
    await d.sandbox.reset()
    since = time.time()
    await d.sandbox.faults(lost_answer_rate=d.args.lost_rate, seed=11)
    started = time.monotonic()
    samples = await d.submit(d.args.small_leads)
    row = await d.finish("lost-answers", samples, since, started, [])
    await d.sandbox.clear_faults()
    row.notes.insert(
        0,
        f"lost_answer_rate {d.args.lost_rate:g} on every write (creates and notes): "
        f"{row.by_status.get('504', 0)} × 504; recovery = time to a complete ledger",
    )
    return row


async def two_workers(d: Drill) -> Row:
    """Two worker processes poll the amoCRM queue at once; the budget is still AMOCRM_RPS."""
    await d.sandbox.reset()
    name = await asyncio.to_thread(d.stack.add_worker)
    try:
        since = time.time()
        started = time.monotonic()
        samples = await d.submit(d.args.leads)
        row = await d.finish("two-workers", samples, since, started, [])
    finally:
        await asyncio.to_thread(d.stack.remove_worker, name)
    requests = await d.sandbox.requests(since)
    row.notes.insert(
        0,
        f"peak_1s {row.peak_1s} with 2 workers at AMOCRM_RPS {d.rps:g} "
        f"({'within' if row.peak_1s <= d.rps else 'ABOVE'} the budget; each worker holds "
        "floor(AMOCRM_RPS / 2) slots a second); "
        f"mean rate {len(requests) / max(requests[-1]['t'] - requests[0]['t'], 1):.2f}/s"
        if requests
        else "no requests",
    )
    return row


RUNNERS: dict[str, Scenario] = {
    "worker-kill": worker_kill,
    "temporal-restart": temporal_restart,
    "amocrm-down": amocrm_down,
    "429-storm": rate_limit_storm,
    "403-block": block_403,
    "lost-answers": lost_answers,
    "two-workers": two_workers,
}


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | submissions | leads expected | leads found | duplicates | lost "
        "| dup notes | missing notes | time to recover s | amoCRM requests | peak_1s | statuses |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        statuses = ", ".join(f"{k}×{v}" for k, v in sorted(r.by_status.items()))
        lines.append(
            f"| {r.scenario} | {r.submissions} | {r.leads_expected} | {r.leads_found} "
            f"| {r.duplicates} | {r.lost} | {r.duplicate_notes} | {r.missing_notes} "
            f"| {r.recover_s if r.recover_s is not None else '—'} | {r.requests} | {r.peak_1s} "
            f"| {statuses} |"
        )
    lines.append("")
    for r in rows:
        verdict = "exactly once" if r.exactly_once else "NOT exactly once"
        lines.append(f"- **{r.scenario}** ({verdict}): " + "; ".join(r.notes))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.drill", description=__doc__)
    parser.add_argument("--scenarios", default=",".join([*SCENARIOS, "abuse"]))
    parser.add_argument("--rps", type=float, default=5.0, help="AMOCRM_RPS")
    parser.add_argument("--leads", type=int, default=100, help="worker-kill, two-workers")
    parser.add_argument("--small-leads", type=int, default=40, help="amoCRM-side scenarios")
    parser.add_argument("--down-worker-seconds", type=float, default=3.0)
    parser.add_argument("--temporal-rate", type=float, default=5.0)
    parser.add_argument("--temporal-seconds", type=float, default=20.0)
    parser.add_argument("--temporal-down-seconds", type=float, default=10.0)
    parser.add_argument("--down-seconds", type=float, default=120.0, help="amoCRM 503 outage")
    parser.add_argument("--storm-rate-limit", type=int, default=2)
    parser.add_argument("--storm-seconds", type=float, default=30.0)
    parser.add_argument("--block-seconds", type=float, default=60.0)
    parser.add_argument("--block-backoff", type=float, default=30.0, help="worker pause on 403")
    # Batches make a burst's writes few (about 1 in 10 requests), so half of them lose
    # their answer, to have several lost batch answers in one run.
    parser.add_argument("--lost-rate", type=float, default=0.5)
    parser.add_argument(
        "--abuse-within", type=float, default=240.0, help="abuse: hang guard per ledger wait"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [
        name
        for given in args.scenarios.split(",")
        for name in (abuse.ABUSE_SCENARIOS if given == "abuse" else (given,))
    ]
    unknown = set(names) - set(SCENARIOS) - set(abuse.ABUSE_SCENARIOS)
    if unknown:
        choices = ", ".join([*SCENARIOS, "abuse", *abuse.ABUSE_SCENARIOS])
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {choices}")
    args.scenarios = ",".join(names)
    return args


async def run_scenarios(
    stack: BenchStack, args: argparse.Namespace
) -> tuple[list[Row], list[abuse.AbuseRow]]:
    rows: list[Row] = []
    abuse_rows: list[abuse.AbuseRow] = []
    async with stack.api_client() as api, stack.sandbox_client() as sandbox:
        drill = Drill(stack, api, sandbox, args)
        attack = abuse.Abuse(stack, api, sandbox, args.abuse_within)
        for name in args.scenarios.split(","):
            print(f"--- {name}", flush=True)
            if name in abuse.RUNNERS:
                abuse_row = await abuse.RUNNERS[name](attack)
                print(abuse.table([abuse_row]).splitlines()[2], flush=True)
                abuse_rows.append(abuse_row)
                continue
            row = await RUNNERS[name](drill)
            print(table([row]).splitlines()[2], flush=True)
            rows.append(row)
    return rows, abuse_rows


def stack_config(args: argparse.Namespace) -> StackConfig:
    return StackConfig(amocrm_rps=args.rps, block_backoff_seconds=args.block_backoff)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with BenchStack(stack_config(args)) as stack:
        rows, abuse_rows = asyncio.run(run_scenarios(stack, args))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = f"# leadrelay drill {stamp}\n\nAMOCRM_RPS = {args.rps:g}\n\n"
    if rows:
        text += f"{table(rows)}\n"
    if abuse_rows:
        text += f"\n{abuse.table(abuse_rows)}\n"
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"drill-{stamp}"
    base.with_suffix(".md").write_text(text, encoding="utf-8")
    payload: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    payload["rows"] = [asdict(r) | {"exactly_once": r.exactly_once} for r in rows]
    payload["abuse_rows"] = [asdict(r) for r in abuse_rows]
    base.with_suffix(".json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    print(text)
    print(f"wrote {base}.md and .json")


if __name__ == "__main__":
    main()
