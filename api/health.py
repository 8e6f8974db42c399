"""`GET /healthz`: is Temporal reachable from this API process, and how full is the outbox?"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import RPCError

from api.deps import DeliveryDep, SettingsDep, TemporalDep

router = APIRouter(tags=["health"])

TEMPORAL_PROBE_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz(
    settings: SettingsDep, temporal: TemporalDep, delivery: DeliveryDep
) -> JSONResponse:
    temporal_report: dict[str, object] = {
        "address": settings.temporal_address,
        "namespace": settings.temporal_namespace,
    }
    try:
        info = await asyncio.wait_for(
            temporal.workflow_service.get_system_info(GetSystemInfoRequest()),
            TEMPORAL_PROBE_TIMEOUT_SECONDS,
        )
        temporal_report.update(reachable=True, server_version=info.server_version)
        healthy = True
    except (RPCError, TimeoutError) as err:
        temporal_report.update(reachable=False, error=str(err) or type(err).__name__)
        healthy = False
    return JSONResponse(
        status_code=200 if healthy else 503,
        content={
            "status": "ok" if healthy else "degraded",
            "temporal": temporal_report,
            "outbox_depth": delivery.outbox_depth,
        },
    )
