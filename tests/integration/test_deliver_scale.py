"""Two `podlink deliver` processes in one group share the messages: one joins mid-stream and the
other leaves (SIGTERM); every message reaches the EPR and each referral's messages first arrive
in order."""
from __future__ import annotations

import json
import uuid

from kafka import KafkaProducer

from tests.integration.test_deliver import _deliver
from tests.support.broker_io import wait_until
from tests.support.epr_server import FakeEpr, Reply

REFERRALS, PER_REFERRAL = 12, 15


def test_two_delivers_share_the_work_through_a_rebalance(broker, tmp_path):
    p = f"S{uuid.uuid4().hex[:8]}-"
    with FakeEpr() as epr:
        slow = [Reply(200, hang=0.5)]  # each lane takes 7.5 s: work is left, and in flight, at the rebalance
        epr.script = {f"{p}{r}-{n:02d}": slow for r in range(REFERRALS) for n in range(PER_REFERRAL)}
        first = _deliver(broker.bootstrap, epr, f"deliver-{p}", tmp_path / "a")
        second = _deliver(broker.bootstrap, epr, f"deliver-{p}", tmp_path / "b")
        for service in (first, second):
            service.env["PODLINK_EPR_TIMEOUT_SECONDS"] = "5"
        try:
            first.start()
            first.wait_for_log(lambda line: line.get("event") == "deliver started", timeout=60)
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
            for n in range(PER_REFERRAL):
                for r in range(REFERRALS):
                    bundle = {"resourceType": "Bundle", "id": f"{p}{r}-{n:02d}", "type": "message"}
                    producer.send("epr.fhir-messages.v1", key=f"{p}{r}".encode(), value=json.dumps(bundle).encode())
            producer.flush(30)
            producer.close()
            wait_until(lambda: len(set(epr.ids(p))) >= 20, 60, "the first deliver started sending")
            second.start()
            second.wait_for_log(lambda line: line.get("event") == "message delivered", timeout=90)
            first.stop()  # leaves the group mid-stream: the second takes its partitions
            wait_until(lambda: len(set(epr.ids(p))) == REFERRALS * PER_REFERRAL, 120, "every message delivered")
        finally:
            first.stop()
            second.stop()
        arrivals = epr.ids(p)
        for r in range(REFERRALS):
            mine = [i for i in arrivals if i.startswith(f"{p}{r}-")]
            firsts = list(dict.fromkeys(mine))  # first arrival of each message, in arrival order
            assert firsts == sorted(firsts), f"referral {r} out of order: {firsts}"
        assert any(line.get("event") == "message delivered" for line in second.log_lines())
