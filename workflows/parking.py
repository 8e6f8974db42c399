"""Parking: an item whose failure retrying cannot fix waits for an operator.

Every long-lived workflow handles its items through `Parking.handle`. The operator's
`retry` signal tries the item again (after the forms file or the token was fixed, say);
`skip` sets it aside, and the workflow goes on with the next one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.inbox import continue_as_new_if_due, continue_as_new_now, history_is_full


class Decision(StrEnum):
    RETRY = "retry"
    SKIP = "skip"


class Handled(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    # Parked, and the workflow must continue as new before a decision came (see `handle`).
    INTERRUPTED = "interrupted"


def _never() -> bool:
    return False


class Parking:
    """One run's parking: the decision awaited, and how many items this run has handled."""

    def __init__(self) -> None:
        self._decision: Decision | None = None
        self._handled_this_run = 0

    async def take_turn(
        self,
        attempt: Callable[[], Awaitable[None]],
        park: Callable[[ActivityError], None],
        finish: Callable[[bool], None],
        *,
        parked: bool,
        next_run: Callable[[], Any],
        per_run: int,
    ) -> None:
        """Handles the inbox's head item (see `handle`), then `finish(done)`: done, or skipped.

        While it is parked and the history fills, and after `per_run` items or once the
        history is full, the workflow continues as new with `next_run()`; a parked item
        travels along.
        """
        handled = await self.handle(attempt, park, parked=parked, give_way=history_is_full)
        if handled is Handled.INTERRUPTED:
            await continue_as_new_now(next_run())
        finish(handled is Handled.DONE)
        self._handled_this_run += 1
        await continue_as_new_if_due(self._handled_this_run, per_run, next_run())

    def decide(self, decision: Decision) -> None:
        """From a signal; a decision sent while nothing is parked is dropped."""
        self._decision = decision

    async def handle(
        self,
        attempt: Callable[[], Awaitable[None]],
        park: Callable[[ActivityError], None],
        *,
        parked: bool = False,
        give_way: Callable[[], bool] = _never,
    ) -> Handled:
        """Runs `attempt` until it succeeds or the operator skips the item. A failure calls
        `park` (record it, say why) and waits for the operator's decision.

        `parked`: the item was parked by an earlier run, so the decision comes first.
        `give_way`: while parked, stop waiting when it turns true (the history is full and
        the workflow must continue as new, carrying the parked item) and say INTERRUPTED.
        """
        waiting = parked
        while True:
            if not waiting:
                try:
                    await attempt()
                    return Handled.DONE
                except ActivityError as err:
                    park(err)
                    self._decision = None
            waiting = False
            await workflow.wait_condition(lambda: self._decided() or give_way())
            if not self._decided():
                return Handled.INTERRUPTED
            if self._decided_to_skip():
                return Handled.SKIPPED

    def _decided(self) -> bool:
        return self._decision is not None

    def _decided_to_skip(self) -> bool:
        return self._decision is Decision.SKIP


class OperatorSignals:
    """The operator's `retry` and `skip` signals of a workflow that parks items in `_parking`."""

    _parking: Parking

    @workflow.signal
    def retry(self) -> None:
        """Try the parked item again, e.g. after the forms file or the token was fixed."""
        self._parking.decide(Decision.RETRY)

    @workflow.signal
    def skip(self) -> None:
        """Set the parked item aside (kept in `skipped`) and go on with the next one."""
        self._parking.decide(Decision.SKIP)
