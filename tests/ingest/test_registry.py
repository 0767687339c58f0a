"""The patient registry: admit, move a device, discharge; the view every service builds from it."""

from wardwatch.models import PatientRecord
from wardwatch.registry import Registry, RegistryView


async def test_admit_assign_discharge_and_the_view_follows(tmp_path):
    reg = Registry(tmp_path / "registry.sqlite3")  # no bus: SQLite only
    await reg.admit("p1", "w7", "3", ["mon-1"])
    await reg.admit("p2", "w7", "4")
    await reg.assign("mon-1", "p2")  # the monitor moves to the next bed
    view = reg.view()
    assert view.patient_for_device("mon-1") == "p2" and view.ward_of("p1") == "w7"
    assert reg.get("p1").devices == []
    await reg.discharge("p2")
    view = reg.view()
    assert not view.is_admitted("p2") and view.patient_for_device("mon-1") is None and view.is_admitted("p1")


def test_view_from_topic_messages_handles_tombstones_and_garbage():
    view = RegistryView()
    rec = PatientRecord(patient="p9", ward="w8", devices=["watch-9"])
    view.apply_message(b"p9", rec.model_dump_json().encode())
    assert view.patient_for_device("watch-9") == "p9"
    view.apply_message(b"p9", b"")  # a tombstone: discharged
    assert not view.is_admitted("p9") and view.patient_for_device("watch-9") is None
    view.apply_message(None, b"{}")  # no key: ignored
    assert view.patients == {}
