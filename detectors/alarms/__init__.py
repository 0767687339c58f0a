"""Alarm detectors, one class per condition family: limit alarms (:mod:`.limits`, rules in
:mod:`.rules`), sensor off (:mod:`.sensor_off`), device silence (:mod:`.device_silence`), the waveform
cross-check for asystole (:mod:`.asystole`) and the early-warning alarm from scores
(:mod:`.early_warning`). Events are built by :func:`.events.make_event`."""
