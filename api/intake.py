"""Turning a landing form body into a Submission, with reasons for every rejection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl

from leadrelay.contact import InvalidContact, normalize_email, normalize_phone
from leadrelay.lead_fields import UTM_FIELDS
from leadrelay.models import Submission

MAX_BODY_BYTES = 64 * 1024
TEXT_FIELDS = ("name", "comment", "source", "page", "referrer")
NESTED_UTM = "utmParams"


@dataclass
class FieldProblem:
    field: str
    reason: str


class InvalidForm(Exception):
    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems


def decode_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """JSON or urlencoded into a dict; anything else is a reason to reject."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidForm([FieldProblem("body", "form body is not UTF-8")]) from err
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidForm([FieldProblem("body", f"body is not valid JSON: {err}")]) from err
    if not isinstance(body, dict):
        raise InvalidForm([FieldProblem("body", "JSON body must be an object")])
    return body


def build_submission(
    form: str, body: dict[str, Any], *, region: str, received_at: str
) -> Submission:
    fields = dict(body)
    problems: list[FieldProblem] = []
    phone = _contact_field(
        fields.pop("phone", None), "phone", lambda v: normalize_phone(v, region), problems
    )
    email = _contact_field(fields.pop("email", None), "email", normalize_email, problems)
    if not problems and phone is None and email is None:
        problems.append(FieldProblem("phone", "a phone or an email is required"))
    if problems:
        raise InvalidForm(problems)
    texts = {name: _text(fields.pop(name, None)) for name in TEXT_FIELDS}
    utm = _utm(fields)
    submission = Submission(
        submission_id="",
        form=form,
        received_at=received_at,
        phone=phone,
        email=email,
        utm=utm,
        extras=fields,
        **texts,
    )
    submission.submission_id = _fingerprint(submission)
    return submission


def _contact_field(
    value: Any, field: str, normalize: Callable[[str], str], problems: list[FieldProblem]
) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return normalize(text)
    except InvalidContact as err:
        problems.append(FieldProblem(field, err.reason))
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    text = str(value).strip()
    return text or None


def _utm(fields: dict[str, Any]) -> dict[str, str]:
    """UTM tags come flat (`utm_source=`) or nested under `utmParams`; flat ones win."""
    nested = fields.pop(NESTED_UTM, None)
    utm: dict[str, str] = {}
    if isinstance(nested, dict):
        for key in UTM_FIELDS:
            value = _text(nested.pop(key, None))
            if value:
                utm[key] = value
        if nested:
            fields[NESTED_UTM] = nested
    for key in UTM_FIELDS:
        value = _text(fields.pop(key, None))
        if value:
            utm[key] = value
    return utm


def _fingerprint(submission: Submission) -> str:
    """Identical submissions get one id, so repeats of a click are dropped, not re-sent."""
    content = asdict(submission)
    del content["submission_id"], content["received_at"]
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
