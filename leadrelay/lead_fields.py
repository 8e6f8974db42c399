"""What a submission writes into amoCRM's fields: UTM first touch, form fields, the budget.

The forms file says which submission field goes to which amoCRM field (`FieldMapping`); the
account's catalogue says each field's type; `fill_fields` converts and keeps what fits. A
value that does not fit leaves out that one field and is listed in `refused`, never more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from leadrelay.custom_fields import (
    CustomField,
    FieldEntity,
    FieldValue,
    RefusedValue,
    ValueRefused,
    convert,
    is_blank,
    shown,
    to_number,
    value_at,
)
from leadrelay.models import Submission

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
PRICE_LABEL = "Бюджет"

FieldLookup = Callable[[FieldEntity, int], CustomField | None]
"""The account's field with this id, or None when the account has no such field."""


@dataclass
class FieldMapping:
    """amoCRM field id → where its value comes from, for one form."""

    utm: dict[int, str] = field(default_factory=dict)  # → a UTM name (utm_source ...)
    lead: dict[int, str] = field(default_factory=dict)  # → a submission field (dotted path)
    contact: dict[int, str] = field(default_factory=dict)
    price_field: str | None = None

    def wanted(self, submission: Submission) -> dict[FieldEntity, list[int]]:
        """The catalogue entries converting this submission needs: the fields it has values
        for, by entity. Empty when there is nothing to convert."""
        wanted: dict[FieldEntity, list[int]] = {}
        for entity, field_id, _, _ in self.sources(submission):
            wanted.setdefault(entity, []).append(field_id)
        return {entity: sorted(set(ids)) for entity, ids in wanted.items()}

    def sources(self, submission: Submission) -> Iterator[tuple[FieldEntity, int, str, Any]]:
        """(entity, field id, target, submitted value) for every mapped field with a value;
        the target says which list of `LeadFields` the value goes to."""
        fields = submission_fields(submission)
        for targets, target, source in (
            (self.utm, "utm", submission.utm),
            (self.lead, "lead", fields),
            (self.contact, "contact", fields),
        ):
            entity: FieldEntity = "contacts" if target == "contact" else "leads"
            for field_id, path in targets.items():
                raw = value_at(source, path)
                if not is_blank(raw):
                    yield entity, field_id, target, raw


@dataclass
class LeadFields:
    """Converted values for a lead and its contact, and what was refused."""

    utm: list[FieldValue] = field(default_factory=list)
    lead: list[FieldValue] = field(default_factory=list)
    contact: list[FieldValue] = field(default_factory=list)
    price: int | None = None
    refused: list[RefusedValue] = field(default_factory=list)

    def without(self, lead_field_ids: set[int], contact_field_ids: set[int]) -> LeadFields:
        """These fields left out, each named in `refused` as amoCRM's refusal."""
        refused = list(self.refused)
        for entity_values, dropped in (
            (self.utm, lead_field_ids),
            (self.lead, lead_field_ids),
            (self.contact, contact_field_ids),
        ):
            refused.extend(
                RefusedValue(v.field_id, _label(v), _values_text(v), "amoCRM отклонил")
                for v in entity_values
                if v.field_id in dropped
            )
        return LeadFields(
            utm=[v for v in self.utm if v.field_id not in lead_field_ids],
            lead=[v for v in self.lead if v.field_id not in lead_field_ids],
            contact=[v for v in self.contact if v.field_id not in contact_field_ids],
            price=self.price,
            refused=refused,
        )


def submission_fields(submission: Submission) -> dict[str, Any]:
    """Every field of a submission by the name the form sent it under."""
    named = {
        "name": submission.name,
        "phone": submission.phone,
        "email": submission.email,
        "comment": submission.comment,
        "source": submission.source,
        "page": submission.page,
        "referrer": submission.referrer,
    }
    present = {key: value for key, value in named.items() if value is not None}
    return {**submission.extras, **submission.utm, **present}


def fill_fields(mapping: FieldMapping, submission: Submission, lookup: FieldLookup) -> LeadFields:
    filled = LeadFields()
    targets = {"utm": filled.utm, "lead": filled.lead, "contact": filled.contact}
    for entity, field_id, target, raw in mapping.sources(submission):
        custom_field = lookup(entity, field_id)
        if custom_field is None:
            filled.refused.append(
                RefusedValue(field_id, f"поле {field_id}", shown(raw), "нет в amoCRM")
            )
            continue
        try:
            converted = convert(custom_field, raw)
        except ValueRefused as refusal:
            filled.refused.append(
                RefusedValue(field_id, custom_field.name, shown(raw), refusal.reason)
            )
            continue
        targets[target].append(FieldValue(field_id, converted, custom_field.name))
    if mapping.price_field is not None:
        raw = value_at(submission_fields(submission), mapping.price_field)
        if not is_blank(raw):
            try:
                filled.price = _price(raw)
            except ValueRefused as refusal:
                filled.refused.append(RefusedValue(0, PRICE_LABEL, shown(raw), refusal.reason))
    return filled


def _price(raw: Any) -> int:
    """amoCRM's budget is a whole non-negative number."""
    number = to_number(raw)
    if number < 0:
        raise ValueRefused("меньше нуля")
    return round(number)


def _label(value: FieldValue) -> str:
    return value.name or f"поле {value.field_id}"


def _values_text(value: FieldValue) -> str:
    return ", ".join(shown(v.get("value", v.get("enum_id"))) for v in value.values)
