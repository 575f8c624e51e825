"""Re-sending dead-lettered messages once the cause is fixed (`podlink dead-letters redrive`):
the same request, X-Request-Id included, the same policy, with a bounded number of attempts
(an operator waits for the answer)."""
from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import datetime, timezone

from aiokafka import AIOKafkaProducer

from podlink.services.deliver.http_client import EprClient
from podlink.services.deliver.outputs import Message, outcome_event
from podlink.services.deliver.policy import DeadLetter, Delivered, decide
from podlink.services.deliver.settings import DeliverSettings
from podlink.services.kafka_options import client_options
from podlink.streams.worker.settings import Settings

# Without PODLINK_EPR_MAX_ATTEMPTS, an interactive redrive tries each message this many times.
REDRIVE_ATTEMPTS = 3


async def redrive(kafka: Settings, settings: DeliverSettings, messages: list[Message]) -> list[str]:
    """Each message's result, in order: `delivered`, `refused` (why is in the outcome event and
    on stdout), or `skipped` (an earlier message of its referral was refused)."""
    backoff = replace(settings.backoff(), max_attempts=settings.epr_max_attempts or REDRIVE_ATTEMPTS)
    producer = AIOKafkaProducer(acks="all", client_id="podlink-redrive", **client_options(kafka))
    await producer.start()
    results: list[str] = []
    refused: set[str] = set()
    try:
        async with EprClient(settings) as client:
            for message in messages:
                if message.referral_id in refused:
                    results.append("skipped")
                    continue
                attempts = 0
                while True:
                    attempts += 1
                    reply = await client.post(message.bundle_id, message.referral_id, message.value)
                    decision = decide(reply.answer, attempts, backoff, random.random())
                    if isinstance(decision, (Delivered, DeadLetter)):
                        break
                    await asyncio.sleep(decision.delay)
                delivered = isinstance(decision, Delivered)
                reason = None if delivered else decision.reason  # type: ignore[union-attr]
                event = outcome_event(message, delivered, attempts, reply.answer, datetime.now(timezone.utc), reason)
                await producer.send_and_wait(event.topic, event.value, key=event.key, headers=event.headers)
                results.append("delivered" if delivered else "refused")
                if not delivered:
                    refused.add(message.referral_id)
    finally:
        await producer.stop()
    return results
