"""What to do after one delivery attempt: a pure decision, so every rule is tested without HTTP.

The rules (issue 9, BaRS in ../shared/DOMAIN.md section 3):
- a BaRS response message decides first, whatever the HTTP status: `ok` delivered,
  `transient-error` retried, `fatal-error` dead-lettered;
- otherwise 2xx delivered; 408, 429, 5xx, timeouts and refused connections retried with
  exponential backoff and full jitter (429 and 503 wait at least their Retry-After); any other
  status dead-lettered with the EPR's answer;
- retries are unlimited unless `max_attempts` bounds them; the last failed attempt of a
  bounded run is dead-lettered, so nothing is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RETRYABLE_STATUSES = frozenset({408, 429})
ResponseCode = Literal["ok", "transient-error", "fatal-error"]


@dataclass(frozen=True)
class Answer:
    """What the EPR answered to one attempt. `status` None: no HTTP answer at all (`failure`
    says why: timeout, refused, TLS ...)."""

    status: int | None
    response_code: ResponseCode | None = None  # MessageHeader.response.code, if a BaRS response
    retry_after: float | None = None  # seconds, from a Retry-After header
    failure: str | None = None


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 1.0
    max_seconds: float = 300.0
    max_attempts: int | None = None  # None: retry for ever


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Retry:
    delay: float
    reason: str


@dataclass(frozen=True)
class DeadLetter:
    reason: str


Decision = Delivered | Retry | DeadLetter


def decide(answer: Answer, attempts: int, backoff: Backoff, jitter: float) -> Decision:
    """The decision after `attempts` attempts (1 for the first), the last answered `answer`.

    `jitter` is a random number in [0, 1): the delay is a uniform draw up to the exponential
    ceiling ("full jitter"), so referrals that failed together do not retry together.
    """
    verdict = _verdict(answer)
    if verdict is None:
        return Delivered()
    retryable, reason = verdict
    if not retryable:
        return DeadLetter(reason)
    if backoff.max_attempts is not None and attempts >= backoff.max_attempts:
        return DeadLetter(f"{reason}; gave up after {attempts} attempts")
    return Retry(retry_delay(attempts, backoff, jitter, answer.retry_after), reason)


def retry_delay(attempts: int, backoff: Backoff, jitter: float, retry_after: float | None) -> float:
    # The exponent stops growing well past any cap: unlimited retries must not overflow.
    ceiling = min(backoff.max_seconds, backoff.base_seconds * 2.0 ** min(attempts - 1, 60))
    delay = ceiling * jitter
    # The EPR said when it can take more: never sooner, even past our own ceiling.
    return max(delay, retry_after) if retry_after is not None else delay


def _verdict(answer: Answer) -> tuple[bool, str] | None:
    """None when delivered; else (retryable, reason)."""
    status = answer.status
    if answer.response_code == "transient-error":
        return True, f"BaRS transient-error (HTTP {status})"
    if answer.response_code == "fatal-error":
        return False, f"BaRS fatal-error (HTTP {status})"
    if status is None:
        return True, answer.failure or "no answer"
    if 200 <= status < 300:
        return None
    if status in RETRYABLE_STATUSES or status >= 500:
        return True, f"HTTP {status}"
    return False, f"HTTP {status}"


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is not used by BaRS and is ignored."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
