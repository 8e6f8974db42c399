"""Custom search attributes that make every lead findable in the Temporal UI and CLI,
e.g. `LeadPhone="+77771112233"` or `LeadState="failed"`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

from leadrelay.models import Step

LEAD_KEY = SearchAttributeKey.for_keyword("LeadKey")
LEAD_PHONE = SearchAttributeKey.for_keyword("LeadPhone")
LEAD_EMAIL = SearchAttributeKey.for_keyword("LeadEmail")
LEAD_FORM = SearchAttributeKey.for_keyword("LeadForm")
AMO_LEAD_ID = SearchAttributeKey.for_keyword("AmoLeadId")
AMO_CONTACT_ID = SearchAttributeKey.for_keyword("AmoContactId")
LEAD_STATE = SearchAttributeKey.for_keyword("LeadState")

ALL = (LEAD_KEY, LEAD_PHONE, LEAD_EMAIL, LEAD_FORM, AMO_LEAD_ID, AMO_CONTACT_ID, LEAD_STATE)

# What an operator filters on; the transient steps in between keep the previous value.
LEAD_STATES = {
    Step.RECEIVED: "received",
    Step.SEARCHING: "searching",
    Step.CREATED: "created",
    Step.UPDATED: "updated",
    Step.WAITING_RETRY: "waiting-retry",
    Step.FAILED: "failed",
    Step.SKIPPED: "skipped",
    Step.DONE: "done",
}


def dev_server_args() -> list[str]:
    """`temporal server start-dev` arguments that register every attribute."""
    return [arg for key in ALL for arg in ("--search-attribute", f"{key.name}=Keyword")]
