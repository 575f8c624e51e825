"""The HTML report as an evaluator opens it: in Debian's headless Chromium, from a file, with no
network, no console errors, and each chart with a text alternative and its table."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from podlink_devtools.evaluation_corpus import KENT, corpus, outcome_events
from selenium.webdriver.common.by import By

from podlink.services.cli import main
from tests.support.browser import chromium, console_errors, screenshot
from tests.unit.services.report.outcome_events import deadline_met, deadline_missed, flagged


def test_the_html_report_renders_self_contained_with_charts_tables_and_principles(tmp_path, monkeypatch):
    # Logging set up on pytest's captured output would outlive it and break later tests.
    monkeypatch.setattr("podlink.services.cli.logs.configure", lambda fmt: None)
    events = list(outcome_events(corpus(KENT, "REF-HTML", datetime(2025, 1, 6, 9, tzinfo=timezone.utc))))
    ref = events[0]["subject"]
    events += [deadline_met(ref, "first-meeting"), deadline_missed(ref, "risk-assessment"),
               flagged(ref, "high-risk-referral")]
    source = tmp_path / "outcomes.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events) + "not an outcome event\n")
    page = tmp_path / "report.html"
    assert main(["report", "--from-file", str(source), "--format", "html", "--out", str(page)]) == 0
    html = page.read_text()
    # Nothing to fetch: no scripts or links, and every reference is to an id in the page.
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(?!#)', html) and not re.search(r"url\((?!#)", html)

    with chromium() as browser:
        browser.get(page.as_uri())
        assert console_errors(browser) == []
        # Nothing but the page itself was loaded: no fonts, styles or scripts from anywhere.
        assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
        charts = browser.find_elements(By.CSS_SELECTOR, "figure [role=img]")
        assert len(charts) == 4
        for chart in charts:
            assert chart.get_attribute("aria-label").startswith(("Bar chart", "Line charts", "Stacked bar chart"))
            assert chart.find_element(By.TAG_NAME, "svg").size["width"] > 300
        attendance = browser.find_element(By.CSS_SELECTOR, "figure [role=img][aria-label*='245 meetings']")
        assert "spouse or partner 97, one parent 74, both parents 31" in attendance.get_attribute("aria-label")
        rows = browser.find_elements(By.CSS_SELECTOR, "#table-relationships tbody tr")
        assert [r.text for r in rows][:3] == ["Spouse or partner 97 39.6", "One parent 74 30.2", "Both parents 31 12.7"]
        cards = browser.find_elements(By.CSS_SELECTOR, ".principles .figure")
        assert [c.text for c in cards][2] == "52.5%"  # meetings with the network present
        assert "1 record skipped" in browser.find_element(By.ID, "skipped").text
        governance = browser.find_elements(By.CSS_SELECTOR, "#table-governance tbody tr")
        # The cohort's 50 first meetings, each within its deadline (the pipeline's deadline.met),
        # and the one added above.
        assert [r.text for r in governance] == ["first-meeting 51 0 100.0", "risk-assessment 0 1 0.0"]
        assert screenshot(browser, "report-kent").stat().st_size > 50_000
