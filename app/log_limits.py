"""Repeated client errors, held to one line per interval.

While a broker is away, aiokafka retries its metadata and fetch requests
without backing off (aio-libs/aiokafka#496) and logs every attempt: about
4,000 lines a second per worker here, which buries what matters and fills
disks.  The first line of each kind passes; the next one after the interval
says how many like it were held back."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

NOISY = ("aiokafka",)
EVERY_S = 5.0


class RepeatLimiter(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...] = NOISY, every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.every_s = every_s
        self.clock = clock
        self.kinds: dict[tuple[str, int, str], tuple[float, int]] = {}  # kind: (last passed, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        kind = (record.name, record.levelno, str(record.msg))  # the template, not its arguments
        now = self.clock()
        seen = self.kinds.get(kind)
        if seen is not None and now - seen[0] < self.every_s:
            self.kinds[kind] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} [{seen[1]} more like it in the last {now - seen[0]:.0f}s not logged]"
        self.kinds[kind] = (now, 0)
        return True


def install(root: logging.Logger) -> None:
    """On every handler of ``root``: a logger's own filters miss its children's records."""
    limiter = RepeatLimiter()
    for handler in root.handlers:
        handler.addFilter(limiter)
