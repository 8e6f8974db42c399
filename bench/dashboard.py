"""The leadrelay dashboard: one spec for the Grafana JSON and for its rendered picture.

`PANELS` is the single description of what the dashboard shows. `grafana_dashboard()` turns
it into the provisioned Grafana dashboard (deploy/grafana/dashboards/leadrelay.json, checked
against this module by tests/test_compose.py), and `render()` draws the same panels with
matplotlib from a series of Prometheus scrapes, evaluating each query the way Prometheus
would (per-second rates between scrapes, sums by label, histogram quantiles).

    python -m bench.dashboard --write-json        # regenerate the Grafana JSON
    python -m bench.dashboard_burst                # a burst, scraped, drawn to docs/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import math
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DASHBOARD_JSON = REPO / "deploy" / "grafana" / "dashboards" / "leadrelay.json"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE_WINDOW = "$__rate_interval"
AXIS_LABELS = {"short": "", "reqps": "requests/s", "s": "seconds"}
LINE_STYLES = ("-", "--", ":")

Labels = tuple[tuple[str, str], ...]
Scrape = dict[tuple[str, Labels], float]
"""One scrape of every target: (metric name, sorted labels) → value."""


@dataclass(frozen=True)
class Series:
    """One line of a panel.

    kind: `rate` (per second, or per minute with `per_minute`), `gauge` (max over
    targets), `quantile` (histogram_quantile of `metric`_bucket rates).
    """

    legend: str
    kind: str
    metric: str
    _: KW_ONLY
    by: tuple[str, ...] = ()
    per_minute: bool = False
    quantile: float = 0.95
    scale: float = 1.0

    def promql(self) -> str:
        by = f" by ({', '.join(self.by)})" if self.by else ""
        if self.kind == "rate":
            query = f"sum{by} (rate({self.metric}[{RATE_WINDOW}]))"
            return f"{query} * 60" if self.per_minute else query
        if self.kind == "gauge":
            return f"max{by} ({self.metric})"
        if self.kind == "quantile":
            groups = ", ".join(("le", *self.by))
            query = (
                f"histogram_quantile({self.quantile}, sum by ({groups}) "
                f"(rate({self.metric}_bucket[{RATE_WINDOW}])))"
            )
            return f"{query} * {self.scale:g}" if self.scale != 1 else query
        raise ValueError(self.kind)

    def grafana_legend(self) -> str:
        return " ".join([self.legend, *(f"{{{{{label}}}}}" for label in self.by)]).strip()


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    series: tuple[Series, ...]
    description: str = ""
    thresholds: tuple[Series, ...] = field(default=())
    """Reference lines (a budget), drawn dashed."""


SPEED = "leadrelay_speed_to_lead_seconds"
PANELS: tuple[Panel, ...] = (
    Panel(
        "Leads per minute",
        "short",
        (
            Series("accepted", "rate", "leadrelay_leads_accepted_total", per_minute=True),
            Series("created", "rate", "leadrelay_leads_created", per_minute=True),
            Series("updated", "rate", "leadrelay_leads_updated", per_minute=True),
        ),
        "Landing forms answered 202 by the API; leads created in amoCRM and submissions "
        "noted on an open lead by the workers.",
    ),
    Panel(
        "Outbox depth and dead letters",
        "short",
        (
            Series("outbox depth", "gauge", "leadrelay_outbox_depth"),
            Series("outbox dead letters", "gauge", "leadrelay_outbox_dead_letters"),
            Series(
                "submissions dead-lettered /min",
                "rate",
                "leadrelay_submissions_dead_lettered",
                per_minute=True,
            ),
        ),
        "Deliveries waiting for Temporal in the API's outbox (above 0 for long: Temporal is "
        "unreachable), entries it gave up on, and submissions a lead workflow dead-lettered.",
    ),
    Panel(
        "amoCRM requests per second by outcome",
        "reqps",
        (Series("", "rate", "leadrelay_amocrm_requests", by=("outcome",)),),
        "Every amoCRM request, by outcome (success or the error type). The dashed line is "
        "AMOCRM_RPS, the budget of the whole deployment.",
        thresholds=(Series("AMOCRM_RPS", "gauge", "leadrelay_amocrm_rps_budget"),),
    ),
    Panel(
        "Activity schedule-to-start latency (p95)",
        "s",
        (
            Series(
                "",
                "quantile",
                "temporal_activity_schedule_to_start_latency",
                by=("task_queue",),
                scale=0.001,
            ),
        ),
        "How long activities wait in their task queue before a worker starts them: the "
        "backlog. On `amocrm` it grows while a burst drains at AMOCRM_RPS.",
    ),
    Panel(
        "Webhooks per minute by outcome",
        "short",
        (Series("", "rate", "leadrelay_webhooks_total", by=("outcome",), per_minute=True),),
        "amoCRM webhooks: events delivered, bodies kept raw, unauthorized calls.",
    ),
    Panel(
        "202 → in amoCRM (speed to lead)",
        "s",
        (
            Series("p50", "quantile", SPEED, by=("milestone",), quantile=0.5),
            Series("p95", "quantile", SPEED, by=("milestone",), quantile=0.95),
        ),
        "Seconds from a submission's 202 until its lead (milestone=lead) and its note "
        "(milestone=note) exist in amoCRM.",
    ),
)


# ----- Grafana


def grafana_dashboard() -> dict[str, Any]:
    panels = []
    for index, panel in enumerate(PANELS):
        targets = []
        overrides = []
        for ref, series in enumerate((*panel.series, *panel.thresholds)):
            ref_id = chr(ord("A") + ref)
            targets.append(
                {
                    "datasource": DATASOURCE,
                    "expr": series.promql(),
                    "legendFormat": series.grafana_legend() or "__auto",
                    "refId": ref_id,
                }
            )
            if series in panel.thresholds:
                overrides.append(
                    {
                        "matcher": {"id": "byFrameRefID", "options": ref_id},
                        "properties": [
                            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                            {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                        ],
                    }
                )
        panels.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": panel.title,
                "description": panel.description,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {
                    "defaults": {"unit": panel.unit, "min": 0},
                    "overrides": overrides,
                },
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": targets,
            }
        )
    return {
        "uid": "leadrelay",
        "title": "leadrelay",
        "tags": ["leadrelay"],
        "timezone": "browser",
        "refresh": "10s",
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
    }


def grafana_json() -> str:
    return json.dumps(grafana_dashboard(), indent=2, ensure_ascii=False) + "\n"


# ----- evaluating the same queries on scrapes


def parse_scrape(text: str) -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    values: Scrape = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return values


def merge_scrapes(scrapes: Iterable[Scrape]) -> Scrape:
    """Targets scraped at one moment (the API and each worker); same-named series add up."""
    merged: Scrape = {}
    for scrape in scrapes:
        for key, value in scrape.items():
            merged[key] = merged.get(key, 0.0) + value
    return merged


def _matching(scrape: Scrape, names: set[str]) -> Iterable[tuple[str, dict[str, str], float]]:
    """Prometheus client libraries expose a counter `x` as `x_total`; the SDK does not."""
    for (name, labels), value in scrape.items():
        if name in names:
            yield name, dict(labels), value


def evaluate(
    series: Series, times: list[float], scrapes: list[Scrape]
) -> dict[str, list[tuple[float, float]]]:
    """Lines of one series, keyed by their legend, as (time, value) points."""
    lines: dict[str, list[tuple[float, float]]] = {}
    if series.kind == "gauge":
        for when, scrape in zip(times, scrapes, strict=True):
            for legend, value in _grouped(series, scrape, {series.metric}, max).items():
                lines.setdefault(legend, []).append((when, value))
        return lines
    names = {series.metric, f"{series.metric}_total"}
    if series.kind == "quantile":
        names = {f"{series.metric}_bucket"}
    for i in range(1, len(scrapes)):
        dt = times[i] - times[i - 1]
        if dt <= 0:
            continue
        before, after = scrapes[i - 1], scrapes[i]
        increase = {
            key: max(0.0, value - before.get(key, 0.0))
            for key, value in after.items()
            if key[0] in names
        }
        if series.kind == "rate":
            scale = (60.0 if series.per_minute else 1.0) / dt
            for legend, value in _grouped(series, increase, names, sum).items():
                lines.setdefault(legend, []).append((times[i], value * scale))
        else:
            for legend, value in _quantiles(series, increase).items():
                lines.setdefault(legend, []).append((times[i], value * series.scale))
    if series.kind == "quantile":
        # No observation between two scrapes: no value (a gap), as Prometheus gives none.
        steps = [times[i] for i in range(1, len(times)) if times[i] > times[i - 1]]
        for legend, points in lines.items():
            known = dict(points)
            lines[legend] = [(t, known.get(t, math.nan)) for t in steps]
    return lines


def _legend(series: Series, labels: Mapping[str, str]) -> str:
    return " ".join([series.legend, *(labels.get(label, "") for label in series.by)]).strip()


def _grouped(series: Series, scrape: Scrape, names: set[str], combine: Any) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for _, labels, value in _matching(scrape, names):
        groups.setdefault(_legend(series, labels), []).append(value)
    return {legend: combine(values) for legend, values in groups.items()}


def _quantiles(series: Series, increase: Scrape) -> dict[str, float]:
    buckets: dict[str, dict[float, float]] = {}
    for _, labels, value in _matching(increase, {f"{series.metric}_bucket"}):
        bound = float(labels["le"])
        group = buckets.setdefault(_legend(series, labels), {})
        group[bound] = group.get(bound, 0.0) + value
    return {
        legend: q
        for legend, group in buckets.items()
        if (q := histogram_quantile(series.quantile, group)) is not None
    }


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus's estimate: linear interpolation inside the bucket holding the rank."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width else 0.0)
        lower, below = bound, count
    return lower


TITLE = "leadrelay — dashboard during a burst"


def load_scrapes(path: Path) -> tuple[list[float], list[Scrape], str]:
    """What `bench.dashboard_burst` saved: the scrape times, the series the panels read."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    scrapes = [
        {(name, tuple(sorted(labels.items()))): value for name, labels, value in scrape}
        for scrape in saved["scrapes"]
    ]
    return saved["times"], scrapes, saved["notes"]


def render(
    times: list[float], scrapes: list[Scrape], path: Path, *, title: str, notes: str = ""
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = times[0]
    elapsed = [t - start for t in times]
    rows = math.ceil(len(PANELS) / 2)
    figure, axes = plt.subplots(rows, 2, figsize=(14, 3.4 * rows), squeeze=False)
    for panel, ax in zip(PANELS, axes.flat, strict=False):
        drawn = False
        colours: dict[str, str] = {}
        for style, series in zip(LINE_STYLES, panel.series, strict=False):
            for legend, points in sorted(evaluate(series, elapsed, scrapes).items()):
                if points:
                    xs, ys = zip(*points, strict=True)
                    # One colour per label value (e.g. milestone), one line style per series.
                    key = legend.removeprefix(series.legend).strip() or legend
                    colour = colours.setdefault(key, f"C{len(colours)}")
                    ax.plot(xs, ys, style, color=colour, label=legend or series.metric, lw=1.6)
                    drawn = True
        for series in panel.thresholds:
            for legend, points in evaluate(series, elapsed, scrapes).items():
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, "--", color="red", label=legend, linewidth=1.2)
        if not drawn:
            ax.text(0.5, 0.5, "no data in these scrapes", ha="center", va="center",
                    transform=ax.transAxes, color="grey")  # fmt: skip
        ax.set_xlim(0, elapsed[-1])
        ax.set_title(panel.title, fontsize=11, loc="left")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("seconds", fontsize=8)
        ax.set_ylabel(AXIS_LABELS.get(panel.unit, panel.unit), fontsize=8)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper right")
    for ax in list(axes.flat)[len(PANELS) :]:
        ax.axis("off")
    figure.suptitle(title, fontsize=13, x=0.01, ha="left")
    if notes:
        figure.text(0.01, 0.005, textwrap.fill(notes, 190), fontsize=8, color="dimgrey")
    figure.tight_layout(rect=(0, 0.035, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--write-json", action="store_true", help=f"write {DASHBOARD_JSON}")
    parser.add_argument(
        "--render", type=Path, metavar="SCRAPES", help="redraw a bench/results/dashboard-*.json"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    args = parser.parse_args(argv)
    if args.render:
        times, scrapes, notes = load_scrapes(args.render)
        render(times, scrapes, args.out, title=TITLE, notes=notes)
        print(f"drew {args.out}")
    elif args.write_json:
        DASHBOARD_JSON.parent.mkdir(parents=True, exist_ok=True)
        DASHBOARD_JSON.write_text(grafana_json(), encoding="utf-8")
        print(f"wrote {DASHBOARD_JSON.relative_to(REPO)}")
    else:
        print(grafana_json())


if __name__ == "__main__":
    main()
