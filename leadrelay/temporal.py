"""How to reach Temporal: the one client connection every process uses."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, Interceptor
from temporalio.runtime import Runtime

from leadrelay.payloads import DATA_CONVERTER
from leadrelay.settings import Settings
from leadrelay.temporal_tls import api_key, tls_config


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """Every process connects here, so TLS, mTLS and API keys apply to all of them.

    `lazy` lets the API start while Temporal is down; its outbox covers the gap.
    `runtime` carries the worker's metrics; None is the SDK's default runtime.
    `interceptors` (tracing) also apply to every worker built on this client."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=api_key(settings),
        lazy=lazy,
        runtime=runtime,
        interceptors=interceptors,
        data_converter=DATA_CONVERTER,
    )
