"""The shipped pathway rules end to end: backdated events in, one alert per deadline missed and
per flag raised, none for deadlines met, and none again after a restart."""
from __future__ import annotations

import json
from datetime import timedelta

from podlink.streams.core.encoding import utc_text
from podlink.streams.worker.settings import ALERTS_TOPIC, OUTCOMES_TOPIC
from tests.support.broker_io import ago, of, send, values, wait_until
from tests.support.brokers import consume_until_done
from tests.support.pathway_events import event, meetings, referral
from tests.support.policies import FIRST_MEETING_ONLY, shipped
from tests.support.worker_metrics import after_more_scans, counting, total

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def _scenario(prefix: str):
    """(records, what each referral is for); times are relative to now, worked out by hand."""
    start = ago(24 * 12)  # twelve days ago: every first meeting below is held on time
    refs = {k: f"{prefix}-{k}" for k in ("CPA-LATE", "CPA-DAY5", "MED-2", "MED-4", "PDF-70H", "PDF-LATE", "HIGH")}
    records = []
    for key in ("CPA-LATE", "CPA-DAY5"):
        ref = refs[key]
        accepted = start + HOUR
        records += [referral(ref, start, cpaRequired=True),
                    event("referral-accepted", ref, accepted, acceptedAt=accepted),
                    event("risk-assessed", ref, start + 2 * HOUR, assessedAt=start + 2 * HOUR, level="low",
                          reviewDue=None),
                    *meetings(ref, [start + 3 * HOUR])]
        if key == "CPA-DAY5":  # the coordinator on day 5 of the 7 allowed
            records.append(event("cpa-coordinator-assigned", ref, accepted + 5 * DAY, assignedAt=accepted + 5 * DAY))
    for key, held in (("MED-2", 2), ("MED-4", 4)):
        ref = refs[key]
        times = [start + 3 * HOUR + i * DAY for i in range(held)]
        prescribed = times[-1] + 2 * HOUR  # after the second (or fourth) meeting
        records += [referral(ref, start), *meetings(ref, times),
                    event("medication-prescribed", ref, prescribed, prescribedAt=prescribed, isNew=True,
                          urgentSafetyOverride=False)]
    ended = ago(75)  # left the ward 75 hours ago: the 72-hour follow-up is due 3 hours ago
    for key in ("PDF-70H", "PDF-LATE"):
        ref = refs[key]
        records += [referral(ref, start), *meetings(ref, [start + 3 * HOUR]),
                    event("admission-started", ref, start + DAY, admittedAt=start + DAY),
                    event("admission-ended", ref, ended, endedAt=ended)]
        if key == "PDF-70H":
            records.append(event("contact-made", refs[key], ended + 70 * HOUR, contactAt=ended + 70 * HOUR))
    records += [referral(refs["HIGH"], ago(0.1), riskLevel="high"), *meetings(refs["HIGH"], [ago(0.05)])]
    return records, refs


def _alerts(bootstrap: str, prefix: str, enough) -> list[dict]:
    return of(prefix, values(consume_until_done(bootstrap, ALERTS_TOPIC, lambda rs: enough(of(prefix, values(rs))),
                                                timeout=90)))


def test_each_rule_alerts_once_when_missed_never_when_met_and_not_again_after_a_restart(
        fresh_broker, start_worker, prefix, tmp_path):
    records, refs = _scenario(prefix)
    worker = start_worker(fresh_broker.bootstrap, **shipped())
    send(fresh_broker.bootstrap, records)
    wait_until(counting(worker.web_url, len(records)), 90, "every record counted")
    raised = total(after_more_scans(worker.web_url, 2), "podlink_alerts_total")
    alerts = _alerts(fresh_broker.bootstrap, prefix, lambda found: len(found) >= raised)
    assert len(alerts) == raised
    by_ref = {key: [(a["type"].removeprefix("uk.nhs.podlink."), a["data"].get("policy") or a["data"].get("rule"))
                    for a in alerts if a["subject"] == ref] for key, ref in refs.items()}
    # A CPA referral with no coordinator after 7 days: breached once; assigned on day 5: nothing.
    assert ("sla.breached", "cpa-coordinator") in by_ref["CPA-LATE"]
    assert all(policy != "cpa-coordinator" for _, policy in by_ref["CPA-DAY5"])
    # New medication after the second meeting: flagged to the team; after the fourth: not.
    assert ("governance.flagged", "medication-before-three-meetings") in by_ref["MED-2"]
    # Either way a new medication calls for a risk review within 72 hours, long passed here.
    assert by_ref["MED-4"] == [("sla.breached", "risk-review")]
    # Left the ward 75 hours ago: contact at 70 hours meets the follow-up; none is a breach.
    assert all(policy != "post-discharge-follow-up" for _, policy in by_ref["PDF-70H"])
    assert ("sla.breached", "post-discharge-follow-up") in by_ref["PDF-LATE"]
    # A high-risk referral pages on-call at once (its first meeting is not due for a day).
    assert by_ref["HIGH"] == [("governance.flagged", "high-risk-referral")]
    flag = next(a for a in alerts if a["subject"] == refs["HIGH"])
    assert flag["data"]["audience"] == "on-call" and flag["data"]["severity"] == "critical"
    assert len({a["id"] for a in alerts}) == len(alerts)  # each alert once

    expected = {("deadline.met", refs["PDF-70H"], "post-discharge-follow-up"),
                ("deadline.missed", refs["PDF-LATE"], "post-discharge-follow-up"),
                ("deadline.met", refs["CPA-DAY5"], "cpa-coordinator"),
                ("deadline.missed", refs["CPA-LATE"], "cpa-coordinator")}

    def facts(records) -> set[tuple[str, str, str]]:
        return {(o["type"].removeprefix("uk.nhs.podlink."), o["subject"], o["data"]["policy"])
                for o in of(prefix, values(records)) if o["type"].startswith("uk.nhs.podlink.deadline.")}
    found = facts(consume_until_done(fresh_broker.bootstrap, OUTCOMES_TOPIC,
                                     lambda rs: expected <= facts(rs), timeout=30))
    assert ("deadline.missed", refs["PDF-70H"], "post-discharge-follow-up") not in found

    # A restart between events (another worker of the group takes over from the changelogs),
    # then a new event: nothing raised before is raised again.
    worker.stop()
    again = start_worker(fresh_broker.bootstrap, **shipped())
    later = ago(0.01)
    send(fresh_broker.bootstrap, [event("risk-assessed", refs["CPA-LATE"], later, assessedAt=later, level="low",
                                        reviewDue=None)])
    wait_until(counting(again.web_url, 1), 90, "the new event counted")
    assert total(after_more_scans(again.web_url, 3), "podlink_alerts_total") == 0
    assert len(_alerts(fresh_broker.bootstrap, prefix, lambda found: len(found) >= raised)) == raised


def test_a_changed_policy_file_applies_to_open_referrals_at_the_next_start_and_alerts_once(
        fresh_broker, start_worker, prefix, tmp_path):
    policy = tmp_path / "policies.yaml"
    policy.write_text(FIRST_MEETING_ONLY)
    ref = f"{prefix}-OPEN"
    worker = start_worker(fresh_broker.bootstrap, PODLINK_POLICY_FILE=str(policy))
    received = ago(10)
    send(fresh_broker.bootstrap, [referral(ref, received)])
    wait_until(counting(worker.web_url, 1), 90, "the referral counted")
    # Due in 14 hours, at risk in 8: nothing to say yet.
    assert total(after_more_scans(worker.web_url, 2), "podlink_alerts_total") == 0

    # The trust shortens the first-meeting deadline to 8 hours: 2 hours ago for this referral.
    policy.write_text(FIRST_MEETING_ONLY.replace("due: 24h\n    warn_before: 6h", "due: 8h\n    warn_before: 1h"))
    worker.stop()
    worker.start()
    indexed = _indexed(worker, runs=2)
    assert (indexed["referrals"], indexed["recomputed"]) == (1, 1)
    alerts = _alerts(fresh_broker.bootstrap, prefix, lambda found: len(found) >= 1)
    breach, = alerts
    assert (breach["type"], breach["data"]["policy"]) == ("uk.nhs.podlink.sla.breached", "first-meeting")
    assert breach["data"]["dueAt"] == utc_text(received + 8 * HOUR)

    # Started again under the same file: the breach already raised is not raised again.
    worker.stop()
    worker.start()
    _indexed(worker, runs=3)
    assert total(after_more_scans(worker.web_url, 3), "podlink_alerts_total") == 0
    assert len(_alerts(fresh_broker.bootstrap, prefix, lambda found: True)) == 1


def _indexed(worker, runs: int) -> dict:
    """The first "deadlines indexed" line of the worker's run number `runs` (its own log file)."""
    assert worker.runs == runs

    def found() -> dict | None:
        lines = (json.loads(text) for text in worker.log_path.read_text(errors="replace").splitlines()
                 if text.startswith("{"))
        return next((line for line in lines if line.get("event") == "deadlines indexed"), None)
    return wait_until(found, 90, f"run {runs} indexed its deadlines")
