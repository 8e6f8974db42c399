"""Where the OAuth token pair lives between requests, restarts and processes.

amoCRM rotates the refresh token on every refresh, so the pair is the one piece of state
that cannot be lost or forked: every worker must read and write the same store.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

LOCK_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: int  # unix seconds, by our clock when amoCRM answered
    updated_at: int  # unix seconds of the grant that issued the pair


class TokenStore(Protocol):
    async def load(self) -> TokenPair | None: ...

    async def save(self, pair: TokenPair) -> None:
        """Durably, before anyone uses the pair: a rotated refresh token exists nowhere else."""
        ...

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        """Held across load-refresh-save, against every process that shares the store."""
        ...


class FileTokenStore:
    """A JSON file (0600, atomically replaced) and an flock on a lock file beside it.

    flock works between processes on one host (and containers sharing the volume), not
    across hosts: workers on several hosts need a store with a shared lock of its own.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(f"{path.name}.lock")

    async def load(self) -> TokenPair | None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return TokenPair(
            access_token=str(raw["access_token"]),
            refresh_token=str(raw["refresh_token"]),
            expires_at=int(raw["expires_at"]),
            updated_at=int(raw["updated_at"]),
        )

    async def save(self, pair: TokenPair) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600, so the secret is never readable by others, even briefly.
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(asdict(pair), file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_directory(self.path.parent)

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Polled rather than blocking in a thread: a cancelled wait must not leave a
            # thread that takes the lock later and never lets go of it.
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(LOCK_POLL_SECONDS)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable, not only the file's contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
