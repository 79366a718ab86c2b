"""The coordinator answers as its OpenAPI document says, for any request, with every role's key.

schemathesis generates requests from ``/openapi.json`` (valid ones, and ones that break the
schema in one place) and runs all its checks on each answer: no 5xx; status codes, content
types, headers and bodies as documented; schema-valid requests accepted and invalid ones
refused; and, over sequences of linked calls, that what was created can be read and what was
deleted is gone.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.schemas import BaseSchema

from tests.fuzz.conftest import stateful_settings

# One test walks every operation of a role (about 100 cases each): more than the default 120 s
# on a loaded two-core machine, and it grows with the API.
pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(900)]

# The event streams (GET .../events/stream) answer text/event-stream and may never end: a fuzzed
# call would hang. tests/e2e/test_event_streams.py and tests/server/test_state_events.py test them.
STREAMS = r"/stream$"

schema = schemathesis.pytest.from_fixture("fuzz_schema").exclude(path_regex=STREAMS)


@schema.parametrize()
def test_every_operation_answers_as_documented(case: Case) -> None:
    case.call_and_validate()


def test_linked_calls_answer_as_documented(fuzz_schema: BaseSchema) -> None:
    fuzz_schema.exclude(path_regex=STREAMS).as_state_machine().run(settings=stateful_settings())
