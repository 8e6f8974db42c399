"""Who a submission is from: normalised phone and email, and the contact key."""

from __future__ import annotations

import re
from enum import StrEnum

import phonenumbers

from leadrelay import limits

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")


class InvalidContact(ValueError):
    """A phone or email that cannot identify a person; `field` names which one."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def normalize_phone(raw: str, region: str) -> str:
    """E.164 form: `8 777 111 22 33`, `+7(777)111-22-33` and `7771112233` are one number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as err:
        raise InvalidContact("phone", f"cannot parse {raw!r} as a phone number") from err
    if not phonenumbers.is_valid_number(number):
        raise InvalidContact("phone", f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """RFC 5321 lengths: 254 characters in all, 64 before the @."""
    email = raw.strip().lower()
    if len(email) > limits.MAX_EMAIL_CHARS:
        raise InvalidContact("email", f"longer than {limits.MAX_EMAIL_CHARS} characters")
    if len(email.rpartition("@")[0]) > limits.MAX_EMAIL_LOCAL_CHARS:
        raise InvalidContact(
            "email", f"more than {limits.MAX_EMAIL_LOCAL_CHARS} characters before the @"
        )
    if not _EMAIL.match(email):
        raise InvalidContact("email", f"{raw!r} is not a well-formed email address")
    return email


def same_phone(stored: str, e164: str, region: str) -> bool:
    """amoCRM keeps phones as free text, so compare both sides normalised."""
    try:
        return normalize_phone(stored, region) == e164
    except InvalidContact:
        return False


def national_digits(e164: str) -> str:
    """What to give amoCRM's full-text search: it matches stored phones in any format."""
    return str(phonenumbers.parse(e164).national_number)


def contact_key(phone: str | None, email: str | None) -> str:
    """The E.164 phone when there is one, else the email: one person, one workflow."""
    if phone:
        return phone
    if email:
        return email
    raise InvalidContact("phone", "a phone or an email is required")


class KeyKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"


def key_kind(key: str) -> KeyKind:
    """Whether a contact key (or what a caller typed to name one) is a phone or an email.

    An email always has an "@" and a phone never does; an email may start with "+"."""
    return KeyKind.EMAIL if "@" in key else KeyKind.PHONE


def lead_workflow_id(key: str) -> str:
    return f"lead-{key}"
