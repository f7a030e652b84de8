"""Fuzz the coordinator's REST API from its own ``/openapi.json`` with schemathesis.

A real :class:`EmbeddedServer` runs in a thread of its own (schemathesis calls it over HTTP with
``requests``); every operation gets a bounded, derandomized (fixed-seed) set of generated requests,
valid and invalid, signed in as a real user. Every answer must be no 5xx, and conform to the document:
a documented status code, a JSON content type, a body matching the response schema, and invalid input
refused with a 4xx.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from switchboard.server import EmbeddedServer

#: generated requests per operation and generation mode (13 operations x 2 modes)
EXAMPLES = 16
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


#: A body too large for the server is refused with 413 (documented), a rejection like 400.
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 8,
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
            }
        },
    }
)


class ThreadedServer:
    """An EmbeddedServer on its own event loop in a daemon thread."""

    def __init__(self) -> None:
        # a generous REST rate limit: the fuzzer should reach the handlers, not only the 429 answer
        self.server = EmbeddedServer(rate_limit_per_second=10_000, rate_limit_burst=10_000)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fuzzed-server", daemon=True)

    def __enter__(self) -> EmbeddedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def live_server() -> Iterator[EmbeddedServer]:
    with ThreadedServer() as server:
        yield server


def test_every_operation_conforms_to_the_openapi_document(live_server: EmbeddedServer) -> None:
    schema = schemathesis.openapi.from_url(live_server.url + "/openapi.json", config=CONFIG)
    headers = {
        "X-Api-Key": live_server.api_key,
        "Authorization": f"Bearer {live_server.create_token('fuzzer')}",
    }
    session = requests.Session()
    failures: list[str] = []
    cases = 0
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document has an invalid operation: {result.err()}"
        operations.append(result.ok())
    assert len(operations) >= 13, [op.label for op in operations]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case[Any]) -> None:
                nonlocal cases
                cases += 1
                case.call_and_validate(
                    base_url=live_server.url, session=session, headers=headers, checks=CHECKS
                )

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # a check failed: note it, fuzz the others
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:2000]}")
    session.close()
    assert cases >= 300, cases  # the fuzzer really ran: a few hundred requests in all
    assert not failures, "\n\n".join(failures)
