"""Gradient-boosted trees evaluated with numpy: the learned risk's model, loaded from plain arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .risk_features import feature_names


class TreeModel:
    """A gradient-boosted tree model (scikit-learn's HistGradientBoostingClassifier, exported by
    :func:`detectors.training.export_tree_model`) as arrays, evaluated with numpy (no pickle)."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self.a, self.meta = arrays, meta
        self.offsets = arrays["offsets"]
        self.baseline = float(meta["baseline"])

    @classmethod
    def load(cls, path: Path, features: list[str] | None = None) -> "TreeModel":
        """Arrays and manifest from ``path.npz`` / ``path.json``; refused unless they list ``features``
        (default: the learned risk's, :func:`detectors.scores.risk_features.feature_names`)."""
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:  # data only: never code
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(path.with_suffix(".json").read_text())
        expected = {"offsets", "feature", "threshold", "left", "right", "leaf", "missing_left", "value"}
        if set(arrays) != expected or meta.get("features") != (feature_names() if features is None else features):
            raise ValueError("model artefact does not match this version's features")
        return cls(arrays, meta)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raw = self.margin(X)
        cal = self.meta.get("calibration")
        if cal:  # Platt scaling fitted on tune patients: the trees' margin -> a probability that means what it says
            raw = cal["a"] * raw + cal["b"]
        return 1.0 / (1.0 + np.exp(-raw))

    def margin(self, X: np.ndarray) -> np.ndarray:
        """The trees' raw log-odds, before calibration."""
        raw = np.full(len(X), self.baseline)
        rows = np.arange(len(X))
        a = self.a
        for t in range(len(self.offsets) - 1):
            base = self.offsets[t]
            node = np.zeros(len(X), np.int64)
            while True:
                g = base + node
                leaf = a["leaf"][g]
                if leaf.all():
                    break
                x = X[rows, a["feature"][g]]
                left = np.where(np.isnan(x), a["missing_left"][g], x <= a["threshold"][g])
                node = np.where(leaf, node, np.where(left, a["left"][g], a["right"][g]))
            raw += a["value"][base + node]
        return raw
