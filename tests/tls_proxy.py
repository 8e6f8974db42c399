"""A TLS-terminating proxy in front of the plain Temporal dev server.

The dev server has no TLS of its own. This proxy gives it the face of a secured cluster or
Temporal Cloud: TLS with a test CA (trustme), ALPN `h2` as gRPC requires, optionally a
required client certificate (mTLS), and a tap that decodes the HTTP/2 request headers the
client sends, so that a test can see the gRPC metadata (an API key) arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import trustme
from hpack import Decoder

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADERS, FRAME_CONTINUATION = 0x1, 0x9
FLAG_END_HEADERS, FLAG_PADDED, FLAG_PRIORITY = 0x4, 0x8, 0x20


class HeaderTap:
    """Reads one client→server HTTP/2 byte stream and decodes each request's header block."""

    def __init__(self, seen: list[dict[str, str]]) -> None:
        self._seen = seen
        self._buffer = b""
        self._preface_done = False
        self._decoder = Decoder()
        self._block = b""

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._preface_done:
            if len(self._buffer) < len(HTTP2_PREFACE):
                return
            assert self._buffer.startswith(HTTP2_PREFACE), "not HTTP/2 after TLS"
            self._buffer = self._buffer[len(HTTP2_PREFACE) :]
            self._preface_done = True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                return
            kind, flags = self._buffer[3], self._buffer[4]
            payload = self._buffer[9 : 9 + length]
            self._buffer = self._buffer[9 + length :]
            if kind in (FRAME_HEADERS, FRAME_CONTINUATION):
                self._header_fragment(kind, flags, payload)

    def _header_fragment(self, kind: int, flags: int, payload: bytes) -> None:
        if kind == FRAME_HEADERS:
            padding = 0
            if flags & FLAG_PADDED:
                padding, payload = payload[0], payload[1:]
            if flags & FLAG_PRIORITY:
                payload = payload[5:]
            if padding:
                payload = payload[:-padding]
        self._block += payload
        if flags & FLAG_END_HEADERS:
            headers = self._decoder.decode(self._block)
            self._block = b""
            self._seen.append({str(name): str(value) for name, value in headers})


class TLSProxy:
    def __init__(self, upstream: str, ca: trustme.CA, *, require_client_cert: bool = False) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(self._context)
        self._context.set_alpn_protocols(["h2"])
        if require_client_cert:
            self._context.verify_mode = ssl.CERT_REQUIRED
            ca.configure_trust(self._context)
        self.requests: list[dict[str, str]] = []
        """The HTTP/2 header block of every request that came through."""
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def __aenter__(self) -> TLSProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
        try:
            server_in, server_out = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_out.close()
            return
        tap = HeaderTap(self.requests)
        for pipe in (
            self._pipe(client_in, server_out, tap),
            self._pipe(server_in, client_out, None),
        ):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, tap: HeaderTap | None
    ) -> None:
        try:
            while data := await source.read(65536):
                if tap is not None:
                    tap.feed(data)
                sink.write(data)
                await sink.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()
