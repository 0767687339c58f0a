"""How much one HTTP request may ask of the ingest: body size and time, items, HL7 and FHIR shape.

Checked before parsing, with cheap counts, so a hostile body costs a scan and never a parse.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

from starlette.requests import Request

from wardwatch.settings import Settings

from wardwatch.codec import MAX_PAYLOAD_KEEP, Invalid


@dataclass(frozen=True)
class Bounds:
    max_body_bytes: int
    body_timeout_s: float
    max_items: int
    offload_bytes: int
    hl7_max_segments: int
    hl7_max_repetitions: int
    hl7_max_components: int
    fhir_max_entries: int

    @classmethod
    def from_settings(cls, s: Settings) -> "Bounds":
        return cls(s.ingest_max_body_bytes, s.ingest_body_timeout_s, s.ingest_max_items, s.ingest_offload_bytes,
                   s.hl7_max_segments, s.hl7_max_repetitions, s.hl7_max_components, s.fhir_max_entries)

    def check_hl7(self, text: str) -> None:
        segments = text.count("\r") + text.count("\n") - text.count("\r\n") + 1  # CR, LF or CRLF: one end each
        for n, cap, what in ((segments, self.hl7_max_segments, "segments"),
                             (text.count("~"), self.hl7_max_repetitions, "repetitions (~)"),
                             (text.count("^") + text.count("&"), self.hl7_max_components, "components (^ &)")):
            if n > cap:
                raise Invalid("too_large", f"{n} HL7 {what} is over {cap} per request")


async def read_body(request: Request, bounds: Bounds) -> bytes:
    """The whole body (decompressed when it says Content-Encoding gzip or deflate), or Invalid
    (too_large, body_timeout) carrying the bytes read so far. A body declared too large is not read
    beyond what the dead-letter record keeps."""
    declared = int(request.headers.get("content-length") or 0)
    too_big = declared > bounds.max_body_bytes
    stop_at = MAX_PAYLOAD_KEEP if too_big else bounds.max_body_bytes + 1
    data = bytearray()

    async def pull() -> bool:
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) >= stop_at:
                return False
        return True

    try:
        complete = await asyncio.wait_for(pull(), bounds.body_timeout_s)
    except asyncio.TimeoutError:
        raise Invalid("body_timeout", f"the body did not arrive within {bounds.body_timeout_s:g}s",
                      bytes(data)) from None
    if not complete:
        raise Invalid("too_large", f"body of {max(declared, len(data))} bytes is over {bounds.max_body_bytes}", bytes(data))
    return decoded(bytes(data), request.headers.get("content-encoding", ""), bounds)


def decoded(data: bytes, encoding: str, bounds: Bounds) -> bytes:
    """The body without its Content-Encoding (gzip, deflate), decompressed to at most the body limit."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise Invalid("unsupported", f"Content-Encoding {encoding[:20]!r} is not supported (gzip, deflate)", data)
    z = zlib.decompressobj(wbits=47)  # a gzip or zlib header
    try:
        out = z.decompress(data, bounds.max_body_bytes + 1)
    except zlib.error:
        raise Invalid("schema", f"the body is not valid {encoding}", data) from None
    if len(out) > bounds.max_body_bytes:
        raise Invalid("too_large", f"the body decompresses to over {bounds.max_body_bytes} bytes", data)
    if not z.eof:
        raise Invalid("schema", f"the {encoding} body is cut short", data)
    return out
