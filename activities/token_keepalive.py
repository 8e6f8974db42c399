"""Keeping an OAuth refresh token alive: amoCRM lets one lapse after three months unused."""

from __future__ import annotations

from temporalio import activity

from activities.amocrm import to_application_error
from amocrm.client import AmoClient
from amocrm.errors import AmoError


class TokenKeepAliveActivities:
    def __init__(self, client: AmoClient) -> None:
        self._client = client

    @activity.defn(name="amocrm.keep_token_alive")
    async def keep_token_alive(self, max_age_seconds: float) -> bool:
        """Whether the pair was older than `max_age_seconds` and so was refreshed."""
        try:
            return await self._client.keep_token_alive(max_age_seconds)
        except AmoError as err:
            activity.logger.warning("amoCRM token keep-alive failed: %s", err)
            raise to_application_error(err) from err
