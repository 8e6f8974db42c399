"""`/api/admin/*`: operator actions that change state outside Temporal's own tools.

They need `Authorization: Bearer <ADMIN_TOKEN>`; without ADMIN_TOKEN set they answer 401.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from api.auth import AdminOnly
from api.deps import DeliveryDep, TemporalDep
from workflows.raw_webhook import RawWebhookWorkflow

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[AdminOnly])


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


@router.get("/dead-letters")
async def list_dead_letters(delivery: DeliveryDep) -> dict[str, Any]:
    """What Temporal refused for good; payloads stay in the outbox file, not in answers."""
    dead = await delivery.outbox.list_dead()
    return {
        "count": delivery.outbox.dead_letters,
        "dead_letters": [
            {
                "id": letter.id,
                "kind": letter.kind,
                "workflow_id": letter.workflow_id[:200],
                "workflow_id_chars": len(letter.workflow_id),
                "payload_bytes": letter.payload_bytes,
                "attempts": letter.attempts,
                "error": letter.error,
                "created_at": letter.created_at,
                "dead_at": letter.dead_at,
            }
            for letter in dead
        ],
    }


@router.post("/dead-letters/redeliver", status_code=status.HTTP_202_ACCEPTED)
async def redeliver_all_dead_letters(request: Request) -> dict[str, int]:
    """After a fix that concerns them all (e.g. a namespace created): all back to the outbox."""
    requeued = await request.app.state.delivery.outbox.requeue_all_dead()
    request.app.state.drainer.wake()
    return {"requeued": requeued}


@router.post("/dead-letters/{dead_id}/redeliver", status_code=status.HTTP_202_ACCEPTED)
async def redeliver_dead_letter(dead_id: int, request: Request) -> dict[str, int]:
    """After a fix (a namespace created, a limit raised, a code change): back into the
    outbox, whose drainer delivers it, or buries it again if it is still refused."""
    delivery = request.app.state.delivery
    outbox_id = await delivery.outbox.requeue_dead(dead_id)
    if outbox_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {dead_id}")
    request.app.state.drainer.wake()
    return {"dead_letter": dead_id, "outbox_id": outbox_id}


@router.post("/raw-webhooks/{workflow_id}/reparse", status_code=status.HTTP_202_ACCEPTED)
async def reparse_raw_webhook(workflow_id: str, temporal: TemporalDep) -> dict[str, str]:
    if not workflow_id.startswith("amocrm-raw-"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not a raw webhook workflow id")
    await temporal.get_workflow_handle(workflow_id).signal(RawWebhookWorkflow.reparse)
    return {"workflow_id": workflow_id, "signalled": "reparse"}
