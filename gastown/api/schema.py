"""The hand-written OpenAPI 3.1 document of API v1, and a documentation page built from it.

Kept by hand (not generated) so it says what the API promises; tests fuzz the API against it,
so a drift between the two shows up as a failing test.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.views.decorators.http import require_GET

from gastown.services.reports import MAX_BRANCH_LENGTH
from scm.urls import _accepted_hosts

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json(_ERROR)}


_COMMON_ERRORS = {
    "401": _error("Missing, unknown or revoked token."),
    "405": _error("Method not allowed."),
}
_WRITE_ERRORS = {
    **_COMMON_ERRORS,
    "400": _error("Invalid JSON or a field that fails validation (named in `field`)."),
    "415": _error("The body is not application/json."),
}
_BEAD_ERRORS = _error(
    "Invalid JSON or a field that fails validation (named in `field`): no rig named in a "
    "town of several, a convoy that is not open, a link to a bead that is not an open "
    "issue, or a dependency cycle."
)
_AGENT_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The agent's name in the token's town.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^/]+$"},
}
_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
_TEXT = {"type": "string", "maxLength": 300}

# Request strings, as the API checks them (gastown.api.http). Patterns spell characters out
# rather than use \s, whose meaning differs between regex engines: _WS is exactly what
# Python's str.strip() removes. No string anywhere may hold NUL (nor a lone surrogate, which
# JSON Schema cannot express).
_WS = (
    "\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
_NO_NUL = {"not": {"type": "string", "pattern": "\u0000"}}
_NOT_BLANK = f"[^\u0000{_WS}]"
# git check-ref-format's rules and git branch's refusal of a leading "-" (gastown.services.reports),
# on the value as sent: no whitespace around it. (?!.*\n) because Python's "$" also matches
# before a final newline, and Python's re is what generates and checks values in the tests.
_BRANCH = (
    f"^(?!.*\n)(?![{_WS}])(?![-/.])(?!@$)(?!.*(?:\\.\\.|@\\{{|//|/\\.|\\.lock/))"
    "[^\u0000-\u0020\u007f~^:?*\\[\\\\]+"
    f"(?<![/.])(?<!\\.lock)(?<![{_WS}])$"
)


def _text(max_length: int, *, required: bool = False, **extra: Any) -> dict[str, Any]:
    """A text field: a required one needs a non-space character and may not be null (text is
    stored stripped); an optional one may be null, the same as leaving it out."""
    return {
        "type": "string" if required else ["string", "null"],
        "maxLength": max_length,
        **({"pattern": _NOT_BLANK} if required else {}),
        **_NO_NUL,
        **extra,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional field also takes null, the same as leaving it out."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


def _object(
    properties: dict[str, Any], *, required: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    """A request object: a field it does not list is refused (400 naming it)."""
    return {
        "type": "object",
        "required": list(required),
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _pr_url_pattern() -> str:
    # The shapes scm.urls.parse_pr_url reads, on the hosts it accepts (GITHUB_WEB_URL's
    # too); numbers of up to 9 significant digits, all below GitHub's 32-bit limit.
    hosts = "|".join(re.escape(host) for host in sorted(_accepted_hosts()))
    name = "(?!\\.\\.?/)[A-Za-z0-9_.-]+"
    return (
        f"^(?!.*\n)https?://(?:{hosts})/{name}/{name}/pull/0*[1-9][0-9]{{0,8}}"
        "(?:/(?:files|commits|checks|changes))?/?$"
    )


def _bead_input(*, in_convoy: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": _text(300, required=True),
        "body": _text(100_000),
        "priority": _nullable({"enum": ["low", "medium", "high", "critical"]}),
        "labels": _nullable(
            {
                "type": "array",
                "maxItems": 20,
                "items": {
                    "type": "string",
                    "maxLength": 50,
                    "pattern": _NOT_BLANK,
                    **_NO_NUL,
                },
            }
        ),
        "rig": _text(
            100,
            description=(
                "The rig's name. Defaults to the convoy's rig, else to the town's only rig; "
                "required when the town has several."
            ),
        ),
        "blocks": _nullable(
            {
                "type": "array",
                "maxItems": 50,
                "items": _ID,
                "description": (
                    "Open issue beads of the town that cannot start until this one is closed "
                    "or failed. A dependency cycle (one of them already blocks a bead in "
                    "blocked_by, directly or through others) is refused."
                ),
            }
        ),
        "blocked_by": _nullable(
            {
                "type": "array",
                "maxItems": 50,
                "items": _ID,
                "description": "Open issue beads of the town this one waits for.",
            }
        ),
    }
    if not in_convoy:
        properties["convoy"] = _nullable(
            {
                **_ID,
                "description": "A convoy of the town that is still open (not landing or landed).",
            }
        )
    return _object(properties, required=("title",))


def _link(operation_id: str, *, name: str = "", body: Any = None) -> dict[str, Any]:
    """An OpenAPI link: what a response gives the next call (schemathesis follows them)."""
    link: dict[str, Any] = {"operationId": operation_id}
    if name:
        link["parameters"] = {"name": name}
    if body is not None:
        link["requestBody"] = body
    return link


_SAME_AGENT = "$request.path.name"
_BEAD_ID = "$response.body#/id"
_DONE_LINKS = {
    "ReviewIt": _link("reportReview", body={"merge_request": "$response.body#/merge_request/id"}),
    "Assignment": _link("getAssignment", name=_SAME_AGENT),
}


def _mr_response(description: str, *, links: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        **({"links": links} if links else {}),
        **_json(
            {
                "type": "object",
                "properties": {"merge_request": {"$ref": "#/components/schemas/MergeRequest"}},
            }
        ),
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "gastown API",
        "version": "1",
        "description": (
            "For agents and the agent runtime that hosts them. Authenticate with a per-town "
            "token (`Authorization: Bearer gt_...`); a token acts for its own town only, and "
            'objects of other towns answer 404. Errors are `{"error": ..., "field": ...}`.'
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        "/beads": {
            "post": {
                "operationId": "createBead",
                "summary": "Create an issue bead",
                "requestBody": {"required": True, **_json(_bead_input(in_convoy=False))},
                "responses": {
                    "201": {
                        "description": "Created.",
                        **_json({"$ref": "#/components/schemas/Bead"}),
                        "links": {
                            "BlockedByIt": _link("createBead", body={"blocked_by": [_BEAD_ID]}),
                            "BlockedIt": _link("createBead", body={"blocks": [_BEAD_ID]}),
                        },
                    },
                    "404": _error("A referenced rig, convoy or bead is not in this town."),
                    **_WRITE_ERRORS,
                    "400": _BEAD_ERRORS,
                },
            }
        },
        "/convoys": {
            "post": {
                "operationId": "createConvoy",
                "summary": "Create a convoy with its issue beads",
                "description": "All or nothing: one invalid bead creates nothing.",
                "requestBody": {
                    "required": True,
                    **_json(
                        _object(
                            {
                                "title": _text(300, required=True),
                                "rig": _text(
                                    100,
                                    description=(
                                        "The rig (repository) of a review-then-land convoy's "
                                        "feature branch: required when the convoy is "
                                        "review-then-land (merge_mode, or the town's default "
                                        "merge mode when it is left out) and the town has "
                                        "several rigs; defaults to the town's only rig."
                                    ),
                                ),
                                "merge_mode": _nullable(
                                    {
                                        "enum": ["review-and-merge", "review-then-land"],
                                        "description": "Defaults to the town's merge mode.",
                                    }
                                ),
                                "beads": _nullable(
                                    {
                                        "type": "array",
                                        "maxItems": 100,
                                        "items": _bead_input(in_convoy=True),
                                    }
                                ),
                            },
                            required=("title",),
                        )
                    ),
                },
                "responses": {
                    "201": {
                        "description": "Created.",
                        **_json({"$ref": "#/components/schemas/Convoy"}),
                        "links": {
                            "AddBead": _link("createBead", body={"convoy": "$response.body#/id"}),
                        },
                    },
                    "404": _error("A referenced rig or bead is not in this town."),
                    **_WRITE_ERRORS,
                    "400": _BEAD_ERRORS,
                },
            }
        },
        "/agents/{name}/assignment": {
            "get": {
                "operationId": "getAssignment",
                "summary": "Fetch the agent's assignment (counts as a heartbeat)",
                "parameters": [_AGENT_NAME],
                "responses": {
                    "200": {
                        "description": "The hooked bead, or null.",
                        "links": {
                            "ReportDone": _link(
                                "reportDone",
                                name=_SAME_AGENT,
                                body={"bead": "$response.body#/assignment/id"},
                            ),
                            "ReportFailure": _link(
                                "reportFailure",
                                name=_SAME_AGENT,
                                body={"bead": "$response.body#/assignment/id"},
                            ),
                            "ReportReview": _link(
                                "reportReview",
                                name=_SAME_AGENT,
                                body={"merge_request": "$response.body#/merge_request/id"},
                            ),
                            "Heartbeat": _link("heartbeat", name="$response.body#/agent/name"),
                        },
                        **_json(
                            {
                                "type": "object",
                                "required": ["agent", "assignment"],
                                "properties": {
                                    "agent": {"$ref": "#/components/schemas/Agent"},
                                    "assignment": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/Bead"},
                                            {"type": "null"},
                                        ]
                                    },
                                    "merge_request": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/MergeRequest"},
                                            {"type": "null"},
                                        ]
                                    },
                                },
                            }
                        ),
                    },
                    "404": _error("No such agent in this town."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/agents/{name}/heartbeat": {
            "post": {
                "operationId": "heartbeat",
                "summary": "Keep the agent live",
                "parameters": [_AGENT_NAME],
                "requestBody": {
                    "required": False,
                    **_json(_object({}, description="Empty: a heartbeat carries no fields.")),
                },
                "responses": {
                    "200": {
                        "description": "Recorded.",
                        "links": {
                            "Assignment": _link("getAssignment", name="$response.body#/agent/name")
                        },
                        **_json(
                            {
                                "type": "object",
                                "properties": {"agent": {"$ref": "#/components/schemas/Agent"}},
                            }
                        ),
                    },
                    "404": _error("No such agent in this town."),
                    **_WRITE_ERRORS,
                },
            }
        },
        "/agents/{name}/done": {
            "post": {
                "operationId": "reportDone",
                "summary": "A polecat reports its issue bead done",
                "description": (
                    "Creates an MR bead for the branch (into the convoy's feature branch or the "
                    "rig's default branch); a rework bead instead re-checks its existing MR."
                ),
                "parameters": [_AGENT_NAME],
                "requestBody": {
                    "required": True,
                    **_json(
                        _object(
                            {
                                "bead": _ID,
                                "branch": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": MAX_BRANCH_LENGTH,
                                    "pattern": _BRANCH,
                                    "description": (
                                        "A git branch name (as git check-ref-format: no "
                                        "spaces, control characters, '..', '@{', '//', "
                                        "'~^:?*[\\', no part starting with '.' or ending "
                                        "with '.lock', not '@', not ending with '/' or '.'), "
                                        "not starting with '-' or '/', nor with whitespace "
                                        "around it."
                                    ),
                                },
                                "pr_url": {
                                    "type": ["string", "null"],
                                    "maxLength": 500,
                                    "pattern": "(filled in by openapi_document)",
                                    "description": (
                                        "https://github.com/OWNER/REPO/pull/N (or on the "
                                        "GitHub Enterprise host), a pull request of the "
                                        "bead's rig's repository."
                                    ),
                                },
                            },
                            required=("bead", "branch"),
                        )
                    ),
                },
                "responses": {
                    "201": _mr_response("The MR bead created.", links=_DONE_LINKS),
                    "200": _mr_response(
                        "A rework bead: its existing MR, due for a check.", links=_DONE_LINKS
                    ),
                    "404": _error("No such agent or bead in this town."),
                    "409": _error("The bead is not this agent's assignment, or is terminal."),
                    **_WRITE_ERRORS,
                    "400": _error(
                        "Invalid JSON or a field that fails validation (named in `field`): "
                        "a branch that is no git branch name, a pr_url that is no pull "
                        "request or is outside the rig's repository."
                    ),
                },
            }
        },
        "/agents/{name}/failure": {
            "post": {
                "operationId": "reportFailure",
                "summary": "An agent reports it could not finish its bead",
                "parameters": [_AGENT_NAME],
                "requestBody": {
                    "required": True,
                    **_json(
                        _object(
                            {"bead": _ID, "message": _text(10_000, required=True)},
                            required=("bead", "message"),
                        )
                    ),
                },
                "responses": {
                    "200": {
                        "description": "The bead, back to open or failed.",
                        **_json(
                            {
                                "type": "object",
                                "properties": {"bead": {"$ref": "#/components/schemas/Bead"}},
                            }
                        ),
                    },
                    "404": _error("No such agent or bead in this town."),
                    "409": _error("The bead is not this agent's assignment, or is terminal."),
                    **_WRITE_ERRORS,
                },
            }
        },
        "/agents/{name}/review": {
            "post": {
                "operationId": "reportReview",
                "summary": "The refinery reports its review of a merge request",
                "parameters": [_AGENT_NAME],
                "requestBody": {
                    "required": True,
                    **_json(
                        _object(
                            {
                                "merge_request": {**_ID, "description": "The merge request id."},
                                "passed": {"type": "boolean"},
                                "summary": _text(10_000),
                            },
                            required=("merge_request", "passed"),
                        )
                    ),
                },
                "responses": {
                    "200": _mr_response("The reviewed merge request."),
                    "404": _error("No such agent or merge request in this town."),
                    "409": _error("Not a refinery, not its review, or the MR is terminal."),
                    **_WRITE_ERRORS,
                },
            }
        },
        "/awaiting-approval": {
            "get": {
                "operationId": "awaitingApproval",
                "summary": "Merge requests waiting on a human, oldest wait first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "At most `limit` (default 50) merge requests.",
                        **_json(
                            {
                                "type": "object",
                                "required": ["results", "truncated"],
                                "properties": {
                                    "results": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/MergeRequest"},
                                    },
                                    "truncated": {"type": "boolean"},
                                },
                            }
                        ),
                    },
                    "400": _error("An invalid limit."),
                    **_COMMON_ERRORS,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A per-town API token (admin, or manage.py create_api_token).",
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                },
            },
            "Agent": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "role": {"enum": ["polecat", "refinery", "mayor"]},
                    "status": {"enum": ["idle", "working", "stalled", "dead"]},
                    "rig": {"type": ["string", "null"]},
                    "hooked_bead": {"type": ["integer", "null"]},
                    "last_heartbeat_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
            "Bead": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"enum": ["issue", "merge_request", "escalation"]},
                    "status": {"enum": ["open", "in_progress", "in_review", "closed", "failed"]},
                    "title": _TEXT,
                    "body": {"type": "string"},
                    "priority": {"enum": ["low", "medium", "high", "critical"]},
                    "labels": {"type": "array", "items": {"type": "string"}},
                    "metadata": {"type": "object"},
                    "rig": {"type": ["string", "null"]},
                    "convoy": {"type": ["integer", "null"]},
                    "parent": {"type": ["integer", "null"]},
                    "dispatch_attempts": {"type": "integer"},
                    "created_at": {"type": ["string", "null"], "format": "date-time"},
                    "updated_at": {"type": ["string", "null"], "format": "date-time"},
                    "closed_at": {"type": ["string", "null"], "format": "date-time"},
                    "failure_code": {"type": "string"},
                    "failure_message": {"type": "string"},
                },
            },
            "MergeRequest": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "bead": {"type": "integer"},
                    "title": {"type": "string"},
                    "status": {"type": "string"},
                    "rig": {"type": ["string", "null"]},
                    "source": {"type": ["integer", "null"]},
                    "landing_convoy": {"type": ["integer", "null"]},
                    "branch": {"type": "string"},
                    "target_branch": {"type": "string"},
                    "pr_url": {"type": ["string", "null"]},
                    "pr_repo": {"type": ["string", "null"]},
                    "pr_number": {"type": ["integer", "null"]},
                    "blocker": {"type": ["string", "null"]},
                    "awaiting_approval": {"type": "boolean"},
                    "review_decision": {"type": ["string", "null"]},
                    "requested_reviewers": {"type": "array"},
                    "checks_state": {"type": ["string", "null"]},
                    "waiting_since": {"type": ["string", "null"], "format": "date-time"},
                    "review_status": {"enum": ["pending", "passed", "changes_requested"]},
                },
            },
            "Convoy": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "title": {"type": "string"},
                    "status": {"type": "string"},
                    "merge_mode": {"enum": ["review-and-merge", "review-then-land"]},
                    "rig": {"type": ["string", "null"]},
                    "feature_branch": {"type": ["string", "null"]},
                    "beads": {"type": "array", "items": {"$ref": "#/components/schemas/Bead"}},
                },
            },
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """OPENAPI with what depends on the settings (the GitHub host of PR URLs) filled in."""
    document = copy.deepcopy(OPENAPI)
    done = document["paths"]["/agents/{name}/done"]["post"]["requestBody"]
    done["content"]["application/json"]["schema"]["properties"]["pr_url"]["pattern"] = (
        _pr_url_pattern()
    )
    return document


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_document())


_DOCS = engines["django"].from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ info.title }} v{{ info.version }}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code,pre{background:#f4f4f4;padding:.1rem .3rem}
.op{border-top:1px solid #ddd;padding:.5rem 0}
.m{font-weight:bold;display:inline-block;min-width:4rem}
td,th{text-align:left;padding:.1rem .6rem .1rem 0;vertical-align:top}
</style></head><body>
<h1>{{ info.title }} v{{ info.version }}</h1>
<p>{{ info.description }}</p>
<p>Base URL: <code>{{ base }}</code>.
Machine-readable: <a href="{{ base }}/openapi.json">openapi.json</a>.</p>
<pre>curl -H "Authorization: Bearer $GASTOWN_TOKEN" {{ base }}/agents/NAME/assignment</pre>
{% for op in operations %}<div class="op">
<h2 id="{{ op.id }}"><span class="m">{{ op.method }}</span><code>{{ op.path }}</code></h2>
<p>{{ op.summary }}{% if op.description %} — {{ op.description }}{% endif %}</p>
{% if op.fields %}<table><tr><th>field</th><th>type</th><th></th></tr>
{% for f in op.fields %}<tr><td><code>{{ f.name }}</code></td><td>{{ f.type }}</td>
<td>{% if f.required %}required{% endif %} {{ f.description }}</td></tr>{% endfor %}
</table>{% endif %}
<p>Responses: {% for code, text in op.responses %}<code>{{ code }}</code> {{ text }}
{% if not forloop.last %}; {% endif %}{% endfor %}</p>
</div>{% endfor %}
</body></html>"""
)


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        return " or ".join(_type({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return str(kind)


def _operations() -> list[dict[str, Any]]:
    operations = []
    for path, item in OPENAPI["paths"].items():
        for method, op in item.items():
            fields = [
                {
                    "name": p["name"],
                    "type": f"{p['in']} {_type(p['schema'])}",
                    "required": p.get("required"),
                    "description": p.get("description", ""),
                }
                for p in op.get("parameters", [])
            ]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            schema = body.get("schema", {})
            for name, prop in schema.get("properties", {}).items():
                fields.append(
                    {
                        "name": name,
                        "type": _type(prop),
                        "required": name in schema.get("required", []),
                        "description": prop.get("description", ""),
                    }
                )
            operations.append(
                {
                    "id": op["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "fields": fields,
                    "responses": sorted(
                        (code, r["description"]) for code, r in op["responses"].items()
                    ),
                }
            )
    return operations


@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        _DOCS.render(
            {
                "info": OPENAPI["info"],
                "base": request.build_absolute_uri("/api/v1").rstrip("/"),
                "operations": _operations(),
            }
        )
    )
