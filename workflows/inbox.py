"""Items signalled to a long-lived workflow: deduplicated, bounded, handled one at a time.

The lists live in the workflow's state dataclass, so continue-as-new carries them. What is
pending is bounded in payload bytes, so the carried state always fits in one Temporal
payload whatever a caller sends: past the budget a new item is kept cut, and one that does
not fit even cut is refused (the workflow dead-letters or counts it).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from temporalio import workflow

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Item = TypeVar("Item")
Start = TypeVar("Start", bound="DataclassInstance")


class Offered(StrEnum):
    QUEUED = "queued"
    CUT = "cut"
    REPEAT = "repeat"
    REFUSED = "refused"


async def continue_as_new_if_due(handled_this_run: int, limit: int, next_input: Any) -> None:
    """Start afresh before the history grows large; the state travels in `next_input`."""
    if handled_this_run >= limit or history_is_full():
        await continue_as_new_now(next_input)


def next_run(start: Start, state: Any) -> Start:
    """The next run's input: this run's `start` carrying `state`, with one more run counted."""
    return dataclasses.replace(start, carried=dataclasses.replace(state, runs=state.runs + 1))


async def continue_as_new_now(next_input: Any) -> None:
    await workflow.wait_condition(workflow.all_handlers_finished)
    workflow.continue_as_new(next_input)


def history_is_full() -> bool:
    """Temporal suggests continuing as new well before the history's hard limits. Every
    signal is an event, repeats included, so waiting workflows must check too."""
    return workflow.info().is_continue_as_new_suggested()


def payload_size(value: Any) -> int:
    """Bytes `value` takes as a Temporal payload, with the worker's own converter."""
    return workflow.payload_converter().to_payloads([value])[0].ByteSize()


class Inbox(Generic[Item]):
    def __init__(
        self,
        pending: list[Item],
        handled_ids: list[str],
        id_of: Callable[[Item], str],
        *,
        remember: int,
        budget_bytes: int,
        cut: Callable[[Item], Item],
    ) -> None:
        self._pending = pending
        self._handled_ids = handled_ids
        self._id_of = id_of
        self._remember = remember
        self._budget = budget_bytes
        self._cut = cut
        self._sizes: dict[str, int] = {}

    def offer(self, item: Item) -> Offered:
        """Queue the item, whole while the budget allows, else cut, else refuse it."""
        item_id = self._id_of(item)
        if item_id in self._handled_ids or any(self._id_of(p) == item_id for p in self._pending):
            return Offered.REPEAT
        room = self._budget - sum(self._size_of(p) for p in self._pending)
        size = payload_size(item)
        if size <= room:
            self._queue(item, size)
            return Offered.QUEUED
        cut = self._cut(item)
        size = payload_size(cut)
        if size <= room:
            self._queue(cut, size)
            return Offered.CUT
        return Offered.REFUSED

    async def next(
        self, quiet_window: timedelta, wake_also: Callable[[], bool] = lambda: False
    ) -> Item | None:
        """The oldest pending item; None once nothing arrived for `quiet_window` (or when
        `wake_also` became true first)."""
        if not self._pending and not wake_also():
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: bool(self._pending) or wake_also(), timeout=quiet_window
                )
        return self._pending[0] if self._pending else None

    def done(self, item: Item) -> None:
        self._pending.remove(item)
        item_id = self._id_of(item)
        self._sizes.pop(item_id, None)
        self._handled_ids.append(item_id)
        del self._handled_ids[: -self._remember]

    def _queue(self, item: Item, size: int) -> None:
        self._pending.append(item)
        self._sizes[self._id_of(item)] = size

    def _size_of(self, item: Item) -> int:
        item_id = self._id_of(item)
        if item_id not in self._sizes:
            self._sizes[item_id] = payload_size(item)
        return self._sizes[item_id]
