"""Score detectors: NEWS2 (:mod:`.news2`), the learned risk (:mod:`.risk`) and the two scores it
is built on, the isolation-forest anomaly (:mod:`.isolation_forest`) and the trend (:mod:`.trend`);
the risk's trees are evaluated by :mod:`.gradient_boosting` on the features named in :mod:`.risk_features`.
They load artefacts made by :mod:`detectors.training` and use numpy only (never scikit-learn)."""
