"""Schema-driven fuzzing of API v1 with schemathesis: whatever it sends, never a 5xx, and the
OpenAPI document and the API agree both ways: every answer is one the document describes
(status code, content type, body), what the document calls invalid is refused, and what it
calls valid is accepted (or meets a documented refusal that depends on the town's state).

Two runs: single requests drawn for every operation, and stateful sequences that follow the
document's links (an assignment's bead is reported done, the new MR is reviewed, a created
bead is blocked by the next...). Both are bounded in examples, so the file runs in well under
a minute.

The WSGI app runs in-process against the test database; Django's connection-closing signal
handlers are detached the way Django's test client detaches them, so requests share the
test's transaction.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis import GenerationMode, checks
from schemathesis.core.failures import FailureGroup

from beads.models import Bead, BeadStatus
from gastown.api.auth import api_token_create
from gastown.models import Agent, AgentRole, AgentStatus
from tests.factories import (
    AgentFactory,
    BeadFactory,
    ConvoyFactory,
    MergeRequestFactory,
    RigFactory,
    TownFactory,
)

#: The document's promises about answers, and about which requests are valid.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]
#: Documented 400s that no schema can express because they depend on the town's state: a
#: PR of another repository than the bead's rig, a convoy that is no longer open, a link to a
#: bead that is not an open issue or that would close a cycle, a rig the convoy does not use.
STATE_DEPENDENT_400 = {
    ("POST /agents/{name}/done", "pr_url"),
    ("POST /beads", "convoy"),
    ("POST /beads", "rig"),
    ("POST /beads", "blocks"),
    ("POST /beads", "blocked_by"),
}
AGENTS = ("cat-0", "cat-1", "cat-2")
REFINERY = "ref"


def _state_dependent(case: Any, response: Any) -> bool:
    if response.status_code != 400:
        return False
    field = (response.json().get("field") or "").split("[")[0]
    return (case.operation.label, field) in STATE_DEPENDENT_400


def validate(case: Any, response: Any) -> None:
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    case.validate_response(response, checks=CHECKS)
    try:
        case.validate_response(response, checks=[checks.positive_data_acceptance])
    except FailureGroup:
        if not _state_dependent(case, response):
            raise


@pytest.fixture(autouse=True)
def draws_independent_of_the_code_base(monkeypatch):
    """Hypothesis mixes in literals it finds in every loaded local module, so what it draws
    (and which reports a scenario reaches) changed with any code change elsewhere. The fuzz
    draws from the schema and its seed only."""
    from hypothesis.internal.conjecture import providers

    providers.CONSTANTS_CACHE.cache.clear()
    monkeypatch.setattr(providers, "_get_local_constants", providers.Constants)
    yield
    providers.CONSTANTS_CACHE.cache.clear()


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
def rig(db):
    town = TownFactory(slug="fuzz")
    rig = RigFactory(town=town, name="web", repo="acme/web")
    ConvoyFactory(town=town, rig=rig)
    for name in AGENTS:
        AgentFactory(town=town, rig=rig, name=name)
    AgentFactory(town=town, rig=rig, name=REFINERY, role=AgentRole.REFINERY)
    hook_fresh_beads(rig)
    return rig


@pytest.fixture
def token(rig):
    _, plain = api_token_create(town=rig.town, name="fuzz")
    return plain


def hook_fresh_beads(rig: Any) -> None:
    """Every polecat hooked to a new in-progress issue and the refinery to a new MR, so
    reports have work to report."""
    for agent in Agent.objects.filter(town=rig.town, name__in=AGENTS):
        _hook(agent, BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS))
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, bead__status=BeadStatus.OPEN)
    _hook(Agent.objects.get(town=rig.town, name=REFINERY), mr.bead)


def _hook(agent: Agent, bead: Bead) -> None:
    Bead.objects.filter(pk=bead.pk).update(assignee=agent)
    Agent.objects.filter(pk=agent.pk).update(hooked_bead=bead, status=AgentStatus.WORKING)


# schemathesis's pytest integration (from_fixture) does not run under pytest 9, so the test
# draws cases from its hypothesis strategies directly: same generation, same schema.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_answers_5xx_and_answers_as_documented(api_schema, token, mode):
    seen: Counter[tuple[str, int]] = Counter()

    # One branch per operation, so each gets its share of the examples whatever hypothesis
    # explores first; random agent names only ever meet 404, so also aim at real agents.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    strategy = st.one_of(
        *(op.as_strategy(generation_mode=mode) for op in operations),
        *(
            op.as_strategy(generation_mode=mode, path_parameters={"name": name})
            for op in operations
            if op.path.startswith("/agents/")
            for name in ("cat-0", REFINERY)
        ),
    )

    @given(case=strategy)
    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def call(case):
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        seen[case.operation.label, response.status_code] += 1
        validate(case, response)

    started = time.monotonic()
    call()
    print(f"\n{mode.value}: {seen.total()} cases in {time.monotonic() - started:.1f} s")
    # The fuzz reached every operation, and not only its error paths.
    labels = {label for label, _ in seen}
    assert len(labels) == len(operations)
    if mode == GenerationMode.POSITIVE:
        assert any(200 <= status < 300 for _, status in seen)


def test_stateful_sequences_follow_the_documents_links(api_schema, token, rig):
    followed: Counter[str] = Counter()
    failures: list[BaseException] = []
    answered: Counter[tuple[str, int]] = Counter()

    # Only the document's own links: inferred ones would spend the budget on guesses.
    api_schema.config.phases.stateful.inference.algorithms = []

    class Scenario(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Every scenario starts from the same data (and is rolled back after), so its
            # answers depend on its own calls only.
            self.savepoint = transaction.savepoint()
            hook_fresh_beads(rig)

        def teardown(self) -> None:
            transaction.savepoint_rollback(self.savepoint)

        def before_call(self, case: Any) -> None:
            # The generated bearer token is random; the fixture's is the one that works.
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            # A scenario starts from a real agent (random names only meet 404, which the
            # single-request fuzz covers); names a link carried are left alone.
            name = (case.path_parameters or {}).get("name")
            if name is not None and name not in (*AGENTS, REFINERY):
                names = {
                    "reportReview": (REFINERY,),
                    "getAssignment": (*AGENTS, REFINERY),
                }.get(case.operation.definition.raw.get("operationId"), AGENTS)
                case.path_parameters["name"] = names[len(name) % len(names)]

        def step(self, input: Any) -> Any:
            output = super().step(input)
            label = input.case.operation.label
            answered[label, output.response.status_code] += 1
            if input.transition is not None:
                followed[f"{input.transition.id} -> {output.response.status_code}"] += 1
            return output

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            try:
                validate(case, response)
            except BaseException as failure:
                failures.append(failure)
                raise

    started = time.monotonic()
    try:
        Scenario.run(
            settings=settings(
                max_examples=50,
                stateful_step_count=6,
                # As schemathesis runs stateful tests: no replay or shrinking, whose
                # reruns meet a server whose ids have moved on.
                phases=[Phase.generate],
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
        )
    except Flaky:
        # A rerun that drew differently from a server whose state moved on (schemathesis
        # treats it the same way); a failed check is never lost to it.
        if failures:
            raise failures[0] from None
    print(
        f"\nstateful: {answered.total()} calls ({followed.total()} through links) in "
        f"{time.monotonic() - started:.1f} s; links: {dict(followed)}"
    )
    # The links carried real ids end to end: beads linked to beads and convoys the scenario had
    # just created, and an assignment's report reached (which of done, failure or review
    # succeeds depends on what hypothesis draws from every loaded module's literals, so only
    # reaching one is asserted; tests/api/test_reports.py covers each report's effects).
    reports = ("ReportDone", "ReportFailure", "ReportReview", "ReviewIt")
    assert any(k.split("] ")[1].startswith(reports) for k in followed)
    assert any(
        k.split("] ")[1].startswith(("AddBead", "BlockedBy")) and k.endswith("201")
        for k in followed
    )
