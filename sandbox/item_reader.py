"""Reading one JSON object of a write request, reporting a bad field by its amoCRM path."""

from sandbox.responses import ValidationProblem
from sandbox.state import JSON


class ItemReader:
    """Reads one JSON object of a request, reporting a bad field by its amoCRM path."""

    def __init__(self, data: JSON, request_id: str, path: str = "") -> None:
        self.request_id = request_id
        self.path = path
        if not isinstance(data, dict):
            raise ValidationProblem(request_id, path, "Must be an object", "InvalidType")
        self.data: dict[str, JSON] = data

    def problem(self, key: str, detail: str, code: str = "NotSupportedChoice") -> ValidationProblem:
        return ValidationProblem(self.request_id, self._path_of(key), detail, code)

    def child(self, key: str, data: JSON) -> "ItemReader":
        return ItemReader(data, self.request_id, self._path_of(key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def optional_int(self, key: str, minimum: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.problem(key, "Must be an integer", "InvalidType")
        if minimum is not None and value < minimum:
            raise self.problem(key, f"Must be at least {minimum}", "OutOfRange")
        return value

    def optional_str(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.problem(key, "Must be a string", "InvalidType")
        return value

    def required_int(self, key: str) -> int:
        value = self.optional_int(key)
        if value is None:
            raise self.problem(key, "This field is required", "NotBlank")
        return value

    def required_str(self, key: str) -> str:
        value = self.optional_str(key)
        if value is None:
            raise self.problem(key, "This field is required", "NotBlank")
        return value

    def optional_list(self, key: str) -> list[JSON]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.problem(key, "Must be an array", "InvalidType")
        return value

    def embedded(self) -> "ItemReader":
        return self.child("_embedded", self.data.get("_embedded") or {})

    def _path_of(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key
