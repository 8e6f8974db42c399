"""`POST /api/landing/{form}`: accept a landing form and hand it to its person's workflow."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.delivery import Route, submission_parcel
from api.deps import DeliveryDep, MetricsDep, SettingsDep, Slug
from api.intake import MAX_BODY_BYTES, FieldProblem, InvalidForm, build_submission, decode_body
from leadrelay.contact import contact_key, lead_workflow_id
from leadrelay.tracing import annotate_span

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
    responses={413: {"model": Rejected}, 422: {"model": Rejected}},
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
    try:
        raw = await _read_limited(request)
        body = decode_body(raw, request.headers.get("content-type", "application/json"))
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
    route = await delivery.deliver([submission_parcel(key, submission)])
    annotate_span(delivered_via=route)
    metrics.leads_accepted.labels(route).inc()
    return Accepted(
        lead_key=key,
        workflow_id=lead_workflow_id(key),
        submission_id=submission.submission_id,
        delivered_via=route,
    )


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
