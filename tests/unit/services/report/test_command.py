"""`podlink report --from-file` as a user runs it: what it writes, and its exit status."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from podlink.services.cli import main
from podlink.services.report.collect import Scope
from podlink.services.report.command import run_report
from podlink.streams.worker.settings import Settings
from tests.unit.services.report.outcome_events import accepted, meeting_held, registered


def _file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "outcomes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _events(tmp_path: Path) -> Path:
    return _file(tmp_path, json.dumps(registered("REF-A")), json.dumps(accepted("REF-A")),
                 json.dumps(meeting_held("REF-A", "M1", network={"parent": 2})), "",
                 json.dumps(meeting_held("REF-A", "M2")), "{ truncated")


def _run(source: Path | str, fmt: str = "json", out: Path | None = None, scope: Scope = Scope()) -> tuple[int, str, str]:
    stdout, err = io.StringIO(), io.StringIO()
    status = run_report(Settings(), str(source), fmt, out, scope, stdout=stdout, err=err)
    return status, stdout.getvalue(), err.getvalue()


def test_json_to_standard_output_and_a_line_about_what_was_skipped(tmp_path):
    status, out, err = _run(_events(tmp_path))
    assert status == 0
    report = json.loads(out)
    assert (report["meetings"], report["withNetwork"], report["byRelationship"]["both_parents"]) == (2, 1, 1)
    assert report["skipped"] == 1 and report["eventsRead"] == 5  # the blank line is not a record
    assert err == "podlink report: skipped 1 records that are not podlink outcome events (not JSON: 1)\n"


def test_json_to_a_file(tmp_path):
    target = tmp_path / "report.json"
    status, out, err = _run(_events(tmp_path), out=target)
    assert (status, out) == (0, "")
    assert json.loads(target.read_text())["referrals"]["accepted"] == 1
    assert err.endswith(f"podlink report: wrote {target}\n")


def test_csv_writes_one_file_per_table(tmp_path):
    folder = tmp_path / "tables"
    status, _, _ = _run(_events(tmp_path), "csv", folder)
    assert status == 0
    with (folder / "attendance.csv").open() as file:
        assert list(csv.reader(file)) == [["Meetings", "n", "% of meetings"], ["Held", "2", "100.0"],
                                          ["With at least one network member", "1", "50.0"],
                                          ["Service user and staff only", "1", "50.0"]]
    with (folder / "relationships.csv").open() as file:
        rows = list(csv.reader(file))
    assert rows[3] == ["Both parents", "1", "100.0"] and rows[1] == ["Spouse or partner", "0", "0.0"]
    assert {p.name for p in folder.iterdir()} >= {"referrals.csv", "measures.csv", "governance.csv",
                                                   "principles.csv", "adherence.csv"}


def test_html_and_csv_need_somewhere_to_write(tmp_path):
    status, _, err = _run(_events(tmp_path), "html")
    assert status == 2 and "--format html needs --out" in err


def test_a_team_with_no_referrals_says_so_and_exits_1(tmp_path):
    status, out, err = _run(_events(tmp_path), scope=Scope(team="POD-NOWHERE"))
    assert (status, out) == (1, "")
    assert err.splitlines()[-1] == (
        f"podlink report: no referrals registered for team POD-NOWHERE in {tmp_path / 'outcomes.jsonl'}: "
        "nothing to report")


def test_an_empty_file_or_one_of_nothing_but_bad_records_exits_1(tmp_path):
    assert _run(_file(tmp_path, ""))[0] == 1
    status, _, err = _run(_file(tmp_path, "[]", "nonsense"))
    assert status == 1 and "no outcome events in" in err


def test_a_missing_file_is_one_line_and_exit_2(tmp_path):
    status, _, err = _run(tmp_path / "missing.jsonl")
    assert status == 2
    assert err == f"podlink report: cannot read {tmp_path / 'missing.jsonl'}: No such file or directory\n"


def test_the_command_line_takes_the_scope_and_refuses_a_time_without_a_zone(tmp_path, capsys, monkeypatch):
    # Logging set up on pytest's captured output would outlive it and break later tests.
    monkeypatch.setattr("podlink.services.cli.logs.configure", lambda fmt: None)
    path = _events(tmp_path)
    assert main(["report", "--from-file", str(path), "--team", "POD-KENT", "--since", "2026-03-02T09:00Z",
                 "--until", "2026-03-03T00:00+00:00"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scope"] == {"team": "POD-KENT", "since": "2026-03-02T09:00:00Z", "until": "2026-03-03T00:00:00Z"}
    assert main(["report", "--from-file", str(path), "--since", "2026-03-02T09:31Z"]) == 1
    try:
        main(["report", "--from-file", str(path), "--since", "2026-03-02"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "has no time zone" in capsys.readouterr().err
