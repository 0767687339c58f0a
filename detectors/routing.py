"""Readings on the wrong partition, and where they belong.

A patient's state lives in the worker that holds the patient's partition: murmur2 of the patient id,
as every producer of ours (and Kafka's Java client, keyed by the patient) computes it. A Kafka client
that is not ours may key a reading by its device, by nothing (round robin), or choose a partition
itself. Its readings would then reach workers that do not hold the patient, and the patient's state
would split between them: trends on part of the data, an alarm raised by one worker and never cleared
by the other. Such a record is therefore sent again, keyed by its patient (so to the patient's
partition), and not processed where it landed; the worker commits its offset only once the copy is
acknowledged, so it is never lost, and the copy is processed once, by the worker that holds the patient.

A record whose patient cannot be read (not JSON, not an object, no string ``patient``) stays where it
is: the decoder rejects it with its reason, on whichever partition it came.
"""

from __future__ import annotations

from typing import Sequence

import orjson

from wardwatch.kafka import partition_for

_PATIENT = b'"patient":'


def patient_of(value: bytes | None, key: bytes | None) -> bytes | None:
    """The patient a readings-topic record is about, as its key: from the body (the key is only a hint,
    used to read our own encoder's messages without a parser); None when the body names none."""
    if not value:
        return None
    # Our encoder's form names the patient once, as "patient":"<key>"; a second "patient" (a duplicate
    # key, whose last value a parser keeps) goes the long way.
    if key and value.count(_PATIENT) == 1 and (_PATIENT + b'"' + key + b'"') in value:
        return key
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    patient = doc.get("patient") if isinstance(doc, dict) else None
    return patient.encode() if isinstance(patient, str) and patient else None


def split_misrouted(msgs: Sequence, partition: int, partitions: Sequence[int], cache: dict[bytes, int]
                    ) -> tuple[list, list[tuple[bytes, bytes]]]:
    """One partition's records -> (those at home, (patient, value) of those to send to their patient's
    partition). ``partitions``: the topic's partition ids, sorted; ``cache``: patient -> partition."""
    home, away = [], []
    n = len(partitions)
    for m in msgs:
        patient = patient_of(m.value, m.key)
        if patient is None:
            home.append(m)
            continue
        part = cache.get(patient)
        if part is None:
            part = cache[patient] = partitions[partition_for(patient, n)]
        if part == partition and patient == m.key:
            home.append(m)
        else:
            away.append((patient, m.value))
    return home, away
