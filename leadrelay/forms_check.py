"""Checking the forms file against the amoCRM account it will write to.

Pure: `AccountFacts` is what `amocrm.account.read_account_facts` read (at most 5 requests).
Each problem is one line naming what the forms file refers to and the account lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

from leadrelay.custom_fields import CHOICE_TYPES, CustomField, FieldEntity
from leadrelay.forms import FormsConfig, FormSpec


@dataclass
class AccountFacts:
    statuses: dict[int, set[int]]  # pipeline id → its status ids
    fields: dict[FieldEntity, dict[int, CustomField]]
    user_ids: set[int]


def check_forms(config: FormsConfig, account: AccountFacts) -> list[str]:
    problems: list[str] = []
    for name, field_id in config.utm.items():
        if field_id not in account.fields["leads"]:
            problems.append(f"utm: {name} → lead field {field_id} does not exist")
    for form, spec in config.forms.items():
        problems.extend(f"form {form}: {problem}" for problem in _form_problems(spec, account))
    for rule in config.rules:
        problems.extend(
            f"rule {rule.name}: {problem}"
            for problem in _stage_problems(rule.pipeline_id, [rule.status_id], account)
        )
    return problems


def _form_problems(spec: FormSpec, account: AccountFacts) -> list[str]:
    stage_ids = [spec.status_id]
    if spec.stage_by_field is not None:
        stage_ids.extend(spec.stage_by_field.stages.values())
    problems = _stage_problems(spec.pipeline_id, stage_ids, account)
    problems.extend(
        f"user {user_id} does not exist"
        for user_id in spec.responsible_users
        if user_id not in account.user_ids
    )
    entity: FieldEntity
    for entity, mapped in (("leads", spec.lead_fields), ("contacts", spec.contact_fields)):
        for field_id, path in mapped.items():
            custom_field = account.fields[entity].get(field_id)
            if custom_field is None:
                problems.append(f"{entity[:-1]} field {field_id} ({path}) does not exist")
            else:
                problems.extend(_label_problems(spec, custom_field, path))
    return problems


def _stage_problems(
    pipeline_id: int | None, status_ids: list[int | None], account: AccountFacts
) -> list[str]:
    if pipeline_id is None:
        return []
    statuses = account.statuses.get(pipeline_id)
    if statuses is None:
        return [f"pipeline {pipeline_id} does not exist"]
    return [
        f"pipeline {pipeline_id} has no status {status_id}"
        for status_id in dict.fromkeys(status_ids)
        if status_id is not None and status_id not in statuses
    ]


def _label_problems(spec: FormSpec, custom_field: CustomField, path: str) -> list[str]:
    """The values that stage_by_field lists for a field are the labels a choice field needs."""
    by_field = spec.stage_by_field
    if custom_field.type not in CHOICE_TYPES or by_field is None or by_field.field != path:
        return []
    return [
        f"field {custom_field.id} ({custom_field.name}) has no option {label!r}"
        for label in by_field.stages
        if custom_field.option_labelled(label) is None
    ]
