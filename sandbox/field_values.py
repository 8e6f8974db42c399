"""Custom field values and responsible users in write requests, checked the way amoCRM does.

A field id the entity's catalogue lacks is a 400 `FieldNotExpected`; an enum that is not on
the field's list, or a user the account lacks, is `NotSupportedChoice`. Values are stored the
way amoCRM answers them: with the field's name, code and type, and a select's label.
"""

from sandbox.item_reader import ItemReader
from sandbox.state import JSON, CustomField, SandboxAccount

TEXT_TYPES = frozenset({"text", "textarea", "url", "tracking_data", "streetaddress"})
DATE_TYPES = frozenset({"date", "date_time", "birthday"})
SINGLE_CHOICE_TYPES = frozenset({"select", "radio"})
MULTITEXT_DEFAULT_ENUM = "WORK"


def read_responsible_user(reader: ItemReader, account: SandboxAccount) -> int | None:
    user_id = reader.optional_int("responsible_user_id")
    if user_id is not None and user_id not in account.users:
        raise reader.problem("responsible_user_id", f"User {user_id} does not exist")
    return user_id


def read_field_values(
    reader: ItemReader, account: SandboxAccount, entity: str
) -> list[dict[str, JSON]] | None:
    entries = []
    for index, entry in enumerate(reader.optional_list("custom_fields_values")):
        entry_reader = reader.child(f"custom_fields_values.{index}", entry)
        custom_field = account.custom_field(
            entity,
            code=entry_reader.optional_str("field_code"),
            field_id=entry_reader.optional_int("field_id"),
        )
        if custom_field is None:
            raise entry_reader.problem("field_id", "Unknown custom field", "FieldNotExpected")
        values = [
            _read_value(entry_reader.child(f"values.{value_index}", value), custom_field)
            for value_index, value in enumerate(entry_reader.optional_list("values"))
        ]
        if len(values) > 1 and custom_field.type not in ("multitext", "multiselect"):
            raise entry_reader.problem("values", "This field takes one value", "OutOfRange")
        entries.append(
            {
                "field_id": custom_field.id,
                "field_name": custom_field.name,
                "field_code": custom_field.code,
                "field_type": custom_field.type,
                "values": values,
            }
        )
    return entries or None


def merge_field_values(
    current: list[dict[str, JSON]] | None, changes: list[dict[str, JSON]] | None
) -> list[dict[str, JSON]] | None:
    """A PATCH replaces the values of each field it names (a multitext's too) and keeps the rest;
    a field sent with no values is cleared."""
    merged = {entry["field_id"]: entry for entry in current or []}
    for change in changes or []:
        if change["values"]:
            merged[change["field_id"]] = change
        else:
            merged.pop(change["field_id"], None)
    return list(merged.values()) or None


def _read_value(reader: ItemReader, custom_field: CustomField) -> dict[str, JSON]:
    kind = custom_field.type
    if kind == "multitext":
        return _multitext_value(reader, custom_field)
    if kind in SINGLE_CHOICE_TYPES or kind == "multiselect":
        return _enum_value(reader, custom_field)
    value = reader.data.get("value")
    if value is None:
        raise reader.problem("value", "This field is required", "NotBlank")
    if kind in TEXT_TYPES:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise reader.problem("value", "Must be a string", "InvalidType")
        return {"value": str(value)}
    if kind in ("numeric", "monetary"):
        return {"value": _number(reader, value)}
    if kind == "checkbox":
        if not isinstance(value, bool):
            raise reader.problem("value", "Must be a boolean", "InvalidType")
        return {"value": value}
    if kind in DATE_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise reader.problem("value", "Must be a unix timestamp", "InvalidType")
        return {"value": value}
    raise reader.problem("value", f"Fields of type {kind} are not supported here", "InvalidType")


def _number(reader: ItemReader, value: JSON) -> str:
    """amoCRM takes a number or a numeric string, and answers numeric values as strings."""
    if isinstance(value, bool):
        raise reader.problem("value", "Must be a number", "InvalidType")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            raise reader.problem("value", "Must be a number", "InvalidType") from None
        return value
    raise reader.problem("value", "Must be a number", "InvalidType")


def _multitext_value(reader: ItemReader, custom_field: CustomField) -> dict[str, JSON]:
    text = reader.required_str("value")
    # Some amoCRM docs call the enum `enum`, others `enum_code`.
    enum_code = reader.optional_str("enum_code") or reader.optional_str("enum")
    enum_code = enum_code or MULTITEXT_DEFAULT_ENUM
    option = custom_field.enum_with_value(enum_code)
    if option is None:
        raise reader.problem("enum_code", f"Unknown enum_code {enum_code!r}")
    return {"value": text, "enum_id": option.id, "enum_code": option.value}


def _enum_value(reader: ItemReader, custom_field: CustomField) -> dict[str, JSON]:
    """A choice named by `enum_id`, or by its label as `value`."""
    enum_id = reader.optional_int("enum_id")
    if enum_id is not None:
        option = custom_field.enum_with_id(enum_id)
        if option is None:
            raise reader.problem("enum_id", f"Enum {enum_id} is not an option of this field")
        return {"value": option.value, "enum_id": option.id}
    label = reader.optional_str("value")
    option = custom_field.enum_with_value(label) if label is not None else None
    if option is None:
        raise reader.problem("enum_id", f"No option {label!r} in this field")
    return {"value": option.value, "enum_id": option.id}
