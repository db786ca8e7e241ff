"""The ledger's Prometheus metrics.

Defined here, beside the code that appends, and not in http/observability:
the journal runs under the CLI and the tests too, and knows nothing of Flask.
"""
from prometheus_client import Counter, Histogram

LEDGER_APPENDS = Counter("vouchers_ledger_appends_total", "Ledger entries committed", ["kind"])
LEDGER_APPEND_SECONDS = Histogram(
    "vouchers_ledger_append_duration_seconds", "Time to build, sign, hash and store one ledger entry",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
