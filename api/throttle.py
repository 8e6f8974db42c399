"""Per-person and per-client bounds at intake, answered 429 with Retry-After.

Both are token buckets kept in this process's memory: O(1) work and no disk on the ack
path, and a fixed amount of memory whatever a flood sends (the least recently seen keys
are forgotten first). A restart forgets them, and each API replica counts for itself; the
lead workflow's own pending cap is the bound that holds across both.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import JSONResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TokenBuckets:
    """`burst` requests at once per key, then one every `per_seconds / burst` seconds."""

    def __init__(
        self,
        burst: int,
        per_seconds: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._rate = burst / per_seconds
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float | None:
        """None when admitted (one token spent); otherwise seconds until a token is back."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        admitted = tokens >= 1
        if admitted:
            tokens -= 1
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return None if admitted else (1 - tokens) / self._rate


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def parse_networks(spec: str) -> list[Network]:
    """`LEADRELAY_TRUSTED_PROXIES`: `10.0.0.1, 172.16.0.0/12` → networks."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()
    ]


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The first address, from the right of X-Forwarded-For, that is not a trusted proxy.

    The header is believed only when the connection comes from a trusted proxy, and only
    as far as the chain of trusted proxies goes: anything left of it is the caller's own
    claim and may be forged.
    """
    address = peer or "unknown"
    if not trusted or not forwarded_for or not _trusted(address, trusted):
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        if not hop:
            continue
        if not _trusted(hop, trusted):
            return hop[:64]
        address = hop
    return address


def _trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_key(request: Request) -> str:
    app = request.app
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), app.state.trusted_proxies)


def client_throttled(request: Request) -> JSONResponse | None:
    """The optional per-client-address limit (LEADRELAY_IP_LIMIT_PER_MINUTE): a 429, or None."""
    buckets: TokenBuckets | None = request.app.state.client_limit
    if buckets is None:
        return None
    wait = buckets.take(client_key(request))
    if wait is None:
        return None
    request.app.state.metrics.throttled.labels("client").inc()
    return too_many(wait, "too many requests from this address")


def person_throttled(request: Request, lead_key: str) -> JSONResponse | None:
    buckets: TokenBuckets = request.app.state.person_limit
    wait = buckets.take(lead_key)
    if wait is None:
        return None
    request.app.state.metrics.throttled.labels("person").inc()
    return too_many(wait, "too many submissions for this person; try again later")


def too_many(wait: float, detail: str) -> JSONResponse:
    return JSONResponse(
        status_code=429, content={"detail": detail}, headers=retry_after_header(wait)
    )
