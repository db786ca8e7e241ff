"""The provider pages of the web console (DESIGN §11)."""
from __future__ import annotations

from voucher_service.console.web import bp  # noqa: F401
