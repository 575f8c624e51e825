"""Synthetic referral pathways in the v1 contract: the sample stream, benchmark and test data.

NHS numbers come from the 999 range, which is never issued; names are obviously invented.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Literal

from kafka import KafkaProducer

from podlink.streams.core.contract import nhs_number_is_valid
from podlink.streams.core.encoding import json_bytes
from podlink.streams.core.ids import stable_id
from podlink.streams.worker.settings import CARE_TOPIC, SPA_TOPIC

Scenario = Literal[
    "on-time", "breached", "at-risk", "met-late", "rejected", "withdrawn", "care-first"
]
SCENARIOS: tuple[Scenario, ...] = (
    "on-time", "breached", "at-risk", "met-late", "rejected", "withdrawn", "care-first",
)
SPA_SOURCE = "urn:nhs:ods:RXY:spa"
POD_SOURCE = "urn:nhs:ods:RXY:pod-record"


@dataclass(frozen=True)
class Record:
    topic: str
    key: str
    value: dict[str, Any]

    def encoded(self) -> tuple[str, bytes, bytes]:
        """(topic, key, value) as the source systems put it on Kafka."""
        return self.topic, self.key.encode(), json_bytes(self.value)


# A record as bytes, e.g. one that breaks the contract: (topic, key, value).
RawRecord = tuple[str, bytes | None, bytes | None]


def send_records(bootstrap: str, records: Iterable[Record | RawRecord], linger_ms: int = 5) -> None:
    """Send `records` in order and return once the broker has them all.

    The one way podlink's sample stream, its tests and its benchmarks write input records.
    """
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms)
    try:
        for record in records:
            topic, key, value = record.encoded() if isinstance(record, Record) else record
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def sample_nhs_number(n: int) -> str:
    """The n-th valid NHS number from the never-issued 999 range."""
    candidate = 999_000_000 + n * 7
    while True:
        prefix = f"{candidate % 1_000_000_000:09d}"
        for check in "0123456789":
            if nhs_number_is_valid(prefix + check):
                return prefix + check
        candidate += 1


def pathway(referral_id: str, received_at: datetime, scenario: Scenario, team: str = "POD-CANTERBURY",
            n: int = 0) -> list[Record]:
    """The events of one referral's pathway, in the order the source systems publish them."""
    r = _Builder(referral_id, received_at)
    events = [r.received(team, n)]
    if scenario == "rejected":
        return events + [r.spa("referral.rejected", timedelta(hours=1), {
            "rejectedAt": r.at(timedelta(hours=1)), "reason": "Routed to another service",
            "redirectedTo": "EIP-KENT"})]
    if scenario == "withdrawn":
        return events + [r.spa("referral.withdrawn", timedelta(hours=2), {
            "withdrawnAt": r.at(timedelta(hours=2))})]
    events.append(r.spa("referral.accepted", timedelta(minutes=30), {
        "acceptedAt": r.at(timedelta(minutes=30)), "teamCode": team,
        "allocatedTo": {"staffId": "STF-0007", "role": "nurse"}}))
    events.append(r.pod("contact.made", timedelta(hours=1), {
        "contactAt": r.at(timedelta(hours=1)), "method": "phone",
        "staff": {"staffId": "STF-0042", "role": "peer_support_worker"}, "outcome": "meeting_arranged"}))
    if scenario in ("breached", "at-risk"):
        return events
    meeting_at = timedelta(hours=27) if scenario == "met-late" else timedelta(hours=15)
    meetings = [r.pod("meeting.scheduled", timedelta(hours=1, minutes=5), {
        "meetingId": "MTG-1", "scheduledStart": r.at(meeting_at), "location": "home",
        "invitedPersonIds": ["NET-1", "NET-2"]}),
        r.meeting_held("MTG-1", meeting_at)]
    for day in (2, 3):
        meetings.append(r.meeting_held(f"MTG-{day}", timedelta(days=day, hours=-9)))
    meetings.append(r.pod("measure.recorded", meeting_at + timedelta(hours=2), {
        "recordedAt": r.at(meeting_at + timedelta(hours=2)), "instrument": "SWEMWBS",
        "timepoint": "baseline", "respondent": "service_user", "items": [2, 3, 2, 3, 2, 2, 3]}))
    if scenario == "care-first":
        return meetings[:2] + events + meetings[2:]
    return events + meetings


def stream(start: datetime, count: int, scenarios: tuple[Scenario, ...] = SCENARIOS,
           prefix: str = "REF-SAMPLE") -> Iterator[Record]:
    """`count` pathways, one scenario after another, referrals an hour apart from `start`."""
    for i in range(count):
        yield from pathway(f"{prefix}-{i:06d}", start + timedelta(hours=i),
                           scenarios[i % len(scenarios)], n=i)


class _Builder:
    def __init__(self, referral_id: str, received_at: datetime) -> None:
        self.referral_id = referral_id
        self.received_at = received_at.astimezone(timezone.utc)

    def at(self, offset: timedelta) -> str:
        return (self.received_at + offset).isoformat().replace("+00:00", "Z")

    def _event(self, topic: str, source: str, kind: str, offset: timedelta, data: dict[str, Any]) -> Record:
        prefix = "uk.nhs.spa." if topic == SPA_TOPIC else "uk.nhs.pod."
        value = {
            "specversion": "1.0",
            "id": stable_id("sample", self.referral_id, kind, str(offset.total_seconds()), str(data.get("meetingId", ""))),
            "source": source, "type": prefix + kind, "time": self.at(offset),
            "subject": self.referral_id, "datacontenttype": "application/json",
            "data": {"referralId": self.referral_id, **data},
        }
        return Record(topic, self.referral_id, value)

    def spa(self, kind: str, offset: timedelta, data: dict[str, Any]) -> Record:
        return self._event(SPA_TOPIC, SPA_SOURCE, kind, offset, data)

    def pod(self, kind: str, offset: timedelta, data: dict[str, Any]) -> Record:
        return self._event(CARE_TOPIC, POD_SOURCE, kind, offset, data)

    def received(self, team: str, n: int) -> Record:
        return self.spa("referral.received", timedelta(0), {
            "receivedAt": self.at(timedelta(0)),
            "referredTo": {"teamCode": team, "odsCode": "RXY"},
            "source": "crisis_team", "urgency": "urgent",
            "patient": {"nhsNumber": sample_nhs_number(n), "nhsNumberVerified": True,
                        "name": {"given": ["Sample"], "family": f"Person{n}"},
                        "birthDate": "1990-05-17", "gender": "female", "postalCode": "CT1 1AA"},
            "reason": {"text": "Synthetic crisis referral"},
            "riskLevel": "medium", "cpaRequired": True,
            # Ofcom's drama range: 07700 900000 to 900999 is never a real phone.
            "network": [{"personId": "NET-1", "relationship": "spouse_or_partner",
                         "name": f"Robin Partner{n}", "phone": f"07700 900{n % 1000:03d}"},
                        {"personId": "NET-2", "relationship": "parent", "name": f"Sam Parent{n}"}],
        })

    def meeting_held(self, meeting_id: str, offset: timedelta) -> Record:
        return self.pod("meeting.held", offset + timedelta(minutes=90), {
            "meetingId": meeting_id, "start": self.at(offset),
            "end": self.at(offset + timedelta(minutes=90)), "location": "home",
            "attendees": [
                {"kind": "service_user"},
                {"kind": "network_member", "personId": "NET-1", "relationship": "spouse_or_partner"},
                {"kind": "staff", "staffId": "STF-0042", "role": "peer_support_worker"},
                {"kind": "staff", "staffId": "STF-0007", "role": "nurse"},
            ],
            "adherenceScore": 3.6,
        })
