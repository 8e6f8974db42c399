"""`make bench`: ack latency under open-loop load, burst drain at AMOCRM_RPS, duplicate storm.

Writes bench/results/<timestamp>.json, .md and .png and prints the Markdown summary.
Every request goes to 127.0.0.1; every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import load
from bench.stack import BENCH_FORM, OTHER_FORM, BenchStack, StackConfig, wait_for_count

RESULTS = Path(__file__).resolve().parent / "results"
# The burst phases: their result key and whether each person gives an email too.
BURSTS = {"burst": False, "email": True}
TARGET_P99_MS_AT_20 = 50.0
TARGET_MAX_MS_AT_100 = 1500.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run_bench", description=__doc__)
    parser.add_argument("--loads", default="10,20,50,100", help="offered loads, req/s")
    parser.add_argument("--step-seconds", type=float, default=20.0, help="duration of each step")
    parser.add_argument("--rps", type=float, default=5.0, help="AMOCRM_RPS (below 7)")
    parser.add_argument("--burst", type=int, default=300, help="new people in the burst")
    parser.add_argument(
        "--batch-linger",
        type=float,
        default=None,
        help="LEADRELAY_BATCH_LINGER_SECONDS for the burst phases (default: the setting's)",
    )
    parser.add_argument("--idle-leads", type=int, default=10, help="single leads while idle")
    parser.add_argument("--idle-gap", type=float, default=8.0, help="seconds between them")
    parser.add_argument("--flood", type=int, default=300, help="fairness: bots on one form")
    parser.add_argument("--flood-others", type=int, default=10, help="then people on another")
    parser.add_argument("--storm-people", type=int, default=20)
    parser.add_argument("--storm-submissions", type=int, default=200)
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of phases to skip: ack,burst (phone only),email (phone and email burst),"
        "idle,fairness,storm",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


# ----- phase 1: ack latency


async def ack_latency(args: argparse.Namespace) -> dict[str, Any]:
    loads = [float(x) for x in args.loads.split(",") if x.strip()]
    steps: list[dict[str, Any]] = []
    expected_leads: set[str] = set()
    expected_entities = 0
    with BenchStack(StackConfig(amocrm_rps=args.rps)) as stack:
        temporal = await stack.temporal_client()
        async with stack.api_client() as api:
            # Warm-up: imports, connections and the first workflow tasks are not the subject.
            await load.open_loop(
                api, load.landing_sender(load.new_national_numbers(5)), rate=5, count=5
            )
            await load.open_loop(api, load.webhook_sender(), rate=5, count=5)
            warm_leads, warm_entities = 5, 5
            for kind in ("landing", "webhook"):
                for rate in loads:
                    count = max(1, round(rate * args.step_seconds))
                    if kind == "landing":
                        nationals = load.new_national_numbers(count)
                        send, ok = load.landing_sender(nationals), 202
                    else:
                        send, ok = load.webhook_sender(), 200
                    outbox_before = (await stack.healthz()).get("outbox_depth")
                    sampler = stack.cpu_sampler()
                    sampler.begin()
                    samples = await load.open_loop(api, send, rate=rate, count=count)
                    cpu = sampler.end()
                    summary = load.summarize(samples, ok)
                    if kind == "landing":
                        expected_leads |= set(load.accepted(samples))
                    else:
                        expected_entities += sum(1 for s in samples if s.status == 200)
                    step = {"kind": kind, "rate": rate, "seconds": args.step_seconds}
                    step["outbox_depth_at_start"] = outbox_before
                    step["outbox_depth_at_end"] = (await stack.healthz()).get("outbox_depth")
                    step |= summary | {"cpu_percent": cpu}
                    step["latencies_ms"] = [
                        round(s.latency * 1000, 2) for s in samples if s.latency is not None
                    ]
                    steps.append(step)
                    print(_step_line(step), flush=True)
                    await _settle(stack)
            # Nothing lost: every accepted submission reached Temporal (one workflow per new
            # person / entity) and the outbox is empty. Draining 3000+ leads at 5/s into the
            # sandbox would take hours, so the count is the check here; the burst below
            # checks the sandbox end to end.
            depth = await _outbox_depth_when_empty(stack)
            lead_wfs = await wait_for_count(
                temporal, "LeadWorkflow", len(expected_leads) + warm_leads
            )
            entity_wfs = await wait_for_count(
                temporal, "AmoEntityWorkflow", expected_entities + warm_entities
            )
    return {
        "steps": steps,
        "verification": {
            "accepted_landing_people": len(expected_leads),
            "lead_workflows": lead_wfs - warm_leads,
            "accepted_webhook_entities": expected_entities,
            "entity_workflows": entity_wfs - warm_entities,
            "outbox_depth_after": depth,
            "nothing_lost": lead_wfs - warm_leads == len(expected_leads)
            and entity_wfs - warm_entities == expected_entities
            and depth == 0,
        },
    }


def _step_line(step: dict[str, Any]) -> str:
    cpu = step["cpu_percent"]
    return (
        f"{step['kind']:8} {step['rate']:>5.0f}/s  p50 {step['p50_ms']} p99 {step['p99_ms']} "
        f"max {step['max_ms']} ms  errors {step['errors']} outbox {step['outbox']}  "
        f"cpu temporal {cpu.get('temporal')}% worker {cpu.get('worker')}% api {cpu.get('api')}%"
    )


async def _settle(stack: BenchStack, seconds: float = 3.0) -> None:
    """Between steps: let the outbox empty (bounded) and the processes calm down, so that
    a step never starts with the previous step's outbox (new parcels queue behind it)."""
    await _outbox_depth_when_empty(stack, within=600)
    await asyncio.sleep(seconds)


async def _outbox_depth_when_empty(stack: BenchStack, within: float = 120) -> int | None:
    deadline = time.monotonic() + within
    depth: int | None = None
    while time.monotonic() < deadline:
        try:
            depth = (await stack.healthz()).get("outbox_depth")
        except httpx.HTTPError:
            depth = None
        if depth == 0:
            return 0
        await asyncio.sleep(1)
    return depth


# ----- phase 2 and 3: burst drain and duplicate storm, on a fresh stack


async def burst_drain(
    stack: BenchStack, people: int, rps: float, *, email: bool = False
) -> dict[str, Any]:
    async with stack.api_client() as api, stack.sandbox_client() as sandbox:
        await sandbox.reset()
        since = time.time()
        started = time.monotonic()
        sampler = stack.cpu_sampler()
        sampler.begin()
        nationals = load.new_national_numbers(people)
        send = load.landing_sender(nationals, email=email)
        samples = await load.all_at_once(api, send, people)
        acked = time.monotonic() - started
        expected = load.accepted(samples)
        within = 4 * people / rps * 1.5 + 120
        check, done_at = await load.wait_until_complete(sandbox.state, expected, within=within)
        cpu = sampler.end()
        stats = await sandbox.stats(since)
        requests = await sandbox.requests(since)
    speed = load.speed_to_lead(samples, requests)
    # Drain: from the burst's first send to the arrival of the last lead or note it needed,
    # read from the sandbox's ledger (the completion poll above runs once a second).
    landed_at = speed["all_landed_at"]
    drain = (landed_at - since) if landed_at is not None and done_at else None
    total = stats["total"]
    first = requests[0]["t"] if requests else since
    return {
        "people": people,
        "email": email,
        "leads_per_s": round(check.leads_found / drain, 2) if drain else None,
        "speed_to_lead": speed,
        "complete_seen_s": round(done_at - started, 1) if done_at else None,
        "acks": load.summarize(samples, 202),
        "all_acked_s": round(acked, 2),
        "drain_s": round(drain, 1) if drain else None,
        "requests": total,
        "requests_per_lead": round(total / max(check.leads_found, 1), 2),
        "peak_1s": stats["peak_1s"],
        "http_429": stats["by_status"].get("429", 0),
        "by_route": stats["by_route"],
        "by_status": stats["by_status"],
        "efficiency": round(total / (rps * drain), 3) if drain else None,
        "ledger": _ledger_json(check),
        "cpu_percent": cpu,
        "request_offsets_s": [round(r["t"] - first, 3) for r in requests],
        "first_request_after_s": round(first - since, 2),
    }


async def idle_leads(stack: BenchStack, count: int, gap: float) -> dict[str, Any]:
    """One new person at a time on a quiet system: what a single lead waits."""
    async with stack.api_client() as api, stack.sandbox_client() as sandbox:
        await sandbox.reset()
        since = time.time()
        nationals = load.new_national_numbers(count)
        send = load.landing_sender(nationals, email=False)
        samples = await load.open_loop(api, send, rate=1 / gap, count=count)
        expected = load.accepted(samples)
        check, _ = await load.wait_until_complete(sandbox.state, expected, within=120)
        requests = await sandbox.requests(since)
    return {
        "people": count,
        "gap_s": gap,
        "speed_to_lead": load.speed_to_lead(samples, requests),
        "ledger": _ledger_json(check),
    }


async def fairness(stack: BenchStack, flood: int, others: int, rps: float) -> dict[str, Any]:
    """Bots flood one form; then a few people use another. How long do those few wait?"""
    async with stack.api_client() as api, stack.sandbox_client() as sandbox:
        await sandbox.reset()
        since = time.time()
        started = time.monotonic()
        bots = load.new_national_numbers(flood)
        flood_samples = await load.all_at_once(api, load.landing_sender(bots, email=False), flood)
        people = load.new_national_numbers(others)
        send = load.landing_sender(people, email=False, form=OTHER_FORM)
        other_samples = await load.all_at_once(api, send, others)
        expected_others = load.accepted(other_samples)
        check_others, others_done = await load.wait_until_complete(
            sandbox.state, expected_others, within=others * 3 / rps + 120, interval=0.5, settle=0
        )
        expected = load.accepted(flood_samples + other_samples)
        check, done_at = await load.wait_until_complete(
            sandbox.state, expected, within=3 * flood / rps * 1.5 + 120
        )
        requests = await sandbox.requests(since)
    return {
        "flood": flood,
        "flood_form": BENCH_FORM,
        "others": others,
        "other_form": OTHER_FORM,
        "others_speed_to_lead": load.speed_to_lead(other_samples, requests),
        "flood_speed_to_lead": load.speed_to_lead(flood_samples, requests),
        "others_complete_after_s": round(others_done - started, 1) if others_done else None,
        "all_complete_after_s": round(done_at - started, 1) if done_at else None,
        "ledger": _ledger_json(check),
        "others_ledger": _ledger_json(check_others),
    }


async def duplicate_storm(stack: BenchStack, people: int, submissions: int) -> dict[str, Any]:
    nationals = load.new_national_numbers(people)
    # Every person gets submissions/people copies, spelled four ways, shuffled together.
    plan = [(nationals[i % people], i // people) for i in range(submissions)]
    random.Random(7).shuffle(plan)

    def send(client: httpx.AsyncClient, index: int):
        national, spelling = plan[index]
        body = load.landing_body(national, spelling=spelling)
        return client.post("/api/landing/bench", json=body)

    async with stack.api_client() as api, stack.sandbox_client() as sandbox:
        await sandbox.reset()
        since = time.time()
        samples = await load.all_at_once(api, send, submissions)
        expected = load.accepted(samples)
        check, _ = await load.wait_until_complete(
            sandbox.state, expected, within=4 * people / stack.config.amocrm_rps * 2 + 60
        )
        await asyncio.sleep(3)
        stats = await sandbox.stats(since)
        views = [(await api.get(f"/api/leads/{key}")).json() for key in sorted(expected)]
    return {
        "people": people,
        "submissions": submissions,
        "accepted": sum(1 for s in samples if s.status == 202),
        "distinct_keys": len(expected),
        "leads_total": check.leads_total,
        "ledger": _ledger_json(check),
        "requests": stats["total"],
        "requests_per_person": round(stats["total"] / people, 2),
        "peak_1s": stats["peak_1s"],
        "repeats_dropped": sum(v.get("duplicates_dropped", 0) for v in views),
        "submissions_seen": sum(v.get("submissions_seen", 0) for v in views),
        "acks": load.summarize(samples, 202),
    }


def _ledger_json(check: load.LedgerCheck) -> dict[str, Any]:
    return {
        "people": check.people,
        "submissions": check.submissions,
        "leads_found": check.leads_found,
        "duplicate_leads": check.duplicate_leads,
        "lost": check.lost,
        "missing_notes": check.missing_notes,
        "duplicate_notes": check.duplicate_notes,
        "problems": check.problems[:10],
    }


# ----- report


def markdown(result: dict[str, Any]) -> str:
    rps = result["config"]["rps"]
    lines = [
        f"# leadrelay bench {result['timestamp']}",
        "",
        f"Machine: {result['machine']}. AMOCRM_RPS = {rps}. "
        f"Steps of {result['config']['step_seconds']:g} s each, open-loop.",
        "",
    ]
    ack = result.get("ack")
    if ack:
        lines += [
            "## Ack latency",
            "",
            "| endpoint | offered req/s | sent | p50 ms | p90 ms | p99 ms | max ms | errors "
            "| outbox | send late p99 ms | CPU % temporal / worker / API / sandbox / bench |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for s in ack["steps"]:
            cpu = s["cpu_percent"]
            cpu_text = " / ".join(
                str(cpu.get(n)) for n in ("temporal", "worker", "api", "sandbox", "bench")
            )
            endpoint = "POST /api/landing" if s["kind"] == "landing" else "POST /api/amocrm"
            lines.append(
                f"| {endpoint} | {s['rate']:g} | {s['sent']} | {s['p50_ms']} | {s['p90_ms']} "
                f"| {s['p99_ms']} | {s['max_ms']} | {s['errors']} | {s['outbox']} "
                f"| {s['send_lateness_p99_ms']} | {cpu_text} |"
            )
        v = ack["verification"]
        lines += [
            "",
            f"Nothing lost: {v['accepted_landing_people']} accepted people → "
            f"{v['lead_workflows']} lead workflows; {v['accepted_webhook_entities']} accepted "
            f"webhooks → {v['entity_workflows']} entity workflows; outbox depth after: "
            f"{v['outbox_depth_after']} → **{'OK' if v['nothing_lost'] else 'MISMATCH'}**.",
            "",
            *[f"- {line}" for line in ack_targets(ack)],
            "",
        ]
    for burst in (result[phase] for phase in BURSTS if phase in result):
        led = burst["ledger"]
        kind = "phone and email" if burst["email"] else "phone only"
        lines += [
            f"## Burst drain ({kind})",
            "",
            "| new people | all acked s | drain s | requests | per lead | peak_1s | 429s "
            "| efficiency | leads found | dup leads | lost | dup notes |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {burst['people']} | {burst['all_acked_s']} | {burst['drain_s']} "
            f"| {burst['requests']} | {burst['requests_per_lead']} | {burst['peak_1s']} "
            f"| {burst['http_429']} | {burst['efficiency']} | {led['leads_found']} "
            f"| {led['duplicate_leads']} | {led['lost']} | {led['duplicate_notes']} |",
            "",
            f"Requests by route: {burst['by_route']}. Acks of the burst: p99 "
            f"{burst['acks']['p99_ms']} ms, max {burst['acks']['max_ms']} ms, "
            f"{burst['acks']['outbox']} via the outbox.",
            "",
        ]
    lines += speed_markdown(result)
    storm = result.get("storm")
    if storm:
        led = storm["ledger"]
        lines += [
            "## Duplicate storm",
            "",
            f"{storm['submissions']} concurrent submissions for {storm['people']} people "
            f"(4 phone spellings): {storm['accepted']} accepted, {storm['leads_total']} leads "
            f"in the sandbox (expected {storm['people']}: **{_ok(led['leads_found'] == storm['people'] and led['duplicate_leads'] == 0 and storm['leads_total'] == storm['people'])}**), "  # noqa: E501
            f"{storm['requests']} amoCRM requests = {storm['requests_per_person']} per person, "
            f"repeats dropped by the workflows: {storm['repeats_dropped']} of "
            f"{storm['submissions_seen']} seen; peak_1s {storm['peak_1s']}.",
            "",
        ]
    if result.get("saturation"):
        lines += ["## Where it saturates", "", result["saturation"], ""]
    return "\n".join(lines)


def _speed_row(name: str, speed: dict[str, Any]) -> str:
    cells = []
    for milestone in ("lead", "note"):
        m = speed[milestone]
        cells.append(f"{m['p50_s']} / {m['p95_s']} / {m['max_s']} ({m['n']}/{m['expected']})")
    return f"| {name} | {cells[0]} | {cells[1]} |"


def speed_markdown(result: dict[str, Any]) -> list[str]:
    """Speed to lead: seconds from each 202 to its lead, and to its note, in amoCRM."""
    rows = []
    idle, fair = result.get("idle"), result.get("fairness")
    for burst in (result[phase] for phase in BURSTS if phase in result):
        kind = "phone + email" if burst["email"] else "phone only"
        rows.append(_speed_row(f"burst of {burst['people']} ({kind})", burst["speed_to_lead"]))
    if idle:
        rows.append(_speed_row(f"{idle['people']} single leads, idle", idle["speed_to_lead"]))
    if fair:
        rows.append(
            _speed_row(
                f"{fair['others']} on `{fair['other_form']}` after {fair['flood']} bots",
                fair["others_speed_to_lead"],
            )
        )
        rows.append(
            _speed_row(
                f"the {fair['flood']} bots on `{fair['flood_form']}`", fair["flood_speed_to_lead"]
            )
        )
    if not rows:
        return []
    return [
        "## Speed to lead",
        "",
        "Seconds from the 202 to the amoCRM request that created the lead (and the note): "
        "p50 / p95 / max (found / accepted).",
        "",
        "| scenario | 202 → lead | 202 → note |",
        "| --- | --- | --- |",
        *rows,
        "",
        *burst_targets(result),
    ]


def _burst_stack_config(args: argparse.Namespace) -> StackConfig:
    config = StackConfig(amocrm_rps=args.rps)
    if args.batch_linger is not None:
        config.extra_env["LEADRELAY_BATCH_LINGER_SECONDS"] = str(args.batch_linger)
    return config


def burst_targets(result: dict[str, Any]) -> list[str]:
    """The burst, idle and fairness figures against their targets, in one table."""
    rps = result["config"]["rps"]
    rows: list[tuple[str, str, str, bool | None]] = []
    for phase, email in BURSTS.items():
        burst = result.get(phase)
        if not burst:
            continue
        kind = "phone + email" if email else "phone only"
        rate, per_person = (2.3, 2.1) if email else (4.0, 1.1)
        lead, note, led = (
            burst["speed_to_lead"]["lead"],
            burst["speed_to_lead"]["note"],
            burst["ledger"],
        )
        rows += [
            (
                f"{kind}: leads with notes per s",
                f"{burst['leads_per_s']}",
                f"≥ {rate}",
                (burst["leads_per_s"] or 0) >= rate,
            ),
            (
                f"{kind}: requests per person",
                f"{burst['requests_per_lead']}",
                f"≤ {per_person}",
                burst["requests_per_lead"] <= per_person,
            ),
        ]
        lead_text = f"{lead['p50_s']} / {lead['p95_s']} / {lead['max_s']}"
        if email:
            rows.append((f"{kind}: 202 → lead p50 / p95 / max s", lead_text, "—", None))
        else:
            rows.append(
                (
                    f"{kind}: 202 → lead p50 / p95 / max s",
                    lead_text,
                    "p50 ≤ 40, p95 ≤ 75",
                    (lead["p50_s"] or 1e9) <= 40 and (lead["p95_s"] or 1e9) <= 75,
                )
            )
        rows += [
            (
                f"{kind}: 202 → note p50 / p95 / max s",
                f"{note['p50_s']} / {note['p95_s']} / {note['max_s']}",
                "—",
                None,
            ),
            (
                f"{kind}: peak_1s, 429s, duplicate leads, lost",
                f"{burst['peak_1s']}, {burst['http_429']}, {led['duplicate_leads']}, {led['lost']}",
                f"≤ {rps:g}, 0, 0, 0",
                burst["peak_1s"] <= rps
                and burst["http_429"] == 0
                and led["duplicate_leads"] == 0
                and led["lost"] == 0,
            ),
        ]
    idle = result.get("idle")
    if idle:
        lead = idle["speed_to_lead"]["lead"]
        rows.append(
            (
                "one lead while idle: 202 → lead p50 s",
                f"{lead['p50_s']}",
                "≤ 1.5",
                (lead["p50_s"] or 1e9) <= 1.5,
            )
        )
    fair = result.get("fairness")
    if fair:
        lead = fair["others_speed_to_lead"]["lead"]
        rows.append(
            (
                f"{fair['flood']} bots, then {fair['others']} on another form: their lead max s",
                f"{lead['max_s']} ({lead['n']}/{lead['expected']}; duplicates "
                f"{fair['ledger']['duplicate_leads']}, lost {fair['ledger']['lost']})",
                "≤ 15",
                (lead["max_s"] or 1e9) <= 15
                and lead["n"] == lead["expected"]
                and fair["ledger"]["duplicate_leads"] == 0
                and fair["ledger"]["lost"] == 0,
            )
        )
    if not rows:
        return []
    return [
        "## Burst targets",
        "",
        "| figure | measured | target | |",
        "| --- | --- | --- | --- |",
        *[
            f"| {name} | {value} | {target} | {'' if met is None else f'**{_ok(met)}**'} |"
            for name, value, target, met in rows
        ],
        "",
    ]


def ack_targets(ack: dict[str, Any]) -> list[str]:
    out = []
    for s in ack["steps"]:
        if s["rate"] == 20:
            out.append(
                f"{s['kind']} at 20 req/s: p99 {s['p99_ms']} ms (target ≤ {TARGET_P99_MS_AT_20:g}):"
                f" **{_ok((s['p99_ms'] or 1e9) <= TARGET_P99_MS_AT_20)}**"
            )
        if s["rate"] == 100:
            ok = s["errors"] == 0 and (s["max_ms"] or 1e9) <= TARGET_MAX_MS_AT_100
            out.append(
                f"{s['kind']} at 100 req/s: {s['errors']} errors, max {s['max_ms']} ms "
                f"(target 0 errors, ≤ {TARGET_MAX_MS_AT_100:g} ms): **{_ok(ok)}**"
            )
    return out


def saturation(ack: dict[str, Any] | None) -> str:
    if not ack:
        return ""
    parts = []
    for kind in ("landing", "webhook"):
        steps = [s for s in ack["steps"] if s["kind"] == kind]
        for s in steps:
            cpu = {k: v for k, v in s["cpu_percent"].items() if v is not None}
            total = sum(cpu.values())
            top = max(cpu, key=lambda k: cpu[k]) if cpu else "?"
            parts.append(
                f"{kind} {s['rate']:g}/s: CPU total {total:.0f}% of 200%, busiest {top} "
                f"{cpu.get(top)}%, p99 {s['p99_ms']} ms, outbox {s['outbox']}"
            )
    return "\n".join(f"- {p}" for p in parts)


def _ok(flag: bool) -> str:
    return "met" if flag else "NOT met"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 9))
    burst = result.get("burst") or result.get("email")
    rps = result["config"]["rps"]
    if burst and burst["request_offsets_s"]:
        offsets = burst["request_offsets_s"]
        seconds = int(max(offsets)) + 1
        counts = [0] * seconds
        for t in offsets:
            counts[int(t)] += 1
        top.step(range(seconds), counts, where="post", label="amoCRM requests per second")
        top.axhline(rps, color="red", linestyle="--", label=f"AMOCRM_RPS = {rps:g}")
        top.axhline(7, color="black", linestyle=":", label="amoCRM hard limit 7/s")
        top.set_ylim(0, 8)
        top.set_xlabel("seconds since the first amoCRM request of the burst")
        top.set_ylabel("requests")
        top.set_title(
            f"Burst of {burst['people']} new people: drain {burst['drain_s']} s, "
            f"peak_1s {burst['peak_1s']}, 429s {burst['http_429']}"
        )
        top.legend(loc="lower right")
    ack = result.get("ack")
    if ack:
        data = [s["latencies_ms"] or [0] for s in ack["steps"]]
        labels = [
            f"{'form' if s['kind'] == 'landing' else 'hook'}\n{s['rate']:g}/s" for s in ack["steps"]
        ]
        bottom.boxplot(data, whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
        bottom.set_xticks(range(1, len(labels) + 1), labels)
        bottom.set_yscale("log")
        bottom.axhline(TARGET_P99_MS_AT_20, color="red", linestyle="--", label="50 ms")
        bottom.axhline(TARGET_MAX_MS_AT_100, color="black", linestyle=":", label="1.5 s")
        bottom.set_ylabel("ack latency, ms (box: p25–p75, whiskers p1–p99)")
        bottom.set_title("Ack latency per offered load (open loop)")
        bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result: dict[str, Any] = {
        "timestamp": stamp,
        "machine": _machine(),
        "config": {
            "rps": args.rps,
            "loads": args.loads,
            "step_seconds": args.step_seconds,
            "burst": args.burst,
            "batch_linger_seconds": args.batch_linger,
            "storm_people": args.storm_people,
            "storm_submissions": args.storm_submissions,
        },
    }
    if "ack" not in skip:
        result["ack"] = await ack_latency(args)
    if not {"burst", "email", "idle", "fairness", "storm"} <= skip:
        with BenchStack(_burst_stack_config(args)) as stack:
            for phase, email in BURSTS.items():
                if phase not in skip:
                    kind = "phone and email" if email else "phone only"
                    print(f"{phase}: {args.burst} new people at once, {kind} ...", flush=True)
                    result[phase] = await burst_drain(stack, args.burst, args.rps, email=email)
            if "idle" not in skip:
                print(f"idle: {args.idle_leads} single leads ...", flush=True)
                result["idle"] = await idle_leads(stack, args.idle_leads, args.idle_gap)
            if "fairness" not in skip:
                print(f"fairness: {args.flood} bots, then {args.flood_others} ...", flush=True)
                result["fairness"] = await fairness(stack, args.flood, args.flood_others, args.rps)
            if "storm" not in skip:
                print("duplicate storm ...", flush=True)
                result["storm"] = await duplicate_storm(
                    stack, args.storm_people, args.storm_submissions
                )
    result["saturation"] = saturation(result.get("ack"))
    return result


def _machine() -> str:
    import os
    import platform

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {python}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / result["timestamp"]
    base.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    text = markdown(result)
    base.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    plot(result, base.with_suffix(".png"))
    print(text)
    print(f"\nwrote {base}.json, .md and .png")


if __name__ == "__main__":
    main()
