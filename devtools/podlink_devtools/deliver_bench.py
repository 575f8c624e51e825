"""How fast `podlink deliver` empties the FHIR topic into a fast EPR, and whether a referral
stuck on 503 slows the others: `python -m podlink_devtools.deliver_bench [MESSAGES] [REFERRALS]
[--stuck]`. Every message goes to partition 0, so the others share the stuck referral's
partition. Embedded Tansu; the EPR is an aiohttp server in this process."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time

from aiohttp import web
from kafka import KafkaProducer

from podlink.services.embedded_broker import EmbeddedBroker, free_port

FHIR_TOPIC = "epr.fhir-messages.v1"
STUCK = "stuck-"


def _serve(port: int, delivered: dict[str, float]) -> None:
    async def process(request: web.Request) -> web.Response:
        bundle = json.loads(await request.read())
        if bundle["id"].startswith(STUCK):
            return web.json_response({"resourceType": "OperationOutcome", "issue": []}, status=503)
        delivered[bundle["id"]] = time.monotonic()
        return web.json_response({"resourceType": "Bundle"})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/fhir/$process-message", process)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("messages", type=int, nargs="?", default=2000)
    parser.add_argument("referrals", type=int, nargs="?", default=200)
    parser.add_argument("--stuck", action="store_true", help="referral 0's EPR answers 503 for ever")
    args = parser.parse_args()
    delivered: dict[str, float] = {}
    port = free_port()
    threading.Thread(target=_serve, args=(port, delivered), daemon=True).start()
    with EmbeddedBroker() as broker:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PODLINK_")},
               "PODLINK_KAFKA_BOOTSTRAP": broker.bootstrap, "PODLINK_EPR_URL": f"http://127.0.0.1:{port}/fhir",
               "PODLINK_LOG_FORMAT": "json", "PODLINK_DELIVER_WEB_PORT": str(free_port()),
               "PODLINK_EPR_BACKOFF_SECONDS": "0.2", "PODLINK_EPR_BACKOFF_MAX_SECONDS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "podlink.services.cli", "deliver"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(6)  # deliver joins its group
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
            started = time.monotonic()
            wanted = 0
            for n in range(args.messages):
                stuck = args.stuck and n % args.referrals == 0
                wanted += not stuck
                bundle = {"resourceType": "Bundle", "id": f"{STUCK if stuck else ''}b-{n}", "type": "message",
                          "pad": "x" * 6000}  # about the size of a referral message
                producer.send(FHIR_TOPIC, key=f"REF-{n % args.referrals}".encode(),
                              value=json.dumps(bundle).encode(), partition=0)
            producer.flush()
            producer.close()
            while len(delivered) < wanted and time.monotonic() - started < 300:
                time.sleep(0.1)
            elapsed = max(delivered.values(), default=started) - started
            print(f"{len(delivered)}/{wanted} delivered in {elapsed:.1f} s: {len(delivered) / elapsed:.0f} "
                  f"messages/s ({args.referrals} referrals on one partition"
                  f"{', one stuck on 503' if args.stuck else ''})")
        finally:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    main()
