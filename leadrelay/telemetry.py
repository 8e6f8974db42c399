"""The worker's Temporal runtime: the SDK's own metrics and logs, kept with ours."""

from __future__ import annotations

import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
)

SPEED_TO_LEAD_METRIC = "leadrelay_speed_to_lead_seconds"
"""Seconds from a submission's 202 until amoCRM has it, by `milestone`: `lead` or `note`."""
SPEED_TO_LEAD_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800, 3600)


def worker_runtime(metrics_address: str) -> Runtime:
    """Prometheus metrics on `metrics_address` (`host:port`; empty serves none), and the
    SDK core's logs sent through Python logging, so they come out as masked JSON too."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=LoggingConfig.default.filter,
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
            metrics=PrometheusConfig(
                bind_address=metrics_address,
                histogram_bucket_overrides={SPEED_TO_LEAD_METRIC: SPEED_TO_LEAD_BUCKETS},
            )
            if metrics_address
            else None,
        )
    )


AMOCRM_RPS_BUDGET_METRIC = "leadrelay_amocrm_rps_budget"


def publish_rps_budget(runtime: Runtime, amocrm_rps: float) -> None:
    """AMOCRM_RPS as a gauge, so a dashboard draws the budget next to the requests sent."""
    runtime.metric_meter.create_gauge_float(
        AMOCRM_RPS_BUDGET_METRIC, "AMOCRM_RPS: amoCRM requests per second, whole deployment"
    ).set(amocrm_rps)
