"""`GET /api/leads/{lead_key}`: a lead's state, answered by its workflow."""

from __future__ import annotations

from typing import assert_never

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from api.auth import AdminOnly
from api.deps import SettingsDep, TemporalDep
from leadrelay.contact import (
    InvalidContact,
    KeyKind,
    contact_key,
    key_kind,
    lead_workflow_id,
    normalize_email,
    normalize_phone,
)
from leadrelay.models import LeadError, LeadState
from workflows.lead import LeadWorkflow

# Whether a phone or an email belongs to a lead is personal data: admins only.
router = APIRouter(tags=["leads"], dependencies=[AdminOnly])


class LeadView(BaseModel):
    lead_key: str
    workflow_id: str
    step: str
    amocrm_contact_id: int | None
    amocrm_lead_id: int | None
    submissions_seen: int
    submissions_processed: int
    submissions_pending: int
    duplicates_dropped: int
    submissions_cut: int
    dead_lettered: int
    last_error: LeadError | None

    @classmethod
    def of(cls, state: LeadState) -> LeadView:
        return cls(
            lead_key=state.lead_key,
            workflow_id=lead_workflow_id(state.lead_key),
            step=state.step,
            amocrm_contact_id=state.contact_id,
            amocrm_lead_id=state.lead_id,
            submissions_seen=state.submissions_seen,
            submissions_processed=state.submissions_processed,
            submissions_pending=len(state.pending),
            duplicates_dropped=state.duplicates_dropped,
            submissions_cut=state.submissions_cut,
            dead_lettered=state.dead_lettered,
            last_error=state.last_error,
        )


@router.get("/api/leads/{lead_key}", response_model=LeadView)
async def get_lead(lead_key: str, settings: SettingsDep, temporal: TemporalDep) -> LeadView:
    try:
        match key_kind(lead_key):
            case KeyKind.EMAIL:
                key = contact_key(None, normalize_email(lead_key))
            case KeyKind.PHONE:
                key = contact_key(normalize_phone(lead_key, settings.leadrelay_phone_region), None)
            case unknown:
                assert_never(unknown)
    except InvalidContact as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    # get_workflow_handle_for(LeadWorkflow.run, ...) takes a union mypy cannot infer from.
    handle = temporal.get_workflow_handle(lead_workflow_id(key), result_type=LeadState)
    try:
        state = await handle.query(LeadWorkflow.state)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lead for {key}") from err
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Temporal: {err}") from err
    except RuntimeError as err:  # a lazy client that cannot connect
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Temporal: {err}") from err
    return LeadView.of(state)
