"""`POST /api/landing/{form}`: accept a landing form and hand it to its person's workflow."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.delivery import Parcel, Route, payload_bytes, submission_parcel
from api.deps import DeliveryDep, MetricsDep, SettingsDep, Slug
from api.intake import FieldProblem, InvalidForm, build_submission, decode_body
from api.throttle import client_throttled, person_throttled
from leadrelay.contact import contact_key, lead_workflow_id
from leadrelay.limits import MAX_BODY_BYTES, MAX_SUBMISSION_PAYLOAD_BYTES, TEMPORAL_MAX_ID_CHARS
from leadrelay.tracing import annotate_span

log = logging.getLogger(__name__)

router = APIRouter(tags=["intake"])


class Accepted(BaseModel):
    lead_key: str
    workflow_id: str
    submission_id: str
    delivered_via: Route


class Rejected(BaseModel):
    detail: str
    errors: list[dict[str, str]]


class BodyTooLarge(Exception):
    pass


@router.post(
    "/api/landing/{form}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={413: {"model": Rejected}, 422: {"model": Rejected}, 429: {"model": Rejected}},
)
async def submit_landing_form(
    form: Slug,
    request: Request,
    settings: SettingsDep,
    delivery: DeliveryDep,
    metrics: MetricsDep,
) -> Accepted | JSONResponse:
    """202 once the submission is durably in its workflow, or in the outbox if Temporal
    did not take it within the ack deadline."""
    throttled = client_throttled(request)
    if throttled is not None:
        return throttled
    try:
        raw = await _read_limited(request)
        body = decode_body(raw, request.headers.get("content-type", "application/json"))
        trap = _honeypot(request, form)
        caught = bool(trap and str(body.pop(trap, "") or "").strip())
        submission = build_submission(
            form,
            body,
            region=settings.leadrelay_phone_region,
            received_at=datetime.now(UTC).isoformat(),
        )
    except BodyTooLarge:
        return _rejected(
            status.HTTP_413_CONTENT_TOO_LARGE,
            [FieldProblem("body", f"body is larger than {MAX_BODY_BYTES} bytes")],
        )
    except InvalidForm as err:
        return _rejected(status.HTTP_422_UNPROCESSABLE_CONTENT, err.problems)
    key = contact_key(submission.phone, submission.email)
    annotate_span(form=form, workflow_id=lead_workflow_id(key))
    parcel = submission_parcel(key, submission)
    if caught:
        metrics.honeypot_dropped.inc()
        route = Route.TEMPORAL  # what a bot sees is what a person sees
    else:
        refused = _refusal(parcel, contact_field="phone" if submission.phone else "email")
        if refused is not None:
            return refused
        throttled = person_throttled(request, key)
        if throttled is not None:
            return throttled
        route = await delivery.deliver([parcel])
        metrics.leads_accepted.labels(route).inc()
    annotate_span(delivered_via=route)
    return Accepted(
        lead_key=key,
        workflow_id=lead_workflow_id(key),
        submission_id=submission.submission_id,
        delivered_via=route,
    )


def _honeypot(request: Request, form: str) -> str | None:
    """The form's honeypot field from the forms file; none when the file cannot be read."""
    try:
        spec = request.app.state.forms.current().forms.get(form)
    except Exception as err:  # a broken forms file must not stop intake
        log.warning("forms file unreadable, honeypots off: %s", err)
        return None
    return spec.honeypot if spec is not None else None


def _refusal(parcel: Parcel, *, contact_field: str) -> JSONResponse | None:
    """What Temporal would refuse is answered here, before the 202."""
    if len(parcel.workflow_id) > TEMPORAL_MAX_ID_CHARS:
        return _rejected(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [FieldProblem(contact_field, f"too long for a workflow id ({TEMPORAL_MAX_ID_CHARS})")],
        )
    size = payload_bytes(parcel)
    if size > MAX_SUBMISSION_PAYLOAD_BYTES:
        reason = f"submission is {size} bytes once encoded, over {MAX_SUBMISSION_PAYLOAD_BYTES}"
        return _rejected(status.HTTP_413_CONTENT_TOO_LARGE, [FieldProblem("body", reason)])
    return None


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _rejected(code: int, problems: list[FieldProblem]) -> JSONResponse:
    detail = "; ".join(f"{p.field}: {p.reason}" for p in problems)
    errors = [{"field": p.field, "reason": p.reason} for p in problems]
    return JSONResponse(status_code=code, content={"detail": detail, "errors": errors})
