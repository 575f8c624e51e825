from prometheus_client.parser import text_string_to_metric_families

from podlink.streams.core.deadlines import Deadline, alert_due_at
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.metrics import (
    DeadlineCounts,
    Metrics,
    reason_label,
)
from tests.support.episodes import T0, hours


def _deadline(ref: str, met: float | None = None, closed: float | None = None) -> Deadline:
    return Deadline(referral_id=ref, team_code="POD-CANTERBURY", starts_at=T0, due_at=T0 + hours(24),
                    at_risk_from=T0 + hours(18),
                    met_at=T0 + hours(met) if met is not None else None,
                    closed_at=T0 + hours(closed) if closed is not None else None)


def test_an_alert_is_late_by_the_time_since_its_threshold():
    d = _deadline("x")
    assert alert_due_at(d, "at-risk") == T0 + hours(18)
    assert alert_due_at(d, "breached") == T0 + hours(24)
    assert alert_due_at(_deadline("y", met=30), "resolved") == T0 + hours(30)
    assert alert_due_at(_deadline("z", closed=26), "resolved") == T0 + hours(26)


def test_dead_letter_reasons_fold_indices_and_positions_into_one_label():
    assert reason_label("value is not JSON (line 1, column 17)") == "value is not JSON (line N, column N)"
    assert reason_label("contract: data.network.3.phone: breaks the 'pattern' rule") == \
        "contract: data.network.N.phone: breaks the 'pattern' rule"


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = text_string_to_metric_families(metrics.exposition().decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_metrics_are_exposed_in_prometheus_text_format_with_their_labels():
    m = Metrics()
    m.record("spa.referral-events.v1", "uk.nhs.spa.referral.received", "applied")
    m.record("spa.referral-events.v1", "uk.nhs.spa.referral.received", "applied")
    m.dead_letter("value is not JSON (line 1, column 3)")
    m.alert("breached", 4.0)
    m.deadlines(DeadlineCounts(open_episodes=1, at_risk=0, breached=1))
    m.lag({("spa.referral-events.v1", 0): 5})
    samples = _samples(m)
    assert samples[("podlink_records_total", (("outcome", "applied"), ("topic", "spa.referral-events.v1"),
                                              ("type", "uk.nhs.spa.referral.received")))] == 2
    assert samples[("podlink_dead_letters_total", (("reason", "value is not JSON (line N, column N)"),))] == 1
    assert samples[("podlink_alert_latency_seconds_count", (("kind", "breached"),))] == 1
    assert samples[("podlink_deadlines_breached", ())] == 1
    assert samples[("podlink_open_episodes", ())] == 1
    assert samples[("podlink_consumer_lag", (("partition", "0"), ("topic", "spa.referral-events.v1")))] == 5


def test_a_revoked_partition_leaves_the_lag_gauge():
    m = Metrics()
    m.lag({("spa.referral-events.v1", 0): 5, ("spa.referral-events.v1", 1): 2})
    m.lag({("spa.referral-events.v1", 1): 0})
    lags = {k: v for k, v in _samples(m).items() if k[0] == "podlink_consumer_lag"}
    assert lags == {("podlink_consumer_lag", (("partition", "1"), ("topic", "spa.referral-events.v1"))): 0}


def test_the_position_is_after_the_last_record_processed_else_the_committed_offset():
    c = CatchUp(quiet_seconds=1)
    assert c.position("tp", committed=None) is None
    assert c.position("tp", committed=7) == 7
    c.processed("tp", 9, at=0.0)
    assert c.position("tp", committed=7) == 10
