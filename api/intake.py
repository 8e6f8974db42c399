"""Turning a landing form body into a Submission, with reasons for every rejection.

Every bound here is in `leadrelay.limits`; a body that breaks one is a 4xx naming the
field, never a 5xx, and never a 202 that Temporal would later refuse.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl

from leadrelay import limits
from leadrelay.contact import InvalidContact, normalize_email, normalize_phone
from leadrelay.lead_fields import UTM_FIELDS
from leadrelay.models import Submission
from leadrelay.text import replace_surrogates

TEXT_FIELDS = ("name", "comment", "source", "page", "referrer")
FREE_TEXT_FIELDS = frozenset({"comment"})
NESTED_UTM = "utmParams"

# A JSON string (escapes included) or a bracket: enough to measure nesting before parsing.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


@dataclass
class FieldProblem:
    field: str
    reason: str


class InvalidForm(Exception):
    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class _LongNumber:
    """Stands in for a number too long to keep, so the walk can name its field."""

    text: str


def decode_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """JSON or urlencoded into a dict within the limits; anything else is a reason to reject."""
    media_type = content_type.split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidForm([FieldProblem("body", "body is not UTF-8")]) from err
    if media_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=limits.MAX_FIELDS)
        except ValueError as err:
            raise InvalidForm(
                [FieldProblem("body", f"more than {limits.MAX_FIELDS} fields")]
            ) from err
        body: Any = dict(pairs)
    else:
        body = _parse_json(text)
    if not isinstance(body, dict):
        raise InvalidForm([FieldProblem("body", "JSON body must be an object")])
    problems: list[FieldProblem] = []
    counter = _Counter()
    cleaned: dict[str, Any] = _clean(body, "", problems, counter)
    if counter.nodes > limits.MAX_FIELDS:
        problems.append(FieldProblem("body", f"more than {limits.MAX_FIELDS} fields"))
    if problems:
        raise InvalidForm(problems[:20])
    return cleaned


def _parse_json(text: str) -> Any:
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        bracket = token[0]
        if bracket in "[{":
            depth += 1
            if depth > limits.MAX_JSON_DEPTH:
                raise InvalidForm(
                    [FieldProblem("body", f"nested deeper than {limits.MAX_JSON_DEPTH} levels")]
                )
        elif bracket in "]}":
            depth -= 1
    try:
        return json.loads(
            text,
            parse_int=_number(int),
            parse_float=_number(float),
            parse_constant=_no_constant,
        )
    except (json.JSONDecodeError, _NotJson) as err:
        raise InvalidForm([FieldProblem("body", f"body is not valid JSON: {err}")]) from err


class _NotJson(ValueError):
    pass


def _number(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return convert(text) if len(text) <= limits.MAX_NUMBER_DIGITS else _LongNumber(text)

    return parse


def _no_constant(text: str) -> Any:
    raise _NotJson(f"{text} is not a JSON number")


class _Counter:
    nodes = 0


def _clean(value: Any, path: str, problems: list[FieldProblem], counter: _Counter) -> Any:
    """Lone surrogates become U+FFFD (browsers send them when a script cuts an emoji in
    half); long numbers, long keys and too many fields are problems named by path."""
    if isinstance(value, str):
        return replace_surrogates(value)
    if isinstance(value, _LongNumber):
        problems.append(
            FieldProblem(path or "body", f"number longer than {limits.MAX_NUMBER_DIGITS} digits")
        )
        return None
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for key, inner in value.items():
            counter.nodes += 1
            name = replace_surrogates(key)
            inner_path = f"{path}.{name}" if path else name
            if len(name) > limits.MAX_KEY_CHARS:
                problems.append(
                    FieldProblem(
                        inner_path[: limits.MAX_KEY_CHARS] + "…",
                        f"field name longer than {limits.MAX_KEY_CHARS} characters",
                    )
                )
                continue
            cleaned[name] = _clean(inner, inner_path, problems, counter)
        return cleaned
    if isinstance(value, list):
        counter.nodes += len(value)
        return [_clean(item, f"{path}[{n}]", problems, counter) for n, item in enumerate(value)]
    return value


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
    truncated: list[str] = []
    texts = {
        name: _short_or_cut(name, fields.pop(name, None), problems, truncated)
        for name in TEXT_FIELDS
    }
    utm = _utm(fields, problems)
    if problems:
        raise InvalidForm(problems)
    submission = Submission(
        submission_id="",
        form=form,
        received_at=received_at,
        phone=phone,
        email=email,
        utm=utm,
        extras=_cut_free_text(fields, "", truncated),
        truncated=truncated,
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
    if field == "phone" and len(text) > limits.MAX_PHONE_CHARS:
        problems.append(FieldProblem(field, f"longer than {limits.MAX_PHONE_CHARS} characters"))
        return None
    try:
        return normalize(text)
    except InvalidContact as err:
        problems.append(FieldProblem(field, err.reason))
        return None


def _short_or_cut(
    name: str, value: Any, problems: list[FieldProblem], truncated: list[str]
) -> str | None:
    """Free text is cut to MAX_FREE_TEXT_CHARS; a longer short value is a problem."""
    text = _text(value)
    if text is None:
        return None
    if name in FREE_TEXT_FIELDS:
        return _cut(text, name, truncated)
    if len(text) > limits.MAX_VALUE_CHARS:
        problems.append(FieldProblem(name, f"longer than {limits.MAX_VALUE_CHARS} characters"))
        return None
    return text


def _cut(text: str, path: str, truncated: list[str]) -> str:
    if len(text) <= limits.MAX_FREE_TEXT_CHARS:
        return text
    truncated.append(path)
    return text[: limits.MAX_FREE_TEXT_CHARS]


def _cut_free_text(value: Any, path: str, truncated: list[str]) -> Any:
    if isinstance(value, str):
        return _cut(value, path, truncated)
    if isinstance(value, dict):
        return {
            key: _cut_free_text(inner, f"{path}.{key}" if path else key, truncated)
            for key, inner in value.items()
        }
    if isinstance(value, list):
        return [_cut_free_text(item, f"{path}[{n}]", truncated) for n, item in enumerate(value)]
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    text = str(value).strip()
    return text or None


def _utm(fields: dict[str, Any], problems: list[FieldProblem]) -> dict[str, str]:
    """UTM tags come flat (`utm_source=`) or nested under `utmParams`; flat ones win."""
    nested = fields.pop(NESTED_UTM, None)
    utm: dict[str, str] = {}
    if isinstance(nested, dict):
        nested = dict(nested)
        for key in UTM_FIELDS:
            value = _text(nested.pop(key, None))
            if value:
                utm[key] = value
        if nested:
            fields[NESTED_UTM] = nested
    elif nested is not None:
        fields[NESTED_UTM] = nested
    for key in UTM_FIELDS:
        value = _text(fields.pop(key, None))
        if value:
            utm[key] = value
    for key, value in utm.items():
        if len(value) > limits.MAX_VALUE_CHARS:
            problems.append(FieldProblem(key, f"longer than {limits.MAX_VALUE_CHARS} characters"))
    return utm


def _fingerprint(submission: Submission) -> str:
    """Identical submissions get one id, so repeats of a click are dropped, not re-sent."""
    content = asdict(submission)
    del content["submission_id"], content["received_at"], content["truncated"]
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
