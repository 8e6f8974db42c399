"""Configuration from environment variables; the names are a contract with operators."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AMOCRM_TASK_QUEUE = "amocrm"
"""The one rate-limited queue: every amoCRM request is an activity here."""

WORKFLOW_TASK_QUEUE = "leadrelay-workflows"
"""Workflows live apart from the amoCRM queue so eager activities cannot bypass its limit."""

IO_TASK_QUEUE = "leadrelay-io"
"""Calls that are not amoCRM requests (forwarding, Temporal deliveries) stay off its budget."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    amocrm_base_url: str | None = Field(
        default=None, description="amoCRM account URL, e.g. https://school.amocrm.ru"
    )
    amocrm_access_token: str | None = Field(default=None, description="Long-lived token")
    amocrm_client_id: str | None = Field(default=None, description="OAuth integration id")
    amocrm_client_secret: str | None = Field(default=None, description="OAuth secret key")
    amocrm_redirect_uri: str | None = Field(default=None, description="OAuth redirect URI")
    amocrm_refresh_token: str | None = Field(
        default=None, description="First OAuth refresh token, used only while the store is empty"
    )
    amocrm_authorization_code: str | None = Field(
        default=None,
        description="First OAuth authorization code, used only while the store is empty",
    )
    amocrm_token_store: Path = Field(
        default=Path(".data/amocrm-tokens.json"), description="The OAuth pair, shared by workers"
    )
    amocrm_token_keepalive_days: float = Field(
        default=7.0, gt=0, description="Refresh an OAuth pair older than this (daily check)"
    )
    amocrm_rps: float = Field(
        default=5.0, gt=0, lt=7, description="amoCRM requests per second for the whole deployment"
    )
    amocrm_workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes sharing AMOCRM_RPS; each paces itself to RPS / workers",
    )
    amocrm_timeout_seconds: float = Field(default=20.0, gt=0)
    amocrm_block_backoff_seconds: float = Field(
        default=300.0, gt=0, description="How long a worker stops calling amoCRM after a 403"
    )

    amocrm_account_subdomain: str | None = Field(
        default=None, description="When set, webhooks from another account are not acted on"
    )
    amocrm_account_id: int | None = None

    webhook_token: str | None = Field(
        default=None, description="Secret that amoCRM webhooks carry as ?token=; unset disables"
    )
    webhook_memory_seconds: float = Field(
        default=7200.0, gt=0, description="How long an entity workflow remembers events it saw"
    )
    forward_signing_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key for forwarded events"
    )
    reconcile_every_seconds: float = Field(
        default=600.0, gt=0, description="How often reconciliation reads amoCRM's events"
    )

    admin_token: str | None = Field(
        default=None, description="Bearer token for /api/admin; unset disables those endpoints"
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = Field(
        default=False,
        description="TLS with the system's CAs; implied by any TEMPORAL_TLS_* or TEMPORAL_API_KEY",
    )
    temporal_tls_ca: str | None = Field(
        default=None, description="CA of the Temporal frontend: a PEM file's path or PEM text"
    )
    temporal_tls_cert: str | None = Field(
        default=None, description="mTLS client certificate: a PEM file's path or PEM text"
    )
    temporal_tls_key: SecretStr | None = Field(
        default=None, description="mTLS client private key: a PEM file's path or PEM text"
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="Name to check the server certificate against (SNI)"
    )
    temporal_api_key: SecretStr | None = Field(
        default=None, description="Temporal Cloud API key, sent as a bearer token over TLS"
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    leadrelay_api_docs: bool = Field(
        default=False, description="Serve /docs, /redoc and /openapi.json (make run turns it on)"
    )
    leadrelay_api_metrics_address: str = Field(
        default="",
        description="host:port serving the API's /metrics apart from the API port; "
        "empty serves /metrics on the API port",
    )
    leadrelay_ip_limit_per_minute: int = Field(
        default=0,
        ge=0,
        description="Requests per client address per minute on the ingress "
        "routes; 0 turns the limit off",
    )
    leadrelay_trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks whose X-Forwarded-For is believed",
    )

    leadrelay_forms: Path | None = Field(default=None, description="Forms file (TOML or YAML)")
    leadrelay_phone_region: str = Field(default="KZ", description="Region for national numbers")
    leadrelay_field_catalogue_ttl_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a worker uses amoCRM's field catalogues before reading them again",
    )
    leadrelay_quiet_window_seconds: float = Field(
        default=1800.0, gt=0, description="How long a lead workflow waits for more submissions"
    )
    leadrelay_ack_deadline_ms: float = Field(
        default=300.0, gt=0, description="How long an answer may wait on Temporal before the outbox"
    )
    leadrelay_outbox_path: Path = Field(
        default=Path(".data/outbox.sqlite3"), description="The API's durable outbox (SQLite)"
    )
    leadrelay_batch_linger_seconds: float = Field(
        default=4.0,
        ge=0,
        description="Under backlog, at most one batched create (and one note batch) this often",
    )
    leadrelay_batch_fill_items: int = Field(
        default=25,
        ge=1,
        le=50,
        description="Under backlog, a batch waits past the linger until this many items wait",
    )
    leadrelay_batch_max_linger_seconds: float = Field(
        default=12.0,
        ge=0,
        description="The longest an item waits for its batch to fill (never below the linger)",
    )
    leadrelay_batch_max_items: int = Field(
        default=50, ge=1, le=50, description="Items per batched create or note request"
    )
    leadrelay_log_level: str = Field(default="INFO", description="Level of the JSON logs")
    leadrelay_worker_metrics_address: str = Field(
        default="127.0.0.1:9464",
        description="host:port of the worker's Prometheus endpoint; empty disables it",
    )

    @field_validator(
        "temporal_tls_ca",
        "temporal_tls_cert",
        "temporal_tls_key",
        "temporal_tls_server_name",
        "temporal_api_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """Compose passes an unset variable as an empty string."""
        return None if value == "" else value
