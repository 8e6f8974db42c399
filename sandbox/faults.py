"""Fault switches that make the sandbox misbehave the way the real amoCRM sometimes does."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RateLimitStyle = Literal["json", "html", "html-no-header"]


class ScriptedAnswer(BaseModel):
    """An answer given instead of handling the next `times` requests that match."""

    model_config = ConfigDict(extra="forbid")

    method: str
    path_prefix: str
    status: int = Field(ge=100, le=599)
    body: Any = None
    times: int = Field(default=1, ge=1)

    def matches(self, method: str, path: str) -> bool:
        return self.method.upper() == method.upper() and path.startswith(self.path_prefix)


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=503, ge=400, le=599)
    latency_ms: float = Field(default=0.0, ge=0)
    lost_answer_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limit: int | None = Field(default=None, ge=0, description="overrides the settings")
    block_seconds: float | None = Field(default=None, ge=0, description="overrides the settings")
    rate_limit_style: RateLimitStyle = "json"
    retry_after: int = Field(default=1, ge=0)
    fail_next: list[ScriptedAnswer] = Field(default_factory=list)
    page_size: int | None = Field(
        default=None, ge=1, description="list pages hold at most this many, whatever `limit` asks"
    )

    def take_scripted_answer(self, method: str, path: str) -> ScriptedAnswer | None:
        answer = next((a for a in self.fail_next if a.matches(method, path)), None)
        if answer is None:
            return None
        answer.times -= 1
        if answer.times == 0:
            self.fail_next.remove(answer)
        return answer
