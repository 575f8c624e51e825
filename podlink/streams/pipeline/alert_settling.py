"""When a referral's alert ids can be forgotten: once nothing more can alert for it.

The alert ledger holds an id so that the alert is not raised twice. An id may go once no later
state of the referral can call for that alert again, whatever records arrive later (a late
event rewrites the deadline entry, and every alert it calls for and the ledger does not hold
goes out):
- a closed referral stays closed (a late acceptance does not reopen it), and a policy the
  closing cancels opens no more for it; a deadline still open may alert (a post-discharge
  follow-up outlives the discharge); one that is not open calls for no alert but `resolved`,
  and that only while its breach is held and its resolution is not;
- a flag that alerts only while the referral is open never alerts again once it is closed; any
  other flag alerts whenever it is not held, so its referral's ids are never forgotten.
"""
from __future__ import annotations

from collections.abc import Callable

from podlink.streams.core.alerts import alert_id
from podlink.streams.pipeline.processor import Watch


def can_forget(watch: Watch, raised: Callable[[str], bool]) -> bool:
    """Whether the referral watched by `watch` can no longer alert, given the ids held now."""
    if not watch.closed:
        return False
    for deadline in watch.deadlines:
        if deadline.is_open:
            return False
        if raised(alert_id(deadline, "breached")) and not raised(alert_id(deadline, "resolved")):
            return False  # its resolution is still to go out
    return all(flag.only_while_open for flag in watch.flags)
