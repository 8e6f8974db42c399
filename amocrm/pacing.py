"""Spacing of amoCRM requests inside one worker process.

The Temporal server's queue limit is a token bucket: after an idle spell it releases
about ceil(rps) tasks at once and then refills at rps, so a one-second window at the
start of a burst can hold nearly twice the budget (measured here: 11 requests in one
second at a limit of 5). amoCRM counts requests per second, so this pacer spreads
what the server dispatched to at most `rate` per second.
"""

from __future__ import annotations

import asyncio
import time


class RequestPacer:
    def __init__(self, rate: float, *, margin: float = 0.05) -> None:
        # The margin absorbs jitter between leaving here and arriving at amoCRM: rate+1
        # requests span 1.05 s, so only jitter above 50 ms can put them in one second.
        self._interval = (1.0 / rate) * (1.0 + margin)
        self._next_slot = 0.0
        self._lock = asyncio.Lock()

    async def wait_turn(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next_slot > now:
                await asyncio.sleep(self._next_slot - now)
                now = time.monotonic()
            self._next_slot = now + self._interval
