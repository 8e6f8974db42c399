"""amoCRM webhooks: decoding what amoCRM posts to us."""

from webhooks.decoder import (
    MAX_NESTING,
    DecodedWebhook,
    WebhookEvent,
    decode_webhook,
    parse_php_form,
)

__all__ = ["MAX_NESTING", "DecodedWebhook", "WebhookEvent", "decode_webhook", "parse_php_form"]
