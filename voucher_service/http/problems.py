"""RFC 9457 problem details: the one error shape of the API."""
from __future__ import annotations

import json

from flask import Response
from werkzeug.http import HTTP_STATUS_CODES

PROBLEM_JSON = "application/problem+json"


def problem(status: int, detail: str | None = None, *, title: str | None = None, type_: str = "about:blank",
            errors: dict | None = None, headers: dict | None = None, **extra) -> Response:
    body = {"type": type_, "title": title or HTTP_STATUS_CODES.get(status, "Error"), "status": status}
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def rule_type(rule: str) -> str:
    return f"urn:vouchers:problem:{rule}"


def ledger_integrity_problem(detail: str, status: int = 500) -> Response:
    """The one shape of every integrity failure: the stored ledger no longer
    adds up (DESIGN §10). 500 from a request that met it; 503 from /readyz,
    which takes the instance out of service until the rows are repaired."""
    return problem(status, f"ledger integrity check failed: {detail}", type_=rule_type("ledger_integrity"))


def flatten_validation_messages(messages) -> dict:
    """webargs nests messages by location ({"json": {...}, "query": {...}}); clients want fields."""
    if not isinstance(messages, dict):
        return {"_request": messages if isinstance(messages, list) else [str(messages)]}
    flat = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            for name, msgs in fields.items():
                key = name if location in ("json", "query", "path") else f"{location}.{name}"
                flat[key] = msgs
        else:
            flat[location] = fields
    return flat
