"""WardWatch core: the models, settings and plumbing that ingest, detectors and alerts share."""

__version__ = "0.1.0"
