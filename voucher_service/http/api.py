"""The HTTP API's wiring: flask-smorest, problem+json errors, the request's transaction and principal.

The views themselves live beside their services, in each unification's package; the
app factory hands them to `init_app`, so nothing in http/ imports a unification.
"""
from __future__ import annotations

import http
import logging

import swagger_ui_bundle
from flask import g, request, send_from_directory
from flask_smorest import Api
from marshmallow import Schema, fields
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from voucher_service.db import get_engine, get_session, locks_database_at_begin, read_only
from voucher_service.http import API_PREFIX, access, auth, transaction
from voucher_service.http.problems import (
    PROBLEM_JSON,
    flatten_validation_messages,
    ledger_integrity_problem,
    problem,
    rule_type,
)
from voucher_service.journal.store import LedgerInvariantError
from voucher_service.programme.errors import InvalidInput, NotFound, RuleViolation, TooLarge, UnsupportedMediaType

log = logging.getLogger(__name__)

DOCS_ASSETS_PATH = "/docs/assets/"


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error of this API is shaped."""
    type = fields.String(required=True, metadata={"description": "URI reference naming the kind of problem; "
                                                                 "urn:vouchers:problem:<rule> for a programme rule"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(metadata={"description": "422: messages per field"})
    rule = fields.String(metadata={"description": "409: the rule of the programme the request would break"})


class ProblemApi(Api):
    """flask-smorest with every HTTP error rendered, and documented, as RFC 9457 problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self):
        # As flask-smorest's, but errors are documented as application/problem+json.
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["content"] = {PROBLEM_JSON: {"schema": ProblemSchema}}
            self.spec.components.response(status.name, response, lazy=True)
        self.spec.components.response("DEFAULT_ERROR", {
            "description": "Any error: RFC 9457 problem details",
            "content": {PROBLEM_JSON: {"schema": ProblemSchema}}}, lazy=True)

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        detail = data.get("message") or error.description
        errors = None
        if "messages" in data:  # webargs validation failure
            errors = flatten_validation_messages(data["messages"])
            detail = "the request is not valid; see errors"
        elif "errors" in data:
            errors = flatten_validation_messages(data["errors"])
        headers = dict(data.get("headers") or {})
        if error.code == 401:
            headers.setdefault("WWW-Authenticate", 'Bearer realm="vouchers"')
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return problem(error.code or 500, detail, errors=errors, headers=headers)


def _load_principal():
    g.principal = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return problem(401, "Authorization must be 'Bearer <token>'",
                           headers={"WWW-Authenticate": 'Bearer realm="vouchers"'})
        g.principal = auth.authenticate(get_session(), token.strip())
        if g.principal is None:
            return problem(401, "the token is unknown, expired or revoked",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    # The access policy's role gate, before the body is parsed: a caller that
    # may not use a route learns nothing of its fields from validation errors.
    refused = access.gate(request.endpoint, g.principal)
    if refused is not None:
        status, reason = refused
        headers = {"WWW-Authenticate": 'Bearer realm="vouchers"'} if status == 401 else None
        return problem(status, reason, headers=headers)
    return None


def _begin_request():
    # GETs read in a deferred transaction; writes take the write lock at BEGIN (SQLite).
    if request.method in ("GET", "HEAD", "OPTIONS"):
        g.read_only_ctx = read_only()
        g.read_only_ctx.__enter__()
        return _load_principal() or transaction.before_request()
    if not locks_database_at_begin(get_engine()):
        return _load_principal() or transaction.before_request()
    # On SQLite a write transaction locks the whole database from its first
    # statement, so the token lookup gets a short read transaction of its own
    # and writers queue for less time (docs/performance.md).
    with read_only():
        refused = _load_principal()
        get_session().rollback()
    return refused or transaction.before_request()


def _end_read_only(_exc=None):
    ctx = g.pop("read_only_ctx", None)
    if ctx is not None:
        ctx.__exit__(None, None, None)


def init_app(app, view_modules) -> None:
    """Wire the API: `view_modules` each have a flask-smorest `blp` and its `URL` under /api/v1."""
    app.config.setdefault("API_TITLE", "Cross-region innovation voucher ledger")
    app.config.setdefault("API_VERSION", "1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("OPENAPI_SWAGGER_UI_PATH", "/docs")
    # Served by the app itself: users' networks may have no internet and no CDN.
    app.config.setdefault("OPENAPI_SWAGGER_UI_URL", DOCS_ASSETS_PATH)
    # Swagger UI would otherwise send the spec's URL to validator.swagger.io.
    app.config.setdefault("OPENAPI_SWAGGER_UI_CONFIG", {"validatorUrl": None})
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": "Issue, redeem and settle innovation vouchers across Yangtze River Delta "
                                "regions; every change is a signed ledger entry."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })

    api = ProblemApi(app)
    app.extensions["vouchers_api"] = api

    from voucher_service.http import health
    for module in view_modules:
        api.register_blueprint(module.blp, url_prefix=API_PREFIX + module.URL)
    app.register_blueprint(health.blp)

    @app.get(DOCS_ASSETS_PATH + "<path:filename>")
    def docs_assets(filename):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=3600)

    app.before_request(_begin_request)
    app.after_request(transaction.after_request)
    app.teardown_request(_end_read_only)

    @app.errorhandler(RuleViolation)
    def _rule(error: RuleViolation):
        return problem(409, error.detail, title="Rule of the programme", type_=rule_type(error.rule),
                       rule=error.rule)

    @app.errorhandler(NotFound)
    def _not_found(error: NotFound):
        return problem(404, error.detail)

    @app.errorhandler(InvalidInput)
    def _invalid(error: InvalidInput):
        return problem(422, error.detail, errors={error.field: [error.detail]})

    @app.errorhandler(TooLarge)
    def _too_large(error: TooLarge):
        return problem(413, error.detail, type_=rule_type(error.rule))

    @app.errorhandler(UnsupportedMediaType)
    def _unsupported(error: UnsupportedMediaType):
        return problem(415, error.detail, type_=rule_type(error.rule))

    @app.errorhandler(LedgerInvariantError)
    def _ledger_broken(error: LedgerInvariantError):
        # Not bad input: the stored ledger no longer adds up. Say so plainly
        # and change nothing; operators and auditors must look.
        log.error("ledger invariant violated: %s", error)
        return ledger_integrity_problem(str(error))

    @app.errorhandler(DataError)
    def _data(error: DataError):
        # Input the database cannot hold (a NUL in a path id, say) that no
        # schema caught: still the client's input, still nothing written.
        log.warning("data error: %s", error.orig)
        return problem(422, "the request contains a value the service cannot store")

    @app.errorhandler(IntegrityError)
    def _integrity(error: IntegrityError):
        log.warning("integrity error: %s", error.orig)
        return problem(409, "the change conflicts with the current state", type_=rule_type("conflict"))

    @app.errorhandler(OperationalError)
    def _operational(error: OperationalError):
        log.error("database error: %s", error.orig)
        return problem(503, "the database is unavailable or busy; retry the request", headers={"Retry-After": "1"})
