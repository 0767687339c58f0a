"""HL7 v2 over MLLP (IHE PCD-01 DEC, PCD-04 ACM alarms): a TCP listener that takes framed messages and
answers each with its HL7 acknowledgement, after Kafka has the readings (or the alarms).

Framing is ``<VT> message <FS><CR>`` (0x0B ... 0x1C 0x0D); several frames may arrive in one read and a
frame may be split across reads. Bytes outside a frame are ignored; an FS inside a message (not
followed by CR) is data, and the parser refuses it; a final FS with no CR after it (within
``END_WAIT_S``) ends its frame. The frames of one read are
validated and committed together through the same path as ``POST /v1/hl7v2`` (ingest/pipeline.py:
valid readings to the readings topic, rejected ones with their reasons to the dead-letter topic,
acks=all; the monitors' own ORU^R40 alarms to the device-alarms topic), and only then are their
acknowledgements written, one message's after another, in the order the messages came. A frame
that is an HL7 batch (FHS/BHS ... BTS/FTS) is taken message by message and answered with one frame:
the batch of its messages' acknowledgements. What an acknowledgement says is ``hl7v2.ack_messages``: original mode
(MSH-15 and MSH-16 empty) AA, AE (some or all readings rejected: see ERR; they are on the
dead-letter topic, resending will not help) or AR (message type or version refused, message too
large, or Kafka unavailable: nothing kept for it but the dead letter, resend later); enhanced mode
CA/CE/CR and then AA/AE as MSH-15/MSH-16 (AL, NE, ER, SU) ask.

Authorization is the access table's documented exception (``wardwatch.access.mllp_principal``):
allowed source addresses, and with TLS a client certificate. Limits: ``mllp_max_frame_bytes`` per
message (a larger frame is answered AR and the connection closed), ``mllp_frame_timeout_s`` for a
started frame to end, ``mllp_idle_timeout_s`` of silence, ``mllp_max_connections``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from datetime import datetime, timezone

from wardwatch import access
from wardwatch.auth import AuthError
from wardwatch.codec import Invalid, Limits
from wardwatch.settings import Settings

from .bounds import Bounds
from .formats import hl7v2, hl7v2_alarms
from .pipeline import Backpressure, Batch, Ingestor, now_ms

log = logging.getLogger("wardwatch.mllp")

VT, FS, CR = 0x0B, 0x1C, 0x0D
FRAME_END_NEXT = hl7v2.FRAME_END_NEXT.encode()  # the one rule for both ingest paths
READ_SIZE = 64 << 10
END_WAIT_S = 0.2  # how long a frame ending in FS waits for its CR before it is taken as ended
SOURCE = "mllp:hl7v2"


class FrameTooLarge(Exception):
    """A frame over the limit. ``frames``: the whole frames the same read held before it, which are
    answered before it is refused (thrown away with it, their senders got no ACK and lost their readings)."""

    def __init__(self, head: bytes, frames: list[bytes] | None = None) -> None:
        super().__init__("MLLP frame over the limit")
        self.head = head
        self.frames = frames or []


class FrameDecoder:
    """Bytes in, complete frames out; holds at most ``max_bytes`` of an unfinished frame.

    A frame whose bytes so far end in FS is undecided (``undecided``): the next byte tells a block
    end (CR, or the next frame's VT) from an FS inside a field. The listener waits a moment for it
    and then ends the frame there (``end_undecided``), for senders that leave the CR out."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buf = bytearray()

    @property
    def in_frame(self) -> bool:
        return bool(self.buf)

    @property
    def undecided(self) -> bool:
        return len(self.buf) > 1 and self.buf[-1] == FS and self.buf[0] == VT

    def end_undecided(self) -> list[bytes]:
        """The frame held at its final FS, ended there: nothing more came."""
        if not self.undecided:
            return []
        frame, self.buf = bytes(self.buf[1:-1]), bytearray()
        return [frame]

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out = []
        while True:
            start = self.buf.find(VT)
            if start < 0:
                self.buf.clear()  # noise between frames (a stray CR after FS split off, keep-alive bytes)
                break
            if start:
                del self.buf[:start]
            end = self._end(1)
            if end < 0:
                if len(self.buf) - 1 > self.max_bytes:
                    head = bytes(self.buf[1:1 + self.max_bytes])
                    self.buf.clear()
                    raise FrameTooLarge(head, out)
                break
            if end - 1 > self.max_bytes:
                head = bytes(self.buf[1:1 + self.max_bytes])
                del self.buf[:end + 1]
                raise FrameTooLarge(head, out)
            out.append(bytes(self.buf[1:end]))
            cut = end + 1
            if len(self.buf) > cut and self.buf[cut] == CR:
                cut += 1
            del self.buf[:cut]
        return out

    def _end(self, at: int) -> int:
        """Where the frame ends: an FS followed by its CR (the block end; LF as some engines relay
        it) or by the next frame's VT (a sender that leaves the CR out); -1 while undecided. An FS followed by anything else is inside
        a field: data, which the parser then refuses (``hl7v2.unframe``), instead of a frame cut
        short under a truncated patient id."""
        while True:
            end = self.buf.find(FS, at)
            if end < 0 or end + 1 == len(self.buf):
                return -1
            if self.buf[end + 1] in FRAME_END_NEXT:
                return end
            at = end + 1


def frame(message: str | bytes) -> bytes:
    data = message.encode("utf-8") if isinstance(message, str) else message
    return bytes([VT]) + data + bytes([FS, CR])


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not (settings.mllp_tls_certfile and settings.mllp_tls_keyfile):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.mllp_tls_certfile, settings.mllp_tls_keyfile)
    if settings.mllp_tls_client_cafile:
        ctx.load_verify_locations(settings.mllp_tls_client_cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class MLLPServer:
    """The listener; shares the HTTP ingest's ``Ingestor`` (its producer) and registry view."""

    def __init__(self, settings: Settings, ingestor: Ingestor, view=None, metrics=None) -> None:
        self.settings, self.ingestor, self.view, self.metrics = settings, ingestor, view, metrics
        self.limits = Limits.from_settings(settings)
        self.bounds = Bounds.from_settings(settings)
        self.codes = hl7v2.code_table(str(settings.hl7_code_table) if settings.hl7_code_table else None)
        self.zone = hl7v2.zone(settings.hl7_local_timezone)
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[asyncio.Task] = set()
        self.ssl = server_ssl_context(settings)
        self._ids = itertools.count(1)
        self._prefix = f"WW{now_ms() // 1000:x}-"  # ACK control ids (MSH-10) unique across restarts
        self.port: int | None = None

    async def start(self, host: str | None = None, port: int | None = None) -> "MLLPServer":
        self.server = await asyncio.start_server(self._client, host or self.settings.mllp_host,
                                                 port if port is not None else self.settings.mllp_port or 0,
                                                 ssl=self.ssl, limit=READ_SIZE,
                                                 ssl_handshake_timeout=self.settings.mllp_frame_timeout_s if self.ssl else None)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("MLLP listening on %s:%s%s", host or self.settings.mllp_host, self.port, " (TLS)" if self.ssl else "")
        return self

    async def stop(self, grace_s: float = 5.0) -> None:
        if self.server is not None:
            self.server.close()
        if self.connections:
            _, pending = await asyncio.wait(set(self.connections), timeout=grace_s)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception as exc:  # a bug must not kill the listener; no traceback (it may quote patient data)
            log.error("MLLP connection failed: %s", type(exc).__name__)
        finally:
            self.connections.discard(task)
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 5)
            except Exception:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.settings
        peer = writer.get_extra_info("peername")
        try:
            principal = access.mllp_principal(peer[0] if peer else None, writer.get_extra_info("peercert"),
                                              s.mllp_allowed_sources, bool(self.ssl and s.mllp_tls_client_cafile),
                                              s.mllp_tls_principals)
        except AuthError as exc:
            log.warning("%s", exc.message)
            return
        if len(self.connections) > s.mllp_max_connections:
            log.warning("MLLP: %d connections is over mllp_max_connections; closing %s", len(self.connections), principal.name)
            return
        decoder = FrameDecoder(s.mllp_max_frame_bytes)
        while True:
            undecided = decoder.undecided
            timeout = END_WAIT_S if undecided else s.mllp_frame_timeout_s if decoder.in_frame else s.mllp_idle_timeout_s
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
            except asyncio.TimeoutError:
                if not undecided:
                    return  # idle, or a frame that never ends: the connection goes, and its memory with it
                data = b""
            if not data and not undecided:
                return
            try:
                # Nothing followed a final FS (within END_WAIT_S, or before the sender closed): it ended the frame.
                frames = decoder.feed(data) if data else decoder.end_undecided()
            except FrameTooLarge as exc:
                acks = await self.process(exc.frames) if exc.frames else []
                acks += await self.process([], too_large=exc.head)
                writer.write(b"".join(acks))
                await writer.drain()
                return
            if frames:
                acks = await self.process(frames)
                writer.write(b"".join(acks))
                await writer.drain()

    async def process(self, frames: list[bytes], too_large: bytes | None = None) -> list[bytes]:
        """Validate and commit the messages of ``frames``; their framed acknowledgements, in order.

        A frame that is an HL7 batch (FHS/BHS ... BTS/FTS) has each of its messages taken as if it
        had come in a frame of its own, and is answered with one frame: the batch of their ACKs."""
        batch = Batch(source=SOURCE)
        answers: list[tuple[hl7v2.BatchEnvelope | None, list[hl7v2.MessageSpan]]] = []  # per frame
        idx = 0
        now = now_ms()
        if too_large is not None:
            text = too_large.decode("utf-8", "replace")
            batch.reject(0, "too_large", f"MLLP frame over {self.settings.mllp_max_frame_bytes} bytes", too_large)
            answers.append((None, [hl7v2.MessageSpan(hl7v2.header_of(text), 0, 1, [("MSH", 1)], refused=True)]))
            idx = 1
        for raw in frames:
            text = hl7v2.decode(raw)
            envelope = hl7v2.batch_envelope(text)
            # A batch's messages are split as POST /v1/hl7v2 splits them; each one's dead letter holds it alone.
            parts = [(text, raw)] if envelope is None else [(m, m.encode("utf-8")) for m in hl7v2.split_messages(text)]
            msgs = []
            for message, payload in parts:
                msgs.append(self._take(batch, idx, message, payload, now))
                idx = msgs[-1].end
            answers.append((envelope, msgs))
        stamp = datetime.now(timezone.utc)
        try:
            result = await self.ingestor.commit(batch, idx)
        except Backpressure as exc:
            if self.metrics is not None:
                self.metrics.backpressure.labels(str(exc.status)).inc()
            retry = hl7v2.Problem("unavailable", exc.message)

            def acks(msgs: list[hl7v2.MessageSpan]) -> list[str]:
                return [a for m in msgs for a in hl7v2.ack_messages(m.header, [retry], retry=True,
                                                                     control_id=self._control_id(), now=stamp)]
        else:
            if self.metrics is not None:
                self.metrics.accepted.labels("mllp").inc(result.accepted)
                for r in batch.rejected:
                    self.metrics.rejected.labels("mllp", r.reason).inc()

            def acks(msgs: list[hl7v2.MessageSpan]) -> list[str]:
                return hl7v2.acks_for(msgs, result.items, self._control_id, stamp)
        return [f for envelope, msgs in answers for f in self._frames(envelope, acks(msgs), stamp)]

    def _take(self, batch: Batch, idx: int, text: str, raw: bytes, now: int) -> hl7v2.MessageSpan:
        """One message into ``batch``, its items numbered from ``idx``: where they are, for its ACK."""
        header = hl7v2.header_of(text)
        registry = self.view if self.settings.enforce_registry else None
        try:
            self.bounds.check_hl7(text)
            # ORU^R40 (IHE PCD-04), the monitor's own alarms, go to the device-alarms topic
            parsed = hl7v2_alarms.parse_any_message(text, self.codes, self.zone)
        except Invalid as exc:
            batch.reject(idx, exc.reason, exc.detail, raw)
            return hl7v2.MessageSpan(header, idx, idx + 1, [("MSH", 1)], refused=exc.reason in ("unsupported", "too_large"))
        except Exception as exc:
            log.error("HL7 parser failed: %s", type(exc).__name__)
            batch.reject(idx, "schema", "the message could not be parsed", raw)
            return hl7v2.MessageSpan(header, idx, idx + 1, [("MSH", 1)])
        for i, item in enumerate(parsed.items, idx):
            batch.add(i, item, now, self.limits, registry)
        return hl7v2.MessageSpan(header, idx, idx + len(parsed.items), parsed.where)

    def _frames(self, envelope: hl7v2.BatchEnvelope | None, acks: list[str], stamp: datetime) -> list[bytes]:
        """A frame per ACK; for a batch frame, one frame holding the batch of its ACKs."""
        if envelope is None:
            return [frame(a) for a in acks]
        return [frame(hl7v2.ack_batch(acks, envelope, self._control_id(), stamp))]

    def _control_id(self) -> str:
        return f"{self._prefix}{next(self._ids)}"
