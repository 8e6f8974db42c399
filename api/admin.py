"""`/api/admin/*`: operator actions that change state outside Temporal's own tools.

They need `Authorization: Bearer <ADMIN_TOKEN>`; without ADMIN_TOKEN set they answer 401.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status

from api.deps import DeliveryDep, SettingsDep, TemporalDep
from workflows.raw_webhook import RawWebhookWorkflow


async def require_admin(
    settings: SettingsDep, authorization: Annotated[str, Header()] = ""
) -> None:
    expected = f"Bearer {settings.admin_token}" if settings.admin_token else None
    if expected is None or not hmac.compare_digest(authorization, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "admin endpoints need Authorization: Bearer <ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("/outbox")
async def list_outbox(delivery: DeliveryDep) -> dict[str, Any]:
    entries = await delivery.outbox_entries()
    return {
        "depth": delivery.outbox_depth,
        "entries": [
            {
                "id": entry.id,
                "kind": entry.kind,
                "workflow_id": entry.workflow_id,
                "attempts": entry.attempts,
                "last_error": entry.last_error,
            }
            for entry in entries
        ],
    }


@router.post("/outbox/drain")
async def drain_outbox(request: Request) -> dict[str, int]:
    """Deliver now instead of at the drainer's next tick."""
    delivered = await request.app.state.drainer.drain_once()
    return {"delivered": delivered, "depth": request.app.state.delivery.outbox_depth}


@router.post("/raw-webhooks/{workflow_id}/reparse", status_code=status.HTTP_202_ACCEPTED)
async def reparse_raw_webhook(workflow_id: str, temporal: TemporalDep) -> dict[str, str]:
    if not workflow_id.startswith("amocrm-raw-"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not a raw webhook workflow id")
    await temporal.get_workflow_handle(workflow_id).signal(RawWebhookWorkflow.reparse)
    return {"workflow_id": workflow_id, "signalled": "reparse"}
