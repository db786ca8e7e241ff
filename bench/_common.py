"""Shared helpers of the benchmarks: figures, machine description, cache
folder, peak memory, PostgreSQL scratch databases, gunicorn servers.

Benchmarks, not tests: nothing here asserts a target; every script prints its
figures, each next to the baseline measured in the same run and the target.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, REPO)

# Built ledgers and exports are kept here between runs (git-ignored).
CACHE_DIR = os.environ.get("VOUCHERS_BENCH_CACHE", os.path.join(BENCH_DIR, ".cache"))
RESULTS_DIR = os.path.join(CACHE_DIR, "results")
PG_ADMIN_URL = os.environ.get("VOUCHERS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSPHRASE = "bench-passphrase"
ORIGIN = "bench.vouchers.example/ledger"
BIN = os.path.dirname(sys.executable)

from voucher_service.cli import devserver

# --- figures -------------------------------------------------------------------

def percentile(samples, fraction: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


class Report:
    """Lines printed as they come, and the same figures kept as JSON in the cache."""

    def __init__(self, name: str, args=None):
        self.name = name
        self.figures: dict = {"bench": name, "machine": machine(), "argv": sys.argv[1:],
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.targets: list[dict] = []
        print(f"== {name} ==  ({self.figures['machine']['summary']})", flush=True)

    def line(self, text: str) -> None:
        print(text, flush=True)

    def figure(self, key: str, value) -> None:
        self.figures[key] = value

    def target(self, what: str, value: float, limit: float, *, higher_is_better: bool = True,
               unit: str = "") -> bool:
        ok = value >= limit if higher_is_better else value <= limit
        sign = ">=" if higher_is_better else "<="
        print(f"   target {what}: {value:,.3g}{unit} {sign} {limit:,.3g}{unit}  -> {verdict(ok)}", flush=True)
        self.targets.append({"what": what, "value": value, "limit": limit, "ok": ok,
                             "higher_is_better": higher_is_better})
        return ok

    def save(self) -> str:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        self.figures["targets"] = self.targets
        # A --quick run does not replace the figures of a full one.
        suffix = "-quick" if "--quick" in sys.argv else ""
        path = os.path.join(RESULTS_DIR, f"{self.name}{suffix}.json")
        with open(path, "w") as handle:
            json.dump(self.figures, handle, indent=2, default=str)
        met = sum(t["ok"] for t in self.targets)
        print(f"-- {self.name}: {met}/{len(self.targets)} targets met; figures in {os.path.relpath(path, REPO)}",
              flush=True)
        return path


def machine() -> dict:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    info = {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_gib, 1),
            "python": platform.python_version(), "kernel": platform.release()}
    info["summary"] = f"{info['cores']} cores {cpu}, {info['memory_gib']} GiB, Python {info['python']}"
    return info


def human_rate(value: float) -> str:
    return f"{value:,.0f}/s"


# --- memory --------------------------------------------------------------------

def peak_rss_mib_self() -> float:
    """This process's own peak RSS (VmHWM: of its memory since exec, unlike ru_maxrss,
    which Linux carries over from the parent's image across fork and exec)."""
    return rss_mib(os.getpid())[1]


def run_measured(argv: list[str], *, env=None, cwd=REPO, stdout=None, timeout=None) -> tuple[int, float, float, str]:
    """Run a command; return (exit code, wall seconds, peak RSS MiB of that process, stderr).

    The peak is the child's VmHWM read from /proc every 10 ms until it exits (VmHWM only
    grows, so the last reading is its peak to within the last 10 ms). wait4's ru_maxrss
    is not used: on Linux it starts from the RSS of the parent that forked the child."""
    started = time.perf_counter()
    err_file = tempfile.TemporaryFile()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout or subprocess.DEVNULL, stderr=err_file)
    deadline = None if timeout is None else time.monotonic() + timeout
    peak = 0.0
    while process.poll() is None:
        _current, hwm = rss_mib(process.pid)
        if hwm == hwm:
            peak = max(peak, hwm)
        if deadline and time.monotonic() > deadline:
            process.kill()
            process.wait()
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    err_file.seek(0)
    err = err_file.read().decode("utf-8", "replace")
    return process.returncode, elapsed, peak, err


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a live process in MiB, from /proc."""
    current = peak = float("nan")
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    current = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return current, peak


def pss_mib(pid: int) -> float:
    """Proportional set size: the process's private memory plus its share of pages it
    shares (with the gunicorn master it was forked from, say), in MiB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


# --- PostgreSQL scratch databases ------------------------------------------------

def postgres_available() -> bool:
    try:
        from sqlalchemy import create_engine
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no PostgreSQL to benchmark
        return False


def _pg_admin(statement: str) -> None:
    from sqlalchemy import create_engine
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def pg_url(name: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def create_pg_database(label: str) -> str:
    name = f"vbench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    return pg_url(name)


def drop_pg_database(url: str) -> None:
    from sqlalchemy.engine import make_url
    _pg_admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


# --- servers -----------------------------------------------------------------------

def service_env(database_url: str, keys_dir: str, **extra) -> dict:
    return devserver.service_env(database_url, keys_dir, PASSPHRASE, VOUCHERS_LEDGER_ORIGIN=ORIGIN, **extra)


class Gunicorn(devserver.GunicornProcess):
    """gunicorn with the project's gunicorn.conf.py, in its own process group."""

    def __init__(self, app: str, env: dict, workers: int, log_path: str, cwd: str = REPO):
        super().__init__(app, env, workers, log_path, bin_dir=BIN, cwd=cwd)

    def workers(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []


def build_app(database_url: str, keys_dir: str, **config):
    """The service's Flask app in this process (for direct calls and the test client)."""
    from voucher_service import create_app
    settings = {"DATABASE_URL": database_url, "VOUCHERS_KEYS_DIR": keys_dir, "VOUCHERS_KEY_PASSPHRASE": PASSPHRASE,
                "VOUCHERS_SEEDS": os.path.join(REPO, "seeds"), "VOUCHERS_LEDGER_ORIGIN": ORIGIN,
                "RATELIMIT_ENABLED": False}
    settings.update(config)
    app = create_app(settings)
    quiet_service_logs()
    return app


def quiet_service_logs() -> None:
    """The service logs a JSON line per request to stderr: in a benchmark's own process
    they go to /dev/null (still formatted and written, as in production), not the screen."""
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(open(os.devnull, "w")))


# --- other load on the machine ---------------------------------------------------------
# Figures taken while something else (a test suite, a build) uses the CPU are
# not this code's figures: every benchmark measures and prints the CPU that
# processes outside its own process tree used during each measured run.

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, str, int]]:
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                raw = handle.read()
        except OSError:
            continue
        comm_end = raw.rfind(")")
        comm = raw[raw.find("(") + 1:comm_end]
        fields = raw[comm_end + 2:].split()
        # utime + stime, and cutime + cstime: the CPU of children it has
        # reaped (a gunicorn worker recycled, a PostgreSQL backend ended).
        table[int(name)] = (int(fields[1]), comm, sum(int(value) for value in fields[11:15]))
    return table


def is_database_process(comm: str) -> bool:
    """The PostgreSQL server's processes, which every benchmark's load also drives."""
    return comm in ("postgres", "postmaster")


def _ours(table: dict, root: int) -> set[int]:
    ours, changed = {root}, True
    while changed:
        changed = False
        for pid, (ppid, _comm, _cpu) in table.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                changed = True
    return ours


class ForeignCpu:
    """CPU (in cores) used by processes outside this process tree, and outside
    the database server our benchmarks talk to, between start() and stop()."""

    def start(self) -> "ForeignCpu":
        self.before, self.started = _proc_table(), time.monotonic()
        return self

    def stop(self) -> dict:
        after, elapsed = _proc_table(), max(time.monotonic() - self.started, 1e-6)
        ours = _ours(after, os.getpid()) | _ours(self.before, os.getpid())
        used, names = 0, {}
        for pid, (_ppid, comm, cpu) in after.items():
            if pid in ours or is_database_process(comm):
                continue
            delta = cpu - self.before.get(pid, (0, "", 0))[2] if pid in self.before else cpu
            if delta > 0:
                used += delta
                names[comm] = names.get(comm, 0) + delta
        cores = used / _TICK / elapsed
        top = sorted(names.items(), key=lambda kv: -kv[1])[:3]
        return {"cores": round(cores, 2), "top": [(n, round(t / _TICK / elapsed, 2)) for n, t in top]}


class CpuSplit:
    """CPU seconds per request spent by the server under test (its whole
    process tree), the database server and the load client, between start()
    and stop(): with every process on the same cores, the sum bounds the
    request rate at cores / sum, whatever any lock allows."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    def start(self) -> "CpuSplit":
        self.before = _proc_table()
        self.children_before = _children_cpu_s()
        return self

    def stop(self, requests: int) -> dict:
        after = _proc_table()
        server_tree = _ours(after, self.server_pid) | _ours(self.before, self.server_pid)
        used = {"server": 0, "database": 0}

        def group(pid, comm):
            return "server" if pid in server_tree else "database" if is_database_process(comm) else None

        for pid, (_ppid, comm, cpu) in after.items():
            start = self.before.get(pid, (0, "", 0))[2] if pid in self.before else 0
            if group(pid, comm):
                used[group(pid, comm)] += cpu - start
        for pid, (_ppid, comm, cpu) in self.before.items():
            # Ended meanwhile: its whole CPU is now in its parent's children
            # time (counted above), of which only what came after start() counts.
            if pid not in after and group(pid, comm):
                used[group(pid, comm)] -= cpu
        split = {name: ticks / _TICK for name, ticks in used.items()}
        # The client (wrk) has exited and been waited for by now: its CPU is our children's.
        split["client"] = _children_cpu_s() - self.children_before
        return {f"{name}_ms_per_request": round(seconds * 1000 / max(requests, 1), 3)
                for name, seconds in split.items()}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def foreign_note(usage: dict) -> str:
    if usage["cores"] < 0.1:
        return "machine otherwise idle"
    who = ", ".join(f"{name} {cores:.2f}" for name, cores in usage["top"])
    return f"WARNING: other processes used {usage['cores']:.2f} cores meanwhile ({who})"


def wait_until_quiet(report=None, *, limit_cores: float = 0.25, max_wait_s: float = 120) -> dict:
    """Wait (up to max_wait_s) for a second in which others use < limit_cores."""
    deadline = time.monotonic() + max_wait_s
    while True:
        probe = ForeignCpu().start()
        time.sleep(1)
        usage = probe.stop()
        if usage["cores"] < limit_cores or time.monotonic() > deadline:
            if usage["cores"] >= limit_cores and report is not None:
                report.line(f"   (the machine is busy: {foreign_note(usage)}; measuring anyway)")
            return usage
