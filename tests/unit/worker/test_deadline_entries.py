import json

from podlink.streams.core.deadlines import Deadline
from podlink.streams.worker.app import DeadlineEntries
from tests.support.episodes import T0, hours


def _stored(ref: str, partition: int = 0, met: float | None = None) -> bytes:
    deadline = Deadline(referral_id=ref, team_code=None, starts_at=T0, due_at=T0 + hours(24),
                        at_risk_from=T0 + hours(18), met_at=T0 + hours(met) if met else None)
    return json.dumps({"partition": partition, "deadline": deadline.model_dump(mode="json")}).encode()


def test_each_scan_sees_the_table_as_it_is_now():
    entries = DeadlineEntries()
    first = entries.read([_stored("a"), _stored("b", partition=2)])
    assert [(p, d.referral_id, d.met_at) for p, d in first] == [(0, "a", None), (2, "b", None)]
    # "a" met its deadline, "b" left with its partition, "c" arrived.
    second = entries.read([_stored("a", met=10), _stored("c")])
    assert [(p, d.referral_id, d.met_at) for p, d in second] == [(0, "a", T0 + hours(10)), (0, "c", None)]


def test_an_unchanged_deadline_is_not_parsed_again():
    entries = DeadlineEntries()
    (_, once), = entries.read([_stored("a")])
    (_, again), = entries.read([_stored("a")])
    assert again is once
