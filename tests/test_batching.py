"""Batched creates and notes: many people per amoCRM request, still exactly once each."""

from __future__ import annotations

from typing import Any

from amocrm.models import NewLead, NewNote
from workflows.batcher import (
    BatchRequest,
    _round_robin_by_form,
    _split,
)

COMPLEX = "/api/v4/leads/complex"
NOTES = "/api/v4/leads/notes"


def writes(requests: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] == "POST" and r["path"] == path]


def _request(form: str, n: int) -> BatchRequest:
    return BatchRequest(f"lead-{n}", form, lead=NewLead(f"L{n}", None, None, [], request_id=str(n)))


def test_batches_take_forms_in_turn() -> None:
    pending = [_request("a", n) for n in range(5)] + [_request("b", 10), _request("b", 11)]
    order = [r.request_id for r in _round_robin_by_form(pending)]
    assert order == ["0", "10", "1", "11", "2", "3", "4"]


def test_a_refused_batch_splits_named_items_off_else_in_halves() -> None:
    batch = [_request("a", n) for n in range(5)]
    named = _split(batch, {"3"})
    assert [[r.request_id for r in part] for part in named] == [["3"], ["0", "1", "2", "4"]]
    halves = _split(batch, set())
    assert [[r.request_id for r in part] for part in halves] == [["0", "1"], ["2", "3", "4"]]
    note = BatchRequest("lead-1", "a", note=NewNote(1, "text", request_id="id 1"))
    assert note.request_id == "id 1"
