"""Schemathesis against our own OpenAPI document, in process: whatever the
body, query, path or headers, valid or not, the service never answers with a
5xx, every status and content type is documented, every body conforms to its
schema, and every error is problem+json."""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

from voucher_service.http.openapi_dump import openapi_document

ROLES = [("officer", {"region": "KS"}), ("sme", {"enterprise_id": "ent-ks-003"}),
         ("provider", {"provider_id": "prv-sh-001"}), ("auditor", {})]
DOCUMENT = openapi_document()
OPERATIONS = sorted(f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items()
                    for method in item if method in ("get", "post", "patch", "put", "delete"))


def takes_input(label):
    method, path = label.split(" ", 1)
    item = DOCUMENT["paths"][path]
    return bool(item.get("parameters") or item[method.lower()].get("parameters")
                or item[method.lower()].get("requestBody"))


# An operation with no input at all has no invalid input to send.
CASES = [pytest.param(label, mode, id=f"{label}-{mode.value}")
         for label in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or takes_input(label)]


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.fixture(scope="module")
def role_tokens(actors):
    return [actors.token(role, **binding) for role, binding in ROLES]


@pytest.mark.parametrize("label, mode", CASES)
def test_no_input_breaks_the_contract(api_schema, role_tokens, label, mode):
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode), token=st.sampled_from(role_tokens))
    def exercise(case, token):
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            assert response.headers["content-type"][0].startswith("application/problem+json"), response.text

    exercise()


def test_the_document_covers_every_route(app):
    documented = set(DOCUMENT["paths"])
    registered = {str(rule).replace("<string:", "{").replace("<int:", "{").replace(">", "}")
                  for rule in app.url_map.iter_rules() if str(rule).startswith("/api/v1")}
    assert registered == documented
