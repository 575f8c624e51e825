"""The id of every resource we send, derived only from source identifiers (never from names).

Ids are UUIDv5 (`streams.core.ids`), so a replayed event updates the same resources in
the EPR instead of creating new ones. Observations are facts fixed by their event data, so
their ids come from that data, normalised to UTC: the same measure re-sent with another
offset or event id still lands on the same Observation.
"""
from __future__ import annotations

from datetime import datetime

from podlink.streams.core.encoding import utc_text
from podlink.streams.core.ids import once_id, stable_id

FIRST_MEETING_PLANNED = "first-meeting-planned"


# An event's message, its header and its Observation are named once each (`once_id`); the
# resources a referral's messages share are named again and again (`stable_id`, cached).


def bundle_id(source: str, event_id: str) -> str:
    return once_id("bundle", source, event_id)


def message_header_id(source: str, event_id: str) -> str:
    return once_id("messageheader", source, event_id)


def patient_id(nhs_number: str) -> str:
    # One Patient per person across referrals: the NHS number is the national key.
    return stable_id("patient", nhs_number)


def service_request_id(referral_id: str) -> str:
    return stable_id("servicerequest", referral_id)


def care_plan_id(referral_id: str) -> str:
    return stable_id("careplan", referral_id)


def task_id(referral_id: str, policy: str, cycle: int) -> str:
    return stable_id("task", referral_id, policy, str(cycle))


def first_meeting_encounter_id(referral_id: str) -> str:
    return stable_id("encounter", referral_id, FIRST_MEETING_PLANNED)


def meeting_encounter_id(referral_id: str, meeting_id: str) -> str:
    return stable_id("encounter", referral_id, meeting_id)


def practitioner_id(staff_id: str) -> str:
    return stable_id("practitioner", staff_id)


def related_person_id(referral_id: str, person_id: str) -> str:
    # Network person ids come from the referral, so they are only unique within it.
    return stable_id("relatedperson", referral_id, person_id)


def location_id(kind: str) -> str:
    return stable_id("location", kind)


def measure_observation_id(
    referral_id: str, instrument: str, timepoint: str, recorded_at: datetime, respondent_id: str | None,
) -> str:
    # Two carers may each complete the CWS at the same meeting.
    return once_id(
        "observation", referral_id, "measure", instrument, timepoint, utc_text(recorded_at), respondent_id or "",
    )


def risk_observation_id(referral_id: str, assessed_at: datetime) -> str:
    return once_id("observation", referral_id, "risk", utc_text(assessed_at))
