"""The SLA board in Debian's headless Chromium: what on-call staff see, and acknowledging from it
with the keyboard alone. Saves test-artifacts/notify-board*.png."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from podlink.services.embedded_broker import free_port
from podlink.services.notify import board
from podlink.services.notify.service import web_app
from podlink.streams.core.encoding import json_bytes
from tests.support.browser import chromium, console_errors, screenshot
from tests.unit.services.notify.harness import Harness, harness
from tests.unit.services.notify.support import TOKENS, flag_event, minutes, sla_event, utc

T0 = utc("2026-06-02T13:00")  # 14:00 BST
WHERE = ("pod.sla-alerts.v1", 0, 0)


class BoardServer:
    """The board over a Notifier on real webhook receivers, on its own event loop thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.url = f"http://127.0.0.1:{free_port()}"
        self.h: Harness
        self._ready: Future[None] = Future()
        self._stop: asyncio.Event

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with harness(self.folder, T0) as h:
            self.h = h
            app = web_app(h.notifier)
            app[board.REFRESH] = 1
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", int(self.url.rsplit(":", 1)[1])).start()
            self._ready.set_result(None)
            await self._stop.wait()
            await runner.cleanup()

    def __enter__(self) -> BoardServer:
        threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True).start()
        self._ready.result(30)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)

    def alert(self, key: str, event: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(self.h.notifier.handle(key.encode(), json_bytes(event), WHERE),
                                         self.loop).result(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BoardServer]:
    with BoardServer(tmp_path) as s:
        s.alert("REF-BRD-2", sla_event("at-risk", "REF-BRD-2", T0 + minutes(95), T0))
        s.alert("REF-BRD-1", sla_event("breached", "REF-BRD-1", T0 - minutes(130), T0))
        s.alert("REF-BRD-3", flag_event("REF-BRD-3", "high-risk-referral", T0))
        yield s


def wait(browser, seconds: float = 10) -> WebDriverWait:
    # The table refreshes itself: a row read while it is replaced is read again.
    return WebDriverWait(browser, seconds, ignored_exceptions=[StaleElementReferenceException])


def _rows(browser) -> list[list[str]]:
    return [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "#board-rows tr")]


def test_the_board_shows_open_alerts_by_urgency_and_acknowledges_from_the_keyboard(server: BoardServer) -> None:
    with chromium() as browser:
        browser.get(server.url + "/board")
        assert browser.title == "SLA board - podlink"
        rows = _rows(browser)
        # The breach (due 11:50) first, then the flag (needing attention since it was raised at
        # 14:00), then the deadline still ahead (15:35).
        assert [r[0] for r in rows] == ["REF-BRD-1", "REF-BRD-3", "REF-BRD-2"]
        assert rows[0][1:5] == ["first meeting", "Tue 02 Jun 2026 11:50 BST", "2 h 10 min late", "Breached"]
        assert rows[1][1:5] == ["high risk referral", "No deadline", "Raised Tue 02 Jun 2026 14:00 BST", "Open"]
        assert rows[2][1:5] == ["first meeting", "Tue 02 Jun 2026 15:35 BST", "1 h 35 min left", "At risk"]
        # The design system's own stylesheet is applied (served by podlink): its table and tags.
        tag = browser.find_element(By.CSS_SELECTOR, "#board-rows .nhsuk-tag--red")
        assert tag.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"
        label = browser.find_element(By.CSS_SELECTOR, "label[for=token]")
        assert label.text == "Your podlink token"
        screenshot(browser, "notify-board")

        # Acknowledging before signing in says why it cannot.
        first = browser.find_element(By.CSS_SELECTOR, "#board-rows button.podlink-ack")
        assert " ".join(first.accessible_name.split()) == "Acknowledge REF-BRD-1 first meeting"
        first.click()
        error = browser.find_element(By.ID, "board-error")
        wait(browser, 5).until(lambda b: error.is_displayed())
        assert error.text == "Error: sign in with your podlink token to acknowledge"

        # With the keyboard alone: focus the token field, type, Enter; Tab to the first button, Enter.
        token = browser.find_element(By.ID, "token")
        token.send_keys(TOKENS["duty-worker"], Keys.ENTER)
        wait(browser, 5).until(lambda b: b.find_element(By.ID, "signed-in").is_displayed())
        browser.find_element(By.CSS_SELECTOR, "#board-rows button.podlink-ack").send_keys(Keys.ENTER)
        wait(browser).until(lambda b: _rows(b)[-1][0] == "REF-BRD-1")
        acked = _rows(browser)[-1]
        assert acked[4] == "Acknowledged"
        assert acked[6] == "Acknowledged by duty-worker at Tue 02 Jun 2026 14:00 BST"

        # It refreshes by itself: an alert raised now appears without a reload.
        server.alert("REF-BRD-4", sla_event("breached", "REF-BRD-4", T0 - minutes(300), T0))
        wait(browser).until(lambda b: _rows(b)[0][0] == "REF-BRD-4")
        assert browser.find_element(By.ID, "changes").get_attribute("textContent") == "The board has changed."
        screenshot(browser, "notify-board-acknowledged")
        assert console_errors(browser) == []
    assert [e["type"] for e in server.h.published if e["type"].endswith("acknowledged")] == [
        "uk.nhs.podlink.alert.acknowledged"]
