"""`podlink deliver`: FHIR message Bundles from `epr.fhir-messages.v1` to the EPR's
`$process-message`, BaRS style (docs/epr-exchange.md)."""
