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
