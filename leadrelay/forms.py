"""The forms file: what each landing form means in amoCRM.

TOML or YAML, chosen by the file's suffix::

    [utm]                                 # lead fields that receive UTM values, every form
    utm_source = 434731

    [forms.express-course]
    pipeline_id = 6344290
    status_id = 54435014
    tags = ["express"]
    lead_name = "Экспресс-курс: {name}"
    stage_by_field = { field = "paymentMethod", stages = { kaspi = 54423922, card = 54423923 } }
    responsible_users = [5001, 5002]      # one: always that manager; several: spread evenly
    price_field = "amount"                # the lead's budget

    [forms.express-course.lead_fields]    # amoCRM lead field id = submission field
    600100 = "paymentMethod"              # a dotted path reaches into nested fields

    [forms.express-course.contact_fields]
    700300 = "city"

A form that is not in the file goes to amoCRM's default: the main pipeline's first stage
after the incoming one.

The same file holds the rules for amoCRM events (see `Rule`)::

    [[rules]]
    name = "express-sale"
    pipeline_id = 6344290
    status_id = 142
    actions = [{ type = "forward", url = "https://academy.example/api/sales" }]
"""

from __future__ import annotations

import hashlib
import string
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from leadrelay.contact import contact_key
from leadrelay.custom_fields import FieldEntity
from leadrelay.events import ActionKind, EntityEvent, PlannedAction
from leadrelay.lead_fields import UTM_FIELDS, FieldMapping
from leadrelay.models import Route, Submission

DEFAULT_LEAD_NAME = "{form}: {name}"


class StageByField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str
    stages: dict[str, int]


class FormSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: int | None = None
    status_id: int | None = None
    tags: list[str] = Field(default_factory=list)
    lead_name: str = DEFAULT_LEAD_NAME
    stage_by_field: StageByField | None = None
    responsible_users: list[PositiveInt] = Field(default_factory=list)
    lead_fields: dict[PositiveInt, str] = Field(default_factory=dict)
    contact_fields: dict[PositiveInt, str] = Field(default_factory=dict)
    price_field: str | None = None
    # A field humans never fill (hidden by CSS): a submission that fills it is a bot's,
    # answered 202 and dropped at intake.
    honeypot: str | None = None

    @model_validator(mode="after")
    def _status_needs_pipeline(self) -> FormSpec:
        if (self.status_id or self.stage_by_field) and self.pipeline_id is None:
            raise ValueError("a status needs its pipeline_id")
        return self

    @field_validator("lead_fields", "contact_fields")
    @classmethod
    def _paths_are_dotted_names(cls, fields: dict[int, str]) -> dict[int, str]:
        for field_id, path in fields.items():
            _check_path(path, f"field {field_id}")
        return fields

    @field_validator("price_field")
    @classmethod
    def _price_path(cls, path: str | None) -> str | None:
        if path is not None:
            _check_path(path, "price_field")
        return path

    def responsible_user(self, lead_key: str) -> int | None:
        """A stable hash of the contact key spreads people evenly; a person keeps theirs."""
        if not self.responsible_users:
            return None
        digest = hashlib.sha256(lead_key.encode()).digest()
        index = int.from_bytes(digest[:8], "big") % len(self.responsible_users)
        return self.responsible_users[index]


def _check_path(path: str, what: str) -> None:
    if not path or any(not part.strip() for part in path.split(".")):
        raise ValueError(f"{what}: {path!r} is not a submission field (a name or a.dotted.path)")


class RuleAction(BaseModel):
    """forward: POST the enriched event to `url`; note / task: write `text` on the lead."""

    model_config = ConfigDict(extra="forbid")

    type: ActionKind
    url: str | None = None
    text: str | None = None
    due_in_hours: float = Field(default=24.0, gt=0)
    # forward only: without FORWARD_SIGNING_SECRET the worker refuses to start unless this is
    # true, because a receiver cannot tell unsigned events from forged ones.
    allow_unsigned: bool = False
    # forward only: retries stop after this long, and the event becomes a dead letter.
    give_up_after_hours: float = Field(default=72.0, gt=0)

    @model_validator(mode="after")
    def _has_what_it_needs(self) -> RuleAction:
        if self.type is ActionKind.FORWARD and not self.url:
            raise ValueError("a forward action needs a url")
        if self.type in (ActionKind.NOTE, ActionKind.TASK) and not self.text:
            raise ValueError(f"a {self.type} action needs a text")
        return self


class Rule(BaseModel):
    """What an amoCRM event does. Unset conditions match anything."""

    model_config = ConfigDict(extra="forbid")

    name: str
    entity: str = "leads"
    action: str = "status"
    pipeline_id: int | None = None
    status_id: int | None = None
    actions: list[RuleAction] = Field(min_length=1)

    @model_validator(mode="after")
    def _lead_actions_need_leads(self) -> Rule:
        if self.entity != "leads" and any(a.type in ("note", "task") for a in self.actions):
            raise ValueError("note and task actions write to a lead: use them on entity 'leads'")
        return self

    def matches(self, event: EntityEvent) -> bool:
        return (
            event.entity == self.entity
            and event.action == self.action
            and self.pipeline_id in (None, event.pipeline_id)
            and self.status_id in (None, event.status_id)
        )


class FormsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    utm: dict[str, PositiveInt] = Field(default_factory=dict)
    forms: dict[str, FormSpec] = Field(default_factory=dict)
    default_tags: list[str] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("utm")
    @classmethod
    def _utm_names(cls, utm: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(utm) - set(UTM_FIELDS))
        if unknown:
            raise ValueError(f"unknown UTM names {unknown}; use {', '.join(UTM_FIELDS)}")
        if len(set(utm.values())) != len(utm):
            raise ValueError("two UTM names share one field id")
        return utm

    @model_validator(mode="after")
    def _utm_fields_stay_utm(self) -> FormsConfig:
        utm_ids = set(self.utm.values())
        for name, spec in self.forms.items():
            shared = sorted(utm_ids & set(spec.lead_fields))
            if shared:
                raise ValueError(f"form {name}: lead fields {shared} are UTM fields already")
        return self

    @classmethod
    def load(cls, path: Path | None) -> FormsConfig:
        if path is None:
            return cls()
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
        return cls.model_validate(raw)

    def route(self, submission: Submission) -> Route:
        spec = self.forms.get(submission.form, FormSpec())
        status_id = spec.status_id
        if spec.stage_by_field is not None:
            chosen = submission.extras.get(spec.stage_by_field.field)
            status_id = spec.stage_by_field.stages.get(str(chosen), status_id)
        return Route(
            pipeline_id=spec.pipeline_id,
            status_id=status_id,
            tags=list(dict.fromkeys([*self.default_tags, *spec.tags])),
            lead_name=render_lead_name(spec.lead_name, submission),
            responsible_user_id=spec.responsible_user(
                contact_key(submission.phone, submission.email)
            ),
        )

    def mapped_field_ids(self) -> dict[FieldEntity, list[int]]:
        """Every amoCRM field the file names, by entity: one catalogue read serves them all."""
        leads = set(self.utm.values())
        contacts: set[int] = set()
        for spec in self.forms.values():
            leads.update(spec.lead_fields)
            contacts.update(spec.contact_fields)
        return {"leads": sorted(leads), "contacts": sorted(contacts)}

    def field_mapping(self, form: str) -> FieldMapping:
        spec = self.forms.get(form, FormSpec())
        return FieldMapping(
            utm={field_id: name for name, field_id in self.utm.items()},
            lead=dict(spec.lead_fields),
            contact=dict(spec.contact_fields),
            price_field=spec.price_field,
        )

    def acts_on(self, action: str) -> bool:
        """Whether any rule matches events with this action (e.g. `message`)."""
        return any(rule.action == action for rule in self.rules)

    def unsigned_forwards(self) -> list[str]:
        """Rules that forward events and do not allow them unsigned."""
        return [
            rule.name
            for rule in self.rules
            if any(a.type == "forward" and not a.allow_unsigned for a in rule.actions)
        ]

    def plan(self, event: EntityEvent) -> list[PlannedAction]:
        return [
            PlannedAction(
                rule=rule.name,
                kind=action.type,
                url=action.url,
                text=action.text,
                due_in_hours=action.due_in_hours,
                allow_unsigned=action.allow_unsigned,
                give_up_after_hours=action.give_up_after_hours,
            )
            for rule in self.rules
            if rule.matches(event)
            for action in rule.actions
        ]


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render_lead_name(template: str, submission: Submission) -> str:
    """`{name}`, `{phone}`, `{form}`, `{utm_campaign}` or any scalar form field; unknown → ''."""
    values = _Blank(
        {key: value for key, value in submission.extras.items() if isinstance(value, str | int)}
    )
    values.update(submission.utm)
    values.update(
        form=submission.form,
        name=submission.name or submission.phone or submission.email or "",
        phone=submission.phone or "",
        email=submission.email or "",
        source=submission.source or "",
    )
    rendered = string.Formatter().vformat(template, (), values).strip()
    return rendered or f"{submission.form}: {values['name']}"


class FormsFile:
    """The forms file, re-read when it changes so a fixed mapping applies on retry."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp: int | None = None
        self._config = FormsConfig()

    def current(self) -> FormsConfig:
        if self._path is None:
            return self._config
        stamp = self._path.stat().st_mtime_ns
        if stamp != self._stamp:
            self._config = FormsConfig.load(self._path)
            self._stamp = stamp
        return self._config
