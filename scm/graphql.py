"""The GraphQL documents scm/ sends, their cost, and reading their answers.

Cost (https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api):
each connection costs one request per parent node GitHub must visit, i.e. the product of the
`first`/`last` limits of the connections above it; the sum over connections divided by 100,
rounded to the nearest whole number, is the charge (at least 1 point per document). The
snapshot document asks each pull request for four connections with no connection above them
(labels, review requests, review threads, the status-check rollup's contexts): 4 requests per
PR. Because GitHub rounds, the batch size is chosen from that cost (`batch_size`), not fixed:
37 PRs are 148 requests = 1.48, charged 1 point (0.027 points per PR), where 50 PRs were 200
requests = 2 points (0.040). Merge queue entry, auto-merge request and the base branch's
protection (`baseRef.refUpdateRule`) are single objects: free. Limits *inside* a connection
would multiply: that is why thread comments are asked for in a second document, only for PRs
that have unresolved threads; and the approvals given (and a ruleset's required count) in
a third, only for PRs waiting on a review whose count the snapshot does not settle (two
connections per PR, batched by the same rule).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    parse,
)

from scm.types import PullRequestRef

#: The most PRs one document asks about: GitHub answers big documents slowly and times out.
MAX_BATCH_SIZE = 100
CONTEXTS_LIMIT = 50
REVIEW_REQUESTS_LIMIT = 10
THREADS_LIMIT = 100
THREAD_DETAIL_LIMIT = 30
THREAD_COMMENTS_LIMIT = 3
LABELS_LIMIT = 10
LABEL_EVENTS_LIMIT = 20
APPROVALS_LIMIT = 20  # reviewers whose latest review counts; base-branch rules

SNAPSHOT_FRAGMENT = f"""
fragment SnapshotFields on PullRequest {{
  number
  url
  state
  merged
  mergeCommit {{ oid }}
  isDraft
  reviewDecision
  mergeStateStatus
  mergeable
  headRefOid
  headRefName
  baseRefName
  id
  isMergeQueueEnabled
  mergeQueueEntry {{ position state }}
  baseRef {{ refUpdateRule {{ requiredApprovingReviewCount }} }}
  autoMergeRequest {{ enabledAt mergeMethod enabledBy {{ login }} }}
  labels(first: {LABELS_LIMIT}) {{ nodes {{ name }} }}
  reviewRequests(first: {REVIEW_REQUESTS_LIMIT}) {{
    nodes {{
      requestedReviewer {{
        __typename
        ... on User {{ login }}
        ... on Bot {{ login }}
        ... on Mannequin {{ login }}
        ... on Team {{ slug }}
      }}
    }}
  }}
  reviewThreads(first: {THREADS_LIMIT}) {{
    totalCount
    nodes {{ isResolved }}
  }}
}}
"""

# isRequired needs the PR number, so the rollup is spelled out per alias, not in the fragment.
_SNAPSHOT_ALIAS = f"""
  {{alias}}: repository(owner: $o{{i}}, name: $r{{i}}) {{{{
    pullRequest(number: $n{{i}}) {{{{
      ...SnapshotFields
      statusCheckRollup {{{{
        state
        contexts(first: {CONTEXTS_LIMIT}) {{{{
          totalCount
          nodes {{{{
            __typename
            ... on CheckRun {{{{ name status conclusion isRequired(pullRequestNumber: $n{{i}}) }}}}
            ... on StatusContext {{{{ context state isRequired(pullRequestNumber: $n{{i}}) }}}}
          }}}}
        }}}}
      }}}}
    }}}}
  }}}}"""

_THREADS_ALIAS = f"""
  {{alias}}: repository(owner: $o{{i}}, name: $r{{i}}) {{{{
    pullRequest(number: $n{{i}}) {{{{
      reviewThreads(first: {THREAD_DETAIL_LIMIT}) {{{{
        nodes {{{{
          isResolved
          isOutdated
          path
          comments(first: {THREAD_COMMENTS_LIMIT}) {{{{
            nodes {{{{ author {{{{ login }}}} body }}}}
          }}}}
        }}}}
      }}}}
    }}}}
  }}}}"""

# How many approvals a PR waiting on reviews has, and what a ruleset on its base requires
# (classic protection's count is in the snapshot: refUpdateRule). latestOpinionatedReviews
# is each reviewer's latest approving or change-requesting review; writersOnly, as branch
# protection counts only approvals by people with write access.
# https://docs.github.com/en/graphql/reference/objects#pullrequest
# https://docs.github.com/en/graphql/reference/objects#pullrequestparameters
_APPROVALS_ALIAS = f"""
  {{alias}}: repository(owner: $o{{i}}, name: $r{{i}}) {{{{
    pullRequest(number: $n{{i}}) {{{{
      latestOpinionatedReviews(first: {APPROVALS_LIMIT}, writersOnly: true) {{{{
        nodes {{{{ state }}}}
      }}}}
      baseRef {{{{
        rules(first: {APPROVALS_LIMIT}) {{{{
          nodes {{{{
            type
            parameters {{{{
              __typename
              ... on PullRequestParameters {{{{ requiredApprovingReviewCount }}}}
            }}}}
          }}}}
        }}}}
      }}}}
    }}}}
  }}}}"""

# The PR's timeline, filtered to one kind of event: asked only for the PRs that need it
# (a hold label's author, why the merge queue dropped a PR), never in the snapshot.
_TIMELINE_ALIAS = """
  {alias}: repository(owner: $o{i}, name: $r{i}) {{
    pullRequest(number: $n{i}) {{
      timelineItems(last: {limit}, itemTypes: [{item_type}]) {{
        nodes {{
          __typename
          {selection}
        }}
      }}
    }}
  }}"""

LABELED_EVENTS = (
    "LABELED_EVENT",
    "... on LabeledEvent { createdAt actor { login } label { name } }",
    LABEL_EVENTS_LIMIT,
)
QUEUE_REMOVALS = (
    "REMOVED_FROM_MERGE_QUEUE_EVENT",
    "... on RemovedFromMergeQueueEvent { reason createdAt beforeCommit { oid } }",
    1,
)

PULL_REQUEST_ID = """query PullRequestId($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) { pullRequest(number: $number) { id headRefOid } }
}
"""

_AUTO_MERGE_SELECTION = "autoMergeRequest { enabledAt mergeMethod enabledBy { login } }"

# https://docs.github.com/en/graphql/reference/mutations#enqueuepullrequest
ENQUEUE = """mutation EnqueuePullRequest($id: ID!, $head: GitObjectID!) {
  enqueuePullRequest(input: {pullRequestId: $id, expectedHeadOid: $head}) {
    mergeQueueEntry { position state }
  }
}
"""

# https://docs.github.com/en/graphql/reference/mutations#dequeuepullrequest (the PR's ID)
DEQUEUE = """mutation DequeuePullRequest($id: ID!) {
  dequeuePullRequest(input: {id: $id}) { mergeQueueEntry { position state } }
}
"""

# https://docs.github.com/en/graphql/reference/mutations#enablepullrequestautomerge
ENABLE_AUTO_MERGE = f"""mutation EnablePullRequestAutoMerge(
  $id: ID!, $head: GitObjectID!, $method: PullRequestMergeMethod!
) {{
  enablePullRequestAutoMerge(
    input: {{pullRequestId: $id, expectedHeadOid: $head, mergeMethod: $method}}
  ) {{
    pullRequest {{ {_AUTO_MERGE_SELECTION} }}
  }}
}}
"""

DISABLE_AUTO_MERGE = """mutation DisablePullRequestAutoMerge($id: ID!) {
  disablePullRequestAutoMerge(input: {pullRequestId: $id}) { pullRequest { id } }
}
"""

RATE_LIMIT_SELECTION = "  rateLimit { cost remaining resetAt }"


@dataclass(frozen=True)
class Document:
    """One GraphQL request: its text, variables and which alias is which pull request."""

    query: str
    variables: dict[str, Any]
    aliases: dict[str, PullRequestRef]
    operation: str


def _variables(refs: Sequence[PullRequestRef]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    declarations = []
    variables: dict[str, Any] = {}
    aliases: dict[str, Any] = {}
    for i, ref in enumerate(refs):
        declarations.append(f"$o{i}: String!, $r{i}: String!, $n{i}: Int!")
        variables[f"o{i}"] = ref.owner
        variables[f"r{i}"] = ref.name
        variables[f"n{i}"] = ref.number
        aliases[f"pr{i}"] = ref
    return ", ".join(declarations), variables, aliases


_VARIABLE = re.compile(r"\$([orn])([0-9]+)\b")


def aliases_named_in(message: str, document: Document) -> set[str]:
    """The aliases whose variables ($o3, $r3, $n3 for pr3) an error message names: GitHub
    rejects a bad variable value for the whole document, with no path, but names it."""
    named = {f"pr{index}" for _, index in _VARIABLE.findall(message)}
    return named & document.aliases.keys()


def snapshot_document(refs: Sequence[PullRequestRef]) -> Document:
    """The lean document for a batch of pull requests (aliases pr0, pr1, ...); see
    batch_size for how many."""
    declarations, variables, aliases = _variables(refs)
    body = "".join(_SNAPSHOT_ALIAS.format(alias=f"pr{i}", i=i) for i in range(len(refs)))
    query = (
        f"query PullRequestSnapshots({declarations}) {{\n{RATE_LIMIT_SELECTION}{body}\n}}\n"
        f"{SNAPSHOT_FRAGMENT}"
    )
    return Document(query, variables, aliases, "PullRequestSnapshots")


def threads_document(refs: Sequence[PullRequestRef]) -> Document:
    """Unresolved threads' text, for the classifier; only for PRs that have such threads."""
    declarations, variables, aliases = _variables(refs)
    body = "".join(_THREADS_ALIAS.format(alias=f"pr{i}", i=i) for i in range(len(refs)))
    query = f"query PullRequestThreads({declarations}) {{\n{RATE_LIMIT_SELECTION}{body}\n}}\n"
    return Document(query, variables, aliases, "PullRequestThreads")


def approvals_document(refs: Sequence[PullRequestRef]) -> Document:
    """Approvals given and a ruleset's required count, for PRs waiting on reviews."""
    declarations, variables, aliases = _variables(refs)
    body = "".join(_APPROVALS_ALIAS.format(alias=f"pr{i}", i=i) for i in range(len(refs)))
    query = f"query PullRequestApprovals({declarations}) {{\n{RATE_LIMIT_SELECTION}{body}\n}}\n"
    return Document(query, variables, aliases, "PullRequestApprovals")


def timeline_document(refs: Sequence[PullRequestRef], kind: tuple[str, str, int]) -> Document:
    """One kind of timeline event (LABELED_EVENTS, QUEUE_REMOVALS), latest last."""
    item_type, selection, limit = kind
    declarations, variables, aliases = _variables(refs)
    body = "".join(
        _TIMELINE_ALIAS.format(
            alias=f"pr{i}", i=i, limit=limit, item_type=item_type, selection=selection
        )
        for i in range(len(refs))
    )
    operation = "PullRequestLabelEvents" if kind == LABELED_EVENTS else "PullRequestQueueRemovals"
    query = f"query {operation}({declarations}) {{\n{RATE_LIMIT_SELECTION}{body}\n}}\n"
    return Document(query, variables, aliases, operation)


def single_document(query: str, variables: dict[str, Any]) -> Document:
    """A document about one thing (a mutation, an ID look-up): no aliases."""
    operation = parse(query).definitions[0]
    assert isinstance(operation, OperationDefinitionNode) and operation.name is not None
    return Document(query, variables, {}, operation.name.value)


def all_documents() -> list[Document]:
    """Every kind of document scm/ sends (for the schema-validation test)."""
    refs = [PullRequestRef("octo/one", 1), PullRequestRef("octo/two", 2)]
    return [
        snapshot_document(refs),
        threads_document(refs),
        approvals_document(refs),
        timeline_document(refs, LABELED_EVENTS),
        timeline_document(refs, QUEUE_REMOVALS),
        single_document(PULL_REQUEST_ID, {"owner": "octo", "name": "one", "number": 1}),
        single_document(ENQUEUE, {"id": "PR_1", "head": "abc"}),
        single_document(DEQUEUE, {"id": "PR_1"}),
        single_document(ENABLE_AUTO_MERGE, {"id": "PR_1", "head": "abc", "method": "SQUASH"}),
        single_document(DISABLE_AUTO_MERGE, {"id": "PR_1"}),
    ]


def batched(refs: Sequence[PullRequestRef], size: int) -> Iterable[list[PullRequestRef]]:
    for start in range(0, len(refs), size):
        yield list(refs[start : start + size])


def charged_points(estimate: float) -> int:
    """What GitHub charges for a document of `estimate` points (graphql_cost): rounded to the
    nearest whole number, halves up, and at least 1."""
    return max(1, math.floor(estimate + 0.5))


DocumentBuilder = Callable[[Sequence[PullRequestRef]], Document]


@functools.cache
def batch_size(build: DocumentBuilder) -> int:
    """The number of PRs per document of this kind that gets the most PRs per charged point
    (the largest such number on a tie: fewer requests). The cost of a document is a fixed
    part plus the same amount per PR, so two documents tell it; a field added to the
    fragment changes the answer by itself."""
    one = graphql_cost(build([PullRequestRef("octo/cost", 1)]).query)
    two = graphql_cost(
        build([PullRequestRef("octo/cost", 1), PullRequestRef("octo/cost", 2)]).query
    )
    per_pr, fixed = two - one, 2 * one - two
    return max(
        range(1, MAX_BATCH_SIZE + 1),
        key=lambda n: (n / charged_points(fixed + n * per_pr), n),
    )


def points_per_pr(build: DocumentBuilder) -> float:
    """Points one PR costs in a full batch of this kind of document."""
    size = batch_size(build)
    refs = [PullRequestRef("octo/cost", n) for n in range(1, size + 1)]
    return charged_points(graphql_cost(build(refs).query)) / size


def graphql_cost(query: str, variables: Mapping[str, Any] | None = None) -> float:
    """GitHub's published estimate in points, before its rounding and 1-point minimum."""
    document = parse(query)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    variables = variables or {}

    def limit(node: FieldNode) -> int | None:
        for argument in node.arguments or ():
            if argument.name.value not in {"first", "last"}:
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                return int(variables.get(value.name.value, 0) or 0)
        return None

    def walk(selection_set: SelectionSetNode | None, parents: int) -> int:
        if selection_set is None:
            return 0
        requests = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                n = limit(selection)
                if n is None:
                    requests += walk(selection.selection_set, parents)
                else:
                    requests += parents + walk(selection.selection_set, parents * n)
            elif isinstance(selection, InlineFragmentNode):
                requests += walk(selection.selection_set, parents)
            elif isinstance(selection, FragmentSpreadNode):
                requests += walk(fragments[selection.name.value].selection_set, parents)
        return requests

    total = sum(
        walk(d.selection_set, 1)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )
    return total / 100
