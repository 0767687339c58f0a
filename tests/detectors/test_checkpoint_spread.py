"""Workers that commit together (every rebalance makes them) do not stay in step: each periodic
checkpoint interval is drawn anew, never longer than WARDWATCH_DETECT_CHECKPOINT_S."""

from __future__ import annotations

import random

from detectors.worker import CHECKPOINT_SPREAD, checkpoint_interval


def test_an_interval_is_never_longer_than_the_setting_nor_much_shorter():
    drawn = [checkpoint_interval(5.0) for _ in range(10_000)]
    assert max(drawn) <= 5.0
    assert min(drawn) >= 5.0 * (1 - CHECKPOINT_SPREAD)
    assert max(drawn) - min(drawn) > 0.9 * 5.0 * CHECKPOINT_SPREAD  # drawn over the whole spread


def test_two_workers_that_committed_together_checkpoint_apart_afterwards():
    random.seed(2026)
    a = b = 0.0  # both flushed at the rebalance
    together = 0
    for _ in range(200):
        a += checkpoint_interval(5.0)
        b += checkpoint_interval(5.0)
        together += abs(a - b) < 0.1  # both compressing on the shared cores at once
    # With a fixed interval they would coincide all 200 times; drawn, the phases drift apart.
    assert together < 20
