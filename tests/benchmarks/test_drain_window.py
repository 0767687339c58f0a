"""The capacity window times a build by its commits, never by the idle tail before its last one."""

from hypothesis import given, strategies as st

from benchmarks.pipeline.measure import window_rate

TOTAL = 900_000


def commits(rate: float, every_s: float, total: int = TOTAL, startup_s: float = 2.0) -> list[tuple[float, int]]:
    """A build that reads ``rate`` records a second after ``startup_s`` and commits every ``every_s``."""
    marks, t = [(0.0, 0)], every_s
    while marks[-1][1] < total:
        marks.append((t, int(min(total, max(0.0, (t - startup_s) * rate)))))
        t += every_s
    return [m for k, m in enumerate(marks) if k == 0 or m[1] != marks[k - 1][1]]


def test_a_slow_committer_is_timed_between_commits_made_while_reading():
    # 160,000/s, a commit every 5 s: reading ends at 18.9 s, the last commit comes at 20 s
    # (the 10-90 % rule timed 148,000/s here).
    assert abs(window_rate(commits(160_000, 5.0, total=2_700_000), 2_700_000) - 160_000) < 1


def test_the_idle_tail_before_the_final_commit_is_not_counted():
    marks = [(0.0, 0), (5.0, 450_000), (10.0, 700_000), (15.0, 900_000)]  # done reading at ~11 s
    assert window_rate(marks, TOTAL) == 250_000 / 5.0


def test_a_build_that_commits_everything_at_once_is_timed_from_the_start_of_the_watch():
    assert window_rate([(0.0, 0), (3.0, TOTAL)], TOTAL) == TOTAL / 3.0


def test_a_build_that_never_passes_ten_percent_has_no_rate():
    assert window_rate([(0.0, 0), (30.0, 50_000)], TOTAL) == 0.0


def test_a_build_cut_off_by_the_timeout_is_timed_over_what_it_did():
    assert window_rate([(0.0, 0), (10.0, 100_000), (20.0, 200_000), (30.0, 300_000)], TOTAL) == 10_000


@given(rate=st.floats(20_000, 400_000), every=st.sampled_from([0.2, 1.0, 5.0]), startup=st.floats(0, 5))
def test_a_steady_build_is_never_timed_faster_than_it_reads(rate, every, startup):
    # Commit spacing can hide speed (a whole backlog between two commits) but never invent it.
    measured = window_rate(commits(rate, every, total=2_700_000, startup_s=startup), 2_700_000)
    assert measured <= rate * 1.0001
    if 2_700_000 / rate > 3 * every:  # commits enough inside the drain: timed to the true rate
        assert measured >= rate * 0.999
