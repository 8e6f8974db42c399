"""The sandbox app: an amoCRM v4 look-alike with a rate limit, blocks and injectable faults."""

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException

from sandbox import api_routes, control_routes, oauth, webhook_routes
from sandbox.gate import api_gate
from sandbox.responses import ValidationProblem, problem
from sandbox.seed import seed_contact_fields, seed_lead_fields, seed_pipelines, seed_users
from sandbox.settings import SandboxSettings
from sandbox.state import SandboxAccount

__all__ = ["SandboxSettings", "create_app"]


async def _http_problem(_: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return problem(error.status_code, str(error.detail))


async def _validation_problem(_: Request, error: Exception) -> Response:
    assert isinstance(error, ValidationProblem)
    return error.response()


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    app = FastAPI(title="amoCRM sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings or SandboxSettings()
    app.state.account = SandboxAccount(
        seed_pipelines(), seed_lead_fields(), seed_contact_fields(), seed_users()
    )
    app.include_router(api_routes.router)
    app.include_router(control_routes.router)
    app.include_router(webhook_routes.router)
    app.include_router(oauth.router)
    app.add_exception_handler(HTTPException, _http_problem)
    app.add_exception_handler(ValidationProblem, _validation_problem)
    app.middleware("http")(api_gate)
    return app
