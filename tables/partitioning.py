"""Which partition a key belongs in: Kafka's default partitioner (murmur2 of
the key's bytes), as every producer of the product keys its records.

Pure, so the engine (validation, replay) and the web's request routing
decide with one function.  Written from Kafka's ``Utils.murmur2``: 32-bit
MurmurHash2 with Kafka's seed, the sign bit dropped, modulo the partitions."""
from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 as an unsigned 32-bit value."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def key_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner puts ``key`` (UTF-8) in."""
    return (murmur2(key.encode("utf-8", "surrogatepass")) & 0x7FFFFFFF) % partitions
