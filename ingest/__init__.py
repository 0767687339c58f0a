"""Ingest: readings from device gateways over Kafka and HTTP (JSON, FHIR R4, HL7 v2), validated."""
