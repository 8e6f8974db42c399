"""Where the client's Bearer token comes from: a long-lived token, or an OAuth2 pair.

An OAuth refresh rotates the refresh token, and two concurrent refreshes can revoke each
other ("Token has been revoked"). So `OAuthTokens` refreshes one at a time across all
workers and processes: an asyncio lock in-process, the store's exclusive lock across
processes, and, once inside, a re-read of the store in case someone else just refreshed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from amocrm.errors import AmoAuthError, AmoOutcomeUnknown, AmoRejected
from amocrm.token_store import TokenPair, TokenStore

TokenGrant = Callable[[dict[str, str]], Awaitable[Any]]
"""POSTs a grant to amoCRM's /oauth2/access_token (paced like any request); its JSON answer."""

DEFAULT_REFRESH_MARGIN_SECONDS = 600.0

REAUTHORIZE = (
    "re-authorize the integration in amoCRM and start again from the new authorization code "
    '(README, "amoCRM OAuth2")'
)


class TokenSource(Protocol):
    async def access_token(self, grant: TokenGrant) -> str: ...

    async def refresh_after_unauthorized(self, rejected: str, grant: TokenGrant) -> str | None:
        """A token to retry with after amoCRM answered 401 to `rejected`, or None to give up."""
        ...

    async def keep_alive(self, max_age_seconds: float, grant: TokenGrant) -> bool:
        """Refresh if the pair is older than that, so the refresh token never lapses unused."""
        ...


@dataclass(frozen=True)
class LongLivedToken:
    """A private integration's token: nothing to refresh, so a 401 is for a human to fix."""

    token: str

    async def access_token(self, grant: TokenGrant) -> str:
        return self.token

    async def refresh_after_unauthorized(self, rejected: str, grant: TokenGrant) -> str | None:
        return None

    async def keep_alive(self, max_age_seconds: float, grant: TokenGrant) -> bool:
        return False


@dataclass(frozen=True)
class OAuthApp:
    client_id: str
    client_secret: str
    redirect_uri: str


def refresh_grant(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token}


def code_grant(code: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code}


class OAuthTokens:
    """The pair in `store`, refreshed shortly before it expires and once after a 401.

    `first_grant` (an authorization code, or a refresh token from the integration's page)
    is used only while the store is empty; after that the store's rotated pair is the truth.
    """

    def __init__(
        self,
        app: OAuthApp,
        store: TokenStore,
        *,
        first_grant: dict[str, str] | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN_SECONDS,
    ) -> None:
        self._app = app
        self._store = store
        self._first_grant = first_grant
        self._refresh_margin = refresh_margin
        self._pair: TokenPair | None = None
        self._lock = asyncio.Lock()

    async def access_token(self, grant: TokenGrant) -> str:
        pair = self._pair or await self._store.load()
        if pair is not None and pair.expires_at - time.time() > self._refresh_margin:
            self._pair = pair
            return pair.access_token
        stale = pair.access_token if pair else None
        renewed, _ = await self._renew(grant, lambda stored: stored.access_token == stale)
        return renewed.access_token

    async def refresh_after_unauthorized(self, rejected: str, grant: TokenGrant) -> str:
        renewed, _ = await self._renew(grant, lambda stored: stored.access_token == rejected)
        return renewed.access_token

    async def keep_alive(self, max_age_seconds: float, grant: TokenGrant) -> bool:
        _, refreshed = await self._renew(
            grant, lambda stored: time.time() - stored.updated_at >= max_age_seconds
        )
        return refreshed

    async def _renew(
        self, grant: TokenGrant, needs_refresh: Callable[[TokenPair], bool]
    ) -> tuple[TokenPair, bool]:
        """The current pair, refreshed first if `needs_refresh` says so of the stored one.

        Shielded: cancelling the caller (an activity timeout) mid-refresh must not lose a
        pair amoCRM has already rotated, nor release the lock before the pair is saved.
        """
        return await asyncio.shield(self._renew_exclusively(grant, needs_refresh))

    async def _renew_exclusively(
        self, grant: TokenGrant, needs_refresh: Callable[[TokenPair], bool]
    ) -> tuple[TokenPair, bool]:
        async with self._lock:
            if self._pair is not None and not needs_refresh(self._pair):
                return self._pair, False
            async with self._store.exclusive():
                stored = await self._store.load()
                if stored is not None and not needs_refresh(stored):
                    self._pair = stored
                    return stored, False
                pair = await self._exchange(grant, self._next_grant(stored))
                await self._store.save(pair)
                self._pair = pair
                return pair, True

    def _next_grant(self, stored: TokenPair | None) -> dict[str, str]:
        if stored is not None:
            return refresh_grant(stored.refresh_token)
        if self._first_grant is None:
            raise AmoAuthError(f"the amoCRM token store is empty; {REAUTHORIZE}")
        return self._first_grant

    async def _exchange(self, grant: TokenGrant, fields: dict[str, str]) -> TokenPair:
        # An answer lost on the way is an unknown outcome like any other: with Kommo's
        # rotation the old refresh token still works for the retry; with immediate
        # revocation it does not, and the retry ends in the re-authorize error below.
        try:
            answer = await grant(
                {
                    "client_id": self._app.client_id,
                    "client_secret": self._app.client_secret,
                    "redirect_uri": self._app.redirect_uri,
                    **fields,
                }
            )
        except (AmoAuthError, AmoRejected) as err:
            raise AmoAuthError(
                f"amoCRM refused the {fields['grant_type']} grant ({err}); {REAUTHORIZE}",
                status=err.status,
                request_id=err.request_id,
            ) from err
        now = int(time.time())
        try:
            return TokenPair(
                access_token=str(answer["access_token"]),
                refresh_token=str(answer["refresh_token"]),
                expires_at=now + int(answer["expires_in"]),
                updated_at=now,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise AmoOutcomeUnknown(f"/oauth2/access_token answered without a pair: {err}") from err
