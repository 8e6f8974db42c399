"""TLS and API-key options for the Temporal connection, from the TEMPORAL_TLS_* settings.

Each certificate or key setting is either PEM text or the path of a PEM file. Key material
is only read here and handed to the SDK; it is never logged, and error messages name the
setting, not its value.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from temporalio.service import TLSConfig

from leadrelay.settings import Settings

PEM_MARKER = "-----BEGIN "


class TemporalTLSError(ValueError):
    """A TEMPORAL_TLS_* setting that cannot be used; the message names the setting."""


def tls_config(settings: Settings) -> TLSConfig | bool:
    """False for a plain connection; a TLSConfig (system CAs when no CA is set) otherwise.

    An API key implies TLS: Temporal Cloud refuses keys sent in the clear.
    """
    cert, key = settings.temporal_tls_cert, settings.temporal_tls_key
    if (cert is None) != (key is None):
        raise TemporalTLSError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together")
    wanted = (
        settings.temporal_tls,
        settings.temporal_tls_ca,
        cert,
        settings.temporal_tls_server_name,
        settings.temporal_api_key,
    )
    if not any(wanted):
        return False
    return TLSConfig(
        server_root_ca_cert=_pem(settings.temporal_tls_ca, "TEMPORAL_TLS_CA"),
        client_cert=_pem(cert, "TEMPORAL_TLS_CERT"),
        client_private_key=_pem(key, "TEMPORAL_TLS_KEY"),
        domain=settings.temporal_tls_server_name,
    )


def api_key(settings: Settings) -> str | None:
    key = settings.temporal_api_key
    return key.get_secret_value() if key else None


def _pem(value: str | SecretStr | None, setting: str) -> bytes | None:
    if value is None:
        return None
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if PEM_MARKER in text:
        # One-line .env values often carry the line breaks as `\n`.
        return (text if "\n" in text else text.replace("\\n", "\n")).encode()
    path = Path(text).expanduser()
    try:
        return path.read_bytes()
    except OSError as err:
        raise TemporalTLSError(
            f"{setting} is neither PEM text nor a readable file ({err.strerror})"
        ) from None
