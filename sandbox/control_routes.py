"""Endpoints for tests and people to look inside the sandbox and steer it: no token, no limit."""

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from sandbox.api_routes import Account, BaseUrl, JsonBody
from sandbox.faults import Faults
from sandbox.item_reader import ItemReader
from sandbox.render import contact_json, lead_json, note_json, task_json
from sandbox.responses import EscapingJSONResponse, invalid_settings
from sandbox.state import JSON, LedgerEntry, SandboxAccount, unix_now
from sandbox.status_webhooks import announce_status_changes
from sandbox.writes import add_contact, move_lead, read_contact, read_stage

router = APIRouter(prefix="/_sandbox")

_ENTITY_ID = re.compile(r"/\d+(?=/|$)")


async def ledger_since(request: Request, account: Account) -> list[LedgerEntry]:
    since = request.query_params.get("since")
    if since is None:
        return account.ledger
    try:
        cutoff = float(since)
    except ValueError:
        raise HTTPException(400, "since must be a unix time") from None
    return [entry for entry in account.ledger if entry.t >= cutoff]


Ledger = Annotated[list[LedgerEntry], Depends(ledger_since)]


@router.get("/requests")
async def list_requests(ledger: Ledger) -> JSONResponse:
    return JSONResponse([entry.as_json() for entry in ledger])


@router.get("/stats")
async def request_stats(ledger: Ledger) -> JSONResponse:
    by_status: dict[str, int] = {}
    by_route: dict[str, int] = {}
    for entry in ledger:
        if entry.status is not None:
            by_status[str(entry.status)] = by_status.get(str(entry.status), 0) + 1
        route = f"{entry.method} {_ENTITY_ID.sub('/{id}', entry.path)}"
        by_route[route] = by_route.get(route, 0) + 1
    return JSONResponse(
        {
            "total": len(ledger),
            "by_status": by_status,
            "by_route": by_route,
            "peak_1s": peak_per_second(sorted(entry.t for entry in ledger)),
        }
    )


def peak_per_second(times: list[float]) -> int:
    """The most arrivals in any half-open one-second window [t, t + 1)."""
    peak = 0
    first = 0
    for last, moment in enumerate(times):
        while moment - times[first] >= 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


@router.get("/state")
async def account_state(account: Account, base: BaseUrl) -> JSONResponse:
    return EscapingJSONResponse(
        {
            "contacts": [
                contact_json(contact, account, base, with_leads=True)
                for contact in account.contacts.values()
            ],
            "leads": [
                lead_json(lead, account, base, with_contacts=True)
                for lead in account.leads.values()
            ],
            "notes": [note_json(note, base) for note in account.notes.values()],
            "tasks": [task_json(task, base) for task in account.tasks.values()],
        }
    )


@router.post("/reset")
async def reset(account: Account) -> Response:
    account.reset()
    return Response(status_code=204)


@router.get("/faults")
async def read_faults(account: Account) -> JSONResponse:
    return JSONResponse(account.faults.model_dump())


@router.post("/faults")
async def update_faults(body: JsonBody, account: Account) -> Response:
    """A partial update; `seed` and `block_now_seconds` are actions, not settings."""
    if not isinstance(body, dict):
        raise HTTPException(400, "Expected a JSON object")
    update: dict[str, Any] = dict(body)
    seed = update.pop("seed", None)
    block_now_seconds = update.pop("block_now_seconds", None)
    if not isinstance(block_now_seconds, int | float | None) or isinstance(block_now_seconds, bool):
        raise HTTPException(400, "block_now_seconds must be a number")
    try:
        faults = Faults.model_validate(account.faults.model_dump() | update)
    except ValidationError as error:
        return invalid_settings("Invalid faults", error)
    account.faults = faults
    if seed is not None:
        account.rng.seed(seed)
    if block_now_seconds:
        account.traffic.block(time.monotonic(), block_now_seconds)
    return JSONResponse(faults.model_dump())


@router.delete("/faults")
async def clear_faults(account: Account) -> JSONResponse:
    account.faults = Faults()
    account.traffic.blocked_until = 0.0
    return JSONResponse(account.faults.model_dump())


@router.post("/leads/{lead_id:int}/status")
async def move_lead_like_a_manager(
    lead_id: int, body: JsonBody, account: Account, base: BaseUrl
) -> JSONResponse:
    lead = account.leads.get(lead_id)
    if lead is None:
        raise HTTPException(404, f"Lead {lead_id} not found")
    reader = ItemReader(body, "0")
    if not reader.has("status_id"):
        raise reader.problem("status_id", "This field is required", "NotBlank")
    pipeline_id, status_id = read_stage(reader, account, lead)
    emit_webhook = reader.data.get("emit_webhook", True)
    if not isinstance(emit_webhook, bool):
        raise reader.problem("emit_webhook", "Must be a boolean", "InvalidType")
    move = move_lead(account, lead, pipeline_id, status_id, unix_now())
    # `"emit_webhook": false` plays a webhook amoCRM never delivered: the event log still has it.
    if emit_webhook:
        announce_status_changes(account, [move])
    return EscapingJSONResponse(lead_json(lead, account, base, with_contacts=True))


@router.delete("/leads/{lead_id:int}")
async def delete_lead_like_a_manager(lead_id: int, account: Account) -> Response:
    if lead_id not in account.leads:
        raise HTTPException(404, f"Lead {lead_id} not found")
    account.delete_lead(lead_id)
    return Response(status_code=204)


@router.delete("/custom_fields/{entity}/{field_id:int}")
async def delete_custom_field(entity: str, field_id: int, account: Account) -> Response:
    """Delete a field as a manager can in amoCRM's settings; a reset brings it back."""
    fields = account.custom_fields.get(entity)
    if fields is None or not any(custom_field.id == field_id for custom_field in fields):
        raise HTTPException(404, f"No field {field_id} in {entity}")
    account.custom_fields[entity] = [f for f in fields if f.id != field_id]
    return Response(status_code=204)


@router.post("/contacts")
async def seed_contacts(body: JsonBody, account: Account) -> JSONResponse:
    """Seed a known person: one contact object gives {"id"}, an array gives {"ids"}."""
    if isinstance(body, list):
        return JSONResponse({"ids": [_seed_contact(item, account) for item in body]})
    return JSONResponse({"id": _seed_contact(body, account)})


def _seed_contact(item: JSON, account: SandboxAccount) -> int:
    draft = read_contact(ItemReader(item, "0"), account)
    return add_contact(account, draft, unix_now()).id
