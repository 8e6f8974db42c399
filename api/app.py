"""The leadrelay HTTP API: `uvicorn api.app:create_app --factory`, or `python -m api`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api import health, landing, leads
from leadrelay.settings import Settings
from leadrelay.temporal import connect


def create_app(settings: Settings | None = None, temporal: Client | None = None) -> FastAPI:
    """One Temporal client per process, connected at startup unless one is given."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.temporal = temporal or await connect(settings)
        yield

    app = FastAPI(title="leadrelay", lifespan=lifespan)
    app.include_router(landing.router)
    app.include_router(leads.router)
    app.include_router(health.router)
    return app
