"""`python -m api`: serve the API on API_HOST:API_PORT."""

import uvicorn

from leadrelay.settings import Settings

settings = Settings()
uvicorn.run("api.app:create_app", factory=True, host=settings.api_host, port=settings.api_port)
