"""The alerts benchmark's lean client reads what a real websockets server sends it, as the alert
service negotiates it (permessage-deflate without server context takeover): the handshake, small
and large compressed messages, a fragmented one, a ping it must answer, and the events it counts."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.server import serve

from alerts.feed import SharedDeflateFactory
from benchmarks.alerts import _LeanClient


class Recording(_LeanClient):
    def message(self, raw: bytes) -> None:
        self.stats.setdefault("messages", []).append(raw)
        super().message(raw)


def batch(n: int) -> str:
    return orjson.dumps({"type": "batch", "events": [{"type": "raised", "at": 1, "k": "x" * 50} for _ in range(n)],
                         "vitals": []}).decode()


async def test_the_lean_client_reads_compressed_fragmented_and_control_frames_as_sent():
    got_from_client: list[dict] = []
    pong = asyncio.Event()

    async def handler(ws) -> None:
        got_from_client.append(orjson.loads(await ws.recv()))  # auth
        await ws.send(orjson.dumps({"type": "hello"}).decode())
        got_from_client.append(orjson.loads(await ws.recv()))  # subscribe
        await ws.send(orjson.dumps({"type": "snapshot"}).decode())
        await ws.send(batch(2))
        await ws.send(batch(3000))  # ~200 KB: a 64-bit length before compression, 16-bit after
        await ws.send([batch(1)[:10], batch(1)[10:]])  # fragmented: a text frame and a continuation
        await asyncio.wait_for(await ws.ping(), 5)  # answered with a masked pong, or this times out
        pong.set()
        await ws.send(batch(4))
        await asyncio.sleep(0.5)

    async with serve(handler, "127.0.0.1", 0, compression=None, extensions=[SharedDeflateFactory()]) as server:
        port = server.sockets[0].getsockname()[1]
        stats = {"received": 0, "latencies": [], "ats": [], "server": []}
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(
            lambda: Recording(f"ws://127.0.0.1:{port}/ws", "tok", stats, ["w7"]), "127.0.0.1", port)
        await asyncio.wait_for(client.ready, 5)
        await asyncio.wait_for(pong.wait(), 5)
        for _ in range(50):
            if stats["received"] == 2 + 3000 + 1 + 4:
                break
            await asyncio.sleep(0.05)
        client.transport.close()

    assert client.deflate  # compression was negotiated, so the large batch arrived compressed
    assert got_from_client == [{"type": "auth", "token": "tok"}, {"type": "subscribe", "wards": ["w7"]}]
    assert stats["received"] == 3007
    assert [len(orjson.loads(m).get("events", ())) for m in stats["messages"]] == [0, 0, 2, 3000, 1, 4]
