"""The HTML report's charts: matplotlib figures rendered to SVG to inline in the page, each with
a text alternative that says what it shows. Built from the report's JSON alone."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from podlink.services.report.tables import RELATIONSHIP_LABELS, TIMEPOINT_LABELS, hours_label

# NHS.UK colours (nhsuk-frontend 10.6.1, core/settings/_colours-palette.scss; MIT licence).
NHS_BLUE, NHS_DARK_BLUE, NHS_GREEN, NHS_RED = "#005eb8", "#003087", "#007f3b", "#d5281b"
NHS_BLACK, NHS_GREY_1, NHS_GREY_4 = "#212b32", "#4c6272", "#d8dde0"
STYLE = {
    "svg.fonttype": "none",  # text stays text: selectable, read by screen readers, styled by the page
    "font.family": "sans-serif",
    "font.size": 11,
    "axes.edgecolor": NHS_GREY_1,
    "axes.labelcolor": NHS_BLACK,
    "xtick.color": NHS_BLACK,
    "ytick.color": NHS_BLACK,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass(frozen=True)
class Chart:
    name: str
    svg: str
    alt: str  # the text alternative: what a person would see in it


def charts(report: dict[str, Any]) -> list[Chart]:
    with matplotlib.rc_context(STYLE):
        found = [attendance(report), first_meeting(report), measures(report), governance(report)]
    return [chart for chart in found if chart is not None]


def attendance(report: dict[str, Any]) -> Chart | None:
    counts = report["byRelationship"]
    if not report["withNetwork"]:
        return None
    labels = [RELATIONSHIP_LABELS[key] for key in counts][::-1]
    values = list(counts.values())[::-1]
    figure = Figure(figsize=(7.5, 3.6))
    axes = figure.add_subplot()
    bars = axes.barh(labels, values, color=NHS_BLUE)
    axes.bar_label(bars, padding=3)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(f"Meetings (of {report['withNetwork']} with a network member)")
    parts = ", ".join(f"{RELATIONSHIP_LABELS[key].lower()} {n}" for key, n in counts.items())
    return Chart("attendance", _svg(figure, "attendance"),
                 f"Bar chart: of {report['withNetwork']} meetings with a network member, {parts}.")


def first_meeting(report: dict[str, Any]) -> Chart | None:
    first = report["firstMeeting"]
    if not first["n"]:
        return None
    bins = first["hoursFromStart"]
    labels = [f"{b['from']}+" if b["to"] is None else f"{b['from']}\u2013{b['to']}" for b in bins]
    figure = Figure(figsize=(7.5, 3.4))
    axes = figure.add_subplot()
    bars = axes.bar(labels, [b["n"] for b in bins], color=NHS_BLUE)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.bar_label(bars, padding=2)
    # The 24-hour line falls between the bin that ends at 24 hours and the one that starts there.
    line_at = next(i for i, b in enumerate(bins) if b["from"] == 24) - 0.5
    axes.axvline(line_at, color=NHS_RED, linestyle="--", linewidth=2)
    axes.text(line_at + 0.05, axes.get_ylim()[1] * 0.95, "24 hours", color=NHS_RED, va="top")
    axes.set_xlabel("Hours from the deadline's start to the first meeting")
    labels = [hours_label(b["from"], b["to"]) for b in bins]
    axes.set_ylabel("First meetings")
    within = sum(b["n"] for b in bins if b["to"] is not None and b["to"] <= 24)
    parts = ", ".join(f"{label} hours {b['n']}" for label, b in zip(labels, bins))
    return Chart("first-meeting", _svg(figure, "first-meeting"),
                 f"Bar chart of {first['n']} first meetings by hours from the deadline's start, with a line "
                 f"at 24 hours: {within} before it. {parts}.")


def measures(report: dict[str, Any]) -> Chart | None:
    instruments = report["measures"]
    if not instruments:
        return None
    columns = 1 if len(instruments) == 1 else 2
    rows = -(-len(instruments) // columns)
    figure = Figure(figsize=(7.5, 2.8 * rows + 0.4))
    sentences = []
    for i, (instrument, timepoints) in enumerate(instruments.items(), 1):
        axes = figure.add_subplot(rows, columns, i)
        labels = [TIMEPOINT_LABELS.get(t, t) for t in timepoints]
        means = [entry["mean"] for entry in timepoints.values()]
        errors = [entry["sd"] or 0 for entry in timepoints.values()]
        axes.errorbar(labels, means, yerr=errors, color=NHS_DARK_BLUE, ecolor=NHS_GREY_1, capsize=4,
                      marker="o", linewidth=2)
        axes.set_title(instrument, loc="left", fontweight="bold")
        axes.margins(x=0.2)
        sentences.append(f"{instrument}: " + ", ".join(
            f"{TIMEPOINT_LABELS.get(t, t).lower()} mean {e['mean']}"
            + (f" (sd {e['sd']})" if e["sd"] is not None else "") + f", n {e['n']}" for t, e in timepoints.items()))
    figure.tight_layout()
    return Chart("measures", _svg(figure, "measures"),
                 "Line charts of the mean score with error bars of one standard deviation, by timepoint. "
                 + "; ".join(sentences) + ".")


def governance(report: dict[str, Any]) -> Chart | None:
    policies = report["governance"]
    if not policies:
        return None
    names = list(policies)[::-1]
    met = [policies[p]["met"] for p in names]
    missed = [policies[p]["missed"] for p in names]
    figure = Figure(figsize=(7.5, 0.6 * len(names) + 1.4))
    axes = figure.add_subplot()
    axes.barh(names, met, color=NHS_GREEN, label="Met")
    axes.barh(names, missed, left=met, color=NHS_RED, label="Missed")
    axes.set_xlabel("Deadlines")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=2, frameon=False)
    parts = "; ".join(f"{p} {policies[p]['met']} met, {policies[p]['missed']} missed" for p in policies)
    return Chart("governance", _svg(figure, "governance"), f"Stacked bar chart of deadlines by policy: {parts}.")


def _svg(figure: Figure, name: str) -> str:
    buffer = io.StringIO()
    # A salt per chart keeps the ids of two inline SVGs apart; no date keeps the page reproducible.
    with matplotlib.rc_context({"svg.hashsalt": name, "svg.id": f"chart-{name}"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: no XML declaration or doctype
