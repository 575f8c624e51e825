import pytest

from podlink.services.deliver.policy import (
    Answer, Backoff, DeadLetter, Delivered, Retry, decide, parse_retry_after, retry_delay,
)

UNLIMITED = Backoff(base_seconds=1.0, max_seconds=60.0)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status):
    assert decide(Answer(status), 1, UNLIMITED, 0.5) == Delivered()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_408_429_and_5xx_are_retried(status):
    assert isinstance(decide(Answer(status), 1, UNLIMITED, 0.5), Retry)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 413, 415, 422, 300, 302])
def test_other_statuses_are_dead_letters(status):
    assert decide(Answer(status), 1, UNLIMITED, 0.5) == DeadLetter(f"HTTP {status}")


@pytest.mark.parametrize("failure", ["timeout", "connection failed (ClientConnectorError)"])
def test_no_answer_is_retried(failure):
    assert decide(Answer(None, failure=failure), 3, UNLIMITED, 0.5) == Retry(2.0, failure)


def test_bars_transient_error_is_retried_whatever_the_status():
    assert isinstance(decide(Answer(200, "transient-error"), 1, UNLIMITED, 0.5), Retry)
    assert isinstance(decide(Answer(400, "transient-error"), 1, UNLIMITED, 0.5), Retry)


def test_bars_fatal_error_is_a_dead_letter_whatever_the_status():
    assert decide(Answer(200, "fatal-error"), 1, UNLIMITED, 0.5) == DeadLetter("BaRS fatal-error (HTTP 200)")
    assert isinstance(decide(Answer(503, "fatal-error"), 1, UNLIMITED, 0.5), DeadLetter)


def test_bars_ok_with_2xx_is_delivered():
    assert decide(Answer(200, "ok"), 1, UNLIMITED, 0.5) == Delivered()


def test_backoff_doubles_from_the_base_with_full_jitter():
    # ceiling 1, 2, 4, 8 s for attempts 1..4; jitter 0.5 takes half of it
    assert [retry_delay(n, UNLIMITED, 0.5, None) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_delay(3, UNLIMITED, 0.0, None) == 0.0
    assert retry_delay(3, UNLIMITED, 0.999, None) == pytest.approx(3.996)


def test_backoff_is_capped():
    # attempt 10: 1 * 2**9 = 512 s, capped at 60
    assert retry_delay(10, UNLIMITED, 1.0, None) == 60.0


def test_retry_after_is_a_floor():
    assert decide(Answer(429, retry_after=7.0), 1, UNLIMITED, 0.5) == Retry(7.0, "HTTP 429")
    # a Retry-After shorter than our own backoff does not shorten it
    assert decide(Answer(503, retry_after=0.1), 4, UNLIMITED, 0.5) == Retry(4.0, "HTTP 503")


def test_unlimited_by_default():
    assert isinstance(decide(Answer(500), 10_000, UNLIMITED, 0.5), Retry)


def test_max_attempts_bounds_retries_and_then_dead_letters():
    bounded = Backoff(1.0, 60.0, max_attempts=3)
    assert isinstance(decide(Answer(500), 2, bounded, 0.5), Retry)
    assert decide(Answer(500), 3, bounded, 0.5) == DeadLetter("HTTP 500; gave up after 3 attempts")


@pytest.mark.parametrize("text,expected", [("5", 5.0), (" 2.5 ", 2.5), ("0", 0.0), (None, None),
                                           ("-1", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)])
def test_retry_after_header(text, expected):
    assert parse_retry_after(text) == expected
