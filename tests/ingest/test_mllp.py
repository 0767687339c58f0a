"""HL7 v2 over MLLP against the real Kafka: framing (split and coalesced frames), one ACK per message in
order and only after Kafka has the readings, original and enhanced acknowledgement, ERR segments,
the dead-letter topic, limits, source addresses and TLS with client certificates.

Test messages are written after these published examples (times moved to now, patients and
devices to the ones this test admits):
* IHE PCD Technical Framework Vol. 2, PCD-01 (DEC) ORU^R01 examples: MSH-21 PCD_DEC_001 profile,
  OBR-4 ``182777000^monitoring of patient^SCT``, OBX-4 MDS.VMD.channel.metric hierarchy, the
  MDS OBX ``69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC`` carrying the EUI-64 in OBX-18, and MDC
  units (``262688^MDC_DIM_PERCENT^MDC``);
* GE Healthcare B40 patient monitor HL7 reference manual (2062665-001), "Result Message
  Examples": MSH-3 ``VSP^<EUI-64>^EUI-64``, MSH-15 ``NE`` and MSH-16 ``AL`` (enhanced mode,
  application acknowledgement only), PV1-3 ``SURGERY^^V2``;
* HL7 v2.6 chapter 2 (acknowledgement rules, tables 0008, 0155 and 0357, the ERR segment).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl

import orjson
import pytest

from ingest.mllp import FrameDecoder, MLLPServer, frame

from .conftest import drain

pytestmark = pytest.mark.integration


def hl7_now(offset_s: int = 0) -> str:
    t = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=60 - offset_s)
    return t.strftime("%Y%m%d%H%M%S") + "+0000"


def ihe_pcd01(control: str, patient: str, spo2: str = "97", hr: str = "0002-4182^MDC_ECG_HEART_RATE^MDC", when: str | None = None,
              acks: str = "", eui: str = "0123456789ABCDEF") -> str:
    """After the IHE PCD TF PCD-01 example: an MDS OBX with the EUI-64, then numerics below it."""
    when = when or hl7_now()
    return (f"MSH|^~\\&|AcmeInc^ACDE48234567ABCD^EUI-64||||{when}||ORU^R01^ORU_R01|{control}|P|2.6|||{acks}||||"
            f"|PCD_DEC_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r"
            f"PID|||{patient}^^^Imaginary Hospital&1.2.3.4&ISO^MR||Doe^John\r"
            f"PV1||I|3 West ICU^3002^1\r"
            f"OBR|1|AB12345^AcmeInc^ACDE48234567ABCD^EUI-64|CD12345^AcmeInc^ACDE48234567ABCD^EUI-64"
            f"|182777000^monitoring of patient^SCT|||{when}\r"
            f"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||{eui}^EUI-64\r"
            f"OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R|||{when}\r"
            f"OBX|3|NM|{hr}|1.1.2.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||{when}\r")


def ge_b40(control: str, patient: str) -> str:
    """After the GE B40 manual's example 1 (MSH-15 NE, MSH-16 AL), LF segment ends as some engines relay it."""
    when = hl7_now()[:12]  # no seconds, no zone: MSH-7's zone is absent too, so hl7_local_timezone (UTC)
    return (f"MSH|^~\\&|VSP^080019FFFE134535^EUI-64|GE Healthcare|||{when}||ORU^R01^ORU_R01|{control}|P|2.6|||NE|AL"
            f"||UNICODE UTF-8|||PCD_DEC_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\n"
            f"PID|||{patient}^^^PID^MR||LAZY^KITTY^^^^^L|||\n"
            f"PV1||R|SURGERY^^V2\n"
            f"OBR|1|080019FFFE134535{when}^VSP^080019FFFE134535^EUI-64||182777000^monitoring of patient^SCT|||{when}\n"
            f"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X\n"
            f"OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.2.1.1|80|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R\n"
            f"OBX|3|NM|150364^MDC_TEMP_BODY^MDC|1.3.1.1|98.6|266560^MDC_DIM_FAHR^MDC|||||R\n")


def parse_acks(data: bytes) -> list[dict]:
    out = []
    for f in FrameDecoder(1 << 20).feed(data):
        segs = {}
        errs = []
        for s in f.decode().split("\r"):
            if s:
                fields = s.split("|")
                if fields[0] == "ERR":
                    errs.append(fields)
                segs.setdefault(fields[0], fields)
        out.append({"msa": segs["MSA"][1], "control": segs["MSA"][2], "type": segs["MSH"][8], "err": errs,
                    "msh": segs["MSH"]})
    return out


def parse_ack_batch(f: bytes) -> tuple[dict[str, list[str]], list[dict]]:
    """A batch of acknowledgements: its FHS, BHS, BTS and FTS by name (checked to be where a batch
    has them), and its ACK messages as ``parse_acks`` reads them."""
    segs = [s for s in f.decode().split("\r") if s]
    assert [s[:3] for s in segs[:2] + segs[-2:]] == ["FHS", "BHS", "BTS", "FTS"]
    envelope = {s[:3]: s.split("|") for s in segs[:2] + segs[-2:]}
    messages = re.split(r"\r(?=MSH\|)", "\r".join(segs[2:-2])) if segs[2:-2] else []
    return envelope, parse_acks(b"".join(frame(m + "\r") for m in messages))


async def read_frames(reader: asyncio.StreamReader, n: int, timeout: float = 20) -> bytes:
    """What the listener writes until it has ended ``n`` frames (or closed the connection)."""
    data = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while data.count(b"\x1c") < n:
        chunk = await asyncio.wait_for(reader.read(65536), max(0.1, deadline - loop.time()))
        if not chunk:
            break
        data += chunk
    return data


async def read_acks(reader: asyncio.StreamReader, n: int, timeout: float = 20) -> list[dict]:
    return parse_acks(await read_frames(reader, n, timeout))


def adt(control: str) -> str:
    return f"MSH|^~\\&|ADT1|HOSP|WW|HOSP|{hl7_now()}||ADT^A01^ADT_A01|{control}|P|2.6\rPID|||p1^^^HOSP^MR\r"


async def test_a_stream_of_split_and_coalesced_frames_gets_one_ack_per_message_in_order(gateway, mllp):
    msgs = [ihe_pcd01("M1", "p1"), ge_b40("M2", "p2"), ihe_pcd01("M3", "p3", hr="999999^MDC_VENDOR_THING^MDC", eui="0123456789ABCDE3"),
            adt("M4"), ihe_pcd01("M5", "p4", spo2="140", eui="0123456789ABCDE5"),
            ihe_pcd01("M6", "p0", acks="AL", eui="0123456789ABCDE6")]
    stream = b"".join(frame(m) for m in msgs)
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp.port)
    # The first three frames in one write, then the rest 7 bytes at a time: split frames, a CR apart from its FS.
    cut = sum(len(frame(m)) for m in msgs[:3])
    writer.write(stream[:cut])
    for i in range(cut, len(stream), 7):
        writer.write(stream[i:i + 7])
        await writer.drain()
        await asyncio.sleep(0.001)
    acks = await read_acks(reader, 7)  # M2 asks for the application ack only, M6 for both (CA, AA)
    writer.close()
    got = [(a["msa"], a["control"]) for a in acks]
    assert got == [("AA", "M1"), ("AA", "M2"), ("AE", "M3"), ("AR", "M4"), ("AE", "M5"), ("CA", "M6"), ("AA", "M6")]
    assert all(a["type"] == "ACK^R01^ACK" for a in acks[:3]) and acks[3]["type"] == "ACK^A01^ACK"
    assert acks[0]["msh"][4] == "AcmeInc^ACDE48234567ABCD^EUI-64"  # MSH-5 of the ACK = MSH-3 of the message
    # ERR says what was wrong, where: HL7 table 0357 code, severity E, WardWatch's reason and detail.
    (err,) = acks[2]["err"]
    assert err[2] == "OBX^3^3" and err[3].startswith("103^") and err[4] == "E" and err[5].startswith("unknown_metric")
    (err,) = acks[3]["err"]
    assert err[2] == "MSH^1^9" and err[3].startswith("200^") and "ORU" in err[8]
    (err,) = acks[4]["err"]
    assert err[2] == "OBX^2^5" and err[5].startswith("impossible_value")

    readings = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 8)]
    seen = sorted((r["patient"], r["metric"], round(r["value"], 6), r["unit"], r["device"]) for r in readings)
    assert seen == sorted([
        ("p1", "spo2", 97.0, "%", "x_0123456789ABCDEF:EUI-64"), ("p1", "heart_rate", 72.0, "/min", "x_0123456789ABCDEF:EUI-64"),
        ("p2", "heart_rate", 80.0, "/min", "x_VSP:080019FFFE134535:EUI-64"),
        ("p2", "temperature", 37.0, "Cel", "x_VSP:080019FFFE134535:EUI-64"),
        ("p3", "spo2", 97.0, "%", "x_0123456789ABCDE3:EUI-64"),  # M3: its other OBX is rejected, this one kept
        ("p4", "heart_rate", 72.0, "/min", "x_0123456789ABCDE5:EUI-64"),
        ("p0", "spo2", 97.0, "%", "x_0123456789ABCDE6:EUI-64"), ("p0", "heart_rate", 72.0, "/min", "x_0123456789ABCDE6:EUI-64"),
    ])
    # device time: OBX-14 with seconds and zone, and the GE message's minute-precision MSH-7 without zone.
    now = dt.datetime.now(dt.timezone.utc).timestamp() * 1000
    assert all(now - 130_000 < r["ts"] < now for r in readings)
    assert all(r["ts"] % 60_000 == 0 for r in readings if r["patient"] == "p2")

    dead = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.deadletter, 3)]
    assert sorted(d["reason"] for d in dead) == ["impossible_value", "unknown_metric", "unsupported"]
    assert {d["source"] for d in dead} == {"mllp:hl7v2"}
    assert any("999999" in d["payload"] for d in dead) and any("ADT^A01" in d["payload"] for d in dead)


async def test_a_monitor_reporting_a_rate_from_two_sources_gets_aa_and_the_preferred_one_is_the_patients(gateway, mllp):
    """IntelliVue with capnography reports impedance RR and awRR, CARESCAPE with an arterial line the
    ECG's heart rate and the line's pulse, each as its own OBX at the same time."""
    when = hl7_now()
    text = ihe_pcd01("S1", "p1", when=when) + "".join(
        f"OBX|{n}|NM|{code}|1.2.{n}.1|{value}|{unit}|||||R|||{when}\r" for n, code, value, unit in (
            (4, "149522^MDC_BLD_PULS_RATE_INV^MDC", 64, "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
            (5, "151578^MDC_TTHOR_RESP_RATE^MDC", 18, "264928^MDC_DIM_RESP_PER_MIN^MDC"),
            (6, "151594^MDC_CO2_RESP_RATE^MDC", 22, "264928^MDC_DIM_RESP_PER_MIN^MDC")))
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp.port)
    writer.write(frame(text))
    (ack,) = await read_acks(reader, 1)
    writer.close()
    assert (ack["msa"], ack["control"], ack["err"]) == ("AA", "S1", [])  # nothing for the monitor to fix
    readings = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 4)]
    assert sorted((r["metric"], r["value"]) for r in readings) == [
        ("heart_rate", 72.0), ("pulse_rate", 64.0), ("resp_rate", 22.0), ("spo2", 97.0)]
    (aside,) = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.deadletter, 1)]
    assert aside["reason"] == "other_source" and "151578" in aside["payload"] and "151594" in aside["detail"]


async def test_ack_only_after_kafka_has_the_readings_and_ar_when_it_has_not(gateway, mllp, monkeypatch):
    ingestor = gateway.app.state.ingestor
    gate = asyncio.Event()
    real = ingestor.producer.send_many

    async def slow(topic, items):
        await gate.wait()
        return await real(topic, items)

    monkeypatch.setattr(ingestor.producer, "send_many", slow)
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp.port)
    writer.write(frame(ihe_pcd01("K1", "p1")))
    await writer.drain()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(reader.read(1), 1.0)  # no ACK while Kafka has not acknowledged
    gate.set()
    assert [(a["msa"], a["control"]) for a in await read_acks(reader, 1)] == [("AA", "K1")]

    async def down(topic, items):
        raise ConnectionError("broker away")

    monkeypatch.setattr(ingestor.producer, "send_many", down)
    writer.write(frame(ihe_pcd01("K2", "p1")) + frame(ihe_pcd01("K3", "p1", acks="AL")))
    acks = await read_acks(reader, 2)
    writer.close()
    assert [(a["msa"], a["control"]) for a in acks] == [("AR", "K2"), ("CE", "K3")]  # resend: nothing was kept
    assert "resend" in acks[0]["err"][0][8]


async def test_an_oversized_frame_is_refused_and_the_connection_closed(gateway):
    settings = gateway.settings.model_copy(update={"mllp_max_frame_bytes": 2048, "mllp_frame_timeout_s": 0.5})
    server = await MLLPServer(settings, gateway.app.state.ingestor, gateway.app.state.view).start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        big = ihe_pcd01("BIG", "p1") + "NTE|1||" + "x" * 5000 + "\r"
        writer.write(frame(big))
        acks = await read_acks(reader, 1)
        assert [(a["msa"], a["control"]) for a in acks] == [("AR", "BIG")]
        assert await reader.read() == b""  # closed
        # a frame that is started and never ended is cut off after mllp_frame_timeout_s
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x0bMSH|^~\\&|slow")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        await server.stop()
    dead = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.deadletter, 1)]
    assert [d["reason"] for d in dead] == ["too_large"]


async def test_only_allowed_sources_are_served(gateway):
    settings = gateway.settings.model_copy(update={"mllp_allowed_sources": ["10.0.0.0/8"]})
    server = await MLLPServer(settings, gateway.app.state.ingestor, gateway.app.state.view).start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(ihe_pcd01("X1", "p1")))
        try:
            got = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            got = b""
        assert got == b""  # closed without an ACK
    finally:
        await server.stop()


def _certs(tmp_path):
    """A CA, a server certificate for 127.0.0.1 and a gateway client certificate, made here."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def make(cn, issuer=None, issuer_key=None, ca=False, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san))]), critical=False)
        cert = b.sign(issuer_key or key, hashes.SHA256())
        return cert, key

    ca, ca_key = make("WardWatch test CA", ca=True)
    paths = {}
    for label, (cert, key) in {"ca": (ca, ca_key),
                               "server": make("ingest", ca.subject, ca_key, san="127.0.0.1"),
                               "client": make("gw-ward7", ca.subject, ca_key)}.items():
        (tmp_path / f"{label}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / f"{label}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                                  serialization.PrivateFormat.PKCS8,
                                                                  serialization.NoEncryption()))
        paths[label] = (tmp_path / f"{label}.pem", tmp_path / f"{label}.key")
    return paths


async def test_tls_with_required_client_certificates(gateway, tmp_path):
    p = _certs(tmp_path)
    settings = gateway.settings.model_copy(update={
        "mllp_tls_certfile": p["server"][0], "mllp_tls_keyfile": p["server"][1], "mllp_tls_client_cafile": p["ca"][0],
        "mllp_tls_principals": {"gw-ward7": "ward7-gateway"}})
    server = await MLLPServer(settings, gateway.app.state.ingestor, gateway.app.state.view).start("127.0.0.1", 0)
    try:
        ctx = ssl.create_default_context(cafile=str(p["ca"][0]))
        ctx.load_cert_chain(p["client"][0], p["client"][1])
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx)
        writer.write(frame(ihe_pcd01("T1", "p1")))
        assert [(a["msa"], a["control"]) for a in await read_acks(reader, 1)] == [("AA", "T1")]
        writer.close()
        # without a client certificate: no session, no ACK
        bare = ssl.create_default_context(cafile=str(p["ca"][0]))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=bare)
            writer.write(frame(ihe_pcd01("T2", "p1")))
            got = await asyncio.wait_for(reader.read(), 5)
        except (ssl.SSLError, ConnectionError):
            got = b""
        assert b"MSA" not in got
    finally:
        await server.stop()


async def test_a_sender_without_the_cr_is_answered_and_an_fs_inside_an_id_is_refused_however_the_reads_fall(gateway, mllp):
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp.port)
    # A monitor that ends its block with FS alone: the frame ends once no CR follows.
    writer.write(b"\x0b" + ihe_pcd01("N1", "p1").encode() + b"\x1c")
    await writer.drain()
    assert [(a["msa"], a["control"]) for a in await read_acks(reader, 1, timeout=10)] == [("AA", "N1")]
    # An id holding an FS, the write cut right after it: the rest of the message follows, and the
    # id as sent is refused, its readings never filed under "p2".
    whole = frame(ihe_pcd01("N2", "p2\x1cX", eui="0123456789ABCDE2"))
    cut = whole.index(b"\x1c") + 1
    writer.write(whole[:cut])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(whole[cut:])
    await writer.drain()
    (ack,) = await read_acks(reader, 1, timeout=10)
    writer.close()
    assert (ack["msa"], ack["control"]) == ("AE", "N2") and any("bad_identifier" in "|".join(e) for e in ack["err"])
    readings = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 2)]
    assert {r["patient"] for r in readings} == {"p1"}


async def test_a_whole_frame_read_together_with_an_oversized_one_is_answered_before_it_is_refused(gateway):
    settings = gateway.settings.model_copy(update={"mllp_max_frame_bytes": 2048})
    server = await MLLPServer(settings, gateway.app.state.ingestor, gateway.app.state.view).start("127.0.0.1", 0)
    big = frame(ihe_pcd01("BIG", "p2", eui="0123456789ABCDE2") + "NTE|1||" + "x" * 5000 + "\r")
    try:
        # One write, so one read: a whole frame, then the oversized one whole or only its start.
        for control, tail in (("W1", big), ("W2", big[:3000])):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(frame(ihe_pcd01(control, "p1")) + tail)
            acks = await read_acks(reader, 2)
            assert [(a["msa"], a["control"]) for a in acks] == [("AA", control), ("AR", "BIG")]
            assert await reader.read() == b""  # closed, after the oversized frame as before
    finally:
        await server.stop()
    readings = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 4)]
    assert sorted(r["metric"] for r in readings) == ["heart_rate", "heart_rate", "spo2", "spo2"]
    assert {r["patient"] for r in readings} == {"p1"}
    dead = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.deadletter, 2)]
    assert [d["reason"] for d in dead] == ["too_large", "too_large"]


async def test_a_message_after_a_leading_line_break_is_acknowledged_with_its_own_control_id(gateway, mllp):
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp.port)
    # Some gateways begin a frame with CR LF or LF before MSH.
    writer.write(frame("\r\n" + ihe_pcd01("LB1", "p1")) + frame("\n" + ihe_pcd01("LB2", "p2", eui="0123456789ABCDE2")))
    acks = await read_acks(reader, 2)
    writer.close()
    assert [(a["msa"], a["control"]) for a in acks] == [("AA", "LB1"), ("AA", "LB2")]  # MSA-2 = MSH-10
    assert all(a["msh"][4] == "AcmeInc^ACDE48234567ABCD^EUI-64" for a in acks)  # MSH-5 = the sender's MSH-3


async def test_a_message_in_its_own_delimiters_is_acknowledged_with_its_own_trigger(gateway, mllp):
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp.port)
    # MSH-2 declares "$" the component separator: MSH-9 ADT$A01 is the trigger A01.
    writer.write(frame(f"MSH|$~\\&|ADT1|HOSP|WW|HOSP|{hl7_now()}||ADT$A01$ADT_A01|D1|P|2.6\rPID|||p1$$$HOSP$MR\r"))
    (ack,) = await read_acks(reader, 1)
    writer.close()
    assert (ack["msa"], ack["control"], ack["type"]) == ("AR", "D1", "ACK^A01^ACK")


async def test_a_batch_in_one_frame_is_taken_message_by_message_and_answered_with_a_batch_of_acks(gateway, mllp):
    now = hl7_now()
    batch = (f"FHS|^~\\&|GW7|WARD7|||{now}||||F-0042\r"
             f"BHS|^~\\&|GW7|WARD7|||{now}||||B-0042\r"
             + ihe_pcd01("B1", "p1", eui="0123456789ABCDE1")
             + ihe_pcd01("B2", "p2", spo2="140", eui="0123456789ABCDE2")  # its SpO2 rejected, its heart rate kept
             + adt("B3")  # refused
             + ihe_pcd01("B4", "p3", acks="AL", eui="0123456789ABCDE3")  # enhanced mode: CA, then AA
             + "BTS|4\rFTS|1\r")
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp.port)
    writer.write(frame(batch) + frame(ihe_pcd01("S1", "p4", eui="0123456789ABCDE4")))
    answer, single = FrameDecoder(1 << 20).feed(await read_frames(reader, 2))
    writer.close()
    # One frame answers the batch: a batch of the ACKs of its messages, in order.
    envelope, acks = parse_ack_batch(answer)
    assert [(a["msa"], a["control"]) for a in acks] == [("AA", "B1"), ("AE", "B2"), ("AR", "B3"), ("CA", "B4"), ("AA", "B4")]
    assert acks[2]["type"] == "ACK^A01^ACK" and acks[1]["err"][0][5].startswith("impossible_value")
    assert envelope["BTS"][1] == "5" and envelope["FTS"][1] == "1"
    assert envelope["FHS"][4] == envelope["BHS"][4] == "GW7"  # FHS-5, BHS-5: to the batch's sender
    assert envelope["FHS"][11] == "F-0042" and envelope["BHS"][11] == "B-0042"  # FHS-12, BHS-12: the file and batch it answers
    assert envelope["BHS"][10] not in ("", "B-0042")  # BHS-11: the answer's own control id
    # A single message's frame after it is answered as ever: one ACK frame.
    assert [(a["msa"], a["control"]) for a in parse_acks(frame(single))] == [("AA", "S1")]

    readings = [orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.readings, 7)]
    assert sorted((r["patient"], r["metric"]) for r in readings) == [
        ("p1", "heart_rate"), ("p1", "spo2"), ("p2", "heart_rate"), ("p3", "heart_rate"), ("p3", "spo2"),
        ("p4", "heart_rate"), ("p4", "spo2")]
    dead = {d["reason"]: d for d in (orjson.loads(m.value) for m in await drain(gateway.bus, gateway.bus.topics.deadletter, 2))}
    assert sorted(dead) == ["impossible_value", "unsupported"]
    # The refused message's dead letter holds that message, not the whole batch.
    assert "ADT^A01" in dead["unsupported"]["payload"] and "BHS" not in dead["unsupported"]["payload"]
