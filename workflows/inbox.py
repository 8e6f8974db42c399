"""Items signalled to a long-lived workflow: deduplicated, then handled one at a time.

The lists live in the workflow's state dataclass, so continue-as-new carries them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio import workflow

Item = TypeVar("Item")


async def continue_as_new_if_due(handled_this_run: int, limit: int, next_input: Any) -> None:
    """Start afresh before the history grows large; the state travels in `next_input`."""
    if handled_this_run >= limit or workflow.info().is_continue_as_new_suggested():
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(next_input)


class Inbox(Generic[Item]):
    def __init__(
        self,
        pending: list[Item],
        handled_ids: list[str],
        id_of: Callable[[Item], str],
        *,
        remember: int = 1000,
    ) -> None:
        self._pending = pending
        self._handled_ids = handled_ids
        self._id_of = id_of
        self._remember = remember

    def offer(self, item: Item) -> bool:
        """Queue the item unless it was seen already; False means a repeat was dropped."""
        item_id = self._id_of(item)
        if item_id in self._handled_ids or any(self._id_of(p) == item_id for p in self._pending):
            return False
        self._pending.append(item)
        return True

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
        self._handled_ids.append(self._id_of(item))
        del self._handled_ids[: -self._remember]
