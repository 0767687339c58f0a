"""Early-warning scores that run inside the detector engine: NEWS2 and friends."""
