"""Structured logs with a request id, and Prometheus metrics that add up across
gunicorn workers.

Logs: structlog, JSON lines in production, readable in development
(VOUCHERS_LOG_FORMAT=json|console; default json unless stderr is a terminal).
Every line of a request carries its request id, taken from a well-formed
X-Request-ID header or made here, and echoed in the response.

Metrics: with PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it), each
worker writes its samples to files there and /metrics sums them, so counts do
not depend on which worker answers the scrape.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid

import structlog
from flask import Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from voucher_service.journal.metrics import LEDGER_APPENDS

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

REQUEST_SECONDS = Histogram(
    "vouchers_http_request_duration_seconds", "HTTP request latency by route, method and status",
    ["route", "method", "status"], buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
DENIALS = Counter("vouchers_access_denied_total", "Requests refused with 401 or 403", ["status", "route"])

log = structlog.get_logger("vouchers")


def configure_logging(log_format: str | None = None) -> None:
    log_format = log_format or os.environ.get("VOUCHERS_LOG_FORMAT") or (
        "console" if sys.stderr.isatty() else "json")
    renderer = (structlog.dev.ConsoleRenderer(colors=False) if log_format == "console"
                else structlog.processors.JSONRenderer(ensure_ascii=False))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.format_exc_info,
                    renderer],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _begin():
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if REQUEST_ID_PATTERN.fullmatch(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=g.request_id)


def route_label() -> str:
    # The rule, not the path: ids in paths would make one series per voucher.
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def _finish(response: Response) -> Response:
    started = g.get("request_started")
    route = route_label()
    who = g.get("principal")
    principal = who.principal_id if who else None
    if started is not None:
        elapsed_s = time.perf_counter() - started
        REQUEST_SECONDS.labels(route, request.method, str(response.status_code)).observe(elapsed_s)
        log.info("request", method=request.method, route=route, status=response.status_code,
                 duration_ms=round(elapsed_s * 1000, 2), principal=principal)
    if response.status_code in (401, 403):
        DENIALS.labels(str(response.status_code), route).inc()
        # Who was refused what, and why (the problem's detail): never the token itself.
        log.warning("access denied", method=request.method, route=route, status=response.status_code,
                    principal=principal, reason=_problem_detail(response))
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    return response


def _problem_detail(response: Response) -> str | None:
    if response.is_streamed or not response.is_json:
        return None
    try:
        body = json.loads(response.get_data())
    except (ValueError, UnicodeDecodeError):
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else None


def record_committed_entries(entries) -> None:
    for entry in entries:
        LEDGER_APPENDS.labels(entry.kind).inc()


class _LedgerCollector:
    """The ledger's size, the publisher's lag and each witness's last cosigned
    size, read from the database at scrape time: one truth for all workers
    (whichever worker leads the publisher, any worker's scrape sees it)."""

    def __init__(self, read_status):
        self._read = read_status

    def collect(self):
        try:
            status = self._read()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            return
        size = GaugeMetricFamily("vouchers_ledger_tree_size", "Entries in the ledger")
        size.add_metric([], status["tree_size"])
        yield size
        published = GaugeMetricFamily("vouchers_checkpoint_published_size",
                                      "Tree size of the latest published checkpoint")
        published.add_metric([], status["published_size"] or 0)
        yield published
        lag = GaugeMetricFamily("vouchers_checkpoint_publish_lag_entries",
                                "Entries not yet under a published checkpoint")
        lag.add_metric([], status["tree_size"] - (status["published_size"] or 0))
        yield lag
        lag_s = GaugeMetricFamily("vouchers_checkpoint_publish_lag_seconds",
                                  "Seconds since the oldest entry not yet under a published checkpoint was written "
                                  "(0 when every entry is)")
        lag_s.add_metric([], status["lag_s"])
        yield lag_s
        cosigned = GaugeMetricFamily("vouchers_witness_cosigned_size", "Tree size each witness last cosigned",
                                     labels=["witness"])
        failing = GaugeMetricFamily("vouchers_witness_failing", "1 when the witness's last answer was not a "
                                                                "cosignature", labels=["witness"])
        for witness in status["witnesses"]:
            cosigned.add_metric([witness["name"]], witness["cosigned_size"] or 0)
            failing.add_metric([witness["name"]], 0 if witness["ok"] else 1)
        yield cosigned
        yield failing


def metrics_response(read_status) -> Response:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY
        registry = REGISTRY
    scrape = CollectorRegistry()
    scrape.register(_LedgerCollector(read_status))
    body = generate_latest(registry) + generate_latest(scrape)
    return Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})


def init_app(app) -> None:
    configure_logging(app.config.get("VOUCHERS_LOG_FORMAT"))
    app.before_request(_begin)
    app.after_request(_finish)
