"""NEWS2's stored reasons, put in words once per distinct row of points, are the row-by-row words."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from detectors.scores.news2 import LazyReasons

# Few values, so that rows repeat and differ only by a missing (NaN) against a 0 point.
POINTS = st.sampled_from([0.0, -0.0, 3.0, float("nan")])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(POINTS, min_size=5, max_size=5), max_size=30), st.data())
def test_reasons_in_words_once_per_kind_equal_them_row_by_row(rows, data):
    reasons = LazyReasons(np.array(rows, float).reshape(-1, 5))
    index = np.array(data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=40)) if rows else [], np.int64)
    assert reasons.texts(index) == ["; ".join(reasons[i]) for i in index.tolist()]
