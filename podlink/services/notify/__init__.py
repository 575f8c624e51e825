"""`podlink notify`: on-call alerting (docs/on-call.md)."""
