"""A flush's outputs against the real broker: an output the producer refuses
is reported with its reason, the others are sent and acknowledged."""
from __future__ import annotations

import asyncio

from agents.outbox import Outbox
from kafka_plumbing import clients
from kafka_plumbing.log_reader import read_all
from kafka_plumbing.settings import Settings
from kafka_plumbing.topics import TopicSpec, ensure_topics


def test_a_refused_output_is_reported_and_the_rest_are_acknowledged(isolated: Settings) -> None:
    topic = f"{isolated.topic_prefix}.outbox"

    async def run() -> list:
        await ensure_topics(isolated, [TopicSpec(topic, 1, {})])
        producer = clients.producer(isolated, max_request_size=4096)
        await producer.start()
        try:
            outbox = Outbox()
            outbox.add(topic, b"a", b"small")
            outbox.add(topic, b"b", b"x" * 10_000)  # larger than the producer takes: refused by send itself
            outbox.add(topic, None, b"also small")
            failures = await outbox.send(producer)
            assert len(outbox) == 0
            return failures
        finally:
            await producer.stop()

    failures = asyncio.run(run())
    assert [(o.key, type(exc).__name__) for o, exc in failures] == [(b"b", "MessageSizeTooLargeError")]
    assert sorted(r.value for r in asyncio.run(read_all(isolated, topic, 30))) == [b"also small", b"small"]
