"""End to end: nginx, configured with docs/deployment.md's snippet exactly as
written there, in front of a real gunicorn (one sync worker: the fewer, the
more a held one shows, and one worker counts rate limits alone exactly).

- Slow clients (half-sent headers, half-sent bodies) no longer delay /healthz:
  nginx holds them, and gunicorn's workers see only whole requests. Straight
  to gunicorn, the same clients do hold every worker.
- A body over VOUCHERS_MAX_BODY_BYTES is nginx's 413, as problem+json; one
  at the limit reaches the service. An upstream that does not answer is a
  503 problem+json.
- Behind the proxy (VOUCHERS_PROXY_COUNT=1) the rate limiter counts each
  caller by its own address, which the caller cannot choose.
- The published checkpoint is answered from nginx's cache, 1-2 s old at most:
  a burst of GETs costs gunicorn one or two requests.

Skipped only where nginx is not installed (Debian: apt-get install -y nginx;
.ci/run installs it).
"""
from __future__ import annotations

import http.client
import json
import re
import socket
import time

import pytest
from server import Server, free_port
from sqlalchemy import create_engine
from sqlmodel import Session

from voucher_service import config
from voucher_service.cli.devserver import NGINX, proxy_snippet
from voucher_service.cli.devserver import NginxProcess as Nginx
from voucher_service.http import auth

if NGINX is None:
    pytest.skip("nginx is not installed (Debian: apt-get install -y nginx)", allow_module_level=True)

ANSWER_AT_ONCE_S = 2.0  # /healthz takes milliseconds; anything near this is a worker held up
RATE_LIMIT = 8
SLOW_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: vouchers.test\r\n"  # and never the blank line
SLOW_BODY = (b"POST /api/v1/applications HTTP/1.1\r\nHost: vouchers.test\r\nContent-Type: application/json\r\n"
             b"Content-Length: 1000\r\n\r\n{\"amount_fen\": ")  # and never the rest


@pytest.fixture(scope="module")
def stack(databases, tmp_path_factory):
    """gunicorn (1 worker, behind one proxy, a low rate limit) and nginx in front of it."""
    url = databases.clone()
    directory = tmp_path_factory.mktemp("nginx-proxy")
    gunicorn = Server(url, databases.keys_dir, str(directory / "gunicorn.log"), workers=1)
    gunicorn.env.update(VOUCHERS_PROXY_COUNT="1", VOUCHERS_RATE_LIMIT=f"{RATE_LIMIT} per minute")
    gunicorn.database_url = url
    gunicorn.start()
    nginx = None
    try:
        nginx = Nginx(directory / "nginx", gunicorn.port).start()
        yield gunicorn, nginx
    finally:
        if nginx:
            nginx.stop()
        gunicorn.stop()
        databases.drop(url)


def exchange(port: int, method: str, path: str, *, body=None, headers=None, chunked: bool = False,
             source: str = "127.0.0.1", timeout_s: float = 30) -> tuple[int, dict, bytes]:
    """One request on its own connection: status, headers (lower-case names), body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def request(port: int, method: str, path: str, **options) -> tuple[int, str, bytes]:
    """status, Content-Type, body."""
    status, headers, body = exchange(port, method, path, **options)
    return status, headers.get("content-type", ""), body


def healthz_seconds(port: int) -> float:
    started = time.monotonic()
    status, _type, _body = request(port, "GET", "/healthz", timeout_s=ANSWER_AT_ONCE_S)
    assert status == 200
    return time.monotonic() - started


def open_slow_clients(port: int, count: int, first_bytes: bytes) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(first_bytes)
        clients.append(client)
    time.sleep(0.3)  # let the server take them up
    return clients


def close_all(clients) -> None:
    for client in clients:
        client.close()


def mint(url: str, role: str, **binding) -> str:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            token, _row = auth.create_token(session, role=role, **binding)
            session.commit()
        return token
    finally:
        engine.dispose()


def test_slow_clients_hold_gunicorns_workers_but_not_nginx(stack):
    gunicorn, nginx = stack
    # Straight to gunicorn: more half-sent requests than workers, and /healthz waits.
    held = open_slow_clients(gunicorn.port, 3, SLOW_HEADERS)
    try:
        with pytest.raises((TimeoutError, socket.timeout)):
            healthz_seconds(gunicorn.port)
    finally:
        close_all(held)
    healthz_seconds(gunicorn.port)  # closed, they free the workers (gunicorn drops them)

    # Through nginx: many more of them, headers and bodies, and /healthz answers at once.
    slow = open_slow_clients(nginx.port, 6, SLOW_HEADERS) + open_slow_clients(nginx.port, 6, SLOW_BODY)
    try:
        timings = [healthz_seconds(nginx.port) for _ in range(5)]
        assert max(timings) < ANSWER_AT_ONCE_S, timings
        # ... and so does the API: the workers are free.
        status, _type, _body = request(nginx.port, "GET", "/api/v1/ledger/keys", source="127.0.0.4",
                                       timeout_s=ANSWER_AT_ONCE_S)
        assert status == 200
    finally:
        close_all(slow)


def test_the_body_limit_is_the_services_and_refused_as_a_problem(stack):
    gunicorn, nginx = stack
    limit = int(re.search(r"^client_max_body_size (\d+)k;", proxy_snippet(), re.M).group(1)) * 1024
    assert limit == config.from_environment({})["MAX_CONTENT_LENGTH"], "nginx and VOUCHERS_MAX_BODY_BYTES differ"
    token = mint(gunicorn.database_url, "sme", enterprise_id="ent-ks-003")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    payload = json.dumps({"amount_fen": 100_000, "purpose": "through nginx"}).encode()
    at_limit = payload + b" " * (limit - len(payload))

    status, media_type, body = request(nginx.port, "POST", "/api/v1/applications", body=at_limit + b" ",
                                       headers=headers)
    assert status == 413 and media_type.startswith("application/problem+json"), (status, media_type, body)
    problem = json.loads(body)
    assert problem["status"] == 413 and "VOUCHERS_MAX_BODY_BYTES" in problem["detail"]

    status, _type, body = request(nginx.port, "POST", "/api/v1/applications", body=at_limit, headers=headers)
    assert status == 201, body
    # Chunked, the body is buffered whole and handed over with a Content-Length.
    status, _type, body = request(nginx.port, "POST", "/api/v1/applications", body=iter([payload[:7], payload[7:]]),
                                  headers=headers | {"Transfer-Encoding": "chunked"}, chunked=True)
    assert status == 201, body


def test_callers_behind_the_proxy_are_counted_by_their_own_address(stack):
    _gunicorn, nginx = stack
    statuses = [request(nginx.port, "GET", "/api/v1/ledger/keys", source="127.0.0.2")[0]
                for _ in range(RATE_LIMIT + 1)]
    assert statuses == [200] * RATE_LIMIT + [429], statuses
    # nginx sets X-Forwarded-For itself: a client cannot name another address ...
    spoofed = request(nginx.port, "GET", "/api/v1/ledger/keys", source="127.0.0.2",
                      headers={"X-Forwarded-For": "198.51.100.7"})
    assert spoofed[0] == 429
    # ... and another caller behind the same proxy has a budget of its own.
    assert request(nginx.port, "GET", "/api/v1/ledger/keys", source="127.0.0.3")[0] == 200


def test_an_upstream_that_does_not_answer_is_a_503_problem(tmp_path):
    nginx = Nginx(tmp_path / "nginx", free_port()).start()  # nothing listens upstream
    try:
        status, media_type, body = request(nginx.port, "GET", "/api/v1/regions")
    finally:
        nginx.stop()
    assert status == 503 and media_type.startswith("application/problem+json"), (status, media_type, body)
    assert json.loads(body)["status"] == 503


def upstream_checkpoint_requests(gunicorn) -> int:
    """GETs of the checkpoint that reached gunicorn: its JSON request log lines."""
    with open(gunicorn.log_path, encoding="utf-8", errors="replace") as log:
        return sum(1 for line in log if '"route": "/api/v1/ledger/checkpoint"' in line)


def checkpoint_through(port: int, source: str) -> tuple[int, dict, bytes]:
    return exchange(port, "GET", "/api/v1/ledger/checkpoint", source=source, timeout_s=10)


def test_the_checkpoint_is_answered_from_a_cache_at_most_two_seconds_old(stack):
    """nginx keeps a copy for `proxy_cache_valid 200 1s`, counted in whole seconds: 1 to 2 s."""
    gunicorn, nginx = stack
    status, _headers, direct = checkpoint_through(gunicorn.port, "127.0.0.9")
    assert status == 200 and direct.startswith(b"vouchers.")
    time.sleep(2.1)  # whatever nginx held is stale now
    before = upstream_checkpoint_requests(gunicorn)
    # One caller, more often than the service's limit (RATE_LIMIT a minute) allows it ...
    answers = [checkpoint_through(nginx.port, "127.0.0.10") for _ in range(3 * RATE_LIMIT)]
    assert [status for status, _h, _b in answers] == [200] * (3 * RATE_LIMIT), "answered by nginx, not refused"
    reached = upstream_checkpoint_requests(gunicorn) - before
    # ... and the workers saw one request a second at most (the burst takes well under a second).
    assert 1 <= reached <= 2, reached
    assert {headers["x-cache-status"] for _s, headers, _b in answers} <= {"MISS", "EXPIRED", "HIT", "UPDATING"}
    assert sum(headers["x-cache-status"] == "HIT" for _s, headers, _b in answers) >= 3 * RATE_LIMIT - 2
    for _status, headers, body in answers:
        assert headers["content-type"] == "text/plain; charset=utf-8" and "x-request-id" not in headers
        assert body.startswith(b"vouchers.") and b"\n\n" in body  # a signed note, as the service serves it
    time.sleep(2.1)
    _status, headers, _body = checkpoint_through(nginx.port, "127.0.0.10")
    assert headers["x-cache-status"] in ("EXPIRED", "MISS"), "after two seconds nginx asks the service again"
