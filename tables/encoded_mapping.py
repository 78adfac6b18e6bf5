"""A mapping that keeps typed values as bytes in another mapping.

The partition store holds raw bytes: a value is encoded once here, and the
same bytes go to RocksDB and to the changelog."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, MutableMapping, TypeVar

V = TypeVar("V")


class EncodedMapping(MutableMapping[str, V], Generic[V]):
    def __init__(self, inner: MutableMapping[str, bytes], encode: Callable[[V], bytes],
                 decode: Callable[[bytes], V]) -> None:
        self.inner = inner
        self.encode = encode
        self.decode = decode

    def __getitem__(self, key: str) -> V:
        return self.decode(self.inner[key])

    def get(self, key: str, default: V | None = None) -> V | None:  # one lookup, not contains + getitem
        raw = self.inner.get(key)
        return default if raw is None else self.decode(raw)

    def __setitem__(self, key: str, value: V) -> None:
        self.inner[key] = self.encode(value)

    def __delitem__(self, key: str) -> None:
        del self.inner[key]

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def __iter__(self) -> Iterator[str]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)
