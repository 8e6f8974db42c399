"""The forms file: what each landing form means in amoCRM.

TOML or YAML, chosen by the file's suffix::

    [forms.express-course]
    pipeline_id = 6344290
    status_id = 54435014
    tags = ["express"]
    lead_name = "Экспресс-курс: {name}"
    stage_by_field = { field = "paymentMethod", stages = { kaspi = 54423922, card = 54423923 } }

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

import string
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadrelay.events import EntityEvent, PlannedAction
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

    @model_validator(mode="after")
    def _status_needs_pipeline(self) -> FormSpec:
        if (self.status_id or self.stage_by_field) and self.pipeline_id is None:
            raise ValueError("a status needs its pipeline_id")
        return self


class RuleAction(BaseModel):
    """forward: POST the enriched event to `url`; note / task: write `text` on the lead."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["forward", "note", "task"]
    url: str | None = None
    text: str | None = None
    due_in_hours: float = Field(default=24.0, gt=0)

    @model_validator(mode="after")
    def _has_what_it_needs(self) -> RuleAction:
        if self.type == "forward" and not self.url:
            raise ValueError("a forward action needs a url")
        if self.type in ("note", "task") and not self.text:
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

    forms: dict[str, FormSpec] = Field(default_factory=dict)
    default_tags: list[str] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

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
        )

    def plan(self, event: EntityEvent) -> list[PlannedAction]:
        return [
            PlannedAction(
                rule=rule.name,
                kind=action.type,
                url=action.url,
                text=action.text,
                due_in_hours=action.due_in_hours,
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
