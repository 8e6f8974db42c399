"""Spacing of amoCRM requests inside one worker process.

The Temporal server's queue limit is a token bucket: after an idle spell it releases
about ceil(rps) tasks at once and then refills at rps, so a one-second window at the
start of a burst can hold nearly twice the budget (the released burst plus a second's
refill). amoCRM counts requests per second, so this pacer spreads what the server
dispatched to at most `rate` per second.

Spacing alone is not a guarantee: amoCRM counts arrivals, and a request can arrive late
after its turn (a new connection, a busy event loop) and land in the same second as the
ones after it (rate + 1 arrivals within one second). So each process also holds
`floor(rate)` slots, and a slot taken by a request comes free one second after that
request's answer. Any `floor(rate) + 1` requests then include two whose arrivals lie a
full second apart, whatever the network did.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

WINDOW_SECONDS = 1.0


class RequestPacer:
    def __init__(self, rate: float, *, margin: float = 0.01) -> None:
        # The slots guarantee the ceiling; the margin only keeps them idle in the usual case:
        # rate+1 evenly spaced requests span 1.01 s, about one second plus a quick answer.
        self._interval = (1.0 / rate) * (1.0 + margin)
        self._next_turn = 0.0
        self._slot_free_at = [0.0] * max(1, math.floor(rate))
        self._queue = asyncio.Lock()
        self._released = asyncio.Event()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for this process's next turn and hold a slot while the request runs."""
        slot = await self._take_slot()
        try:
            yield
        finally:
            # The answer (or the failure) came after the request arrived, so one second
            # from now is at least one second after its arrival.
            self._slot_free_at[slot] = time.monotonic() + WINDOW_SECONDS
            self._released.set()

    async def _take_slot(self) -> int:
        async with self._queue:  # turns are given in the order they were asked for
            await _sleep_until(self._next_turn)
            while True:
                slot = min(range(len(self._slot_free_at)), key=self._slot_free_at.__getitem__)
                free_at = self._slot_free_at[slot]
                if free_at == math.inf:  # every slot is held by a request still running
                    self._released.clear()
                    await self._released.wait()
                elif free_at > time.monotonic():
                    await _sleep_until(free_at)
                else:
                    break
            self._slot_free_at[slot] = math.inf
            self._next_turn = time.monotonic() + self._interval
            return slot


async def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
