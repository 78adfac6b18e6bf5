"""What a batch of events sends, held until the batch is flushed.

The agent never waits on the producer per event: a batch's outputs are
handed to the producer together and acknowledged together, before the
state they go with is written and before the batch's offsets are acked."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

Headers = list[tuple[str, bytes]]
YIELD_EVERY = 256  # outputs handed to the producer between two turns of the event loop


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers | None = None
    partition: int | None = None


@dataclass
class Outbox:
    pending: list[Output] = field(default_factory=list)

    def add(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None,
            partition: int | None = None) -> None:
        self.pending.append(Output(topic, key, value, headers, partition))

    def __len__(self) -> int:
        return len(self.pending)

    async def send(self, producer: AIOKafkaProducer) -> list[tuple[Output, BaseException]]:
        """Send everything held and wait for the acknowledgements; returns what failed."""
        outputs, self.pending = self.pending, []
        futures: list[asyncio.Future] = []
        for i, o in enumerate(outputs, start=1):
            try:
                futures.append(await producer.send(o.topic, o.value, key=o.key, headers=o.headers,
                                                   partition=o.partition))
            except Exception as exc:  # refused before sending (too large, unknown topic): one output fails
                failed: asyncio.Future = asyncio.get_running_loop().create_future()
                failed.set_exception(exc)
                futures.append(failed)
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a large flush does not hold the loop: reads go on
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [(o, r) for o, r in zip(outputs, results) if isinstance(r, BaseException)]
