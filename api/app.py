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
from temporalio.client import Client

from api import admin, amocrm_hooks, health, landing, leads
from api.delivery import Delivery
from api.metrics import ApiMetrics, MetricsMiddleware
from api.metrics import router as metrics_router
from api.outbox import Outbox, OutboxDrainer
from leadrelay.forms import FormsFile
from leadrelay.settings import Settings
from leadrelay.temporal import connect
from leadrelay.tracing import Tracing, redact_url_attributes

# Probes and scrapes would only bury the traces of leads.
UNTRACED_URLS = "/healthz,/metrics"


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
        drainer = OutboxDrainer(outbox, delivery.redeliver)
        metrics.track_outbox(delivery)
        app.state.settings = settings
        app.state.temporal = client
        app.state.delivery = delivery
        app.state.drainer = drainer
        draining = asyncio.create_task(drainer.run(), name="outbox-drainer")
        try:
            yield
        finally:
            draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await draining
            outbox.close()
            if own_tracing:
                tracing.shutdown()

    app = FastAPI(title="leadrelay", lifespan=lifespan)
    if tracing.provider is not None:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=tracing.provider,
            server_request_hook=_redact_request,
            excluded_urls=UNTRACED_URLS,
            exclude_spans=["receive", "send"],
        )
    app.state.metrics = metrics
    app.state.forms = FormsFile(settings.leadrelay_forms)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(landing.router)
    app.include_router(amocrm_hooks.router)
    app.include_router(leads.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(metrics_router)
    return app


def _redact_request(span: Span, scope: dict[str, Any]) -> None:
    redact_url_attributes(span)
