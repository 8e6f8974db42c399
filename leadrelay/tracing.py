"""OpenTelemetry tracing for one process, configured by the standard OTEL_* variables.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
then spans go by OTLP over `grpc` or `http/protobuf` (`OTEL_EXPORTER_OTLP_PROTOCOL`, default
`http/protobuf` as the specification says). The exporters, the sampler and the batch
processor read their own OTEL_* variables; `OTEL_SERVICE_NAME` overrides the process's name.

Spans carry no tokens and no bodies. URLs lose their query string (amoCRM's contact search
puts the phone's digits there, webhooks their `?token=`) and their path is masked like a
log line, so a phone or an email appears only inside a workflow id.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import (
    AsyncOpenTelemetryTransport,
    RequestInfo,
    ResponseInfo,
)
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.util.types import AttributeValue
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.opentelemetry.workflow import completed_span

from leadrelay.logs import mask

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
PROTOCOLS = ("http/protobuf", "grpc")
URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.path")
TRACEPARENT = "traceparent"


class Tracing:
    """One process's tracer provider; with none, every method is a no-op."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider

    @classmethod
    def from_environment(
        cls, service_name: str, environ: Mapping[str, str] | None = None
    ) -> Tracing:
        env = os.environ if environ is None else environ
        if not any(env.get(name) for name in ENDPOINT_VARIABLES):
            return cls(None)
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: service_name}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(_exporter(env)))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def tracer(self, name: str) -> trace.Tracer:
        return self.provider.get_tracer(name) if self.provider else trace.NoOpTracer()

    def temporal_interceptors(self) -> list[Interceptor]:
        """For `connect`: client calls, and the workflows and activities of every worker
        built on that client, join the caller's trace through Temporal headers."""
        if self.provider is None:
            return []
        return [TracingInterceptor(self.tracer("temporalio"))]

    def http_transport(self, peer: str) -> httpx.AsyncBaseTransport | None:
        """A transport for one httpx client whose requests become spans named
        `<peer> <METHOD> <path>`, with `<peer>.method` and `<peer>.path`."""
        if self.provider is None:
            return None

        async def name_and_redact(span: trace.Span, request: RequestInfo) -> None:
            path = _path_of(request.url)
            method = request.method.decode()
            span.update_name(f"{peer} {method} {path}")
            span.set_attribute(f"{peer}.method", method)
            span.set_attribute(f"{peer}.path", path)
            redact_url_attributes(span)

        async def keep_redacted(
            span: trace.Span, request: RequestInfo, response: ResponseInfo
        ) -> None:
            redact_url_attributes(span)

        return AsyncOpenTelemetryTransport(
            httpx.AsyncHTTPTransport(),
            tracer_provider=self.provider,
            request_hook=name_and_redact,
            response_hook=keep_redacted,
        )

    def shutdown(self) -> None:
        """Sends the spans still buffered."""
        if self.provider is not None:
            self.provider.shutdown()


def _exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = next((env[name] for name in PROTOCOL_VARIABLES if env.get(name)), PROTOCOLS[0])
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use one of {PROTOCOLS}")
    return OTLPSpanExporter()


def redact_url(url: str) -> str:
    """Without its query string, and with phones and emails in the path masked."""
    parts = urlsplit(url)
    return mask(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


def redact_url_attributes(span: trace.Span) -> None:
    """Overwrites the URL attributes an instrumentation has set, and drops `url.query`."""
    attributes: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    for name in URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str):
            span.set_attribute(name, redact_url(value))
    if "url.query" in attributes:
        span.set_attribute("url.query", "")


def annotate_span(**attributes: AttributeValue) -> None:
    """Adds `leadrelay.<name>` attributes to the current span, if one is recording."""
    span = trace.get_current_span()
    if span.is_recording():
        for name, value in attributes.items():
            span.set_attribute(f"leadrelay.{name}", value)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with work done later."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get(TRACEPARENT)


def link_members(batch: str, members: Sequence[tuple[str, str | None]]) -> None:
    """Fan-in: the current span (one request for many leads) gets `leadrelay.batch`, the
    members' workflow ids in `leadrelay.workflow_ids`, and a link to each member's trace,
    given as (workflow id, traceparent), that carries its `leadrelay.workflow_id`."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    for workflow_id, traceparent in members:
        linked = trace.get_current_span(extract({TRACEPARENT: traceparent or ""}))
        if linked.get_span_context().is_valid:
            span.add_link(linked.get_span_context(), {"leadrelay.workflow_id": workflow_id})
    span.set_attribute("leadrelay.batch", batch)
    span.set_attribute("leadrelay.workflow_ids", [workflow_id for workflow_id, _ in members])


def workflow_span(name: str, **attributes: AttributeValue) -> None:
    """In workflow code: a finished span with `leadrelay.<name>` attributes in the
    workflow's trace. Replay-safe (none while replaying); none when it is not traced."""
    if trace.get_current_span().get_span_context().is_valid:
        completed_span(
            name, attributes={f"leadrelay.{key}": value for key, value in attributes.items()}
        )


@contextmanager
def continued_trace(traceparent: str | None) -> Iterator[None]:
    """Makes a stored traceparent the current context, so spans started inside join it."""
    if not traceparent:
        yield
        return
    token = otel_context.attach(extract({TRACEPARENT: traceparent}))
    try:
        yield
    finally:
        otel_context.detach(token)


def _path_of(url: httpx.URL | tuple[bytes, bytes, int | None, bytes]) -> str:
    """The path of a request's URL, given whole or as the raw (scheme, host, port, target)."""
    if isinstance(url, httpx.URL):
        return url.path
    return httpx.URL(url[3].decode("ascii")).path
