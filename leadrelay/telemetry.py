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


def worker_runtime(metrics_address: str) -> Runtime:
    """Prometheus metrics on `metrics_address` (`host:port`; empty serves none), and the
    SDK core's logs sent through Python logging, so they come out as masked JSON too."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=LoggingConfig.default.filter,
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
            metrics=PrometheusConfig(bind_address=metrics_address) if metrics_address else None,
        )
    )
