"""The sandbox's OAuth2 server: one integration, its codes and its rotating token pairs.

Every grant issues a new access token and a new refresh token. Kommo documents that the
old refresh token keeps working until the new one is first used; amoCRM's Russian docs
say it dies at once (`revoke_old_immediately`). Access tokens live until they expire.
"""

import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

JSON = Any

REVOKED_HINT = "Token has been revoked"


class OAuthRefusal(Exception):
    def __init__(self, status: int, hint: str) -> None:
        super().__init__(hint)
        self.status = status
        self.hint = hint


@dataclass
class RefreshToken:
    replaces: str | None  # the refresh token this one was issued for
    used: bool = False
    revoked: bool = False


@dataclass(frozen=True)
class Grant:
    t: float
    grant_type: str
    status: int


@dataclass
class OAuthServer:
    client_id: str
    client_secret: str
    redirect_uri: str
    access_token_ttl: int
    revoke_old_immediately: bool
    codes: set[str] = field(default_factory=set)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expires at
    grants: list[Grant] = field(default_factory=list)

    def seed_refresh_token(self, token: str) -> None:
        self.refresh_tokens[token] = RefreshToken(replaces=None)

    def accepts(self, access_token: str, now: float) -> bool:
        return self.access_tokens.get(access_token, 0.0) > now

    def expire_access_tokens(self, now: float) -> None:
        self.access_tokens = dict.fromkeys(self.access_tokens, now)

    def grant(self, request: dict[str, JSON], now: float) -> dict[str, JSON]:
        grant_type = str(request.get("grant_type"))
        try:
            answer = self._grant(grant_type, request, now)
        except OAuthRefusal as refusal:
            self.grants.append(Grant(now, grant_type, refusal.status))
            raise
        self.grants.append(Grant(now, grant_type, 200))
        return answer

    def _grant(self, grant_type: str, request: dict[str, JSON], now: float) -> dict[str, JSON]:
        if (request.get("client_id"), request.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            raise OAuthRefusal(401, "Client authentication failed")
        if request.get("redirect_uri") != self.redirect_uri:
            raise OAuthRefusal(400, "Redirect URI mismatch")
        if grant_type == "authorization_code":
            code = request.get("code")
            if code not in self.codes:
                raise OAuthRefusal(400, "Authorization code has been revoked")
            self.codes.discard(code)
            return self._issue(replaces=None, now=now)
        if grant_type == "refresh_token":
            token = str(request.get("refresh_token"))
            self._use(token)
            return self._issue(replaces=token, now=now)
        raise OAuthRefusal(400, "The authorization grant type is not supported")

    def _use(self, token: str) -> None:
        record = self.refresh_tokens.get(token)
        if record is None or record.revoked:
            raise OAuthRefusal(400, REVOKED_HINT)
        if not record.used and record.replaces in self.refresh_tokens:
            # Kommo: the first use of a new refresh token ends the one it replaced.
            self.refresh_tokens[record.replaces].revoked = True
        record.used = True
        record.revoked = self.revoke_old_immediately

    def _issue(self, *, replaces: str | None, now: float) -> dict[str, JSON]:
        access_token = f"oauth-access-{secrets.token_urlsafe(16)}"
        refresh_token = f"oauth-refresh-{secrets.token_urlsafe(16)}"
        self.access_tokens[access_token] = now + self.access_token_ttl
        self.refresh_tokens[refresh_token] = RefreshToken(replaces=replaces)
        return {
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "access_token": access_token,
            "refresh_token": refresh_token,
        }

    def as_json(self) -> dict[str, JSON]:
        refreshes = [g for g in self.grants if g.grant_type == "refresh_token" and g.status == 200]
        return {
            "refreshes": len(refreshes),
            "refreshed_at": [grant.t for grant in refreshes],
            "grants": [asdict(grant) for grant in self.grants],
            "access_token_ttl": self.access_token_ttl,
            "revoke_old_immediately": self.revoke_old_immediately,
        }
