"""wardwatch.codec: the mapping validator and the column validator are one set of rules, and the
readings-topic encoding round-trips through decode_readings."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from wardwatch.codec import (RULES, Invalid, Limits, check_columns, decode_readings, encode_readings,
                             reading_from_mapping)
from wardwatch.columns import ReadingColumns
from wardwatch.identifiers import REASON as BAD_IDENTIFIER, is_identifier

NOW = 1_764_000_000_000
LIMITS = Limits(max_future_ms=120_000, max_age_ms=7 * 86_400_000)
ADMITTED = ["p1", "p2", "bed-3:a"]


class FakeRegistry:
    """A registry view: some patients admitted, no device assigned."""

    def __init__(self, admitted) -> None:
        self.admitted = set(admitted)

    def is_admitted(self, patient: str) -> bool:
        return patient in self.admitted

    def patient_for_device(self, device: str) -> str | None:
        return None


VALID_ID = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
BAD_ID = st.sampled_from(["", " ", "p1\n", "p\"1", "a\\b", "p 1", "p" * 65, "-p", "пациент", "p1\x00"]) \
    | st.text(max_size=70).filter(lambda s: not is_identifier(s))
ANY_ID = VALID_ID | BAD_ID


def sometimes(draw, good, bad):
    """Mostly a good field, one time in four a bad one: readings with one fault, several, or none."""
    return draw(bad if draw(st.integers(0, 3)) == 0 else good)


@st.composite
def a_reading(draw, ids=None, patients=None) -> dict:
    """A readings-topic mapping; ``ids`` / ``patients`` fix the strategy for the identifiers."""
    m = draw(st.integers(0, len(RULES.metrics) - 1))
    low, high = float(RULES.low[m]), float(RULES.high[m])
    value = sometimes(draw, st.floats(low, high) | st.sampled_from([low, high]),
                      st.sampled_from([math.nextafter(low, -math.inf), math.nextafter(high, math.inf), math.nan, math.inf,
                                       -math.inf]) | st.floats(high, high + 50, exclude_min=True)
                      | st.floats(allow_nan=True, allow_infinity=True))
    ts = sometimes(draw, st.integers(NOW - LIMITS.max_age_ms, NOW + LIMITS.max_future_ms),
                   st.sampled_from([NOW + LIMITS.max_future_ms + 1, NOW - LIMITS.max_age_ms - 1])
                   | st.integers(-(2**61), 2**61))
    q = sometimes(draw, st.none() | st.floats(0, 1), st.floats(1.01, 10) | st.floats(-10, -0.01))
    ident = lambda: draw(ids) if ids is not None else sometimes(draw, VALID_ID, BAD_ID)  # noqa: E731
    patient = draw(patients) if patients is not None else sometimes(draw, st.sampled_from(ADMITTED), ANY_ID)
    return {"id": ident(), "patient": patient, "device": ident(), "metric": RULES.names[m], "value": value,
            "unit": RULES.units[m], "ts": ts, "received": draw(st.integers(0, 2**61)),
            "quality": None if q is None else float(np.float32(q))}  # what the float32 column holds


def columns(readings: list[dict]) -> ReadingColumns:
    return ReadingColumns(np.array([r["id"] for r in readings], dtype=object),
                          np.array([r["patient"] for r in readings], dtype=object),
                          np.array([r["device"] for r in readings], dtype=object),
                          np.array([RULES.index[r["metric"]] for r in readings], dtype=np.int8),
                          np.array([r["value"] for r in readings], dtype=np.float64),
                          np.array([r["ts"] for r in readings], dtype=np.int64),
                          np.array([r["received"] for r in readings], dtype=np.int64),
                          np.array([np.nan if r["quality"] is None else r["quality"] for r in readings], dtype=np.float32))


def mapping_reason(d: dict, registry) -> str:
    try:
        reading_from_mapping(d, NOW, LIMITS, registry)
    except Invalid as exc:
        return exc.reason
    return ""


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_reading(), min_size=1, max_size=12), st.booleans())
def test_mapping_and_column_validators_agree_on_every_reading(readings, with_registry):
    registry = FakeRegistry(ADMITTED) if with_registry else None
    by_columns = check_columns(columns(readings), NOW, LIMITS, registry).tolist()
    assert [mapping_reason(d, registry) for d in readings] == by_columns
    # The consumer side's decoder (orjson, then the same column check) says the same of what JSON can carry.
    json_ok = [d for d in readings if math.isfinite(d["value"])]
    raw = [orjson.dumps(d) for d in json_ok]
    cols, rejected = decode_readings(raw, NOW, registry, limits=LIMITS)
    expected = {i: mapping_reason(d, registry) for i, d in enumerate(json_ok)}
    assert {r.index: r.reason for r in rejected} == {i: why for i, why in expected.items() if why}
    assert cols.id.tolist() == [d["id"] for i, d in enumerate(json_ok) if not expected[i]]


def test_one_reason_per_rule_in_the_one_order():
    good = {"id": "r1", "patient": "p1", "device": "mon-1", "metric": "spo2", "value": 97.0, "unit": "%", "ts": NOW - 1000,
            "received": 0, "quality": None}
    cases = [({}, ""), ({"quality": 1.5}, "schema"), ({"patient": "p 1", "value": 140.0}, BAD_IDENTIFIER),
             ({"value": 140.0, "ts": NOW + 3600_000}, "impossible_value"), ({"value": math.nan}, "impossible_value"),
             # SpO2 as a fraction under "%" (0.97 % would alarm as a desaturation); 0, a probe off, stays
             ({"value": 0.97}, "impossible_value"), ({"value": 1.0}, "impossible_value"), ({"value": 0.0}, ""),
             ({"ts": NOW + 3600_000, "patient": "stranger"}, "future_timestamp"), ({"ts": 0}, "too_old"),
             ({"patient": "stranger"}, "unknown_patient")]
    registry = FakeRegistry(ADMITTED)
    readings = [good | change for change, _ in cases]
    assert check_columns(columns(readings), NOW, LIMITS, registry).tolist() == [why for _, why in cases]
    assert [mapping_reason(d, registry) for d in readings] == [why for _, why in cases]


def assert_same_columns(a: ReadingColumns, b: ReadingColumns) -> None:
    for name in ("id", "patient", "device"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    for name in ("metric", "value", "ts", "received"):
        assert getattr(a, name).dtype == getattr(b, name).dtype and np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.quality, b.quality, equal_nan=True)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_reading(ids=VALID_ID, patients=VALID_ID), min_size=0, max_size=20))
def test_encode_then_decode_gives_back_every_accepted_reading_exactly(readings):
    cols = columns(readings)
    accepted = cols.take(check_columns(cols, NOW, LIMITS) == "")
    messages = encode_readings(accepted)
    assert [k for k, _ in messages] == [p.encode() for p in accepted.patient.tolist()]
    back, rejected = decode_readings([v for _, v in messages], NOW, limits=LIMITS)
    assert rejected == []
    assert_same_columns(back, accepted)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_reading(ids=VALID_ID, patients=VALID_ID), min_size=0, max_size=20))
def test_the_template_for_checked_rows_writes_the_same_json_as_orjson(readings):
    cols = columns(readings)
    accepted = cols.take(check_columns(cols, NOW, LIMITS) == "")
    fast, careful = encode_readings(accepted, NOW, checked=True), encode_readings(accepted, NOW)
    assert [k for k, _ in fast] == [k for k, _ in careful]
    assert [orjson.loads(v) for _, v in fast] == [orjson.loads(v) for _, v in careful]


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_reading(ids=ANY_ID, patients=ANY_ID), min_size=1, max_size=20))
def test_encoding_escapes_any_string_and_decode_refuses_what_breaks_the_identifier_rule(readings):
    """The identifier rule allows no character JSON must escape, so an id needing escapes is never
    accepted; the encoder still writes it as valid JSON, and the decoder rejects it for its id."""
    for r in readings:  # only the ids may be wrong here
        m = RULES.index[r["metric"]]
        r.update(value=float(RULES.low[m]), ts=NOW, quality=None)
    cols = columns(readings)
    messages = encode_readings(cols, received=NOW)
    for (key, value), r in zip(messages, readings):
        assert key == r["patient"].encode()
        assert orjson.loads(value) == {**{k: r[k] for k in ("id", "patient", "device", "metric", "value", "unit", "ts")},
                                       "received": NOW, "quality": None}
    back, rejected = decode_readings([v for _, v in messages], NOW, limits=LIMITS)
    good = [all(is_identifier(r[k]) for k in ("id", "patient", "device")) for r in readings]
    assert {r.index for r in rejected} == {i for i, g in enumerate(good) if not g}
    assert {r.reason for r in rejected} <= {BAD_IDENTIFIER}
    assert back.id.tolist() == [r["id"] for r, g in zip(readings, good) if g]


def test_decode_of_nothing_and_of_hostile_bytes():
    cols, rejected = decode_readings([], NOW)
    assert len(cols) == 0 and rejected == []
    cols, rejected = decode_readings([b"", b"{", b"[]", b'{"metric": []}', b'{"metric": "spo2"}'], NOW)
    assert len(cols) == 0
    assert [r.reason for r in rejected] == ["malformed_json", "malformed_json", "schema", "unknown_metric", "schema"]


@pytest.mark.parametrize("module", ["wardwatch.codec"])
def test_the_core_codec_imports_no_layer_above_the_core(module):
    import subprocess
    import sys

    code = (f"import sys, {module}; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('ingest', 'detectors', 'alerts', 'app', 'benchmarks')]; print(bad); sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@given(st.lists(ANY_ID | st.sampled_from(["a\nb", "a\n", "\n", "a\n\nb"]), max_size=8))
def test_the_batch_identifier_check_is_the_rule_on_every_value(values):
    from wardwatch.identifiers import all_identifiers

    assert all_identifiers(values) == all(map(is_identifier, values))


# --- the batch (template) path of decode_readings is the per-message path -----------------------------

def template_message(draw) -> bytes:
    """A message as our encoder writes it; each field mostly good, now and then of a shape the template
    must judge (numbers JSON reads differently from a float parser, or not at all)."""
    m = draw(st.integers(0, len(RULES.metrics) - 1))
    low, high = float(RULES.low[m]), float(RULES.high[m])
    value = sometimes(draw, st.floats(low, high).map(repr) | st.decimals(low, high, places=draw(st.integers(0, 16)))
                      .map(lambda d: format(d, "f")),
                      st.sampled_from(["0", "-0", "-0.0", "0.0", "01", "00", "1.", ".5", "-", "1e2", "1.5E-3",
                                       "123456789012345", "1234567890123456", "0.000000000000001", "-12.25", "1.2.3",
                                       "99.99999999999999", "350.0000000000001", "nan", "true", '"7"', "null", "-01.5"]))
    ts = sometimes(draw, st.integers(NOW - 3_600_000, NOW + 100_000).map(str),
                   st.sampled_from(["0", "-0", "-5", "01", "1.0", str(NOW - LIMITS.max_age_ms - 1), "1" * 19,
                                    "9" * 18, "-" + "9" * 18, str(2**62), "null", f"{NOW}.0"]))
    received = sometimes(draw, st.sampled_from(["null", str(NOW)]),
                         st.sampled_from(["0", "-7", "-0", "00", "1.5", "9" * 18, "9" * 19, '"x"', "01"]))
    unit = sometimes(draw, st.just(RULES.units[m]), st.sampled_from(["/min", "%", "mm[Hg]", "Cel", "", "% "]))
    metric = sometimes(draw, st.just(RULES.names[m]), st.sampled_from([RULES.names[m] + "x", "SPO2", "", "spo"]))
    pid = sometimes(draw, st.sampled_from(ADMITTED) | VALID_ID, BAD_ID)
    dev, rid = (sometimes(draw, VALID_ID, BAD_ID) for _ in range(2))
    text = lambda s: orjson.dumps(s).decode()  # noqa: E731 (escapes what needs it, as orjson would)
    body = (f'{{"id":{text(rid)},"patient":{text(pid)},"device":{text(dev)},"metric":{text(metric)},'
            f'"value":{value},"unit":{text(unit)},"ts":{ts},"received":{received},"quality":null}}')
    return body.encode()


@st.composite
def a_message(draw) -> bytes:
    kind = draw(st.integers(0, 6))
    if kind <= 3:  # the template (sometimes a byte changed, inserted or removed)
        raw = template_message(draw)
        if kind == 3 and raw:
            at = draw(st.integers(0, len(raw) - 1))
            change = draw(st.sampled_from([b"", b" ", b'"', b"\\", b"\n", b"0", b"-", b".", b",", b"}", b"\xc3\xa9", b"\x00"]))
            raw = raw[:at] + change + raw[at + draw(st.integers(0, 1)):]
        return raw
    d = draw(a_reading())
    d = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
    if kind == 4:  # another key order, whitespace, a quality, a duplicate key
        keys = draw(st.permutations(list(d)))
        body = ", ".join(f"{orjson.dumps(k).decode()}: {orjson.dumps(d[k]).decode()}" for k in keys)
        if draw(st.booleans()):
            body += f', "metric": {orjson.dumps(draw(st.sampled_from(RULES.names))).decode()}'
        return ("{" + body + "}").encode()
    if kind == 5:  # our orjson encoding of a reading
        return orjson.dumps(d)
    return draw(st.binary(max_size=40) | st.sampled_from([b"", b"[]", b"null", b'{"metric":"spo2"}', b"\n\n"]))


def without_clock(rejections):
    return [r.model_copy(update={"received": 0}) for r in rejections]


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(a_message(), min_size=0, max_size=25), st.booleans())
def test_the_batch_path_decodes_exactly_as_the_per_message_path(messages, with_registry):
    from wardwatch.codec import decode_each

    registry = FakeRegistry(ADMITTED) if with_registry else None
    cols, rejected = decode_readings(messages, NOW, registry, limits=LIMITS)
    ref_cols, ref_rejected = decode_each(messages, NOW, registry, limits=LIMITS)
    assert_same_columns(cols, ref_cols)
    for name in ("value", "ts"):  # the very same doubles: -0.0 is not 0.0 here
        assert np.signbit(getattr(cols, name)).tolist() == np.signbit(getattr(ref_cols, name)).tolist()
    assert without_clock(rejected) == without_clock(ref_rejected)


def test_the_batch_path_takes_the_template_and_leaves_the_rest():
    from wardwatch.readings_template import match_template

    good = encode_readings(columns([{"id": "r1", "patient": "p1", "device": "d1", "metric": "spo2", "value": 97.5,
                                     "unit": "%", "ts": NOW, "received": NOW, "quality": None}]), checked=True)[0][1]
    batch = [good, good.replace(b'"id":', b'"id" :'), good.replace(b"97.5", b"-0"), good.replace(b"p1", b"p\\u0031"), good]
    assert match_template(batch).index.tolist() == [0, 2, 4]  # "-0" is a number the template reads (as 0)
    cols, rejected = decode_readings(batch, NOW, limits=LIMITS)
    assert rejected == [] and cols.patient.tolist() == ["p1"] * 5 and cols.value.tolist() == [97.5, 97.5, 0.0, 97.5, 97.5]
    assert not np.signbit(cols.value).any()  # JSON's -0 is the integer 0, not the double -0.0


PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
# A valid id with one character replaced by any printable one: the near misses of the rule.
NEAR_ID = st.tuples(VALID_ID, PRINTABLE, st.integers(0, 64)).map(lambda t: t[0][:t[2]] + t[1] + t[0][t[2] + 1:])
PRINTABLE_ID = VALID_ID | NEAR_ID | st.text(PRINTABLE, max_size=70) \
    | st.sampled_from(["", "p" * 64, "p" * 65, "_p", ".p", "p:q-r_s.t", "p\x7f"])


@given(st.lists(st.tuples(PRINTABLE_ID, PRINTABLE_ID, PRINTABLE_ID), max_size=12))
def test_the_template_judges_ids_on_the_bytes_as_the_identifier_rule(ids):
    from wardwatch.readings_template import match_template

    text = lambda s: orjson.dumps(s).decode()  # noqa: E731
    batch = [(f'{{"id":{text(r)},"patient":{text(p)},"device":{text(d)},"metric":"spo2","value":97,"unit":"%",'
              f'"ts":{NOW},"received":null,"quality":null}}').encode() for r, p, d in ids]
    rows = match_template(batch)
    if rows is None:
        assert not batch
        return
    assert rows.ids_ok.tolist() == [all(map(is_identifier, ids[i])) for i in rows.index.tolist()]
    assert set(rows.index.tolist()) == {i for i, x in enumerate(ids) if not any(c in "".join(x) for c in '"\\\x7f')}


# --- the template's id, patient and device columns: one str per distinct text, verified per row --------

# Texts that repeat and nearly repeat: a shared prefix, lengths either side of a word (8 bytes) and of
# the identifier limit (64), one character changed at the end, and texts the rule refuses.
BASE_ID = st.sampled_from(["p", "bench-00001", "bench-0000", "bench-00001x", "abcdefgh", "abcdefg", "abcdefghi",
                           "abcdefghabcdefgh", "abcdefghabcdefghX", "q" * 63, "q" * 64, "q" * 65, "q" * 64 + "r",
                           "q" * 63 + "r", "q" * 200, "", " p", "p " , "p:q-r_s.t", "_p"])
NEAR_REPEAT = BASE_ID | st.tuples(BASE_ID, st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="\"\\")).map("".join) \
    | st.text(st.sampled_from("ab-"), max_size=20)


def forced(kind: str):
    """A stand-in for the grouping hash that collides: every row in one group, or rows grouped by
    their first word only (texts sharing 8 bytes of prefix collide)."""
    if kind == "one group":
        return lambda w: np.zeros(len(w), np.uint64)
    return lambda w: w[:, 0].copy()


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(NEAR_REPEAT, NEAR_REPEAT, NEAR_REPEAT), min_size=1, max_size=40),
       st.sampled_from(["real", "one group", "first word"]), st.booleans())
def test_repeated_and_near_identical_ids_keep_each_rows_own_text(pool, hash_kind, with_registry):
    """Rows drawn with replacement from a few ids: each row's id, patient and device are its own text
    (also when the grouping hash collides), and decode agrees with the per-message path."""
    from unittest import mock

    from wardwatch import readings_template
    from wardwatch.codec import decode_each

    text = lambda s: orjson.dumps(s).decode()  # noqa: E731
    rows = [pool[i % len(pool)] for i in range(len(pool) * 3)] + pool[::-1]
    batch = [(f'{{"id":{text(r)},"patient":{text(p)},"device":{text(d)},"metric":"spo2","value":97,"unit":"%",'
              f'"ts":{NOW},"received":null,"quality":null}}').encode() for r, p, d in rows]
    registry = FakeRegistry(ADMITTED + [p for _, p, _ in pool[::2]]) if with_registry else None
    patch = mock.patch.object(readings_template, "_hash", forced(hash_kind)) if hash_kind != "real" else mock.MagicMock()
    with patch:
        got = readings_template.match_template(batch)
        cols, rejected = decode_readings(batch, NOW, registry, limits=LIMITS)
    assert got.index.tolist() == list(range(len(batch)))  # printable ASCII without '"' or '\': all template
    for name, j in (("id", 0), ("patient", 1), ("device", 2)):
        assert getattr(got, name).tolist() == [r[j] for r in rows], name
    assert got.ids_ok.tolist() == [all(map(is_identifier, r)) for r in rows]
    ref_cols, ref_rejected = decode_each(batch, NOW, registry, limits=LIMITS)
    assert_same_columns(cols, ref_cols)
    assert without_clock(rejected) == without_clock(ref_rejected)


def test_a_patient_repeated_across_the_batch_is_one_shared_str():
    """What the grouping is for: one str per distinct patient (the engine hashes each once)."""
    from wardwatch.readings_template import match_template

    batch = [(f'{{"id":"r{i}","patient":"p{i % 3}","device":"d{i % 3}","metric":"spo2","value":97,"unit":"%",'
              f'"ts":{NOW},"received":null,"quality":null}}').encode() for i in range(30)]
    got = match_template(batch)
    assert len({id(p) for p in got.patient.tolist()}) == 3 and len({id(d) for d in got.device.tolist()}) == 3
    assert got.patient.tolist() == [f"p{i % 3}" for i in range(30)] and got.id.tolist() == [f"r{i}" for i in range(30)]


@given(st.lists(st.tuples(st.sampled_from(["id", "patient", "device"]), st.sampled_from(["", "p", "q" * 70]),
                          st.sampled_from([b"\xc3\xa9", b"\xff", b"\x00", b"\n", b"\t", b"\x7f", b"\\", b"\\n", b"\x1f"]),
                          st.booleans()), min_size=1, max_size=8))
def test_a_raw_byte_the_template_never_holds_in_an_id_leaves_the_message_to_the_per_message_path(cases):
    """No byte check runs over the whole line: id, patient and device are checked for template text themselves
    (short and long ones), so such a message is never a template row and decodes as decode_each says."""
    from wardwatch.codec import decode_each
    from wardwatch.readings_template import match_template

    batch, plain = [], []
    for field, base, raw, at_end in cases:
        ids = {"id": b"r1", "patient": b"p1", "device": b"d1"}
        ids[field] = base.encode() + raw if at_end else raw + base.encode()
        batch.append(b'{"id":"%s","patient":"%s","device":"%s","metric":"spo2","value":97,"unit":"%%","ts":%d,'
                     b'"received":null,"quality":null}' % (ids["id"], ids["patient"], ids["device"], NOW))
        plain.append(batch[-1].replace(ids[field], b"ok"))
    got = match_template(batch + plain)
    assert got.index.tolist() == list(range(len(batch), 2 * len(batch)))  # only the plain twins are template rows
    cols, rejected = decode_readings(batch, NOW, limits=LIMITS)
    ref_cols, ref_rejected = decode_each(batch, NOW, limits=LIMITS)
    assert_same_columns(cols, ref_cols)
    assert without_clock(rejected) == without_clock(ref_rejected)


@pytest.mark.parametrize("field,text", [("value", b"9\x007"), ("value", b"97\x00"), ("value", b"\x0097"), ("value", b"9\n7"),
                                        ("value", b"9\xc3\xa97"), ("ts", b"%d\x00" % NOW), ("received", b"1\x002"),
                                        ("patient", b"p\x00"), ("patient", b"p1\x00\x00")])
def test_a_zero_or_raw_byte_inside_a_number_or_an_id_is_no_template_text(field, text):
    from wardwatch.codec import decode_each
    from wardwatch.readings_template import match_template

    good = (b'{"id":"r1","patient":"p1","device":"d1","metric":"spo2","value":97,"unit":"%%","ts":%d,'
            b'"received":%d,"quality":null}' % (NOW, NOW))
    old = {"value": b"97", "ts": b"%d," % NOW, "received": b"%d," % NOW, "patient": b'"p1"'}[field]
    new = {"ts": text + b",", "received": text + b",", "patient": b'"' + text + b'"'}.get(field, text)
    bad = good.replace(old, new, 1) if field != "received" else good.replace(b'"received":' + str(NOW).encode(), b'"received":' + text)
    assert bad != good
    assert match_template([good, bad, good, good]).index.tolist() == [0, 2, 3]  # p1 twice, one text shared
    batch = [good, bad, good]
    cols, rejected = decode_readings(batch, NOW, limits=LIMITS)
    ref_cols, ref_rejected = decode_each(batch, NOW, limits=LIMITS)
    assert_same_columns(cols, ref_cols)
    assert without_clock(rejected) == without_clock(ref_rejected)
