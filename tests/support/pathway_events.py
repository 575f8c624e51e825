"""Contract-valid events of any type for one referral, at chosen times: the contract's example
of that type with the referral, the id and the times changed."""
from __future__ import annotations

import copy
import itertools
from datetime import datetime, timedelta
from typing import Any

from podlink.services.samples import Record
from podlink.streams.core.encoding import utc_text
from podlink.streams.worker.settings import CARE_TOPIC, SPA_TOPIC
from tests.support.contract_examples import example

_serial = itertools.count()


def event(name: str, referral_id: str, when: datetime, **data: Any) -> Record:
    """The example `name` (e.g. "risk-assessed") for `referral_id`, sent at `when`; `data`
    overrides payload fields (datetimes are written as the contract wants them)."""
    value = copy.deepcopy(example(name))
    value["id"] = f"{referral_id}-{name}-{next(_serial)}"
    value["subject"] = referral_id
    value["time"] = utc_text(when)
    value["data"] |= {"referralId": referral_id} | {
        k: utc_text(v) if isinstance(v, datetime) else v for k, v in data.items()}
    return Record(SPA_TOPIC if name.startswith("referral-") else CARE_TOPIC, referral_id, value)


def referral(referral_id: str, when: datetime, **data: Any) -> Record:
    """A referral received at `when`: routine, medium risk, no CPA unless `data` says otherwise."""
    return event("referral-received", referral_id, when, receivedAt=when,
                 **{"urgency": "routine", "riskLevel": "medium", "cpaRequired": False} | data)


def meetings(referral_id: str, starts: list[datetime]) -> list[Record]:
    """A one-hour network meeting held at each of `starts`."""
    return [event("meeting-held", referral_id, start, meetingId=f"MTG-{i}", start=start,
                  end=start + timedelta(hours=1))
            for i, start in enumerate(starts, 1)]
