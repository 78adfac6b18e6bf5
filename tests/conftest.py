"""Shared fixtures. The integration fixtures (real broker, real worker) live in
tests/integration/conftest.py so unit tests never touch Kafka."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def window_vectors() -> dict:
    import json

    path = SHARED / "testdata" / "window_semantics.json"
    if not path.exists():
        pytest.fail(f"reference vectors missing: {path} (../shared must sit beside the repo)")
    return json.loads(path.read_text())


SUMMARY_LINES: list[str] = []  # measured facts worth seeing in the run log (broker version, parity)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Unit tests first: they fail in seconds; the broker starts only after."""
    items.sort(key=lambda item: "tests/integration" in str(item.fspath))


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    for line in SUMMARY_LINES:
        terminalreporter.write_line(line)
