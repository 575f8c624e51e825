"""One lane per referral: its messages are sent one after another, in the order read, while
other referrals' lanes run beside it. A referral whose EPR answers keep failing holds up only
itself: blocking is per referral, not per partition."""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from podlink.services.deliver.outputs import Message


@dataclass
class Lane:
    partition: Hashable
    queue: deque[Message] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class Lanes:
    def __init__(self, deliver: Callable[[Message], Awaitable[None]]) -> None:
        self._deliver = deliver
        self._lanes: dict[str, Lane] = {}

    def add(self, partition: Hashable, message: Message) -> None:
        lane = self._lanes.get(message.referral_id)
        if lane is None:
            lane = self._lanes[message.referral_id] = Lane(partition)
        lane.queue.append(message)
        if lane.task is None:
            lane.task = asyncio.create_task(self._run(message.referral_id, lane),
                                            name=f"deliver-lane-{message.referral_id}")

    async def _run(self, referral_id: str, lane: Lane) -> None:
        try:
            while lane.queue:
                await self._deliver(lane.queue[0])
                lane.queue.popleft()
        finally:
            if self._lanes.get(referral_id) is lane:
                del self._lanes[referral_id]

    async def drop(self, partitions: set[Hashable]) -> None:
        """Stop the lanes of partitions this consumer no longer owns; their unfinished messages
        were not committed, so the new owner sends them."""
        dropped = [lane for lane in self._lanes.values() if lane.partition in partitions]
        for lane in dropped:
            if lane.task is not None:
                lane.task.cancel()
        await asyncio.gather(*(lane.task for lane in dropped if lane.task is not None), return_exceptions=True)

    async def close(self) -> None:
        await self.drop({lane.partition for lane in self._lanes.values()})

    def __len__(self) -> int:
        return len(self._lanes)
