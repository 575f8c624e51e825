"""The report's JSON laid out as tables for people: one CSV file each, and the HTML's tables
(every chart has one). Built from the JSON alone, so the three formats cannot disagree."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podlink.services.report.stats import pct

Cell = str | int | float | None

RELATIONSHIP_LABELS = {
    "spouse_or_partner": "Spouse or partner", "one_parent": "One parent", "both_parents": "Both parents",
    "friends": "Friends", "children_or_other_relatives": "Children or other relatives",
    "siblings": "Siblings", "others": "Others (carer, neighbour, other)",
}
TIMEPOINT_LABELS = {"baseline": "Baseline", "3_months": "3 months", "6_months": "6 months",
                    "discharge": "Discharge"}
PRINCIPLES = {
    "firstMeetingWithin24h": "First meeting within 24 hours of the referral (of referrals accepted)",
    "meetingsWithNetwork": "Meetings with the network present",
    "meetingsWithPeerSupportWorker": "Meetings with a peer support worker",
    "medicationAfterThreeMeetings": "New medication only after at least three meetings (of new prescriptions)",
}


@dataclass(frozen=True)
class Table:
    name: str  # the CSV file's stem and the HTML table's id
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def tables(report: dict[str, Any]) -> dict[str, Table]:
    found = [
        _referrals(report), _first_times(report), _hours(report), _attendance(report),
        _relationships(report), _per_referral(report), _staff(report), _adherence(report),
        _measures(report), _governance(report), _flags(report), _fidelity(report),
    ]
    return {table.name: table for table in found}


def _referrals(r: dict[str, Any]) -> Table:
    labels = {"registered": "Registered", "accepted": "Accepted", "closed": "Closed",
              "rejected": "Closed: rejected", "withdrawn": "Closed: withdrawn", "discharged": "Discharged"}
    return Table("referrals", "Referrals", ("Referrals", "n"),
                 [(labels[key], r["referrals"][key]) for key in labels])


def _first_times(r: dict[str, Any]) -> Table:
    rows = []
    for label, key, minutes in (("First meeting (from the deadline's start)", "firstMeeting", "minutesFromStart"),
                                ("First contact (from the referral)", "firstContact", "minutesFromReferral")):
        entry = r[key]
        spread = entry[minutes] or {}
        rows.append((label, entry["n"], entry.get("withinDeadline"), entry.get("withinDeadlinePct"),
                     spread.get("median"), spread.get("q1"), spread.get("q3")))
    return Table("first_meeting_and_contact", "Time to first meeting and first contact",
                 ("Milestone", "n", "Within the deadline", "Within the deadline (%)", "Median (minutes)",
                  "Lower quartile (minutes)", "Upper quartile (minutes)"), rows)


def _hours(r: dict[str, Any]) -> Table:
    return Table("first_meeting_hours", "Hours from the deadline's start to the first meeting",
                 ("Hours", "First meetings"), [(hours_label(b["from"], b["to"]), b["n"])
                                               for b in r["firstMeeting"]["hoursFromStart"]])


def hours_label(low: int, high: int | None) -> str:
    return f"{low} or more" if high is None else f"under {high}" if low == 0 else f"{low} to under {high}"


def _attendance(r: dict[str, Any]) -> Table:
    held = r["meetings"]
    return Table("attendance", "Network meeting attendance", ("Meetings", "n", "% of meetings"), [
        ("Held", held, pct(held, held)),
        ("With at least one network member", r["withNetwork"], pct(r["withNetwork"], held)),
        ("Service user and staff only", r["serviceUserOnly"], pct(r["serviceUserOnly"], held)),
    ])


def _relationships(r: dict[str, Any]) -> Table:
    return Table("relationships", "Who attended, in the meetings with a network member",
                 ("Network member", "Meetings", "% of meetings with a network member"),
                 [(RELATIONSHIP_LABELS[key], n, pct(n, r["withNetwork"])) for key, n in r["byRelationship"].items()])


def _per_referral(r: dict[str, Any]) -> Table:
    m = r["meetingsPerReferral"]
    return Table("meetings_per_referral", "Meetings per referral (referrals with a meeting)",
                 ("Referrals", "Mean", "Median", "Maximum"), [(m["referrals"], m["mean"], m["median"], m["max"])])


def _staff(r: dict[str, Any]) -> Table:
    rows = [(role.replace("_", " ").capitalize(), n, pct(n, r["meetings"])) for role, n in r["staffByRole"].items()]
    return Table("staff_by_role", "Staff at meetings, by role", ("Role", "Meetings", "% of meetings"), rows)


def _adherence(r: dict[str, Any]) -> Table:
    a = r["adherence"]
    return Table("adherence", "Adherence to the POD model (ratings after meetings)", ("n", "Mean", "SD"),
                 [(a["n"], a["mean"], a["sd"])])


def _measures(r: dict[str, Any]) -> Table:
    rows = []
    for instrument, timepoints in r["measures"].items():
        for timepoint, entry in timepoints.items():
            metric, change = entry.get("metric", {}), entry.get("changeFromBaseline", {})
            rows.append((instrument, TIMEPOINT_LABELS.get(timepoint, timepoint), entry["n"], entry["mean"],
                         entry["sd"], metric.get("mean"), metric.get("sd"), change.get("n"), change.get("mean"),
                         change.get("sd")))
    return Table("measures", "Outcome measures", (
        "Instrument", "Timepoint", "n", "Mean", "SD", "Metric mean (SWEMWBS)", "Metric SD (SWEMWBS)",
        "Paired with baseline (n)", "Mean change from baseline", "SD of change"), rows)


def _governance(r: dict[str, Any]) -> Table:
    return Table("governance", "Deadlines met and missed, by policy", ("Policy", "Met", "Missed", "Met (%)"),
                 [(policy, g["met"], g["missed"], g["metPct"]) for policy, g in r["governance"].items()])


def _flags(r: dict[str, Any]) -> Table:
    return Table("governance_flags", "Governance flags raised, by rule", ("Rule", "Flags"),
                 list(r["governanceFlags"].items()))


def _fidelity(r: dict[str, Any]) -> Table:
    f = r["fidelity"]
    rows: list[tuple[Cell, ...]] = [(label, f[key]["count"], f[key]["n"], f[key]["pct"])
                                    for key, label in PRINCIPLES.items()]
    days = f["meetingDaysInFirst14"]
    rows.insert(1, ("A meeting on at least 10 of the first 14 days (of referrals accepted; "
                    f"median days: {_shown(days['median'])})", days["atLeast10"], days["n"], days["atLeast10Pct"]))
    return Table("principles", "Fidelity to the POD principles", ("Principle", "Count", "Of", "%"), rows)


def _shown(value: Cell) -> str:
    return "none" if value is None else str(value)
