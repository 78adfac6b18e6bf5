"""What a batch of events sends, held until the batch is flushed.

The agent never waits on the producer per event: a batch's outputs are
handed to the producer together and acknowledged together, before the
state they go with is written and before the batch's offsets are acked."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

Headers = list[tuple[str, bytes]]


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
        futures = [await producer.send(o.topic, o.value, key=o.key, headers=o.headers, partition=o.partition)
                   for o in outputs]
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [(o, r) for o, r in zip(outputs, results) if isinstance(r, BaseException)]
