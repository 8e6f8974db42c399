"""amoCRM custom fields: the account's catalogue, and a submitted value converted to a field's
type. Pure: the worker caches the catalogues, workflows and activities convert with them.

amoCRM wants, in `custom_fields_values: [{"field_id": N, "values": [...]}]`:
text, textarea, url, tracking_data a string; numeric a number; checkbox a boolean; date a
unix time; select and radio the `enum_id` whose label matches (ignoring case); multiselect
several `enum_id`s. A value that does not fit is refused with a reason a manager can read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

FieldEntity = Literal["leads", "contacts"]

TEXT_TYPES = frozenset({"text", "textarea", "url", "tracking_data"})
NUMERIC_TYPES = frozenset({"numeric", "monetary"})
DATE_TYPES = frozenset({"date", "date_time", "birthday"})
SINGLE_CHOICE_TYPES = frozenset({"select", "radio"})
MULTI_CHOICE_TYPES = frozenset({"multiselect"})
CONVERTIBLE_TYPES = (
    TEXT_TYPES
    | NUMERIC_TYPES
    | DATE_TYPES
    | SINGLE_CHOICE_TYPES
    | MULTI_CHOICE_TYPES
    | {"checkbox"}
)
CHOICE_TYPES = SINGLE_CHOICE_TYPES | MULTI_CHOICE_TYPES

_TRUE = frozenset({"true", "1", "yes", "y", "on", "да"})
_FALSE = frozenset({"false", "0", "no", "n", "off", "нет"})
_SPACES = re.compile(r"[\s\u00a0\u202f]")


@dataclass
class EnumOption:
    id: int
    value: str


@dataclass
class CustomField:
    id: int
    name: str
    type: str
    code: str | None = None
    enums: list[EnumOption] = field(default_factory=list)

    def option_labelled(self, label: str) -> EnumOption | None:
        wanted = label.strip().casefold()
        return next((o for o in self.enums if o.value.strip().casefold() == wanted), None)


@dataclass
class CatalogueRequest:
    """The fields of one entity's catalogue that a submission needs."""

    entity: FieldEntity
    field_ids: list[int]


@dataclass
class FieldCatalogue:
    """Fields of one entity's catalogue as read from amoCRM.

    `covers` lists the ids that were looked for: an id there but not in `fields` does not
    exist in the account. None means the whole catalogue, so every id not in `fields` is absent.
    """

    entity: FieldEntity
    fields: list[CustomField]
    covers: list[int] | None = None


@dataclass
class FieldValue:
    """One `custom_fields_values` item, ready for amoCRM."""

    field_id: int
    values: list[dict[str, Any]]
    name: str = ""  # for the note, should amoCRM refuse it

    def as_json(self) -> dict[str, Any]:
        return {"field_id": self.field_id, "values": self.values}


@dataclass
class RefusedValue:
    """A submitted value that no field received, and why; the lead's note lists these."""

    field_id: int
    field_name: str
    value: str
    reason: str


class ValueRefused(ValueError):
    """The value does not fit the field; `reason` is meant for a manager."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_blank(raw: Any) -> bool:
    """Nothing was submitted: no value, not a refused one."""
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    return isinstance(raw, list | dict) and not raw


def convert(custom_field: CustomField, raw: Any) -> list[dict[str, Any]]:
    """The `values` list for this field, or ValueRefused. `raw` must not be blank."""
    kind = custom_field.type
    if kind in TEXT_TYPES:
        return [{"value": _text(raw)}]
    if kind in NUMERIC_TYPES:
        return [{"value": to_number(raw)}]
    if kind == "checkbox":
        return [{"value": _boolean(raw)}]
    if kind in DATE_TYPES:
        return [{"value": _unix_time(raw)}]
    if kind in SINGLE_CHOICE_TYPES:
        return [{"enum_id": _choice(custom_field, raw).id}]
    if kind in MULTI_CHOICE_TYPES:
        return [{"enum_id": option.id} for option in _choices(custom_field, raw)]
    raise ValueRefused(f"поле типа {kind} не заполняется из формы")


def to_number(raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise ValueRefused("не число")
    if isinstance(raw, str):
        cleaned = _SPACES.sub("", raw).replace(",", ".")
        try:
            raw = float(cleaned)
        except ValueError:
            raise ValueRefused("не число") from None
    if not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValueRefused("не число")
    return int(raw) if float(raw).is_integer() else raw


def shown(raw: Any) -> str:
    """A submitted value as a manager reads it in a note."""
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)


def named_values(raw_fields: Any) -> dict[str, Any]:
    """A lead's `custom_fields_values` as amoCRM answers them, by field name:
    `{"utm_source": "fb", "Интересы": ["Дизайн", "Маркетинг"]}`. One value is a scalar,
    several a list; a name two fields share gets the field id appended."""
    named: dict[str, Any] = {}
    for entry in raw_fields if isinstance(raw_fields, list) else []:
        if not isinstance(entry, dict):
            continue
        values = [v.get("value") for v in entry.get("values") or [] if isinstance(v, dict)]
        name = str(entry.get("field_name") or entry.get("field_code") or entry.get("field_id"))
        if name in named:
            name = f"{name} ({entry.get('field_id')})"
        named[name] = values[0] if len(values) == 1 else values
    return named


def value_at(fields: Mapping[str, Any], path: str) -> Any:
    """`metadata.language` reaches into nested objects (and `answers.0` into lists)."""
    current: Any = fields
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def _text(raw: Any) -> str:
    if isinstance(raw, dict | list):
        raise ValueRefused("не текст")
    return shown(raw).strip()


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().casefold() in _TRUE | _FALSE:
        return raw.strip().casefold() in _TRUE
    raise ValueRefused("не да/нет")


def _unix_time(raw: Any) -> int:
    """A unix time, or an ISO date (midnight UTC) or date-time (UTC unless it says otherwise)."""
    if isinstance(raw, bool):
        raise ValueRefused("не дата")
    if isinstance(raw, int | float) and math.isfinite(raw) and raw >= 0:
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.isdigit():
            return int(text)
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueRefused("не дата") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())
    raise ValueRefused("не дата")


def _choice(custom_field: CustomField, raw: Any) -> EnumOption:
    if isinstance(raw, dict | list):
        raise ValueRefused("нет такого варианта")
    option = custom_field.option_labelled(shown(raw))
    if option is None:
        raise ValueRefused("нет такого варианта")
    return option


def _choices(custom_field: CustomField, raw: Any) -> list[EnumOption]:
    """A list of labels, or one string: a label, or labels separated by commas."""
    if isinstance(raw, str):
        whole = custom_field.option_labelled(raw)
        labels: list[Any] = [raw] if whole else [part for part in raw.split(",") if part.strip()]
    elif isinstance(raw, list):
        labels = [label for label in raw if not is_blank(label)]
    else:
        labels = [raw]
    options = [_choice(custom_field, label) for label in labels]
    return list({option.id: option for option in options}.values())
