"""leadrelay's payload converter: UTF-8 JSON that never carries a lone surrogate."""

from __future__ import annotations

from leadrelay.models import FailureKind, LeadError, Submission
from leadrelay.payloads import DATA_CONVERTER


def test_a_lone_surrogate_reaches_a_workflow_as_replacement() -> None:
    """An escaped surrogate would reach the workflow, then every activity that sends it on
    (httpx writes JSON as UTF-8) would fail on each attempt: a wedged workflow."""
    converter = DATA_CONVERTER.payload_converter
    submission = Submission(
        "s1", "proftest", "2026-12-03T06:00:00+00:00", name="Айгерим \ud83d", comment="\ude00!"
    )
    [payload] = converter.to_payloads([submission])
    text = payload.data.decode("utf-8")
    assert "Айгерим \ufffd" in text
    [received] = converter.from_payloads([payload], [Submission])
    assert (received.name, received.comment) == ("Айгерим \ufffd", "\ufffd!")


def test_text_without_surrogates_is_utf8_not_escaped() -> None:
    [payload] = DATA_CONVERTER.payload_converter.to_payloads([{"name": "Айгерим 😀"}])
    assert payload.data == '{"name":"Айгерим 😀"}'.encode()


def test_a_lead_error_of_any_stored_kind_decodes() -> None:
    """A state carried by continue-as-new may hold any failure type's name: ours read as the
    enum, any other as OTHER, so no stored state fails to decode."""
    converter = DATA_CONVERTER.payload_converter
    for stored, kind in (
        ("AmoRejected", FailureKind.REJECTED),
        ("TimeoutError", FailureKind.OTHER),
    ):
        [payload] = converter.to_payloads([{"kind": stored, "message": "m", "at": "t"}])
        [error] = converter.from_payloads([payload], [LeadError])
        assert error.kind is kind
