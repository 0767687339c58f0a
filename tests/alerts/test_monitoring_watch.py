"""The alert service's view of the detector group: running, delayed (far behind) or stopped.

Progress is what ``Bus.group_progress`` returns: per partition (committed offset, end offset).
Offsets are committed every few seconds, so a group that keeps up still shows that much waiting."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from alerts.monitoring import DetectorWatch

INPUT = 30_000  # readings a second: 10,000 patients x 3 vitals


def run(watch: DetectorWatch, seconds: int, committed_per_s: float, *, start_waiting: int = 0,
        commit_every_s: int = 5, step_s: int = 2, t0: float = 0.0) -> list[tuple[float, str, float | None]]:
    """Feed the watch ``seconds`` of a group that commits ``committed_per_s`` (in steps of
    ``commit_every_s``) while readings arrive at INPUT per second; the states seen, in time order."""
    seen = []
    end, done = start_waiting, 0.0
    for t in range(0, seconds + 1, step_s):
        now = t0 + t
        end = start_waiting + INPUT * t
        if t % commit_every_s == 0:
            done = min(end, committed_per_s * t)
        watch.observe({0: (int(done), int(end))}, now=now)
        seen.append((now, watch.status.state, watch.status.behind_s))
    return seen


def test_a_group_that_keeps_up_stays_running_though_commits_lag_a_checkpoint_behind():
    watch = DetectorWatch(stall_s=30, behind_s=60)
    seen = run(watch, 600, committed_per_s=INPUT)
    assert {s for _, s, _ in seen} == {"running"}
    assert max(b for t, _, b in seen if b is not None and t >= 60) < 10  # a checkpoint and a poll behind


def test_a_group_too_slow_for_the_load_is_delayed_once_it_is_a_minute_behind():
    watch = DetectorWatch(stall_s=30, behind_s=60)
    seen = run(watch, 600, committed_per_s=20_000)  # falls 10,000 readings behind every second
    first = next(t for t, s, _ in seen if s == "delayed")
    # 10,000 more waiting each second at 20,000 a second: half a second more behind each second
    assert 100 <= first <= 140, first  # (a few seconds earlier: commits come every 5 s)
    assert seen[-1][1] == "delayed" and not watch.status.ok
    msg = watch.status.message()
    assert msg["state"] == "delayed" and msg["behind_s"] > 60 and "behind" in msg["reason"]


def test_a_group_catching_up_after_an_outage_is_delayed_until_it_is_back_within_the_limit():
    watch = DetectorWatch(stall_s=30, behind_s=60)
    # ten minutes of readings waited (an outage); the group now processes 90,000 a second
    seen = run(watch, 600, committed_per_s=90_000, start_waiting=INPUT * 600)
    states = [s for _, s, _ in seen]
    assert "delayed" in states and states[-1] == "running"
    back = next(t for t, s, _ in seen if t > 20 and s == "running")
    delayed_until = max(t for t, s, _ in seen if s == "delayed")
    assert delayed_until < back
    # what waits at time t: 18M + 30k t - 90k t; back within 45 s (0.75 x 60) at 90k/s is 4.05M
    # waiting: t = 232 s
    assert 215 <= back <= 250, back
    assert all(s == "running" for t, s, _ in seen if t >= back), "no flapping on the way back"


def test_no_progress_at_all_is_stopped_not_delayed():
    watch = DetectorWatch(stall_s=30, behind_s=60)
    run(watch, 60, committed_per_s=INPUT)
    seen = run(watch, 60, committed_per_s=0, t0=1000, start_waiting=10**6)
    assert seen[-1][1] == "stopped" and "no detector" in watch.status.reason
    assert "delayed" not in [s for _, s, _ in seen]


def test_an_idle_ward_is_running():
    watch = DetectorWatch(stall_s=30, behind_s=60)
    for t in range(0, 300, 2):
        watch.observe({0: (500, 500), 1: (None, 0)}, now=t)
        assert watch.status.state == "running" and watch.status.ok


def test_offsets_that_go_back_after_a_group_reset_start_the_rate_again():
    watch = DetectorWatch(stall_s=30, behind_s=60)
    run(watch, 60, committed_per_s=INPUT)
    assert watch.observe({0: (0, 10)}, now=62) in (True, False)
    assert watch.status.state == "running" and watch.status.behind_s in (None, 0.0)


def test_a_change_of_state_is_reported_once():
    watch = DetectorWatch(stall_s=30, behind_s=60)
    changes = []
    end = INPUT * 600
    for t in range(0, 300, 2):
        changes.append(watch.observe({0: (20_000 * t, end + INPUT * t)}, now=t))
    assert sum(changes) == 1 and watch.status.state == "delayed"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10**6), st.integers(0, 10**6)), max_size=60))
def test_whatever_the_group_does_the_status_is_consistent(steps):
    watch = DetectorWatch(stall_s=30, behind_s=60)
    now, done, end = 0.0, 0, 0
    for dt, more_done, more_end in steps:
        now += dt
        end += more_end
        done = min(end, done + more_done)
        watch.observe({0: (done, end)}, now=now)
        s = watch.status
        assert s.state in ("running", "delayed", "stopped") and s.ok == (s.state == "running")
        if end == done:
            assert s.state == "running"
        if s.state == "delayed":
            assert s.behind_s > 45
