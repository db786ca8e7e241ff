"""Request bodies are bounded in size and in time (voucher_service/http/security.py, wsgi.py).

- An oversized body is a 413 problem+json that changes nothing, with or
  without a Content-Length (chunked), in process and through gunicorn.
- Through gunicorn, a body that stalls or trickles is a 408 problem+json once
  VOUCHERS_BODY_TIMEOUT_S has passed, before gunicorn's worker timeout would
  kill the worker and answer with its own HTML 500; a body that ends before
  its Content-Length (or its last chunk) is a 400 problem+json. Neither
  changes anything. (Headers sent slowly are the buffering proxy's business:
  tests/e2e/test_nginx_proxy.py.)
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import select
import socket
import time

import pytest
from security_support import (APPLICATION, PROBLEM_JSON, app, assert_problem, bearer, fresh_limits,  # noqa: F401
                              mint, oversized_application, server, server_counts, server_token, state)
from server import REQUEST_TIMEOUT_S, Server


@pytest.mark.parametrize("idempotency_key", [None, "big-body-1"])
def test_an_oversized_body_is_a_413_problem_and_changes_nothing(app, idempotency_key):
    token = mint(app, "sme", enterprise_id="ent-ks-003")
    headers = bearer(token) | {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    before = state(app)
    response = app.test_client().post("/api/v1/applications", data=oversized_application(app), headers=headers)
    body = assert_problem(response, 413)
    assert f"larger than the {app.config['MAX_CONTENT_LENGTH']} bytes allowed" in body["detail"], body
    assert state(app) == before
    # The refusal was not remembered: the same key with a body that fits is a first request.
    ok = app.test_client().post("/api/v1/applications", json=APPLICATION, headers={
        k: v for k, v in headers.items() if k != "Content-Type"})
    assert ok.status_code == 201, ok.json
    assert "Idempotent-Replayed" not in ok.headers


def test_an_oversized_chunked_body_without_content_length_is_a_413(app):
    """A server that frames chunked bodies itself (gunicorn sets wsgi.input_terminated)
    hands werkzeug a stream of unknown length: MAX_CONTENT_LENGTH still stops it."""
    token = mint(app, "sme", enterprise_id="ent-ks-003")
    before = state(app)
    response = app.test_client().open(
        "/api/v1/applications", method="POST", input_stream=io.BytesIO(oversized_application(app)),
        headers=bearer(token) | {"Content-Type": "application/json", "Transfer-Encoding": "chunked",
                                 "Idempotency-Key": "chunked-1"},
        environ_overrides={"wsgi.input_terminated": True})
    assert response.request.content_length is None  # chunked: any Content-Length is ignored
    assert_problem(response, 413)
    assert state(app) == before


def chunked_post(app, token, body: bytes):
    return app.test_client().open(
        "/api/v1/applications", method="POST", input_stream=io.BytesIO(body),
        headers=bearer(token) | {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})


def test_a_chunked_body_is_cut_at_the_limit_not_truncated(app):
    """Valid JSON padded with spaces up to exactly the limit is accepted; one byte more
    is a 413, not a truncated body that happens to parse (werkzeug alone would accept it)."""
    token = mint(app, "sme", enterprise_id="ent-ks-003")
    limit = app.config["MAX_CONTENT_LENGTH"]
    payload = json.dumps(APPLICATION).encode()
    exactly = payload + b" " * (limit - len(payload))
    before = state(app)
    assert_problem(chunked_post(app, token, exactly + b" "), 413)
    assert state(app) == before
    response = chunked_post(app, token, exactly)
    assert response.status_code == 201, response.json
    response = chunked_post(app, token, payload)
    assert response.status_code == 201, response.json


def test_a_real_server_refuses_oversized_bodies_chunked_or_not(server):
    url = server.database_url
    token = server_token(url, "sme", enterprise_id="ent-ks-003")
    limit = 64 * 1024
    body = json.dumps({**APPLICATION, "purpose": "x" * (limit + 4096)}).encode()
    before = server_counts(url)

    def post(chunked: bool):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT_S)
        try:
            headers = bearer(token) | {"Content-Type": "application/json", "Idempotency-Key": f"big-{chunked}"}
            if chunked:
                pieces = (body[i:i + 8192] for i in range(0, len(body), 8192))
                connection.request("POST", "/api/v1/applications", body=pieces, headers=headers,
                                   encode_chunked=True)
            else:
                connection.request("POST", "/api/v1/applications", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type"), json.loads(response.read())
        finally:
            connection.close()

    for chunked in (False, True):
        status, content_type, problem = post(chunked)
        assert status == 413 and content_type.startswith(PROBLEM_JSON), (chunked, status, problem)
        assert problem["status"] == 413
    assert server_counts(url) == before
    # The same request under the limit goes through: the server was refusing the size, nothing else.
    created = server.client.api("POST", "/applications", token=token, body=APPLICATION)
    assert created.status == 201, created.raw


def test_a_real_server_takes_a_document_beyond_64_kib_chunked_or_not_and_refuses_one_beyond_its_limit(server):
    """The document route's own limit (VOUCHERS_MAX_DOCUMENT_BYTES, 10 MiB), through gunicorn:
    with a Content-Length, and chunked (spooled by http/bodies.py, never held whole)."""
    from voucher_service.cli.client import multipart
    url = server.database_url
    sme, officer, provider = (server_token(url, "sme", enterprise_id="ent-ks-003"),
                              server_token(url, "officer", region="KS"),
                              server_token(url, "provider", provider_id="prv-sh-001"))
    application = server.client.api("POST", "/applications", sme, APPLICATION)
    voucher = server.client.api("POST", f"/applications/{application.json['id']}/approve", officer, {}).json
    rid = server.client.api("POST", "/redemptions", sme, {
        "voucher_id": voucher["voucher_id"], "provider_id": "prv-sh-001", "catalog_code": "TS-01",
        "service_fee_fen": 2_000, "amount_fen": 1_000}).json["id"]

    def upload(size: int, chunked: bool):
        content = b"%PDF-1.4\n" + os.urandom(size)
        body, content_type = multipart({"kind": "acceptance"}, {"file": ("big.pdf", content)})
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT_S)
        try:
            headers = bearer(provider) | {"Content-Type": content_type}
            if chunked:
                pieces = (body[i:i + 65536] for i in range(0, len(body), 65536))
                connection.request("POST", f"/api/v1/redemptions/{rid}/documents", body=pieces, headers=headers,
                                   encode_chunked=True)
            else:
                connection.request("POST", f"/api/v1/redemptions/{rid}/documents", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read()), hashlib.sha256(content).hexdigest()
        finally:
            connection.close()

    def announce_oversized():
        """Headers announcing a body beyond the limit, and the start of it: the answer comes
        before the rest is sent (werkzeug refuses by the Content-Length)."""
        body, content_type = multipart({"kind": "acceptance"}, {"file": ("big.pdf", b"%PDF-1.4\n")})
        length = 10 * 1024 * 1024 + 128 * 1024
        with socket.create_connection(("127.0.0.1", server.port), timeout=REQUEST_TIMEOUT_S) as sock:
            sock.sendall((f"POST /api/v1/redemptions/{rid}/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {provider}\r\nContent-Type: {content_type}\r\n"
                          f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode() + body[:200])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, payload = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(payload)

    for chunked in (False, True):
        status, body, sha256 = upload(1024 * 1024, chunked)
        assert status == 201 and body["sha256"] == sha256 and body["size_bytes"] == 1024 * 1024 + 9, (chunked, body)
    before = server_counts(url)
    status, problem, _sha = upload(10 * 1024 * 1024 + 128 * 1024, chunked=True)
    assert status == 413 and "VOUCHERS_MAX_DOCUMENT_BYTES" in problem["detail"], (status, problem)
    status, problem = announce_oversized()
    assert status == 413 and "VOUCHERS_MAX_DOCUMENT_BYTES" in problem["detail"], (status, problem)
    assert server_counts(url) == before


BODY_TIMEOUT_S = 1
WORKER_TIMEOUT_S = 6


@pytest.fixture(scope="module")
def impatient_server(databases, tmp_path_factory):
    """A real gunicorn (2 workers) whose body deadline and worker timeout are short enough to wait for."""
    url = databases.clone()
    srv = Server(url, databases.keys_dir, str(tmp_path_factory.mktemp("impatient") / "gunicorn.log"), workers=2)
    srv.env.update(VOUCHERS_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S), GUNICORN_TIMEOUT_S=str(WORKER_TIMEOUT_S))
    srv.database_url = url
    srv.start()
    yield srv
    srv.stop()
    databases.drop(url)


def exchange(server, head: bytes, parts=(), *, pause_s: float = 0.0, end_body: bool = False):
    """Send `head`, then each of `parts` `pause_s` apart until the server answers
    (`end_body`: then shut the sending side); return (status, headers, body,
    seconds from the head to the answer)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=REQUEST_TIMEOUT_S) as sock:
        sock.sendall(head)
        started = time.monotonic()
        try:
            for part in parts:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered already
                sock.sendall(part)
                time.sleep(pause_s)
            if end_body:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before the client was done
        raw = sock.recv(65536)
        answered_s = time.monotonic() - started
        while chunk := sock.recv(65536):
            raw += chunk
    head_text, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head_text.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body, answered_s


def post_head(token: str, *, content_length: int | None = None, key: str | None = None) -> bytes:
    framing = f"Content-Length: {content_length}" if content_length is not None else "Transfer-Encoding: chunked"
    extra = f"Idempotency-Key: {key}\r\n" if key else ""
    return (f"POST /api/v1/applications HTTP/1.1\r\nHost: vouchers.test\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\n{extra}{framing}\r\n\r\n").encode()


def assert_body_problem(answer, status: int, words: str):
    code, headers, body, _elapsed_s = answer
    assert code == status and headers["content-type"].startswith(PROBLEM_JSON), (code, headers, body[:300])
    problem = json.loads(body)
    assert problem["status"] == status and words in problem["detail"], problem


def worker_timeouts(server) -> int:
    with open(server.log_path, encoding="utf-8", errors="replace") as handle:
        return handle.read().count("WORKER TIMEOUT")


def test_a_stalled_body_is_a_408_problem_before_the_worker_times_out(impatient_server):
    url = impatient_server.database_url
    token = server_token(url, "sme", enterprise_id="ent-ks-003")
    body = json.dumps(APPLICATION).encode()
    before, timeouts = server_counts(url), worker_timeouts(impatient_server)
    answer = exchange(impatient_server, post_head(token, content_length=len(body), key="stalled-1"), [body[:10]])
    assert_body_problem(answer, 408, f"did not arrive within {BODY_TIMEOUT_S} s")
    assert BODY_TIMEOUT_S <= answer[3] < WORKER_TIMEOUT_S - 2, answer[3]
    assert server_counts(url) == before and worker_timeouts(impatient_server) == timeouts
    # The worker was free again at once, and the key was not spent on the failure.
    status, _, created, _ = exchange(impatient_server, post_head(token, content_length=len(body), key="stalled-1"),
                                     [body])
    assert status == 201, created


def test_a_trickling_body_runs_out_of_the_same_time(impatient_server):
    url = impatient_server.database_url
    token = server_token(url, "sme", enterprise_id="ent-ks-003")
    body = json.dumps(APPLICATION).encode()
    before, timeouts = server_counts(url), worker_timeouts(impatient_server)
    # A byte every 0.25 s: no read waits long, the whole body would take longer than the worker has.
    assert len(body) * 0.25 > WORKER_TIMEOUT_S
    answer = exchange(impatient_server, post_head(token, content_length=len(body)),
                      [body[i:i + 1] for i in range(len(body))], pause_s=0.25)
    assert_body_problem(answer, 408, "did not arrive within")
    assert BODY_TIMEOUT_S <= answer[3] < WORKER_TIMEOUT_S - 2, answer[3]
    assert server_counts(url) == before and worker_timeouts(impatient_server) == timeouts


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_that_ends_early_is_a_400_problem(impatient_server, framing):
    url = impatient_server.database_url
    token = server_token(url, "sme", enterprise_id="ent-ks-003")
    body = json.dumps(APPLICATION).encode()
    before = server_counts(url)
    if framing == "chunked":
        head, parts = post_head(token), [f"{len(body):x}\r\n".encode() + body[:10]]
    else:
        head, parts = post_head(token, content_length=len(body)), [body[:10]]
    answer = exchange(impatient_server, head, parts, end_body=True)
    assert_body_problem(answer, 400, "ended before all of it arrived")
    assert answer[3] < BODY_TIMEOUT_S, answer[3]  # the end of the input, not the deadline
    assert server_counts(url) == before


def test_the_body_deadline_must_be_below_the_worker_timeout(databases, tmp_path):
    url = databases.clone()
    try:
        srv = Server(url, databases.keys_dir, str(tmp_path / "gunicorn.log"), workers=1)
        srv.env.update(VOUCHERS_BODY_TIMEOUT_S="30", GUNICORN_TIMEOUT_S="30")
        with pytest.raises(RuntimeError, match="exited"):
            srv.start()
        with open(srv.log_path, encoding="utf-8") as handle:
            assert "VOUCHERS_BODY_TIMEOUT_S (30) must be below GUNICORN_TIMEOUT_S (30)" in handle.read()
    finally:
        srv.stop()
        databases.drop(url)
