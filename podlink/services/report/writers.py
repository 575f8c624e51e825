"""The report written out: JSON (the interface, docs/report.md), one CSV per table, or one
self-contained HTML page (no CDN, no network: styles and charts are inline)."""
from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from podlink.services.report.tables import tables


def json_text(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def write_csv(report: dict[str, Any], directory: Path) -> list[Path]:
    """One CSV per table, named for it; an empty cell where a figure is null."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables(report).values():
        path = directory / f"{table.name}.csv"
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(table.columns)
            writer.writerows([("" if cell is None else cell for cell in row) for row in table.rows])
        written.append(path)
    return written


def html_text(report: dict[str, Any]) -> str:
    from podlink.services.report.charts import charts  # matplotlib: only for the HTML

    environment = Environment(loader=PackageLoader("podlink.services.report"), undefined=StrictUndefined,
                              autoescape=select_autoescape(["html"]))
    css = resources.files("podlink.services.report").joinpath("templates/report.css").read_text()
    return environment.get_template("report.html").render(
        r=report, tables=tables(report), charts={chart.name: chart for chart in charts(report)}, css=css)
