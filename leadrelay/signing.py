"""Signatures on forwarded events, so that a receiver can trust them and refuse replays.

`X-Leadrelay-Signature: t=<unix seconds>,v1=<hex>`, where the hex is HMAC-SHA256, keyed
with FORWARD_SIGNING_SECRET, of `<t>.<body>` (the timestamp, a dot, the raw body bytes), as
Stripe and Svix sign webhooks. Signing the timestamp with the body lets a receiver refuse an
old request replayed by someone who captured it: it checks the HMAC, then that `t` is
recent. A header may carry several `v1=` values (one per secret, while secrets rotate).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Leadrelay-Signature"
DEFAULT_TOLERANCE_SECONDS = 300
"""How old a signed request a receiver should accept, as Stripe's libraries default to."""


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: a `v1` matches the HMAC and `t` is within the tolerance."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, body, timestamp)
    return any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates)


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
