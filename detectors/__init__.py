"""The detectors: numerics in, clean values, scores and alarms out.

Layout (each module one job; every detector a small class on :mod:`detectors.protocol`)::

    protocol.py          the batch protocol: per-patient numpy state, update(round), state_dict/load_state
    engine.py            orders the detectors over a batch; savepoints, rollback, checkpoints, stored lines
    filters.py           signal filters: Hampel, rate of change, sensor off (SignalFilter)
    beats.py             ECG (Pan-Tompkins style) and pleth beats, pleth signal quality
    snapshots.py         the nurse page's snapshots and sparklines
    alarms/              rules + LimitAlarms, SensorOffAlarms, DeviceSilence, WaveformCrossCheck,
                         EarlyWarningAlarm; events.py builds the alarm events
    scores/              News2Stage, TrendScore, IsolationForestScore, RiskStage (numpy only);
                         gradient_boosting.py evaluates the risk's trees, risk_features.py names its features
    training.py          learning: fits and exports the artefacts the scores load (scikit-learn)
    early_warning/       evaluation: replay of CinC 2019 files, the challenge's metrics
    worker.py            the Kafka worker around the engine; offline.py, evaluate.py: CLI commands
"""
