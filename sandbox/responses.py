"""Response shapes amoCRM uses: HAL JSON for success, problem JSON and nginx HTML for failures."""

import json
from http import HTTPStatus
from typing import Any

from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

GATEWAY_ERRORS = frozenset(
    {HTTPStatus.BAD_GATEWAY, HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT}
)


class EscapingJSONResponse(JSONResponse):
    """UTF-8 JSON, or ASCII JSON with `\\u` escapes when a value holds a lone surrogate
    (stored from a request that sent `"\\ud83d"`), which amoCRM echoes back as given."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


class HalJSONResponse(EscapingJSONResponse):
    media_type = "application/hal+json"


class ProblemJSONResponse(EscapingJSONResponse):
    media_type = "application/problem+json"


class ValidationProblem(Exception):
    """A 400 "Request validation failed" naming the item and the path of the offending field."""

    def __init__(
        self, request_id: str, path: str, detail: str, code: str = "NotSupportedChoice"
    ) -> None:
        super().__init__(f"{path}: {detail}")
        self.request_id = request_id
        self.path = path
        self.detail = detail
        self.code = code

    def response(self) -> Response:
        error = {"code": self.code, "path": self.path, "detail": self.detail}
        return problem(
            400,
            "Request validation failed",
            {"validation-errors": [{"request_id": self.request_id, "errors": [error]}]},
        )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # scripted faults may use codes outside the standard set, such as 499
        return "Error"


def problem(status: int, detail: str, extra: dict[str, Any] | None = None) -> Response:
    body = {
        "title": _phrase(status),
        "type": f"https://httpstatus.es/{status}",
        "status": status,
        "detail": detail,
        **(extra or {}),
    }
    return ProblemJSONResponse(body, status_code=status)


def invalid_settings(detail: str, error: ValidationError) -> Response:
    """A 400 for control-endpoint settings that pydantic rejected, listing its errors."""
    errors = json.loads(error.json(include_url=False))
    return problem(400, detail, {"errors": errors})


def nginx_page(status: int, headers: dict[str, str] | None = None) -> Response:
    """The bare HTML page amoCRM's nginx front answers with when the API itself never did."""
    title = f"{status} {_phrase(status)}"
    html = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return HTMLResponse(html, status_code=status, headers=headers)


def failure(status: int) -> Response:
    """A failure with no particular body: gateway errors come from nginx, the rest from the API."""
    if status in GATEWAY_ERRORS:
        return nginx_page(status)
    return problem(status, _phrase(status))
