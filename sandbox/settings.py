from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxSettings:
    token: str = "sandbox-token"
    rate_limit: int = 7  # requests per sliding second, as amoCRM allows
    block_after_429s: int = 5  # this many 429s within 60 s block the account
    block_seconds: float = 60
