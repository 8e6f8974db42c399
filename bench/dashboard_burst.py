"""`python -m bench.dashboard_burst`: a `make bench` burst, scraped and drawn as the dashboard.

Starts the bench stack (real processes on free 127.0.0.1 ports), scrapes the API's and
the worker's `/metrics` every `--interval` seconds, and meanwhile sends: a few warm-up forms,
a burst of `--burst` new people at once, second forms from some of them (notes on open
leads), and a trickle of webhooks. When amoCRM (the sandbox) has every lead and note, it
scrapes a little longer and draws the dashboard's panels (bench/dashboard.py) from those
scrapes into docs/dashboard.png, with the raw scrapes beside bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import load
from bench.dashboard import PANELS, REPO, TITLE, Scrape, merge_scrapes, parse_scrape, render
from bench.stack import BenchStack, StackConfig

PICTURE = REPO / "docs" / "dashboard.png"
RESULTS = REPO / "bench" / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_burst", description=__doc__)
    parser.add_argument("--burst", type=int, default=150, help="new people at once")
    parser.add_argument("--returning", type=int, default=30, help="second forms afterwards")
    parser.add_argument("--webhooks", type=int, default=60, help="webhooks, 1 per second")
    parser.add_argument("--rps", type=float, default=5.0, help="AMOCRM_RPS")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between scrapes")
    parser.add_argument("--out", type=Path, default=PICTURE)
    return parser.parse_args(argv)


class Scraper:
    def __init__(self, urls: list[str], interval: float) -> None:
        self.urls = urls
        self.interval = interval
        self.times: list[float] = []
        self.scrapes: list[Scrape] = []
        self.missed = 0

    async def run(self, client: httpx.AsyncClient) -> None:
        while True:
            started = time.monotonic()
            try:
                answers = await asyncio.gather(*(client.get(url) for url in self.urls))
            except httpx.HTTPError:
                # A slow answer under load: this scrape is missing, as it would be in
                # Prometheus; the rates between the neighbours still cover the gap.
                self.missed += 1
            else:
                self.times.append(started)
                self.scrapes.append(merge_scrapes(parse_scrape(a.text) for a in answers))
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))


async def run(args: argparse.Namespace) -> dict[str, object]:
    with BenchStack(StackConfig(amocrm_rps=args.rps)) as stack:
        worker_metrics = stack.procs["worker"].env["LEADRELAY_WORKER_METRICS_ADDRESS"]
        scraper = Scraper(
            [f"{stack.api_url}/metrics", f"http://{worker_metrics}/metrics"], args.interval
        )
        async with (
            stack.api_client() as api,
            stack.sandbox_client() as sandbox,
            httpx.AsyncClient(timeout=10) as http,
        ):
            scraping = asyncio.create_task(scraper.run(http))
            await load.open_loop(
                api, load.landing_sender(load.new_national_numbers(5)), rate=1, count=5
            )
            await asyncio.sleep(3 * args.interval)
            burst_at = time.monotonic()
            nationals = load.new_national_numbers(args.burst)
            samples = await load.all_at_once(api, load.landing_sender(nationals), args.burst)
            webhooks = asyncio.create_task(
                load.open_loop(api, load.webhook_sender(), rate=1, count=args.webhooks)
            )
            await asyncio.sleep(10)

            def second_form(client: httpx.AsyncClient, index: int):
                body = load.landing_body(nationals[index]) | {"comment": "second form"}
                return client.post(f"/api/landing/{load.BENCH_FORM}", json=body)

            samples += await load.open_loop(api, second_form, rate=2, count=args.returning)
            expected = load.accepted(samples)
            within = 4 * args.burst / args.rps + 180
            check, done_at = await load.wait_until_complete(sandbox.state, expected, within=within)
            await webhooks
            await asyncio.sleep(4 * args.interval)
            if scraping.done():
                scraping.result()  # the scraper stopped early: say why
            scraping.cancel()
    drained = round(done_at - burst_at, 1) if done_at else None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    notes = (
        f"Drawn with matplotlib from {len(scraper.times)} Prometheus scrapes of the API and the "
        f"worker, {args.interval:g} s apart ({scraper.missed} missed), during "
        f"`python -m bench.dashboard_burst` ({stamp}): "
        f"{args.burst} new people at once at t={burst_at - scraper.times[0]:.0f} s, "
        f"{args.returning} second forms, {args.webhooks} webhooks; AMOCRM_RPS={args.rps:g}; "
        f"all in amoCRM after {drained} s."
    )
    render(
        scraper.times,
        scraper.scrapes,
        args.out,
        title=TITLE,
        notes=notes,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"dashboard-{stamp}.json"
    raw.write_text(
        json.dumps({"times": scraper.times, "scrapes": _drawn(scraper.scrapes), "notes": notes}),
        encoding="utf-8",
    )
    return {
        "picture": str(args.out.relative_to(REPO)),
        "scrapes": str(raw.relative_to(REPO)),
        "complete": check.complete,
        "exactly_once": check.exactly_once,
        "drain_s": drained,
        "notes": notes,
    }


def _drawn(scrapes: list[Scrape]) -> list[list[tuple[str, dict[str, str], float]]]:
    """The series the panels read, from each scrape: what the picture was drawn from."""
    metrics = tuple({s.metric for p in PANELS for s in (*p.series, *p.thresholds)})
    return [
        [(name, dict(labels), value) for (name, labels), value in scrape.items()
         if name.startswith(metrics)]
        for scrape in scrapes
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(asyncio.run(run(parse_args(argv))), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
