"""The isolation-forest anomaly score: how unusual a patient's vitals are against their own baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ARRAY_NAMES = ("offsets", "left", "right", "feature", "threshold", "n", "max_samples")


class IsolationForestScore:
    """Isolation forest (Liu, Ting and Zhou, ICDM 2008): the anomaly score 2^(-E[h(x)]/c(n)) of
    baseline-normalised vitals, from a forest fitted by :func:`detectors.training.export_isolation_forest`
    and shipped as plain arrays (``iforest.npz``, no pickle); scored here with numpy only (equal to
    scikit-learn's ``-score_samples``). 0..1: about 0.5 usual, towards 1 anomalous.

    Works when: a patient has a baseline (the first hours, kept by
    :class:`detectors.scores.risk.RiskStage`) and drifts away from it in several vitals at once. Does
    not work when: the first hours were already abnormal (the baseline is the illness), or a single
    vital moves a lot (the limit alarms and the trend see that better); missing vitals count as at
    baseline. A stateless score: ``score(Z)`` on a column array (rows x 6 z-scores).

    The first patient of the shipped CinC 2019 demo slice, against the baseline of its first six
    hours, at hour 6 and at its last hour::

        >>> import numpy as np, pandas as pd
        >>> from importlib.resources import files
        >>> from detectors.scores.risk import ARTEFACTS, Z_FLOOR
        >>> df = pd.read_csv(files("wardwatch") / "data" / "cinc2019_demo.csv.gz")
        >>> p = df[df["patient"] == df["patient"].iloc[0]][["HR", "O2Sat", "Temp", "SBP", "MAP", "Resp"]]
        >>> v = p.ffill().to_numpy()
        >>> z = (v[[5, -1]] - np.nanmean(v[:6], 0)) / np.maximum(np.nanstd(v[:6], 0), Z_FLOOR)
        >>> IsolationForestScore.load(ARTEFACTS / "iforest.npz").score(z).round(3).tolist()
        [0.358, 0.559]
    """

    name = "iforest"

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        if set(arrays) != set(ARRAY_NAMES):
            raise ValueError("isolation-forest artefact does not have the expected arrays")
        self.a = arrays
        self.offsets = arrays["offsets"]
        self.c = float(average_path(np.array([float(arrays["max_samples"][0])]))[0])

    @classmethod
    def load(cls, path: Path) -> "IsolationForestScore":
        with np.load(path, allow_pickle=False) as z:  # data only: never code
            return cls({k: z[k] for k in z.files})

    def score(self, Z: np.ndarray) -> np.ndarray:
        """0..1, higher = more anomalous (scikit-learn's -score_samples)."""
        Z = np.nan_to_num(Z)
        depth = np.zeros(len(Z))
        rows = np.arange(len(Z))
        a = self.a
        for t in range(len(self.offsets) - 1):
            base = self.offsets[t]
            node = np.zeros(len(Z), np.int64)
            d = np.zeros(len(Z))
            while True:
                g = base + node
                leaf = a["left"][g] < 0
                if leaf.all():
                    break
                go_left = Z[rows, np.maximum(a["feature"][g], 0)] <= a["threshold"][g]
                node = np.where(leaf, node, np.where(go_left, a["left"][g], a["right"][g]))
                d += ~leaf
            depth += d + average_path(a["n"][base + node])
        return 2.0 ** (-(depth / (len(self.offsets) - 1)) / self.c)


def average_path(n: np.ndarray) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a binary tree of n points (Liu et al.)."""
    out = np.zeros_like(n, dtype=float)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out
