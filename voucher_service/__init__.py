"""Cross-region innovation voucher ledger."""
from __future__ import annotations

from typing import TYPE_CHECKING

from voucher_service import config as config_module

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: dict | None = None) -> "Flask":
    # Flask is imported here, not at the top: the offline verifier
    # (voucher_service.ledger.verify) must run where only cryptography and PyNaCl are installed.
    from flask import Flask

    app = Flask(__name__, instance_relative_config=False)
    app.config.update(config_module.from_environment())
    if test_config:
        app.config.update(test_config)
    # Checked at start-up: a bad value refuses to start rather than fail a request.
    app.config["VOUCHERS_CATALOGUE_QUORUM"] = config_module.catalogue_quorum(app.config["VOUCHERS_CATALOGUE_QUORUM"])
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    from voucher_service import db
    from voucher_service.catalogue import api as catalogue_api
    from voucher_service.cli import commands as cli
    from voucher_service.enterprises import api as enterprises_api
    from voucher_service.http import api, observability, security
    from voucher_service.journal import api as ledger_api
    from voucher_service.journal import keys
    from voucher_service.payout.api import reconciliation, repayments, settlements
    from voucher_service.process.api import applications, documents, redemptions, vouchers
    from voucher_service.programme import api as regions_api
    from voucher_service.providers.api import account, exclusions, payout_accounts, registry
    from voucher_service.reports import api as reports_api
    # First: its before_request binds the request id before anything logs,
    # and its after_request runs last, after the commit.
    observability.init_app(app)
    security.init_app(app)
    db.init_app(app)
    keys.init_app(app)
    # The API, one unification after another (the order of the OpenAPI document).
    api.init_app(app, (regions_api, catalogue_api, registry, exclusions, payout_accounts, account,
                       enterprises_api, applications, vouchers, redemptions, documents, settlements, repayments,
                       reconciliation, ledger_api, reports_api))
    cli.init_app(app)
    from voucher_service import console
    console.init_app(app)
    from voucher_service.journal.publisher import load_witnesses
    app.extensions["vouchers_witnesses"] = load_witnesses(app.config["VOUCHERS_WITNESSES"])
    return app
