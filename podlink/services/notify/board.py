"""The SLA board at `GET /board`: every open alert's deadline, most urgent first, for on-call staff.

Built with the NHS.UK design system (nhsuk-frontend, vendored under static/nhsuk and served from
here: no CDN). The state is always written out in words, beside its colour; the table refreshes
itself every REFRESH_SECONDS from `/board/rows` (an HTML fragment, so the page is also complete
without JavaScript); the acknowledge buttons use the API with the token the person signs in with,
kept in the tab's sessionStorage only. No patient name or NHS number: the alerts carry none.
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from html import escape
from importlib.resources import files

from aiohttp import web

from podlink.services.notify.api import NOTIFIER
from podlink.services.notify.escalation import Escalation
from podlink.services.notify.messages import lateness, local_time

REFRESH_SECONDS = 30
REFRESH = web.AppKey("board_refresh_seconds", int)
STATIC = files("podlink.services.notify") / "static"
# The board's own files only: scripts and styles from this server, nothing inline.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# (words, nhsuk tag colour): the words carry the meaning, the colour only repeats it.
STATES = {
    "breached": ("Breached", "nhsuk-tag--red"),
    "at-risk": ("At risk", "nhsuk-tag--orange"),
    "flagged": ("Open", "nhsuk-tag--blue"),
    "acknowledged": ("Acknowledged", "nhsuk-tag--grey"),
}


def state_of(esc: Escalation) -> str:
    return "acknowledged" if esc.status == "acknowledged" else esc.alert.kind


def rows_html(alerts: list[Escalation], now: datetime) -> str:
    if not alerts:
        return ('<tr role="row" class="nhsuk-table__row"><td class="nhsuk-table__cell" colspan="7">'
                'No open alerts.</td></tr>')
    return "\n".join(_row(esc, now) for esc in alerts)


def _row(esc: Escalation, now: datetime) -> str:
    a = esc.alert
    words, colour = STATES[state_of(esc)]
    due = escape(local_time(a.due_at)) if a.due_at else "No deadline"
    left = escape(lateness(a.due_at, now)) if a.due_at else f"Raised {escape(local_time(a.raised_at))}"
    what = escape(a.topic.replace("-", " "))
    if esc.status == "acknowledged":
        action = (f'Acknowledged by {escape(esc.acknowledged_by or "")} at '
                  f'{escape(local_time(esc.acknowledged_at)) if esc.acknowledged_at else ""}')
    else:
        action = (f'<button class="nhsuk-button nhsuk-button--secondary nhsuk-button--small podlink-ack" '
                  f'type="button" data-alert-id="{escape(a.id)}">Acknowledge'
                  f'<span class="nhsuk-u-visually-hidden"> {escape(a.referral_id)} {what}</span></button>')
    cells = [
        f'<th class="nhsuk-table__header" scope="row">{escape(a.referral_id)}</th>',
        f'<td class="nhsuk-table__cell">{what}</td>',
        f'<td class="nhsuk-table__cell">{due}</td>',
        f'<td class="nhsuk-table__cell">{left}</td>',
        f'<td class="nhsuk-table__cell"><strong class="nhsuk-tag {colour}">{words}</strong></td>',
        f'<td class="nhsuk-table__cell">{escape(", ".join(esc.paged)) or "Nobody on duty"}</td>',
        f'<td class="nhsuk-table__cell">{action}</td>',
    ]
    return (f'<tr class="nhsuk-table__row" data-state="{state_of(esc)}">' + "".join(cells) + "</tr>")


def version(rows: str) -> str:
    """Names the rows' content: the page replaces its rows only when this changes."""
    return hashlib.sha256(rows.encode()).hexdigest()[:16]


def page_html(alerts: list[Escalation], now: datetime, refresh_seconds: int = REFRESH_SECONDS) -> str:
    rows = rows_html(alerts, now)
    return f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SLA board - podlink</title>
<link rel="stylesheet" href="/static/nhsuk/nhsuk-frontend.min.css">
<link rel="stylesheet" href="/static/board.css">
<link rel="icon" href="/assets/images/favicon.ico">
</head>
<body data-refresh-seconds="{refresh_seconds}">
<a class="nhsuk-skip-link" href="#maincontent">Skip to main content</a>
<header class="nhsuk-header" role="banner">
  <div class="nhsuk-header__container nhsuk-width-container">
    <div class="nhsuk-header__service"><span class="nhsuk-header__service-name">podlink on-call</span></div>
  </div>
</header>
<div class="nhsuk-width-container">
<main class="nhsuk-main-wrapper" id="maincontent" role="main">
  <h1 class="nhsuk-heading-l">SLA board</h1>
  <p class="nhsuk-body">Open alerts, most urgent first. Times are UK time (Europe/London).
  The table updates every {refresh_seconds} seconds.</p>
  <form class="podlink-sign-in" id="sign-in" novalidate>
    <div class="nhsuk-form-group" id="token-group">
      <label class="nhsuk-label" for="token">Your podlink token</label>
      <div class="nhsuk-hint" id="token-hint">Needed to acknowledge. Kept in this browser tab only.</div>
      <input class="nhsuk-input nhsuk-input--width-20" id="token" name="token" type="password"
             autocomplete="off" aria-describedby="token-hint">
    </div>
    <button class="nhsuk-button" type="submit" id="sign-in-button">Sign in</button>
    <p class="nhsuk-body" id="signed-in" hidden>Signed in.
      <button class="nhsuk-button nhsuk-button--secondary nhsuk-button--small" type="button"
              id="sign-out">Sign out</button></p>
  </form>
  <div class="nhsuk-error-message" id="board-error" role="alert" hidden></div>
  <table class="nhsuk-table" id="board">
    <caption class="nhsuk-table__caption">Open deadlines and governance flags</caption>
    <thead class="nhsuk-table__head"><tr class="nhsuk-table__row">
      <th class="nhsuk-table__header" scope="col">Referral</th>
      <th class="nhsuk-table__header" scope="col">Policy or rule</th>
      <th class="nhsuk-table__header" scope="col">Due</th>
      <th class="nhsuk-table__header" scope="col">Time left or late</th>
      <th class="nhsuk-table__header" scope="col">State</th>
      <th class="nhsuk-table__header" scope="col">Paged</th>
      <th class="nhsuk-table__header" scope="col">Action</th>
    </tr></thead>
    <tbody class="nhsuk-table__body" id="board-rows" data-version="{version(rows)}">
{rows}
    </tbody>
  </table>
  <p class="nhsuk-body-s" id="updated">Updated {escape(local_time(now))}</p>
  <p class="nhsuk-u-visually-hidden" id="changes" role="status" aria-live="polite"></p>
</main>
</div>
<script type="module" src="/static/board.js"></script>
</body>
</html>
"""


async def board(request: web.Request) -> web.Response:
    notifier = request.app[NOTIFIER]
    page = page_html(notifier.open_alerts(), notifier.clock(), request.app.get(REFRESH, REFRESH_SECONDS))
    return web.Response(text=page, content_type="text/html", headers=SECURITY_HEADERS)


async def board_rows(request: web.Request) -> web.Response:
    notifier = request.app[NOTIFIER]
    now = notifier.clock()
    rows = rows_html(notifier.open_alerts(), now)
    return web.Response(text=rows, content_type="text/html", headers={
        **SECURITY_HEADERS, "X-Podlink-Updated": escape(local_time(now)), "X-Podlink-Board-Version": version(rows)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/board", board)
    app.router.add_get("/board/rows", board_rows)
    app.router.add_static("/static", str(STATIC))
    # Where nhsuk-frontend's CSS looks for its icons.
    app.router.add_static("/assets/images", str(STATIC / "nhsuk" / "images"))
