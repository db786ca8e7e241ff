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
    }
