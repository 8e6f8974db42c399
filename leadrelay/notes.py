"""The note a manager reads in amoCRM: everything the visitor sent, readable."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from leadrelay.custom_fields import RefusedValue
from leadrelay.limits import MAX_FREE_TEXT_CHARS
from leadrelay.models import Submission

_QUESTION_KEYS = ("question", "q")
_ANSWER_KEYS = ("answer", "a")


def submission_note(submission: Submission, refused: Sequence[RefusedValue] = ()) -> str:
    """`refused`: values that no amoCRM field took, so the manager sees what is missing."""
    lines = [f"Заявка с формы «{submission.form}»"]
    for label, value in (
        ("Имя", submission.name),
        ("Телефон", submission.phone),
        ("Email", submission.email),
        ("Комментарий", submission.comment),
        ("Источник", submission.source),
        ("Страница", submission.page),
        ("Referrer", submission.referrer),
    ):
        if value:
            lines.append(f"{label}: {value}")
    if submission.utm:
        lines.append("UTM: " + ", ".join(f"{k}={v}" for k, v in submission.utm.items()))
    for key, value in submission.extras.items():
        answers = _answers(value)
        if answers:
            lines.append(f"Ответы ({key}):")
            lines.extend(f"{n}. {q} — {a}" for n, (q, a) in enumerate(answers, start=1))
        else:
            lines.extend(f"{path}: {text}" for path, text in _flatten(key, value))
    if refused:
        lines.append("Не записано в поля amoCRM:")
        lines.extend(f"- {r.field_name}: «{r.value}» ({r.reason})" for r in refused)
    if submission.truncated:
        cut = ", ".join(submission.truncated)
        lines.append(f"Обрезано до {MAX_FREE_TEXT_CHARS} символов: {cut}")
    lines.append(f"Получено: {submission.received_at} · {note_marker(submission)}")
    return "\n".join(lines)


def note_marker(submission: Submission) -> str:
    """Unique to the submission, so its note can be found again in amoCRM."""
    return f"id {submission.submission_id[:16]}"


def rule_text(text: str, marker: str) -> str:
    """A rule's note or task text, marked so that it can be found again in amoCRM."""
    return f"{text} · {marker}"


def rule_marker(event_key: str, rule: str) -> str:
    """Unique to one rule acting on one event, so its note or task can be found again."""
    return f"id {hashlib.sha256(f'{event_key}/{rule}'.encode()).hexdigest()[:16]}"


def _answers(value: Any) -> list[tuple[str, str]]:
    """A list of {question, answer} (or {q, a}) objects, as quiz forms send them."""
    if not isinstance(value, list) or not value:
        return []
    pairs = []
    for item in value:
        if not isinstance(item, dict):
            return []
        question = next((item[k] for k in _QUESTION_KEYS if k in item), None)
        answer = next((item[k] for k in _ANSWER_KEYS if k in item), None)
        if question is None or answer is None:
            return []
        pairs.append((str(question), _scalar(answer)))
    return pairs


def _flatten(path: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(f"{path}.{key}", inner)
    elif isinstance(value, list) and _answers(value):
        answers = _answers(value)
        yield path, "; ".join(f"{q} — {a}" for q, a in answers)
    else:
        yield path, _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
