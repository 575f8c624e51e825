"""The escalation decisions carried out: alerts in, pages out on every channel, state kept.

Each message goes out in a task of its own, so a channel that is slow or failing holds up
nobody else; changes to an escalation are made under one lock, so an acknowledgement and a tick
never both act on the same alert at once.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from podlink.services.notify import escalation as esc_rules
from podlink.services.notify.alerts import Alert, Unreadable, parse_alert
from podlink.services.notify.channels import ChannelError, Channels
from podlink.services.notify.escalation import Escalation, Page
from podlink.services.notify.messages import Message
from podlink.services.notify.metrics import NotifyMetrics
from podlink.services.notify.rota import Contact, Rota
from podlink.services.notify.state import StateStore
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.outcomes import cloud_event

log = structlog.get_logger("podlink")
SOURCE = "urn:podlink:notify"
# Closed escalations whose notices a restart still completes; older ones are left as they are.
RESUME_CLOSED = timedelta(days=1)
RESOLVE_REASONS = ("handled", "meeting-held", "referral-closed", "false-alarm", "duplicate")


@dataclass(frozen=True)
class Retry:
    attempts: int
    first_wait: float
    timeout: float


def outcome(kind: str, subject: str, now: datetime, data: dict[str, Any], *id_parts: str) -> dict[str, Any]:
    """An outcome event of notify's: podlink's CloudEvent shape, notify as its source."""
    return {**cloud_event(kind, subject, now, data, *id_parts), "source": SOURCE}


class Notifier:
    def __init__(self, rota: Rota, store: StateStore, channels: Channels,
                 publish: Callable[[dict[str, Any]], Awaitable[None]], metrics: NotifyMetrics,
                 clock: Callable[[], datetime], base_url: str, retry: Retry) -> None:
        self.rota = rota
        self.store = store
        self._channels = channels
        self._publish = publish
        self.metrics = metrics
        self.clock = clock
        self._base_url = base_url
        self._retry = retry
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- reading alerts ---------------------------------------------------------------------

    async def handle(self, key: bytes | None, value: bytes | None, where: tuple[str, int, int]) -> None:
        """One record of the alerts topic. Never raises for a bad record: it is reported."""
        try:
            alert = parse_alert(value)
        except Unreadable as exc:
            await self._unreadable(key, str(exc), where)
            return
        async with self._lock:
            if alert.kind == "resolved":
                await self._resolved(alert)
            elif alert.id in self.store.escalations:
                # Its pages were sent when it was first read (or are resent by recover() at start).
                self.metrics.alerts.labels(alert.kind, "duplicate").inc()
            else:
                await self._open(alert)
        self._gauge()

    async def _unreadable(self, key: bytes | None, reason: str, where: tuple[str, int, int]) -> None:
        topic, partition, offset = where
        self.metrics.alerts.labels("unreadable", "unreadable").inc()
        log.warning("alert unreadable", reason=reason, topic=topic, partition=partition, offset=offset)
        subject = key.decode(errors="replace") if key else "unknown"
        await self._publish(outcome("alert.failed", subject, self.clock(), {
            "reason": f"unreadable: {reason}", "channel": None, "recipient": None, "attempt": 0,
            "source": f"{topic}/{partition}@{offset}",
        }, "unreadable", topic, str(partition), str(offset)))

    async def _open(self, alert: Alert) -> None:
        now = self.clock()
        if alert.kind == "breached":
            for other in list(self.store.escalations.values()):
                if other.alert.deadline == alert.deadline and other.alert.kind == "at-risk" and other.status == "open":
                    await self.store.put_escalation(esc_rules.supersede(other, now))
        esc, pages = esc_rules.open_escalation(alert, self.rota, now)
        await self.store.put_escalation(esc)
        if not pages:
            await self._unroutable(esc)
            return
        self.metrics.alerts.labels(alert.kind, "paged").inc()
        log.info("alert paged", alert_id=alert.id, referral_id=alert.referral_id, kind=alert.kind,
                 tier=esc.tier, contacts=[p.contact for p in pages])
        self._dispatch(esc, pages)

    async def _unroutable(self, esc: Escalation) -> None:
        alert = esc.alert
        covered = alert.audience in self.rota.tiers
        reason = (f"no tier of audience {alert.audience} on duty" if covered
                  else f"no tier covers audience {alert.audience}")
        self.metrics.alerts.labels(alert.kind, "unroutable").inc()
        log.warning("alert unroutable", alert_id=alert.id, referral_id=alert.referral_id, reason=reason)
        await self._publish(outcome("alert.failed", alert.referral_id, self.clock(), {
            "alertId": alert.id, "reason": reason, "channel": None, "recipient": None, "attempt": 0,
        }, "unroutable", alert.id))

    async def _resolved(self, alert: Alert) -> None:
        now = self.clock()
        matched = False
        for esc in list(self.store.escalations.values()):
            if esc.alert.deadline != alert.deadline or esc.status not in ("open", "acknowledged"):
                continue
            matched = True
            closed, pages = esc_rules.resolve(esc, alert.resolved_by or "resolved", now)
            await self.store.put_escalation(closed)
            log.info("alert resolved", alert_id=esc.alert.id, referral_id=alert.referral_id,
                     told=[p.contact for p in pages])
            self._dispatch(closed, pages)
        self.metrics.alerts.labels("resolved", "closed" if matched else "nothing-open").inc()

    # -- time and people ----------------------------------------------------------------------

    async def tick_all(self) -> None:
        async with self._lock:
            now = self.clock()
            for esc in list(self.store.escalations.values()):
                if esc.status != "open":
                    continue
                after, pages = esc_rules.tick(esc, self.rota, now)
                if after != esc:
                    await self.store.put_escalation(after)
                if pages:
                    log.info("alert escalated" if after.tier != esc.tier else "alert repeated",
                             alert_id=esc.alert.id, referral_id=esc.alert.referral_id, tier=after.tier,
                             contacts=[p.contact for p in pages])
                    self._dispatch(after, pages)
        self._gauge()

    async def acknowledge(self, alert_id: str, who: str) -> Escalation:
        """KeyError for an unknown alert, Conflict for one resolved or already acknowledged."""
        async with self._lock:
            now = self.clock()
            esc = esc_rules.acknowledge(self.store.escalations[alert_id], who, now)
            await self.store.put_escalation(esc)
            self.metrics.acknowledgements.inc()
            log.info("alert acknowledged", alert_id=alert_id, referral_id=esc.alert.referral_id, by=who)
            await self._publish(outcome("alert.acknowledged", esc.alert.referral_id, now, {
                "alertId": alert_id, "kind": esc.alert.kind, _topic_field(esc.alert): esc.alert.topic,
                "acknowledgedBy": who, "acknowledgedAt": utc_text(now),
            }, alert_id))
            self._dispatch(esc, esc_rules.acknowledged_pages(esc))
        self._gauge()
        return esc

    async def resolve(self, alert_id: str, reason: str, who: str) -> Escalation:
        """KeyError for an unknown alert, Conflict for one already resolved."""
        async with self._lock:
            esc, pages = esc_rules.resolve(self.store.escalations[alert_id], reason, self.clock())
            await self.store.put_escalation(esc)
            log.info("alert resolved", alert_id=alert_id, referral_id=esc.alert.referral_id, by=who, reason=reason)
            self._dispatch(esc, pages)
        self._gauge()
        return esc

    def open_alerts(self) -> list[Escalation]:
        """Alerts open or acknowledged, most urgent first: unacknowledged before acknowledged,
        then by due time (the latest-running first), governance flags by when they were raised."""
        live = [e for e in self.store.escalations.values() if e.status in ("open", "acknowledged")]
        return sorted(live, key=lambda e: (e.status == "acknowledged", e.alert.due_at or e.alert.raised_at,
                                           e.alert.referral_id))

    def _gauge(self) -> None:
        self.metrics.open_alerts.set(sum(e.status == "open" for e in self.store.escalations.values()))

    # -- sending ------------------------------------------------------------------------------

    def _dispatch(self, esc: Escalation, pages: list[Page]) -> None:
        for page in pages:
            contact = self.rota.contacts.get(page.contact)
            if contact is None:  # a contact taken out of the rota since it was paged
                continue
            channels = contact.channels()
            if page.purpose == "acknowledged":
                channels = tuple(c for c in channels if c == "pagerduty")
            if channels:
                task = asyncio.create_task(self._page(esc.alert, contact, page.purpose, channels))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Waits for every message under way (tests; a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _page(self, alert: Alert, contact: Contact, purpose: str, channels: tuple[str, ...]) -> None:
        results = await asyncio.gather(*(self._deliver(alert, contact, c, purpose) for c in channels))
        # Only a page (not a notice that it is over) escalates, and only when every channel was
        # tried here and failed: one begun before (a redelivery, a restart) is not a new failure.
        if not all(result is False for result in results) or purpose in ("resolved", "acknowledged"):
            return
        async with self._lock:
            esc = self.store.escalations.get(alert.id)
            if esc is None or esc.status != "open":
                return
            log.warning("contact unreachable", alert_id=alert.id, contact=contact.id)
            after, pages = esc_rules.tick(esc_rules.contact_unreachable(esc, contact.id), self.rota, self.clock())
            await self.store.put_escalation(after)
            self._dispatch(after, pages)

    async def _deliver(self, alert: Alert, contact: Contact, channel: str, purpose: str) -> bool | None:
        """One message on one channel, at most once ever: True when sent, False when it failed,
        None when it had been begun before (and is not sent again)."""
        message = Message(alert, contact.id, purpose, self._base_url, self.clock())
        key = f"{message.delivery_id}:{channel}"
        if key in self.store.deliveries:
            return None
        facts = {"alertId": alert.id, "referralId": alert.referral_id, "channel": channel,
                 "recipient": contact.id, "purpose": purpose, "deliveryId": message.delivery_id}
        try:
            await self.store.put_delivery(key, "sending", 0, message.now, **facts)
        except Exception as exc:  # noqa: BLE001 - not recorded, so not sent: at most once
            log.error("delivery not recorded, not sent", channel=channel, recipient=contact.id,
                      alert_id=alert.id, error=type(exc).__name__)
            self.metrics.deliveries.labels(channel, "failed").inc()
            return False
        error = ChannelError("no attempt", retryable=False)
        for attempt in range(1, self._retry.attempts + 1):
            message = replace(message, now=self.clock())
            started = time.monotonic()
            try:
                await asyncio.wait_for(self._channels.send(channel, contact, message), self._retry.timeout)
            except asyncio.TimeoutError:
                error = ChannelError(f"timed out after {self._retry.timeout:g} s", retryable=True)
            except ChannelError as exc:
                error = exc
            else:
                self.metrics.send_seconds.labels(channel).observe(time.monotonic() - started)
                await self._recorded(key, "sent", attempt, facts, None)
                return True
            if not error.retryable or attempt == self._retry.attempts:
                break
            self.metrics.deliveries.labels(channel, "retried").inc()
            log.warning("channel failed, will retry", channel=channel, recipient=contact.id,
                        alert_id=alert.id, attempt=attempt, reason=error.reason)
            await asyncio.sleep(self._retry.first_wait * 2 ** (attempt - 1))
        await self._recorded(key, "failed", attempt, facts, error.reason)
        return False

    async def _recorded(self, key: str, status: str, attempt: int, facts: dict[str, str], reason: str | None) -> None:
        now = self.clock()
        self.metrics.deliveries.labels(facts["channel"], status).inc()
        (log.info if status == "sent" else log.warning)(
            f"alert {status}", alert_id=facts["alertId"], referral_id=facts["referralId"],
            channel=facts["channel"], recipient=facts["recipient"], purpose=facts["purpose"],
            attempt=attempt, **({"reason": reason} if reason else {}))
        try:
            await self.store.put_delivery(key, status, attempt, now, **facts)
        except Exception as exc:  # noqa: BLE001 - the `sending` record already rules out a resend
            log.error("delivery outcome not recorded", error=type(exc).__name__, alert_id=facts["alertId"])
        data: dict[str, Any] = {**facts, "attempt": attempt}
        if reason:
            data["reason"] = reason
        await self._publish(outcome(f"alert.{status}", facts["referralId"], now, data,
                                    facts["deliveryId"], facts["channel"]))

    async def recover(self) -> None:
        """At start. A message whose send a crash cut short is not sent again: `alert.failed`
        says it may not have gone. A page decided but not yet begun (a crash between the two
        writes) is sent now."""
        for key, record in self.store.interrupted():
            facts = {k: record[k] for k in ("alertId", "referralId", "channel", "recipient", "purpose", "deliveryId")}
            self.metrics.deliveries.labels(record["channel"], "interrupted").inc()
            await self._recorded(key, "failed", int(record["attempt"]), facts, "interrupted")
        now = self.clock()
        for esc in list(self.store.escalations.values()):
            if esc.status in ("open", "acknowledged") or (esc.closed_at and now - esc.closed_at < RESUME_CLOSED):
                self._resume(esc)

    def _resume(self, esc: Escalation) -> None:
        """Sends again every message this escalation has decided on; `_deliver` skips each one
        already begun, so only those a crash kept from starting go out."""
        pages = [Page(c, "alert") for c in esc.paged]
        tiers = self.rota.tiers.get(esc.alert.audience, ())
        if esc.repeats and esc.tier is not None and esc.tier < len(tiers):
            pages += [Page(c, f"repeat-{esc.repeats}") for c in tiers[esc.tier].contacts]
        if esc.status == "acknowledged":
            pages += esc_rules.acknowledged_pages(esc)
        elif esc.status == "resolved":
            pages += [Page(c, "resolved") for c in esc.paged]
        self._dispatch(esc, pages)


def _topic_field(alert: Alert) -> str:
    return "rule" if alert.kind == "flagged" else "policy"
