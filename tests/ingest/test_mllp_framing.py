"""MLLP framing as a monitor's bytes arrive: a frame ends at FS CR, however the stream is cut into
reads; an FS inside a message is data (the parser refuses it), never the end of a shorter message."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ingest.formats import hl7v2
from ingest.mllp import FrameDecoder, FrameTooLarge, frame
from wardwatch.identifiers import is_identifier

MSG = "MSH|^~\\&|MON||||20261206120000||ORU^R01|{c}|P|2.6\rPID|||{p}^^^H^MR\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R\r"


def decode(chunks: list[bytes]) -> list[bytes]:
    """The frames of ``chunks`` read one after another, then nothing more (as the listener ends a
    frame left at its final FS once no CR comes)."""
    d = FrameDecoder(1 << 20)
    return [f for c in chunks for f in d.feed(c)] + d.end_undecided()


def test_an_fs_inside_the_patient_id_does_not_end_the_frame():
    stream = frame(MSG.format(c="M1", p="uMGPwo8r\x1cX")) + frame(MSG.format(c="M2", p="p2"))
    first, second = decode([stream])
    assert b"OBX|1|NM" in first and b"uMGPwo8r\x1cX" in first  # the whole message, FS and all
    assert hl7v2.parse(first.decode()) is not None and b"PID|||p2" in second


def test_the_id_the_frame_kept_whole_is_refused_not_shortened():
    (f,) = decode([frame(MSG.format(c="M1", p="p1\x1cOBX"))])
    (reading,) = hl7v2.message_readings(f.decode())
    # Filed under the id as sent, FS and all, which the identifier rule refuses (bad_identifier):
    # never under "p1", the id the frame's cut used to leave.
    assert reading["patient"] == "p1\x1cOBX" and not is_identifier(reading["patient"])


def test_a_sender_that_leaves_out_the_cr_still_gets_its_frames():
    data = b"\x0b" + MSG.format(c="M1", p="p1").encode() + b"\x1c" + b"\x0b" + MSG.format(c="M2", p="p2").encode() + b"\x1c"
    d = FrameDecoder(1 << 20)
    assert len(d.feed(data)) == 1 and d.undecided  # the last frame waits for a CR that never comes ...
    assert len(d.end_undecided()) == 1 and not d.in_frame  # ... and is taken as ended


def test_a_relay_that_ends_its_blocks_with_fs_lf_gets_a_frame_per_message():
    data = b"".join(b"\x0b" + MSG.format(c=c, p=p).encode() + b"\x1c\n" for c, p in (("M1", "p1"), ("M2", "p2")))
    first, second = decode([data])
    assert b"PID|||p1" in first and b"PID|||p2" not in first and b"PID|||p2" in second


def test_a_read_that_ends_right_after_an_fs_inside_a_field_decides_nothing():
    whole = frame(MSG.format(c="M1", p="p1\x1cX"))
    cut = whole.index(b"\x1c") + 1
    d = FrameDecoder(1 << 20)
    assert d.feed(whole[:cut]) == [] and d.undecided
    (f,) = d.feed(whole[cut:])  # the next byte is X: data, so the frame goes on to its own FS CR
    assert b"p1\x1cX" in f and b"OBX|1|NM" in f


def test_a_whole_frame_read_with_an_oversized_one_is_handed_over_with_the_refusal():
    small = MSG.format(c="M1", p="p1").encode()
    big = frame(MSG.format(c="M2", p="p2" + "x" * 100))
    # The oversized frame whole in the read, or only its start: either way it is refused, and the
    # frame before it is not lost with it.
    for tail in (big, big[:len(small) + 50]):
        d = FrameDecoder(len(small) + 10)
        with pytest.raises(FrameTooLarge) as refused:
            d.feed(frame(small) + tail)
        assert refused.value.frames == [small]
        assert refused.value.head.startswith(b"MSH") and b"|M2|" in refused.value.head


ids = st.text(st.sampled_from("abcXYZ019\x1c"), min_size=1, max_size=12).filter(lambda s: not s.endswith("\x1c"))


@hsettings(max_examples=300, deadline=None)
@given(st.lists(ids, min_size=1, max_size=5), st.data())
def test_any_cut_into_reads_gives_the_same_frames(patients, data):
    """The frames do not depend on where the reads fall."""
    msgs = [MSG.format(c=f"M{i}", p=p).encode() for i, p in enumerate(patients)]
    stream = b"".join(frame(m) for m in msgs)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=20))))
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    assert decode(chunks) == msgs
