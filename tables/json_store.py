"""A mapping that keeps values as JSON bytes in another mapping.

The Faust tables hold raw bytes: the state is serialized once here, and the
same bytes go to RocksDB and to the changelog (Faust's json codec would encode
each write twice, once for the store and once for the changelog)."""
from __future__ import annotations

import json
from typing import Any, Iterator, MutableMapping


class JsonMapping(MutableMapping[str, Any]):
    def __init__(self, inner: MutableMapping[str, bytes]) -> None:
        self.inner = inner

    def __getitem__(self, key: str) -> Any:
        return json.loads(self.inner[key])

    def get(self, key: str, default: Any = None) -> Any:  # one lookup, not contains + getitem
        raw = self.inner.get(key)
        return default if raw is None else json.loads(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self.inner[key] = json.dumps(value, separators=(",", ":")).encode()

    def __delitem__(self, key: str) -> None:
        del self.inner[key]

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def __iter__(self) -> Iterator[str]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)
