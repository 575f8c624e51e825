"""Everything the worker sends and stores for a fixed set of records, to the byte, as `main`
sent and stored it before the per-event cost was cut (issue 12): an optimisation must not
change a single output byte, a stored episode, a deadline entry or a dead-letter mark.

The digest below was computed once, from the code on `main` at 32575c2 (before any of the
issue-12 CPU changes on branch `cpu`), by running this very module's `digest()`. It is not
worked out by hand: it is the record of what `main` produced. If a change alters it on
purpose (a new output field, a migration), say so and record the new digest with the reason.
"""
from __future__ import annotations

import hashlib
import zlib
from collections import defaultdict
from datetime import datetime, timezone

from podlink.services.samples import SCENARIOS, stream
from podlink.streams.core.encoding import json_bytes
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.policy_loading import load_policy
from podlink.streams.worker.records import RecordHandler
from podlink.streams.worker.settings import CARE_TOPIC, SPA_TOPIC
from tests.unit.worker.test_records import Message

# Computed from main's code (32575c2), before the changes it guards; see the module docstring.
# Recorded again when working a referral's records out was parted from carrying it out
# (issue 12, eighth round): a record that cannot be read is now dead-lettered in the group of
# its key, not before every group, which moves the dead letters among other keys' outputs
# (across keys Kafka keeps no order). Every key's own outputs, in order, and every stored value were checked equal to
# what 299eb1b produced before the digest was recorded again; 32575c2's was
# "1007 outputs, sha256 d34556e5109dca7c499cf099ece7da33ac83759aaa0e1a4881e80ade902d9e59".
MAIN_DIGEST = "1007 outputs, sha256 5c049e08a4349be091a580af86d961a20232b6960dc80244492f803148bd2b58"
PARTITIONS = 8
SLICE = 20  # the worker's slice (batch_sharing.SLICE_RECORDS)
START = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
# policy_loading.fingerprint varies from one process to the next (it spells frozensets in
# hash order), so the deadline entries are written under a fixed one here.
FINGERPRINT = "digest-test"


def records() -> list[Message]:
    """Seven pathways of every scenario spread over partitions as Kafka's default partitioner
    would, with a record that is not JSON, one that breaks the contract, a duplicate delivery
    at a new offset and two replays (the same topic, partition and offset read again)."""
    offsets: dict[tuple[str, int], int] = defaultdict(int)

    def message(topic: str, key: bytes, value: bytes) -> Message:
        partition = zlib.crc32(key) % PARTITIONS
        offset = offsets[(topic, partition)]
        offsets[(topic, partition)] += 1
        return Message(key, value, offset, partition, topic)

    found = [message(r.topic, r.key.encode(), json_bytes(r.value))
             for r in stream(START, 7 * len(SCENARIOS), SCENARIOS, "REF-DIGEST")]
    found.insert(30, message(SPA_TOPIC, b"REF-DIGEST-000001", b"{ not json"))
    found.insert(45, message(CARE_TOPIC, b"REF-DIGEST-000002", json_bytes({"specversion": "1.0"})))
    duplicate = found[60]
    found.insert(90, message(duplicate.topic, duplicate.key or b"", duplicate.value or b""))
    found.insert(120, found[100])
    found.append(found[7])
    return found


def outputs() -> list[bytes]:
    """Every record sent (topic, key, value, headers, in order), then every table value stored;
    the records are handled twice, the second time by a new handler over the same tables
    (every episode decoded from what was stored, every record a replay)."""
    loaded = load_policy(None, None)
    episodes: dict[bytes, bytes] = {}
    deadlines: dict[bytes, bytes] = {}
    marks: dict[bytes, bytes] = {}
    sent: list[tuple[object, ...]] = []
    batch = records()
    for _ in range(2):
        handler = RecordHandler(loaded.policy, episodes, deadlines, marks, lambda *record: sent.append(record),
                                Metrics(), CatchUp(quiet_seconds=3), 1_000_000,
                                rules_fingerprint=FINGERPRINT, validate_fhir=False)
        for start in range(0, len(batch), SLICE):
            handler.handle_batch(batch[start:start + SLICE])
    found = [repr((topic, key, value, [(name, bytes(v)) for name, v in headers])).encode()
             for topic, key, value, headers in sent]
    return found + [repr((name, sorted(table.items()))).encode()
                    for name, table in (("episodes", episodes), ("deadlines", deadlines), ("marks", marks))]


def digest() -> str:
    found = outputs()
    return f"{len(found)} outputs, sha256 {hashlib.sha256(b''.join(found)).hexdigest()}"


def test_every_output_and_stored_value_is_byte_for_byte_what_main_produced():
    assert digest() == MAIN_DIGEST
