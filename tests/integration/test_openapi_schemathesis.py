"""schemathesis against ``GET /openapi.json`` of a real worker: requests
generated from the description (valid ones and ones that break it) must get
no 5xx, only the status codes and content types the description lists, and
bodies that match its schemas."""
from __future__ import annotations

from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.modes import GenerationMode

from tests.conftest import SUMMARY_LINES
from tests.integration.conftest import Worker

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 40  # per operation: 10 operations, well under a minute against a local worker


MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def test_every_answer_is_as_the_openapi_describes(worker: Worker) -> None:
    # Operation by operation with Hypothesis directly: schemathesis's lazy
    # pytest loader (from_fixture) fails on pytest 9 ("no attribute _nodeid").
    schema = schemathesis.openapi.from_url(worker.url + "/openapi.json", timeout=10)
    statuses: Counter[str] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    # every route but /openapi.json itself, which schemathesis leaves out
    assert len(operations) >= 9, [op.label for op in operations]
    for operation in operations:
        strategy = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in MODES))

        @given(case=strategy)
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def call(case: Any) -> None:
            response = case.call_and_validate(checks=CHECKS, timeout=15)
            statuses[f"{case.method} {case.operation.path} {response.status_code}"] += 1

        call()
    SUMMARY_LINES.append(f"schemathesis on /openapi.json: {sum(statuses.values())} requests over "
                         f"{len(operations)} operations, no 5xx, every answer as described: "
                         + ", ".join(f"{k} x{n}" for k, n in sorted(statuses.items())))
