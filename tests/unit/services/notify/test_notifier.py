"""The Notifier: alert records in, each message sent at most once, failures reported and escalated."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from podlink.services.notify.notifier import Retry
from podlink.streams.core.encoding import json_bytes
from tests.unit.services.notify.harness import harness
from tests.unit.services.notify.support import ROTA, MemoryStore, flag_event, minutes, sla_event, utc

T0 = utc("2026-11-24T10:00")  # a Tuesday, GMT
WHERE = ("pod.sla-alerts.v1", 0, 7)


def breach(ref: str = "REF-N-1", at=T0) -> bytes:
    return json_bytes(sla_event("breached", ref, at - minutes(60), at))


def test_an_alert_reaches_the_first_tier_once_even_when_read_again(tmp_path: Path) -> None:
    async def scenario():
        async with harness(tmp_path, T0) as h:
            for _ in range(3):  # a redelivery and a replay
                await h.notifier.handle(b"REF-N-1", breach(), WHERE)
                await h.notifier.drain()
            return h
    h = asyncio.run(scenario())
    assert [r.path for r in h.hooks.received] == ["/duty"]
    assert h.types() == ["alert.sent"]
    sent = h.published[0]["data"]
    assert (sent["channel"], sent["recipient"], sent["attempt"], sent["purpose"]) == (
        "webhook", "duty-worker", 1, "alert")
    assert h.published[0]["source"] == "urn:podlink:notify" and h.published[0]["subject"] == "REF-N-1"


def test_a_restart_sends_nothing_twice_and_escalates_on_time(tmp_path: Path) -> None:
    async def scenario():
        store = MemoryStore()
        async with harness(tmp_path, T0, store) as first:
            await first.notifier.handle(b"REF-N-1", breach(), WHERE)
        # A new process: its store is what the first one wrote to the state topic, read back.
        restored = MemoryStore()
        for key, value in store.written:
            restored._apply(key.encode(), json_bytes(value))
        async with harness(tmp_path, T0 + minutes(5), restored) as second:
            await second.notifier.handle(b"REF-N-1", breach(), WHERE)  # the alert read again
            await second.notifier.tick_all()
            second.clock.now = T0 + minutes(15)
            await second.notifier.tick_all()
            await second.notifier.drain()
            return first, second
    first, second = asyncio.run(scenario())
    assert [r.path for r in first.hooks.received] == ["/duty"]
    assert [r.path for r in second.hooks.received] == ["/manager"]


def test_a_failing_channel_is_retried_with_backoff_then_reported(tmp_path: Path) -> None:
    async def scenario():
        async with harness(tmp_path, T0) as h:
            h.hooks.statuses["/duty"] = [503, 503]  # then 200
            await h.notifier.handle(b"REF-N-1", breach(), WHERE)
            await h.notifier.drain()
            return h
    h = asyncio.run(scenario())
    assert [r.path for r in h.hooks.received] == ["/duty"] * 3
    assert h.types() == ["alert.sent"] and h.published[0]["data"]["attempt"] == 3
    exposition = h.notifier.metrics.exposition().decode()
    assert 'podlink_notify_deliveries_total{channel="webhook",outcome="retried"} 2.0' in exposition
    assert 'podlink_notify_deliveries_total{channel="webhook",outcome="sent"} 1.0' in exposition


def test_a_contact_whose_every_channel_fails_escalates_at_once(tmp_path: Path) -> None:
    async def scenario():
        async with harness(tmp_path, T0) as h:
            h.hooks.statuses["/duty"] = [404]  # not worth retrying
            await h.notifier.handle(b"REF-N-1", breach(), WHERE)
            await h.notifier.drain()
            return h
    h = asyncio.run(scenario())
    assert [r.path for r in h.hooks.received] == ["/duty", "/manager"]
    assert h.types() == ["alert.failed", "alert.sent"]
    failed = h.published[0]["data"]
    assert (failed["recipient"], failed["reason"], failed["attempt"]) == ("duty-worker", "HTTP 404", 1)


def test_a_hanging_channel_times_out_and_holds_up_nobody_else(tmp_path: Path) -> None:
    rota = ROTA.replace("    - {{contacts: [duty-worker], escalate_after: 15m, when: always}}",
                        "    - {{contacts: [duty-worker, consultant], escalate_after: 15m, when: always}}")

    async def scenario():
        async with harness(tmp_path, T0, retry=Retry(attempts=2, first_wait=0.01, timeout=0.3), rota_text=rota) as h:
            h.hooks.hang.add("/duty")
            await h.notifier.handle(b"REF-N-1", breach(), WHERE)
            await asyncio.sleep(0.1)
            consultant_first = [r.path for r in h.hooks.received]
            await h.notifier.drain()
            return h, consultant_first
    h, early = asyncio.run(scenario())
    assert "/consultant" in early  # answered while the duty worker's receiver still hung
    failed = [e["data"] for e in h.published if e["type"].endswith("alert.failed")]
    assert [(f["recipient"], f["reason"], f["attempt"]) for f in failed] == [
        ("duty-worker", "timed out after 0.3 s", 2)]


def test_unreadable_and_unroutable_alerts_are_reported_not_dropped(tmp_path: Path) -> None:
    async def scenario():
        async with harness(tmp_path, T0) as h:
            await h.notifier.handle(b"REF-N-9", b"{ not json", WHERE)
            event = json.loads(breach("REF-N-2"))
            event["data"]["audience"] = "pharmacy"
            await h.notifier.handle(b"REF-N-2", json_bytes(event), WHERE)
            return h
    h = asyncio.run(scenario())
    assert h.hooks.received == []
    assert [e["data"]["reason"] for e in h.published] == [
        "unreadable: the value is not JSON", "no tier covers audience pharmacy"]
    assert h.published[0]["data"]["source"] == "pod.sla-alerts.v1/0@7"
    exposition = h.notifier.metrics.exposition().decode()
    assert 'podlink_notify_alerts_total{kind="unreadable",outcome="unreadable"} 1.0' in exposition
    assert 'podlink_notify_alerts_total{kind="breached",outcome="unroutable"} 1.0' in exposition


def test_a_resolved_alert_tells_those_paged_and_ends_escalation(tmp_path: Path) -> None:
    async def scenario():
        async with harness(tmp_path, T0) as h:
            await h.notifier.handle(b"REF-N-1", breach(), WHERE)
            h.clock.now = T0 + minutes(15)
            await h.notifier.tick_all()
            await h.notifier.drain()
            resolved = sla_event("resolved", "REF-N-1", T0 - minutes(60), T0 + minutes(20),
                                 resolvedBy="meeting-held", resolvedAt="2026-11-24T10:19:00Z")
            await h.notifier.handle(b"REF-N-1", json_bytes(resolved), WHERE)
            h.clock.now = T0 + minutes(120)
            await h.notifier.tick_all()
            await h.notifier.drain()
            return h
    h = asyncio.run(scenario())
    assert [(r.path, r.json()["purpose"]) for r in h.hooks.received] == [
        ("/duty", "alert"), ("/manager", "alert"), ("/duty", "resolved"), ("/manager", "resolved")]
    assert h.notifier.open_alerts() == []


def test_a_breach_supersedes_its_at_risk_warning(tmp_path: Path) -> None:
    async def scenario():
        async with harness(tmp_path, T0) as h:
            at_risk = sla_event("at-risk", "REF-N-1", T0 + minutes(60), T0)
            await h.notifier.handle(b"REF-N-1", json_bytes(at_risk), WHERE)
            h.clock.now = T0 + minutes(61)
            await h.notifier.handle(b"REF-N-1", breach(at=T0 + minutes(61)), WHERE)
            await h.notifier.drain()
            return h
    h = asyncio.run(scenario())
    assert [r.json()["kind"] for r in h.hooks.received] == ["at-risk", "breached"]
    assert [e.alert.kind for e in h.notifier.open_alerts()] == ["breached"]


def test_governance_flags_are_routed_by_rule(tmp_path: Path) -> None:
    async def scenario():
        async with harness(tmp_path, T0) as h:
            await h.notifier.handle(b"REF-N-3", json_bytes(flag_event("REF-N-3", "high-risk-referral", T0)), WHERE)
            await h.notifier.drain()
            return h
    h = asyncio.run(scenario())
    [hook] = h.hooks.received
    assert hook.json()["rule"] == "high-risk-referral" and hook.json()["dueAt"] is None
    assert hook.json()["summary"] == "REF-N-3 high-risk-referral governance flag"


def test_a_send_cut_short_by_a_crash_is_not_repeated_but_reported(tmp_path: Path) -> None:
    async def scenario():
        store = MemoryStore()
        async with harness(tmp_path, T0, store) as first:
            await first.notifier.handle(b"REF-N-1", breach(), WHERE)
        # The state as a crash would leave it: the `sending` record written, no outcome after it.
        restored = MemoryStore()
        for key, value in store.written:
            if not (key.startswith("delivery:") and value["status"] == "sent"):
                restored._apply(key.encode(), json_bytes(value))
        async with harness(tmp_path, T0 + minutes(1), restored) as second:
            await second.notifier.recover()
            await second.notifier.handle(b"REF-N-1", breach(), WHERE)
            await second.notifier.tick_all()
            return second
    second = asyncio.run(scenario())
    assert second.hooks.received == []
    assert second.types() == ["alert.failed"]
    assert (second.published[0]["data"]["reason"], second.published[0]["data"]["recipient"]) == (
        "interrupted", "duty-worker")


def test_an_acknowledgement_resolves_the_pagerduty_incident_and_nothing_else(tmp_path: Path) -> None:
    rota = ROTA.replace('    webhook: {{url: "{hook}/duty", secret_env: TEST_SECRET_DUTY}}',
                        '    webhook: {{url: "{hook}/duty", secret_env: TEST_SECRET_DUTY}}\n'
                        '    pagerduty: {{routing_key_env: TEST_SECRET_DUTY}}')

    async def scenario():
        async with harness(tmp_path, T0, rota_text=rota) as h:
            await h.notifier.handle(b"REF-N-1", breach(), WHERE)
            await h.notifier.drain()
            [esc] = h.notifier.open_alerts()
            await h.notifier.acknowledge(esc.alert.id, "duty-worker")
            return h
    h = asyncio.run(scenario())
    seen = [(r.path, r.json().get("event_action") or r.json()["purpose"]) for r in h.hooks.received]
    # The page went out on both channels at once (either order); the acknowledgement after them
    # resolves the incident and sends no webhook.
    assert sorted(seen[:2]) == [("/duty", "alert"), ("/pagerduty", "trigger")]
    assert seen[2:] == [("/pagerduty", "resolve")]
    assert h.hooks.received[-1].json()["dedup_key"] == "REF-N-1:first-meeting"


def test_a_page_decided_but_not_begun_before_a_crash_is_sent_at_start(tmp_path: Path) -> None:
    async def scenario():
        store = MemoryStore()
        async with harness(tmp_path, T0, store) as first:
            await first.notifier.handle(b"REF-N-1", breach(), WHERE)
        # A crash after the escalation was written and before the delivery's `sending` record.
        restored = MemoryStore()
        for key, value in store.written:
            if key.startswith("escalation:"):
                restored._apply(key.encode(), json_bytes(value))
        async with harness(tmp_path, T0 + minutes(1), restored) as second:
            await second.notifier.recover()
            await second.notifier.drain()
            at_start = [r.path for r in second.hooks.received]
            await second.notifier.handle(b"REF-N-1", breach(), WHERE)  # and the alert read again
            return second, at_start
    second, at_start = asyncio.run(scenario())
    assert at_start == ["/duty"]
    assert [r.path for r in second.hooks.received] == ["/duty"]
    assert second.types() == ["alert.sent"]


def test_a_resolution_closes_its_own_round_of_a_repeating_deadline_only(tmp_path: Path) -> None:
    due = T0 - minutes(60)

    async def scenario():
        async with harness(tmp_path, T0) as h:
            for cycle in (0, 1):
                event = sla_event("breached", "REF-N-5", due, T0, policy="risk-review", audience="team", cycle=cycle)
                await h.notifier.handle(b"REF-N-5", json_bytes(event), WHERE)
            resolved = sla_event("resolved", "REF-N-5", due, T0 + minutes(5), policy="risk-review",
                                 audience="team", cycle=1, resolvedBy="met")
            await h.notifier.handle(b"REF-N-5", json_bytes(resolved), WHERE)
            await h.notifier.drain()
            return h
    h = asyncio.run(scenario())
    assert [e.alert.cycle for e in h.notifier.open_alerts()] == [0]
    assert [(r.path, r.json()["purpose"]) for r in h.hooks.received] == [
        ("/manager", "alert"), ("/manager", "alert"), ("/manager", "resolved")]
