"""Evaluating the early-warning scores on CinC 2019 files: replaying a file through the engine
(:mod:`.replay`) and the challenge's metrics (:mod:`.metrics`). The scores themselves are in
:mod:`detectors.scores`."""
