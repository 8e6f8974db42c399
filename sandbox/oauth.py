"""amoCRM's OAuth2 token endpoint, and the control endpoints that seed and inspect it."""

import time

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox.api_routes import Account, JsonBody
from sandbox.oauth_state import OAuthRefusal, OAuthServer
from sandbox.responses import invalid_settings, problem

router = APIRouter()

ONE_DAY_SECONDS = 86400


class OAuthSeed(BaseModel):
    """An integration, and the first credentials its admin would copy from amoCRM."""

    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: str
    redirect_uri: str
    refresh_token: str | None = None
    authorization_code: str | None = None
    access_token_ttl: int = Field(default=ONE_DAY_SECONDS, gt=0)
    revoke_old_immediately: bool = False


@router.post("/oauth2/access_token")
async def access_token(body: JsonBody, account: Account) -> Response:
    if account.oauth is None:
        return _refused(OAuthRefusal(401, "Client authentication failed"))
    if not isinstance(body, dict):
        raise HTTPException(400, "Expected a JSON object")
    try:
        return JSONResponse(account.oauth.grant(body, time.time()))
    except OAuthRefusal as refusal:
        return _refused(refusal)


def _refused(refusal: OAuthRefusal) -> Response:
    # amoCRM's OAuth errors carry a generic detail; only `hint` says what went wrong.
    return problem(refusal.status, "Incorrect data", {"hint": refusal.hint})


@router.post("/_sandbox/oauth")
async def seed_oauth(body: JsonBody, account: Account) -> Response:
    """Replaces the integration: earlier tokens and the grant record are forgotten."""
    try:
        seed = OAuthSeed.model_validate(body)
    except ValidationError as error:
        return invalid_settings("Invalid OAuth integration", error)
    server = OAuthServer(
        client_id=seed.client_id,
        client_secret=seed.client_secret,
        redirect_uri=seed.redirect_uri,
        access_token_ttl=seed.access_token_ttl,
        revoke_old_immediately=seed.revoke_old_immediately,
    )
    if seed.refresh_token:
        server.seed_refresh_token(seed.refresh_token)
    if seed.authorization_code:
        server.codes.add(seed.authorization_code)
    account.oauth = server
    return JSONResponse(server.as_json())


@router.get("/_sandbox/oauth")
async def read_oauth(account: Account) -> JSONResponse:
    return JSONResponse(account.oauth.as_json() if account.oauth else None)


@router.post("/_sandbox/oauth/expire")
async def expire_access_tokens(account: Account) -> Response:
    """Every access token issued so far expires now, as if amoCRM's clock ran ahead."""
    if account.oauth is None:
        raise HTTPException(404, "No OAuth integration; POST /_sandbox/oauth first")
    account.oauth.expire_access_tokens(time.time())
    return Response(status_code=204)
