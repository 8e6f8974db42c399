"""Prometheus metrics of one API app, served at `GET /metrics`.

Each app has its own registry, so apps in one process (as in the tests) never share counts.
Labels come from route templates and our own answers, never from raw paths: a caller
who makes up form or hook names cannot make up series.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.delivery import Delivery
from api.outbox import OutboxDrainer

UNMATCHED_ROUTE = "unmatched"
# Any token is a method to some HTTP parsers; the rest are counted as one.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

router = APIRouter()


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadrelay_api_requests",
            "HTTP requests answered, by route template",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadrelay_api_request_seconds",
            "Time to answer an HTTP request",
            ["route", "method"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "leadrelay_outbox_depth",
            "Deliveries waiting in the API's outbox for Temporal",
            registry=self.registry,
        )
        # No form label: form names come from the URL, and unknown forms are accepted too.
        self.leads_accepted = Counter(
            "leadrelay_leads_accepted",
            "Landing submissions answered 202",
            ["delivered_via"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "leadrelay_webhooks",
            "amoCRM webhooks by outcome: events, raw (kept for an operator) or unauthorized",
            ["hook", "outcome"],
            registry=self.registry,
        )
        self.chat_messages = Counter(
            "leadrelay_chat_messages",
            "amoCRM chat-message items (message[add]): counted only, or delivered when a rule "
            "has action 'message'",
            ["hook", "outcome"],
            registry=self.registry,
        )

        self.outbox_oldest_age = Gauge(
            "leadrelay_outbox_oldest_age_seconds",
            "Age of the oldest delivery waiting in the outbox; 0 when it is empty",
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "leadrelay_outbox_dead_letters",
            "Deliveries Temporal refused for good, waiting for an operator",
            registry=self.registry,
        )
        self.drainer_alive = Gauge(
            "leadrelay_outbox_drainer_alive",
            "1 while the outbox drainer loop runs",
            registry=self.registry,
        )
        self.throttled = Counter(
            "leadrelay_intake_throttled",
            "Requests answered 429: per person (contact key) or per client address",
            ["limit"],
            registry=self.registry,
        )
        self.honeypot_dropped = Counter(
            "leadrelay_honeypot_dropped",
            "Landing submissions that filled a form's honeypot field: answered 202, dropped",
            registry=self.registry,
        )

    def track_outbox(self, delivery: Delivery, drainer: OutboxDrainer) -> None:
        """Read at scrape time from memory, so this costs nothing."""
        outbox = delivery.outbox
        self.outbox_depth.set_function(lambda: outbox.depth)
        self.outbox_oldest_age.set_function(lambda: outbox.oldest_age_seconds)
        self.dead_letters.set_function(lambda: outbox.dead_letters)
        self.drainer_alive.set_function(lambda: float(drainer.alive))

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        route = _route_template(scope)
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


class MetricsMiddleware:
    """Pure ASGI, so the ack path pays for two clock reads and a few label look-ups; what a
    route accepted is counted by the route itself, which knows it."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        # An exception that escapes the app becomes a 500 in the server-error middleware.
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, observe)
        finally:
            self._metrics.record(scope, status, time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    # The router stores the matched route in the scope we passed down.
    route: Any = scope.get("route")
    return route.path if route is not None else UNMATCHED_ROUTE


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
