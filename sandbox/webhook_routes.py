"""Control endpoints for the webhooks the sandbox sends: where to, what went out, send again."""

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from sandbox.api_routes import Account, JsonBody
from sandbox.responses import invalid_settings
from sandbox.state import SandboxAccount

router = APIRouter(prefix="/_sandbox/webhooks")


def _subscriptions_json(account: SandboxAccount) -> JSONResponse:
    return JSONResponse(
        [subscription.model_dump() for subscription in account.webhooks.subscriptions]
    )


@router.get("")
async def list_subscriptions(account: Account) -> JSONResponse:
    return _subscriptions_json(account)


@router.post("")
async def subscribe(body: JsonBody, account: Account) -> Response:
    """One subscription object or an array of them; answers with all subscriptions."""
    settings = body if isinstance(body, list) else [body]
    if not all(isinstance(one, dict) for one in settings):
        raise HTTPException(400, "Expected a JSON object or an array of objects")
    try:
        account.webhooks.subscribe(settings)
    except ValidationError as error:
        return invalid_settings("Invalid webhook subscription", error)
    return _subscriptions_json(account)


@router.delete("")
async def unsubscribe_all(account: Account) -> Response:
    account.webhooks.subscriptions.clear()
    return Response(status_code=204)


@router.get("/deliveries")
async def list_deliveries(account: Account) -> JSONResponse:
    return JSONResponse([delivery.as_json() for delivery in account.webhooks.deliveries])


@router.post("/redeliver")
async def redeliver(body: JsonBody, account: Account) -> JSONResponse:
    """Send delivery `index`'s exact body again, as amoCRM's retries and duplicates do."""
    index = body.get("index") if isinstance(body, dict) else None
    deliveries = account.webhooks.deliveries
    if isinstance(index, bool) or not isinstance(index, int):
        raise HTTPException(400, "index must be an integer")
    if not 0 <= index < len(deliveries):
        raise HTTPException(404, f"No delivery {index}")
    return JSONResponse(account.webhooks.redeliver(index).as_json())
