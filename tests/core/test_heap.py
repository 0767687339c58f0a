import gc
import weakref

import pytest

from wardwatch import heap


@pytest.fixture
def gc_state():
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_settle_freezes_the_heap_and_raises_the_young_threshold(gc_state):
    gc.unfreeze()
    older = gc.get_threshold()[1:]
    heap.settle(12_345)
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (12_345, *older)


def test_cycles_made_after_settle_are_still_collected_without_asking(gc_state):
    heap.settle(100)
    assert gc.isenabled()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    del a, b
    keep = [[] for _ in range(1_000)]  # ten times the young threshold: young collections run
    assert ref() is None
    del keep


def test_pauses_are_observed_per_generation_and_stop_when_removed():
    seen = []
    pauses = heap.GcPauses(lambda gen, s: seen.append((gen, s))).install()
    pauses.install()  # twice: still one callback
    try:
        gc.collect(1)
        assert [g for g, _ in seen] == [1]
        assert seen[0][1] >= 0
    finally:
        pauses.remove()
    gc.collect()
    assert len(seen) == 1
