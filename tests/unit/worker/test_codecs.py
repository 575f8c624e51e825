"""The tables' stored bytes: pinned, because RocksDB and the changelogs keep what was written."""
from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.episode import Episode, Meeting
from podlink.streams.pipeline.processor import Watch
from podlink.streams.worker.codecs import DEAD_LETTER_MARK, DEADLINE_ENTRY, EPISODE, DeadlineEntry
from tests.support.episodes import T0, hours

DEADLINE = Deadline(referral_id="REF-1", team_code="POD-A", starts_at=T0, due_at=T0 + hours(24),
                    at_risk_from=T0 + hours(18))
# As app._store_deadline wrote it before the codecs existed, and before alerts had an audience.
STORED_DEADLINE = (b'{"partition":2,"deadline":{"referral_id":"REF-1","policy":"first-meeting",'
                   b'"team_code":"POD-A","starts_at":"2026-06-01T09:00:00Z","due_at":"2026-06-02T09:00:00Z",'
                   b'"at_risk_from":"2026-06-02T03:00:00Z","met_at":null,"closed_at":null}}')




def test_a_deadline_entry_is_stored_with_every_deadline_its_flags_and_rules():
    stored = DEADLINE_ENTRY.encode(DeadlineEntry(2, Watch((DEADLINE,), (), False), "abc"))
    assert stored == (b'{"partition":2,"rules":"abc","closed":false,"deadlines":[{"referral_id":"REF-1",'
                      b'"policy":"first-meeting","cycle":0,"audience":"on-call","severity":"critical",'
                      b'"team_code":"POD-A","starts_at":"2026-06-01T09:00:00Z","due_at":"2026-06-02T09:00:00Z",'
                      b'"at_risk_from":"2026-06-02T03:00:00Z","met_at":null,"closed_at":null}],"flags":[]}')
    assert DEADLINE_ENTRY.decode(stored) == DeadlineEntry(2, Watch((DEADLINE,), (), False), "abc")


def test_an_entry_stored_before_the_deadline_engine_loads_as_its_first_meeting_deadline():
    # Its rules are unknown (""), so the worker works it out again from the episode at its start.
    assert DEADLINE_ENTRY.decode(STORED_DEADLINE) == DeadlineEntry(2, Watch((DEADLINE,), (), False), "")
    met = STORED_DEADLINE.replace(b'"met_at":null', b'"met_at":"2026-06-01T19:30:00Z"')
    assert DEADLINE_ENTRY.decode(met).watch.deadlines[0].met_at == T0 + hours(10.5)


def test_an_episode_is_stored_as_before():
    stored = EPISODE.encode(Episode(referral_id="REF-1", applied=("e-1",), positions={"t/0": 4}))
    assert stored.startswith(b'{"referral_id":"REF-1","status":"awaiting-referral","referral":null,')
    assert b',"applied":["e-1"],' in stored and stored.endswith(b',"positions":{"t/0":4},"timeline":[]}')


def test_a_stored_episode_loads():
    stored = (b'{"referral_id":"REF-1","status":"awaiting-referral","applied":["e-1"],"pending":[],'
              b'"positions":{"t/0":4}}')
    episode = EPISODE.decode(stored)
    assert (episode.referral_id, episode.applied, episode.positions) == ("REF-1", ("e-1",), {"t/0": 4})


def test_a_dead_letter_mark_is_the_offset_in_digits():
    assert DEAD_LETTER_MARK.encode(1207) == b"1207"
    assert DEAD_LETTER_MARK.decode(b"1207") == 1207


def test_a_stored_episode_keeps_its_meetings_in_the_order_they_were_first_heard_of():
    # The first meeting heard of carries the referral's first-meeting Encounter id
    # (fhir_mappings.encounters), so the order must survive the table, whatever the meeting ids.
    meetings = {m: Meeting(meeting_id=m, status="planned") for m in ("MTG-Z", "MTG-A", "MTG-M")}
    episode = Episode(referral_id="REF-1", meetings=meetings)
    assert list(EPISODE.decode(EPISODE.encode(episode)).meetings) == ["MTG-Z", "MTG-A", "MTG-M"]
