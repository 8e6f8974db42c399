"""Which amoCRM credentials the settings describe: a long-lived token, or OAuth2."""

from __future__ import annotations

from amocrm.auth import (
    LongLivedToken,
    OAuthApp,
    OAuthTokens,
    TokenSource,
    code_grant,
    refresh_grant,
)
from amocrm.token_store import FileTokenStore
from leadrelay.settings import Settings


def oauth_app(settings: Settings) -> OAuthApp | None:
    """The OAuth integration in use; None when a long-lived token is set (it wins) or no
    OAuth client is configured."""
    if settings.amocrm_access_token or not (
        settings.amocrm_client_id and settings.amocrm_client_secret
    ):
        return None
    if not settings.amocrm_redirect_uri:
        raise SystemExit("AMOCRM_REDIRECT_URI must be set with AMOCRM_CLIENT_ID (amoCRM checks it)")
    return OAuthApp(
        settings.amocrm_client_id, settings.amocrm_client_secret, settings.amocrm_redirect_uri
    )


def token_source(settings: Settings) -> TokenSource:
    if settings.amocrm_access_token:
        return LongLivedToken(settings.amocrm_access_token)
    app = oauth_app(settings)
    if app is None:
        raise SystemExit(
            "set AMOCRM_ACCESS_TOKEN, or AMOCRM_CLIENT_ID and AMOCRM_CLIENT_SECRET for OAuth2"
        )
    first_grant = None
    if settings.amocrm_refresh_token:
        first_grant = refresh_grant(settings.amocrm_refresh_token)
    elif settings.amocrm_authorization_code:
        first_grant = code_grant(settings.amocrm_authorization_code)
    return OAuthTokens(app, FileTokenStore(settings.amocrm_token_store), first_grant=first_grant)
