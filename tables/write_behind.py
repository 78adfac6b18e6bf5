"""Write-behind state: a batch of a partition's events is applied in memory,
and each key it changed is written once, when the batch is flushed.

``Overlay`` sits over a backing mapping (a store of encoded bytes online,
through ``EncodedMapping``): reads go to the overlay first, then to the
backing; writes and deletes stay in the overlay until ``flush`` hands them
over, once per key, in the order keys were first changed.  Between flushes
the processor works on live objects, exactly as the offline replay does on
plain dicts; the state codec is lossless, so where the flushes fall changes
no value served (``tests/test_write_behind.py`` checks it against replay).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterator, MutableMapping, TypeVar

from tables.processor import Stores

V = TypeVar("V")


class _Deleted:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETED"


DELETED = _Deleted()


class Overlay(MutableMapping[str, V], Generic[V]):
    def __init__(self, backing: MutableMapping[str, V], keep: int = 4096) -> None:
        self.backing = backing
        self.dirty: dict[str, V | _Deleted] = {}
        # Values read or flushed lately, as live objects: the next batch does
        # not decode them again.  Every change goes through ``dirty``.
        self.clean: dict[str, V] = {}
        self.keep = keep

    def get(self, key: str, default: V | None = None) -> V | None:
        value = self.dirty.get(key)
        if value is None:
            if key in self.dirty:  # None stored on purpose
                return None
            found = self.clean.get(key)
            if found is None:
                found = self.backing.get(key)
                if found is not None:
                    self._keep(key, found)
            return default if found is None else found
        return default if value is DELETED else value  # type: ignore[return-value]

    def _keep(self, key: str, value: V) -> None:
        if len(self.clean) >= self.keep:  # drop the older half
            for old in list(self.clean)[: self.keep // 2]:
                del self.clean[old]
        self.clean[key] = value

    def __getitem__(self, key: str) -> V:
        value = self.get(key, DELETED)  # type: ignore[arg-type]
        if value is DELETED:
            raise KeyError(key)
        return value  # type: ignore[return-value]

    def __setitem__(self, key: str, value: V) -> None:
        self.dirty[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.dirty[key] = DELETED

    def pop(self, key: str, default: V | None = None) -> V | None:  # type: ignore[override]
        value = self.get(key, DELETED)  # type: ignore[arg-type]
        if value is DELETED:
            return default
        self.dirty[key] = DELETED
        return value  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        if key in self.dirty:
            return self.dirty[key] is not DELETED  # type: ignore[index]
        return key in self.clean or key in self.backing

    def __iter__(self) -> Iterator[str]:
        for key in self.backing:
            if key not in self.dirty:
                yield key
        for key, value in self.dirty.items():
            if value is not DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flush(self) -> dict[str, V | _Deleted]:
        """The changed keys (``DELETED`` for removed ones), written to the backing mapping."""
        changed, self.dirty = self.dirty, {}
        for key, value in changed.items():
            if value is DELETED:
                try:  # not pop: that would decode what is dropped
                    del self.backing[key]
                except KeyError:
                    pass
                self.clean.pop(key, None)
            else:
                self.backing[key] = value  # type: ignore[assignment]
                if value is not None:
                    self._keep(key, value)  # type: ignore[arg-type]
        return changed


@dataclass
class Flushed:
    """What one flush wrote, per store: view state key -> changed entities, clocks, seen buckets."""

    views: dict[str, dict[str, object]]
    clocks: dict[str, object]
    seen: dict[str, object]

    @property
    def keys(self) -> int:
        return sum(len(v) for v in self.views.values()) + len(self.clocks) + len(self.seen)


class WriteBehind:
    """``Stores`` whose writes are held until ``flush``."""

    def __init__(self, backing: Stores) -> None:
        self.views = {key: Overlay(mapping) for key, mapping in backing.views.items()}
        self.clocks: Overlay = Overlay(backing.clocks)
        self.seen: Overlay = Overlay(backing.seen)
        self.stores = Stores(views=self.views, clocks=self.clocks, seen=self.seen)  # type: ignore[arg-type]

    @property
    def pending(self) -> int:
        return sum(len(o.dirty) for o in self.views.values()) + len(self.clocks.dirty) + len(self.seen.dirty)

    def flush(self) -> Flushed:
        return Flushed(
            views={key: overlay.flush() for key, overlay in self.views.items()},
            clocks=self.clocks.flush(),
            seen=self.seen.flush(),
        )
