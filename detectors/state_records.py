"""The state checkpoint record: one patient's detector state, binary, built for many patients at once.

A worker saves the state of the patients a checkpoint touched on the compacted state topic, one
record per patient (compaction keeps the newest record of each key, so the key is the patient).
The records of one checkpoint are built together from the engine's per-patient numpy arrays: one
structured dtype holds a field per array of the engine's layout, ``rec[field] = array[rows]`` fills
it for every dirty row at once, and ``rec.tobytes()`` is cut into one body per patient. Reading is
the same backwards (``np.frombuffer`` over the joined bodies, ``array[rows] = rec[field]``).

A record is::

    b"WWS" | version (1 byte) | layout fingerprint (8 bytes) | n covered partitions (uint16)
    | n x (partition int32, next offset int64) | body

where the body is the fixed-size part (the layout's itemsize) followed by ``extra``: as it is in a
version 1 record, zlib-compressed in a version 2 one. The worker writes version 2:
:func:`compress_records` turns the records :meth:`StateLayout.encode` built into it, in a thread
(zlib lets go of the GIL), since a patient's arrays are mostly empty history and compress about
tenfold (``wardwatch bench checkpoint`` prints both sizes): the broker takes each checkpoint in
one burst, on the same cores and connections that carry the alarms (docs/detectors.md).

``extra`` (possibly empty) is orjson of the patient's state that is not in arrays. The fingerprint
hashes every field's name, dtype and shape and whatever else decides what a column means (the
metric catalogue, the limit rules), so a worker never reads a record of another layout as numbers:
it refuses it, loudly, and the patient starts fresh from the replayed readings.

Records written before this format (JSON: ``{"covers": {...}, "state": {...}}`` or a bare state
document) are still read: :func:`read_record` says which kind a record is.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import orjson

MAGIC = b"WWS"
PLAIN, COMPRESSED = 1, 2  # the versions: the body as it is, or zlib-compressed
ZLIB_LEVEL = 1  # the fastest: the ratio is in the mostly-empty arrays, not in the level
HEADER = struct.Struct("<3sB8sH")
COVER = np.dtype([("partition", "<i4"), ("offset", "<i8")])


@dataclass(frozen=True)
class StateRecord:
    """One state-topic value, read just far enough to choose the newest and to route it."""

    covers: dict[int, int]  # partition -> next offset the state includes
    kind: str  # "binary", "json", "tombstone" or "unknown" (another version of this format)
    fingerprint: bytes = b""  # binary: the layout it was written with
    body: bytes = b""  # binary: fixed part + extra; json: the engine's state document


class StateLayout:
    """The binary layout of one engine's per-patient arrays (``fields``: name, dtype, shape per row)."""

    def __init__(self, fields: Sequence[tuple[str, np.dtype, tuple]], meaning: object = ()) -> None:
        self.names = [name for name, _, _ in fields]
        self.dtype = np.dtype([(name, np.dtype(dt).newbyteorder("<"), tuple(shape)) for name, dt, shape in fields])
        described = repr([(n, np.dtype(dt).str, tuple(s)) for n, dt, s in fields]) + repr(meaning)
        self.fingerprint = hashlib.blake2b(described.encode(), digest_size=8).digest()

    def header(self, covers: dict[int, int]) -> bytes:
        cov = np.array(sorted(covers.items()), dtype=COVER) if covers else np.empty(0, COVER)
        return HEADER.pack(MAGIC, PLAIN, self.fingerprint, len(cov)) + cov.tobytes()

    def encode(self, columns: dict[str, np.ndarray], n: int, covers: dict[int, int],
               extras: Sequence[bytes] | None = None) -> list[bytes]:
        """``n`` records: ``columns[name]`` holds the dirty rows of that array, in record order."""
        rec = np.empty(n, self.dtype)
        for name in self.names:
            rec[name] = columns[name]
        head, size, buf = self.header(covers), self.dtype.itemsize, memoryview(rec).cast("B")  # no copy
        if extras is None:
            return [head + buf[i * size:(i + 1) * size] for i in range(n)]
        return [head + buf[i * size:(i + 1) * size] + extras[i] for i in range(n)]

    def decode(self, bodies: Sequence[bytes]) -> tuple[np.ndarray, list[bytes]]:
        """The structured rows of records read by :func:`read_record` (this layout's) and their extras."""
        size = self.dtype.itemsize
        if any(len(b) < size for b in bodies):
            raise ValueError("a state record is shorter than its layout")
        rec = np.frombuffer(b"".join(b[:size] for b in bodies), self.dtype)
        return rec, [b[size:] for b in bodies]


def _body_start(value: bytes) -> int:
    """Where a binary record's body begins: after the header and its covered partitions."""
    return HEADER.size + HEADER.unpack_from(value)[3] * COVER.itemsize


def compress_records(records: Sequence[bytes]) -> list[bytes]:
    """Version 1 records (from :meth:`StateLayout.encode`) as version 2: the body compressed.
    Meant for a thread: zlib releases the GIL while it deflates. Tombstones (b"") stay as they are."""
    out = []
    for value in records:
        if not value:
            out.append(value)
            continue
        start = _body_start(value)
        out.append(value[:3] + bytes((COMPRESSED,)) + value[4:start] + zlib.compress(value[start:], ZLIB_LEVEL))
    return out


def read_record(value: bytes | None) -> StateRecord:
    """What a state-topic value is; b"" (or None) is a tombstone: a discharged patient."""
    if not value:
        return StateRecord({}, "tombstone")
    if value[:3] == MAGIC:
        if len(value) < HEADER.size:
            return StateRecord({}, "unknown")
        _, version, fingerprint, n = HEADER.unpack_from(value)
        start = _body_start(value)
        if version not in (PLAIN, COMPRESSED) or len(value) < start:
            return StateRecord({}, "unknown")
        body = value[start:]
        if version == COMPRESSED:
            try:
                body = zlib.decompress(body)
            except zlib.error:
                return StateRecord({}, "unknown")
        cov = np.frombuffer(value, COVER, count=n, offset=HEADER.size)
        return StateRecord(dict(zip(cov["partition"].tolist(), cov["offset"].tolist())), "binary", fingerprint, body)
    # The JSON records of earlier releases: {"covers": {...}, "state": {...}}, or older still the bare state.
    if not value.startswith(b'{"covers":'):
        return StateRecord({}, "json", body=value)
    try:
        doc = orjson.loads(value)
        return StateRecord({int(k): int(v) for k, v in doc["covers"].items()}, "json", body=orjson.dumps(doc["state"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return StateRecord({}, "unknown")
