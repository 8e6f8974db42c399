"""JSON logs, one object per line, with people's phones and emails masked.

The raw values live only in Temporal and amoCRM: logs are shipped and kept in places with
wider access, so every line is masked before it is written, whoever logged it.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

# The @ may be percent-encoded (`query=aigerim%40example.com` in a logged URL).
_EMAIL = r"(?P<email>(?P<first>[\w%+-])[\w.%+-]*?(?:@|%40)(?P<domain>[\w-]+(?:\.[\w-]+)+))"
# Ten or more digits, optionally grouped by spaces, hyphens or parentheses as people write
# phones (`8 (777) 111-22-33`), also percent-encoded (`8%20777%20111`). A date-time
# such as `2026-01-01 12:00` is not a phone.
_GAP = r"(?:[ ()-]|%2[089Dd])"
_PHONE = (
    r"(?P<phone>(?<!\d)(?!\d{4}-\d{2}-\d{2})(?:\+|%2[Bb])?(?:\(|%28)?\d(?:"
    + _GAP
    + r"{0,2}\d){9,})(?!\d)"
)
# The webhook secret travels in the URL, so it would reach the access log.
_TOKEN = r"(?P<token_key>[?&]token=)[^&\s\"']+"
# Run ids are UUIDs that may hold ten digits in a row: matched first, kept as they are.
_UUID = r"(?P<uuid>\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b)"
_SENSITIVE = re.compile("|".join((_UUID, _EMAIL, _PHONE, _TOKEN)))


def _masked(match: re.Match[str]) -> str:
    if match["email"]:
        return f"{match['first']}***@{match['domain']}"
    if match["phone"]:
        phone = re.sub(r"%[0-9A-Fa-f]{2}", " ", match["phone"])
        digits = re.sub(r"\D", "", phone)
        plus = "+" if match["phone"].startswith(("+", "%2B", "%2b")) else ""
        return f"{plus}{digits[:4]}***{digits[-4:]}"
    if match["token_key"]:
        return f"{match['token_key']}***"
    return match[0]


def mask(text: str) -> str:
    """`+77771112233` → `+7777***2233`, `aigerim@example.com` → `a***@example.com`."""
    return _SENSITIVE.sub(_masked, text)


class MaskingFilter(logging.Filter):
    """Renders the message with its args and masks it, so no arg escapes unmasked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            # A malformed call must still be written, and masked like any other.
            message = f"{record.msg} {record.args}"
        record.msg = mask(message)
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": _trace_id(),
        }
        line.update(_temporal_fields(record))
        if record.exc_info:
            line["exception"] = mask(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = mask(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)


def _trace_id() -> str | None:
    """The OpenTelemetry trace the line was written in; null outside any (or untraced)."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def _temporal_fields(record: logging.LogRecord) -> dict[str, str]:
    """What `workflow.logger` and `activity.logger` put on the record as extras."""
    workflow: dict[str, Any] = getattr(record, "temporal_workflow", None) or {}
    activity: dict[str, Any] = getattr(record, "temporal_activity", None) or {}
    workflow_id = workflow.get("workflow_id") or activity.get("workflow_id")
    fields = {
        # Lead workflow ids are `lead-<phone or email>`.
        "workflow_id": mask(workflow_id) if workflow_id else None,
        "run_id": workflow.get("run_id") or activity.get("workflow_run_id"),
        "activity_type": activity.get("activity_type"),
    }
    return {name: value for name, value in fields.items() if value}


def configure_logging(level: str | int) -> None:
    """For a process's entry point: every record, ours or a library's, goes out as
    masked JSON on stderr."""
    handler = logging.StreamHandler()
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
