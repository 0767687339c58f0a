"""The one rule for patient, device, ward and reading ids, used at every edge.

Ids reach line protocol, Flux, CSV, Kafka keys and URLs, so they are kept to characters none of
those treat specially: a letter or digit first, then letters, digits and ``. _ : -``, at most 64.
"""

from __future__ import annotations

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
