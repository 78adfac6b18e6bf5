"""The bench's open-loop HTTP load generator, run in its own process so its
CPU never shares an event loop with what it measures.

    python -m dev_tooling.bench_latency --rate 500 --seconds 5 URL [URL ...]

Requests go out on a fixed schedule (request i at ``start + i / rate``,
cycling through the URLs) whether or not earlier ones have answered, and
each latency is taken from the *scheduled* send time: a stalled server
shows up as latency instead of as fewer requests (no coordinated omission).
The result is one JSON line on stdout (``LoadResult``), after a ``ready`` line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import aiohttp

TIMEOUT_S = 10.0
READY = "ready"  # the first stdout line, once imports are done


@dataclass
class LoadResult:
    rate: float
    seconds: float
    sent: int
    ok: int
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


async def _one(session: aiohttp.ClientSession, url: str, scheduled: float,
               latencies: list[float], errors: list[int]) -> None:
    try:
        async with session.get(url) as response:
            await response.read()
            ok = response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        ok = False
    if ok:
        latencies.append((time.perf_counter() - scheduled) * 1000)
    else:
        errors.append(1)


async def run_load(urls: list[str], rate: float, seconds: float) -> LoadResult:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors: list[int] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        start = time.perf_counter() + 0.05
        sent = 0
        while sent < total:
            now = time.perf_counter()
            # Launch everything that is due; sleeping per request would drift.
            while sent < total and start + sent / rate <= now:
                scheduled = start + sent / rate
                tasks.append(asyncio.create_task(_one(session, urls[sent % len(urls)], scheduled, latencies, errors)))
                sent += 1
            if sent < total:
                await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
    ordered = sorted(latencies)
    return LoadResult(rate, seconds, sent, len(latencies), len(errors),
                      percentile(ordered, 0.5), percentile(ordered, 0.99), percentile(ordered, 0.999))


def start_load(urls: list[str], rate: float, seconds: float) -> subprocess.Popen[str]:
    """The generator as a child process (it runs while the caller does other
    work), returned once it is about to send: its start-up is not in the window."""
    cmd = [sys.executable, "-m", "dev_tooling.bench_latency", "--rate", str(rate), "--seconds", str(seconds), *urls]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != READY:
        process.wait(timeout=30)
        raise RuntimeError(f"load generator failed to start: {process.stderr.read() if process.stderr else ''}")
    return process


def finish_load(process: subprocess.Popen[str]) -> LoadResult:
    out, err = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed ({process.returncode}): {err.strip()[-2000:]}")
    return LoadResult(**json.loads(out.strip().splitlines()[-1]))


def measure(urls: list[str], rate: float, seconds: float) -> LoadResult:
    return finish_load(start_load(urls, rate, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dev_tooling.bench_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    print(READY, flush=True)
    result = asyncio.run(run_load(args.urls, args.rate, args.seconds))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
