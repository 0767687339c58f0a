"""HL7 v2 as devices write it (issue 16, deliverable 2), one test per trap, and the device-id mapping.

Messages are written after: the IHE PCD Technical Framework Vol. 2 PCD-01 (DEC) examples (OBX-4
containment ``1.0.0.0`` MDS carrying the EUI-64 in OBX-18, MDC units, ``182777000^monitoring of
patient^SCT``); the GE Healthcare B40 monitor HL7 reference manual's result examples (MSH-3
``VSP^<EUI-64>^EUI-64``, MSH-15/16 NE/AL, PV1-3 ``SURGERY^^V2``, minute-precision times); the
Continua/IHE PCD-01 PHD observation-reporter examples (NIBP compound ``150020^MDC_PRESS_BLD_NONINV``
with ``1.0.1.1`` children, ``0123456789ABCDEF^EUI-64``); HL7 v2.6 chapter 2 for escapes, nulls and
repetitions. The vendor code-table entry is an operator's example, not a vendor's published term.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ingest.formats import fhir, hl7v2, hl7v2_alarms
from ingest.bounds import Bounds
from wardwatch.codec import Invalid
from wardwatch.identifiers import from_device_id, is_identifier, to_identifier
from wardwatch.metrics_catalog import mdc_code
from wardwatch.settings import Settings

CODES = hl7v2.code_table(None)


def msg(*obx: str, msh7: str = "20261124101500+0100", pid: str = "p1^^^HOSP^MR", sep: str = "\r",
        msh3: str = "MON-7^0001^EUI-64") -> str:
    segs = [f"MSH|^~\\&|{msh3}|WARD7|WW|HOSP|{msh7}||ORU^R01^ORU_R01|C1|P|2.6",
            f"PID|||{pid}", "PV1||I|W7^7^1&BED&L",
            "OBR|1|||182777000^monitoring of patient^SCT|||" + msh7] + list(obx)
    return sep.join(segs) + sep


def readings(text: str) -> list:
    return hl7v2.parse_message(text, CODES).items


SPO2 = "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|96|262688^MDC_DIM_PERCENT^MDC|||||R|||20261124101500+0100||||mon-1"


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_cr_lf_and_crlf_segment_ends(sep):
    (r,) = readings(msg(SPO2, sep=sep))
    assert (r["metric"], r["value"], r["unit"], r["device"], r["patient"]) == ("spo2", 96.0, "%", "mon-1", "p1")


def test_a_crlf_message_counts_each_segment_once_against_the_bound():
    bounds = Bounds.from_settings(Settings())
    body = msg(*[SPO2] * (bounds.hl7_max_segments - 10), sep="\r\n")
    bounds.check_hl7(body)  # under the bound with CR, so with CRLF too
    with pytest.raises(Invalid, match="segments"):
        bounds.check_hl7(msg(*[SPO2] * (bounds.hl7_max_segments + 1), sep="\r\n"))


def rate(n: int, code: str, value: int, unit: str = "264864^MDC_DIM_BEAT_PER_MIN^MDC") -> str:
    return f"OBX|{n}|NM|{code}|1.1.{n}.1|{value}|{unit}|||||R|||20261124101500+0100||||mon-1"


# A monitor with ECG, an arterial line, a pulse oximeter and capnography reports each rate it
# measures, as IntelliVue and CARESCAPE do: the same vital sign from several sources at one moment.
SOURCES = [("147842^MDC_ECG_HEART_RATE^MDC", 72), ("149522^MDC_BLD_PULS_RATE_INV^MDC", 64),
           ("149530^MDC_PULS_OXIM_PULS_RATE^MDC", 70), ("151578^MDC_TTHOR_RESP_RATE^MDC", 18),
           ("151594^MDC_CO2_RESP_RATE^MDC", 22), ("151570^MDC_AWAY_RESP_RATE^MDC", 21)]


@hsettings(max_examples=60, deadline=None)
@given(st.permutations(SOURCES))
def test_each_vital_sign_is_its_preferred_sources_in_whatever_order_the_monitor_writes_them(order):
    items = readings(msg(*[rate(n, code, value) for n, (code, value) in enumerate(order, 1)]))
    kept = {i["metric"]: i["value"] for i in items if not isinstance(i, Invalid)}
    # ECG for the heart rate; the arterial line's pulse before the oximeter's; the airway's
    # respiration rate (flow, then capnography: equals, the lower code first) before the ECG leads' impedance.
    assert kept == {"heart_rate": 72, "pulse_rate": 64, "resp_rate": 21}
    aside = sorted((i.detail.split()[3], i.reason) for i in items if isinstance(i, Invalid))
    assert aside == [("149530", "other_source"), ("151578", "other_source"), ("151594", "other_source")]


def test_the_same_code_twice_stays_a_duplicate_not_another_source():
    items = readings(msg(rate(1, "147842^MDC_ECG_HEART_RATE^MDC", 72), rate(2, "147842^MDC_ECG_HEART_RATE^MDC", 75)))
    assert [i["value"] for i in items] == [72, 75]  # Batch.dedupe answers the second: duplicate_in_batch


def test_escape_sequences_and_declared_delimiters():
    # a device id with an escaped component separator, field separator and escape character
    obx = SPO2.replace("||||mon-1", "||||bed\\S\\7\\F\\a\\E\\b")
    (r,) = readings(msg(obx))
    assert r["device"] == to_identifier("bed\\S\\7\\F\\a\\E\\b") and is_identifier(r["device"])
    # the same message in other delimiters (MSH-1/2 = #, $*@%): the same reading
    other = msg(SPO2).replace("|", "#").replace("^", "$").replace("~", "*").replace("\\", "@").replace("&", "%")
    other = other.replace("MSH#$*@%", "MSH#$*@%", 1)
    (o,) = readings(other)
    assert o == readings(msg(SPO2))[0]


def test_null_fields_are_empty():
    obx = SPO2.replace("||||mon-1", '||||""')  # OBX-18 nulled: the device is MSH-3
    (r,) = readings(msg(obx))
    assert r["device"] == "x_MON-7:0001:EUI-64"
    (r,) = readings(msg(SPO2.replace("|||20261124101500+0100|", '|||""|')))  # OBX-14 nulled: OBR-7
    assert r["ts"] == hl7v2.parse_ts("20261124101500+0100")


def test_repetitions_in_pid3_and_obx18():
    (r,) = readings(msg(SPO2, pid="999^^^NHS^NH~p7^^^HOSP&1.2.3&ISO^MR"))
    assert r["patient"] == "p7"  # the MR repetition, assigning authority with sub-components allowed
    (r,) = readings(msg(SPO2.replace("||||mon-1", "||||~mon-2^^ACDE48234567ABCD^EUI-64~mon-3")))
    assert r["device"] == to_identifier("mon-2^^ACDE48234567ABCD^EUI-64")


@pytest.mark.parametrize("text,ms", [
    ("20261124101500+0100", 1795511700000), ("202611241015+0100", 1795511700000),
    ("20261124101500.25+0100", 1795511700250), ("20261124091500", 1795511700000),
    ("202611240915", 1795511700000), ("20261124101500+0100^S", 1795511700000)])
def test_times_with_and_without_seconds_and_zone(text, ms):
    assert hl7v2.parse_ts(text) == ms


def test_a_time_without_zone_takes_msh7s_zone_then_the_local_zone_setting():
    obx = SPO2.replace("20261124101500+0100||||", "20261124101500||||")
    (r,) = readings(msg(obx, msh7="20261124101500+0100"))
    assert r["ts"] == 1795511700000
    (r,) = hl7v2.parse_message(msg(obx, msh7="20261124101500"), CODES, hl7v2.zone("Europe/Berlin")).items
    assert r["ts"] == 1795511700000
    with pytest.raises(Invalid):
        hl7v2.parse_ts("20261124101500+01")


def test_obx4_containment_gives_metrics_the_mds_device():
    """The PHD NIBP example: OBX-18 only on the MDS OBX; compound and metrics below it."""
    text = msg("OBX|1||528391^MDC_DEV_SPEC_PROFILE_BP^MDC|1|||||||X|||20261124101500+0100||||0123456789ABCDEF^EUI-64",
               "OBX|2||150020^MDC_PRESS_BLD_NONINV^MDC|1.0.1|||||||X|||20261124101500+0100",
               "OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|140.5|266016^MDC_DIM_MMHG^MDC|||||R|||20261124101500+0100",
               "OBX|4|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.0.1.2|95.0|266016^MDC_DIM_MMHG^MDC|||||R|||20261124101500+0100",
               "OBX|5|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC|1.0.1.3|110.0|266016^MDC_DIM_MMHG^MDC|||||R|||20261124101500+0100")
    got = [(r["metric"], r["value"], r["unit"], r["device"]) for r in readings(text)]
    dev = "x_0123456789ABCDEF:EUI-64"
    assert got == [("sbp", 140.5, "mm[Hg]", dev), ("dbp", 95.0, "mm[Hg]", dev), ("map", 110.0, "mm[Hg]", dev)]


def test_pv1_3_bed_location():
    (r,) = readings(msg(SPO2))
    assert r["location"] == {"point_of_care": "W7", "room": "7", "bed": "1", "facility": ""}


@pytest.mark.parametrize("code", ["147842^MDC_ECG_HEART_RATE^MDC", "0002-4182^MDC_ECG_HEART_RATE^MDC", "0002-4182",
                                  "^MDC_ECG_HEART_RATE^MDC", "MDC_ECG_HEART_RATE", "2::16770^^MDC",
                                  "HR^Heart rate^99LOCAL^147842^MDC_ECG_HEART_RATE^MDC"])
def test_mdc_codes_as_numbers_reference_ids_and_partition_hex(code):
    (r,) = readings(msg(f"OBX|1|NM|{code}|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R"))
    assert r["metric"] == "heart_rate"
    assert mdc_code("0002-4182") == 2 * 65536 + 0x4182 == 147842


@pytest.mark.parametrize("unit,want", [("262688^MDC_DIM_PERCENT^MDC", "%"), ("262688", "%"), ("^MDC_DIM_PERCENT^MDC", "%"),
                                       ("0004-0220^^MDC", "%"), ("%^%^UCUM", "%"), ("%", "%")])
def test_ucum_and_mdc_units(unit, want):
    (r,) = readings(msg(f"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|96|{unit}|||||R"))
    assert r["unit"] == want
    (t,) = readings(msg("OBX|1|NM|150364^MDC_TEMP_BODY^MDC|1.1.1.1|98.6|{degF}^^UCUM|||||R".replace("{degF}", "[degF]")))
    assert t["unit"] == "[degF]"


def test_an_operators_code_table_is_merged_over_the_shipped_one(tmp_path):
    path = tmp_path / "codes.json"
    path.write_text(json.dumps({"observations": {"99ACME": {"HR-ECG": "heart_rate"}, "LN": {"8867-4": ""}},
                                "units": {"99ACME": {"BPM": "/min"}}}))
    table = hl7v2.code_table(str(path))
    (r,) = hl7v2.parse_message(msg("OBX|1|NM|HR-ECG^ECG heart rate^99ACME|1|61|BPM^beats^99ACME|||||R"), table).items
    assert (r["metric"], r["unit"]) == ("heart_rate", "/min")
    (bad,) = hl7v2.parse_message(msg("OBX|1|NM|8867-4^HR^LN|1|61|/min^^UCUM|||||R"), table).items
    assert isinstance(bad, Invalid) and bad.reason == "unknown_metric"  # removed by the operator's ""
    (ok,) = readings(msg("OBX|1|NM|8867-4^HR^LN|1|61|/min^^UCUM|||||R"))  # the shipped table has it
    assert ok["metric"] == "heart_rate"


def test_device_ids_with_spaces_and_components_are_normalised_not_rejected():
    (r,) = readings(msg(SPO2.replace("||||mon-1", "||||Bed 12 Monitor^Philips^00095CFFFE4A1B2C^EUI-64")))
    assert r["device"] == "x_Bed_2012_20Monitor:Philips:00095CFFFE4A1B2C:EUI-64"
    assert from_device_id(r["device"]) == "Bed 12 Monitor^Philips^00095CFFFE4A1B2C^EUI-64"
    # two devices differing only where a naive mapping would fold them stay two
    a, b = to_identifier("mon 1"), to_identifier("mon_1")
    assert a != b and is_identifier(a) and b == "mon_1"


def test_settings_skipped_no_value_skipped_and_the_message_kept():
    text = msg("OBX|1|ST|184327^MDC_ATTR_ALERT_TYPE^MDC|1|none||||||R",
               "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1||262688^MDC_DIM_PERCENT^MDC|||||X")
    assert readings(text) == []  # the MLLP path answers AA; /v1/hl7v2 keeps answering "no numeric OBX"
    with pytest.raises(Invalid):
        hl7v2.message_readings(text, CODES)


def test_ack_modes():
    h = hl7v2.header_of(msg(SPO2))
    (a,) = hl7v2.ack_messages(h, [])
    assert "\rMSA|AA|C1|" in a
    h.accept_ack, h.app_ack = "AL", "NE"
    assert [x.split("\r")[1][:6] for x in hl7v2.ack_messages(h, [])] == ["MSA|CA"]
    h.accept_ack, h.app_ack = "NE", "ER"
    assert hl7v2.ack_messages(h, []) == []
    assert [x.split("\r")[1][:6] for x in hl7v2.ack_messages(h, [hl7v2.Problem("unit", "bad", "OBX", 1)])] == ["MSA|AE"]
    h.accept_ack, h.app_ack = "ER", "SU"
    assert [x.split("\r")[1][:6] for x in hl7v2.ack_messages(h, [], retry=True)] == ["MSA|CE"]


_ANY_ID = st.text(st.characters(codec="utf-8"), max_size=80) | st.from_regex(r"[A-Za-z0-9._:^ -]{0,40}", fullmatch=True) \
    | st.from_regex(r"x_[A-Za-z0-9._:-]{0,20}", fullmatch=True)


@hsettings(max_examples=500, deadline=None)
@given(_ANY_ID, _ANY_ID)
def test_the_device_id_mapping_is_injective_and_always_valid(a, b):
    ia, ib = to_identifier(a), to_identifier(b)
    assert is_identifier(ia) and is_identifier(ib)
    if a != b:
        assert ia != ib
    if not ia.startswith("x__h"):
        assert from_device_id(ia) == a


@pytest.mark.parametrize("kind", ["ST", "", "TX"])
def test_a_gateway_writing_a_heart_rate_as_st_or_without_obx2_has_it_dead_lettered_with_its_reason(kind):
    """Legacy gateways write numerics as ST (or leave OBX-2 empty). A known vital sign with a value
    that is not NM/SN must be kept with a reason, not skipped: over MLLP a message of only such OBX
    was answered AA while its readings vanished."""
    text = msg(f"OBX|1|{kind}|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F", SPO2)
    bad, good = readings(text)
    assert isinstance(bad, Invalid) and bad.reason == "schema" and "OBX-2" in bad.detail
    assert good["metric"] == "spo2"
    # settings and text of codes that are no vital sign are still skipped
    assert readings(msg("OBX|1|ST|184327^MDC_ATTR_ALERT_TYPE^MDC|1|none||||||R")) == []


def test_a_gateway_writing_a_utf8_bom_before_msh_has_its_readings_read():
    """Windows interface engines save and post HL7 files with a UTF-8 byte order mark; it was taken
    as part of the first segment, and the whole message was refused as "does not begin with MSH"."""
    (r,) = readings("\ufeff" + msg(SPO2))
    assert (r["metric"], r["patient"], r["device"]) == ("spo2", "p1", "mon-1")
    framed = "\x0b\ufeff" + msg(SPO2) + "\x1c\r" + "\x0b\ufeff" + msg(SPO2).replace("|C1|", "|C2|") + "\x1c\r"
    assert [hl7v2.header_of(m).control_id for m in hl7v2.split_messages(framed)] == ["C1", "C2"]
    assert hl7v2.header_of("\ufeff" + msg(SPO2)).control_id == "C1"


def test_a_gateway_posting_an_hl7_batch_file_has_only_its_messages_read_not_its_envelope():
    """HL7 v2 batch protocol: FHS/BHS before the messages, BTS/FTS after. The envelope was split off
    as a message of its own and rejected ("does not begin with MSH"): a dead letter and an ACK for
    a message nobody sent, and the body answered 207 although every reading was good."""
    from ingest.bounds import Bounds
    from ingest.replies import Hl7Reply

    envelope_head = "FHS|^~\\&|GW|WARD7|WW|HOSP|20261124101500+0100\rBHS|^~\\&|GW|WARD7|WW|HOSP|20261124101500+0100\r"
    body = envelope_head + msg(SPO2) + msg(SPO2).replace("|C1|", "|C2|") + "BTS|2\rFTS|1\r"
    assert [hl7v2.header_of(m).control_id for m in hl7v2.split_messages(body)] == ["C1", "C2"]
    reply = Hl7Reply(False)
    items = reply.parse(body.encode(), Bounds(1 << 20, 10, 1000, 1 << 20, 1000, 1000, 10_000, 100))
    assert [i["metric"] for i in items] == ["spo2", "spo2"]
    assert [m.header.control_id for m in reply.msgs] == ["C1", "C2"]


@pytest.mark.parametrize("unit", ["265987^MDC_DIM_KILO_PASCAL^MDC", "^MDC_DIM_KILO_PASCAL^MDC", "0004-0F03^^MDC"])
def test_a_drager_monitor_writing_etco2_in_mdc_kilopascal_has_it_converted_to_mmhg(unit):
    """European monitors are commonly set to kPa for CO2. kPa converts to mm[Hg] and is understood in
    UCUM, but its MDC form (MDC_DIM_KILO_PASCAL, 4::3843) was passed on as the bare code and every
    such reading was rejected as an unknown unit."""
    from wardwatch.codec import DEFAULT_LIMITS, reading_from_mapping

    (r,) = readings(msg(f"OBX|1|NM|151708^MDC_AWAY_CO2_ET^MDC|1.1.1.1|5.1|{unit}|||||R|||20261124101500+0100||||mon-1"))
    assert r["unit"] == "kPa"
    reading = reading_from_mapping(r, r["ts"], DEFAULT_LIMITS)
    assert (reading.unit, reading.value) == ("mm[Hg]", pytest.approx(38.25, abs=0.01))


def test_a_monitor_declaring_latin1_in_msh18_keeps_two_devices_with_umlauts_apart():
    """MSH-18 ``8859/1``: the bytes are Latin-1, not UTF-8. Read as UTF-8, every non-ASCII letter
    became U+FFFD, so ``Bett-ü`` and ``Bett-ö`` were one device (and a Latin-1 body split into
    messages of mixed declarations must be read message by message)."""
    from ingest.bounds import Bounds
    from ingest.replies import Hl7Reply

    def latin1(device: str, cid: str) -> bytes:
        text = msg(SPO2.replace("||||mon-1", f"||||{device}")).replace("|C1|P|2.6", f"|{cid}|P|2.6||||||8859/1")
        return text.encode("latin-1")

    body = latin1("Bett-ü", "C1") + msg(SPO2.replace("||||mon-1", "||||Bett-é")).encode("utf-8") + latin1("Bett-ö", "C3")
    items = Hl7Reply(False).parse(body, Bounds(1 << 20, 10, 1000, 1 << 20, 1000, 1000, 10_000, 100))
    assert [i["device"] for i in items] == [to_identifier("Bett-ü"), to_identifier("Bett-é"), to_identifier("Bett-ö")]
    assert "||||Bett-ü\r" in hl7v2.decode(b"\x0b" + latin1("Bett-ü", "C1") + b"\x1c\r")  # as the MLLP listener reads a frame


@pytest.mark.parametrize("written", ["9_6", "٩٦", "9\u00a06", "0x60"])
def test_an_obx5_that_is_no_hl7_number_is_rejected_not_read_by_pythons_float(written):
    """HL7 NM is an optional sign, ASCII digits and a decimal point. Python's float also reads digit
    group underscores and non-ASCII digits: a garbled ``9_6`` was stored as SpO2 96."""
    (r,) = readings(msg(SPO2.replace("|96|", f"|{written}|")))
    assert isinstance(r, Invalid) and r.reason == "schema"


@pytest.mark.parametrize("written,value", [("+96", 96.0), (" 96 ", 96.0), ("96.", 96.0), (".5", 0.5), ("-0.5", -0.5),
                                           ("9.6E1", 96.0)])
def test_an_obx5_with_a_sign_spaces_or_a_bare_decimal_point_is_read(written, value):
    (r,) = readings(msg(SPO2.replace("|96|", f"|{written}|")))
    assert r["value"] == value


def test_two_messages_run_together_in_one_mllp_frame_are_refused_not_filed_under_the_first_patient():
    """A sender that puts two ORU^R01 in one MLLP block (no FS/VT between them): the second MSH was
    read as just another segment, and the second patient's readings were filed under the first
    patient's PID. Refused whole (kept on the dead-letter topic, answered AR) instead."""
    second = msg(SPO2.replace("||||mon-1", "||||mon-2").replace("|96|", "|88|"), pid="p2^^^HOSP^MR").replace("|C1|", "|C2|")
    with pytest.raises(Invalid) as info:
        hl7v2.parse_message(msg(SPO2) + second, CODES)
    assert info.value.reason == "unsupported" and "one message" in info.value.detail
    with pytest.raises(Invalid):  # the monitors' own alarms (ORU^R40) likewise
        hl7v2_alarms.parse_alarm_message(msg(SPO2).replace("ORU^R01^ORU_R01", "ORU^R40^ORU_R40") + second)
    # over HTTP a body of several messages is split first: each patient keeps their own readings
    got = [(r["patient"], r["value"]) for m in hl7v2.split_messages(msg(SPO2) + second) for r in readings(m)]
    assert got == [("p1", 96.0), ("p2", 88.0)]


def test_a_message_in_its_own_delimiters_with_a_time_precision_component_keeps_its_time():
    """TS in v2.3-2.4 is ``time^degree of precision``. In a message declaring ``$`` as its component
    separator the precision came after a ``$`` that was taken as part of the zone: refused."""
    def other(t: str) -> str:
        return t.replace("|", "#").replace("^", "$").replace("~", "*").replace("\\", "@").replace("&", "%")

    obx = SPO2.replace("20261124101500+0100||||mon-1", "20261124101500+0100^S||||mon-1")
    (r,) = readings(other(msg(obx)))
    assert r["ts"] == 1795511700000
    (r,) = readings(other(msg(SPO2.replace("20261124101500+0100||||mon-1", "||||mon-1"), msh7="20261124101500+0100^S")))
    assert r["ts"] == 1795511700000


@pytest.mark.parametrize("obx", [
    SPO2.replace("20261124101500+0100||||mon-1", "20261124101500.²+0100||||mon-1"),
    SPO2.replace("20261124101500+0100||||mon-1", "20261124101500+01²0||||mon-1"),
    SPO2.replace("150456^MDC_PULS_OXIM_SAT_O2^MDC", "15045²"),
    SPO2.replace("262688^MDC_DIM_PERCENT^MDC", "4::²2"),
    SPO2.replace("|1.1.1.1|", "|1.²|")])
def test_a_superscript_digit_in_a_time_code_or_containment_id_costs_that_obx_only(obx):
    """``str.isdigit`` is true for ``²`` (Latin-1 0xB2), which ``int`` and ``float`` refuse: the
    ValueError escaped the parser, and over HTTP every message of the body was refused with it."""
    items = readings(msg(obx, SPO2.replace("|96|", "|95|")))
    assert items[-1]["value"] == 95.0
    assert isinstance(items[0], Invalid) or items[0]["value"] == 96.0
    with pytest.raises(Invalid):  # the FHIR path reads MDC codes with the same function
        fhir.metric_of({"coding": [{"system": fhir.MDC, "code": "15045²"}]})


@pytest.mark.parametrize("code", ["^MDC_TTHOR_RESP_RATE^MDC", "^MDC_AWAY_RESP_RATE^MDC", "^MDC_CO2_RESP_RATE^MDC",
                                  "151578^MDC_TTHOR_RESP_RATE^MDC", "151570", "151594^^MDC"])
def test_a_bedside_monitors_impedance_or_co2_respiration_rate_is_read_as_the_respiration_rate(code):
    """Bedside monitors measure the respiration rate from the ECG leads (transthoracic impedance,
    MDC_TTHOR_RESP_RATE) or the capnograph (MDC_AWAY_RESP_RATE, MDC_CO2_RESP_RATE), rarely as the
    generic MDC_RESP_RATE: every such reading was dead-lettered as an unknown metric, and NEWS2
    lost its respiration rate."""
    (r,) = readings(msg(f"OBX|1|NM|{code}|1.1.1.1|18|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R"))
    assert (r["metric"], r["value"], r["unit"]) == ("resp_rate", 18.0, "/min")
    (r,) = readings(msg(f"OBX|1|NM|MDC_RESP_RATE|1.1.1.1|18|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R"))
    assert r["metric"] == "resp_rate"


@pytest.mark.parametrize("code", ["188424^MDC_TEMP_ORAL^MDC", "150392^MDC_TEMP_TYMP^MDC", "188452^MDC_TEMP_AXILLA^MDC",
                                  "188420^MDC_TEMP_RECT^MDC", "188428^MDC_TEMP_EAR^MDC", "150368^MDC_TEMP_CORE^MDC",
                                  "MDC_TEMP_ORAL", "188452"])
def test_a_spot_check_thermometer_writing_the_measuring_site_has_its_temperature_read(code):
    """Ward spot-check monitors write the site of a temperature (oral, tympanic, axillary...), rarely
    the unspecified MDC_TEMP_BODY: each reading was dead-lettered as an unknown metric."""
    (r,) = readings(msg(f"OBX|1|NM|{code}|1.1.1.1|37.2|268192^MDC_DIM_DEGC^MDC|||||R"))
    assert (r["metric"], r["value"], r["unit"]) == ("temperature", 37.2, "Cel")
