"""The dashboard's queries evaluated on scrapes the way Prometheus evaluates them."""

from __future__ import annotations

import pytest

from bench.dashboard import PANELS, Series, evaluate, histogram_quantile, parse_scrape

SCRAPE_1 = """
# TYPE leadrelay_amocrm_requests counter
leadrelay_amocrm_requests{activity_type="a",outcome="success"} 10
leadrelay_amocrm_requests{activity_type="b",outcome="success"} 5
leadrelay_amocrm_requests{activity_type="a",outcome="AmoRateLimited"} 1
# TYPE x_latency histogram
x_latency_bucket{le="100"} 1
x_latency_bucket{le="1000"} 1
x_latency_bucket{le="+Inf"} 1
x_latency_sum 50
x_latency_count 1
"""
SCRAPE_2 = """
# TYPE leadrelay_amocrm_requests counter
leadrelay_amocrm_requests{activity_type="a",outcome="success"} 30
leadrelay_amocrm_requests{activity_type="b",outcome="success"} 25
leadrelay_amocrm_requests{activity_type="a",outcome="AmoRateLimited"} 1
# TYPE x_latency histogram
x_latency_bucket{le="100"} 1
x_latency_bucket{le="1000"} 11
x_latency_bucket{le="+Inf"} 11
x_latency_sum 5050
x_latency_count 11
"""


def test_rates_sum_by_label_between_scrapes():
    scrapes = [parse_scrape(SCRAPE_1), parse_scrape(SCRAPE_2)]
    series = Series("", "rate", "leadrelay_amocrm_requests", by=("outcome",))
    lines = evaluate(series, [0.0, 10.0], scrapes)
    assert lines == {"success": [(10.0, 4.0)], "AmoRateLimited": [(10.0, 0.0)]}
    per_minute = Series("all", "rate", "leadrelay_amocrm_requests", per_minute=True)
    assert evaluate(per_minute, [0.0, 10.0], scrapes) == {"all": [(10.0, 240.0)]}


def test_quantiles_come_from_bucket_increases():
    scrapes = [parse_scrape(SCRAPE_1), parse_scrape(SCRAPE_2)]
    series = Series("p50", "quantile", "x_latency", quantile=0.5, scale=0.001)
    # Ten new observations, all in (100, 1000]: the median interpolates to 550 ms.
    assert evaluate(series, [0.0, 10.0], scrapes) == {"p50": [(10.0, pytest.approx(0.55))]}


def test_histogram_quantile_matches_prometheus():
    buckets = {0.5: 2.0, 1.0: 6.0, 2.0: 8.0, float("inf"): 10.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.875)
    assert histogram_quantile(0.99, buckets) == 2.0  # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, {1.0: 0.0, float("inf"): 0.0}) is None


def test_every_panel_query_is_valid_promql_shape():
    for panel in PANELS:
        for series in (*panel.series, *panel.thresholds):
            query = series.promql()
            assert query.count("(") == query.count(")"), query
            assert series.metric in query
            if series.kind == "quantile" and series.legend.startswith("p"):
                # A line called p50 draws the median.
                assert f"histogram_quantile({int(series.legend[1:]) / 100:g}," in query


def test_the_worker_publishes_the_amocrm_rps_budget():
    """The dashed AMOCRM_RPS line reads this gauge from the worker's metrics endpoint."""
    import socket

    import httpx

    from leadrelay.telemetry import AMOCRM_RPS_BUDGET_METRIC, publish_rps_budget, worker_runtime

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime = worker_runtime(f"127.0.0.1:{port}")
    publish_rps_budget(runtime, 4.5)
    scrape = parse_scrape(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
    values = [value for (name, _), value in scrape.items() if name == AMOCRM_RPS_BUDGET_METRIC]
    assert values == [4.5]
