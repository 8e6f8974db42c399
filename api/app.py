"""The leadrelay HTTP API: `uvicorn api.app:create_app --factory`, or `python -m api`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api import admin, amocrm_hooks, health, landing, leads
from api.delivery import Delivery
from api.metrics import ApiMetrics, MetricsMiddleware
from api.metrics import router as metrics_router
from api.outbox import Outbox, OutboxDrainer
from leadrelay.settings import Settings
from leadrelay.temporal import connect


def create_app(settings: Settings | None = None, temporal: Client | None = None) -> FastAPI:
    """One Temporal client per process (lazy, so the API starts while Temporal is down),
    one outbox and its drainer."""
    settings = settings or Settings()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = temporal or await connect(settings, lazy=True)
        outbox = Outbox(settings.leadrelay_outbox_path)
        delivery = Delivery(client, settings, outbox)
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

    app = FastAPI(title="leadrelay", lifespan=lifespan)
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(landing.router)
    app.include_router(amocrm_hooks.router)
    app.include_router(leads.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(metrics_router)
    return app
