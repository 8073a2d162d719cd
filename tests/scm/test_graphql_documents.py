"""The documents we send: valid against GitHub's published schema, cheap, batched."""

import pytest
from graphql import parse, validate

from scm.fake.graphql_exec import github_schema, validation_errors
from scm.graphql import BATCH_SIZE, all_documents, graphql_cost, snapshot_document
from scm.types import PullRequestRef


@pytest.mark.parametrize("document", all_documents(), ids=lambda d: d.operation)
def test_every_document_validates_against_the_published_schema(document):
    assert validate(github_schema(), parse(document.query)) == []


def test_a_misspelled_field_fails_validation():
    query = snapshot_document([PullRequestRef("octo/app", 1)]).query.replace(
        "mergeStateStatus", "mergeStatus"
    )
    errors = validation_errors(query)
    assert errors
    assert "mergeStatus" in errors[0].message


def test_fake_answers_an_invalid_document_with_github_like_errors(fake_github, github_client):
    from scm.fake.graphql_exec import execute_graphql

    answer, cost = execute_graphql(
        fake_github.state,
        "{ rateLimit { cots } }",
        {},
        web_url="https://github.com",
        remaining=5000,
        reset_at=fake_github.reset_at,
    )
    assert cost == 0
    assert "data" not in answer
    assert "cots" in answer["errors"][0]["message"]


def test_snapshot_batch_costs_under_005_points_per_pr():
    refs = [PullRequestRef("octo/app", n) for n in range(1, BATCH_SIZE + 1)]
    document = snapshot_document(refs)
    assert graphql_cost(document.query) / len(refs) < 0.05


def test_cost_follows_githubs_published_example():
    # docs.github.com: 100 repositories x 50 issues x 60 labels = 5,101 requests -> 51 points
    query = """query { viewer { login repositories(first: 100) { edges { node { id
      issues(first: 50) { edges { node { id labels(first: 60) { edges { node { id } } } } } }
    } } } } }"""
    assert graphql_cost(query) == pytest.approx(51.01)


def test_500_prs_are_fetched_in_at_most_20_requests(fake_github, github_client):
    fake_github.create_repo("octo/big")
    refs = [
        PullRequestRef("octo/big", fake_github.create_pr("octo/big").number) for _ in range(500)
    ]
    results = github_client.fetch_snapshots(refs)
    assert all(result.ok for result in results.values())
    assert len(fake_github.requests) <= 20
    assert sum(r.aliases for r in fake_github.graphql_requests()) == 500
    points = sum(r.cost for r in fake_github.graphql_requests())
    assert points / 500 < 0.05
