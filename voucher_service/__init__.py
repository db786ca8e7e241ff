"""Cross-region innovation voucher ledger."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import config as config_module

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
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    from . import api, cli, db, keys, observability, security
    # First: its before_request binds the request id before anything logs,
    # and its after_request runs last, after the commit.
    observability.init_app(app)
    security.init_app(app)
    db.init_app(app)
    keys.init_app(app)
    api.init_app(app)
    cli.init_app(app)
    return app
