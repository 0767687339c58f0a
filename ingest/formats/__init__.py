"""Input formats gateways send over HTTP, each turned into plain reading mappings for validation."""
