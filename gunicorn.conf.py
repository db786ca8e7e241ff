"""gunicorn settings for the voucher ledger: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden from the environment (GUNICORN_*), so one file
serves development (`make run`), the tests' multi-process servers and
production.
"""
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: each request is one short database transaction. The ledger is
# serialised by the database, so more workers than this only queue on its lock.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
# A sync worker reads its client itself: a client that sends slowly holds it,
# and one still waiting at this timeout is killed (gunicorn then answers with
# an HTML 500 of its own). Production puts a buffering proxy in front, which
# hands over only whole requests (docs/deployment.md); without one, wsgi.py
# answers a body slower than VOUCHERS_BODY_TIMEOUT_S, kept below this, with a
# 408 problem. Headers still arrive at the client's pace: only the proxy helps.
timeout = int(os.environ.get("GUNICORN_TIMEOUT_S", "30"))
# On SIGTERM, workers finish the request they are in (and its commit) first.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT_S", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE_S", "5"))
# Recycle workers now and then so slow leaks cannot accumulate; jitter avoids
# all workers restarting at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "10000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "1000"))
limit_request_line = 8190
limit_request_fields = 100
control_socket_disable = True

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
# The request id the app bound to its own log lines, echoed in X-Request-ID.
# Method and path without the query string: nothing a client puts in a URL
# (a token, by mistake) reaches the log.
access_log_format = ('%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s')

# Prometheus metrics from every worker add up only through a shared directory
# of per-process files (prometheus_client's multiprocess mode). It must be in
# the environment before workers import prometheus_client, so it is set here,
# in the master, before the fork.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if not _metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="vouchers-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):
    # Files of a previous run would be added to this one's counters.
    for name in os.listdir(_metrics_dir):
        path = os.path.join(_metrics_dir, name)
        if os.path.isfile(path):
            os.remove(path)
    _check_signing_keys_once()


def _check_signing_keys_once():
    """A wrong passphrase stops the master with one line, before any worker
    forks (wsgi.py checks again in each worker, for other servers)."""
    from voucher_service import create_app
    from voucher_service.db import get_engine
    from voucher_service.http.security import StartupError, check_signing_keys

    try:
        app = create_app()
    except ValueError as exc:  # a setting that cannot be used (config.py says which)
        raise SystemExit(f"vouchers: {exc}") from None
    try:
        check_signing_keys(app)
    except StartupError as exc:
        raise SystemExit(f"vouchers: {exc}") from None
    finally:
        # No connection of the master's may be inherited by the workers.
        with app.app_context():
            get_engine().dispose()


def child_exit(server, worker):
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _metrics_dir.startswith(tempfile.gettempdir()) and "vouchers-metrics-" in _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
