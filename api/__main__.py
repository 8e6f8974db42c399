"""`python -m api`: serve the API on API_HOST:API_PORT."""

import uvicorn

from leadrelay.logs import configure_logging
from leadrelay.settings import Settings

settings = Settings()
configure_logging(settings.leadrelay_log_level)
# log_config=None: uvicorn's own config would give its loggers plain-text, unmasked handlers.
uvicorn.run(
    "api.app:create_app",
    factory=True,
    host=settings.api_host,
    port=settings.api_port,
    log_config=None,
)
