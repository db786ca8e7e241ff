"""Input the database cannot store is refused by the schema layer (voucher_service/http/parsing.py).

- A lone surrogate (JSON "\\ud800": a code point UTF-8 cannot encode) in any
  string, list item or object key of any JSON body is a 422 problem+json
  naming where it is, and changes nothing, on every endpoint that takes a body.
- A path or query string cannot carry one: werkzeug decodes them as UTF-8
  with replacement, so what the views see is U+FFFD, never a surrogate.

These tests use tests/conftest.py's app, not security_support's: one token
goes through every endpoint several times, more than that app's low rate
limit allows.
"""
from __future__ import annotations

import json
import re

import pytest
from helpers import make_uscc
from security_support import assert_problem, bearer, mint, state

LONE = "\\ud800"  # JSON text of a lone high surrogate
LONE_LOW = "\\udfff"
BINDINGS = {"sme": {"enterprise_id": "ent-ks-003"}, "provider": {"provider_id": "prv-sh-001"},
            "officer": {"region": "KS"}, "finance": {"region": "KS"}, "auditor": {}, "admin": {}}


def post_raw(app, path, text: str, token: str, method="POST"):
    return app.test_client().open(path, method=method, data=text.encode("ascii"),
                                  headers=bearer(token) | {"Content-Type": "application/json"})


def surrogate_messages(errors) -> list[str]:
    found = []

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and "surrogate" in value:
            found.append(value)
    walk(errors)
    return found


# (path, role, body with {S} where the surrogate goes, what {S} is in the same request made valid)
REAL_REQUESTS = {
    "string field": ("/api/v1/applications", "sme", '{"amount_fen": 100000, "purpose": "spent on {S} tests"}',
                     LONE, "x"),
    "low surrogate": ("/api/v1/applications", "sme", '{"amount_fen": 100000, "purpose": "{S}"}', LONE_LOW, "x"),
    "object key": ("/api/v1/applications", "sme", '{"amount_fen": 100000, "purpose": "ok"{S}}',
                   ', "%s": 1' % LONE, ""),
    "list item": ("/api/v1/enterprises", "officer",
                  '{"name": "Surrogate Co", "uscc": "%s", "region": "KS", "kind": "enterprise", '
                  '"related_provider_ids": ["prv-sh-001"{S}]}' % make_uscc(), ', "%s"' % LONE, ""),
    "name": ("/api/v1/enterprises", "officer",
             '{"name": "Surrogate {S} Co", "uscc": "%s", "region": "KS", "kind": "enterprise"}' % make_uscc(),
             LONE, "x"),
}


@pytest.mark.parametrize("case", list(REAL_REQUESTS))
def test_a_lone_surrogate_in_an_otherwise_valid_request_is_a_422_that_changes_nothing(app, case):
    path, role, template, bad, good = REAL_REQUESTS[case]
    token = mint(app, role, **BINDINGS[role])
    before = state(app)
    response = post_raw(app, path, template.replace("{S}", bad), token)
    body = assert_problem(response, 422)
    assert surrogate_messages(body.get("errors")), body
    response.get_data().decode("utf-8")  # the problem itself is valid UTF-8
    assert state(app) == before
    # The same request without the surrogate goes through: only the surrogate was refused.
    fixed = post_raw(app, path, template.replace("{S}", good), token)
    assert fixed.status_code == 201, fixed.get_json()


def body_operations(app):
    """(method, path, endpoint, first property) of every operation whose request has a JSON body."""
    spec = app.test_client().get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    adapter = app.url_map.bind("localhost")
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
            concrete = re.sub(r"\{[^}]+\}", "x-1", path)
            endpoint, _args = adapter.match(concrete, method.upper())
            yield method.upper(), concrete, endpoint, next(iter(schema.get("properties") or {"note": None}))


# (JSON body with {field} for a property of the schema, where the error must be reported)
SHAPES = {
    "value": ('{"{field}": "a%sb"}' % LONE, lambda field: (field,)),
    "list item": ('{"{field}": ["ok", "%s"]}' % LONE, lambda field: (field, "1")),
    "object key": ('{"%s": 1}' % LONE, lambda field: ("\\ud800",)),
    "nested key and value": ('{"{field}": {"ok": {"%s": ["%s"]}}}' % (LONE, LONE),
                             lambda field: (field, "ok", "\\ud800")),
}


def at(errors, path):
    for part in path:
        assert isinstance(errors, dict) and part in errors, (path, errors)
        errors = errors[part]
    return errors


def test_every_json_body_refuses_lone_surrogates_wherever_they_are(app):
    from voucher_service.http import access
    operations = list(body_operations(app))
    assert len(operations) >= 10, operations  # the OpenAPI document still lists the bodies
    tokens = {role: mint(app, role, **binding) for role, binding in BINDINGS.items()}
    before = state(app)
    for method, path, endpoint, field in operations:
        role = sorted(access.allowed_roles(endpoint))[0]
        for shape, (template, where) in SHAPES.items():
            response = post_raw(app, path, template.replace("{field}", field), tokens[role], method=method)
            body = assert_problem(response, 422)
            messages = at(json.loads(response.get_data()).get("errors") or {}, where(field))
            assert surrogate_messages(messages), (method, path, shape, body)
    assert state(app) == before


def test_a_refused_surrogate_is_remembered_like_any_422(app):
    token = mint(app, "sme", enterprise_id="ent-ks-003")
    text = '{"amount_fen": 100000, "purpose": "%s"}' % LONE
    headers = bearer(token) | {"Content-Type": "application/json", "Idempotency-Key": "surrogate-1"}
    first = app.test_client().post("/api/v1/applications", data=text, headers=headers)
    again = app.test_client().post("/api/v1/applications", data=text, headers=headers)
    assert_problem(first, 422)
    assert again.status_code == 422 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_data() == first.get_data()


@pytest.mark.parametrize("target", [
    "/api/v1/vouchers/%ED%A0%80",                  # the UTF-8 bytes a surrogate would have
    "/api/v1/vouchers/%ED%A0%80/void",
    "/api/v1/vouchers?cursor=%ED%A0%80",
    "/api/v1/vouchers?limit=%ED%A0%80",
    "/api/v1/ledger/entries?start=%ED%A0%80",
    "/api/v1/regions/%ED%A0%80/reconciliation?period=%ED%A0%80",
])
def test_paths_and_query_strings_cannot_carry_a_surrogate(app, target):
    token = mint(app, "auditor")
    method = "POST" if target.endswith("/void") else "GET"
    response = app.test_client().open(target, method=method, headers=bearer(token), json={} if method == "POST"
                                      else None)
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:300])
    response.get_data().decode("utf-8")  # strict: a surrogate in the answer would not decode
