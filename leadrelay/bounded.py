"""Cutting what one caller sent down to the documented bounds (`leadrelay.limits`)."""

from __future__ import annotations

import dataclasses

from leadrelay.limits import CUT_TEXT_CHARS
from leadrelay.models import Submission

CUT_NOTICE_FIELD = "Обрезано"
"""The field a cut submission's note shows, saying what was cut and where the rest is."""


def cut_text(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


def cut_submission(submission: Submission, where_whole: str) -> Submission:
    """The submission with its contact fields, form and UTM (texts cut to `CUT_TEXT_CHARS`),
    and a notice in place of its other fields; `where_whole` says where it is kept whole."""

    def short(text: str | None) -> str | None:
        return cut_text(text, CUT_TEXT_CHARS)

    extra_fields = len(submission.extras)
    long_texts = [
        label
        for label, text in (
            ("name", submission.name),
            ("comment", submission.comment),
            ("source", submission.source),
            ("page", submission.page),
            ("referrer", submission.referrer),
        )
        if text is not None and len(text) > CUT_TEXT_CHARS
    ]
    notice = (
        f"очередь заявок этого человека была полна, поэтому заявка сокращена: "
        f"полей формы убрано {extra_fields}, тексты обрезаны до {CUT_TEXT_CHARS} символов"
        + (f" ({', '.join(long_texts)})" if long_texts else "")
        + f". Полностью заявка сохранена в {where_whole}."
    )
    return dataclasses.replace(
        submission,
        name=short(submission.name),
        comment=short(submission.comment),
        source=short(submission.source),
        page=short(submission.page),
        referrer=short(submission.referrer),
        utm={key[:64]: short(value) or "" for key, value in list(submission.utm.items())[:10]},
        extras={CUT_NOTICE_FIELD: notice},
    )
