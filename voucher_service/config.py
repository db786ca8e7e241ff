"""Configuration from the environment, in one place, with development defaults."""
import os

DEFAULT_DATABASE_URL = "sqlite:///instance/vouchers.db"


def from_environment(environ=None) -> dict:
    env = os.environ if environ is None else environ
    return {
        "DATABASE_URL": env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        "VOUCHERS_KEYS_DIR": env.get("VOUCHERS_KEYS_DIR", "instance/keys"),
        # No default here: `make run` passes a development passphrase and says so.
        "VOUCHERS_KEY_PASSPHRASE": env.get("VOUCHERS_KEY_PASSPHRASE", ""),
        "VOUCHERS_LEDGER_ORIGIN": env.get("VOUCHERS_LEDGER_ORIGIN", "vouchers.example/ledger"),
        "VOUCHERS_SEEDS": env.get("VOUCHERS_SEEDS", "seeds/"),
        "VOUCHERS_TOKEN_TTL_DAYS": int(env.get("VOUCHERS_TOKEN_TTL_DAYS", "90")),
        "MAX_CONTENT_LENGTH": int(env.get("VOUCHERS_MAX_BODY_BYTES", str(64 * 1024))),
        # One evidence document (POST /redemptions/{id}/documents), the only route
        # whose body may be larger than MAX_CONTENT_LENGTH (http/security.py).
        "VOUCHERS_MAX_DOCUMENT_BYTES": int(env.get("VOUCHERS_MAX_DOCUMENT_BYTES", str(10 * 1024 * 1024))),
        # Rate limits (flask-limiter; see security.py): one budget per token across
        # all routes, callers without a token by remote address. In memory each
        # process counts alone; several workers or hosts share a limit through
        # a store such as redis://127.0.0.1:6379/0.
        "RATELIMIT_ENABLED": env.get("VOUCHERS_RATE_LIMIT_ENABLED", "true").strip().lower()
        not in ("0", "false", "no", "off"),
        # Unset: security.DEFAULT_RATE_LIMIT ("600 per minute"), or a ceiling no
        # test reaches in apps built with TESTING (their tests set their own).
        "RATELIMIT_APPLICATION": env.get("VOUCHERS_RATE_LIMIT", "").strip() or None,
        "RATELIMIT_STORAGE_URI": env.get("VOUCHERS_RATE_LIMIT_STORAGE_URL", "memory://"),
        # Strict-Transport-Security max-age; 0 leaves the header out (browsers ignore it over plain HTTP).
        "VOUCHERS_HSTS_SECONDS": int(env.get("VOUCHERS_HSTS_SECONDS", str(365 * 24 * 3600))),
        # The console's cookies are Secure when the request came over TLS (gunicorn
        # takes X-Forwarded-Proto from the local proxy); this makes them Secure always.
        "VOUCHERS_CONSOLE_SECURE_COOKIES": env.get("VOUCHERS_CONSOLE_SECURE_COOKIES", "").lower() in ("1", "true",
                                                                                                   "yes"),
        # How many member regions must approve a change to the shared catalogue
        # (catalogue/proposals.py): `all` of them, or a number N (at most all).
        "VOUCHERS_CATALOGUE_QUORUM": env.get("VOUCHERS_CATALOGUE_QUORUM", "all"),
        # DESIGN §10: the witnesses that cosign checkpoints (a file, one `NAME VKEY
        # URL` a line; unset: none), how often the background publisher signs
        # the tree when it grew (0: never in this process) and how long one
        # witness may take to answer.
        "VOUCHERS_WITNESSES": env.get("VOUCHERS_WITNESSES", ""),
        "VOUCHERS_CHECKPOINT_INTERVAL_S": positive_seconds("VOUCHERS_CHECKPOINT_INTERVAL_S",
                                                           env.get("VOUCHERS_CHECKPOINT_INTERVAL_S", "10"),
                                                           allow_zero=True),
        "VOUCHERS_WITNESS_TIMEOUT_S": positive_seconds("VOUCHERS_WITNESS_TIMEOUT_S",
                                                       env.get("VOUCHERS_WITNESS_TIMEOUT_S", "5")),
    }


def positive_seconds(name: str, raw: str, *, allow_zero: bool = False) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
        raise ValueError(f"{name} must be a number of seconds{' (0 or more)' if allow_zero else ' above 0'}, "
                         f"not {raw!r}")
    return value


def catalogue_quorum(value) -> int | str:
    """VOUCHERS_CATALOGUE_QUORUM as the app uses it: "all" or a positive int.
    Anything else stops the app from starting, with a message saying why."""
    text = str(value).strip().lower()
    if text == "all":
        return "all"
    if not isinstance(value, bool) and text.isdigit() and text.isascii() and int(text) > 0:
        return int(text)
    raise ValueError(f"VOUCHERS_CATALOGUE_QUORUM must be 'all' or a positive integer (the number of member "
                     f"regions that must approve a catalogue change), not {value!r}")
