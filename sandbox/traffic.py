"""amoCRM's rate limit and the account block that repeated 429s bring on."""

import enum
from collections import deque
from dataclasses import dataclass, field

RATE_WINDOW_SECONDS = 1.0
BLOCK_MEMORY_SECONDS = 60.0


class Admission(enum.Enum):
    ADMITTED = "admitted"
    RATE_LIMITED = "rate_limited"
    BLOCKED = "blocked"


@dataclass
class TrafficControl:
    """Decides, on arrival and by monotonic time, whether a request may be handled."""

    arrivals: deque[float] = field(default_factory=deque)
    rate_limited_at: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0

    def admit(
        self, now: float, *, rate_limit: int, block_after_429s: int, block_seconds: float
    ) -> Admission:
        # Every arrival counts, refused ones too: a client that keeps hammering stays limited.
        self.arrivals.append(now)
        _forget_before(self.arrivals, now - RATE_WINDOW_SECONDS)
        if now < self.blocked_until:
            return Admission.BLOCKED
        if len(self.arrivals) <= rate_limit:
            return Admission.ADMITTED
        self.rate_limited_at.append(now)
        _forget_before(self.rate_limited_at, now - BLOCK_MEMORY_SECONDS)
        if len(self.rate_limited_at) >= block_after_429s:
            self.block(now, block_seconds)
        return Admission.RATE_LIMITED

    def block(self, now: float, seconds: float) -> None:
        self.blocked_until = now + seconds
        # A lifted block starts with a clean record, so it takes fresh 429s to block again.
        self.rate_limited_at.clear()


def _forget_before(times: deque[float], cutoff: float) -> None:
    while times and times[0] <= cutoff:
        times.popleft()
