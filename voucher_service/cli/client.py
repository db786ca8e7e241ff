"""A small client of the service's JSON API, for `vouchers demo` and for the
tests that talk to a real server (end to end, concurrency).

Standard library only (http.client): the demo is a client like any other and
must run wherever the CLI does, and the tests must see exactly the bytes a
server sends, not what a test client makes of them.

Every request opens its own connection and closes it. One client can then be
shared by many threads at once (the race tests send from forty), and nothing
is left open when a server is killed under load (the crash test).
"""
from __future__ import annotations

import http.client
import json as jsonlib
import secrets
import urllib.parse
from dataclasses import dataclass, field

from voucher_service.http import API_PREFIX  # the http package's __init__ imports no Flask
from voucher_service.ledger.replies import one_line

DEFAULT_TIMEOUT_S = 30.0
JSON_MEDIA_TYPE = "application/json"


class TransportError(OSError):
    """No HTTP answer: refused, reset, timed out, or not HTTP at all.

    An OSError, so code that expects a server to go away mid-request has one
    thing to catch, whichever layer noticed first.
    """

    def __init__(self, method: str, url: str, reason: object):
        super().__init__(f"{method} {url}: {reason}")
        self.method, self.url, self.reason = method, url, reason


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage  # case-insensitive get()
    raw: bytes
    json: object = field(init=False)  # the decoded body of a JSON reply; None for any other

    def __post_init__(self):
        self.json = None
        media_type = self.headers.get_content_type()
        if media_type == JSON_MEDIA_TYPE or media_type.endswith("+json"):
            try:
                self.json = jsonlib.loads(self.raw)
            except ValueError:
                pass  # a JSON reply that is not JSON: callers still have raw

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @property
    def problem(self) -> str:
        """An error reply on one line: its RFC 9457 detail (or title) and type."""
        if not isinstance(self.json, dict):
            return one_line(self.raw, 300)
        parts = [str(self.json.get("detail") or self.json.get("title") or "")]
        if self.json.get("type") not in (None, "about:blank"):
            parts.append(f"[{self.json['type']}]")
        return " ".join(part for part in parts if part)


class ApiClient:
    """Requests to one server; paths are relative to its base URL."""

    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._base_path = parts.path.rstrip("/")

    def request(self, method: str, path: str, token: str | None = None, body: object = None, *,
                query: dict | None = None, idempotency_key: str | None = None, headers: dict | None = None,
                timeout_s: float | None = None, form: dict | None = None, files: dict | None = None) -> Reply:
        """`body` is sent as JSON unless it is None; `form` and `files` (name -> (filename,
        bytes)) as multipart/form-data instead; `headers` override the defaults."""
        target = self._base_path + path
        if query:
            target += ("&" if "?" in target else "?") + urllib.parse.urlencode(query)
        sent = {"Accept": JSON_MEDIA_TYPE}
        data = None
        if body is not None:
            data = jsonlib.dumps(body).encode("utf-8")
            sent["Content-Type"] = JSON_MEDIA_TYPE
        elif form is not None or files is not None:
            data, sent["Content-Type"] = multipart(form or {}, files or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if idempotency_key:
            sent["Idempotency-Key"] = idempotency_key
        sent.update(headers or {})
        connection_class = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = connection_class(self._netloc, timeout=self.timeout_s if timeout_s is None else timeout_s)
        try:
            connection.request(method, target, body=data, headers=sent)
            response = connection.getresponse()
            return Reply(status=response.status, headers=response.headers, raw=response.read())
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(method, self.base_url + path, exc) from exc
        finally:
            connection.close()

    def api(self, method: str, path: str, token: str | None = None, body: object = None, **options) -> Reply:
        """A request under /api/v1."""
        return self.request(method, API_PREFIX + path, token, body, **options)

    def upload(self, path: str, token: str | None, file: bytes, *, filename: str = "document.pdf",
               fields: dict | None = None, **options) -> Reply:
        """POST a file as multipart/form-data (part `file`, and text `fields`) under /api/v1:
        `upload(f"/redemptions/{rid}/documents", token, pdf, fields={"kind": "invoice"})`."""
        return self.request("POST", API_PREFIX + path, token, form=fields or {}, files={"file": (filename, file)},
                            **options)


def multipart(form: dict, files: dict) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/form-data body (RFC 7578): text fields, then files."""
    boundary = "vouchers-" + secrets.token_hex(16)
    parts = []
    for name, value in form.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'
                     .encode("utf-8") + str(value).encode("utf-8") + b"\r\n")
    for name, (filename, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"; '
                     f'filename="{_quoted(filename)}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode("utf-8") + bytes(content) + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _quoted(text: str) -> str:
    # As browsers send them (WHATWG HTML): a name cannot break out of its quotes.
    return text.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")
