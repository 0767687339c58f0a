"""The one rule for patient, device, ward and reading ids, used at every edge.

Ids reach line protocol, Flux, CSV, Kafka keys and URLs, so they are kept to characters none of
those treat specially: a letter or digit first, then letters, digits and ``. _ : -``, at most 64.
"""

from __future__ import annotations

import hashlib
import re

PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"  # for pydantic and the OpenAPI schema
REASON = "bad_identifier"  # the rejection reason code for an id that breaks the rule
_FULL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # fullmatch: "$" alone would allow a final "\n"


def is_identifier(value: object) -> bool:
    return type(value) is str and _FULL.fullmatch(value) is not None


_MANY = re.compile(f"(?:{_FULL.pattern}\n)*")  # ids each followed by a line break: the rule on a whole batch at once


def all_identifiers(values: list) -> bool:
    """``all(map(is_identifier, values))``, in one regex pass over the joined values (a batch's ids)."""
    if not values or set(map(type, values)) != {str}:
        return not values
    joined = "\n".join(values) + "\n"
    # No value may hold a line break itself: then the pieces the regex sees are exactly the values.
    return joined.count("\n") == len(values) and _MANY.fullmatch(joined) is not None


# ------------------------------------------------------------------ ids as devices write them
#
# One canonical, injective mapping from any id a device or interface engine writes (spaces, HL7
# ``^`` components, non-ASCII) to the rule above, so that two devices never become one:
#
# * an id that already follows the rule, and does not begin with ``x_``, is kept as it is
#   (``mon-1`` stays ``mon-1``);
# * any other id becomes ``x_`` + its escaped form: ``^`` (the HL7 component separator) becomes
#   ``:``; letters, digits, ``.`` and ``-`` stay; every other character, ``:`` and ``_`` included,
#   becomes ``_HH`` per UTF-8 byte (upper-case hex). ``VSP^080019FFFE134535^EUI-64`` becomes
#   ``x_VSP:080019FFFE134535:EUI-64`` and ``bed 7`` becomes ``x_bed_207``;
# * an escaped form longer than the rule allows becomes ``x__h`` + 60 hex digits of its SHA-256
#   (the one case that is collision-resistant rather than injective by construction: ``_h`` is
#   never produced by the escaping, so it cannot meet an escaped id).
#
# ``from_device_id`` inverts the first two cases (for operators and tests).

ESCAPED_PREFIX = "x_"
_KEEP = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")
_ESC = re.compile(r"_([0-9A-F]{2})")


def to_identifier(raw: str) -> str:
    """The identifier for ``raw`` as a device wrote it (see above): valid, and distinct for distinct ids."""
    if is_identifier(raw) and not raw.startswith(ESCAPED_PREFIX):
        return raw
    out = []
    for ch in raw:
        if ch in _KEEP:
            out.append(ch)
        elif ch == "^":
            out.append(":")
        else:
            out.extend(f"_{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    escaped = ESCAPED_PREFIX + "".join(out)
    if len(escaped) > 64:
        return "x__h" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:60]
    return escaped


def from_device_id(ident: str) -> str | None:
    """The id as the device wrote it, or None for a hashed (over-long) one."""
    if not ident.startswith(ESCAPED_PREFIX):
        return ident
    body = ident[len(ESCAPED_PREFIX):]
    if body.startswith("_h"):
        return None
    raw = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "_" and _ESC.match(body, i):
            raw.append(int(body[i + 1:i + 3], 16))
            i += 3
            continue
        raw.extend(b"^" if ch == ":" else ch.encode())
        i += 1
    return raw.decode("utf-8", "surrogatepass")
