"""`podlink intake`: FHIR messages from the EPR on `POST /fhir/$process-message`, published as
care events of the v1 contract (docs/epr-exchange.md)."""
