"""What crosses the Temporal boundary: a submission and a lead workflow's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FailureKind(StrEnum):
    """Why a lead's step failed: the type an amoCRM activity failed with, a request of the
    operator's that the workflow refused, or OTHER for any other failure (the message then
    names its type). Every stored spelling reads back: an unknown one is OTHER."""

    OUTCOME_UNKNOWN = "AmoOutcomeUnknown"
    RATE_LIMITED = "AmoRateLimited"
    BLOCKED = "AmoBlocked"
    AUTH = "AmoAuthError"
    REJECTED = "AmoRejected"
    TOO_MANY_REQUESTS = "TooManyRequests"
    NO_LEAD_YET = "NoLeadYet"
    OTHER = "Other"

    @classmethod
    def _missing_(cls, value: object) -> FailureKind:
        return cls.OTHER


class Step(StrEnum):
    """Where a lead workflow is; the UI and `GET /api/leads/{key}` show it."""

    RECEIVED = "received"
    SEARCHING = "searching"
    CREATING = "creating"
    CREATED = "created"
    UPDATING = "updating"
    UPDATED = "updated"
    WAITING_RETRY = "waiting-retry"
    FAILED = "failed"
    # An operator set the parked submission aside (signal `skip`).
    SKIPPED = "skipped"
    DONE = "done"


@dataclass
class Submission:
    """One accepted landing form, normalised at the edge."""

    submission_id: str
    form: str
    received_at: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    comment: str | None = None
    source: str | None = None
    page: str | None = None
    referrer: str | None = None
    utm: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    # Paths of free-text fields cut to limits.MAX_FREE_TEXT_CHARS at the edge.
    truncated: list[str] = field(default_factory=list)


@dataclass
class Route:
    """Where a form's leads go in amoCRM; None means amoCRM's default (main pipeline)."""

    pipeline_id: int | None
    status_id: int | None
    tags: list[str]
    lead_name: str
    # The manager of a new lead and contact; None leaves it to amoCRM.
    responsible_user_id: int | None = None


@dataclass
class LeadError:
    kind: FailureKind
    message: str
    at: str
    submission_id: str | None = None


@dataclass
class DeadLetter:
    """A submission that could not be kept: the whole of it is in the history of `run_id`."""

    submission_id: str
    form: str
    received_at: str
    reason: str
    run_id: str


class OperatorRequestKind(StrEnum):
    RESYNC = "resync"
    NOTE = "note"


@dataclass
class OperatorRequest:
    """`resync` (re-read amoCRM) or `note` (add `text` to the lead), sent by a signal."""

    kind: OperatorRequestKind
    text: str | None = None


@dataclass
class SkippedSubmission:
    """A parked submission an operator set aside; cut when it was large (whole in history)."""

    submission: Submission
    error: LeadError | None
    at: str


@dataclass
class LeadStart:
    lead_key: str
    quiet_window_seconds: float
    carried: LeadState | None = None
    # Continue-as-new after this many submissions, before the history grows large.
    submissions_per_run: int = 100


@dataclass
class LeadState:
    """The query answer, and what continue-as-new carries to the next run."""

    lead_key: str
    step: Step = Step.RECEIVED
    contact_id: int | None = None
    lead_id: int | None = None
    # The form pipeline the known lead serves; None is amoCRM's default (main) pipeline.
    lead_route_pipeline_id: int | None = None
    main_pipeline_id: int | None = None
    submissions_seen: int = 0
    submissions_processed: int = 0
    duplicates_dropped: int = 0
    pending: list[Submission] = field(default_factory=list)
    processed_ids: list[str] = field(default_factory=list)
    last_error: LeadError | None = None
    operator_requests: list[OperatorRequest] = field(default_factory=list)
    runs: int = 1
    submissions_cut: int = 0
    # The newest dead letters (at most `limits.DEAD_LETTERS_KEPT`); all are counted.
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dead_lettered: int = 0
    # The pending submission waiting for an operator's retry or skip, across continue-as-new.
    parked_submission_id: str | None = None
    # The newest submissions set aside by `skip` (at most `limits.SKIPPED_KEPT`); all counted.
    skipped: list[SkippedSubmission] = field(default_factory=list)
    submissions_skipped: int = 0
