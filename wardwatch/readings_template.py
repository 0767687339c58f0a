"""A whole batch of readings-topic messages parsed at once, where they follow our encoder's template.

``wardwatch.codec.encode_readings`` writes every reading with the same keys in the same order, no
whitespace and no escapes, and (with no device quality) ``"quality":null``::

    {"id":"<id>","patient":"<id>","device":"<id>","metric":"<name>","value":<number>,"unit":"<unit>",
     "ts":<int>,"received":<int or null>,"quality":null}

Such messages need no JSON parser: the batch is joined into one byte buffer, numpy finds every
message's 28 quotes, checks the literal text pinned to them (8 bytes at a time) and parses the
fields as columns. A message that does not follow the template exactly (another key order,
whitespace, an escape, a quality, a non-ASCII byte, a number with an exponent or many digits, any
other client) is left to the caller's per-message path, so the outcome is the one that path gives
(tests/core/test_codec.py checks that both agree on any batch).

What the template admits is chosen so that the parsed value is exactly what JSON decoding gives:
strings hold only printable ASCII but ``"`` and ``\\`` (JSON text that is the string itself);
numbers have no exponent and at most 15 digits, so ``digits / 10**k`` divides two exact doubles and
is the correctly rounded value a JSON parser gives; ``-0`` without a fraction is the integer 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics_catalog import CATALOG, METRIC_INDEX, METRICS

# The template's literal runs, each pinned to one of the message's 28 quotes q[0]..q[27] (the first
# to the start of the line): (quote, offset from it, text). The fields stand between the runs. A run
# holds its own quotes at fixed places, so a line of 28 quotes with every run in place is the
# template, with no quote inside a field.
QUOTES = 28
_RUNS = [(None, 0, b'{"id":"'), (3, 0, b'","patient":"'), (7, 0, b'","device":"'), (11, 0, b'","metric":"'),
         (15, 0, b'","value":'), (18, -1, b',"unit":"'), (21, 0, b'","ts":'), (24, -1, b',"received":'),
         (26, -1, b',"quality":null}')]
_END = 15  # the line ends 15 bytes after q[26]
# Each field from (quote, offset) to (quote, offset), exclusive.
_FIELDS = {"id": ((2, 1), (3, 0)), "patient": ((6, 1), (7, 0)), "device": ((10, 1), (11, 0)),
           "metric": ((14, 1), (15, 0)), "value": ((15, 10), (18, -1)), "unit": ((20, 1), (21, 0)),
           "ts": ((21, 7), (24, -1)), "received": ((24, 11), (26, -1))}
_MAX_DIGITS = 15  # value: an integer below 2**53 over a power of ten below 10**22, both exact doubles
_MAX_INT_DIGITS = 18  # ts and received: well inside codec.TS_BOUND (2**62)
_ID_MAX = 64  # wardwatch.identifiers: a letter or digit, then letters, digits and ". _ : -", at most 64
_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ID_FIRST = np.zeros(256, bool)
_ID_FIRST[list(_ALNUM)] = True
_ID_REST = _ID_FIRST.copy()
_ID_REST[list(b"._:-")] = True
_NOT_ID_REST = ~_ID_REST
_NOT_ID_REST[0] = False  # the zero bytes past a text's end
_PAD = 16  # zero bytes after the batch, so that an 8-byte load near its end stays inside the buffer


def _chunks(text: bytes) -> list[tuple[int, np.uint64, np.uint64]]:
    """``text`` as little-endian 8-byte words: (offset, mask, value)."""
    out = []
    for o in range(0, len(text), 8):
        part = text[o:o + 8]
        out.append((o, np.uint64((1 << (8 * len(part))) - 1), np.uint64(int.from_bytes(part, "little"))))
    return out


_RUN_CHUNKS = [(j, off, _chunks(t)) for j, off, t in _RUNS]
# A metric's name, then only its canonical unit (the per-message path takes no other), each with
# the closing quote: the text ends there.
_METRIC_CHUNKS = [(_chunks(m.value.encode() + b'"'), _chunks(CATALOG[m].unit.encode() + b'"')) for m in METRICS]
_INDEX = np.array([METRIC_INDEX[m] for m in METRICS], np.int8)
_NULL = _chunks(b"null")


@dataclass
class TemplateRows:
    """The batch's template messages as columns; ``index`` their places in the batch (ascending)."""

    index: np.ndarray  # int64
    id: np.ndarray  # object (str)
    patient: np.ndarray
    device: np.ndarray
    metric: np.ndarray  # int8
    value: np.ndarray  # float64
    ts: np.ndarray  # int64, |ts| < 10**18
    received: np.ndarray  # int64, 0 where null or negative (as the per-message path does)
    ids_ok: np.ndarray  # bool: id, patient and device all follow the identifier rule (wardwatch.identifiers)


def _joined(values: list) -> tuple[bytes, np.ndarray, np.ndarray] | None:
    """(buffer, starts, ends): the values one per line, then a line break and ``_PAD`` zero bytes,
    built in one join (no copy to pad it); value i is ``buffer[starts[i]:ends[i]]``, found from the
    values' lengths (no search for the line breaks, which a value may hold too). None if they are
    not all bytes."""
    pad = [bytes(_PAD)]
    try:
        buf = b"\n".join(values + pad)
    except TypeError:
        return None
    lens = np.fromiter(map(len, values), np.int64, len(values))
    if int(lens.sum()) + len(values) + _PAD != len(buf):  # a buffer whose len() counts items, not bytes
        lens = np.fromiter((memoryview(v).nbytes for v in values), np.int64, len(values))
    ends = np.cumsum(lens + 1) - 1
    return buf, ends - lens, ends


def _is(words: np.ndarray, pos: np.ndarray, chunks) -> np.ndarray:
    """Whether the text of ``chunks`` stands at ``pos``; ``words[i]`` is the 8 bytes from byte i."""
    return _is_loaded(_loaded(words, pos, len(chunks)), chunks)


def _loaded(words: np.ndarray, pos: np.ndarray, n_words: int) -> list[np.ndarray]:
    """The 8-byte words at pos, pos+8, ...: loaded once for all the texts compared there."""
    last = len(words) - 1
    return [words[np.minimum(pos + 8 * j, last)] for j in range(n_words)]


def _is_loaded(loaded: list[np.ndarray], chunks) -> np.ndarray:
    """:func:`_is` on words already loaded by :func:`_loaded`."""
    hit = np.ones(len(loaded[0]), bool)
    for o, mask, value in chunks:
        hit &= (loaded[o // 8] & mask) == value
    return hit


def _number(a: np.ndarray, words: np.ndarray, s: np.ndarray, e: np.ndarray, most: int, integer: bool = False):
    """A JSON number without exponent at bytes s..e, at most ``most`` digits: (integer of all its
    digits, how many of them follow the point, negative, ok). "01", "1.", ".5", "-", "1.2.3" are not ok.
    ``integer``: the caller takes only numbers without a point (at most 19 digits), whose integer is
    then parsed 8 digits at a time."""
    neg = a[s] == ord("-")
    s = s + neg
    n = e - s
    ok = (n > 0) & (n <= most + 1)
    width = max(1, int(min(n.max(initial=0), most + 1)))
    w = _masked(words, s, n, -(-width // 8))  # zero past the number
    g = w.view(np.uint8)
    digit = (g - 48) < 10
    dot = g == 46
    n_dot, n_dig = _count_per_row(dot), _count_per_row(digit)
    ok &= n_dig + n_dot == n  # nothing else inside (not even a zero byte)
    n_int = np.where(n_dot > 0, np.argmax(dot, axis=1), n_dig)  # digits before the point
    frac = n_dig - n_int
    ok &= (n_dot == 0) | ((n_dot == 1) & (frac > 0) & (n_int > 0))
    ok &= ((n_int == 1) | (g[:, 0] != 48)) & (n_dig <= most)
    if integer:
        return _integers(w, n), frac, neg, ok
    mant = np.zeros(len(s), np.int64)
    for o in range(width):
        mant = np.where(digit[:, o], mant * 10 + (g[:, o].astype(np.int64) - 48), mant)
    return mant, frac, neg, ok


_POW10 = np.array([10**i for i in range(20)], np.uint64)


def _eight_digits(x: np.ndarray) -> np.ndarray:
    """8 ASCII digits a word (the first in the low byte; a zero byte counts as the digit 0) -> their
    integer, by three multiplications that each join neighbouring groups of digits."""
    x = (x & np.uint64(0x0F0F0F0F0F0F0F0F)) * np.uint64(2561) >> np.uint64(8)
    x = (x & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601) >> np.uint64(16)
    return (x & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001) >> np.uint64(32)


def _integers(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The integer of each row's ``n`` digits (words zero past them, up to 19 digits in 3 words); only
    rows that are all digits are right (the caller's ``ok``)."""
    k = w.shape[1]
    v = [_eight_digits(w[:, j]) for j in range(k)] + [np.zeros(len(w), np.uint64)] * (3 - k)
    head = v[0] * _POW10[8] + v[1]  # the first 16 digits, zeros past the number: < 10**16
    short = head // _POW10[np.clip(16 - n, 0, 16)]
    longer = head * _POW10[np.clip(n - 16, 0, 3)] + v[2] // _POW10[np.clip(24 - n, 0, 19)]
    return np.where(n <= 16, short, longer).astype(np.int64)


def _identifiers(g: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Whether each row's text (``g``: its bytes, zero past its length ``n``; template text is
    printable ASCII, so a byte is a character) follows the identifier rule:
    :func:`wardwatch.identifiers.is_identifier` on the whole batch at once."""
    ok = (n >= 1) & (n <= min(g.shape[1], _ID_MAX))
    return ok & ~_any_per_row(_NOT_ID_REST[g]) & _ID_FIRST[g[:, 0]]


# Per-row reductions over a (rows, 8k) bool array read as k words a row: numpy's reductions along a
# short axis cost more than the few word operations.
_ONES = np.uint64(0x0101010101010101)


def _any_per_row(b: np.ndarray) -> np.ndarray:
    return _any_word(np.ascontiguousarray(b).view(np.uint64))


def _any_word(v: np.ndarray) -> np.ndarray:
    """Whether any of a row's words is not zero."""
    acc = v[:, 0].copy()
    for j in range(1, v.shape[1]):
        acc |= v[:, j]
    return acc != 0


def _count_per_row(b: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(b).view(np.uint64)
    total = np.zeros(len(v), np.int64)
    for j in range(v.shape[1]):
        total += ((v[:, j] * _ONES) >> np.uint64(56)).astype(np.int64)  # bytes of 0/1 summed in the top byte
    return total


def _masked(words: np.ndarray, s: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` words from each start ``s`` as a (rows, k) array, zero past the first ``n`` bytes."""
    return np.stack(_loaded(words, s, k), axis=1) & _MASKS[np.clip(n[:, None] - 8 * np.arange(k), 0, 8)]


_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(9)], np.uint64)  # the low i bytes of a word
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _hash(w: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of words (a module attribute, so tests can force collisions)."""
    h = np.zeros(len(w), np.uint64)
    for j in range(w.shape[1]):
        h = (h ^ w[:, j]) * _MIX
        h ^= h >> np.uint64(29)
    return h


def _groups(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by their hash ``h`` (or by a bucket of it: the caller verifies every row against
    its group's first anyway): (each group's first row, each row's group). One scatter into a table
    of buckets, no sort."""
    bits = max(10, int(len(h)).bit_length() + 4)  # 16 buckets a row or more: few distinct hashes share one
    bucket = (h >> np.uint64(64 - bits)).astype(np.intp)
    table = np.empty(1 << bits, np.intp)
    table[bucket] = np.arange(len(h))  # of the rows in a bucket one stays; it stands for the bucket
    rep = table[bucket]
    first = np.flatnonzero(rep == np.arange(len(h)))
    slot = np.empty(len(h), np.intp)
    slot[first] = np.arange(len(first))
    return first, slot[rep]


def _texts(w: np.ndarray) -> np.ndarray:
    """Each row of words as a ``str`` (object array): the bytes widened to UCS-4 and read as a numpy
    unicode array, whose items drop trailing NULs, i.e. the zero bytes past a field's end (a field
    never holds a NUL: template text is printable ASCII)."""
    b = np.ascontiguousarray(w).view(np.uint8)
    return b.astype(np.uint32).view(f"<U{b.shape[1]}").reshape(len(b)).astype(object)


def _judged(w: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whether each row's text follows the identifier rule, whether it is template text: printable
    ASCII but '\\', an escape), for texts of length ``n`` as words zero past their end."""
    g = w.view(np.uint8)
    text = ~_any_per_row((((g - 32) > 94) & (g != 0)) | (g == 92)) & (_count_per_row(g != 0) == n)  # no zero byte
    return _identifiers(g, n), text


def _field(buf: bytes, words: np.ndarray, s: np.ndarray, e: np.ndarray, repeats: bool,
           live: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the text at bytes s..e of each row as ``str``, whether it follows the identifier rule, whether
    it is template text). A ``"`` ends the field, so ``"`` is never in it.

    The field's bytes are loaded once as words, zeroed past its end, for all three. ``repeats``
    (patients, devices: a batch holds few distinct ones) builds one ``str`` per distinct text, shared
    by its rows, and judges it once: rows are grouped by a hash of their words, then each row's
    words are compared with its group's first, so a hash collision only costs the row its own ``str``
    and judgement. Texts longer than an identifier (never valid, rare) are sliced one by one, only
    on ``live`` rows (the others are not template messages anyway)."""
    n = e - s
    long = n > _ID_MAX
    m = np.where(long, 0, n)
    k = max(1, -(-int(m.max(initial=0)) // 8))
    w = _masked(words, s, m, k)
    if repeats and len(w):
        first, group = _groups(_hash(w))
        out = _texts(w[first])[group]
        ok, text = (x[group] for x in _judged(w[first], m[first]))
        # A collision (or a zero byte, which the words do not show): not its group's text.
        other = np.flatnonzero(_any_word(w ^ w[first[group]]) | (m != m[first[group]]))
        if len(other):
            out[other] = _texts(w[other])
            ok[other], text[other] = _judged(w[other], m[other])
    else:
        out = _texts(w)
        ok, text = _judged(w, m)
    ok &= ~long
    for i in np.flatnonzero(long & live).tolist():
        raw = np.frombuffer(buf, np.uint8, int(n[i]), int(s[i]))
        out[i] = raw.tobytes().decode("latin-1")
        text[i] = not (((raw - 32) > 94) | (raw == 92)).any()
    return out, ok, text


def match_template(values: list) -> TemplateRows | None:
    """The template messages among ``values`` (None if the batch cannot be joined: a value that is not
    bytes). Messages holding a line break are never template ones."""
    n = len(values)
    got = _joined(list(values)) if n else None
    if got is None:
        return None
    buf, starts, ends = got
    length = int(ends[-1])
    a = np.frombuffer(buf, np.uint8)
    words = np.ndarray((len(buf) - 7,), "<u8", buf, strides=(1,))  # words[i]: bytes i..i+7
    body = a[:length]
    qpos = np.flatnonzero(body == 34)
    first = np.searchsorted(qpos, starts)  # each line's first quote, as an index into qpos
    # Every byte of a line of 28 quotes is then checked: literal runs, metric and unit compared, the
    # numbers' digits, and the id, patient and device for template text (so no control character, no
    # line break inside a value, no '\' escape and no non-ASCII byte in a template message).
    lines = np.flatnonzero(np.diff(np.r_[first, len(qpos)]) == QUOTES)
    q = qpos[first[lines][:, None] + np.arange(QUOTES)]
    ok = ends[lines] == q[:, 26] + _END
    for j, off, chunks in _RUN_CHUNKS:
        ok &= _is(words, (starts[lines] if j is None else q[:, j]) + off, chunks)
    span = {k: (q[:, j0] + o0, q[:, j1] + o1) for k, ((j0, o0), (j1, o1)) in _FIELDS.items()}
    metric = np.full(len(q), -1, np.int64)
    # Every metric's name and unit against the same loaded words (not a load per metric).
    at_name = _loaded(words, span["metric"][0], max(len(n) for n, _ in _METRIC_CHUNKS))
    at_unit = _loaded(words, span["unit"][0], max(len(u) for _, u in _METRIC_CHUNKS))
    for i, (name, unit) in enumerate(_METRIC_CHUNKS):
        metric[_is_loaded(at_name, name) & _is_loaded(at_unit, unit)] = i
    ok &= metric >= 0
    mant, frac, neg, good = _number(a, words, *span["value"], _MAX_DIGITS)
    ok &= good
    ts, frac_t, ts_neg, good = _number(a, words, *span["ts"], _MAX_INT_DIGITS, True)
    ok &= good & (frac_t == 0)
    rs, re_ = span["received"]
    null = (re_ - rs == 4) & _is(words, rs, _NULL)
    rx, frac_r, rx_neg, good = _number(a, words, rs, re_, _MAX_INT_DIGITS, True)
    ok &= null | (good & (frac_r == 0))
    fields = {}
    for k in ("id", "patient", "device"):
        fields[k] = _field(buf, words, *span[k], k != "id", ok)
        ok &= fields[k][2]
    keep = np.flatnonzero(ok)
    if len(keep) < len(q):
        lines, metric, mant, frac, neg, ts, ts_neg, rx, rx_neg, null = (
            x[keep] for x in (lines, metric, mant, frac, neg, ts, ts_neg, rx, rx_neg, null))
        fields = {k: tuple(x[keep] for x in f) for k, f in fields.items()}
    value = mant / 10.0 ** frac
    value = np.where(neg & ((frac > 0) | (mant != 0)), -value, value)  # "-0" is the integer 0, "-0.0" a float
    strs = {k: f[0] for k, f in fields.items()}
    ids_ok = fields["id"][1] & fields["patient"][1] & fields["device"][1]
    return TemplateRows(lines.astype(np.int64), strs["id"], strs["patient"], strs["device"], _INDEX[metric],
                        value.astype(np.float64), np.where(ts_neg, -ts, ts), np.where(null | rx_neg, 0, rx), ids_ok)
