"""Liveness and readiness, for a proxy or an orchestrator.

`GET /healthz` (liveness): the process is up and its outbox drainer loop runs. It does not
ask Temporal: restarting the API never brings Temporal back.
`GET /readyz` (readiness): the API can accept, through Temporal or, when Temporal is away,
through the outbox. A proxy must not take the API out exactly when the outbox should take over.
Anyone sees ready or not and the outbox counts; whether it goes through Temporal or the outbox,
where Temporal is (address, namespace, server version) and why it is unreachable only a caller
with `Authorization: Bearer <ADMIN_TOKEN>`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import RPCError

from api.auth import AuthorizationHeader, is_admin
from api.deps import SettingsDep, TemporalDep

router = APIRouter(tags=["health"])

TEMPORAL_PROBE_TIMEOUT_SECONDS = 2.0


def outbox_report(request: Request) -> dict[str, Any]:
    delivery = request.app.state.delivery
    drainer = request.app.state.drainer
    return {
        "outbox_depth": delivery.outbox.depth,
        "outbox_oldest_age_seconds": round(delivery.outbox.oldest_age_seconds, 3),
        "dead_letters": delivery.outbox.dead_letters,
        "drainer_alive": drainer.alive,
    }


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    report = outbox_report(request)
    alive = report["drainer_alive"]
    return JSONResponse(
        status_code=200 if alive else 503,
        content={"status": "ok" if alive else "drainer stopped", **report},
    )


@router.get("/readyz")
async def readyz(
    request: Request,
    settings: SettingsDep,
    temporal: TemporalDep,
    authorization: AuthorizationHeader = "",
) -> JSONResponse:
    details: dict[str, object] = {
        "address": settings.temporal_address,
        "namespace": settings.temporal_namespace,
    }
    try:
        info = await asyncio.wait_for(
            temporal.workflow_service.get_system_info(GetSystemInfoRequest()),
            TEMPORAL_PROBE_TIMEOUT_SECONDS,
        )
        reachable = True
        details["server_version"] = info.server_version
    except (RPCError, TimeoutError, RuntimeError) as err:
        reachable = False
        details["error"] = str(err) or type(err).__name__
    report = outbox_report(request)
    # The outbox takes over while Temporal is away, as long as its drainer runs.
    ready = reachable or report["drainer_alive"]
    content: dict[str, object] = {"status": "ready" if ready else "not ready", **report}
    if is_admin(settings, authorization):
        via = "temporal" if reachable else "outbox"
        content.update(via=via, temporal={"reachable": reachable, **details})
    return JSONResponse(status_code=200 if ready else 503, content=content)
