import asyncio

from podlink.services.deliver.lanes import Lanes
from podlink.services.deliver.outputs import Message


def _message(referral: str, offset: int) -> Message:
    return Message("epr.fhir-messages.v1", 0, offset, referral, f"b-{offset}", b"{}")


def test_one_referral_in_order_while_a_stuck_one_holds_up_only_itself():
    async def scenario() -> tuple[list[str], list[str]]:
        sent: list[str] = []
        release = asyncio.Event()

        async def deliver(message: Message) -> None:
            if message.referral_id == "STUCK":
                await release.wait()
            await asyncio.sleep(0.001 * (5 - message.offset % 5))  # later ones finish faster
            sent.append(message.bundle_id)

        lanes = Lanes(deliver)
        for offset, referral in enumerate(["STUCK", "A", "STUCK", "A", "B", "A"]):
            lanes.add(0, _message(referral, offset))
        await asyncio.sleep(0.1)
        before = list(sent)
        release.set()
        await asyncio.sleep(0.1)
        assert len(lanes) == 0  # every lane finished and went away
        return before, sent

    before, after = asyncio.run(scenario())
    assert [b for b in before if b in ("b-1", "b-3", "b-5")] == ["b-1", "b-3", "b-5"]
    assert "b-4" in before and "b-0" not in before and "b-2" not in before
    assert after.index("b-0") < after.index("b-2")


def test_dropping_a_partition_stops_its_lanes_only():
    async def scenario() -> list[str]:
        sent: list[str] = []
        hold = asyncio.Event()

        async def deliver(message: Message) -> None:
            await hold.wait()
            sent.append(message.bundle_id)

        lanes = Lanes(deliver)
        lanes.add("p0", _message("A", 0))
        lanes.add("p1", _message("B", 1))
        await asyncio.sleep(0.01)
        await lanes.drop({"p0"})
        hold.set()
        await asyncio.sleep(0.01)
        return sent

    assert asyncio.run(scenario()) == ["b-1"]
