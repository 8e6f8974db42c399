"""What stands in front of the amoCRM API: ledger, rate limit, block, auth and injected faults."""

import asyncio
import json
import time
from urllib.parse import unquote

from fastapi import Request, Response
from starlette.middleware.base import RequestResponseEndpoint

from sandbox.faults import Faults, ScriptedAnswer
from sandbox.responses import HalJSONResponse, ProblemJSONResponse, failure, nginx_page, problem
from sandbox.settings import SandboxSettings
from sandbox.state import JSON, LedgerEntry, SandboxAccount
from sandbox.traffic import Admission

API_PREFIX = "/api/v4/"
WRITE_METHODS = frozenset({"POST", "PATCH"})


async def api_gate(request: Request, call_next: RequestResponseEndpoint) -> Response:
    if not request.url.path.startswith(API_PREFIX):
        return await call_next(request)
    account: SandboxAccount = request.app.state.account
    settings: SandboxSettings = request.app.state.settings
    # Stamp, count and log the request before the first await, so that order is arrival order.
    entry = LedgerEntry(
        t=time.time(),
        method=request.method,
        path=request.url.path,
        query=unquote(request.url.query),
        body=None,
    )
    account.ledger.append(entry)
    request_number = len(account.ledger)
    admission = _admit(account, settings)
    entry.body = _json_or_none(await request.body())
    response = await _answer(request, call_next, account, settings.token, admission)
    entry.status = response.status_code
    if account.faults.latency_ms:
        await asyncio.sleep(account.faults.latency_ms / 1000)
    response.headers["X-Request-Id"] = f"sandbox-{request_number}"
    return response


def _admit(account: SandboxAccount, settings: SandboxSettings) -> Admission:
    faults = account.faults
    rate_limit = settings.rate_limit if faults.rate_limit is None else faults.rate_limit
    block_seconds = settings.block_seconds if faults.block_seconds is None else faults.block_seconds
    return account.traffic.admit(
        time.monotonic(),
        rate_limit=rate_limit,
        block_after_429s=settings.block_after_429s,
        block_seconds=block_seconds,
    )


async def _answer(
    request: Request,
    call_next: RequestResponseEndpoint,
    account: SandboxAccount,
    token: str,
    admission: Admission,
) -> Response:
    faults = account.faults
    if admission is Admission.BLOCKED:
        return nginx_page(403)
    if admission is Admission.RATE_LIMITED:
        return _too_many_requests(faults)
    if not _is_authorized(request, token, account):
        return problem(401, "Authorization token is missing, invalid or revoked")
    scripted = faults.take_scripted_answer(request.method, request.url.path)
    if scripted is not None:
        return _scripted_response(scripted)
    if faults.error_rate and account.rng.random() < faults.error_rate:
        return failure(faults.error_status)
    response = await call_next(request)
    if (
        request.method in WRITE_METHODS
        and response.status_code < 300
        and faults.lost_answer_rate
        and account.rng.random() < faults.lost_answer_rate
    ):
        # The write is applied; only the answer goes missing, like a gateway timeout after commit.
        async for _ in response.body_iterator:
            pass
        return nginx_page(504)
    return response


def _is_authorized(request: Request, token: str, account: SandboxAccount) -> bool:
    """The fixed token, or an OAuth access token that has not expired."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    oauth = account.oauth
    return credentials == token or (oauth is not None and oauth.accepts(credentials, time.time()))


def _too_many_requests(faults: Faults) -> Response:
    # Kommo documents a JSON body with `retry_after`; the PHP SDK's users see nginx HTML instead.
    if faults.rate_limit_style == "json":
        return problem(429, "Too many requests", {"retry_after": faults.retry_after})
    if faults.rate_limit_style == "html":
        return nginx_page(429, headers={"Retry-After": str(faults.retry_after)})
    return nginx_page(429)


def _scripted_response(scripted: ScriptedAnswer) -> Response:
    if scripted.body is None and scripted.status >= 400:
        return failure(scripted.status)
    if scripted.body is None:
        return Response(status_code=scripted.status)
    if isinstance(scripted.body, str):
        return Response(scripted.body, status_code=scripted.status, media_type="text/html")
    response_class = ProblemJSONResponse if scripted.status >= 400 else HalJSONResponse
    return response_class(scripted.body, status_code=scripted.status)


def _json_or_none(raw: bytes) -> JSON:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
