"""Schema-driven fuzzing of API v1 with schemathesis: whatever it sends, never a 5xx, and
every answer is one the OpenAPI document describes (status code, content type, body).

The WSGI app runs in-process against the test database; Django's connection-closing signal
handlers are detached the way Django's test client detaches them, so requests share the
test's transaction.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from beads.models import BeadStatus
from gastown.api.auth import api_token_create
from gastown.models import AgentRole
from tests.factories import AgentFactory, BeadFactory, ConvoyFactory, RigFactory, TownFactory

#: What the hand-written schema promises about responses: only documented status codes, JSON
#: where it says JSON, bodies that match their schema.
CONFORMANCE = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def wsgi_app(db):
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi_app)


@pytest.fixture
def token(db):
    town = TownFactory(slug="fuzz")
    rig = RigFactory(town=town, name="web", repo="acme/web")
    ConvoyFactory(town=town, rig=rig)
    for i in range(3):
        bead = BeadFactory(town=town, rig=rig, status=BeadStatus.IN_PROGRESS)
        AgentFactory(town=town, rig=rig, name=f"cat-{i}", hooked_bead=bead)
    AgentFactory(town=town, rig=rig, name="ref", role=AgentRole.REFINERY)
    _, plain = api_token_create(town=town, name="fuzz")
    return plain


FUZZ_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


# schemathesis's pytest integration (from_fixture) does not run under pytest 9, so the test
# draws cases from its hypothesis strategies directly: same generation, same schema.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_answers_5xx_and_answers_as_documented(api_schema, token, mode):
    seen: set[tuple[str, int]] = set()

    # One hypothesis run per operation, so each gets its share of the examples by
    # construction: in one run over st.one_of(...), which branches hypothesis draws depends
    # on the string and number literals of every module the process has loaded (it mixes
    # them into its draws), so adding any module could starve an operation. Random agent
    # names only ever meet 404, so the agent operations are also aimed at real agents.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    strategies = [op.as_strategy(generation_mode=mode) for op in operations] + [
        op.as_strategy(generation_mode=mode, path_parameters={"name": name})
        for op in operations
        if op.path.startswith("/agents/")
        for name in ("cat-0", "ref")
    ]

    def call(case):
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        seen.add((case.operation.label, response.status_code))
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        case.validate_response(response, checks=CONFORMANCE)

    for strategy in strategies:

        @given(case=strategy)
        @FUZZ_SETTINGS
        def run(case):
            call(case)

        run()
    # The fuzz reached every operation, and not only its error paths.
    labels = {label for label, _ in seen}
    assert len(labels) == len(operations)
    if mode == GenerationMode.POSITIVE:
        assert any(200 <= status < 300 for _, status in seen)
