"""The leadrelay HTTP API: `uvicorn api.app:create_app --factory`, or `python -m api`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import Span
from prometheus_client import start_http_server
from temporalio.client import Client

from api import admin, amocrm_hooks, health, landing, leads
from api.delivery import Delivery, classify_failure
from api.metrics import ApiMetrics, MetricsMiddleware
from api.metrics import router as metrics_router
from api.outbox import Outbox, OutboxDrainer
from api.throttle import TokenBuckets, parse_networks
from leadrelay import limits
from leadrelay.forms import FormsFile
from leadrelay.settings import Settings
from leadrelay.temporal import connect
from leadrelay.tracing import Tracing, redact_url_attributes

# Probes and scrapes would only bury the traces of leads.
UNTRACED_URLS = "/healthz,/readyz,/metrics"


def create_app(
    settings: Settings | None = None,
    temporal: Client | None = None,
    tracing: Tracing | None = None,
) -> FastAPI:
    """One Temporal client per process (lazy, so the API starts while Temporal is down),
    one outbox and its drainer. Tracing comes from the OTEL_* variables unless given."""
    settings = settings or Settings()
    metrics = ApiMetrics()
    own_tracing = tracing is None
    tracing = tracing or Tracing.from_environment("leadrelay-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = temporal or await connect(
            settings, lazy=True, interceptors=tracing.temporal_interceptors()
        )
        outbox = Outbox(settings.leadrelay_outbox_path)
        delivery = Delivery(client, settings, outbox, tracer=tracing.tracer("leadrelay.api"))
        drainer = OutboxDrainer(outbox, delivery.redeliver, classify=classify_failure)
        metrics.track_outbox(delivery, drainer)
        app.state.settings = settings
        app.state.temporal = client
        app.state.delivery = delivery
        app.state.drainer = drainer
        async with contextlib.AsyncExitStack() as exits:
            if settings.leadrelay_api_metrics_address:
                host, _, port = settings.leadrelay_api_metrics_address.rpartition(":")
                server, _ = start_http_server(int(port), host, registry=metrics.registry)
                exits.callback(server.server_close)
                exits.callback(server.shutdown)
            if own_tracing:
                exits.callback(tracing.shutdown)
            exits.callback(outbox.close)
            draining = drainer.start()
            try:
                yield
            finally:
                draining.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await draining

    docs = settings.leadrelay_api_docs
    app = FastAPI(
        title="leadrelay",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    if tracing.provider is not None:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=tracing.provider,
            server_request_hook=_redact_request,
            excluded_urls=UNTRACED_URLS,
            exclude_spans=["receive", "send"],
        )
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.forms = FormsFile(settings.leadrelay_forms)
    app.state.person_limit = TokenBuckets(
        limits.PERSON_SUBMISSIONS_PER_WINDOW,
        limits.PERSON_WINDOW_SECONDS,
        limits.PERSON_TRACKED_KEYS,
    )
    app.state.client_limit = (
        TokenBuckets(settings.leadrelay_ip_limit_per_minute, 60.0, limits.CLIENT_TRACKED_ADDRESSES)
        if settings.leadrelay_ip_limit_per_minute
        else None
    )
    app.state.trusted_proxies = parse_networks(settings.leadrelay_trusted_proxies)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(landing.router)
    app.include_router(amocrm_hooks.router)
    app.include_router(leads.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    if not settings.leadrelay_api_metrics_address:
        app.include_router(metrics_router)
    return app


def _redact_request(span: Span, scope: dict[str, Any]) -> None:
    redact_url_attributes(span)
