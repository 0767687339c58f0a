"""InfluxDB line protocol, built by hand because it is the hot path of every write.

Tags are only bounded sets (patient, metric, score name, alert kind and priority): never a reading
or alert id, which would explode series cardinality.
"""

from __future__ import annotations

import math
from typing import Mapping

_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEAS_ESCAPE = str.maketrans({",": r"\,", " ": r"\ "})
# InfluxDB 1.8 unescapes neither a backslash in a tag or key nor a line break anywhere, and Flux's
# CSV answers turn CR/LF around: such strings cannot be stored and read back, so they are refused.
_NOT_IN_KEYS = ("\\", "\n", "\r")
_NOT_IN_STRINGS = ("\n", "\r")


def _refuse(value: str, bad: tuple[str, ...], what: str) -> str:
    if any(c in value for c in bad):
        raise ValueError(f"a {what} with a backslash or line break cannot be written to line protocol")
    return value


def escape_tag(value: str) -> str:
    """A tag key, tag value or field key."""
    return _refuse(value, _NOT_IN_KEYS, "tag or key").translate(_TAG_ESCAPE)


def escape_str_field(value: str) -> str:
    return '"' + _refuse(value, _NOT_IN_STRINGS, "string field").replace("\\", "\\\\").replace('"', '\\"') + '"'


def field_value(v: object) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return None if not math.isfinite(v) else repr(v)
    if v is None:
        return None
    return escape_str_field(str(v))


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, object], ts_ms: int) -> str:
    """One point at millisecond precision; fields that are None or not finite are left out."""
    tag_part = "".join(f",{escape_tag(k)}={escape_tag(str(v))}" for k, v in sorted(tags.items()) if v not in (None, ""))
    field_parts = [f"{escape_tag(k)}={fv}" for k, v in fields.items() if (fv := field_value(v)) is not None]
    if not field_parts:
        raise ValueError("a point needs at least one field")
    return f"{_refuse(measurement, _NOT_IN_KEYS, 'measurement').translate(_MEAS_ESCAPE)}{tag_part} {','.join(field_parts)} {int(ts_ms)}"
