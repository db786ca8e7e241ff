"""The console's way to the data: the API itself, called in this process.

A console page is a client of /api/v1 holding the signed-in user's token, as
curl would be: every read and write goes through the API's parsing, its one
access model (http/access.py), its transaction and idempotency, and its
problem+json errors. There is no second copy of any rule here.

The call runs the app's WSGI stack in a fresh `contextvars.Context`: Flask
keeps the request and app contexts (and so `g`, the database session, the
principal) in context variables, and a request pushed inside the page's own
would share its app context. In a context of its own it is a request of its
own, with its own transaction, committed before the page goes on.
"""
from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass, field
from typing import Iterator

from flask import current_app, g, request
from werkzeug.exceptions import NotFound
from werkzeug.test import EnvironBuilder, run_wsgi_app

from voucher_service.http import API_PREFIX


@dataclass
class ApiAnswer:
    status: int
    headers: dict
    body: bytes
    data: object = field(default=None)

    @classmethod
    def read(cls, status: int, headers: dict, body: bytes) -> "ApiAnswer":
        """The answer with its JSON body parsed (a problem, or the resource)."""
        data = None
        if body and headers.get("Content-Type", "").split(";")[0].strip().endswith("json"):
            try:
                data = json.loads(body)
            except ValueError:
                data = None
        return cls(status=status, headers=headers, body=body, data=data)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def problem(self) -> dict | None:
        """The RFC 9457 problem of a refused call (title, detail, errors per field)."""
        if self.ok:
            return None
        return self.data if isinstance(self.data, dict) else {"title": str(self.status), "detail": ""}


@dataclass
class ApiStream:
    status: int
    headers: dict
    chunks: Iterator[bytes]


def _check_path(path: str) -> None:
    """Pages put ids from their own address into API paths. One that decoded to a
    '?', '#', '%', a blank or a dot segment would make the page ask the API for
    something else (another action, another object's sub-resource): the console's
    page is then not found, whatever page forgot to check its id."""
    if (any(c in "?#%\\" or ord(c) <= 0x20 or ord(c) == 0x7F for c in path)
            or any(segment in (".", "..") for segment in path.split("/"))):
        raise NotFound()


def _environ(method: str, path: str, token: str | None, *, query=None, json_body=None, form=None, files=None,
             idempotency_key: str | None = None, accept: str = "application/json") -> dict:
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    request_id = g.get("request_id")
    if request_id:
        headers["X-Request-Id"] = str(request_id)
    data = None
    if form is not None or files is not None:
        data = {**(form or {}), **(files or {})}
    _check_path(path)
    builder = EnvironBuilder(path=API_PREFIX + path, method=method, query_string=query, headers=headers,
                             json=json_body, data=data,
                             environ_base={"REMOTE_ADDR": request.remote_addr or "127.0.0.1"})
    try:
        return builder.get_environ()
    finally:
        builder.close()


def call(method: str, path: str, token: str | None, **kwargs) -> ApiAnswer:
    """One API request as the token's holder; the answer read whole."""
    environ = _environ(method, path, token, **kwargs)
    app = current_app._get_current_object()

    def run():
        app_iter, status, headers = run_wsgi_app(app.wsgi_app, environ, buffered=True)
        try:
            return int(status.split(" ", 1)[0]), dict(headers), b"".join(app_iter)
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()

    return ApiAnswer.read(*contextvars.Context().run(run))


def stream(path: str, token: str | None, *, query=None, accept: str = "application/json") -> ApiStream:
    """A GET whose body may be large (an export, a payout file): its chunks are
    produced in the call's own context, one at a time, as the browser reads."""
    environ = _environ("GET", path, token, query=query, accept=accept)
    app = current_app._get_current_object()
    context = contextvars.Context()
    app_iter, status, headers = context.run(run_wsgi_app, app.wsgi_app, environ)

    def chunks():
        iterator = iter(app_iter)
        try:
            while True:
                chunk = context.run(next, iterator, None)
                if chunk is None:
                    return
                yield chunk
        finally:
            if hasattr(app_iter, "close"):
                context.run(app_iter.close)

    return ApiStream(status=int(status.split(" ", 1)[0]), headers=dict(headers), chunks=chunks())
