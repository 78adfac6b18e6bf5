"""Which worker consumes which partition of the source logs: the ingest
group's assignor decides it and tells every member, so any worker can route
a read to the owner of a key.

Every member's join metadata carries its URL.  The leader gives partition
``p`` of every source log to the same member (members ordered by URL, so a
worker restarted at the same address gets its partitions, and its local
state, back), and sends the whole map to everyone in the assignment's user
data."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata


@dataclass
class Placement:
    """The last assignment this worker received, and whether its partitions are ready to serve."""

    url: str
    owners: dict[str, dict[int, str]] = field(default_factory=dict)  # topic -> partition -> worker URL
    assigned: frozenset[TopicPartition] = frozenset()
    ready: bool = False  # joined, and the assigned partitions restored; False while rebalancing
    # Told when a rebalance starts or ends: the worker's read process learns of it at once.
    on_change: Callable[[], None] | None = None

    def owner(self, topic: str, partition: int) -> str | None:
        return self.owners.get(topic, {}).get(partition)

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


class IngestAssignor(AbstractPartitionAssignor):
    name = "featurestream-ingest"
    version = 0

    def __init__(self, placement: Placement) -> None:
        self.placement = placement

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:  # type: ignore[override]
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), self.placement.url.encode())

    def assign(self, cluster: ClusterMetadata,  # type: ignore[override]
               members: Mapping[str, ConsumerProtocolMemberMetadata]) -> dict[str, ConsumerProtocolMemberAssignment]:
        by_url = sorted(members, key=lambda member: (members[member].user_data, member))
        urls = {member: members[member].user_data.decode() for member in members}
        owned: dict[str, dict[str, list[int]]] = {member: {} for member in members}
        owners: dict[str, dict[int, str]] = {}
        topics = sorted({t for m in members.values() for t in m.subscription})
        for topic in topics:
            subscribed = [m for m in by_url if topic in members[m].subscription]
            for partition in sorted(cluster.partitions_for_topic(topic) or ()):
                member = subscribed[partition % len(subscribed)]
                owned[member].setdefault(topic, []).append(partition)
                owners.setdefault(topic, {})[partition] = urls[member]
        user_data = json.dumps(owners).encode()
        return {member: ConsumerProtocolMemberAssignment(self.version, sorted(owned[member].items()), user_data)
                for member in members}

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:  # type: ignore[override]
        owners = json.loads(assignment.user_data or b"{}")
        self.placement.owners = {topic: {int(p): url for p, url in parts.items()} for topic, parts in owners.items()}
        self.placement.assigned = frozenset(TopicPartition(topic, p) for topic, parts in assignment.assignment
                                            for p in parts)
