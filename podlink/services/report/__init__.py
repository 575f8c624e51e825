"""`podlink report`: the service evaluation (the Kent study's tables, and POD's principles)
computed from the outcome events on `pod.outcomes.v1`, which carry no patient identifiers.

`events` checks one record, `collect` keeps each fact once and the referrals in scope,
`figures` computes the report (pure functions), `tables` lays it out for people, and
`sources`, `csv_out`, `html_out` and `command` do the reading and writing at the edges.
The JSON keys are an interface: docs/report.md.
"""
