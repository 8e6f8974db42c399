"""amoCRM failures, one class per way a caller must react."""

from __future__ import annotations


class AmoError(Exception):
    """Base class; `status` is None when no HTTP answer arrived."""

    def __init__(
        self, message: str, *, status: int | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class AmoOutcomeUnknown(AmoError):
    """Timeout, broken connection or 5xx: a write may or may not have been applied."""


class AmoRateLimited(AmoError):
    """HTTP 429. `retry_after` is what amoCRM asked for, when it said."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.retry_after = retry_after


class AmoBlocked(AmoError):
    """HTTP 403: the account or IP is blocked; all traffic must pause for minutes."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.retry_after = retry_after


class AmoAuthError(AmoError):
    """HTTP 401 (token revoked or expired) or 402 (account unpaid): a human must act."""


class AmoRejected(AmoError):
    """HTTP 400, 404 or 422: the request itself is wrong, so repeating it cannot help."""

    def __init__(
        self,
        message: str,
        *,
        problems: list[str] | None = None,
        paths: list[str] | None = None,
        rejected_items: list[str] | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.problems = problems or []
        # The `path` of each validation error, e.g. `0.custom_fields_values.2.field_id`.
        self.paths = paths or []
        # A batch's items that the validation errors name by their request_id.
        self.rejected_items = rejected_items or []
