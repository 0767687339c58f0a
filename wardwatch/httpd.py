"""A tiny asyncio HTTP server for /healthz and /metrics on workers that have no web framework.

It answers GET only, never blocks the event loop, and keeps no state of its own: the caller gives
a function per path taking the request headers (lower-case names) and returning
(status, content type, body).
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

Handler = Callable[[dict[str, str]], Awaitable[tuple[int, str, bytes]] | tuple[int, str, bytes]]
REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


async def serve(host: str, port: int, routes: dict[str, Handler]) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            first, *lines = request.decode("latin-1").split("\r\n")
            method, path, *_ = first.split(" ")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines) if k}
            path = path.split("?", 1)[0]
            if method != "GET":
                status, ctype, body = 405, "text/plain", b"GET only\n"
            elif path in routes:
                res = routes[path](headers)
                status, ctype, body = await res if asyncio.iscoroutine(res) else res
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
