"""Converting submitted values to amoCRM field types, and what a form fills (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from activities.fields import FieldCatalogueCache
from amocrm.models import NewContact, NewLead, Rejection, complex_item, rejected_parts
from leadrelay.custom_fields import (
    CustomField,
    EnumOption,
    FieldCatalogue,
    FieldValue,
    ValueRefused,
    convert,
    named_values,
    value_at,
)
from leadrelay.lead_fields import FieldMapping, LeadFields, fill_fields
from leadrelay.models import Submission
from leadrelay.notes import submission_note

PAYMENT = CustomField(
    600100, "Способ оплаты", "select", enums=[EnumOption(1, "Kaspi"), EnumOption(2, "card")]
)
INTERESTS = CustomField(
    600700,
    "Интересы",
    "multiselect",
    enums=[EnumOption(7, "Программирование"), EnumOption(8, "Дизайн"), EnumOption(9, "a, b")],
)


def typed(kind: str) -> CustomField:
    return CustomField(1, kind, kind)


@pytest.mark.parametrize(
    ("kind", "raw", "values"),
    [
        ("text", "  Python ", [{"value": "Python"}]),
        ("text", 42, [{"value": "42"}]),
        ("textarea", "a\nb", [{"value": "a\nb"}]),
        ("url", "https://x.example/p", [{"value": "https://x.example/p"}]),
        ("tracking_data", "fb", [{"value": "fb"}]),
        ("numeric", 1500, [{"value": 1500}]),
        ("numeric", "1 500,50", [{"value": 1500.5}]),
        ("numeric", "27", [{"value": 27}]),
        ("checkbox", True, [{"value": True}]),
        ("checkbox", "да", [{"value": True}]),
        ("checkbox", "off", [{"value": False}]),
        ("checkbox", 0, [{"value": False}]),
        ("date", 1703289600, [{"value": 1703289600}]),
        ("date", "2023-12-23", [{"value": 1703289600}]),
        ("date", "2025-12-22T10:00:00.000Z", [{"value": 1766397600}]),
        ("date", "2025-12-22T15:00:00+05:00", [{"value": 1766397600}]),
    ],
)
def test_values_are_converted_by_field_type(kind: str, raw: Any, values: list[Any]) -> None:
    assert convert(typed(kind), raw) == values


def test_select_and_radio_take_the_enum_whose_label_matches_ignoring_case() -> None:
    assert convert(PAYMENT, "kaspi") == [{"enum_id": 1}]
    assert convert(PAYMENT, " CARD ") == [{"enum_id": 2}]
    radio = CustomField(3, "Формат", "radio", enums=[EnumOption(5, "Онлайн")])
    assert convert(radio, "онлайн") == [{"enum_id": 5}]


def test_multiselect_takes_a_list_or_comma_separated_labels() -> None:
    assert convert(INTERESTS, ["дизайн", "Программирование"]) == [{"enum_id": 8}, {"enum_id": 7}]
    assert convert(INTERESTS, "Дизайн, программирование") == [{"enum_id": 8}, {"enum_id": 7}]
    assert convert(INTERESTS, "a, b") == [{"enum_id": 9}]


@pytest.mark.parametrize(
    ("custom_field", "raw", "reason"),
    [
        (PAYMENT, "cash", "нет такого варианта"),
        (INTERESTS, ["Дизайн", "Танцы"], "нет такого варианта"),
        (typed("numeric"), "twenty", "не число"),
        (typed("numeric"), True, "не число"),
        (typed("numeric"), "nan", "не число"),
        (typed("checkbox"), "maybe", "не да/нет"),
        (typed("date"), "tomorrow", "не дата"),
        (typed("text"), {"nested": 1}, "не текст"),
        (typed("smart_address"), "Алматы", "поле типа smart_address не заполняется из формы"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_with_a_reason(
    custom_field: CustomField, raw: Any, reason: str
) -> None:
    with pytest.raises(ValueRefused) as refused:
        convert(custom_field, raw)
    assert refused.value.reason == reason


def test_dotted_paths_reach_into_nested_fields() -> None:
    fields = {"metadata": {"language": "ru-RU", "answers": [{"a": 1}]}}
    assert value_at(fields, "metadata.language") == "ru-RU"
    assert value_at(fields, "metadata.answers.0.a") == 1
    assert value_at(fields, "metadata.missing.deeper") is None


def express(**extras: Any) -> Submission:
    return Submission(
        submission_id="s1",
        form="express-course",
        received_at="2026-01-01T00:00:00+00:00",
        name="Айгерим",
        phone="+77771234567",
        utm={"utm_source": "fb", "utm_campaign": "express"},
        extras=extras,
    )


CATALOGUE = {
    ("leads", 434731): CustomField(434731, "utm_source", "tracking_data"),
    ("leads", 434729): CustomField(434729, "utm_campaign", "tracking_data"),
    ("leads", 600100): PAYMENT,
    ("leads", 600300): CustomField(600300, "Возраст", "numeric"),
    ("contacts", 700400): CustomField(700400, "Язык", "select", enums=[EnumOption(4, "ru-RU")]),
}
MAPPING = FieldMapping(
    utm={434731: "utm_source", 434729: "utm_campaign", 434727: "utm_medium"},
    lead={600100: "paymentMethod", 600300: "age", 600999: "course"},
    contact={700400: "metadata.language"},
    price_field="amount",
)


def lookup(entity: str, field_id: int) -> CustomField | None:
    return CATALOGUE.get((entity, field_id))


def test_a_form_fills_utm_lead_and_contact_fields_and_the_budget() -> None:
    submission = express(
        paymentMethod="Kaspi", age="31", amount="4990.4", metadata={"language": "ru-RU"}
    )

    filled = fill_fields(MAPPING, submission, lookup)

    assert [v.as_json() for v in filled.utm] == [
        {"field_id": 434731, "values": [{"value": "fb"}]},
        {"field_id": 434729, "values": [{"value": "express"}]},
    ]
    assert [v.as_json() for v in filled.lead] == [
        {"field_id": 600100, "values": [{"enum_id": 1}]},
        {"field_id": 600300, "values": [{"value": 31}]},
    ]
    assert [v.as_json() for v in filled.contact] == [
        {"field_id": 700400, "values": [{"enum_id": 4}]}
    ]
    assert filled.price == 4990
    assert filled.refused == []


def test_values_that_do_not_fit_are_left_out_and_named() -> None:
    submission = express(paymentMethod="cash", age="old", amount="-5", course="Python")

    filled = fill_fields(MAPPING, submission, lookup)

    assert filled.lead == []
    assert filled.price is None
    assert [(r.field_name, r.value, r.reason) for r in filled.refused] == [
        ("Способ оплаты", "cash", "нет такого варианта"),
        ("Возраст", "old", "не число"),
        ("поле 600999", "Python", "нет в amoCRM"),
        ("Бюджет", "-5", "меньше нуля"),
    ]
    note = submission_note(submission, filled.refused)
    assert "Способ оплаты: «cash» (нет такого варианта)" in note


def test_only_fields_with_values_need_the_catalogue() -> None:
    assert MAPPING.wanted(express()) == {"leads": [434729, 434731]}
    assert MAPPING.wanted(express(course="x", metadata={"language": "kk"})) == {
        "leads": [434729, 434731, 600999],
        "contacts": [700400],
    }
    assert FieldMapping().wanted(express(course="x")) == {}


def test_fields_amocrm_refused_are_dropped_and_named() -> None:
    filled = LeadFields(
        utm=[FieldValue(434731, [{"value": "fb"}], "utm_source")],
        lead=[FieldValue(600100, [{"enum_id": 1}], "Способ оплаты")],
        contact=[FieldValue(700400, [{"enum_id": 4}], "Язык")],
    )

    kept = filled.without({600100}, {700400})

    assert [v.field_id for v in kept.utm] == [434731]
    assert kept.lead == kept.contact == []
    assert [(r.field_name, r.value) for r in kept.refused] == [
        ("Способ оплаты", "1"),
        ("Язык", "4"),
    ]


def test_rejected_paths_name_the_optional_parts_of_a_complex_item() -> None:
    lead = NewLead(
        name="x",
        pipeline_id=None,
        status_id=None,
        tags=[],
        new_contact=NewContact(
            "A", "+77771234567", "a@b.kz", custom_fields=[FieldValue(700400, [{"enum_id": 4}])]
        ),
        custom_fields=[FieldValue(434731, [{"value": "fb"}]), FieldValue(600100, [{"enum_id": 1}])],
        responsible_user_id=5001,
    )
    item = complex_item(lead)

    assert rejected_parts(
        item,
        [
            "0.custom_fields_values.1.values.0.enum_id",
            "0._embedded.contacts.0.custom_fields_values.2.field_id",
            "0.responsible_user_id",
        ],
    ) == Rejection(lead_field_ids=[600100], contact_field_ids=[700400], responsible_user=True)
    # PHONE (index 0 of the contact) is not optional, nor is an unknown part.
    assert rejected_parts(item, ["0._embedded.contacts.0.custom_fields_values.0.field_id"]) is None
    assert rejected_parts(item, ["0.pipeline_id"]) is None
    assert rejected_parts(
        {"custom_fields_values": [{"field_id": 5}]}, ["custom_fields_values.0.field_id"]
    ) == Rejection(lead_field_ids=[5])


def test_the_catalogue_cache_answers_for_its_ttl_and_for_the_ids_it_covers() -> None:
    now = [0.0]
    cache = FieldCatalogueCache(ttl_seconds=600, clock=lambda: now[0])
    assert not cache.knows("leads", [600100])
    cache.install(FieldCatalogue("leads", [PAYMENT], covers=[600100, 600999]))

    assert cache.knows("leads", [600100, 600999])
    assert not cache.knows("leads", [600300])
    assert cache.lookup("leads", 600100) == PAYMENT
    assert cache.lookup("leads", 600999) is None
    now[0] = 601.0
    assert not cache.knows("leads", [600100])
    cache.install(FieldCatalogue("leads", [PAYMENT], covers=None))
    assert cache.knows("leads", [600300])


def test_a_leads_fields_are_named_for_a_forward() -> None:
    raw = [
        {"field_id": 434731, "field_name": "utm_source", "values": [{"value": "fb"}]},
        {"field_id": 600700, "field_name": "Интересы", "values": [{"value": "a"}, {"value": "b"}]},
        {"field_id": 600701, "field_name": "Интересы", "values": [{"value": "c"}]},
        "not a field",
    ]

    assert named_values(raw) == {
        "utm_source": "fb",
        "Интересы": ["a", "b"],
        "Интересы (600701)": "c",
    }
    assert named_values(None) == {}
