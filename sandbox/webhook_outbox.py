"""Where the sandbox sends its webhooks, and the record of every delivery it attempted."""

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

# amoCRM waits this long for an answer before it counts the delivery as failed.
DELIVERY_TIMEOUT_SECONDS = 2.0
WEBHOOK_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "User-Agent": "amoCRM-WebHook-client/1.0",
}
DEFAULT_SUBDOMAIN = "schoolkz"

WebhookStyle = Literal["account", "digital-pipeline"]
WebhookEvent = Literal["status", "note"]


class WebhookSubscription(BaseModel):
    """An account webhook (Settings, the full lead) or a Digital Pipeline stage trigger (short)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    events: list[WebhookEvent] = Field(default_factory=lambda: ["status"])
    style: WebhookStyle = "account"
    subdomain: str = DEFAULT_SUBDOMAIN
    account_id: int


@dataclass
class Delivery:
    index: int
    url: str
    body: str
    sent_at: float
    redelivery_of: int | None
    status_code: int | None = None  # both stay None while the answer is awaited
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class WebhookOutbox:
    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self.subscriptions: list[WebhookSubscription] = []
        self.deliveries: list[Delivery] = []
        # The event loop keeps only weak references to tasks; these keep sends alive to the end.
        self._in_flight: set[asyncio.Task[None]] = set()

    def subscribe(self, settings: list[dict[str, object]]) -> None:
        """Add them all, or none: raises pydantic's ValidationError if any settings are bad."""
        # A hook speaks for this account unless a test makes it claim to be another one.
        self.subscriptions += [
            WebhookSubscription.model_validate({"account_id": self.account_id} | one)
            for one in settings
        ]

    def send(self, url: str, body: str, redelivery_of: int | None = None) -> Delivery:
        """Record the delivery at once, so it is listed before the handler answers, then POST it
        in the background, as amoCRM does not hold up the change for its webhooks."""
        delivery = Delivery(len(self.deliveries), url, body, time.time(), redelivery_of)
        self.deliveries.append(delivery)
        task = asyncio.get_running_loop().create_task(_deliver(delivery))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return delivery

    def clear(self) -> None:
        """Forget subscriptions and deliveries; sends still in flight finish unrecorded."""
        self.subscriptions = []
        self.deliveries = []

    def redeliver(self, index: int) -> Delivery:
        original = self.deliveries[index]
        return self.send(original.url, original.body, redelivery_of=index)


async def _deliver(delivery: Delivery) -> None:
    try:
        async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_SECONDS) as client:
            response = await client.post(
                delivery.url, content=delivery.body, headers=WEBHOOK_HEADERS
            )
    except httpx.HTTPError as error:
        delivery.error = f"{type(error).__name__}: {error}"
    else:
        delivery.status_code = response.status_code
