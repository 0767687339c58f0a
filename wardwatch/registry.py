"""The patient registry: who is monitored, on which ward and bed, with which devices.

Durable twice: a SQLite file for the process that administers it, and a compacted Kafka topic
(key = patient, value = :class:`PatientRecord` JSON, empty value = discharged) from which every
other service builds a read-only :class:`RegistryView` of plain dicts, so that a lookup on the hot
path is a dict lookup and never a database query.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from .bus import Bus
from .models import PatientRecord, now_ms


class RegistryView:
    """In-memory patient -> record and device -> patient maps."""

    def __init__(self) -> None:
        self.patients: dict[str, PatientRecord] = {}
        self.devices: dict[str, str] = {}

    def apply(self, patient: str, record: PatientRecord | None) -> None:
        old = self.patients.pop(patient, None)
        if old:
            for d in old.devices:
                if self.devices.get(d) == patient:
                    del self.devices[d]
        if record is not None and record.discharged is None:
            self.patients[patient] = record
            for d in record.devices:
                self.devices[d] = patient

    def apply_message(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        patient = key.decode()
        self.apply(patient, PatientRecord.model_validate_json(value) if value else None)

    def is_admitted(self, patient: str) -> bool:
        return patient in self.patients

    def patient_for_device(self, device: str) -> str | None:
        return self.devices.get(device)

    def ward_of(self, patient: str) -> str | None:
        rec = self.patients.get(patient)
        return rec.ward if rec else None

    async def follow(self, bus: Bus, stop, ready=None) -> None:
        """Read the registry topic from the start, then keep following it until ``stop`` is set."""
        consumer = bus.consumer(bus.topics.registry, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for msgs in batches.values():
                    for m in msgs:
                        try:
                            self.apply_message(m.key, m.value)
                        except Exception:
                            pass  # a malformed record never stops the service
                if not batches and ready is not None and not ready.is_set():
                    ready.set()
        finally:
            await consumer.stop()


class Registry:
    """Admit, assign devices, discharge: SQLite first, then the registry topic for everyone else."""

    def __init__(self, path: Path | str, bus: Bus | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.bus = bus
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS patients (patient TEXT PRIMARY KEY, record TEXT NOT NULL)")

    def get(self, patient: str) -> PatientRecord | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM patients WHERE patient=?", (patient,)).fetchone()
        return PatientRecord.model_validate_json(row[0]) if row else None

    def all(self) -> list[PatientRecord]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM patients").fetchall()
        return [PatientRecord.model_validate_json(r[0]) for r in rows]

    def view(self) -> RegistryView:
        v = RegistryView()
        for rec in self.all():
            v.apply(rec.patient, rec)
        return v

    def _save(self, records: list[PatientRecord]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            for rec in records:
                self._db.execute("INSERT OR REPLACE INTO patients VALUES (?, ?)", (rec.patient, rec.model_dump_json()))
            self._db.execute("COMMIT")

    async def _publish(self, records: list[PatientRecord]) -> None:
        if self.bus is None:
            return
        producer = self.bus.producer()
        await producer.start()
        try:
            await producer.send_many(self.bus.topics.registry,
                                     [(r.patient.encode(), r.model_dump_json().encode() if r.discharged is None else b"")
                                      for r in records])
        finally:
            await producer.stop()

    async def admit_many(self, records: list[PatientRecord]) -> None:
        # A device moves with its new patient: take it off anyone else first.
        taken = {d: r.patient for r in records for d in r.devices}
        changed = []
        for rec in self.all():
            keep = [d for d in rec.devices if taken.get(d, rec.patient) == rec.patient]
            if keep != rec.devices:
                changed.append(rec.model_copy(update={"devices": keep}))
        self._save(changed + records)
        await self._publish(changed + records)

    async def admit(self, patient: str, ward: str, bed: str | None = None, devices: list[str] | None = None) -> PatientRecord:
        rec = PatientRecord(patient=patient, ward=ward, bed=bed, devices=devices or [])
        await self.admit_many([rec])
        return rec

    async def assign(self, device: str, patient: str) -> PatientRecord:
        rec = self.get(patient)
        if rec is None or rec.discharged is not None:
            raise KeyError("patient is not admitted")
        rec = rec.model_copy(update={"devices": sorted(set(rec.devices) | {device})})
        await self.admit_many([rec])
        return rec

    async def discharge(self, patient: str) -> PatientRecord:
        rec = self.get(patient)
        if rec is None:
            raise KeyError("patient is not admitted")
        rec = rec.model_copy(update={"discharged": now_ms(), "devices": []})
        self._save([rec])
        await self._publish([rec])
        return rec
