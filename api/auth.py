"""Secrets callers present: compared as bytes in constant time, so any text (non-ASCII
included) is a plain mismatch, never an error."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, status

from api.deps import SettingsDep
from leadrelay.settings import Settings


def same_secret(given: str, expected: str | None) -> bool:
    """False when no secret is configured: an unset secret disables what it guards."""
    if not expected:
        return False
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


AuthorizationHeader = Annotated[str, Header()]


def is_admin(settings: Settings, authorization: str) -> bool:
    """The request carries `Authorization: Bearer <ADMIN_TOKEN>`."""
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and same_secret(token.strip(), settings.admin_token)


async def require_admin(settings: SettingsDep, authorization: AuthorizationHeader = "") -> None:
    if not is_admin(settings, authorization):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "needs Authorization: Bearer <ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminOnly = Depends(require_admin)
