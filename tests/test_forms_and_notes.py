"""The forms file's routing and the note a manager reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from leadrelay.events import EntityEvent
from leadrelay.forms import FormsConfig, FormsFile
from leadrelay.models import Submission
from leadrelay.notes import submission_note

FORMS_YAML = """
default_tags: [site]
forms:
  express-course:
    pipeline_id: 6344290
    status_id: 54435014
    tags: [express]
    lead_name: "Экспресс: {name} ({paymentMethod})"
    stage_by_field: {field: paymentMethod, stages: {kaspi: 54423922, card: 54423923}}
"""


def submission(**overrides: object) -> Submission:
    base: dict[str, object] = {
        "submission_id": "abc",
        "form": "express-course",
        "received_at": "2026-01-01T00:00:00+00:00",
        "name": "Айгерим",
        "phone": "+77771234567",
    }
    return Submission(**{**base, **overrides})  # type: ignore[arg-type]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_stage_is_chosen_by_a_field(tmp_path: Path) -> None:
    config = FormsConfig.load(write(tmp_path, "forms.yaml", FORMS_YAML))
    route = config.route(submission(extras={"paymentMethod": "card"}))
    assert (route.pipeline_id, route.status_id) == (6344290, 54423923)
    assert route.tags == ["site", "express"]
    assert route.lead_name == "Экспресс: Айгерим (card)"
    unknown_method = config.route(submission(extras={"paymentMethod": "cash"}))
    assert unknown_method.status_id == 54435014


def test_unmapped_form_goes_to_amocrm_default(tmp_path: Path) -> None:
    config = FormsConfig.load(write(tmp_path, "forms.toml", "[forms.other]\npipeline_id = 1\n"))
    route = config.route(submission(form="quiz", name=None))
    assert (route.pipeline_id, route.status_id) == (None, None)
    assert route.lead_name == "quiz: +77771234567"


def test_status_without_pipeline_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="pipeline_id"):
        FormsConfig.load(write(tmp_path, "forms.toml", "[forms.x]\nstatus_id = 5\n"))


def test_forms_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "forms.toml", "[forms.express-course]\npipeline_id = 1\n")
    forms = FormsFile(path)
    assert forms.current().route(submission()).pipeline_id == 1
    path.write_text("[forms.express-course]\npipeline_id = 2\n", encoding="utf-8")
    assert forms.current().route(submission()).pipeline_id == 2


def test_note_is_readable() -> None:
    note = submission_note(
        submission(
            utm={"utm_source": "fb"},
            page="https://academy.kz/express",
            extras={
                "proftestAnswers": [{"question": "Возраст?", "answer": "19–25"}],
                "metadata": {"userAgent": "Mozilla", "stage": "quiz_completed"},
                "answers": [1, 0, 2],
            },
        )
    )
    assert "Заявка с формы «express-course»" in note
    assert "Телефон: +77771234567" in note
    assert "UTM: utm_source=fb" in note
    assert "1. Возраст? — 19–25" in note
    assert "metadata.userAgent: Mozilla" in note
    assert "answers: [1, 0, 2]" in note


def test_rules_match_on_numbers_and_plan_their_actions(tmp_path: Path) -> None:
    config = FormsConfig.load(
        write(
            tmp_path,
            "forms.toml",
            '[[rules]]\nname = "sale"\npipeline_id = 6344290\nstatus_id = 142\n'
            'actions = [{ type = "forward", url = "http://x/events" }, '
            '{ type = "task", text = "Позвонить", due_in_hours = 2 }]\n',
        )
    )
    sale = EntityEvent("k", "webhook:h", "leads", "status", 1, status_id=142, pipeline_id=6344290)
    other = EntityEvent("k", "webhook:h", "leads", "status", 1, status_id=143, pipeline_id=6344290)
    assert [(a.kind, a.due_in_hours) for a in config.plan(sale)] == [("forward", 24.0), ("task", 2)]
    assert config.plan(other) == []


def test_note_rules_only_apply_to_leads(tmp_path: Path) -> None:
    text = '[[rules]]\nname = "x"\nentity = "contacts"\nactions = [{ type = "note", text = "t" }]\n'
    with pytest.raises(ValidationError, match="entity 'leads'"):
        FormsConfig.load(write(tmp_path, "forms.toml", text))


ISSUE_FORMS_TOML = """
[utm]
utm_source = 434731
utm_medium = 434727
utm_campaign = 434729
utm_content = 434725
utm_term = 434733

[forms.express-course]
pipeline_id = 6344290
status_id = 54435014
responsible_users = [5001, 5002, 5003]
price_field = "amount"

[forms.express-course.lead_fields]
600100 = "paymentMethod"
600200 = "course"

[forms.express-course.contact_fields]
700300 = "city"
701000 = "metadata.language"

[forms.quiz]
responsible_users = [5002]
"""


def test_the_field_keys_of_the_forms_file(tmp_path: Path) -> None:
    config = FormsConfig.load(write(tmp_path, "forms.toml", ISSUE_FORMS_TOML))

    mapping = config.field_mapping("express-course")
    assert mapping.utm[434731] == "utm_source"
    assert mapping.lead == {600100: "paymentMethod", 600200: "course"}
    assert mapping.contact == {700300: "city", 701000: "metadata.language"}
    assert mapping.price_field == "amount"
    # Forms without fields of their own still fill the UTM fields.
    assert config.field_mapping("unlisted").utm == mapping.utm
    assert config.field_mapping("unlisted").lead == {}


@pytest.mark.parametrize(
    "text",
    [
        "[utm]\nutm_sauce = 1\n",
        "[utm]\nutm_source = 1\nutm_medium = 1\n",
        "[utm]\nutm_source = 0\n",
        "[forms.f.lead_fields]\nabc = 'course'\n",
        "[forms.f.lead_fields]\n5 = 'metadata..language'\n",
        "[forms.f.contact_fields]\n5 = ''\n",
        "[forms.f]\nresponsible_users = [0]\n",
        "[forms.f]\nprice_field = ''\n",
        "[utm]\nutm_source = 7\n[forms.f.lead_fields]\n7 = 'course'\n",
    ],
    ids=[
        "unknown-utm-name",
        "utm-id-twice",
        "utm-id-zero",
        "field-id-not-a-number",
        "empty-path-segment",
        "empty-path",
        "user-id-zero",
        "empty-price-field",
        "lead-field-is-a-utm-field",
    ],
)
def test_bad_field_keys_are_refused_when_the_file_is_read(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValidationError):
        FormsConfig.load(write(tmp_path, "forms.toml", text))


def test_one_manager_gets_every_lead_and_several_are_spread_by_contact_key(
    tmp_path: Path,
) -> None:
    config = FormsConfig.load(write(tmp_path, "forms.toml", ISSUE_FORMS_TOML))
    phones = [f"+7701{n:07d}" for n in range(300)]

    quiz = {config.route(submission(form="quiz", phone=p)).responsible_user_id for p in phones}
    spread = [config.route(submission(phone=p)).responsible_user_id for p in phones]
    again = [config.route(submission(phone=p, name="другое")).responsible_user_id for p in phones]

    assert quiz == {5002}
    assert again == spread
    counts = {user: spread.count(user) for user in (5001, 5002, 5003)}
    assert all(70 <= count <= 130 for count in counts.values()), counts
    assert config.route(submission(form="unlisted")).responsible_user_id is None


def test_every_mapped_field_is_listed_for_one_catalogue_read(tmp_path: Path) -> None:
    config = FormsConfig.load(write(tmp_path, "forms.toml", ISSUE_FORMS_TOML))

    assert config.mapped_field_ids() == {
        "leads": [434725, 434727, 434729, 434731, 434733, 600100, 600200],
        "contacts": [700300, 701000],
    }
