"""The web console (DESIGN §11): server-rendered pages under /console for each
role, in Chinese and English, on the same API as every other client."""
from __future__ import annotations

from flask import g, request
from flask_babel import Babel
from werkzeug.exceptions import MethodNotAllowed

from voucher_service.console.web import LANGUAGE_COOKIE, LANGUAGES, bp


def select_locale() -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


def init_app(app) -> None:
    import os
    Babel(app, locale_selector=select_locale, default_translation_directories=os.path.join(
        os.path.dirname(__file__), "translations"), default_timezone="Asia/Shanghai")
    from voucher_service.console import auditor, finance, officer, pages, provider, sme  # noqa: F401  (routes)
    from voucher_service.console import filters
    filters.init_app(app)
    app.register_blueprint(bp)

    @app.before_request
    def _console_address_asked_an_unknown_way():
        # Routing found no console route for the method: answered in the console's frame,
        # as every other refused console address is, not with the API's problem+json.
        if isinstance(request.routing_exception, MethodNotAllowed) and (
                request.path == "/console" or request.path.startswith("/console/")):
            g.console = None
            return pages.refuse_address()
        return None
