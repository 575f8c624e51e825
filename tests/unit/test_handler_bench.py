"""The handler bench at a tiny size, so it cannot rot: every event it fed was handled."""
import re

from podlink_devtools.handler_bench import measure


def test_the_handler_bench_handles_every_event_and_sends_what_each_leads_to():
    line = measure(3)
    # An on-time pathway is 8 events: 8 FHIR messages and 9 outcome events (registered,
    # accepted, first contact, first meeting, three meetings held, deadline met, a measure).
    assert re.fullmatch(r"handler-bench: 24 events in \d+\.\d\d s, \d+ events/s, \d+ us an event, "
                        r"51 records sent", line), line
